"""Quarter labels ``YYYY-YY-QN`` (financial year: Q1 = April–June … Q4 = January–March): validation and sort key.

Used by the data contract (:mod:`leaguetables.inputs.contract`) and by the configuration's validation
(:mod:`leaguetables.config`), which the contract itself imports: kept apart from both so neither imports the other
inside a function.
"""

from __future__ import annotations

import re

from leaguetables.errors import InputError

QUARTER_RE = re.compile(r"^(\d{4})-(\d{2})-Q([1-4])\Z")
MIN_YEAR, MAX_YEAR = 1990, 2099  # financial years a quarter may start in


def check_quarter(quarter: str) -> str:
    """Validate a quarter label ``YYYY-YY-QN`` (financial year, e.g. ``2025-26-Q4``)."""
    m = QUARTER_RE.match(str(quarter))
    if not m or (int(m.group(1)) + 1) % 100 != int(m.group(2)):
        raise InputError(
            f"quarter {str(quarter)[:40]!r} is not of the form YYYY-YY-QN with consecutive years, e.g. 2025-26-Q4"
        )
    if not MIN_YEAR <= int(m.group(1)) <= MAX_YEAR:
        raise InputError(
            f"quarter {quarter!r} is not plausible (financial years {MIN_YEAR}-{(MIN_YEAR + 1) % 100:02d} "
            f"to {MAX_YEAR}-{(MAX_YEAR + 1) % 100:02d})"
        )
    return quarter


def quarter_key(quarter: str) -> tuple[int, int]:
    m = QUARTER_RE.match(quarter)
    assert m, quarter
    return int(m.group(1)), int(m.group(3))
