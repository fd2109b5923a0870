"""statistics stage."""
