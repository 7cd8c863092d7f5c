"""``torch.nn.functional``'s ``softmax``, ``log_softmax`` (registered as ``F.softmax``, ``F.log_softmax``:
bare ``softmax`` is SciPy's), ``mse_loss`` and ``cross_entropy`` with probability targets.

``F.softmax`` and ``F.log_softmax`` take torch's ``dim=`` (required here: torch's implicit choice
is deprecated). ``cross_entropy`` takes class probabilities of the input's shape (class axis 1,
or 0 for an unbatched input); class-index targets, ``weight`` and ``label_smoothing`` are input
errors.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ...errors import InputError
from ..ir import Tensor
from .elementwise import broadcast_shapes, elementwise_tensor, normalize_axis
from .reduce import Reduction, reduced_shape, reduction_tensor, total
from .special import exp_total
from .table import Operator, Param, numpy_helper, register

REDUCTIONS = ("mean", "sum", "none")


def _dim(op: str, dim, ndim: int) -> int:
    if dim is None:
        raise InputError(f"{op}: give dim= (torch's implicit dim is deprecated)")
    return normalize_axis(dim, ndim, op, "dim")


def normalised_tensor(op: str, x: Tensor, dim, log: bool) -> Tensor:
    """torch's ``softmax``/``log_softmax`` of ``x`` along ``dim``: ``exp(x_k) / sum_j exp(x_j)``.

    >>> from ..ir import leaf, size_symbol
    >>> normalised_tensor("F.softmax", leaf("s", (size_symbol("n"),)), 0, False).shape
    (n,)
    """
    axis = _dim(op, dim, x.ndim)
    red = Reduction(x.shape, (axis,), False)

    def element(idx):
        kept = tuple(i for d, i in enumerate(idx) if d != axis)
        tot = exp_total(x, red, kept)
        v = x.element(idx)
        return v - sp.log(tot) if log else sp.exp(v) / tot

    return Tensor(shape=x.shape, element=element, valid=x.valid)


def _same_shape(op: str, input, dim):
    _dim(op, dim, len(input))  # an input error when dim is missing or out of range
    return tuple(input), sp.true


def _normaliser(name: str, log: bool, latex: str) -> None:
    op = f"F.{name}"
    helper = f"_{name}"
    register(
        Operator(
            name=op,
            family="torch",
            params=(
                Param("input", "tensor", required=True),
                Param("dim", "int", default=None),
                Param("_stacklevel", "int", default=3),
                Param("dtype", "str", default=None),
            ),
            definition=lambda input, dim=None, _stacklevel=3, dtype=None: normalised_tensor(op, input, dim, log),
            shape_rule=lambda input, dim=None, _stacklevel=3, dtype=None: _same_shape(op, input, dim),
            to_numpy=lambda input, dim=None, _stacklevel=3, dtype=None: f"{helper}({input}, axis={int(dim)})",
            to_latex=lambda input, dim=None, _stacklevel=3, dtype=None: rf"{latex}_{{{dim}}}\left({input}\right)",
            numpy_helpers=("_floating", helper, f"{helper}_block", "_row_blocks", "_normalised", "_in_row_blocks"),
            fresh_array=True,
            meaning=f"torch's {name} along dim (required): "
            + ("x - log(sum(exp(x), dim))" if log else "exp(x) / sum(exp(x), dim)"),
            example=f"F.{name}(s, dim=1)",
        )
    )


_normaliser("softmax", False, r"\mathrm{softmax}")
_normaliser("log_softmax", True, r"\log\mathrm{softmax}")


def _reduction(op: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise InputError(f"{op}: reduction={reduction!r} must be 'mean', 'sum' or 'none'")
    return reduction


def _legacy(op: str, size_average, reduce) -> None:
    if size_average is not None or reduce is not None:
        raise InputError(f"{op}: size_average= and reduce= are deprecated in torch; give reduction=")


def reduced_loss(op: str, per: Tensor, reduction: str, count=None) -> Tensor:
    """``per`` itself (``'none'``), its sum, or its sum divided by ``count`` (default: its size).

    >>> from ..ir import leaf, size_symbol
    >>> reduced_loss("mse_loss", leaf("d", (size_symbol("n"),)), "mean").shape
    ()
    """
    if reduction == "none":
        return per
    scale = sp.S.One if reduction == "sum" else None

    def value(t, red, idx):
        s = total(t, red, idx)
        return s * scale if scale is not None else s / (red.count if count is None else count)

    return reduction_tensor(per, None, False, op, value)


def _mse_definition(input, target, size_average=None, reduce=None, reduction="mean"):
    _legacy("mse_loss", size_average, reduce)
    per = elementwise_tensor(lambda a, b: (a - b) ** 2, input, target, zero_preserving=True)
    return reduced_loss("mse_loss", per, _reduction("mse_loss", reduction))


def _mse_shape(input, target, size_average=None, reduce=None, reduction="mean"):
    _legacy("mse_loss", size_average, reduce)
    shape, valid = broadcast_shapes(input, target)
    return (shape if _reduction("mse_loss", reduction) == "none" else ()), valid


register(
    Operator(
        name="mse_loss",
        family="torch",
        params=(
            Param("input", "tensor", required=True),
            Param("target", "tensor", required=True),
            Param("size_average", "bool", default=None),
            Param("reduce", "bool", default=None),
            Param("reduction", "str", default="mean", choices=REDUCTIONS),
        ),
        definition=_mse_definition,
        shape_rule=_mse_shape,
        to_numpy=lambda input, target, size_average=None, reduce=None, reduction="mean": (
            f"np.square({input} - {target})"
            if reduction == "none"
            else f"np.{'mean' if reduction == 'mean' else 'sum'}(np.square({input} - {target}))"
        ),
        to_latex=lambda input, target, size_average=None, reduce=None, reduction="mean": (
            rf"\operatorname{{mse}}_{{\text{{{reduction}}}}}\left({input}, {target}\right)"
        ),
        meaning="(input - target)**2, then its mean (reduction='mean'), sum ('sum') or itself ('none')",
        example="mse_loss(x, t)",
    )
)


def _ce_checked(input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing):
    _legacy("cross_entropy", size_average, reduce)
    if weight is not None:
        raise InputError("cross_entropy: weight= is not supported")
    if sp.sympify(label_smoothing) != 0:
        raise InputError("cross_entropy: label_smoothing= is not supported")
    if tuple(input) != tuple(target):
        raise InputError(
            "cross_entropy: only class-probability targets (of the input's shape) are supported, "
            f"got input {list(input)} and target {list(target)}"
        )
    if len(tuple(input)) not in (1, 2):
        raise InputError(f"cross_entropy: expected a 1-D or 2-D input, got {len(tuple(input))}-D")
    return _reduction("cross_entropy", reduction)


def _ce_definition(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0,
):
    reduction = _ce_checked(
        input.shape, target.shape, weight, size_average, ignore_index, reduce, reduction, label_smoothing
    )
    axis = input.ndim - 1
    logp = normalised_tensor("cross_entropy", input, axis, True)
    product = elementwise_tensor(lambda t, lp: -t * lp, target, logp, zero_preserving=True)
    per = reduction_tensor(product, axis, False, "cross_entropy", total)
    batch = input.shape[0] if input.ndim == 2 else sp.S.One
    return reduced_loss("cross_entropy", per, reduction, batch)


def _ce_shape(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0,
):
    reduction = _ce_checked(input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing)
    per = reduced_shape(tuple(input), (len(tuple(input)) - 1,), False)
    return (per if reduction == "none" else ()), sp.true


def _ce_numpy(
    input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0
):
    per = f"(-np.sum({target} * _log_softmax({input}, axis=-1), axis=-1))"
    return {"none": per, "sum": f"np.sum({per})", "mean": f"np.mean({per})"}[reduction]


register(
    Operator(
        name="cross_entropy",
        family="torch",
        params=(
            Param("input", "tensor", required=True),
            Param("target", "tensor", required=True),
            Param("weight", "tensor", default=None),
            Param("size_average", "bool", default=None),
            Param("ignore_index", "int", default=-100),
            Param("reduce", "bool", default=None),
            Param("reduction", "str", default="mean", choices=REDUCTIONS),
            Param("label_smoothing", "number", default=0),
        ),
        definition=_ce_definition,
        shape_rule=_ce_shape,
        to_numpy=_ce_numpy,
        to_latex=lambda input, target, **_: rf"\operatorname{{CE}}\left({input}, {target}\right)",
        numpy_helpers=(
            "_floating",
            "_log_softmax",
            "_log_softmax_block",
            "_row_blocks",
            "_normalised",
            "_in_row_blocks",
        ),
        meaning="-sum(target * log_softmax(input, class axis)) per sample (class-probability targets), "
        "then the mean over the batch (reduction='mean'), the sum or each ('none')",
        example="cross_entropy(s, t)",
    )
)


# -- layer_norm ------------------------------------------------------------------------------------
_EPS = sp.Rational(1, 100000)


def _normalized_axes(input_shape, normalized_shape) -> tuple[tuple[int, ...], sp.Boolean]:
    # the trailing axes normalised, and the condition that their sizes are normalized_shape's
    dims = tuple(normalized_shape) if isinstance(normalized_shape, tuple | list) else (normalized_shape,)
    n = len(tuple(input_shape))
    if not 1 <= len(dims) <= n:
        raise InputError(f"layer_norm: normalized_shape {list(dims)} does not fit an input of dimension {n}")
    tail = tuple(input_shape)[n - len(dims) :]
    same = sp.And(*(sp.Eq(sp.sympify(a), sp.sympify(b)) for a, b in zip(tail, dims, strict=True)))
    return tuple(range(n - len(dims), n)), same


def _layer_norm_definition(input, normalized_shape, weight=None, bias=None, eps=_EPS):
    from ..ir import from_scalar
    from .table import OPERATORS

    axes, same = _normalized_axes(input.shape, normalized_shape)
    call = {name: OPERATORS[name].definition for name in ("mean", "var", "subtract", "divide", "sqrt", "add")}
    centred = call["subtract"](input, call["mean"](a=input, axis=axes, keepdims=True))
    spread = call["sqrt"](call["add"](call["var"](a=input, axis=axes, keepdims=True), from_scalar(sp.sympify(eps))))
    out = call["divide"](centred, spread)
    if weight is not None:
        out = OPERATORS["multiply"].definition(out, weight)
    if bias is not None:
        out = call["add"](out, bias)
    return Tensor(shape=out.shape, element=out.element, zero_outside=False, valid=sp.And(out.valid, same))


def _layer_norm_shape(input, normalized_shape, weight=None, bias=None, eps=_EPS):
    _, same = _normalized_axes(input, normalized_shape)
    shape, valid = broadcast_shapes(input, *(s for s in (weight, bias) if s is not None))
    return shape, sp.And(valid, same)


def _sd_layer_norm(x, k, w, b, eps):
    """torch.nn.functional.layer_norm over the last k axes (biased variance)."""
    x = np.asarray(x, dtype=float)
    axes = tuple(range(x.ndim - k, x.ndim))
    out = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out


numpy_helper("_sd_layer_norm", _sd_layer_norm)


def _layer_norm_numpy(input, normalized_shape, weight=None, bias=None, eps=_EPS):
    k = len(normalized_shape) if isinstance(normalized_shape, tuple | list) else 1
    return f"_sd_layer_norm({input}, {k}, {weight}, {bias}, {float(eps)!r})"


register(
    Operator(
        name="layer_norm",
        family="torch",
        params=(
            Param("input", "tensor", required=True),
            Param("normalized_shape", "ints", required=True),
            Param("weight", "tensor", default=None),
            Param("bias", "tensor", default=None),
            Param("eps", "number", default=_EPS),
        ),
        definition=_layer_norm_definition,
        shape_rule=_layer_norm_shape,
        to_numpy=_layer_norm_numpy,
        to_latex=lambda input, normalized_shape, weight=None, bias=None, eps=_EPS: (
            rf"\operatorname{{LayerNorm}}\left({input}\right)"
        ),
        numpy_helpers=("_sd_layer_norm",),
        meaning="(x - mean) / sqrt(var + eps) * weight + bias, mean and biased var over the trailing "
        "normalized_shape axes",
        example="layer_norm(x, (D,), gamma, beta)",
    )
)
