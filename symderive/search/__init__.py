"""Search for closed forms: ``solve`` (the simplest proved closed forms of a gradient) and
``nearest_variants`` (the nearest true variants of a refuted claim).

>>> from symderive.search import solve
>>> solve("linear", "b").claims[0].claim
'g'
"""

from __future__ import annotations

from .solve import Found, SolveResult, SolveTimeout, solve
from .variants import Variant, candidate_assumptions, nearest_variants, with_variants

__all__ = [
    "Found",
    "SolveResult",
    "SolveTimeout",
    "Variant",
    "candidate_assumptions",
    "nearest_variants",
    "solve",
    "with_variants",
]
