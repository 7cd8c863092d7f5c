"""Operators: special (to be filled)."""
