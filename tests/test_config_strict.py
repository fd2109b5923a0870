"""Configuration validated completely on load (issue 12), by rules that new configuration sections inherit.

Other engineers add sections (``expected:``, ``funnel:`` fields, ``uncertainty:``, ``spc:``, …) as subclasses of
``config._Strict``; these tests define such a section here and show that it gets the rules without writing any:
no NaN or infinity in a float field, no control or bidirectional-override text, no unknown field. The YAML
loader refuses duplicate keys and deep nesting, and bounds what anchors and aliases expand to. The number
parser of the data contract is tested beside them (one grammar, its messages).
"""

from __future__ import annotations

import math

import pytest
import yaml
from pydantic import ValidationError

from leaguetables.config import MAX_DEPTH, _Strict, load_yaml_strict


class NewSection(_Strict):
    """A section as another engineer would add it: plain annotations, no validators of its own."""

    multiplier: float
    levels: list[float] = [0.95]
    label: str = "x"
    options: dict[str, float] = {}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_new_float_field_rejects_non_finite_values(value):
    with pytest.raises(ValidationError, match="finite number"):
        NewSection(multiplier=value)
    with pytest.raises(ValidationError, match="finite number"):
        NewSection(multiplier=1.0, levels=[0.9, value])
    with pytest.raises(ValidationError, match="finite number"):
        NewSection(multiplier=1.0, options={"a": value})


@pytest.mark.parametrize("text", ["a\u202eb", "\x1b[31m", "a\x00b", "x\u2066y", "\x85"])
def test_new_text_fields_reject_control_and_bidi_characters(text):
    with pytest.raises(ValidationError, match="control character"):
        NewSection(multiplier=1.0, label=text)
    with pytest.raises(ValidationError, match="control character"):
        NewSection(multiplier=1.0, options={text: 1.0})


def test_new_sections_reject_unknown_fields_and_are_immutable():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        NewSection(multiplier=1.0, colour="red")
    s = NewSection(multiplier=2.0, label="Line one\nline two\ttabbed")  # folded YAML text keeps newlines and tabs
    with pytest.raises(ValidationError):
        s.multiplier = 3.0


def test_yaml_duplicate_keys_are_refused_at_every_level():
    with pytest.raises(yaml.YAMLError, match="key 'a' is given twice in one mapping \\(lines 1 and 2\\)"):
        load_yaml_strict("a: 1\na: 2\n")
    with pytest.raises(yaml.YAMLError, match="key 'k' is given twice"):
        load_yaml_strict("top:\n  - {k: 1, k: 2}\n")
    # a merge key is overridden by an explicit key (YAML's rule), not a duplicate
    assert load_yaml_strict("base: &b {x: 1}\nm: {<<: *b, x: 2}\n")["m"] == {"x": 2}


def test_yaml_nesting_and_expansion_are_bounded():
    ok = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    load_yaml_strict(ok)
    with pytest.raises(yaml.YAMLError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        load_yaml_strict("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n")
    bomb = "a: &a [" + ", ".join(["x"] * 10) + "]\n"
    for prev, name in zip("abcde", "bcdef"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    with pytest.raises(yaml.YAMLError, match="expands to more than"):
        load_yaml_strict(bomb)
    assert load_yaml_strict("a: &t [acute]\nb: *t\n") == {"a": ["acute"], "b": ["acute"]}  # small aliases: fine


def test_the_project_configuration_loads():
    from leaguetables.config import load_catalogue, load_methodology

    m = load_methodology("nof-2025-26")
    assert m.financial_override.from_segments == [1, 2] and m.financial_override.to_segment == 3
    for name in ("demo", "nhse-acute"):
        cat = load_catalogue(name)
        real = {x.id for x in cat.metrics if x.counts == "real"}
        record_level = {m for m in real if m.startswith(("rl_", "icb_"))}  # expected counts, standardised populations
        assert real - record_level <= {"sickness_absence", "beds_ga_occupancy", "cancer_62d"}, real


# --------------------------------------------------------------------------------------------- number grammar
@pytest.mark.parametrize(
    "text,value",
    [
        ("14", 14.0),
        ("-1.6", -1.6),
        ("+3", 3.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        (" 7 ", 7.0),
    ],
)
def test_numbers_the_contract_accepts(text, value):
    from leaguetables.inputs.contract import parse_number

    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text,reason",
    [
        ("1,5", "no thousands separators or decimal commas"),
        ("1,234.5", "no thousands separators"),
        ("1_000", "no digit-group underscores"),
        ("NaN", "not a finite number"),
        ("-inf", "not a finite number"),
        ("1e400", "not a finite number (too large)"),
        ("N/A", "leave the cell empty"),
        ("0x10", "is not a number"),
        ("١٢", "is not a number"),
        ("12%", "is not a number"),
        ("1.2.3", "is not a number"),
        ("--1", "is not a number"),
    ],
)
def test_numbers_the_contract_refuses(text, reason):
    from leaguetables.inputs.contract import parse_number

    with pytest.raises(ValueError, match=reason.replace("(", "\\(").replace(")", "\\)")):
        parse_number(text)


def test_allowed_funnel_levels_are_the_levels_the_funnel_computes():
    """A band or outer level the funnel has no limits for would fail inside a metric notebook: refused on load."""
    from leaguetables.config import FUNNEL_LEVELS
    from leaguetables.statistics import funnel

    assert set(FUNNEL_LEVELS) == set(funnel.LEVELS)
