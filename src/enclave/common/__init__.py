"""Small helpers shared by every concept."""
