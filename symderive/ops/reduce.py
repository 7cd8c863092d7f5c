"""Operators: reduce (to be filled)."""
