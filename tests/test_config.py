"""Methodology config and metric catalogue: validated on load, with one-line errors naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leaguetables.config import load_catalogue, load_methodology
from leaguetables.errors import InputError
from leaguetables.inputs.records.settings import load_record_settings
from leaguetables.publication import methodology


def test_shipped_configs_load():
    m = load_methodology("nof-2025-26")
    c = load_catalogue(m.catalogue)
    assert m.segmentation.rule == "quartiles_pooled"  # NHS England's 2025/26 rule (published acute Q1 file)
    assert m.segmentation.pool_types == ["acute", "mental_health_community", "ambulance"]
    assert len(c.metrics) >= 20
    infection = [x for x in c.metrics if x.sub_domain == "Infection prevention"]
    assert len(infection) == 3 and all(abs(x.weight - 1 / 3) < 1e-12 for x in infection)
    assert {x.id for x in c.metrics if x.combine_group == "finance"} == {"finance_plan", "finance_variance"}
    for t in ("acute", "mental_health_community", "ambulance"):
        assert any(t in x.trust_types for x in c.metrics)


def _write_catalogue(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/catalogues/demo.yaml").read_text())
    edit(data)
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["metrics"][0].update(statistic="median"), "metric 'rtt_18wk', field statistic"),
        (lambda d: d["metrics"][0].update(id="../etc"), "must match"),
        (lambda d: d["metrics"][0]["scoring"].update(method="bracket"), "bracket metric needs 'brackets'"),
        (lambda d: d["metrics"][0]["scoring"].update(standard=80, floor=70), "a standard or a floor, not both"),
        (lambda d: d["metrics"].append(dict(d["metrics"][0])), "duplicate metric ids"),
        (lambda d: d["metrics"][4]["adjustment"].update(covariates=["shoe_size"]), "unknown covariates"),
        (lambda d: d["metrics"][0].pop("direction"), "field direction: Field required"),
    ],
)
def test_bad_catalogue_gives_one_line_naming_file_and_field(tmp_path, edit, message):
    path = _write_catalogue(tmp_path, edit)
    with pytest.raises(InputError) as exc:
        load_catalogue(path)
    text = str(exc.value)
    assert str(path) in text and message in text and "\n" not in text


def test_fixed_thresholds_need_three_ascending_values(tmp_path):
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/methodology/nof-2025-26.yaml").read_text())
    data["segmentation"] = {"rule": "fixed_thresholds", "thresholds": [2.5, 2.0], "description": "x"}
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="3 ascending thresholds"):
        load_methodology(p)


def test_unknown_methodology_name():
    with pytest.raises(InputError, match="file not found"):
        load_methodology("nof-1999-00")
    with pytest.raises(InputError, match="not a valid name"):
        load_methodology("../../etc/passwd")


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"rule": "quartiles_pooled", "description": "x"}, "needs 'pool_types'"),
        ({"rule": "quartiles_pooled", "pool_types": ["acute", "acute"], "description": "x"}, "distinct"),
        ({"rule": "quartiles_within_type", "pool_types": ["acute"], "description": "x"}, "quartiles_pooled only"),
        ({"rule": "fixed_thresholds", "thresholds": [2.0, 2.3, 2.6], "description": "x"}, "thresholds_source"),
        (
            {
                "rule": "fixed_thresholds",
                "thresholds": [0.5, 2.3, 2.6],
                "thresholds_source": "illustrative",
                "description": "x",
            },
            "lie in 1–4",
        ),
    ],
)
def test_segmentation_fields_are_cross_checked(tmp_path, segmentation, message):
    """quartiles_pooled needs distinct pool types; fixed thresholds need a source and values in 1–4."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/methodology/nof-2025-26.yaml").read_text())
    data["segmentation"] = segmentation
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=message):
        load_methodology(p)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lookup": [[1, 1, 2, 3], [2, 2, 3, 4], [2, 3, 3, 4]]}, "4 rows of 4"),
        ({"lookup": [[1, 1, 2, 3], [2, 2, 3, 4], [2, 3, 3, 4], [2, 3, 4, 5]]}, "1–4"),
        ({"lookup": [[1, 1, 2, 3], [2, 2, 3, 4], [2, 3, 3, 4], [2, 3, 2, 4]]}, "must not decrease"),
        ({"lookup": [[1, 1, 2, 3], [2, 2, 3, 4], [2, 3, 3, 4], [2, 3, 4, 4]], "source": None}, "needs its 'source'"),
    ],
)
def test_finance_lookup_is_cross_checked(tmp_path, change, message):
    """The combined-finance lookup: 4×4, scores 1–4, monotone, with a source."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/catalogues/demo.yaml").read_text())
    data["combine_groups"]["finance"].update(change)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=message):
        load_catalogue(p)


def test_bands_operators_are_cross_checked(tmp_path):
    """Band operators: lower-bound and upper-bound operators cannot be mixed."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/catalogues/demo.yaml").read_text())
    m = next(x for x in data["metrics"] if x["id"] == "finance_plan")
    m["scoring"]["bands"] = [[0.0, 1], [-1.0, 2, "<"], [None, 4]]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="mixes"):
        load_catalogue(p)


def test_numerator_variance_applies_to_rates_only(tmp_path):
    """A reported numerator variance gives a rate's count a scaled interval; a proportion has its Wilson interval."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/catalogues/demo.yaml").read_text())
    m = next(x for x in data["metrics"] if x["statistic"] == "proportion")
    m["numerator_variance"] = "reported"
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="numerator_variance: reported applies to a rate"):
        load_catalogue(p)


def test_reported_numerator_variances_are_the_ones_the_records_carry():
    """The demo catalogue's metrics with numerator_variance: reported are exactly those whose rows the record-level
    indicators give a variance (config/records/indicators.yaml: standardisation numerator_variance and
    expected_variance, icb numerator_variance)."""
    cfg = load_record_settings("indicators")
    reported = {m.id for m in load_catalogue("demo").metrics if m.numerator_variance == "reported"}
    s = cfg.standardisation
    assert reported == set(s.numerator_variance) | set(s.expected_variance) | set(cfg.icb.numerator_variance)
    assert reported == {
        "rl_los_oe",
        "rl_daycase_oe",
        "rl_readmissions_oe",
        "rl_ae_12hr_oe",
        "rl_shmi",
        "rl_followup_oe",
        "icb_emergency_admissions",
        "icb_acsc_admissions",
    }


def test_methodology_page_describes_the_scaled_interval_of_a_reported_variance():
    """The methodology page's section of a metric with numerator_variance: reported states the setting and the scaled
    interval (from the catalogue); a Poisson rate's section is as before (no extra setting line)."""
    cat = load_catalogue("demo")
    los = methodology.metric_context(cat.metric("rl_los_oe"), None)
    assert los["intervals"] == methodology.SCALED_RATE and "φ × L(numerator / φ)" in los["intervals"]
    fields = {f["label"]: f.get("value") for f in los["fields"]}
    assert fields["Variance of the numerator"].startswith("reported with each observation")
    ae = methodology.metric_context(cat.metric("ae_4hr"), None)
    assert ae["intervals"] == methodology.STATISTICS[cat.metric("ae_4hr").statistic]
    assert "Variance of the numerator" not in {f["label"] for f in ae["fields"]}
