"""Record-level hospital data (HES-format admitted patient care, outpatient and A&E records)."""
