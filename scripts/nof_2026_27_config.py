"""Write config/catalogues/demo-2026-27.yaml: the demo catalogue under the 2026/27 method, with the planning
standards of the Medium Term Planning Framework as *illustrative* scoring rules (their adoption by the NOF, and
NHS England's 2026/27 metric list, could not be obtained; docs/nof-methodology.md). Run once; review the YAML.
"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MTPF = (
    "Illustrative: NHS England Medium Term Planning Framework planning standard for 2026/27 ({}); adoption by "
    "the NHS Oversight Framework 2026/27 unconfirmed"
)
doc = yaml.safe_load((ROOT / "config/catalogues/demo.yaml").read_text())
doc["id"] = "demo-2026-27"
doc["description"] = (
    "Synthetic demonstration metrics under the NOF 2026/27 method as configuration: illustrative "
    "planning standards (not NHS England's published NOF 2026/27 rules, which could not be obtained)."
)
for m in doc["metrics"]:
    if m["id"] == "rtt_18wk":
        m["scoring"] = {
            "method": "ranked",
            "relative_floor": {
                "improvement": 7.0,
                "at_least": 65.0,
                "baseline_quarters_back": 4,
                "source": MTPF.format("RTT 18 weeks: +7 points or 65%, whichever is greater"),
            },
        }
    elif m["id"] == "ae_4hr":
        m["scoring"] = {"method": "ranked", "standard": 82.0}
        m["description"] += " Illustrative 2026/27 standard 82% (Medium Term Planning Framework, March 2027)."
    elif m["id"] == "cancer_62d":
        m["scoring"] = {"method": "ranked", "standard": 80.0}
        m["description"] += " Illustrative 2026/27 standard 80% (Medium Term Planning Framework, March 2027)."
hdr = (
    "# The demo catalogue under the NOF 2026/27 method (written by scripts/nof_2026_27_config.py from demo.yaml).\n"
    "# Every 2026/27 rule here is ILLUSTRATIVE: NHS England's 2026/27 metric list, standards and thresholds could\n"
    "# not be obtained (docs/nof-methodology.md).\n"
)
(ROOT / "config/catalogues/demo-2026-27.yaml").write_text(
    hdr + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
)
