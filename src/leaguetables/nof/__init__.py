"""nof stage."""
