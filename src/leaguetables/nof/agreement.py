"""Agreement of the raw-statistics run (``--source nhse``) with NHS England's published NOF values.

``python -m leaguetables.nof.agreement [QUARTER] [--raw DIR] [--out FILE]`` (default 2025-26-Q1, writing
``docs/nhse-vs-nof-q1-2025-26.md`` and a CSV beside it)

For every metric the project computes from NHS England's published statistics that has an NHS England NOF code
(the catalogue ``nhse-acute``'s ``nof_id``), the value of each acute trust is compared with NHS England's
published ``OF0xxx`` value for the same trust: *equal* when our value rounded half up to the published precision
(:func:`published_decimals`: 1 dp for OF0013, 2 dp otherwise) equals the published value. Sickness absence enters the NOF with a one-quarter lag, so NOF Q1 2025/26
(``Reporting_date`` "Q4 2024-25") is compared with our 2024-25-Q4 value (:data:`LAG`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import PROJECT_ROOT, load_catalogue
from leaguetables.inputs.contract import previous_quarter
from leaguetables.inputs.sources import ae, common, nhse, nof
from leaguetables.nof.scoring import round_half_up

__all__ = ["LAG", "EXPLANATIONS", "raw_values", "agreement", "main"]

#: Metrics whose NOF value is for an earlier quarter than the NOF quarter (quarters of lag).
LAG = {"sickness_absence": 1}
#: Why values differ, per metric (checked against the disagreements listed by :func:`agreement`).
EXPLANATIONS = {
    "ae_4hr": "Definition: NHS England's OF0013 is not the trust's own attendances. Most trusts agree with their "
    "own all-types figure, but trusts with type 3 (urgent treatment centre) activity run by other "
    "providers in their area are published with it attributed to them (RF4 81.9% published against "
    "78.8% from its own attendances; RRK 69.2% against 60.4%). The published A&E statistics give each "
    "provider's own activity only; the attribution table in ../shared/data/real/healthyr_trust_series "
    "(June 2022) names which provider's type 3 sites map to which acute trust, but its month is three "
    "years old and sites have changed since, so it cannot rebuild the Q1 2025/26 attribution.",
    "ae_4hr_attributed_2022": "The same A&E figures with other providers' (mostly type 3) attendances attributed "
    "to acute trusts by NHS England's June 2022 attribution table (share × attendances "
    "and × within-4-hours of every provider mapped to the trust, the trust's own "
    "included): 117 of 123 equal at 1 dp (RF4 and RRK among the fixed), against 73 "
    "from own attendances. The 6 left (RAJ, RD1, RF4 by 0.4, RN3, RVV, RX1) are trusts "
    "whose type 3 sites or shares changed between June 2022 and 2025 (new or closed "
    "UTCs, providers re-let); NHS England's 2025/26 attribution is not published.",
    "cancer_fds_28d": "Same definition (all routes, quarter sum); any difference is a revision of the CWT extract "
    "after NHS England took its figures.",
    "cancer_62d": "Same definition (all routes, quarter sum, half patients from shared pathways kept); any "
    "difference is a revision or rounding.",
    "staff_engagement": "Same NHS Staff Survey 2024 organisation score. The 2 differences are trust mergers: "
    "RAL (Royal Free, which absorbed North Middlesex RAP on 1 January 2025) and RAX (Kingston "
    "and Richmond, formed April 2025) — the raw run maps the predecessors' 2024 results to "
    "the successor and pools them; NHS England publishes the successor's own 2024 score.",
    "staff_raising_concerns": "Same NHS Staff Survey 2024 organisation sub-score; the same 2 merged trusts (RAL, "
    "RAX) differ, for the same reason.",
    "sickness_absence": "Period: NOF Q1 2025/26 uses Q4 2024/25 (January–March 2025) FTE days lost / available; "
    "compared with our 2024-25-Q4 value.",
}


def published_decimals(values: pd.Series, most: int = 4) -> int:
    """The published precision: the fewest decimals d ≤ ``most`` with every value equal to itself at d places
    (OF0013 A&E 4-hour is published to 1 dp, most metrics to 2 dp)."""
    v = values.dropna().to_numpy(float)
    for d in range(most + 1):
        if np.all(np.abs(np.round(v, d) - v) < 1e-9):
            return d
    return most


def raw_values(quarter: str, raw_dir: Path, metric_ids: list[str]) -> pd.DataFrame:
    """Our value per trust and metric from the raw statistics: ``trust_code, metric_id, value`` (proportions ×
    100; values as reported), for every acute trust (``type1_only=False``)."""
    frames = []
    quarters = {m: quarter for m in metric_ids}
    for m, lag in LAG.items():
        q = quarter
        for _ in range(lag):
            q = previous_quarter(q)
        quarters[m] = q
    cache = {}
    for m in metric_ids:
        q = quarters[m]
        if q not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[q] = nhse.load_nhse_quarter(q, raw_dir, type1_only=False)
        obs = cache[q]["observations"]
        o = obs[obs["metric_id"] == m]
        v = np.where(o["denominator"].notna(), o["numerator"] / o["denominator"] * 100.0, o["value"])
        frames.append(
            pd.DataFrame({"trust_code": o["trust_code"].to_numpy(), "metric_id": m, "value": v, "our_quarter": q})
        )
    return pd.concat(frames, ignore_index=True)


ATTRIBUTION = "healthyr_trust_series/england_ae_type3_to_acute_trust_attribution.csv"


def ae_attributed(quarter: str, raw_dir: Path) -> pd.DataFrame:
    """A&E 4-hour per acute trust with other providers' attendances attributed to acute trusts by NHS England's
    June 2022 attribution table (``healthyr_trust_series``): for acute trust T, Σ_p share(p→T) × attendances_p
    and × within-4-hours_p over every provider p mapped to T (T itself included); trusts the table does not name
    keep their own figures. Returns ``trust_code, value`` (%)."""
    monthly = ae.read_ae(common.source_path(raw_dir, "ae"))
    tot = ae.quarter_totals(monthly, quarter).set_index("trust_code")[["attendances", "within_4h"]]
    att = pd.read_csv(Path(raw_dir) / ATTRIBUTION)
    att.columns = ["provider", "acute", "share"]
    j = att.join(tot, on="provider", how="inner")
    j["a"] = j["share"] * j["attendances"]
    j["w"] = j["share"] * j["within_4h"]
    g = j.groupby("acute")[["a", "w"]].sum()
    own = tot.copy()
    named = own.index.isin(g.index)
    value = pd.Series(own["within_4h"] / own["attendances"] * 100.0, index=own.index)
    value[named] = (g["w"] / g["a"] * 100.0).reindex(own.index[named])
    return value.rename("value").rename_axis("trust_code").reset_index()


def agreement(
    quarter: str = "2025-26-Q1", raw_dir: Path | None = None, nof_dir: Path | None = None, catalogue: str = "nhse-acute"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_trust, per_metric)``: every trust × metric compared, and the share equal per metric."""
    raw_dir = Path(raw_dir) if raw_dir is not None else common.DEFAULT_RAW_DIR
    cat = load_catalogue(catalogue)
    pairs = {m.id: m.nof_id for m in cat.metrics if m.nof_id}
    files = nof.find_nof_files(nof_dir if nof_dir is not None else nof.DEFAULT_REAL_DIR / nof.NOF_FOLDERS["acute"])
    data = nof.read_nof_data(files.data)
    data = data[data["quarter"] == quarter]
    pub = nof.metric_values(data)
    ours = raw_values(quarter, raw_dir, [m for m in pairs if m in set(pairs)])
    if "ae_4hr" in pairs and (raw_dir / ATTRIBUTION).is_file():
        # variant: type 3 activity of other providers attributed by the June 2022 table
        pairs = {**pairs, "ae_4hr_attributed_2022": pairs["ae_4hr"]}
        ours = pd.concat(
            [ours, ae_attributed(quarter, raw_dir).assign(metric_id="ae_4hr_attributed_2022", our_quarter=quarter)],
            ignore_index=True,
        )
    trusts = sorted(data["trust_code"].unique())
    rows = []
    for mid, code in pairs.items():
        p = pub[pub["metric_id"] == code].set_index("trust_code")["value"]
        o = ours[ours["metric_id"] == mid].set_index("trust_code")
        dp = published_decimals(p)
        for t in trusts:
            pv = p.get(t, np.nan)
            ov = o["value"].get(t, np.nan)
            rows.append(
                {
                    "metric_id": mid,
                    "nof_id": code,
                    "trust_code": t,
                    "our_quarter": o["our_quarter"].iloc[0] if len(o) else quarter,
                    "decimals": dp,
                    "published": pv,
                    "ours": ov,
                    "ours_rounded": round_half_up(ov, dp) if pd.notna(ov) else np.nan,
                }
            )
    per = pd.DataFrame(rows)
    per["difference"] = (per["ours_rounded"] - per["published"]).round(6)
    unit = 10.0 ** -per["decimals"].astype(float)
    both = per["published"].notna() & per["ours"].notna()
    per["status"] = np.select(
        [
            both & (per["difference"].abs() < 1e-9),
            both & (per["difference"].abs() <= unit + 1e-9),
            both,
            per["published"].notna(),
            per["ours"].notna(),
        ],
        ["equal", "within_1_unit", "differs", "published_only", "ours_only"],
        "neither",
    )
    summ = []
    for (mid, code), g in per.groupby(["metric_id", "nof_id"], sort=False):
        b = g[g["status"].isin(["equal", "within_1_unit", "differs"])]
        summ.append(
            {
                "metric_id": mid,
                "nof_id": code,
                "our_quarter": g["our_quarter"].iloc[0],
                "published_trusts": int(g["published"].notna().sum()),
                "our_trusts": int(g["ours"].notna().sum()),
                "published_decimals": int(g["decimals"].iloc[0]),
                "compared": len(b),
                "equal": int((b["status"] == "equal").sum()),
                "within_1_unit": int((b["status"] == "within_1_unit").sum()),
                "differs": int((b["status"] == "differs").sum()),
                "share_equal": round(float((b["status"] == "equal").mean()), 4) if len(b) else np.nan,
                "median_abs_difference": round(float(b["difference"].abs().median()), 4) if len(b) else np.nan,
                "published_only": " ".join(g.loc[g["status"] == "published_only", "trust_code"]),
                "ours_only": " ".join(g.loc[g["status"] == "ours_only", "trust_code"]),
            }
        )
    return per, pd.DataFrame(summ)


