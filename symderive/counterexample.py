"""Concrete refutation (the README's ``symderive.counterexample``): ``refuted`` or ``unknown``, never ``proved``.

The search lives in :mod:`symderive.decide.search`; this façade keeps the documented path.

>>> prove_concrete("linear", "x", "w @ g").verdict
'refuted'
"""

from __future__ import annotations

from .decide.search import find_counterexample, input_shapes, prove_concrete, true_gradient

__all__ = ["find_counterexample", "input_shapes", "prove_concrete", "true_gradient"]
