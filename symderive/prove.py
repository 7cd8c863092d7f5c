"""Proofs (the README's ``symderive.prove``): is a claimed closed form the gradient, for all sizes?

:func:`prove` asks it of a gradient claim, :func:`prove_identity` of any identity between
two expressions over a layer's tensors. The decision lives in :mod:`symderive.decide`;
this façade keeps the documented path, and ``sd.prove(...)`` calls :func:`prove`.

>>> prove("linear", "x", "w.T @ g").verdict
'proved'
>>> prove_identity("linear", "transpose(transpose(w)) == w").verdict
'proved'
"""

from __future__ import annotations

from ._callable import make_callable
from .decide.pose import Memo, extra_assumptions, prove, prove_identity

__all__ = ["Memo", "extra_assumptions", "prove", "prove_identity"]

make_callable(__name__)
