"""Derivatives of element expressions for the claim language's ``diff(E, x[a, b])``.

The claim parser (``core.parse``) sits below differentiation; this module gives it a
:class:`~symderive.core.parse.Calculus` built from a layer: differentiation of an index-level
expression by one element of an input or intermediate (every path from it, its own inputs
held fixed), the loss ``sum(g * y)`` of a non-final layer, and the layer's scope rebuilt with
an intermediate as a leaf.
"""

from __future__ import annotations

import sympy as sp

from ..core.ir import Iverson, Tensor, in_range, leaf, size_sum
from ..core.parse import Calculus
from ..errors import InputError
from .derive import NotDifferentiable, diff_read, eliminate_deltas, piecewise_to_iverson


def differentiate(expr: sp.Expr, name: str, at: tuple, shape: tuple, back=None) -> sp.Expr:
    """d expr / d name[at]: 0 where ``at`` is outside ``shape`` (that element does not exist),
    the deltas summed out; reads of ``name`` left in the result are put back by ``back``.

    >>> from symderive.core.ir import index_symbol, read, size_symbol
    >>> i, p, n = index_symbol("i"), index_symbol("p"), size_symbol("n")
    >>> differentiate(read("x", (i,)) ** 2, "x", (p,), (n,))
    2*Iverson((p >= 0) & (p < n))*KroneckerDelta(i, p)*x[i]
    """
    try:
        raw = diff_read(sp.sympify(expr), name, tuple(at))
    except NotDifferentiable as exc:
        # diff(f_prime_prime(x[i]), x[i]): a derivative with no name is the user's to avoid
        raise InputError(f"diff: {exc}") from None
    if raw == 0:
        return sp.S.Zero
    out = eliminate_deltas(piecewise_to_iverson(raw))
    guard = in_range(tuple(at), tuple(shape)) if at else sp.true
    if guard != sp.true:
        out = Iverson(guard) * out
    return back(out) if back is not None else out


def layer_calculus(layer) -> Calculus:
    """The :class:`Calculus` of a layer: ``diff`` by its inputs and intermediates, ``L`` its loss.

    >>> from symderive.model.layer import as_layer
    >>> c = layer_calculus(as_layer("linear"))
    >>> c.scope_with_leaf("w", as_layer("linear").scope())["y"].shape
    (m,)
    """

    def scope_with_leaf(name: str, scope: dict):
        if name in layer.inputs or (name == "g" and not layer.is_loss):
            return scope
        if name in getattr(layer, "intermediate_names", ()):
            return {**scope, **layer.scope_with_leaf(name)}
        if name == layer.output and not layer.is_loss:
            # the output as a leaf (d f(y[i]) / d y[i]): nothing of the layer depends on it
            return {**scope, name: leaf(name, scope[name].shape)}
        return None

    def forward_of(name: str, scope: dict):
        if name in layer.inputs or name == "g":
            return None
        tensor = scope[name]

        def back(expr):
            return expr.replace(
                lambda e: isinstance(e, sp.Indexed) and str(e.base.label) == name,
                lambda e: tensor.at(e.indices),
            ).xreplace({sp.Symbol(name, real=True): tensor.at(())} if not tensor.shape else {})

        return back

    def loss(scope: dict):
        if layer.is_loss or "g" not in scope:
            return None
        y, g = scope[layer.output], scope["g"]
        product = Tensor(shape=y.shape, element=lambda idx: g.at(idx) * y.at(idx), zero_outside=True)
        return size_sum(product, "i")

    return Calculus(differentiate, scope_with_leaf, forward_of, loss)


__all__ = ["differentiate", "layer_calculus"]