def _md(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        out.append(
            "| "
            + " | ".join(
                "" if (isinstance(v, float) and np.isnan(v)) else (f"{v:g}" if isinstance(v, float) else str(v))
                for v in row
            )
            + " |"
        )
    return "\n".join(out)


def markdown(per: pd.DataFrame, summ: pd.DataFrame, quarter: str) -> str:
    lines = [
        f"# Raw statistics (`--source nhse`) against NHS England's published NOF values, {quarter}",
        "",
        "Produced by `python -m leaguetables.nof.agreement`. Every acute trust of NHS England's acute file (134, "
        "specialists included); our value computed from NHS England's published statistics for the same "
        "trust, rounded half up to the published precision (`published_decimals`: the fewest decimals that "
        "hold every published value of the metric), against the published `OF0xxx` value. **equal** = identical "
        "at that precision; **within_1_unit** = one unit of the last published digit; "
        "`published_only` / `ours_only` = a value on one side only.",
        "",
        _md(summ.drop(columns=["published_only", "ours_only"])),
        "",
        "## Coverage differences",
        "",
    ]
    for r in summ.itertuples():
        lines.append(
            f"- **{r.metric_id}** ({r.nof_id}): published only: {r.published_only or 'none'}; "
            f"ours only: {r.ours_only or 'none'}."
        )
    lines += [
        "",
        "Cancer FDS and 62-day ('ours only'): all 16 are NHS England's 'Acute - Specialist' trusts (every "
        "specialist trust in the file), which NHS England does not score on cancer waiting times whatever "
        "their volume (The Christie RBV: 1,973 FDS patients in the quarter); A&E: RPC (Queen Victoria, "
        "minor injuries unit) has attendances but no OF0013. RTT: no June 2025 extract in the raw data.",
        "",
        "## Why values differ",
        "",
    ]
    for r in summ.itertuples():
        lines.append(
            f"- **{r.metric_id}** ({r.nof_id}, {r.share_equal:.1%} equal): {EXPLANATIONS.get(r.metric_id, '')}"
        )
    d = per[per["status"].isin(["differs", "within_1_unit"])].sort_values(["metric_id", "trust_code"])
    lines += [
        "",
        "## Every disagreement",
        "",
        _md(
            d[
                [
                    "metric_id",
                    "nof_id",
                    "trust_code",
                    "our_quarter",
                    "published",
                    "ours",
                    "ours_rounded",
                    "difference",
                    "status",
                ]
            ]
        ),
        "",
    ]
    lines += [
        "Metrics of the raw run without an NHS England NOF code (not compared): `ae_12hr_dta` (12-hour waits "
        "from decision to admit; NHS England's OF0014 is 12 hours in the department from arrival, ECDS), "
        "`cancer_31d`, `diag_6wk`, `beds_ga_occupancy`. RTT (OF0003/OF0023) has no June 2025 extract in the "
        "raw data.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaguetables.nof.agreement", description=__doc__.splitlines()[0])
    ap.add_argument("quarter", nargs="?", default="2025-26-Q1")
    ap.add_argument("--raw", type=Path, default=None, help="real-data root (default ../shared/data/real)")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "nhse-vs-nof-q1-2025-26.md")
    args = ap.parse_args(argv)
    try:
        per, summ = agreement(args.quarter, args.raw)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(per, summ, args.quarter), encoding="utf-8")
    per.to_csv(args.out.with_suffix(".csv"), index=False, lineterminator="\n", float_format="%.10g")
    print(summ.drop(columns=["published_only", "ours_only"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
