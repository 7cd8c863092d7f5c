"""Layers: load and validate a layer file (or a built-in name) into a :class:`Layer`.

A layer is data (LANGUAGE.md, "Layers"): inputs with symbolic shapes, one output in
closed or index form, assumptions, constants and known claims. Built-in layers are TOML
files in ``symderive/layers/`` and load exactly like a user's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .ir import Tensor, leaf
from .tree import Node


@dataclass(frozen=True)
class KnownClaim:
    """A ``[[claims]]`` entry of a layer file.

    >>> KnownClaim("x", "convolve(g, w, 'full')").expect
    'proved'
    """

    wrt: str
    claim: str
    assume: tuple[str, ...] = ()
    expect: str = "proved"


@dataclass(frozen=True)
class Assumption:
    """One parsed assumption.

    ``kind`` is ``"size"`` (``cond`` a SymPy relation over sizes, congruences through
    ``Mod``), ``"equal"`` (``lhs == rhs`` elementwise, both trees over the layer's
    tensors, e.g. ``sum(t) == 1``) or ``"sign"`` (``lhs`` rel ``rhs`` elementwise, e.g.
    ``x > 0``; ``rel`` is the operator text). ``text`` is the user's spelling.
    """

    text: str
    kind: str
    cond: sp.Basic = sp.true
    lhs: Node | None = None
    rhs: Node | None = None
    rel: str = ""


@dataclass(frozen=True)
class Layer:
    """A validated layer.

    ``sizes`` are the size symbols in declaration order (as they first appear in
    ``inputs``, then in ``shape``); ``inputs`` maps each input name to its shape (a
    tuple of SymPy integer expressions over sizes); ``output`` is the output's name
    (``"L"`` makes a loss layer); ``forward`` is the output's index-level tensor and
    ``forward_tree`` its closed form (None for an index-form output, whose scalar
    element is ``forward_index`` at the free indices ``output_indices``).
    """

    name: str
    description: str
    sizes: tuple[sp.Symbol, ...]
    inputs: dict[str, tuple[sp.Expr, ...]]
    output: str
    forward: Tensor
    assumptions: tuple[Assumption, ...] = ()
    constants: tuple[str, ...] = ()
    claims: tuple[KnownClaim, ...] = ()
    forward_tree: Node | None = None
    forward_index: sp.Expr | None = None
    output_indices: tuple[sp.Symbol, ...] = ()
    source: str = ""
    forward_text: str = ""
    extras: dict = field(default_factory=dict, compare=False)

    @property
    def is_loss(self) -> bool:
        """Whether the output is a scalar loss ``L`` (no upstream gradient ``g``)."""
        return self.output == "L"

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The inputs that gradients are taken with respect to (not constants)."""
        return tuple(n for n in self.inputs if n not in self.constants)

    def input_tensor(self, name: str) -> Tensor:
        """The leaf tensor of one input."""
        return leaf(name, self.inputs[name])

    def upstream(self) -> Tensor:
        """``g``, the upstream gradient dL/dy, of the output's shape (non-final layers)."""
        return leaf("g", self.forward.shape)

    def scope(self) -> dict[str, Tensor]:
        """The names a claim may use, as tensors: inputs, ``g`` and the output."""
        out = {n: self.input_tensor(n) for n in self.inputs}
        if not self.is_loss:
            out["g"] = self.upstream()
        out[self.output] = self.forward
        return out

    def size_assumptions(self) -> list[sp.Basic]:
        """The conditions on sizes: every size >= 1, and the layer's size assumptions."""
        conds = [sp.Ge(s, 1) for s in self.sizes]
        conds += [a.cond for a in self.assumptions if a.kind == "size"]
        return conds
