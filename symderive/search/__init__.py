"""Search for closed forms: ``solve`` (the simplest proved closed forms of a gradient) and
``nearest_variants`` (the nearest true variants of a refuted claim).

>>> from symderive.search import solve
>>> solve("linear", "b").claims[0].claim
'g'
"""

from __future__ import annotations

from .solve import Found, SolveResult, solve
from .variants import Variant, candidate_assumptions, nearest_variants

__all__ = ["Found", "SolveResult", "Variant", "candidate_assumptions", "nearest_variants", "solve"]
