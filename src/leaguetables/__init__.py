"""NHS trust league tables: quarterly metrics, demographic adjustment, NOF scoring and publication."""

import warnings

__version__ = "0.10.0"

# pandera imports pyspark.pandas when pyspark is installed (the Spark parity test's engine), and pyspark warns once
# that it does not fully support pandas 3; the project never uses pyspark.pandas, and the warning would break the
# one-line error output of run_quarter.py
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
