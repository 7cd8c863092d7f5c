"""Derivations (the README's ``symderive.derive``): the gradient of a layer, step by step.

The derivation lives in :mod:`symderive.calculus`; this façade keeps the documented path,
and ``sd.derive(...)`` calls :func:`derive`.

>>> derive("linear", "x").wrt
'x'
"""

from __future__ import annotations

from ._callable import make_callable
from .calculus.derive import Derivation, NotDifferentiable, Step
from .calculus.present import present as derive

__all__ = ["Derivation", "NotDifferentiable", "Step", "derive"]

make_callable(__name__)
