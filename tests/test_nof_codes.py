"""NHS England's metric codes and labels (config/nof/codes-2025-26.yaml) against the published NOF files.

Expected values come from NHS England's published NOF 2025/26 data files: acute trusts Q1 2025/26
(``../shared/data/real/nof_2025_26_q1_acute``) and mental health and community trusts Q1–Q4 2025/26
(``nof_2025_26_q4_mhc``). The tests that read them skip, saying which file is absent, when it is not there.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from leaguetables.config import load_catalogue
from leaguetables.inputs.sources import nof
from leaguetables.nof import codes as nofcodes
from leaguetables.nof.layout import NHSE_LONG_COLUMNS, nhse_long_table

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
ACUTE = REAL / "nof_2025_26_q1_acute" / "nhs-oversight-framework-acute-trust-data.csv"
MHC = (
    REAL
    / "nof_2025_26_q4_mhc"
    / ("nof_mh_community_q4_2025_26_nhs-oversight-framework-mental-health-and-community-trust-data.csv")
)


def _published() -> pd.DataFrame:
    frames = []
    for path in (ACUTE, MHC):
        if not path.is_file():
            pytest.skip(f"published NOF file absent: {path}")
        frames.append(nof.read_nof_data(path))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def published():
    return _published()


def test_registry_has_every_published_code_with_its_labels(published):
    """Every Metric_ID of the published acute Q1 and MH Q1–Q4 files is in the registry with the published
    Metric_description, Domain, Sub-domain and (per trust type) Units, for every row (OF0048/OF0088 count rows
    of small specialist trusts excepted: their Units is 'count')."""
    codes = nofcodes.load_nof_codes()
    assert sorted(set(published["metric_id"]) - set(codes.codes)) == []
    for code, g in published.groupby("metric_id"):
        e = codes.get(code)
        assert set(g["metric_description"]) == {e.description}, code
        assert (g["domain"] == e.domain).mean() == 1.0, code
        assert (g["sub_domain"] == e.sub_domain).mean() >= 0.5, code  # MH Q3-Q4 relabel 'Patient safety'
        for t, gt in g.groupby("trust_type"):
            want = nofcodes.units(e, t)
            got = gt["units"].astype(str)
            if code in ("OF0048", "OF0088"):
                got = got[got != "count"]
            assert set(got) == {want}, (code, t)


def test_registry_reproduces_every_published_reporting_date(published):
    """The Reporting_date of every published code × quarter × trust type (blank where the file leaves it blank:
    acute OF5005/OF5007)."""
    codes = nofcodes.load_nof_codes()
    bad = []
    for (code, quarter, ttype), g in published.groupby(["metric_id", "quarter", "trust_type"]):
        want = set(g["reporting_date"].fillna("").astype(str))
        got = nofcodes.reporting_date(codes.get(code), quarter, ttype)
        if want != {got}:
            bad.append((code, quarter, sorted(want), got))
    assert bad == []


def test_reporting_date_rules_hand_worked():
    """Hand-worked labels for Q4 2025/26 (January–March 2026)."""

    def e(rule, **kw):
        return nofcodes.NofCode(
            description="x", domain="d", sub_domain="s", units={"acute": "u"}, reporting_date=rule, **kw
        )

    q = "2025-26-Q4"
    assert nofcodes.reporting_date(e("quarter"), q) == "Q4 2025/26"
    assert nofcodes.reporting_date(e("month_end"), q) == "Mar-26"
    assert nofcodes.reporting_date(e("rolling_12_months"), q) == "Apr 25 - Mar 26"
    assert nofcodes.reporting_date(e("previous_quarter"), q) == "Q3 2025/26"
    assert nofcodes.reporting_date(e("previous_quarter"), "2025-26-Q1") == "Q4 2024/25"
    assert nofcodes.reporting_date(e("survey_year"), q) == "2025"
    assert nofcodes.reporting_date(e("ytd_month"), "2025-26-Q2") == "Month 6 2025"
    with pytest.raises(ValueError):
        e("text")  # text rule without text


def test_catalogue_codes_are_nhs_englands():
    """The raw-statistics catalogue's NHS England codes: A&E 4-hour OF0013, cancer FDS OF0010, 62-day OF0011
    (published acute Q1 2025/26 file), and every nof_id of both catalogues is a registered value code or a
    value code whose score code is registered (bracket metrics, e.g. CQC safe OF1067)."""
    codes = nofcodes.load_nof_codes()
    cat = load_catalogue("nhse-acute")
    ids = {m.id: m.nof_id for m in cat.metrics}
    assert ids["ae_4hr"] == "OF0013" and ids["cancer_fds_28d"] == "OF0010" and ids["cancer_62d"] == "OF0011"
    assert ids["staff_raising_concerns"] == "OF0061" and ids["staff_engagement"] == "OF0084"
    for name in ("nhse-acute", "demo"):
        for m in load_catalogue(name).metrics:
            if m.nof_id:
                assert codes.get(m.nof_id) or codes.get("OF1" + m.nof_id[3:]), (name, m.id, m.nof_id)


def _league():
    cat = load_catalogue("nhse-acute")
    trusts = pd.DataFrame(
        {
            "trust_code": ["A", "B"],
            "trust_name": ["Trust A", "Trust B"],
            "trust_type": ["acute", "acute"],
            "trust_subtype": ["Acute - Large"] * 2,
            "region": ["London", "London"],
        }
    )
    res = []
    for m in cat.metrics:
        for code, v, s in (("A", 80.0, 1.0), ("B", 70.0, 4.0)):
            res.append(
                {
                    "metric_id": m.id,
                    "trust_code": code,
                    "trust_type": "acute",
                    "value": v,
                    "score": s if m.scoring.method != "none" else np.nan,
                    "category": None,
                }
            )
    table = pd.DataFrame(
        {
            "trust_code": ["A", "B"],
            "trust_type": ["acute", "acute"],
            "average_score": [1.5, 3.2],
            "unadjusted_segment": [1, 4],
            "financial_override": [False, False],
            "in_financial_deficit": [False, True],
            "segment": [1, 5],
            "rank": [1, 2],
        }
    )
    league = SimpleNamespace(results=pd.DataFrame(res), table=table, scores=None)
    return cat, trusts, league


def test_long_table_uses_only_nhs_england_codes_and_labels():
    """The NHS-layout long table: only registry codes (no internal ids such as diag_6wk, cancer_31d,
    beds_ga_occupancy, ae_12hr_dta), their published labels, OF5004 = the deficit flag (B: 1, though the
    override did not move it), OF5005 = 5 and OF5007 = 1 for a Recovery Support Programme trust."""
    cat, trusts, league = _league()
    long = nhse_long_table(league, cat, trusts, "2025-26-Q1")
    codes = nofcodes.load_nof_codes()
    assert list(long.columns) == NHSE_LONG_COLUMNS
    assert set(long["Metric_ID"]) <= set(codes.codes)
    assert {"OF0013", "OF1013", "OF0010", "OF0011", "OF0061", "OF0084", "OF0082"} <= set(long["Metric_ID"])
    for code, g in long.groupby("Metric_ID"):
        e = codes.get(code)
        assert set(g["Metric_description"]) == {e.description}
        assert set(g["Reporting_date"]) == {nofcodes.reporting_date(e, "2025-26-Q1", "acute")}
    assert set(long.loc[long["Metric_ID"] == "OF0013", "Reporting_date"]) == {"Q1 2025"}
    s = long.set_index(["Trust_code", "Metric_ID"])["Value"]
    assert s[("A", "OF5004")] == 0 and s[("B", "OF5004")] == 1
    assert s[("B", "OF5005")] == 5 and s[("B", "OF5007")] == 1 and s[("B", "OF5000")] == 4
    assert long.loc[long["Metric_ID"] == "OF5004", "Metric_description"].unique().tolist() == ["Financial override"]
