import collections
import sys

sys.path.insert(0, "/work/wt/acute/src")
import pandas as pd
import yaml

from leaguetables.inputs.sources.nof import parse_quarter
from leaguetables.nof.codes import DATE_RULES, TYPE_FROM_LABEL, NofCode, reporting_date

R = "/work/shared/data/real/"
a = pd.read_csv(R + "nof_2025_26_q1_acute/nhs-oversight-framework-acute-trust-data.csv", encoding="utf-8-sig")
a["Quarter"] = "Q1 2025/26"
m = pd.read_csv(
    R
    + "nof_2025_26_q4_mhc/nof_mh_community_q4_2025_26_nhs-oversight-framework-mental-health-and-community-trust-data.csv",
    encoding="utf-8-sig",
)
d = pd.concat([a, m])
d["q"] = d["Quarter"].map(parse_quarter)
d["t"] = d["Trust_type"].map(TYPE_FROM_LABEL)
out = {}
for code, g in d.groupby("Metric_ID", sort=True):
    desc = g["Metric_description"].mode().iloc[0]
    dom = g["Domain"].mode().iloc[0]
    sub = g["Sub-domain"].mode().iloc[0]
    units = {}
    for t, gt in g.groupby("t"):
        units[t] = gt["Units"].mode().iloc[0]
    obs = {}
    for q, gq in g.groupby("q"):
        vals = gq["Reporting_date"].dropna().astype(str)
        obs[q] = vals.mode().iloc[0] if len(vals) else ""
    best = None
    for rule in DATE_RULES:
        if rule == "text":
            txt = collections.Counter(obs.values()).most_common(1)[0][0]
            e = dict(reporting_date="text", text=txt)
        else:
            e = dict(reporting_date=rule)
        ent = NofCode(description=desc, domain=dom, sub_domain=sub, units=units, **e)
        miss = {q: v for q, v in obs.items() if reporting_date(ent, q) != v}
        if best is None or len(miss) < len(best[1]):
            best = (e, miss)
    e, miss = best
    entry = dict(description=desc, domain=dom, sub_domain=sub, units=units, **e)
    if miss:
        entry["overrides"] = miss
    blank = sorted(t for t, gt in g.groupby("t") if gt["Reporting_date"].isna().all())
    if blank:
        entry["blank_for"] = blank
    out[code] = entry
doc = {
    "id": "nof-2025-26",
    "source": "NHS England, NHS Oversight Framework 2025/26 data files: acute trusts Q1 2025/26 (9 September 2025) and mental health and community trusts Q1-Q4 2025/26; transcribed by scripts/nof_codes_from_files.py and checked by tests/test_nof_codes.py",
    "codes": out,
}
hdr = "# NHS England's NOF 2025/26 metric codes as published: description, domain, sub-domain, units per trust type\n# and the Reporting_date convention (rules in src/leaguetables/nof/codes.py). Generated from the published files by\n# scripts/nof_codes_from_files.py; edit only with a published file to back the change.\n"
open("/work/wt/acute/config/nof/codes-2025-26.yaml", "w").write(
    hdr + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200)
)
