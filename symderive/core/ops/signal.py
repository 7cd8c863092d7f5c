"""Operators of ``scipy.signal``: ``correlate``, ``convolve``, ``correlate2d``, ``convolve2d``.

Every mode is a window onto the *full* correlation

    full[k] = sum_l in1[l + k - (n2 - 1)] * in2[l],    0 <= k <= n1 + n2 - 2,

(a convolution is the correlation with ``in2`` flipped): ``out[k] = full[k + start]``
with ``start = 0`` ("full"), ``floor((n2 - 1) / 2)`` ("same"; ``correlate2d`` uses
``floor(n2 / 2)``) or ``min(n1, n2) - 1`` ("valid", where SciPy swaps the inputs when
``in2`` is the larger one). With symbolic sizes the "valid" minimum is a ``Piecewise``
on which operand is at least as large in every dimension.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from ...errors import InputError
from ..ir import Shape, Tensor, dummy_index, gsum
from .table import Operator, Param, numpy_helper, refuse, register

MODES = ("full", "valid", "same")
METHODS = ("auto", "direct", "fft")

#: how "same" picks its window: scipy.signal.correlate/convolve/convolve2d centre on
#: floor((n2 - 1) / 2), correlate2d (SciPy's 2-D C code, unflipped) on floor(n2 / 2)
SAME_CENTRE = {"correlate": "signal", "convolve": "signal", "correlate2d": "2d", "convolve2d": "signal"}


# -- sizes and windows -------------------------------------------------------------------
def first_at_least_second(shape1: Shape, shape2: Shape) -> sp.Boolean:
    """The condition that ``shape1`` is at least ``shape2`` in every dimension.

    >>> n, k = sp.symbols("n k", integer=True, positive=True)
    >>> first_at_least_second((n,), (k,))
    n >= k
    """
    return _first_at_least_second(tuple(shape1), tuple(shape2))


# Cached: a pure function of SymPy sizes (hashable); each relation built asks SymPy's assumptions.
@functools.lru_cache(maxsize=1024)
def _first_at_least_second(shape1: tuple, shape2: tuple) -> sp.Boolean:
    return sp.And(*(sp.Ge(a, b) for a, b in zip(shape1, shape2, strict=True)))


def _check_mode(op: str, mode) -> str:
    if mode not in MODES:
        raise InputError(f"{op}: mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
    return mode


def _check_ranks(op: str, shape1: Shape, shape2: Shape, rank: int | None) -> None:
    if len(shape1) != len(shape2):
        raise InputError(
            f"{op}: in1 and in2 must have the same number of dimensions, got {len(shape1)} and {len(shape2)}"
        )
    if rank is not None and len(shape1) != rank:
        raise InputError(f"{op}: in1 and in2 must be {rank}-D arrays, got {len(shape1)}-D")


def same_start(n2: sp.Expr, centre: str) -> sp.Expr:
    """Where the "same" window starts inside the full output along one dimension.

    >>> k = sp.Symbol("k", integer=True, positive=True)
    >>> same_start(k, "signal"), same_start(k, "2d")
    (floor(k/2 - 1/2), floor(k/2))
    """
    return sp.floor((n2 - 1) / sp.Integer(2)) if centre == "signal" else sp.floor(n2 / sp.Integer(2))


def window_shape(shape1: Shape, shape2: Shape, mode: str) -> tuple[Shape, sp.Boolean]:
    """The output shape of a mode and the condition under which SciPy accepts it.

    >>> n, k = sp.symbols("n k", integer=True, positive=True)
    >>> window_shape((n,), (k,), "full")
    ((k + n - 1,), True)
    """
    if mode == "full":
        return tuple(a + b - 1 for a, b in zip(shape1, shape2, strict=True)), sp.true
    if mode == "same":
        return tuple(shape1), sp.true
    first_larger = first_at_least_second(shape1, shape2)
    second_larger = first_at_least_second(shape2, shape1)
    shape = []
    for a, b in zip(shape1, shape2, strict=True):
        if first_larger == sp.true or sp.Ge(a, b) == sp.true:
            shape.append(a - b + 1)
        elif second_larger == sp.true:
            shape.append(b - a + 1)
        else:
            shape.append(sp.Piecewise((a - b + 1, first_larger), (b - a + 1, True)))
    return tuple(shape), sp.Or(first_larger, second_larger)


def _window_starts(shape1: Shape, shape2: Shape, mode: str, centre: str, first_larger: bool) -> tuple:
    if mode == "full":
        return tuple(sp.S.Zero for _ in shape1)
    if mode == "same":
        return tuple(same_start(b, centre) for b in shape2)
    return tuple((b if first_larger else a) - 1 for a, b in zip(shape1, shape2, strict=True))


def full_correlation_element(in1: Tensor, in2: Tensor, k: tuple, flip: bool) -> sp.Expr:
    """``full[k]`` of the correlation of ``in1`` with ``in2`` (with ``in2`` flipped: convolution).

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> n, m, i = size_symbol("n"), size_symbol("m"), index_symbol("i")
    >>> full_correlation_element(leaf("x", (n,)), leaf("w", (m,)), (i,), flip=True).func.__name__
    'GSum'
    """
    ls = tuple(dummy_index("l") for _ in in2.shape)
    reads1 = tuple(ki + li - (n2 - 1) for ki, li, n2 in zip(k, ls, in2.shape, strict=True))
    reads2 = tuple((n2 - 1 - li) if flip else li for li, n2 in zip(ls, in2.shape, strict=True))
    limits = [(li, 0, n2 - 1) for li, n2 in zip(ls, in2.shape, strict=True)]
    return gsum(in1.at(reads1) * in2.at(reads2), *limits)


def signal_tensor(op: str, in1: Tensor, in2: Tensor, mode: str, flip: bool, rank: int | None = None) -> Tensor:
    """The index definition of one of the four SciPy operators.

    >>> from ..ir import leaf, size_symbol
    >>> n, m = size_symbol("n"), size_symbol("m")
    >>> signal_tensor("correlate", leaf("x", (n,)), leaf("w", (m,)), "full", flip=False).shape
    (m + n - 1,)
    """
    mode = _check_mode(op, mode)
    _check_ranks(op, in1.shape, in2.shape, rank)
    valid = sp.And(in1.valid, in2.valid)
    if not in1.shape:
        return Tensor(shape=(), element=lambda idx: in1.at(()) * in2.at(()), zero_outside=True, valid=valid)
    shape, ok = window_shape(in1.shape, in2.shape, mode)
    centre = SAME_CENTRE[op]

    def at_start(idx, first_larger):
        starts = _window_starts(in1.shape, in2.shape, mode, centre, first_larger)
        return full_correlation_element(in1, in2, tuple(i + s for i, s in zip(idx, starts, strict=True)), flip)

    def element(idx):
        if mode != "valid":
            return at_start(idx, True)
        first_larger = first_at_least_second(in1.shape, in2.shape)
        if first_larger == sp.true:
            return at_start(idx, True)
        if first_at_least_second(in2.shape, in1.shape) == sp.true:
            return at_start(idx, False)
        return sp.Piecewise((at_start(idx, True), first_larger), (at_start(idx, False), True))

    return Tensor(shape=shape, element=element, zero_outside=False, valid=sp.And(valid, ok))


# -- NumPy lowering (helpers emitted verbatim: only ``np`` in scope) ------------------------
def _sd_fast_len(n):
    """The smallest 5-smooth integer >= n (a fast FFT length)."""
    best = 1
    while best < n:
        best *= 2
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _sd_result_dtype(*arrays):
    """The floating dtype scipy.signal/torch give for these inputs: float32 stays float32, ints become float64."""
    return np.result_type(*(x.dtype if isinstance(x, np.ndarray) else np.asarray(x).dtype for x in arrays), np.float32)


def _sd_size(shape):
    """The number of elements of a shape (a plain loop: cheaper than np.prod on small tuples)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _sd_valid_kernel_loop(region, b, out_shape):
    """Valid correlation of region with a small b: accumulate b[l] * shifted slices, in cache-sized row blocks."""
    out = np.empty(out_shape, dtype=region.dtype)
    block = max(1, (1 << 17) // max(_sd_size(out_shape[1:]) * region.itemsize, 1))
    tmp = np.empty((min(block, out_shape[0]),) + tuple(out_shape[1:]), dtype=region.dtype)
    taps = [(pos, b[pos]) for pos in np.ndindex(*b.shape)]
    inner = [tuple(slice(p, p + o) for p, o in zip(pos[1:], out_shape[1:], strict=True)) for pos, _ in taps]
    for r0 in range(0, out_shape[0], block):
        r1 = min(out_shape[0], r0 + block)
        acc, scratch = out[r0:r1], tmp[: r1 - r0]
        (pos, weight), rest = taps[0], zip(taps[1:], inner[1:], strict=True)
        np.multiply(region[(slice(r0 + pos[0], r1 + pos[0]),) + inner[0]], weight, out=acc)
        for (pos, weight), sl in rest:
            np.multiply(region[(slice(r0 + pos[0], r1 + pos[0]),) + sl], weight, out=scratch)
            np.add(acc, scratch, out=acc)
    return out


def _sd_flat_strides(shape):
    """The C-order strides of shape, in elements."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * int(shape[d + 1])
    return strides


def _sd_stacked_windows(region, strides, shape, length):
    """rows[i] = flat[q(i) : q(i) + length] for i in np.ndindex(*shape), flat the C-contiguous region read flat
    and q(i) the dot of i with strides (in elements), copied in one call out of a strided view.
    """
    item = region.itemsize
    # numpy checks a view built on a buffer against the buffer's size: a wrong stride raises, never reads outside
    view = np.ndarray(tuple(shape) + (length,), region.dtype, region, 0, [s * item for s in strides] + [item])
    return view.reshape(-1, length)


def _sd_valid_flat(region, b, out_shape):
    """Valid correlation of a C-contiguous region with b as one matrix-vector product.

    Read flat, out[k] = sum_l flat[p(k) + q(l)] b[l], p and q the C-order offsets of k and l in region. The
    smaller index set is stacked: per kernel tap a copy of flat as long as the span of all outputs (each output
    row is then computed region-wide and its last columns dropped), or per output a copy as long as the kernel's
    span (b embedded in zero-padded rows of region's width).
    """
    strides = _sd_flat_strides(region.shape)
    if b.size <= _sd_size(out_shape):
        length = sum((o - 1) * s for o, s in zip(out_shape, strides, strict=True)) + 1
        rows = _sd_stacked_windows(region, strides, b.shape, length)
        full = np.empty(int(out_shape[0]) * strides[0], dtype=region.dtype)
        np.matmul(b.reshape(-1), rows, out=full[:length])
        kept = (slice(None),) + tuple(slice(0, o) for o in out_shape[1:])
        return np.ascontiguousarray(full.reshape((out_shape[0],) + region.shape[1:])[kept])
    length = sum((n - 1) * s for n, s in zip(b.shape, strides, strict=True)) + 1
    embedded = np.zeros((b.shape[0],) + region.shape[1:], dtype=region.dtype)
    embedded[tuple(slice(0, n) for n in b.shape)] = b
    rows = _sd_stacked_windows(region, strides, out_shape, length)
    return np.matmul(rows, embedded.reshape(-1)[:length]).reshape(out_shape)


def _sd_valid_output_loop(region, b, out_shape):
    """Valid correlation of a C-contiguous region with a large b and a tiny output: a dot product per output.

    In region's flat layout, out[k] = dot(flat[p(k) : p(k) + L], b embedded in rows of region's width).
    """
    strides = _sd_flat_strides(region.shape)
    flat = region.reshape(-1)
    length = sum((n - 1) * s for n, s in zip(b.shape, strides, strict=True)) + 1
    embedded = np.zeros((b.shape[0],) + region.shape[1:], dtype=region.dtype)
    embedded[tuple(slice(0, n) for n in b.shape)] = b
    kernel = embedded.reshape(-1)[:length]
    out = np.empty(out_shape, dtype=region.dtype)
    for k in np.ndindex(*out_shape):
        p = sum(q * s for q, s in zip(k, strides, strict=True))
        # numpy's own sum of products, not BLAS: a threaded BLAS dot stalls badly on a busy machine
        out[k] = np.einsum("i,i->", flat[p : p + length], kernel)
    return out


def _sd_valid_fft(region, b, out_shape):
    """Valid correlation of region with b by FFT (circular length >= region: wrap-around misses the valid part)."""
    lens = [_sd_fast_len(n) for n in region.shape]
    axes = list(range(region.ndim))
    spec = np.fft.rfftn(region, lens, axes) * np.fft.rfftn(np.flip(b), lens, axes)
    whole = np.fft.irfftn(spec, lens, axes)
    sl = tuple(slice(n - 1, n - 1 + o) for n, o in zip(b.shape, out_shape, strict=True))
    return np.ascontiguousarray(whole[sl], dtype=region.dtype)


def _sd_correlate_window(a, b, starts, shape):
    """out[k] = full[k + starts] of the correlation of a with b (arrays of one float dtype, zero outside).

    With off = starts - (n2 - 1), out[k] = sum_l a[l + k + off] b[l]: a valid correlation of the region of a
    (zero-padded) from off to off + shape + n2 - 2 with b. Out and b play symmetric roles there: small cases
    stack the smaller of the two into one matrix-vector product, larger ones loop over it; FFT where a cost
    model says it is cheaper.
    """
    out_shape = tuple(int(s) for s in shape)
    if 0 in out_shape or a.size == 0 or b.size == 0:
        return np.zeros(out_shape, dtype=a.dtype)
    region_shape, inside, target, padded = [], [], [], False
    for s, o, y, x in zip(starts, out_shape, b.shape, a.shape, strict=True):
        off = int(s) - (y - 1)  # the read a[l + k + off] at k = l = 0
        n = o + y - 1
        lo, hi = max(0, off), min(x, off + n)  # the part of a inside the region
        region_shape.append(n)
        inside.append(slice(lo, max(lo, hi)))
        target.append(slice(lo - off, lo - off + max(0, hi - lo)))
        padded = padded or off < 0 or off + n > x
    if padded:
        # np.zeros and one copy: np.pad costs several times more on small arrays
        region = np.zeros(region_shape, dtype=a.dtype)
        region[tuple(target)] = a[tuple(inside)]
    else:
        region = np.ascontiguousarray(a[tuple(inside)])
    out_size, taps, item = _sd_size(out_shape), b.size, a.itemsize
    strides = _sd_flat_strides(region_shape)
    tap_span = sum((n - 1) * s for n, s in zip(b.shape, strides, strict=True)) + 1
    out_span = sum((n - 1) * s for n, s in zip(out_shape, strides, strict=True)) + 1
    if min(taps * out_span, out_size * tap_span) * item <= 1 << 20:
        return _sd_valid_flat(region, b, out_shape)  # the stacked copies fit in cache: one BLAS call
    # rough nanoseconds on a current x86 core: a ufunc pass per element, a dot product per element, FFT per N log N
    kernel_cost = taps * (0.25 * item * out_size + 4000.0)
    output_cost = out_size * (0.08 * item * tap_span + 2000.0)
    direct_cost = min(kernel_cost, output_cost)
    fft_cost = direct_cost
    if direct_cost > 1e5:  # below ~0.1 ms the FFT's fixed costs dominate: do not even size it
        n_fft = float(_sd_size([_sd_fast_len(n) for n in region_shape]))
        fft_cost = 0.6 * item * n_fft * max(np.log2(n_fft), 1.0) + 20000.0
    if fft_cost < direct_cost:
        return _sd_valid_fft(region, b, out_shape)
    if output_cost < kernel_cost:
        return _sd_valid_output_loop(region, b, out_shape)
    return _sd_valid_kernel_loop(region, b, out_shape)


def _sd_signal(in1, in2, mode, flip, centre):
    """scipy.signal's correlate/convolve (flip=True), in any mode; centre 'signal' or '2d'."""
    dt = _sd_result_dtype(in1, in2)
    in1 = np.asarray(in1, dtype=dt)
    in2 = np.asarray(in2, dtype=dt)
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.ndim == 0:
        return in1 * in2
    kernel = np.flip(in2) if flip else in2
    n1, n2 = in1.shape, in2.shape
    if mode == "full":
        return _sd_correlate_window(in1, kernel, [0] * in1.ndim, [x + y - 1 for x, y in zip(n1, n2, strict=True)])
    if mode == "same":
        starts = [(y - 1) // 2 if centre == "signal" else y // 2 for y in n2]
        return _sd_correlate_window(in1, kernel, starts, n1)
    if all(x >= y for x, y in zip(n1, n2, strict=True)):
        return _sd_correlate_window(in1, kernel, [y - 1 for y in n2], [x - y + 1 for x, y in zip(n1, n2, strict=True)])
    if all(y >= x for x, y in zip(n1, n2, strict=True)):
        return _sd_correlate_window(in1, kernel, [x - 1 for x in n1], [y - x + 1 for x, y in zip(n1, n2, strict=True)])
    raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")


HELPERS = tuple(
    numpy_helper(fn.__name__, fn)
    for fn in (
        _sd_fast_len,
        _sd_result_dtype,
        _sd_size,
        _sd_valid_kernel_loop,
        _sd_flat_strides,
        _sd_stacked_windows,
        _sd_valid_flat,
        _sd_valid_output_loop,
        _sd_valid_fft,
        _sd_correlate_window,
        _sd_signal,
    )
)


# -- the table --------------------------------------------------------------------------
def _check_boundary(op: str, boundary, fillvalue) -> None:
    if boundary != "fill":
        raise InputError(f"{op}: only boundary='fill' is supported, not {boundary!r}")
    if fillvalue != 0:
        raise InputError(f"{op}: only fillvalue=0 is supported, not {fillvalue!r}")


def _latex(symbol: str, mode: str, in1: str, in2: str) -> str:
    return rf"\left({in1} \mathbin{{{symbol}_{{\mathrm{{{mode}}}}}}} {in2}\right)"


def _register_signal(name: str, params: tuple, definition, shape_rule, to_numpy, to_latex) -> Operator:
    """Register one of scipy.signal's correlations/convolutions: bilinear, kernel in ``in2``."""
    return register(
        Operator(
            name=name,
            family="scipy.signal",
            params=params,
            definition=definition,
            shape_rule=shape_rule,
            to_numpy=to_numpy,
            to_latex=to_latex,
            numpy_helpers=HELPERS,
            algebra="bilinear",
            kernel="in2",
        )
    )


def _register_nd(name: str, flip: bool) -> Operator:
    symbol = r"\ast" if flip else r"\star"

    def definition(in1, in2, mode="full", method="auto"):
        _check_method(name, method)
        return signal_tensor(name, in1, in2, mode, flip)

    def shape_rule(in1, in2, mode="full", method="auto"):
        _check_ranks(name, in1, in2, None)
        return window_shape(tuple(in1), tuple(in2), _check_mode(name, mode))

    def to_numpy(in1, in2, mode="full", method="auto"):
        return f"_sd_signal({in1}, {in2}, {_check_mode(name, mode)!r}, {flip}, {SAME_CENTRE[name]!r})"

    def to_latex(in1, in2, mode="full", method="auto"):
        return _latex(symbol, mode, in1, in2)

    params = (
        Param("in1", "tensor", required=True),
        Param("in2", "tensor", required=True),
        Param("mode", "str", default="full", choices=MODES),
        Param("method", "str", default="auto", choices=METHODS),
    )
    return _register_signal(name, params, definition, shape_rule, to_numpy, to_latex)


def _check_method(op: str, method) -> None:
    if method not in METHODS:
        raise InputError(f"{op}: method must be one of {', '.join(map(repr, METHODS))}, not {method!r}")


def _register_2d(name: str, flip: bool) -> Operator:
    symbol = r"\ast" if flip else r"\star"

    def definition(in1, in2, mode="full", boundary="fill", fillvalue=0):
        _check_boundary(name, boundary, fillvalue)
        return signal_tensor(name, in1, in2, mode, flip, rank=2)

    def shape_rule(in1, in2, mode="full", boundary="fill", fillvalue=0):
        _check_boundary(name, boundary, fillvalue)
        _check_ranks(name, in1, in2, 2)
        return window_shape(tuple(in1), tuple(in2), _check_mode(name, mode))

    def to_numpy(in1, in2, mode="full", boundary="fill", fillvalue=0):
        _check_boundary(name, boundary, fillvalue)
        return f"_sd_signal({in1}, {in2}, {_check_mode(name, mode)!r}, {flip}, {SAME_CENTRE[name]!r})"

    def to_latex(in1, in2, mode="full", boundary="fill", fillvalue=0):
        return _latex(symbol, mode, in1, in2)

    params = (
        Param("in1", "tensor", required=True),
        Param("in2", "tensor", required=True),
        Param("mode", "str", default="full", choices=MODES),
        Param("boundary", "str", default="fill", choices=("fill", "wrap", "symm")),
        Param("fillvalue", "number", default=0),
    )
    return _register_signal(name, params, definition, shape_rule, to_numpy, to_latex)


_register_nd("correlate", flip=False)
_register_nd("convolve", flip=True)
_register_2d("correlate2d", flip=False)
_register_2d("convolve2d", flip=True)

refuse("np.convolve", "NumPy's 1-D convolve has other modes and defaults; use scipy.signal's convolve")
refuse("numpy.convolve", "NumPy's 1-D convolve has other modes and defaults; use scipy.signal's convolve")
refuse("np.correlate", "NumPy's 1-D correlate has other modes and defaults; use scipy.signal's correlate")
refuse("numpy.correlate", "NumPy's 1-D correlate has other modes and defaults; use scipy.signal's correlate")
