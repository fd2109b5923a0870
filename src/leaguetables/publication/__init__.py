"""publication stage."""
