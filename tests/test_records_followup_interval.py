"""The interval of the record-level outpatient follow-up ratio (``rl_followup_oe``), whose expected count is random.

O = attended follow-ups, E = Σ over age bands of the attended first appointments F × England's follow-ups per
attended first r; F is the attended share of the booked first appointments N (a binomial count given N), so the
published interval counts V(E) = Σ r² F (1 − F/N) beside V(O) = O (``indicators.expected_variance``,
``standardisation.expected_variance``): V = O + θ² V(E), the delta-method variance of O − θE.

* Known answers worked by hand: the booked first appointments counted by the SQL (DuckDB) and by the pandas twin
  (which ATTENDED codes are booked: ``codes.op_booked``), V(E) and V for two trusts.
* Simulation from the known truth (the generator's own model: ``generate.op_table`` books first appointments, draws
  Poisson follow-ups per booked first with ``model.followup_mean`` and marks every appointment attended with
  probability 0.92): the interval with E's variance covers the true ratio 94.5–96% of the time, the former interval
  with E held fixed (the Poisson interval of O) under 94.5% — 93.3% over 20 generator seeds in
  ``benchmarks/results/record_level_intervals.md``, 93.4% by the variance arithmetic there.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from leaguetables.errors import InputError
from leaguetables.inputs.records import indicators as ind
from leaguetables.inputs.records import pandas_reference
from leaguetables.inputs.records.model import followup_mean
from leaguetables.inputs.records.settings import load_record_settings
from leaguetables.statistics import rates

Q = "2025-26-Q4"
SETTINGS = load_record_settings()
SEED = 20261202
ATTENDED_P = 0.92  # generate.op_table: ATTENDED 5 (0.90) or 6 (0.02); 3, 2, 7 otherwise
EMPTY = {
    "los": ["admission", "diagnosis_group", "age_band", "spells", "bed_days", "bed_days_sq"],
    "day_case": ["procedure", "spells", "day_cases"],
    "readmissions": ["age_band", "sex", "admission", "index_spells", "readmissions"],
    "ae_12hr": ["age_band", "attendances", "over_12_hours"],
}


def _counts(op: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {**{t: pd.DataFrame(columns=["trust_code", *cols]) for t, cols in EMPTY.items()}, "op_follow_up": op}


# (FIRSTATT, ATTENDED) of one provider's appointments on 2026-02-02, age 67 (band 65-69)
KNOWN_OP = [
    ("1", "5"),  # first, seen: attended and booked
    ("3", "6"),  # first by telephone, arrived late but seen: attended and booked
    ("1", "2"),  # first, cancelled by the patient: booked
    ("1", "3"),  # first, did not attend: booked
    ("1", "4"),  # first, cancelled by the provider: booked
    ("1", "7"),  # first, arrived late and not seen: booked
    ("1", "9"),  # first, attendance not known: not counted
    ("2", "5"),  # follow-up, seen
    ("4", "5"),  # follow-up by telephone, seen
    ("2", "3"),  # follow-up, did not attend: not counted
]


def _known_op() -> pd.DataFrame:
    rows = [
        ["A", f"O{i}", "RAA", dt.date(2026, 2, 2), first, att, 67, "1", "E01000001", "130"]
        for i, (first, att) in enumerate(KNOWN_OP)
    ]
    # a provider whose only appointment in the quarter was not attended: no row (as before booked were counted)
    rows.append(["B", "O99", "RBB", dt.date(2026, 2, 2), "1", "3", 40, "2", "E01000001", "130"])
    cols = ["PSEUDO_HESID", "ATTENDKEY", "PROCODE3", "APPTDATE", "FIRSTATT", "ATTENDED", "APPTAGE", "SEX", "LSOA11"]
    return pd.DataFrame(rows, columns=[*cols, "TRETSPEF"])


def test_booked_first_appointments_known_in_sql_and_pandas():
    """Six first appointments with an attendance status the HES dictionary knows (ATTENDED 2, 3, 4, 5, 6, 7) were
    booked, two of them attended (5, 6); ATTENDED 9 (not known) is not counted; follow-ups attended: 2 of 3. A
    provider with no attended appointment in the quarter has no row, as before the booked ones were counted."""
    op = _known_op()
    con = duckdb.connect()
    con.register("op", op)
    step = next(s for s in ind.render_steps(SETTINGS, Q) if s.name == "op_follow_up")
    duck = ind.normalise(con.execute(step.sql).df())
    ae = pd.DataFrame(columns=["PROCODE3", "ARRIVALDATE", "AEDEPTTYPE", "DEPDUR", "ARRIVALAGE"])
    twin = pandas_reference._op_ae_counts(op, ae, Q, SETTINGS)["op_follow_up"]
    twin = ind.normalise(twin.rename(columns={"PROCODE3": "trust_code"}))
    pd.testing.assert_frame_equal(duck, twin)
    assert duck.to_dict("records") == [
        {
            "trust_code": "RAA",
            "age_band": "65-69",
            "first_attendances": 2,
            "follow_ups": 2,
            "booked_first_appointments": 6,
        }
    ]


def test_expected_variance_and_ratio_variance_known():
    """Worked by hand. Band x: trust A 4 attended of 5 booked firsts, 6 follow-ups; B 6 of 10, 6 follow-ups; England
    r_x = 12/10 = 1.2. Band y: A 10 of 10 (no variance), 5 follow-ups; B 10 of 20, 15 follow-ups; r_y = 20/20 = 1.
    A: E = 4 × 1.2 + 10 = 14.8, O = 11, V(E) = 1.2² × 4 × (1 − 4/5) = 1.152, V = 11 + (11/14.8)² × 1.152.
    B: E = 6 × 1.2 + 10 = 17.2, O = 21, V(E) = 1.44 × 6 × 0.4 + 1 × 10 × 0.5 = 8.456, V = 21 + (21/17.2)² × 8.456."""
    op = pd.DataFrame(
        {
            "trust_code": ["A", "A", "B", "B"],
            "age_band": ["x", "y", "x", "y"],
            "first_attendances": [4, 10, 6, 10],
            "follow_ups": [6, 5, 6, 15],
            "booked_first_appointments": [5, 10, 10, 20],
        }
    )
    fixed = ind.standardised_ratios(_counts(op), pd.DataFrame()).set_index("trust_code")
    both = ind.standardised_ratios(_counts(op), pd.DataFrame(), (), ["rl_followup_oe"]).set_index("trust_code")
    assert fixed["variance"].isna().all()  # E held fixed: the Poisson interval of O
    assert both[["observed", "expected"]].to_numpy() == pytest.approx(fixed[["observed", "expected"]].to_numpy())
    assert both.loc["A", ["observed", "expected"]].tolist() == pytest.approx([11, 14.8])
    assert both.loc["A", "variance"] == pytest.approx(11 + (11 / 14.8) ** 2 * 1.152)
    assert both.loc["B", "variance"] == pytest.approx(21 + (21 / 17.2) ** 2 * 8.456)
    rate = pd.Series([1.2, 1.0, 1.2, 1.0])
    v_e = ind.expected_variance(op, "first_attendances", "booked_first_appointments", rate)
    assert v_e.to_dict() == pytest.approx({"A": 1.152, "B": 8.456})


def _simulate(rng: np.random.Generator, trusts: int, effect: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """One quarter of booked first appointments, drawn as ``generate.op_table`` draws them, as the SQL counts them
    (attended firsts, attended follow-ups, booked firsts by trust and age band), and the true ratios."""
    ages = np.array([5, 25, 45, 65, 85])
    booked = rng.poisson(np.array([20, 40, 60, 80, 60]), (trusts, len(ages)))  # ~260 booked firsts a trust
    mu = followup_mean(ages[None, :], effect[:, None]) * booked  # follow-ups expected of the booked firsts
    follow = rng.binomial(rng.poisson(mu), ATTENDED_P)
    firsts = rng.binomial(booked, ATTENDED_P)
    codes = np.repeat([f"T{i:03d}" for i in range(trusts)], len(ages))
    op = pd.DataFrame(
        {
            "trust_code": codes,
            "age_band": np.tile(ages.astype(str), trusts),
            "first_attendances": firsts.ravel(),
            "follow_ups": follow.ravel(),
            "booked_first_appointments": booked.ravel(),
        }
    )
    # the generator's truth: Σ μ of the trust's booked firsts ÷ Σ its booked firsts × England's μ per booked first
    national = mu.sum(axis=0) / booked.sum(axis=0)
    truth = pd.Series(mu.sum(axis=1) / (booked * national).sum(axis=1), index=codes[:: len(ages)])
    return op, truth


def _cover(ratios: pd.DataFrame, truth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Covered by the 95% interval the indicators publish (``rates.ratio`` with the row's variance, if any), and z."""
    r = ratios.set_index("trust_code")
    t = truth.reindex(r.index).to_numpy(float)
    o, e = r["observed"].to_numpy(float), r["expected"].to_numpy(float)
    v = r["variance"].to_numpy(float)
    lim = rates.ratio(o, e, variance=None if np.isnan(v).all() else v)
    covered = (lim["lower"].to_numpy() <= t) & (t <= lim["upper"].to_numpy())
    return covered, (o - t * e) / np.sqrt(np.where(np.isnan(v), o, v))


