"""NHS trust league tables: quarterly metrics, demographic adjustment, NOF scoring and publication."""

__version__ = "0.1.0"
