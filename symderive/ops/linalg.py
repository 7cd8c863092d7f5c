"""Operators: linalg (to be filled)."""