def test_interval_with_the_random_expected_count_covers():
    """20,000 trusts (trust effects SD 0.1 on the log follow-ups per first, ~260 booked first appointments a trust:
    the demo's size; one quarter of so many trusts stands for 50 quarters of 400, England's r per band then being
    as good as fixed, as it is at 134 trusts). With V(E) the 95% intervals cover the true ratio 94.5–96% of the
    time and var z is within 0.05 of 1; with E held fixed (the former Poisson interval of O) coverage is under 94.5%
    and var z about 1.14 (relative variance per booked first 0.64 from O, 0.087 from F: the reading of
    ``benchmarks/results/record_level_intervals.md``)."""
    rng = np.random.default_rng(SEED)
    trusts = 20_000
    op, truth = _simulate(rng, trusts, rng.normal(0, 0.1, trusts))
    published = SETTINGS.standardisation  # the records settings' choice: E's variance for the follow-ups
    new, new_z = _cover(
        ind.standardised_ratios(_counts(op), pd.DataFrame(), published.numerator_variance, published.expected_variance),
        truth,
    )
    old, old_z = _cover(ind.standardised_ratios(_counts(op), pd.DataFrame()), truth)
    assert 0.945 <= new.mean() <= 0.96, new.mean()  # 95.3% (MC SE 0.15); 95.5% and 95.5% with seeds 1 and 2
    assert old.mean() < 0.945, old.mean()  # 93.6% (MC SE 0.17); 94.0% and 93.8% with seeds 1 and 2
    assert abs(np.var(new_z) - 1) < 0.05, np.var(new_z)
    assert np.var(old_z) > 1.08, np.var(old_z)


def test_booked_codes_must_hold_the_attended_ones(tmp_path):
    """An attended appointment was booked: settings whose op_booked leaves out an op_attended code are refused with
    a one-line error naming the file."""
    text = (Path(ind.__file__).resolve().parents[4] / "config" / "records" / "indicators.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('op_booked: ["2", "3", "4", "5", "6", "7"]', 'op_booked: ["2", "3", "4", "5", "7"]'))
    with pytest.raises(InputError, match="op_booked must hold every op_attended code") as exc:
        load_record_settings(bad)
    assert "bad.yaml" in str(exc.value) and "\n" not in str(exc.value)
