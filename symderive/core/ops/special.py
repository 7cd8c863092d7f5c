"""``scipy.special``'s normalisers: ``softmax``, ``log_softmax``, ``logsumexp``, ``expit``.

Index definitions are the plain mathematical forms (``exp(x_k) / sum_j exp(x_j)``), which
the prover can rewrite; the NumPy lowerings subtract the maximum first (numerically
stable), through the registered helpers below. ``axis=None`` normalises over all
elements, as SciPy does. ``sigmoid`` is the bare name of ``expit``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ...errors import InputError
from ..ir import Tensor, gsum
from .elementwise import elementwise_tensor, normalize_axes, option_code, option_latex
from .reduce import Reduction, _bool, reduced_shape
from .table import Operator, Param, numpy_helper, register


def _floating(x):
    x = np.asarray(x)
    # float32 stays float32; integers and booleans compute in float64
    return x if x.dtype.kind == "f" else x.astype(float)


def _softmax(x, axis=None):
    return _normalised(_softmax_block, x, axis)


def _softmax_block(x, axis, out=None):
    # one buffer, reused in place: shift by the maximum, exponentiate, normalise (asarray: a 0-d
    # difference is a NumPy scalar, which cannot be written in place); methods, not np.max/np.sum,
    # whose Python wrappers cost microseconds on small arrays; a multiply by the reciprocal of the
    # total, not a divide, which costs several times as much per element; over all elements the
    # max and total are NumPy scalars (keepdims arrays cost microseconds more on small arrays)
    keep = axis is not None
    e = np.asarray(np.subtract(x, x.max(axis=axis, keepdims=keep), out=out))
    np.exp(e, out=e)
    e *= 1 / e.sum(axis=axis, keepdims=keep)
    return e


def _log_softmax(x, axis=None):
    return _normalised(_log_softmax_block, x, axis)


def _log_softmax_block(x, axis, out=None):
    keep = axis is not None
    shift = x.max(axis=axis, keepdims=keep)
    e = np.asarray(np.subtract(x, shift, out=out))
    np.exp(e, out=e)
    # x - (max + log sum exp(x - max)): one pass over x, into the buffer the exponentials used
    shift = shift + np.log(e.sum(axis=axis, keepdims=keep))
    return np.subtract(x, shift, out=e)


def _row_blocks(x, axis):
    """Slices of x's first axis, each about 32Ki elements, or None when x is one block.

    Normalising along other axes treats blocks of rows independently; a block's passes (max,
    shift, exp, sum, scale) then run in the L2 cache instead of streaming the array five times.
    """
    if axis is None or x.ndim < 2 or x.size < 65536:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    if any(a % x.ndim == 0 for a in axes):
        return None
    rows = max(1, 32768 * x.shape[0] // x.size)
    return [slice(a, a + rows) for a in range(0, x.shape[0], rows)]


def _normalised(normalise, x, axis):
    # the whole array at once, or (large arrays normalised along a later axis) in row blocks
    x = _floating(x)
    blocks = _row_blocks(x, axis)
    if blocks is None:
        return normalise(x, axis)
    return _in_row_blocks(normalise, x, axis, blocks)


def _in_row_blocks(normalise, x, axis, blocks):
    out = np.empty(x.shape, x.dtype)
    # NumPy's ufunc buffer, when longer than a row, makes a broadcast per-row operand (the max,
    # the total) be copied row by row: 3x slower; a buffer shorter than a row avoids the copies
    saved = np.getbufsize()
    row = x.shape[-1]
    np.setbufsize(row - row % 16 if 16 <= row < saved else saved)
    try:
        for rows in blocks:
            normalise(x[rows], axis, out[rows])
    finally:
        np.setbufsize(saved)
    return out


def _logsumexp(a, axis=None, keepdims=False):
    a = _floating(a)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)


def _expit(x):
    x = _floating(x)
    e = np.exp(-np.abs(x))
    d = 1 + e
    return np.where(x >= 0, 1 / d, e / d)


for _fn in (
    _floating,
    _softmax,
    _softmax_block,
    _log_softmax,
    _log_softmax_block,
    _row_blocks,
    _normalised,
    _in_row_blocks,
    _logsumexp,
    _expit,
):
    numpy_helper(_fn.__name__, _fn)


def exp_total(x: Tensor, red: Reduction, idx) -> sp.Expr:
    """``sum_j exp(x_j)`` over the reduced axes at input index ``idx`` (for the kept axes).

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> x = leaf("x", (size_symbol("n"),))
    >>> exp_total(x, Reduction(x.shape, (0,), False), ()).func.__name__
    'GSum'
    """
    full, limits = red.full(idx)
    return gsum(sp.exp(x.element(full)), *limits)


def _kept(idx, axes, keepdims=False):
    # the output index of the reduction for an input index: drop (or zero) reduced axes
    return tuple(sp.S.Zero if d in axes else i for d, i in enumerate(idx) if keepdims or d not in axes)


def _normaliser(name, value, latex):
    def definition(x, axis=None):
        axes = normalize_axes(axis, x.ndim, name)
        red = Reduction(x.shape, axes, False)
        return Tensor(
            shape=x.shape,
            element=lambda idx: value(x.element(idx), exp_total(x, red, _kept(idx, axes))),
            valid=x.valid,
        )

    def shape_rule(x, axis=None):
        normalize_axes(axis, len(x), name)
        return tuple(x), sp.true

    register(
        Operator(
            name=name,
            family="scipy.special",
            params=(Param("x", "tensor", required=True), Param("axis", "axis")),
            definition=definition,
            shape_rule=shape_rule,
            to_numpy=lambda x, axis=None: f"_{name}({x}, axis={option_code(axis)})",
            to_latex=lambda x, axis=None: r"{}{}\left({}\right)".format(
                latex, "" if axis is None else f"_{{{option_latex(axis)}}}", x
            ),
            numpy_helpers=("_floating", f"_{name}", f"_{name}_block", "_row_blocks", "_normalised", "_in_row_blocks"),
            fresh_array=True,
        )
    )


_normaliser("softmax", lambda v, total: sp.exp(v) / total, r"\mathrm{softmax}")
_normaliser("log_softmax", lambda v, total: v - sp.log(total), r"\log\mathrm{softmax}")


def _logsumexp_checked(a, b, return_sign, keepdims):
    if b is not None:
        raise InputError("logsumexp: the b= argument is not supported")
    if _bool(return_sign, "logsumexp", "return_sign"):
        raise InputError("logsumexp: return_sign=True is not supported")
    return _bool(keepdims, "logsumexp", "keepdims")


def logsumexp_tensor(a: Tensor, axis=None, b=None, keepdims=False, return_sign=False) -> Tensor:
    """``scipy.special.logsumexp(a, axis, keepdims=keepdims)`` as ``log(sum exp(a))``.

    >>> from ..ir import leaf, size_symbol
    >>> logsumexp_tensor(leaf("s", (size_symbol("n"),))).shape
    ()
    """
    keepdims = _logsumexp_checked(a, b, return_sign, keepdims)
    axes = normalize_axes(axis, a.ndim, "logsumexp")
    red = Reduction(a.shape, axes, keepdims)
    return Tensor(
        shape=reduced_shape(a.shape, axes, keepdims),
        element=lambda idx: sp.log(exp_total(a, red, idx)),
        valid=a.valid,
    )


def _logsumexp_shape(a, axis=None, b=None, keepdims=False, return_sign=False):
    keepdims = _logsumexp_checked(a, b, return_sign, keepdims)
    return reduced_shape(a, normalize_axes(axis, len(a), "logsumexp"), keepdims), sp.true


register(
    Operator(
        name="logsumexp",
        family="scipy.special",
        params=(
            Param("a", "tensor", required=True),
            Param("axis", "axis"),
            Param("b", "tensor"),
            Param("keepdims", "bool", default=False),
            Param("return_sign", "bool", default=False),
        ),
        definition=logsumexp_tensor,
        shape_rule=_logsumexp_shape,
        to_numpy=lambda a, axis=None, b=None, keepdims=False, return_sign=False: (
            f"_logsumexp({a}, axis={option_code(axis)}, keepdims={bool(keepdims)})"
        ),
        to_latex=lambda a, axis=None, b=None, keepdims=False, return_sign=False: (
            r"\log\sum{}\exp\left({}\right)".format("" if axis is None else f"_{{{option_latex(axis)}}}", a)
        ),
        numpy_helpers=("_floating", "_logsumexp"),
    )
)


def expit_of(x):
    """The logistic function ``1 / (1 + exp(-x))``.

    >>> expit_of(sp.Integer(0))
    1/2
    """
    return 1 / (1 + sp.exp(-x))


for _name, _family in (("expit", "scipy.special"), ("sigmoid", "sympy")):
    register(
        Operator(
            name=_name,
            family=_family,
            params=(Param("x", "tensor", required=True),),
            definition=lambda x: elementwise_tensor(expit_of, x),
            shape_rule=lambda x: (tuple(x), sp.true),
            to_numpy=lambda x: f"_expit({x})",
            to_latex=lambda x: rf"\sigma\left({x}\right)",
            numpy_helpers=("_floating", "_expit"),
            algebra="elementwise",
            meaning="1 / (1 + exp(-x)), scipy.special.expit" if _name == "sigmoid" else "",
        )
    )
