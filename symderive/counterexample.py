"""Concrete refutation (the README's ``symderive.counterexample``): ``refuted`` or ``unknown``, never ``proved``.

The search lives in :mod:`symderive.decide.search` and works on problems; this façade keeps
the documented path and its layer-level functions (:mod:`symderive.decide.pose`), and the
search's own names are reachable here too.

>>> prove_concrete("linear", "x", "w @ g").verdict
'refuted'
"""

from __future__ import annotations

from .decide import pose, search
from .decide.pose import (
    disagreement_sizes,
    find_counterexample,
    gradient_expressions,
    input_shapes,
    parse_assumptions,
    prove_concrete,
    size_candidates,
    true_gradient,
)

__all__ = [
    "disagreement_sizes",
    "find_counterexample",
    "gradient_expressions",
    "input_shapes",
    "parse_assumptions",
    "prove_concrete",
    "size_candidates",
    "true_gradient",
]


def __getattr__(name: str):
    # the search's own names (SearchSummary, certainly_nonzero, ...), as before the move
    return getattr(search, name) if hasattr(search, name) else getattr(pose, name)
