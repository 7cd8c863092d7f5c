"""Proofs (the README's ``symderive.prove``): is a claimed closed form the gradient, for all sizes?

The decision lives in :mod:`symderive.decide`; this façade keeps the documented path, and
``sd.prove(...)`` calls :func:`prove`.

>>> prove("linear", "x", "w.T @ g").verdict
'proved'
"""

from __future__ import annotations

from ._callable import make_callable
from .decide.symbolic import extra_assumptions, prove

__all__ = ["extra_assumptions", "prove"]

make_callable(__name__)
