"""Checking a user's implementation against the derived gradients (:mod:`symderive.checking.check`)."""

from . import check
from .check import CaseCache, ImplementationReport, check_implementation, check_many

__all__ = ["CaseCache", "ImplementationReport", "check_implementation", "check_many"]


def __getattr__(name: str):
    # the checker's other names (format_reports, sweep_sizes, ...), as before the move
    return getattr(check, name)
