"""NumPy's reductions: ``sum``, ``mean``, ``var``, ``std``, ``max``/``amax``, ``min``/``amin``.

``axis`` is None (every axis), an int or a tuple of ints, negative counting from the
end; ``keepdims`` keeps reduced axes with length 1. Sums are :class:`~symderive.ir.GSum`
over fresh summation variables; a maximum is :class:`ReduceMax`, whose derivative splits
the gradient evenly among tied elements, as ``torch.amax`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits

from ...errors import InputError
from ..ir import GSum, Iverson, Tensor, dummy_index, gsum
from .elementwise import normalize_axes, option_code, option_latex
from .table import Operator, Param, register


class ReduceMax(ExprWithLimits):
    """The maximum of ``body`` over inclusive integer ranges (every range non-empty).

    Its derivative is the mean of the derivatives at the maximising points (torch's rule).

    >>> k = sp.Dummy("k", integer=True)
    >>> x = sp.IndexedBase("x")
    >>> ReduceMax(x[k], (k, 0, 2)).function
    x[_k]
    """

    pick = staticmethod(max)
    symbol = r"\max"

    def _eval_is_real(self):
        return self.function.is_real

    def _eval_derivative(self, s):
        body = self.function
        ties = Iverson(sp.Eq(body, self.renamed()))
        return GSum(ties * sp.diff(body, s), *self.limits) / GSum(ties, *self.limits)

    def renamed(self):
        """The same reduction over fresh bound variables (so it can sit inside a sum over the old ones)."""
        fresh = {v: sp.Dummy(str(v), integer=True) for v, _, _ in self.limits}
        limits = [(fresh[v], lo, hi) for v, lo, hi in self.limits]
        return self.func(self.function.xreplace(fresh), *limits)

    def _latex(self, printer):
        under = ", ".join(printer._print(v) for v, _, _ in self.limits)
        return rf"{self.symbol}_{{{under}}} {printer._print(self.function)}"


class ReduceMin(ReduceMax):
    """The minimum of ``body`` over inclusive integer ranges (see :class:`ReduceMax`).

    >>> k = sp.Dummy("k", integer=True)
    >>> ReduceMin(sp.IndexedBase("x")[k], (k, 0, 2)).func.__name__
    'ReduceMin'
    """

    pick = staticmethod(min)
    symbol = r"\min"


def reduced_shape(shape, axes: tuple[int, ...], keepdims: bool) -> tuple:
    """The shape after reducing ``axes``.

    >>> n, m = sp.symbols("n m")
    >>> reduced_shape((n, m), (0,), False), reduced_shape((n, m), (0,), True)
    ((m,), (1, m))
    """
    if keepdims:
        return tuple(sp.S.One if d in axes else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in axes)


def _bool(value, op: str, param: str) -> bool:
    if value in (True, False, sp.true, sp.false):
        return bool(value)
    raise InputError(f"{op}: {param}={value!r} must be True or False")


def _no_extras(op: str, **extras) -> None:
    for name, value in extras.items():
        if value is not None:
            raise InputError(f"{op}: the {name}= argument is not supported")


class Reduction:
    """The summation variables of one reduction: ``full(idx)`` maps an output index to an input index.

    >>> n, m = sp.symbols("n m", integer=True, positive=True)
    >>> r = Reduction((n, m), (1,), False)
    >>> r.count
    m
    """

    def __init__(self, shape, axes, keepdims):
        self.shape, self.axes, self.keepdims = tuple(shape), axes, keepdims
        self.count = sp.Mul(*(shape[d] for d in axes))

    def full(self, idx, hint: str = "k") -> tuple[tuple, list]:
        """The input index for output ``idx`` and the limits of its summation variables."""
        it = iter(idx)
        out, limits = [], []
        for d, n in enumerate(self.shape):
            if d in self.axes:
                if self.keepdims:
                    next(it)
                k = dummy_index(hint)
                out.append(k)
                limits.append((k, 0, n - 1))
            else:
                out.append(next(it))
        return tuple(out), limits


def reduction_tensor(
    a: Tensor, axis, keepdims, op: str, value: Callable[[Tensor, Reduction, tuple], sp.Expr], valid=sp.true
):
    """A reduction over ``axis`` whose element is ``value(a, reduction, out_idx)``."""
    axes = normalize_axes(axis, a.ndim, op)
    keepdims = _bool(keepdims, op, "keepdims")
    red = Reduction(a.shape, axes, keepdims)
    return Tensor(
        shape=reduced_shape(a.shape, axes, keepdims),
        element=lambda idx: value(a, red, idx),
        valid=sp.And(a.valid, valid),
    )


def total(a: Tensor, red: Reduction, idx) -> sp.Expr:
    """The sum of the reduced elements at output ``idx``."""
    full, limits = red.full(idx)
    return gsum(a.element(full), *limits)


def _variance(a: Tensor, red: Reduction, idx, ddof) -> sp.Expr:
    mean = total(a, red, idx) / red.count
    full, limits = red.full(idx)
    return gsum((a.element(full) - mean) ** 2, *limits) / (red.count - ddof)


def _extreme(kind):
    def value(a: Tensor, red: Reduction, idx) -> sp.Expr:
        full, limits = red.full(idx)
        return kind(a.element(full), *limits) if limits else a.element(full)

    return value


def _shape_rule(op):
    def rule(a, axis=None, keepdims=False, **_):
        axes = normalize_axes(axis, len(a), op)
        return reduced_shape(a, axes, _bool(keepdims, op, "keepdims")), sp.true

    return rule


def _options_code(axis, keepdims, **more) -> str:
    parts = [f"axis={option_code(axis)}"]
    parts += [f"{k}={option_code(v)}" for k, v in more.items()]
    if keepdims:
        parts.append("keepdims=True")
    return ", ".join(parts)


def _latex_under(axis) -> str:
    return "" if axis is None else f"_{{{option_latex(axis)}}}"


def _register_sum_like(name, value, latex, params_extra=(), valid=None, algebra="linear", **facts):
    def definition(a, axis=None, dtype=None, out=None, keepdims=False, **options):
        _no_extras(name, dtype=dtype, out=out)
        v = valid(a, axis, **options) if valid else sp.true
        return reduction_tensor(a, axis, keepdims, name, lambda t, r, i: value(t, r, i, **options), v)

    def to_numpy(a, axis=None, dtype=None, out=None, keepdims=False, **options):
        # np.sum is np.add.reduce behind a Python wrapper costing ~3 us a call, more than the sum of
        # a thousand elements; the axis is always given (add.reduce's default is 0, np.sum's None)
        function = "np.add.reduce" if name == "sum" else f"np.{name}"
        return f"{function}({a}, {_options_code(axis, keepdims, **options)})"

    register(
        Operator(
            name=name,
            family="numpy",
            params=(
                Param("a", "tensor", required=True),
                Param("axis", "axis"),
                Param("dtype", "str"),
                Param("out", "tensor"),
                *params_extra,
                Param("keepdims", "bool", default=False),
            ),
            definition=definition,
            shape_rule=_shape_rule(name),
            to_numpy=to_numpy,
            to_latex=lambda a, axis=None, keepdims=False, **_: latex % (_latex_under(axis), a),
            algebra=algebra,
            **facts,
        )
    )


def _variance_valid(a, axis, ddof=0):
    # NumPy returns nan (with a warning) when no degrees of freedom are left
    axes = normalize_axes(axis, a.ndim, "var")
    return sp.Gt(sp.Mul(*(a.shape[d] for d in axes)) - ddof, 0)


_register_sum_like("sum", lambda a, r, i: total(a, r, i), r"\sum%s %s", booleans_as_numbers=True)
_register_sum_like(
    "mean", lambda a, r, i: total(a, r, i) / r.count, r"\operatorname{mean}%s %s", booleans_as_numbers=True
)
_register_sum_like(
    "var",
    lambda a, r, i, ddof=0: _variance(a, r, i, sp.sympify(ddof)),
    r"\operatorname{var}%s %s",
    params_extra=(Param("ddof", "number", default=0),),
    valid=_variance_valid,
    algebra="",
)


_register_sum_like(
    "std",
    lambda a, r, i, ddof=0: sp.sqrt(_variance(a, r, i, sp.sympify(ddof))),
    r"\operatorname{std}%s %s",
    params_extra=(Param("ddof", "number", default=0),),
    valid=_variance_valid,
    algebra="",
)


def _register_extreme(name, kind, numpy_name, latex):
    def definition(a, axis=None, out=None, keepdims=False):
        _no_extras(name, out=out)
        return reduction_tensor(a, axis, keepdims, name, _extreme(kind))

    register(
        Operator(
            name=name,
            family="numpy",
            params=(
                Param("a", "tensor", required=True),
                Param("axis", "axis"),
                Param("out", "tensor"),
                Param("keepdims", "bool", default=False),
            ),
            definition=definition,
            shape_rule=_shape_rule(name),
            to_numpy=lambda a, axis=None, out=None, keepdims=False: (
                f"np.{numpy_name}({a}, {_options_code(axis, keepdims)})"
            ),
            to_latex=lambda a, axis=None, out=None, keepdims=False: rf"{latex}{_latex_under(axis)} {a}",
            booleans_as_numbers=True,
        )
    )


_register_extreme("max", ReduceMax, "max", r"\max")
_register_extreme("amax", ReduceMax, "amax", r"\max")
_register_extreme("min", ReduceMin, "min", r"\min")
_register_extreme("amin", ReduceMin, "amin", r"\min")
