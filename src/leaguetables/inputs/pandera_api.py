"""pandera's pandas API (``pandera.pandas``), imported without pyspark.

pandera's package ``__init__`` imports ``pyspark.pandas`` whenever pyspark is installed
(``pandera.external_config``, pandera 0.35), only to prepare its type hints for pandas-on-Spark data frames, which
this project never validates. pyspark is installed for the Spark parity tests (``make spark-deps``), and that import
costs about 0.1 CPU seconds (pandera's import 0.63–0.70 CPU-s against 0.50–0.59 without it, measured 1 December
2026; up to 0.7 s of wall time on a loaded machine, its many small files) in every process that validates inputs:
``run_quarter.py``, each notebook kernel, each test worker. It is hidden for the length of pandera's import
(``None`` in :data:`sys.modules` makes ``import pyspark.pandas`` raise ``ImportError``, which pandera catches,
without importing ``pyspark`` itself) and then made importable again, so a later ``import pyspark.pandas`` behaves
as usual. pandera ends up exactly as before: with pandas 3, pyspark's ``pyspark.pandas`` fails to import anyway
(``ImportError`` from ``pandas.tseries.frequencies``, also caught by pandera) after it has imported ``pyspark.sql``,
so only the cost differs. Validation of pandas data frames is unchanged.
"""

from __future__ import annotations

import sys

_SPARK_PANDAS = "pyspark.pandas"
_hidden = _SPARK_PANDAS not in sys.modules
if _hidden:
    sys.modules[_SPARK_PANDAS] = None  # type: ignore[assignment]
try:
    import pandera.pandas as pa
finally:
    if _hidden and sys.modules.get(_SPARK_PANDAS, sys) is None:
        del sys.modules[_SPARK_PANDAS]

__all__ = ["pa"]
