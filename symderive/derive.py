"""Derive: the gradient of a layer's loss with respect to one input element, step by step.

(Being written: the dataclasses below are the contract for reports and the CLI.)
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One step of a derivation, as a reader would write it.

    ``kind`` names the rule: ``"loss"``, ``"chain rule"``, ``"forward"``,
    ``"partial derivative"``, ``"kronecker deltas"``, ``"delta elimination"``,
    ``"guards"``, ``"reindex"``, ``"result"``. ``lhs`` and ``rhs`` are SymPy
    expressions (the equation ``lhs = rhs``), ``text`` a sentence saying what was done,
    ``label`` the seed's equation name where one applies (``"Eq. E"``, ``"(2)"``).
    """

    kind: str
    text: str
    lhs: sp.Expr
    rhs: sp.Expr
    label: str = ""


@dataclass(frozen=True)
class Derivation:
    """The derived gradient ``d<wrt>[index] = gradient`` and the steps to it.

    ``index`` are the free index symbols (empty for a 0-d input), ``gradient`` the
    scalar guarded index sum, valid for ``index`` inside the input's shape.
    """

    layer: str
    wrt: str
    index: tuple[sp.Symbol, ...]
    gradient: sp.Expr
    steps: tuple[Step, ...]
