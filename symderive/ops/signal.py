"""Operators: signal (to be filled)."""
