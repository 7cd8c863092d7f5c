"""Checking a user's implementation against the derived gradients."""

from .check import ImplementationReport, check_implementation, check_many

__all__ = ["ImplementationReport", "check_implementation", "check_many"]
