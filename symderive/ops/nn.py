"""Operators: nn (to be filled)."""
