"""NHS trust league tables: quarterly metrics, demographic adjustment, NOF scoring and publication."""

__version__ = "0.2.0"
