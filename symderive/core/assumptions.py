"""Assumptions as data: what the parser makes of ``n >= 2``, ``sum(t) == 1`` or ``x > 0``."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .tree import Node


@dataclass(frozen=True)
class Assumption:
    """One parsed assumption.

    ``kind`` is ``"size"`` (``cond`` a SymPy relation over sizes, congruences through
    ``Mod``), ``"equal"`` (``lhs == rhs`` elementwise, both trees over the layer's
    tensors, e.g. ``sum(t) == 1``) or ``"sign"`` (``lhs`` rel ``rhs`` elementwise, e.g.
    ``x > 0``; ``rel`` is the operator text). ``text`` is the user's spelling.

    >>> Assumption("n >= 2", "size", sp.Ge(sp.Symbol("n"), 2)).kind
    'size'
    """

    text: str
    kind: str
    cond: sp.Basic = sp.true
    lhs: Node | None = None
    rhs: Node | None = None
    rel: str = ""
