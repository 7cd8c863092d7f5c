"""Operators of ``torch.nn.functional`` (NCHW): convolutions, transposed convolutions,
``avg_pool2d`` and ``relu``.

Inputs are batched ``[N, C, *spatial]`` or unbatched ``[C, *spatial]``, as PyTorch
accepts them. Strides, dilations, paddings and ``groups`` are concrete integers (a
layer's constants); sizes stay symbolic. Groups are unrolled over their constant count,
so every read index stays affine in the summation variables: output channel ``co``
belongs to group ``g`` where ``g * C_out/groups <= co < (g + 1) * C_out/groups``.
A strided transposed convolution reads ``x[floor((i + p - m*d) / s)]`` under the guard
``(i + p - m*d) % s == 0`` -- never a rational index.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import sympy as sp

from ...errors import InputError
from ..ir import Iverson, Tensor, dummy_index, gsum
from .elementwise import elementwise_tensor
from .table import Operator, Param, numpy_helper, register


# -- options -----------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool) or isinstance(v, sp.Integer)


def concrete_ints(op: str, name: str, value, n: int, minimum: int) -> tuple[int, ...]:
    """An int-or-tuple option expanded to ``n`` concrete Python ints, each ``>= minimum``.

    >>> concrete_ints("conv2d", "stride", 2, 2, 1)
    (2, 2)
    """
    values = tuple(value) if isinstance(value, tuple | list) else (value,) * n
    if len(values) != n:
        raise InputError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    for v in values:
        if isinstance(v, sp.Basic) and not v.is_Integer:
            raise InputError(f"{op}: symbolic {name} {v} is not supported; {name} must be a constant integer")
        if not _is_int(v):
            raise InputError(f"{op}: {name} must be an integer, got {v!r}")
        if int(v) < minimum:
            raise InputError(f"{op}: {name} must be at least {minimum}, got {int(v)}")
    return tuple(int(v) for v in values)


def size_ints(op: str, name: str, value, n: int) -> tuple[sp.Expr, ...]:
    """An int-or-tuple option whose entries may be integer expressions over sizes.

    >>> h = sp.Symbol("H", integer=True, positive=True)
    >>> size_ints("conv_transpose2d", "output_padding", (sp.Mod(h, 2), 0), 2)
    (Mod(H, 2), 0)
    """
    values = tuple(value) if isinstance(value, tuple | list) else (value,) * n
    if len(values) != n:
        raise InputError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer | sp.Basic):
            raise InputError(f"{op}: {name} must be an integer expression, got {v!r}")
        v = sp.sympify(int(v) if isinstance(v, int | np.integer) else v)
        if v.is_integer is False:
            raise InputError(f"{op}: {name} must be an integer expression, got {v}")
        out.append(v)
    return tuple(out)


def concrete_groups(op: str, groups) -> int:
    """The number of groups, a concrete positive int.

    >>> concrete_groups("conv2d", 2)
    2
    """
    return concrete_ints(op, "groups", groups, 1, 1)[0]


def split_input(op: str, shape: tuple, nspatial: int) -> tuple[bool, tuple, sp.Expr, tuple]:
    """``(batched, batch dims, channels, spatial sizes)`` of an NCHW-style input shape.

    >>> split_input("conv1d", (3, 5), 1)
    (False, (), 3, (5,))
    """
    if len(shape) == nspatial + 2:
        return True, (shape[0],), shape[1], tuple(shape[2:])
    if len(shape) == nspatial + 1:
        return False, (), shape[0], tuple(shape[1:])
    raise InputError(
        f"{op}: expected a {nspatial + 1}-D (unbatched) or {nspatial + 2}-D (batched) input, got {len(shape)}-D"
    )


def _check_weight(op: str, shape: tuple, nspatial: int) -> None:
    if len(shape) != nspatial + 2:
        raise InputError(f"{op}: expected a {nspatial + 2}-D weight, got {len(shape)}-D")


def _check_bias(op: str, shape) -> None:
    if shape is not None and len(shape) != 1:
        raise InputError(f"{op}: bias must be 1-D, got {len(shape)}-D")


def group_member(co: sp.Expr, g: int, per_group: sp.Expr) -> sp.Expr:
    """``[g * per_group <= co < (g + 1) * per_group]``: channel ``co`` is in group ``g``.

    >>> c = sp.Symbol("c", integer=True)
    >>> group_member(c, 0, sp.Integer(4))
    Iverson((c >= 0) & (c < 4))
    """
    return Iverson(sp.And(sp.Ge(co, g * per_group), sp.Lt(co, (g + 1) * per_group)))


# -- convolution -------------------------------------------------------------------------
def conv_padding(op: str, padding, stride, dilation, kernel) -> tuple[sp.Expr, ...]:
    """The left padding of each spatial dimension (torch's ``"same"`` pads the extra one right).

    >>> k = sp.Symbol("k", integer=True, positive=True)
    >>> conv_padding("conv1d", "same", (1,), (1,), (k,))
    (floor(k/2 - 1/2),)
    """
    n = len(kernel)
    if padding == "valid":
        return (sp.S.Zero,) * n
    if padding == "same":
        if any(s != 1 for s in stride):
            raise InputError(f"{op}: padding='same' is not supported for strided convolutions")
        return tuple(sp.floor(d * (k - 1) / sp.Integer(2)) for d, k in zip(dilation, kernel, strict=True))
    if isinstance(padding, str):
        raise InputError(f"{op}: padding must be 'valid', 'same', an int or a tuple of ints, not {padding!r}")
    return tuple(sp.Integer(p) for p in concrete_ints(op, "padding", padding, n, 0))


def conv_shape(op, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, nspatial=2):
    """The output shape of ``conv1d``/``conv2d`` and the condition under which torch accepts it.

    >>> h, k = sp.symbols("H k", integer=True, positive=True)
    >>> conv_shape("conv1d", (1, 1, h), (1, 1, k), nspatial=1)
    ((1, 1, H - k + 1), H >= k)
    """
    batched, lead, channels, spatial = split_input(op, tuple(input), nspatial)
    _check_weight(op, tuple(weight), nspatial)
    _check_bias(op, bias)
    stride = concrete_ints(op, "stride", stride, nspatial, 1)
    dilation = concrete_ints(op, "dilation", dilation, nspatial, 1)
    groups = concrete_groups(op, groups)
    c_out, c_per_group, *kernel = weight
    lo = conv_padding(op, padding, stride, dilation, kernel)
    conds = [sp.Eq(channels, groups * c_per_group)]
    if groups > 1:
        conds.append(sp.Eq(sp.Mod(c_out, groups), 0))
    if bias is not None:
        conds.append(sp.Eq(bias[0], c_out))
    outs = []
    for n, k, s, d, p in zip(spatial, kernel, stride, dilation, lo, strict=True):
        if padding == "same":
            outs.append(n)
            continue
        outs.append(sp.floor((n + 2 * p - d * (k - 1) - 1) / sp.Integer(s)) + 1)
        conds.append(sp.Ge(n + 2 * p, d * (k - 1) + 1))
    return (*lead, c_out, *outs), sp.And(*conds)


def conv_tensor(op, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, nspatial=2) -> Tensor:
    """The index definition of ``conv1d``/``conv2d`` (cross-correlation, as torch).

    >>> from ..ir import leaf
    >>> h, k = sp.symbols("H k", integer=True, positive=True)
    >>> conv_tensor("conv1d", leaf("x", (1, h)), leaf("w", (1, 1, k)), nspatial=1).shape
    (1, H - k + 1)
    """
    shape, valid = conv_shape(
        op, input.shape, weight.shape, None if bias is None else bias.shape, stride, padding, dilation, groups, nspatial
    )
    batched = len(input.shape) == nspatial + 2
    stride = concrete_ints(op, "stride", stride, nspatial, 1)
    dilation = concrete_ints(op, "dilation", dilation, nspatial, 1)
    groups = concrete_groups(op, groups)
    c_out, c_per_group, *kernel = weight.shape
    lo = conv_padding(op, padding, stride, dilation, kernel)
    out_per_group = c_out * sp.Rational(1, groups)

    def element(idx):
        lead, co, outs = idx[: int(batched)], idx[int(batched)], idx[int(batched) + 1 :]

        def group_body(g, ci, ms):
            spatial = tuple(o * s - p + m * d for o, s, p, m, d in zip(outs, stride, lo, ms, dilation, strict=True))
            return input.at((*lead, g * c_per_group + ci, *spatial)) * weight.at((co, ci, *ms))

        return grouped_sum(co, c_per_group, kernel, groups, out_per_group, group_body, bias)

    return _channel_mixing_tensor(shape, valid, element, input, weight, bias)


def grouped_sum(co, c_per_group, kernel, groups: int, out_per_group, group_body, bias=None) -> sp.Expr:
    """Output channel ``co``'s sum over its group's input channels and the kernel taps, plus bias.

    ``group_body(g, ci, ms)`` is the summand for group ``g``, input channel ``ci`` of the
    group and kernel taps ``ms``; with groups, each group's sum is guarded by ``co``
    belonging to it. Shared by ``conv`` and ``conv_transpose``.

    >>> k = sp.Symbol("k", integer=True, positive=True)
    >>> grouped_sum(sp.S.Zero, 1, (k,), 1, 1, lambda g, ci, ms: ms[0]).limits[1][2]
    k - 1
    """
    ci = dummy_index("c")
    ms = tuple(dummy_index("m") for _ in kernel)
    limits = [(ci, 0, c_per_group - 1)] + [(m, 0, k - 1) for m, k in zip(ms, kernel, strict=True)]
    total = sp.S.Zero
    for g in range(groups):
        member = group_member(co, g, out_per_group) if groups > 1 else sp.S.One
        total += member * gsum(group_body(g, ci, ms), *limits)
    if bias is not None:
        total += bias.at((co,))
    return total


def _channel_mixing_tensor(shape, valid, element, input, weight, bias) -> Tensor:
    valid = sp.And(valid, input.valid, weight.valid, sp.true if bias is None else bias.valid)
    return Tensor(shape=shape, element=element, zero_outside=False, valid=valid)


# -- transposed convolution ----------------------------------------------------------------
def conv_transpose_shape(
    op, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, nspatial=2
):
    """The output shape of ``conv_transpose1d``/``2d`` and the condition under which torch accepts it.

    >>> h, k = sp.symbols("H k", integer=True, positive=True)
    >>> conv_transpose_shape("conv_transpose1d", (1, h), (1, 1, k), nspatial=1)[0]
    (1, H + k - 1)
    """
    batched, lead, channels, spatial = split_input(op, tuple(input), nspatial)
    _check_weight(op, tuple(weight), nspatial)
    _check_bias(op, bias)
    stride = concrete_ints(op, "stride", stride, nspatial, 1)
    dilation = concrete_ints(op, "dilation", dilation, nspatial, 1)
    if isinstance(padding, str):
        raise InputError(f"{op}: padding must be an int or a tuple of ints, not {padding!r}")
    pads = concrete_ints(op, "padding", padding, nspatial, 0)
    extra = size_ints(op, "output_padding", output_padding, nspatial)
    groups = concrete_groups(op, groups)
    c_in, out_per_group, *kernel = weight
    c_out = groups * out_per_group
    conds = [sp.Eq(channels, c_in)]
    if groups > 1:
        conds.append(sp.Eq(sp.Mod(c_in, groups), 0))
    if bias is not None:
        conds.append(sp.Eq(bias[0], c_out))
    outs = []
    for n, k, s, d, p, e in zip(spatial, kernel, stride, dilation, pads, extra, strict=True):
        size = (n - 1) * s - 2 * p + d * (k - 1) + e + 1
        outs.append(size)
        conds += [sp.Ge(size, 1), sp.Ge(e, 0), sp.Or(sp.Lt(e, s), sp.Lt(e, d))]
    return (*lead, c_out, *outs), sp.And(*conds)


def transposed_read(i: sp.Expr, p: int, m: sp.Expr, d: int, s: int) -> tuple[sp.Expr, sp.Expr]:
    """The input position that output ``i`` reads through kernel tap ``m``, and its guard.

    >>> i, m = sp.symbols("i m", integer=True)
    >>> transposed_read(i, 1, m, 1, 2)
    (floor(i/2 - m/2 + 1/2), Iverson(Eq(Mod(i - m + 1, 2), 0)))
    """
    offset = i + p - m * d
    if s == 1:
        return offset, sp.S.One
    return sp.floor(offset / sp.Integer(s)), Iverson(sp.Eq(sp.Mod(offset, s), 0))


def conv_transpose_tensor(
    op, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, nspatial=2
) -> Tensor:
    """The index definition of ``conv_transpose1d``/``2d`` (the adjoint of ``conv``).

    >>> from ..ir import leaf
    >>> h, k = sp.symbols("H k", integer=True, positive=True)
    >>> conv_transpose_tensor("conv_transpose1d", leaf("x", (1, h)), leaf("w", (1, 1, k)), nspatial=1).shape
    (1, H + k - 1)
    """
    bias_shape = None if bias is None else bias.shape
    shape, valid = conv_transpose_shape(
        op, input.shape, weight.shape, bias_shape, stride, padding, output_padding, groups, dilation, nspatial
    )
    batched = len(input.shape) == nspatial + 2
    stride = concrete_ints(op, "stride", stride, nspatial, 1)
    dilation = concrete_ints(op, "dilation", dilation, nspatial, 1)
    pads = concrete_ints(op, "padding", padding, nspatial, 0)
    groups = concrete_groups(op, groups)
    c_in, out_per_group, *kernel = weight.shape
    in_per_group = c_in * sp.Rational(1, groups)

    def element(idx):
        lead, co, outs = idx[: int(batched)], idx[int(batched)], idx[int(batched) + 1 :]

        def group_body(g, ci, ms):
            reads = [
                transposed_read(o, p, m, d, s) for o, p, m, d, s in zip(outs, pads, ms, dilation, stride, strict=True)
            ]
            guard = sp.Mul(*(r[1] for r in reads))
            channel = g * in_per_group + ci
            spatial = tuple(r[0] for r in reads)
            return guard * input.at((*lead, channel, *spatial)) * weight.at((channel, co - g * out_per_group, *ms))

        return grouped_sum(co, in_per_group, kernel, groups, out_per_group, group_body, bias)

    return _channel_mixing_tensor(shape, valid, element, input, weight, bias)


# -- average pooling -------------------------------------------------------------------------
def _pool_options(op, kernel_size, stride, padding, ceil_mode, divisor_override):
    kernel = concrete_ints(op, "kernel_size", kernel_size, 2, 1)
    stride = kernel if stride is None or stride == () else concrete_ints(op, "stride", stride, 2, 1)
    pads = concrete_ints(op, "padding", padding, 2, 0)
    if ceil_mode:
        raise InputError(f"{op}: ceil_mode=True is not supported")
    if any(2 * p > k for p, k in zip(pads, kernel, strict=True)):
        raise InputError(f"{op}: padding {pads} must be at most half of kernel_size {kernel}")
    if divisor_override is not None:
        concrete_ints(op, "divisor_override", divisor_override, 1, 1)
    return kernel, stride, pads


def avg_pool2d_shape(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    """The output shape of ``avg_pool2d`` and the condition under which torch accepts it.

    >>> h, w = sp.symbols("H W", integer=True, positive=True)
    >>> avg_pool2d_shape((3, h, w), 2)[0]
    (3, floor(H/2), floor(W/2))
    """
    op = "avg_pool2d"
    _, lead, channels, spatial = split_input(op, tuple(input), 2)
    kernel, stride, pads = _pool_options(op, kernel_size, stride, padding, ceil_mode, divisor_override)
    outs, conds = [], []
    for n, k, s, p in zip(spatial, kernel, stride, pads, strict=True):
        outs.append(sp.floor((n + 2 * p - k) / sp.Integer(s)) + 1)
        conds.append(sp.Ge(n + 2 * p, k))
    return (*lead, channels, *outs), sp.And(*conds)


def avg_pool2d_tensor(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    """The index definition of ``avg_pool2d`` (``ceil_mode=False``).

    >>> from ..ir import leaf
    >>> h, w = sp.symbols("H W", integer=True, positive=True)
    >>> avg_pool2d_tensor(leaf("x", (1, h, w)), 2).shape
    (1, floor(H/2), floor(W/2))
    """
    op = "avg_pool2d"
    shape, valid = avg_pool2d_shape(
        input.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    kernel, stride, pads = _pool_options(op, kernel_size, stride, padding, ceil_mode, divisor_override)
    spatial_sizes = input.shape[-2:]

    def element(idx):
        lead, outs = idx[:-2], idx[-2:]
        ms = tuple(dummy_index("m") for _ in kernel)
        rows = tuple(o * s - p + m for o, s, p, m in zip(outs, stride, pads, ms, strict=True))
        limits = [(m, 0, k - 1) for m, k in zip(ms, kernel, strict=True)]
        total = gsum(input.at((*lead, *rows)), *limits)
        if divisor_override is not None:
            return total / sp.Integer(int(divisor_override))
        if count_include_pad:
            return total / sp.Integer(kernel[0] * kernel[1])
        count = sp.Mul(
            *(
                gsum(Iverson(sp.And(sp.Ge(r, 0), sp.Lt(r, n))), (m, 0, k - 1))
                for r, n, m, k in zip(rows, spatial_sizes, ms, kernel, strict=True)
            )
        )
        return total / count

    return Tensor(shape=shape, element=element, zero_outside=False, valid=sp.And(valid, input.valid))


# -- relu ------------------------------------------------------------------------------------
def relu_scalar(v: sp.Expr) -> sp.Expr:
    """``max(v, 0)`` with PyTorch's derivative 0 at 0.

    >>> relu_scalar(sp.Integer(-2))
    0
    """
    return sp.Piecewise((v, v > 0), (0, True))


# -- NumPy lowering (helpers emitted verbatim: only ``np`` in scope) ----------------------------
def _sd_conv(x, w, b, stride, padding, dilation, groups):
    """torch.nn.functional.conv1d/conv2d: shifted slices per tap (depthwise) or GEMMs over stacked shifted copies."""
    dt = np.result_type(np.asarray(x).dtype, np.asarray(w).dtype, np.float32)
    x = np.asarray(x, dtype=dt)
    w = np.asarray(w, dtype=dt)
    nsp = w.ndim - 2
    unbatched = x.ndim == nsp + 1
    if unbatched:
        x = x[None]
    ks = w.shape[2:]
    if padding == "valid":
        pads = [(0, 0)] * nsp
    elif padding == "same":
        pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in zip(dilation, ks, strict=True)]
    else:
        pads = [(p, p) for p in padding]
    out = _sd_conv_batched(x, w, stride, pads, dilation, groups)
    if b is not None:
        out += np.asarray(b, dtype=dt).reshape((w.shape[0],) + (1,) * nsp)
    return out[0] if unbatched else out


def _sd_zero_pad(x, pads):
    """x zero-padded by pads[d] = (before, after) on its last len(pads) axes by np.zeros and one copy."""
    if not any(lo or hi for lo, hi in pads):
        return x
    lead = x.ndim - len(pads)
    sizes = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[lead:], pads, strict=True))
    out = np.zeros(x.shape[:lead] + sizes, dtype=x.dtype)  # np.pad costs several times more
    out[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[lead:], pads, strict=True))] = x
    return out


def _sd_conv_batched(x, w, stride, pads, dilation, groups):
    """The convolution (no bias) of a batched input zero-padded by pads[d] = (before, after): per-tap shifted
    slices when each output channel reads one input channel, shifted GEMMs at stride 1, im2col otherwise."""
    nsp = w.ndim - 2
    ks = w.shape[2:]
    sizes = [n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads, strict=True)]
    outs = [(n - d * (k - 1) - 1) // s + 1 for n, d, k, s in zip(sizes, dilation, ks, stride, strict=True)]
    n_batch, c_in = x.shape[:2]
    c_out, c_group = w.shape[:2]
    if c_group == 1 and c_out == c_in:
        # one kernel per channel (single-channel or depthwise): accumulate shifted slices, no matmul
        xp = _sd_zero_pad(x, pads)
        out = np.zeros((n_batch, c_out) + tuple(outs), dtype=x.dtype)
        tmp = np.empty_like(out)
        for pos in np.ndindex(*ks):
            sl = tuple(
                slice(p * d, p * d + s * (o - 1) + 1, s) for p, d, s, o in zip(pos, dilation, stride, outs, strict=True)
            )
            np.multiply(
                xp[(slice(None), slice(None)) + sl], w[(slice(None), 0) + pos].reshape((-1,) + (1,) * nsp), out=tmp
            )
            out += tmp
        return out
    if all(s == 1 for s in stride):
        return _sd_conv_shifted(x, w, pads, dilation, groups)
    return _sd_conv_im2col(_sd_zero_pad(x, pads), w, stride, dilation, groups, outs)


def _sd_conv_shifted(x, w, pads, dilation, groups):
    """The stride-1 convolution of a batched input, zero-padded by pads, by shifted GEMMs on a flat view.

    Each (batch, channel) plane of the padded input is read flat, H*W long: kernel tap (i, j) then reads every
    output at the same flat offset i*dh*W + j*dw, so a tap is one GEMM over channels on a strided view. Outputs
    are computed W wide per row and the last columns, past the valid ones, are dropped. Small kernels (the
    forward pass, the input gradient) stack the kw taps of a kernel row (_sd_conv_row_stacked); kernels larger
    than the output (a weight gradient) stack the output columns (_sd_conv_small_output).
    """
    if w.ndim == 3:
        pads2, dil2 = [(0, 0)] + list(pads), (1,) + tuple(dilation)
        return _sd_conv_shifted(x[:, :, None], w[:, :, None], pads2, dil2, groups)[:, :, 0]
    (top, bottom), (left, right) = pads
    h, wd = x.shape[2] + top + bottom, x.shape[3] + left + right
    ho, wo = h - dilation[0] * (w.shape[2] - 1), wd - dilation[1] * (w.shape[3] - 1)
    if ho < 1 or wo < 1:  # an empty output (torch allows one from a transposed convolution)
        return np.zeros((x.shape[0], w.shape[0], max(ho, 0), max(wo, 0)), dtype=x.dtype)
    if dilation[0] == dilation[1] == 1 and ho * wo < w.shape[2] * w.shape[3]:
        return _sd_conv_small_output(_sd_zero_pad(x, pads), w, groups, ho, wo)
    return _sd_conv_row_stacked(x, w, pads, dilation, groups)


def _sd_conv_row_stacked(x, w, pads, dilation, groups):
    """The stride-1 convolution of a batched input, zero-padded by pads, by a small kernel (see _sd_conv_shifted).

    Per batch entry, the kw taps of a kernel row are stacked (a kw-fold copy of x, not kh*kw, padded on the way),
    one GEMM over C*kw gives every kernel row's products (all rows stacked along M), and their sum, each row's
    shifted up i*dh rows, is the output.
    """
    n_batch, _, h_in, w_in = x.shape
    (top, bottom), (left, right) = pads
    h, wd = h_in + top + bottom, w_in + left + right
    c_out, c_group, kh, kw = w.shape
    o_group, (dh, dw) = c_out // groups, dilation
    ho, wo = h - dh * (kh - 1), wd - dw * (kw - 1)
    rows = w.reshape(groups, o_group, c_group, kh, kw).transpose(0, 3, 1, 2, 4)
    rows = np.ascontiguousarray(rows).reshape(groups, kh * o_group, c_group * kw)
    # stack row j of channel c holds the padded plane read flat from offset j*dw: that plane starts lead - j*dw
    # into the row, so the GEMM reads every row from lead on. np.zeros writes the zero border (and the gaps
    # between planes) once; each batch entry overwrites only the interior
    lead = dw * (kw - 1)
    width, plane = h * wd - lead, h * wd + lead
    stacked = np.zeros((groups, c_group, kw, plane), dtype=x.dtype)
    item = x.itemsize
    # numpy checks a view built on a buffer against the buffer's size: a wrong stride raises, never writes outside
    interior = np.ndarray(
        (groups, c_group, kw, h_in, w_in),
        x.dtype,
        stacked,
        (lead + top * wd + left) * item,
        (c_group * kw * plane * item, kw * plane * item, (plane - dw) * item, wd * item, item),
    )
    cols = stacked.reshape(groups, c_group * kw, plane)[..., lead : lead + width]
    products = np.empty((groups, kh * o_group, h * wd), dtype=x.dtype)
    products[..., width:] = 0  # never written by the GEMM, read (then dropped) by the whole-row sums
    by_row = products.reshape(groups, kh, o_group, h * wd)
    flat = [by_row[:, i, :, i * dh * wd : (i * dh + ho) * wd] for i in range(kh)]
    total = flat[0].reshape(groups, o_group, ho, wd)[..., :wo]
    source = x.reshape(n_batch, groups, c_group, 1, h_in, w_in)
    out = np.empty((n_batch, groups, o_group, ho, wo), dtype=x.dtype)
    for n in range(n_batch):
        np.copyto(interior, source[n])
        np.matmul(rows, cols, out=products[..., :width])
        # sums over whole rows W wide (long contiguous runs, faster than cropped ones), then one cropped copy
        for part in flat[1:]:
            np.add(flat[0], part, out=flat[0])
        out[n] = total
    return out.reshape(n_batch, c_out, ho, wo)


def _sd_conv_small_output(xp, w, groups, ho, wo):
    """The stride-1 convolution of a padded batched input by a kernel larger than the output (a weight gradient).

    Read flat, W wide, output (i, j) of a channel sums x[p + i*W + j] * k[p] over the kernel's flat span (the
    kernel zero-padded to rows W wide). Per input channel, the wo output columns are stacked (a wo-fold copy of
    x) and each output row is one GEMM over the kernel's span, the stack read from that row's offset.
    """
    n_batch, _, h, wd = xp.shape
    c_out, c_group, kh, kw = w.shape
    o_group = c_out // groups
    xf = xp.reshape(n_batch, groups, c_group, h * wd)
    span, width = (kh - 1) * wd + kw, h * wd - (wo - 1)
    # channel-major, so that each GEMM's kernel operand is one contiguous block (BLAS runs faster on it)
    wpad = np.zeros((groups, c_group, o_group, kh, wd), dtype=xp.dtype)
    wpad[..., :kw] = w.reshape(groups, o_group, c_group, kh, kw).transpose(0, 2, 1, 3, 4)
    wflat = wpad.reshape(groups, c_group, o_group, kh * wd)[..., :span]
    acc = np.zeros((ho, groups, n_batch * wo, o_group), dtype=xp.dtype)
    partial = np.empty((groups, n_batch * wo, o_group), dtype=xp.dtype)
    stacked = np.empty((groups, n_batch, wo, width), dtype=xp.dtype)
    for c in range(c_group):
        for j in range(wo):
            stacked[:, :, j] = xf[:, :, c, j : j + width].transpose(1, 0, 2)
        cols = stacked.reshape(groups, n_batch * wo, width)
        for i in range(ho):
            np.matmul(cols[..., i * wd : i * wd + span], wflat[:, c].transpose(0, 2, 1), out=partial)
            acc[i] += partial
    out = acc.reshape(ho, groups, n_batch, wo, o_group).transpose(2, 1, 4, 0, 3)
    return np.ascontiguousarray(out).reshape(n_batch, c_out, ho, wo)


def _sd_conv_im2col(xp, w, stride, dilation, groups, outs):
    """The convolution of a padded batched input: im2col over kernel taps, then one GEMM per group.

    The columns are laid out (channel, taps, batch, positions), contiguous, so that each group's product is a
    single (C_out/groups x C_group*taps) @ (C_group*taps x N*positions) BLAS call; with more taps than output
    positions, transposed (batch, positions, channel, taps) so that the copy still runs along long rows.
    """
    n_batch, nsp = xp.shape[0], w.ndim - 2
    c_out, c_group = w.shape[:2]
    ks, outs = w.shape[2:], tuple(outs)
    taps, positions = int(np.prod(ks)), int(np.prod(outs))
    spans = tuple(d * (k - 1) + 1 for d, k in zip(dilation, ks, strict=True))
    win = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=tuple(range(2, 2 + nsp)))
    strided = tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, outs, strict=True))
    win = win[(slice(None), slice(None)) + strided + tuple(slice(None, None, d) for d in dilation)]
    if positions >= taps:
        # columns (channel, taps, batch, positions): the copy's inner loop runs along output rows
        order = (1,) + tuple(range(2 + nsp, 2 + 2 * nsp)) + (0,) + tuple(range(2, 2 + nsp))
        cols = np.ascontiguousarray(win.transpose(order)).reshape(groups, c_group * taps, n_batch * positions)
        out = np.matmul(w.reshape(groups, c_out // groups, c_group * taps), cols)
        return np.ascontiguousarray(np.moveaxis(out.reshape((c_out, n_batch) + outs), 1, 0))
    # few output positions, a large kernel (a weight gradient): rows (batch, positions), the copy runs along taps
    order = (0,) + tuple(range(2, 2 + nsp)) + (1,) + tuple(range(2 + nsp, 2 + 2 * nsp))
    rows = np.ascontiguousarray(win.transpose(order)).reshape(n_batch * positions, groups, c_group * taps)
    out = np.matmul(rows.transpose(1, 0, 2), w.reshape(groups, c_out // groups, c_group * taps).transpose(0, 2, 1))
    out = out.reshape((groups, n_batch, positions, c_out // groups)).transpose(1, 0, 3, 2)
    return np.ascontiguousarray(out).reshape((n_batch, c_out) + outs)


def _sd_conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation):
    """torch.nn.functional.conv_transpose1d/2d: one GEMM per group, then a strided scatter-add per kernel tap."""
    dt = np.result_type(np.asarray(x).dtype, np.asarray(w).dtype, np.float32)
    x = np.asarray(x, dtype=dt)
    w = np.asarray(w, dtype=dt)
    nsp = w.ndim - 2
    unbatched = x.ndim == nsp + 1
    if unbatched:
        x = x[None]
    n_batch, c_in = x.shape[:2]
    ins, ks = x.shape[2:], w.shape[2:]
    c_group, out_group = c_in // groups, w.shape[1]
    if all(s == 1 for s in stride):
        # stride 1: the convolution of x padded by d*(k-1) - p (cropped where negative; output_padding more on the
        # right) with the kernel flipped and its channel axes swapped in each group
        lo = [d * (k - 1) - p for d, k, p in zip(dilation, ks, padding, strict=True)]
        hi = [a + e for a, e in zip(lo, output_padding, strict=True)]
        crop = tuple(slice(max(-a, 0), n - max(-z, 0)) for a, z, n in zip(lo, hi, ins, strict=True))
        pads = [(max(a, 0), max(z, 0)) for a, z in zip(lo, hi, strict=True)]
        wf = np.swapaxes(w.reshape((groups, c_group, out_group) + tuple(ks)), 1, 2)
        wf = np.flip(wf, tuple(range(3, 3 + nsp))).reshape((groups * out_group, c_group) + tuple(ks))
        out = _sd_conv_batched(x[(slice(None),) * 2 + crop], wf, (1,) * nsp, pads, dilation, groups)
    else:
        outs = [
            (n - 1) * s - 2 * p + d * (k - 1) + e + 1
            for n, s, p, d, k, e in zip(ins, stride, padding, dilation, ks, output_padding, strict=True)
        ]
        lens = [
            max((n - 1) * s + d * (k - 1) + 1, o + p)
            for n, s, d, k, o, p in zip(ins, stride, dilation, ks, outs, padding, strict=True)
        ]
        # x as (groups, C_group, N * positions): the batch joins the GEMM's columns
        xg = np.ascontiguousarray(np.moveaxis(x.reshape((n_batch, groups, c_group, -1)), 0, 2))
        xg = xg.reshape(groups, c_group, -1)
        wg = w.reshape(groups, c_group, out_group * int(np.prod(ks))).transpose(0, 2, 1)
        taps = np.matmul(wg, xg).reshape((groups, out_group) + tuple(ks) + (n_batch,) + tuple(ins))
        buf = np.zeros((groups, out_group, n_batch) + tuple(lens), dtype=dt)
        lead = (slice(None),) * 3
        for pos in np.ndindex(*ks):
            sl = tuple(
                slice(m * d, m * d + s * (n - 1) + 1, s) for m, d, s, n in zip(pos, dilation, stride, ins, strict=True)
            )
            buf[lead + sl] += taps[(slice(None), slice(None)) + pos]
        out = buf[lead + tuple(slice(p, p + o) for p, o in zip(padding, outs, strict=True))]
        out = np.ascontiguousarray(np.moveaxis(out, 2, 0)).reshape((n_batch, groups * out_group) + tuple(outs))
    if b is not None:
        out += np.asarray(b, dtype=dt).reshape((groups * out_group,) + (1,) * nsp)
    return out[0] if unbatched else out


def _sd_avg_pool2d(x, kernel, stride, padding, count_include_pad, divisor_override):
    """torch.nn.functional.avg_pool2d with ceil_mode=False: a sum of strided slices per tap."""
    x = np.asarray(x)
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    pads = [(0, 0)] * (x.ndim - 2) + [(p, p) for p in padding]
    xp = np.pad(x, pads) if any(padding) else x
    inside = np.pad(np.ones(x.shape[-2:], dtype=x.dtype), [(p, p) for p in padding])
    outs = [(n - k) // s + 1 for n, k, s in zip(xp.shape[-2:], kernel, stride, strict=True)]
    total = np.zeros(x.shape[:-2] + tuple(outs), dtype=x.dtype)
    count = np.zeros(outs, dtype=x.dtype)
    for pos in np.ndindex(*kernel):
        sl = tuple(slice(m, m + s * (o - 1) + 1, s) for m, s, o in zip(pos, stride, outs, strict=True))
        total += xp[(Ellipsis,) + sl]
        count += inside[sl]
    if divisor_override is not None:
        return total / x.dtype.type(divisor_override)
    if count_include_pad:
        return total / x.dtype.type(kernel[0] * kernel[1])
    return total / count


HELPERS = {
    fn.__name__: numpy_helper(fn.__name__, fn)
    for fn in (
        _sd_conv,
        _sd_zero_pad,
        _sd_conv_batched,
        _sd_conv_shifted,
        _sd_conv_row_stacked,
        _sd_conv_small_output,
        _sd_conv_im2col,
        _sd_conv_transpose,
        _sd_avg_pool2d,
    )
}
CONV_HELPERS = (
    "_sd_conv",
    "_sd_zero_pad",
    "_sd_conv_batched",
    "_sd_conv_shifted",
    "_sd_conv_row_stacked",
    "_sd_conv_small_output",
    "_sd_conv_im2col",
)


def _int_code(value) -> str:
    value = sp.sympify(value)
    if value.is_Integer:
        return str(int(value))
    return "int(" + sp.pycode(value).replace("math.", "np.") + ")"


def _ints_code(values) -> str:
    return "(" + "".join(_int_code(v) + ", " for v in values) + ")"


# -- LaTeX --------------------------------------------------------------------------------------
def _escape(name: str) -> str:
    return name.replace("_", r"\_")


def _options_latex(**options) -> str:
    shown = [rf"\mathrm{{{_escape(k)}}}={_value_latex(v)}" for k, v in options.items() if v is not None]
    return ", ".join(shown)


def _value_latex(v) -> str:
    if isinstance(v, str):
        return rf"\text{{{v}}}"
    if isinstance(v, tuple | list):
        return r"\left(" + ", ".join(_value_latex(e) for e in v) + r"\right)"
    return sp.latex(sp.sympify(v))


def _call_latex(name: str, args: list[str], **options) -> str:
    opts = _options_latex(**options)
    inner = ", ".join(args + ([opts] if opts else []))
    return rf"\operatorname{{{_escape(name)}}}\left({inner}\right)"


# -- the table -----------------------------------------------------------------------------------
def _non_default(defaults: dict, given: dict) -> dict:
    return {k: v for k, v in given.items() if v != defaults[k]}


CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
TRANSPOSE_DEFAULTS = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1}


# -- conv1d, conv2d: index definition, shape rule, NumPy lowering, LaTeX ---------------------------
def _conv_definition(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, op, nspatial):
    return conv_tensor(op, input, weight, bias, stride, padding, dilation, groups, nspatial)


def _conv_shape_rule(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, op, nspatial):
    return conv_shape(op, input, weight, bias, stride, padding, dilation, groups, nspatial)


def _conv_numpy(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, op, nspatial):
    s = concrete_ints(op, "stride", stride, nspatial, 1)
    d = concrete_ints(op, "dilation", dilation, nspatial, 1)
    p = repr(padding) if isinstance(padding, str) else str(concrete_ints(op, "padding", padding, nspatial, 0))
    return f"_sd_conv({input}, {weight}, {bias}, {s}, {p}, {d}, {concrete_groups(op, groups)})"


def _conv_latex(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, op, nspatial):
    options = _non_default(
        CONV_DEFAULTS, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    )
    return _call_latex(op, [input, weight] + ([bias] if bias is not None else []), **options)


CONV_PARAMS = (
    Param("input", "tensor", required=True),
    Param("weight", "tensor", required=True),
    Param("bias", "tensor", default=None),
    Param("stride", "ints", default=1),
    Param("padding", "ints", default=0, choices=("valid", "same")),
    Param("dilation", "ints", default=1),
    Param("groups", "int", default=1),
)

for _op, _n in (("conv1d", 1), ("conv2d", 2)):
    register(
        Operator(
            name=_op,
            family="torch",
            params=CONV_PARAMS,
            definition=partial(_conv_definition, op=_op, nspatial=_n),
            shape_rule=partial(_conv_shape_rule, op=_op, nspatial=_n),
            to_numpy=partial(_conv_numpy, op=_op, nspatial=_n),
            to_latex=partial(_conv_latex, op=_op, nspatial=_n),
            numpy_helpers=tuple(HELPERS[h] for h in CONV_HELPERS),
            algebra="bilinear",
            kernel="weight",
            spatial_axes=_n,
        )
    )


# -- conv_transpose1d, conv_transpose2d: index definition, shape rule, NumPy lowering, LaTeX ---------
def _conv_transpose_definition(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, op, nspatial
):
    return conv_transpose_tensor(op, input, weight, bias, stride, padding, output_padding, groups, dilation, nspatial)


def _conv_transpose_shape_rule(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, op, nspatial
):
    return conv_transpose_shape(op, input, weight, bias, stride, padding, output_padding, groups, dilation, nspatial)


def _conv_transpose_numpy(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, op, nspatial
):
    s = concrete_ints(op, "stride", stride, nspatial, 1)
    d = concrete_ints(op, "dilation", dilation, nspatial, 1)
    p = concrete_ints(op, "padding", padding, nspatial, 0)
    e = _ints_code(size_ints(op, "output_padding", output_padding, nspatial))
    return f"_sd_conv_transpose({input}, {weight}, {bias}, {s}, {p}, {e}, {concrete_groups(op, groups)}, {d})"


def _conv_transpose_latex(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, op, nspatial
):
    given = {"stride": stride, "padding": padding, "output_padding": output_padding, "groups": groups}
    options = _non_default(TRANSPOSE_DEFAULTS, {**given, "dilation": dilation})
    return _call_latex(op, [input, weight] + ([bias] if bias is not None else []), **options)


CONV_TRANSPOSE_PARAMS = (
    Param("input", "tensor", required=True),
    Param("weight", "tensor", required=True),
    Param("bias", "tensor", default=None),
    Param("stride", "ints", default=1),
    Param("padding", "ints", default=0),
    Param("output_padding", "ints", default=0),
    Param("groups", "int", default=1),
    Param("dilation", "ints", default=1),
)

for _op, _n in (("conv_transpose1d", 1), ("conv_transpose2d", 2)):
    register(
        Operator(
            name=_op,
            family="torch",
            params=CONV_TRANSPOSE_PARAMS,
            definition=partial(_conv_transpose_definition, op=_op, nspatial=_n),
            shape_rule=partial(_conv_transpose_shape_rule, op=_op, nspatial=_n),
            to_numpy=partial(_conv_transpose_numpy, op=_op, nspatial=_n),
            to_latex=partial(_conv_transpose_latex, op=_op, nspatial=_n),
            numpy_helpers=tuple(HELPERS[h] for h in ("_sd_conv_transpose",) + CONV_HELPERS),
            algebra="bilinear",
            kernel="weight",
            spatial_axes=_n,
        )
    )


# -- avg_pool2d, relu --------------------------------------------------------------------------------
def _avg_pool2d_numpy(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    kernel, stride, pads = _pool_options("avg_pool2d", kernel_size, stride, padding, ceil_mode, divisor_override)
    override = None if divisor_override is None else int(divisor_override)
    return f"_sd_avg_pool2d({input}, {kernel}, {stride}, {pads}, {bool(count_include_pad)}, {override})"


def _avg_pool2d_latex(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    options = {"kernel_size": kernel_size, "stride": stride, "padding": padding or None}
    if not count_include_pad:
        options["count_include_pad"] = "False"
    options["divisor_override"] = divisor_override
    return _call_latex("avg_pool2d", [input], **options)


register(
    Operator(
        name="avg_pool2d",
        family="torch",
        params=(
            Param("input", "tensor", required=True),
            Param("kernel_size", "ints", required=True),
            Param("stride", "ints", default=None),
            Param("padding", "ints", default=0),
            Param("ceil_mode", "bool", default=False),
            Param("count_include_pad", "bool", default=True),
            Param("divisor_override", "int", default=None),
        ),
        definition=avg_pool2d_tensor,
        shape_rule=avg_pool2d_shape,
        to_numpy=_avg_pool2d_numpy,
        to_latex=_avg_pool2d_latex,
        numpy_helpers=(HELPERS["_sd_avg_pool2d"],),
        algebra="linear",
    )
)

register(
    Operator(
        name="relu",
        family="torch",
        params=(Param("input", "tensor", required=True), Param("inplace", "bool", default=False)),
        definition=lambda input, inplace=False: elementwise_tensor(relu_scalar, input, zero_preserving=True),
        shape_rule=lambda input, inplace=False: (tuple(input), sp.true),
        to_numpy=lambda input, inplace=False: f"np.maximum({input}, 0.0)",
        to_latex=lambda input, inplace=False: rf"\operatorname{{relu}}\left({input}\right)",
        algebra="elementwise",
    )
)
