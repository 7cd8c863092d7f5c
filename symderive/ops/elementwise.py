"""Elementwise operators with NumPy broadcasting: arithmetic, comparisons, functions.

The shared pieces here (:func:`broadcast_shapes`, :func:`broadcast_index`,
:func:`elementwise_tensor`) are used by every operator that broadcasts.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ..ir import Shape, Tensor


def broadcast_pair(a: sp.Expr, b: sp.Expr) -> tuple[sp.Expr, sp.Boolean]:
    """The broadcast of two dimensions and the condition under which NumPy accepts it.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> broadcast_pair(n, sp.Integer(1))
    (n, True)
    """
    a, b = sp.sympify(a), sp.sympify(b)
    if a == b:
        return a, sp.true
    if a == 1:
        return b, sp.true
    if b == 1:
        return a, sp.true
    if a.is_Integer and b.is_Integer:
        return sp.Max(a, b), sp.false
    return sp.Max(a, b), sp.Or(sp.Eq(a, b), sp.Eq(a, 1), sp.Eq(b, 1))


def broadcast_shapes(*shapes: Shape) -> tuple[Shape, sp.Boolean]:
    """NumPy's broadcast of several symbolic shapes, with its validity condition.

    >>> n, m = sp.symbols("n m", integer=True, positive=True)
    >>> broadcast_shapes((n, 1), (m,))
    ((n, m), True)
    """
    rank = max((len(s) for s in shapes), default=0)
    out: list[sp.Expr] = [sp.S.One] * rank
    valid: list[sp.Boolean] = []
    for s in shapes:
        padded = (sp.S.One,) * (rank - len(s)) + tuple(sp.sympify(d) for d in s)
        for k, d in enumerate(padded):
            out[k], ok = broadcast_pair(out[k], d)
            valid.append(ok)
    return tuple(out), sp.And(*valid)


def broadcast_index(idx: tuple, shape_in: Shape, shape_out: Shape) -> tuple:
    """The index into an operand of shape ``shape_in`` for output index ``idx``.

    >>> i, j = sp.symbols("i j", integer=True)
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> broadcast_index((i, j), (1, n), (n, n))
    (0, j)
    """
    lead = len(shape_out) - len(shape_in)
    out = []
    for d_in, d_out, i in zip(shape_in, shape_out[lead:], idx[lead:], strict=True):
        d_in = sp.sympify(d_in)
        if d_in == 1:
            out.append(sp.S.Zero)
        elif d_in == d_out:
            out.append(i)
        else:
            out.append(sp.Piecewise((sp.S.Zero, sp.Eq(d_in, 1)), (i, True)))
    return tuple(out)


def elementwise_tensor(fn: Callable[..., sp.Expr], *args: Tensor, zero_preserving: bool = False) -> Tensor:
    """The tensor ``fn(a[idx], b[idx], ...)`` over the broadcast of the arguments.

    ``zero_preserving`` says that ``fn`` is 0 whenever every argument is (so the
    result needs no range guard when its arguments need none).

    >>> from ..ir import leaf
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> i = sp.Symbol("i", integer=True)
    >>> elementwise_tensor(sp.exp, leaf("x", (n,))).at((i,))
    exp(x[i])*Iverson((i >= 0) & (i < n))
    """
    shape, valid = broadcast_shapes(*(a.shape for a in args))

    def element(idx):
        return fn(*(a.at(broadcast_index(idx, a.shape, shape)) for a in args))

    same_shapes = all(a.shape == shape for a in args)
    zero_outside = zero_preserving and same_shapes and all(a.zero_outside for a in args)
    return Tensor(shape=shape, element=element, zero_outside=zero_outside, valid=sp.And(valid, *(a.valid for a in args)))


# -- the table ------------------------------------------------------------------------
from . import Operator, Param, register  # noqa: E402


def _unary_shape(x):
    return tuple(x), sp.true


def unary(name: str, fn: Callable[[sp.Expr], sp.Expr], numpy: str, latex: str, zero_preserving: bool, family: str = "numpy") -> Operator:
    """Register an elementwise function of one array (``exp``, ``tanh`` ...).

    ``numpy`` is the NumPy function's dotted name, ``latex`` a format with ``{x}``.

    >>> OPERATORS_EXAMPLE = unary.__name__
    """
    return register(
        Operator(
            name=name,
            family=family,
            params=(Param("x", "tensor", required=True),),
            definition=lambda x: elementwise_tensor(fn, x, zero_preserving=zero_preserving),
            shape_rule=_unary_shape,
            to_numpy=lambda x: f"{numpy}({x})",
            to_latex=lambda x: latex.format(x=x),
            algebra="elementwise",
        )
    )


unary("exp", sp.exp, "np.exp", r"\exp\left({x}\right)", zero_preserving=False)
