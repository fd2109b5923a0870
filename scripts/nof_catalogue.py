"""Write config/catalogues/nof-2025-26.yaml: NHS England's NOF 2025/26 metrics scored from NHS England's published
values (``run_quarter.py QUARTER --source nof`` and ``python -m leaguetables.nof.reconcile``).

Names, domains and units come from the code registry (config/nof/codes-2025-26.yaml); the scoring rules
(direction, standard, floor, comparator population, bands) are those the published acute Q1 2025/26 and MH
Q1-Q4 2025/26 files reproduce (docs/nof-methodology.md, marks "data: acute Q1"; reconciliation in
reports/reconciliation/). Run once; the YAML is the configuration and is reviewed like code.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from leaguetables.nof.codes import load_nof_codes  # noqa: E402

A, M, B = "acute", "mental_health_community", "ambulance"
THIRD = 1 / 3
# code: (types reporting it, direction, scoring, comparator, weight, note)
SPEC = {
    "OF0003": ([A], "lower_better", {"standard": 1.0}, "type", 1, "standard < 1% (1.00 or less scores 1)"),
    "OF0005": ([A, M], "lower_better", {}, "all_listed_types", 1, "pooled acute + MH"),
    "OF0010": ([A], "higher_better", {"standard": 80.0}, "type", 1, "FDS standard 80%"),
    "OF0011": ([A], "higher_better", {"standard": 75.0}, "type", 1, "62-day standard 75%"),
    "OF0013": ([A], "higher_better", {"standard": 78.0}, "type", 1, "A&E 4-hour standard 78%"),
    "OF0014": ([A], "lower_better", {}, "type", 1, ""),
    "OF0016": ([A, M], "higher_better", {}, "all_listed_types", 1, "pooled acute + MH"),
    "OF0017": ([A, B], "lower_better", {}, "all_listed_types", 1, "ambulance population (absent from the files)"),
    "OF0020": ([A], "lower_better", {"standard": 0.0}, "type", THIRD, "MRSA: zero scores 1"),
    "OF0023": ([A], "higher_better", {}, "type", 1, ""),
    "OF0025": ([A], "lower_better", {}, "type", 1, ""),
    "OF0028": ([A, B], "lower_better", {}, "all_listed_types", 1, "ambulance population (absent from the files)"),
    "OF0041": ([A, M], "higher_better", {}, "all_listed_types", 1, "pooled acute + MH"),
    "OF0048": ([A], "lower_better", {"standard": 1.0}, "type", THIRD, "rate to threshold; standard 1.00"),
    "OF0057": ([A, M], "higher_better", {"floor": 70.0}, "all_listed_types", 1, "floor 70%, pooled acute + MH"),
    "OF0061": ([A, M, B], "higher_better", {}, "type", 1, "within type"),
    "OF0063": ([A, M], "lower_better", {}, "all_listed_types", 1, "pooled acute + MH"),
    "OF0079": ([A, M, B], "higher_better", {"bands": [[0.0, 1], [-1.0, 2, ">"], [-2.0, 3], [None, 4]]}, None, 1, ""),
    "OF0081": ([A, M, B], "higher_better", {"bands": [[0.0, 1], [-0.5, 2, ">"], [-1.0, 3], [None, 4]]}, None, 1, ""),
    "OF0082": ([A, M, B], "lower_better", {}, "all_listed_types", 1, "pooled over all three types (~205 trusts)"),
    "OF0084": ([A, M, B], "higher_better", {}, "type", 1, "within type"),
    "OF0085": ([A], "higher_better", {}, "type", 1, ""),
    "OF0086": ([M, B], "lower_better", {}, "all_listed_types", 1, "pooled MH + ambulance (~70 trusts)"),
    "OF0088": ([A], "lower_better", {"standard": 1.0}, "type", THIRD, "rate to threshold; standard 1.00"),
    "OF0106": ([A], "higher_better", {"standard": 0.0}, "type", 1, "planned vs actual: meeting plan scores 1"),
}
BRACKET = {"OF1035": [A, M], "OF1046": [A], "OF1067": [A, M, B], "OF1069": [A]}
UNIT = {
    "percent": "%",
    "%": "%",
    "percentage points": "percentage points",
    "out of 10": "score (0–10)",
    "days": "days",
    "mins": "minutes",
    "count": "count",
    "rate": "rate to threshold",
    "score": "score",
}
SOURCE = "NHS England, NHS Oversight Framework 2025/26 data file (published value)"

codes = load_nof_codes()
metrics = []
for code, (types, direction, scoring, comparator, weight, note) in SPEC.items():
    e = codes.get(code)
    unit = UNIT[e.units.get(A, next(iter(e.units.values())))]
    sc = {"method": "bands" if "bands" in scoring else "ranked", **scoring}
    if comparator == "all_listed_types":
        sc["comparator"] = comparator
    base = {
        "id": code.lower(),
        "nof_id": code,
        "name": e.description.strip(),
        "description": e.description.strip() + " (NHS England's published value" + (f"; {note}" if note else "") + ").",
        "domain": e.domain,
        "sub_domain": e.sub_domain,
        "unit": unit,
        "trust_types": types,
        "direction": direction,
        "statistic": "value",
        "decimals": 2,
        "scoring": sc,
    }
    if weight != 1:
        base["weight"] = weight
    if code in ("OF0079", "OF0081"):
        base["combine_group"] = "finance"
    base["source"] = SOURCE
    metrics.append(base)
    if code in ("OF0048", "OF0088"):
        metrics.append(
            {
                **base,
                "id": code.lower() + "_count",
                "name": e.description.strip() + " (count)",
                "description": e.description.strip() + " — count of infections, published instead of a "
                "rate for a few small specialist trusts; 0 scores 1, 1 scores 2, 2 scores 3, 3 or more 4.",
                "unit": "count",
                "scoring": {"method": "bands", "bands": [[0.0, 1, "<="], [1.0, 2, "<="], [2.0, 3, "<="], [None, 4]]},
            }
        )
for code, types in BRACKET.items():
    e = codes.get(code)
    metrics.append(
        {
            "id": code.lower(),
            "nof_id": "OF0" + code[3:],
            "name": e.description.strip(),
            "description": e.description.strip() + " — bracket-scored by NHS England; only the score (1–4) "
            "is published, so it is taken as published.",
            "domain": e.domain,
            "sub_domain": e.sub_domain,
            "unit": "score",
            "trust_types": types,
            "direction": "lower_better",
            "statistic": "bracket",
            "scoring": {"method": "bracket", "brackets": {"score 1": 1, "score 2": 2, "score 3": 3, "score 4": 4}},
            "source": "NHS England, NHS Oversight Framework 2025/26 data file (published score)",
        }
    )
doc = {
    "id": "nof-2025-26",
    "version": "1.0.0",
    "description": "NHS England's NHS Oversight Framework 2025/26 metrics, scored from NHS England's published metric values.",
    "combine_groups": {
        "finance": {
            "name": "Combined finance",
            "nof_id": "OF1080",
            "rule": "nof_finance",
            "planned": "of0079",
            "variance": "of0081",
            "lookup": [[1, 1, 2, 3], [2, 2, 3, 4], [2, 3, 3, 4], [2, 3, 4, 4]],
            "source": "NHS England NOF 2025/26 data files, acute Q1 and MH Q1-Q4 (OF1079 x OF1081 -> OF1080, 378 trust-quarters, 100%)",
        }
    },
    "not_in_inputs": [
        "Ambulance trusts (no published ambulance file): metrics pooled with them (sickness absence OF0082, relative difference in costs OF0086, Category 2 OF0017, conveyance OF0028) are ranked without them"
    ],
    "metrics": metrics,
}
hdr = (
    "# NHS England's NOF 2025/26 metrics scored from NHS England's published values (run_quarter.py --source nof,\n"
    "# python -m leaguetables.nof.reconcile). Written by scripts/nof_catalogue.py; rules as reproduced from the published\n"
    "# acute Q1 and MH Q1-Q4 2025/26 files (docs/nof-methodology.md, 'data: acute Q1').\n"
)
(ROOT / "config/catalogues/nof-2025-26.yaml").write_text(
    hdr + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
)
