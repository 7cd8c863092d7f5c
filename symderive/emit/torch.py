"""Proved gradients -> a PyTorch module: the layer as a ``torch.library.custom_op``.

:func:`emit_torch` writes a module that imports ``torch`` only and defines

* ``_forward`` (the forward pass in torch operations) and ``grad_<input>`` per differentiable
  input, each from a proved claim (see :mod:`symderive.emit.frameworks`);
* the op ``<name>`` in its own namespace (``symderive_<layer>_<hash>::<layer>``), with
  ``register_fake`` (the output's shape from the inputs'), ``register_autograd`` (the backward
  calls the ``grad_`` functions: torch operations, so a second backward differentiates them)
  and ``register_vmap`` (one op call per batch element);
* ``forward(**inputs)``: keyword arguments named after the layer's inputs (tensors or numbers),
  brought to one floating dtype, the op's output returned;
* an ``nn.Module`` (the layer's name in CamelCase) where the layer has parameters.

>>> src = emit_torch("linear")
>>> "torch.library.custom_op" in src and "def grad_w(*, x, g):" in src
True
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..core import tree as T
from ..core.ops import OPERATORS
from ..core.ops.nn import concrete_ints, size_ints
from ..escape import python_docstring
from .codegen import (
    Function,
    _assumption_text,
    _ordered_args,
    _shape_matches,
    _shape_text,
    _shapes_line,
    _walk,
    format_source,
    parse_module,
    run_module,
)
from .frameworks import (
    ELEMENTWISE,
    Context,
    Spelling,
    Target,
    check_functions,
    class_name,
    conv_options,
    evaluated_cases,
    helper_sources,
    input_size_bindings,
    ints_code,
    layer_and_functions,
    namespace_of,
    output_shape_code,
    parameters_of,
    pool_options,
    reduction_axes,
    register_target,
    shared_lowerings,
    signal_helpers,
    test_cases,
    tests_head,
)

# -- one lowering per operator -------------------------------------------------------------------


#: operators whose torch lowering returns a new floating tensor that nothing else reads (never an input or a
#: view of one): an arithmetic operation may write its result into it (see :func:`_arithmetic`)
_FRESH = frozenset(
    {"exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "log1p", "expm1", "erf", "erfc", "expit", "sigmoid"}
    | {"softplus", "gelu", "silu", "elu", "F.softplus", "logaddexp", "softmax", "log_softmax"}
    | {"F.softmax", "F.log_softmax", "add", "subtract", "multiply", "divide", "matmul"}
)


def fresh(layer, node, shape) -> bool:
    """Whether the torch code of ``node`` makes a new floating tensor of ``shape`` that nothing else holds: a
    floating operation (no comparison below it, which would make an integer tensor) reading some tensor, of
    the given shape (a smaller one is broadcast afterwards).

    >>> from symderive.layer import load_layer
    >>> from symderive.core import tree as T
    >>> layer = load_layer("log_softmax_nll")
    >>> sm = T.Call("softmax", (("x", T.Ref("s")), ("axis", 1)))
    >>> fresh(layer, sm, layer.inputs["s"]), fresh(layer, T.Ref("s"), layer.inputs["s"])
    (True, False)
    """
    from ..core import tree as T
    from ..core.ops import OPERATORS

    if not (isinstance(node, T.Call) and node.op in _FRESH):
        return False
    nodes = list(_walk(node))
    if any(isinstance(n, T.Call) and OPERATORS[n.op].comparison for n in nodes):
        return False
    if not any(isinstance(n, T.Ref) for n in nodes):
        return False  # a number: a float64 0-d tensor
    return same_shape(T.build(node, layer.scope()).shape, shape)


def same_shape(a, b) -> bool:
    """Whether two symbolic shapes are equal for all sizes.

    >>> n = sp.Symbol("n")
    >>> same_shape((n, 2), (n, 2)), same_shape((n,), (n, 1))
    (True, False)
    """
    return len(a) == len(b) and all(sp.simplify(sp.sympify(x) - sp.sympify(y)) == 0 for x, y in zip(a, b, strict=True))


def _addmm(c, shape) -> str | None:
    """``a @ b + c`` (either order) of matrices ``a``, ``b`` and a ``c`` broadcast to the product's shape, as
    ``torch.addmm(c, a, b)``: the product and the sum in one BLAS call (as torch.nn.functional.linear); else None."""
    scope = c.layer.scope()
    for product, other in (("x1", "x2"), ("x2", "x1")):
        node = c.node.arg(product)
        if not (isinstance(node, T.Call) and node.op == "matmul"):
            continue
        a, b = node.arg("x1"), node.arg("x2")
        if len(T.build(a, scope).shape) == 2 and len(T.build(b, scope).shape) == 2:
            if same_shape(T.build(node, scope).shape, shape):
                return f"torch.addmm({c.code(c.node.arg(other))}, {c.code(a)}, {c.code(b)})"
    return None


def _arithmetic(symbol: str, method: str, commutative: bool):
    """``x1 <symbol> x2``, written into an operand's storage (``_in_place``) where that operand is a new tensor of
    the result's shape (:func:`fresh`): one allocation and one pass over memory fewer, when no graph is recorded."""

    def lower(c, x1, x2):
        if c is not None and c.node is not None:
            shape = T.build(c.node, c.layer.scope()).shape
            if method == "add":
                fused = _addmm(c, shape)
                if fused is not None:
                    return fused
            held = c.held
            if fresh(c.layer, c.node.arg("x1"), shape) and c.node.arg("x1") not in held:
                return f"{c.helper('_in_place')}({x1}, {x2}, {method!r})"
            if commutative and fresh(c.layer, c.node.arg("x2"), shape) and c.node.arg("x2") not in held:
                return f"{c.helper('_in_place')}({x2}, {x1}, {method!r})"
        return f"({x1} {symbol} {x2})"

    return lower


def _normalised(log: bool):
    fn = "log_softmax" if log else "softmax"

    def lower(c, x, axis=None):
        dims = SPELLING.dims(c, axis, "x")
        if len(dims) == 1:
            return f"torch.{fn}({x}, dim={dims[0]})"
        lse = f"torch.logsumexp({x}, dim={dims}, keepdim=True)"
        return f"({x} - {lse})" if log else f"torch.exp({x} - {lse})"

    return lower


def _full_reduction(op: str):
    """``sum``/``mean`` (:func:`_dot_of_product` where it applies, else the shared lowering)."""

    def lower(c, a, axis=None, dtype=None, out=None, keepdims=False, **options):
        if dtype is None and out is None and not options and not keepdims:
            dot = _dot_of_product(c, op, axis)
            if dot is not None:
                return dot
        return shared_lowerings(SPELLING)[op](c, a, axis, dtype, out, keepdims, **options)

    return lower


def _dot_of_product(c, op: str, axis) -> str | None:
    """A sum or mean over every axis of ``±sum(a * b, axis=...)`` (or of ``±(a * b)``), ``a`` and ``b`` arrays
    of the product's shape, as ``torch.dot`` of the two flattened (the products summed as they are made: no
    array of products written and read again), negated and divided by the mean's count; else None.

    >>> from symderive.layer import load_layer
    >>> layer = load_layer("log_softmax_nll")
    >>> Context(layer, TORCH).code(layer.forward_tree)
    '(torch.dot((t).reshape(-1), (torch.log_softmax(s, dim=1)).reshape(-1)) / -(t.shape[0]))'
    """
    scope = c.layer.scope()
    node = c.node.arg("a")
    if len(SPELLING.dims(c, axis)) != len(T.build(node, scope).shape):
        return None  # not every axis reduced
    negated = False
    while isinstance(node, T.Call) and node.op == "negative":
        negated, node = not negated, node.arg("x")
    inner: tuple[int, ...] = ()
    if isinstance(node, T.Call) and node.op == "sum":
        args = dict(node.args)
        if args.get("keepdims") or args.get("dtype") is not None or args.get("out") is not None:
            return None
        product = node.arg("a")
        inner = reduction_axes(args.get("axis"), len(T.build(product, scope).shape), "sum")
        node = product
    if not (isinstance(node, T.Call) and node.op == "multiply"):
        return None
    x1, x2 = node.arg("x1"), node.arg("x2")
    shape = T.build(node, scope).shape
    if not shape or not all(same_shape(T.build(x, scope).shape, shape) for x in (x1, x2)):
        return None  # a number or a broadcast operand
    if any(isinstance(n, T.Call) and OPERATORS[n.op].comparison for x in (x1, x2) for n in _walk(x)):
        return None  # an integer array
    dot = f"torch.dot(({c.code(x1)}).reshape(-1), ({c.code(x2)}).reshape(-1))"
    if op == "sum":
        return f"(-{dot})" if negated else dot
    ref = next((x.name for x in (x1, x2) if isinstance(x, T.Ref)), None)
    if ref is None:
        return None  # no input's shape gives the mean's count
    count = " * ".join(f"{ref}.shape[{k}]" for k in range(len(shape)) if k not in inner) or "1"
    return f"({dot} / {'-' if negated else ''}({count}))"


def _order(axes, n: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(reversed(range(n)))
    return tuple(int(v) % n for v in (axes if isinstance(axes, tuple | list) else (axes,)))


def _transpose(c, a, axes=None):
    n = c.ndim("a")
    order = _order(axes, n)
    gradient = _weight_gradient(c, order)
    if gradient is not None:
        return gradient
    return f"({a})" if order == tuple(range(n)) else f"torch.permute({a}, {order})"


def _weight_gradient(c, order) -> str | None:
    """``transpose(convNd(transpose(x, s), transpose(g, s)), s)``, ``s`` swapping the first two axes (stride 1,
    no padding, dilation or groups): the weight gradient of ``convNd(x, w)`` for upstream ``g``, as
    ``torch.nn.grad.convNd_weight`` (aten.convolution_backward: the kernel torch's own backward runs, about
    twice as fast as the convolution with a kernel of the output's size; differentiable twice); else None."""
    parts = weight_gradient_operands(T.Call("transpose", (("a", c.node.arg("a")), ("axes", order))))
    if parts is None:
        return None
    x, g, n = (c.code(parts[0]), c.code(parts[1]), parts[2])
    shape = ", ".join(
        [f"{g}.shape[1]", f"{x}.shape[1]"] + [f"{x}.shape[{k}] - {g}.shape[{k}] + 1" for k in range(2, n + 2)]
    )
    return f"torch.nn.grad.conv{n}d_weight({x}, ({shape}), {g})"


def _plain_convolution(op: str, args: dict, n: int) -> bool:
    """Whether a convolution's options are torch's defaults: stride 1, no padding, dilation or groups, no bias."""

    if args.get("bias") is not None or int(args.get("groups", 1)) != 1 or isinstance(args.get("padding", 0), str):
        return False
    extra = size_ints(op, "output_padding", args.get("output_padding", 0), n)
    return (
        concrete_ints(op, "stride", args.get("stride", 1), n, 1) == (1,) * n
        and concrete_ints(op, "dilation", args.get("dilation", 1), n, 1) == (1,) * n
        and concrete_ints(op, "padding", args.get("padding", 0), n, 0) == (0,) * n
        and all(e == 0 for e in extra)
    )


def weight_gradient_operands(node) -> tuple[T.Node, T.Node, int] | None:
    """(x, g, N) when ``node`` is ``transpose(convNd(transpose(x, s), transpose(g, s)), s)`` with ``s`` swapping the
    first two axes, of names ``x`` and ``g`` and a plain convolution (:func:`_plain_convolution`); else None.

    >>> s = (1, 0, 2, 3)
    >>> inner = T.Call("conv2d", (("input", T.Call("transpose", (("a", T.Ref("x")), ("axes", s)))),
    ...                           ("weight", T.Call("transpose", (("a", T.Ref("g")), ("axes", s))))))
    >>> weight_gradient_operands(T.Call("transpose", (("a", inner), ("axes", s))))
    (Ref(name='x'), Ref(name='g'), 2)
    """
    if not (isinstance(node, T.Call) and node.op == "transpose"):
        return None
    inner = node.arg("a")
    if not (isinstance(inner, T.Call) and inner.op in ("conv1d", "conv2d")):
        return None
    n = int(inner.op[4])
    swap = (1, 0, *range(2, n + 2))
    if _order(dict(node.args).get("axes"), n + 2) != swap:
        return None
    args = dict(inner.args)
    operands = []
    for param in ("input", "weight"):
        arg = args.get(param)
        if not (isinstance(arg, T.Call) and arg.op == "transpose" and isinstance(arg.arg("a"), T.Ref)):
            return None
        if _order(dict(arg.args).get("axes"), n + 2) != swap:
            return None
        operands.append(arg.arg("a"))
    if not _plain_convolution(inner.op, args, n):
        return None
    return operands[0], operands[1], n


def fused_convolution_gradients(trees: Mapping[str, object]) -> tuple[str, str, int] | None:
    """(x, w, N) when the gradients of ``x`` and ``w`` (input name -> claim tree) are those of ``convNd(x, w)`` for
    upstream ``g`` (stride 1, no padding): ``conv_transposeNd(g, w)`` and the weight gradient of
    :func:`weight_gradient_operands`, which one call of aten.convolution_backward gives together; else None.

    >>> from symderive.layer import load_layer
    >>> from symderive.core.parse import parse_claim
    >>> from symderive.emit.codegen import known_claims
    >>> layer = load_layer("conv2d_nchw")
    >>> fused_convolution_gradients({w: parse_claim(known_claims(layer, w)[0], layer, w).tree for w in ("x", "w")})
    ('x', 'w', 2)
    """
    for x, tree in trees.items():
        if not (isinstance(tree, T.Call) and tree.op in ("conv_transpose1d", "conv_transpose2d")):
            continue
        n = int(tree.op[-2])
        args = dict(tree.args)
        if args.get("input") != T.Ref("g") or not isinstance(args.get("weight"), T.Ref):
            continue
        w = args["weight"].name
        if not _plain_convolution(tree.op, args, n) or w not in trees:
            continue
        if weight_gradient_operands(trees[w]) == (T.Ref(x), T.Ref("g"), n):
            return x, w, n
    return None


def _outer(c, a, b):
    return f"torch.outer(({a}).reshape(-1), ({b}).reshape(-1))"


def _dot(c, a, b):
    if c.ndim("a") == 0 or c.ndim("b") == 0:
        return f"({a} * {b})"
    if c.ndim("a") > 2 or c.ndim("b") > 2:
        raise SPELLING.refusal("dot of arrays with more than two axes")
    return f"({a} @ {b})"


def _where(c, condition, x=None, y=None):
    return f"torch.where(torch.as_tensor({condition}).bool(), {x}, {y})"


def _clip(c, a, a_min=None, a_max=None):
    return f"torch.clamp({a}, {a_min}, {a_max})"


def _conv(n: int):
    def lower(c, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):

        s, p, d = conv_options(n, stride, padding, dilation)
        return f"torch.nn.functional.conv{n}d({input}, {weight}, {bias}, {s}, {p!r}, {d}, {int(groups)})"

    return lower


def _avg_pool2d(
    c, input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    kernel, stride, pads, override = pool_options(kernel_size, stride, padding, ceil_mode, divisor_override)
    return (
        f"torch.nn.functional.avg_pool2d({input}, {kernel}, {stride}, {pads}, False, "
        f"{bool(count_include_pad)}, {override})"
    )


def _mse_loss(c, input, target, size_average=None, reduce=None, reduction="mean"):
    return f"torch.nn.functional.mse_loss({input}, {target}, reduction={reduction!r})"


def _layer_norm(c, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = len(normalized_shape) if isinstance(normalized_shape, tuple | list) else 1
    shape = f"({input}).shape[-{k}:]"
    return f"torch.nn.functional.layer_norm({input}, {shape}, {weight}, {bias}, {float(eps)!r})"


def _pad(c, array, pad_width, mode="constant", constant_values=0):
    n = c.ndim("array")
    widths = pad_width if isinstance(pad_width, tuple | list) else (pad_width,)
    if len(widths) and not isinstance(widths[0], tuple | list):
        widths = (tuple(widths),) * n if len(widths) == 2 else ((widths[0], widths[0]),) * n
    if len(widths) == 1 and n > 1:
        widths = tuple(widths) * n
    flat = [v for pair in reversed(widths) for v in (pair if isinstance(pair, tuple | list) else (pair, pair))]
    return f"torch.nn.functional.pad({array}, {ints_code(flat)})"


def _constructor(fn: str):
    return lambda c, shape: f"torch.{fn}({ints_code(shape)}, dtype=torch.float64)"


def _eye(c, N, M=None, k=0):
    if k != 0:
        raise SPELLING.refusal("eye with k != 0")
    return f"torch.eye({size_text(N)}, {size_text(N if M is None else M)}, dtype=torch.float64)"


def _logsumexp(c, a, axis=None, b=None, keepdims=False, return_sign=False):
    if b is not None or return_sign:
        raise SPELLING.refusal("logsumexp with b= or return_sign=")
    return f"torch.logsumexp({a}, dim={SPELLING.dims(c, axis)}, keepdim={bool(keepdims)})"


def _trace(c, a, offset=0, axis1=0, axis2=1):
    return f"torch.sum(torch.diagonal({a}, {int(offset)}, {int(axis1)}, {int(axis2)}), dim=-1)"


SPELLING = Spelling(
    name="torch",
    xp="torch",
    nn="torch.nn.functional",
    axis="dim",
    keepdims="keepdim",
    ddof="correction",
    functions={
        **{name: f"torch.{name}" for name in (*ELEMENTWISE, "erf", "erfc", "softmax", "log_softmax")},
        "expit": "torch.sigmoid",
        "sigmoid": "torch.sigmoid",
    },
    # a size or constant (sqrt(d)): a 0-d float64 tensor, which does not widen float32 operands
    number=lambda code: f"torch.tensor(float({code}), dtype=torch.float64)",
    operand=lambda code: f"torch.as_tensor({code})",
)

LOWERINGS = {
    **shared_lowerings(SPELLING),
    "softplus": lambda c, x: f"torch.logaddexp({x}, torch.zeros_like({x}))",
    "gelu": lambda c, input, approximate="none": f"torch.nn.functional.gelu({input}, approximate={approximate!r})",
    "F.softplus": lambda c, input, beta=1, threshold=20: (
        f"torch.nn.functional.softplus({input}, {float(beta)!r}, {float(threshold)!r})"
    ),
    "add": _arithmetic("+", "add", True),
    "subtract": _arithmetic("-", "sub", False),
    "multiply": _arithmetic("*", "mul", True),
    "divide": _arithmetic("/", "div", False),
    "where": _where,
    "clip": _clip,
    "transpose": _transpose,
    "outer": _outer,
    "dot": _dot,
    "trace": _trace,
    "pad": _pad,
    "zeros": _constructor("zeros"),
    "ones": _constructor("ones"),
    "eye": _eye,
    "softmax": _normalised(False),
    "log_softmax": _normalised(True),
    "logsumexp": _logsumexp,
    "sum": _full_reduction("sum"),
    "mean": _full_reduction("mean"),
    "mse_loss": _mse_loss,
    "layer_norm": _layer_norm,
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "avg_pool2d": _avg_pool2d,
}


def size_text(value) -> str:
    """Python for an integer size expression."""
    from .codegen import size_code

    return size_code(value)


# -- helpers the emitted module may define ---------------------------------------------------------

_GATHER = '''def _gather(a, *index):
    """a[index] with index arrays broadcast together; reads outside a's shape are 0."""
    index = torch.broadcast_tensors(*(torch.as_tensor(i) for i in index))
    inside = torch.ones(index[0].shape, dtype=torch.bool)
    for i, n in zip(index, a.shape, strict=True):
        inside = inside & (i >= 0) & (i < n)
    clipped = tuple(torch.clamp(i, 0, n - 1) for i, n in zip(index, a.shape, strict=True))
    return torch.where(inside, a[clipped], 0)
'''

_CROSS = '''def _cross_correlation(a, b, mode):
    """The correlation of a with a kernel b no larger than a in mode "valid" (torch's conv1d/2d/3d)."""
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[a.dim() - 1]
    if mode == "valid":
        return conv(a[None, None], b[None, None])[0, 0]
    # zeros put around a first: conv's own padding= argument takes several times longer on one
    # channel (float32 512x512, 5x5 kernel: 30 ms against 3.5 ms)
    around = [p for k in reversed(b.shape) for p in (k - 1, k - 1)]
    full = conv(torch.nn.functional.pad(a, around)[None, None], b[None, None])[0, 0]
    if mode == "full":
        return full
    # "same": a's shape, centred in the full result as SciPy centres it
    index = tuple(slice((k - 1) // 2, (k - 1) // 2 + m) for k, m in zip(b.shape, a.shape, strict=True))
    return full[index]
'''

_CONV_TRANSPOSE = '''def _conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation):
    """torch.nn.functional.conv_transpose1d/2d as the input gradient of a convolution (torch.nn.grad.conv1d_input,
    conv2d_input: aten.convolution_backward, the kernel torch's own backward runs; in float64 about twice as fast)."""
    n = len(stride)
    size = [x.shape[0], w.shape[1] * groups]
    for k in range(n):
        size.append(
            (x.shape[2 + k] - 1) * stride[k] - 2 * padding[k] + dilation[k] * (w.shape[2 + k] - 1) + output_padding[k] + 1
        )
    gradient = (torch.nn.grad.conv1d_input, torch.nn.grad.conv2d_input)[n - 1]
    y = gradient(size, w, x, stride, padding, dilation, groups)
    return y if b is None else y + b.reshape((1, -1) + (1,) * n)
'''

_CONV_BACKWARD = '''def _conv_backward(x, w, g):
    """(dL/dx, dL/dw) of y = conv1d/conv2d(x, w) (stride 1, no padding) for upstream g, in one call of
    aten.convolution_backward (the kernel torch's own backward runs): conv_transpose(g, w) and
    torch.nn.grad.convNd_weight(x, w.shape, g), the values of grad_x and grad_w, together."""
    n = x.dim() - 2
    one, zero = (1,) * n, (0,) * n
    dx, dw, _ = torch.ops.aten.convolution_backward(g, x, w, None, one, zero, one, False, zero, 1, (True, True, False))
    return dx, dw
'''

_IN_PLACE = '''def _in_place(a, b, method):
    """a.<method>(b): in a's storage when no autograd graph is recorded (a is a new tensor of the result's
    shape and dtype that nothing else holds: one allocation and one pass over memory fewer), else a new tensor."""
    return getattr(a, method)(b) if torch.is_grad_enabled() else getattr(a, method + "_")(b)
'''

_FLOATING = '''def _floating(*values):
    """The values as tensors of one floating dtype (the inputs' promoted dtype, 0-d ones counting
    only when every value is 0-d, as torch promotes; the default dtype for integers)."""
    first = values[0]
    if all(isinstance(v, torch.Tensor) and v.dtype == first.dtype for v in values) and first.dtype.is_floating_point:
        return values  # already one floating dtype (the common call: a few microseconds fewer)
    tensors = [torch.as_tensor(v) for v in values]
    arrays = [t for t in tensors if t.dim() > 0] or tensors
    dtype = arrays[0].dtype
    for t in arrays[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return [t.to(dtype) for t in tensors]
'''

HELPERS = {
    "_gather": _GATHER,
    **signal_helpers("torch", _CROSS, "torch"),
    "_conv_transpose": _CONV_TRANSPOSE,
    "_in_place": _IN_PLACE,
}


_OF_DTYPE = '''def _of_dtype(value, like):
    """value as a tensor of like's dtype: itself when it is one (the common case: no conversion called)."""
    if isinstance(value, torch.Tensor) and value.dtype == like.dtype:
        return value
    return torch.as_tensor(value).to(like.dtype)
'''


def _finish(value: str, shape: str | None, like: str) -> str:
    if shape is None:
        return f"_of_dtype({value}, {like})"
    return f"torch.broadcast_to(torch.as_tensor({value}), {shape}).to({like}.dtype).contiguous()"


TORCH = register_target(
    Target(
        name="torch",
        xp="torch",
        imports=("import torch",),
        lowerings=LOWERINGS,
        helpers=HELPERS,
        reserved=frozenset({"torch"}),
        arange=lambda n: f"torch.arange({n})",
        sum_last=lambda code: f"torch.sum({code}, dim=-1)",
        as_int=lambda code: f"torch.as_tensor({code}).long()",
        as_array=lambda code: f"torch.as_tensor({code})",
        finish=_finish,
    )
)

# -- the module -------------------------------------------------------------------------------------

#: the statements the module's check accepts besides definitions: registrations on the op
_REGISTRATIONS = ("register_fake", "register_autograd", "register_vmap")


def emit_torch(layer, claims: Mapping[str, str] | None = None, check: bool = True, verdicts=None, prove=None) -> str:
    """The source of a PyTorch module for a layer: its custom op, proved backward, ``forward`` and Module.

    ``claims``, ``verdicts`` and ``prove`` as for :func:`symderive.emit.codegen.emit_numpy`; an input
    without a proved claim is refused (:class:`symderive.emit.frameworks.NoProvedClaim`).

    >>> "def forward(*, x, w, b):" in emit_torch("linear", check=False)
    True
    """
    return emit(layer, None, claims, check, verdicts, prove)[0]


def emit(layer, module_name=None, claims=None, check=True, verdicts=None, prove=None, compile_backend="inductor"):
    """(module source, its pytest tests or None): the tests when ``module_name`` names the module to import.

    The check's cases are the tests' cases (evaluated once). ``compile_backend`` is the backend the
    tests' ``torch.compile`` check uses.

    >>> emit("linear", check=False)[1] is None
    True
    """
    layer, functions = layer_and_functions(layer, TORCH, module_name, claims, verdicts, prove)
    body = _module_body(layer, functions, "NAMESPACE")
    namespace = namespace_of(layer, body)
    source = format_source(body.replace("NAMESPACE", namespace))
    parse_module(source, ALLOWED_IMPORTS, _allowed_statement)
    cases = evaluated_cases(layer, functions) if check or module_name is not None else []
    if check:
        # run under a namespace of its own: torch keeps every op registered, and the module may be imported later
        check_module(layer, functions, source.replace(namespace, f"{namespace}_check_{uuid.uuid4().hex[:8]}"), cases)
    tests = None
    if module_name is not None:
        tests = format_source(tests_source(layer, module_name, op_name(layer), test_cases(cases), compile_backend))
    return source, tests


ALLOWED_IMPORTS = {(None, "torch", None)}


def _allowed_statement(node: ast.stmt) -> bool:
    """Definitions, the op's registrations (``op.register_fake(...)`` calls) and the Module's class."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr in _REGISTRATIONS
    return False


def op_name(layer) -> str:
    """The op's name inside its namespace: the layer's name as an identifier."""
    name = "".join(c if c.isalnum() else "_" for c in layer.name.lower()).strip("_") or "layer"
    return name if name[0].isalpha() else "layer_" + name


def _module_body(layer, functions, namespace: str) -> str:
    inputs = tuple(layer.inputs)
    op = op_name(layer)
    doc = (
        f"PyTorch operator for layer {layer.name} with its proved gradients, generated and checked by symderive.\n\n"
        f"`forward(**inputs)` calls the custom op {namespace}::{op}; its backward calls the grad_ functions, each\n"
        f"lowered from a claim symderive proved for every size (see its docstring). Regenerate with\n"
        f"`symderive codegen {layer.name} --target torch -o FILE.py` rather than editing.\n"
    )
    parts = [python_docstring(doc) + "\n\nimport torch\n"]
    helpers = helper_sources(TORCH, functions)
    trees = {fn.name[len("grad_") :]: getattr(fn, "tree", None) for fn in functions if fn.name.startswith("grad_")}
    if fused_convolution_gradients(trees) is not None:
        helpers = sorted([*helpers, _CONV_BACKWARD.strip("\n") + "\n"])
    scaled, reuse, saving = scaled_gradients(layer, functions)
    in_place = any(_scaled_in_place(layer, fn) for fn in functions)
    in_place = in_place or any("_in_place" in s.helpers for s in (*scaled.values(), *([saving] if saving else [])))
    if in_place and not any(h.startswith("def _in_place") for h in helpers):
        helpers = sorted([*helpers, _IN_PLACE.strip("\n") + "\n"])
    parts += helpers
    parts += [_FLOATING, _OF_DTYPE]
    parts += [fn.source() for fn in functions]
    parts += [saving.source()] if saving else []
    parts += [fn.source() for fn in scaled.values()]
    annotated = ", ".join(f"{n}: torch.Tensor" for n in inputs)
    names = ", ".join(inputs)
    shape_doc = (
        f"Shapes: {_shapes_line(layer, inputs)} -> {layer.output} {_shape_text(layer.forward.shape, layer)}.\n"
        f"Assumes: {_assumption_text(layer)}."
    )
    alias = layer.forward_tree is None or _may_alias(layer.forward_tree)
    keywords = ", ".join(f"{n}={n}" for n in inputs)
    result = f"_forward_saving({keywords})" if saving else f"_forward({keywords})"
    op_body = [f"@torch.library.custom_op({namespace + '::' + op!r}, mutates_args=())"]
    returns = "tuple[torch.Tensor, torch.Tensor]" if saving else "torch.Tensor"
    op_body.append(f"def {op}({annotated}) -> {returns}:")
    what = f"Layer {layer.name} as one operator (inputs of one floating dtype)."
    if saving:
        what += (
            f"\n\nIts outputs: {layer.output}, and {reuse.text('log_softmax')} for the backward (not differentiable;"
            f" forward() returns {layer.output} only)."
        )
    op_body.append("    " + _doc(f"{what}\n\n{shape_doc}"))
    op_body.append(f"    return {result}.clone()" if alias else f"    return {result}")
    parts.append("\n".join(op_body) + "\n")
    fake = [f"@{op}.register_fake", f"def _fake({names}):"]
    fake.append("    " + python_docstring("The outputs' shapes and dtypes, from the inputs' shapes."))
    fake += ["    " + line for line in input_size_bindings(layer)]
    second = f", torch.empty_like({reuse.x})" if saving else ""
    fake.append(f"    return {inputs[0]}.new_empty({output_shape_code(layer)}){second}")
    parts.append("\n".join(fake) + "\n")
    parts.append(_autograd_source(layer, functions, op, scaled, reuse if saving else None))
    parts.append(_vmap_source(layer, op, two=saving is not None))
    parts.append(_forward_source(layer, op, shape_doc, first=saving is not None))
    module = _module_class_source(layer)
    if module:
        parts.append(module)
    return "\n\n".join(parts)


#: the op's second output where it has one (:class:`Reuse`): in the backward and the scaled gradient (a leading
#: underscore: no input of a layer is named so, see :func:`reused_normalisation`)
_SAVED = "_saved"


@dataclass(frozen=True)
class Reuse:
    """The forward's ``log_softmax(x, axis)``, which the op returns as a second output (not differentiable) and
    saves, whose exp is a scaled gradient's ``softmax(x, axis)`` (:func:`scaled_gradient`)."""

    forward: T.Call
    gradient: T.Call
    x: str
    axes: tuple[int, ...]

    def text(self, op: str) -> str:
        """``softmax(s, axis=1)``: the normalisation ``op`` of the input, in the claim language."""
        axes = self.axes[0] if len(self.axes) == 1 else self.axes
        return f"{op}({self.x}, axis={axes})"


def reused_normalisation(layer, gradients) -> Reuse | None:
    """The :class:`Reuse` of a layer whose forward computes ``log_softmax(x, axis)`` of an input ``x`` and one of
    whose scaled gradients (``gradients``: proved grad_ functions with a scaled form) reads ``softmax(x, axis)``
    of the same input and axes; else None.

    >>> from symderive.layer import load_layer
    >>> from symderive.core.parse import parse_claim
    >>> from symderive.emit.frameworks import FormFunction
    >>> layer, claim = load_layer("log_softmax_nll"), "(softmax(s, axis=1) - t) / N"
    >>> fn = FormFunction("grad_s", ("s", "t"), [], "", None, form=claim, tree=parse_claim(claim, layer, "s").tree)
    >>> reused_normalisation(layer, [fn]).text("log_softmax")
    'log_softmax(s, axis=1)'
    """
    if layer.forward_tree is None or _SAVED in layer.inputs:
        return None

    def key(node, op: str):
        if not (isinstance(node, T.Call) and node.op == op):
            return None
        x = dict(node.args).get("x")
        if not (isinstance(x, T.Ref) and x.name in layer.inputs):
            return None
        return x.name, reduction_axes(dict(node.args).get("axis"), len(layer.inputs[x.name]), "sum")

    logs = {key(n, "log_softmax"): n for n in _walk(layer.forward_tree) if key(n, "log_softmax") is not None}
    for fn in gradients:
        for node in _walk(getattr(fn, "tree", None) or T.Num(0)):
            k = key(node, "softmax")
            if k is not None and k in logs:
                return Reuse(logs[k], node, *k)
    return None


def forward_saving(layer, forward: Function, reuse: Reuse) -> Function | None:
    """``_forward_saving``: the op's body where it has a second output (:class:`Reuse`): the forward pass as
    ``_forward`` computes it, with its log_softmax computed once, and that log_softmax; None where the forward's
    value is broadcast to the output's shape (then the op has one output)."""
    tree = layer.forward_tree
    if not _shape_matches(layer, T.build(tree, layer.scope()).shape, layer.forward.shape):
        return None
    ctx = Context(layer, TORCH)
    normalisation = ctx.code(reuse.forward)
    ctx = Context(layer, TORCH, named={reuse.forward: _SAVED}, held=frozenset({reuse.forward}))
    code = ctx.code(tree)
    reads = {n.name for n in _walk(tree) if isinstance(n, T.Ref) and n.name in layer.inputs}
    like = _ordered_args(layer, reads)[0]
    doc = (
        f"({layer.output}, {reuse.text('log_softmax')}): the op's two outputs, the forward pass as _forward computes "
        f"it (its log_softmax computed once) and that log_softmax, which the backward reuses."
    )
    body = [*forward.body[:-1], f"{_SAVED} = {normalisation}", f"return {TORCH.finish(code, None, like)}, {_SAVED}"]
    return Function("_forward_saving", forward.args, body, doc, forward.expected, forward.helpers | ctx.helpers)


def scaled_gradients(layer, functions) -> tuple[dict, Reuse | None, Function | None]:
    """(input -> its :func:`scaled_gradient`, the :class:`Reuse` of the op's second output or None, the op's
    body returning both outputs (:func:`forward_saving`) or None)."""
    grads = [fn for fn in functions if fn.name.startswith("grad_")]
    plain = {fn.name[len("grad_") :]: scaled_gradient(layer, fn) for fn in grads}
    reuse = reused_normalisation(layer, [fn for fn in grads if plain[fn.name[len("grad_") :]] is not None])
    forward = next(fn for fn in functions if fn.name == "_forward")
    saving = forward_saving(layer, forward, reuse) if reuse is not None else None
    # with a second output, the gradients that read its softmax take it: made again with it
    scaled = {fn.name[len("grad_") :]: scaled_gradient(layer, fn, reuse) for fn in grads} if saving else plain
    return {n: f for n, f in scaled.items() if f is not None}, reuse, saving


def scaled_gradient(layer, fn, reuse: Reuse | None = None) -> Function | None:
    """``_scaled_grad_<x>``: a loss layer's gradient ``X / c`` (or ``X * c``, ``c * X``), ``c`` a number, times
    the upstream ``g`` (0-d), as ``X * (g / c)`` written into ``X``'s storage where ``X`` is a new tensor of the
    gradient's shape (:func:`fresh`): the division by ``c`` and the product with ``g`` in one pass over the
    gradient instead of two. None when the claim is not of that form (the backward then scales ``grad_<x>``).
    With ``reuse`` (:func:`reused_normalisation`), a keyword ``_saved`` takes the op's saved log_softmax, whose
    exp is the gradient's softmax (None: the softmax computed from the input, as when a graph is recorded).

    >>> from symderive.layer import load_layer
    >>> from symderive.core.parse import parse_claim
    >>> from symderive.emit.frameworks import FormFunction
    >>> layer, claim = load_layer("log_softmax_nll"), "(softmax(s, axis=1) - t) / N"
    >>> fn = FormFunction("grad_s", ("s", "t"), ["N = s.shape[0]", "return ..."], "dL/ds", None,
    ...                   form=claim, tree=parse_claim(claim, layer, "s").tree)
    >>> print(scaled_gradient(layer, fn).body[-1])
    return _of_dtype(_in_place(_in_place(torch.softmax(s, dim=1), t, 'sub'), (g / ((N))), 'mul'), s)
    """
    tree = getattr(fn, "tree", None)
    if not (layer.is_loss and fn.name.startswith("grad_") and isinstance(tree, T.Call)):
        return None
    wrt = fn.name[len("grad_") :]
    if tree.op == "divide":
        pairs, symbol = [(tree.arg("x1"), tree.arg("x2"))], "/"
    elif tree.op == "multiply":
        pairs, symbol = [(tree.arg("x1"), tree.arg("x2")), (tree.arg("x2"), tree.arg("x1"))], "*"
    else:
        return None
    scope = layer.scope()
    for array, number in pairs:
        if T.build(number, scope).shape != () or not fresh(layer, array, layer.inputs[wrt]):
            continue
        if not fn.body or not fn.body[-1].startswith("return "):
            return None
        ctx = Context(layer, TORCH)
        args, saved_doc = (*fn.args, "g"), ""
        if reuse is not None and any(n == reuse.gradient for n in _walk(array)):
            softmax = ctx.code(reuse.gradient)
            ctx = Context(
                layer, TORCH, named={reuse.gradient: f"({softmax} if {_SAVED} is None else torch.exp({_SAVED}))"}
            )
            args = (*args, f"{_SAVED}=None")
            saved_doc = (
                f"{_SAVED}: the op's second output {reuse.text('log_softmax')}, whose exp is {reuse.text('softmax')} "
                f"(log_softmax is log of softmax): one exponential pass instead of a softmax's three.\n"
            )
        number_code = ctx.code(number)
        factor = f"(g {symbol} ({number_code}))"
        code = f"{ctx.helper('_in_place')}({ctx.code(array)}, {factor}, 'mul')"
        like = wrt if wrt in fn.args else fn.args[0]
        done = "division by" if symbol == "/" else "product with"
        doc = (
            f"g * dL/d{wrt} for the op's backward, g the upstream gradient (a number).\n\n"
            f"dL/d{wrt} = {fn.form}, proved by symderive for layer {layer.name}; its {done} "
            f"{number_code.removeprefix('(').removesuffix(')')} done on g: one pass over the gradient fewer.\n"
            + saved_doc
            + fn.doc.partition("\n\n")[2]
        )
        body = [*fn.body[:-1], f"return {TORCH.finish(code, None, like)}"]
        return Function(f"_scaled_{fn.name}", args, body, doc, fn.expected, fn.helpers | ctx.helpers)
    return None


def _scaled_in_place(layer, fn) -> bool:
    """Whether the backward of a loss layer scales ``fn``'s gradient by ``g`` in its storage (a new tensor)."""
    name = fn.name[len("grad_") :]
    return layer.is_loss and fn.name.startswith("grad_") and fresh(layer, getattr(fn, "tree", None), layer.inputs[name])


def _may_alias(node) -> bool:
    # the op's output must not be an input or a view of one: a bare name, a transpose or a slice is copied
    from ..core import tree as T

    return isinstance(node, T.Ref) or (isinstance(node, T.Call) and node.op in {"transpose", "getitem", "positive"})


def _autograd_source(layer, functions, op: str, scaled: Mapping, reuse: Reuse | None) -> str:
    inputs = tuple(layer.inputs)
    grads = {fn.name[len("grad_") :]: fn for fn in functions if fn.name.startswith("grad_")}
    # the output is saved only where a claim reads it (a saved tensor costs the op's every call)
    reads_output = any(layer.output in fn.args for fn in grads.values())
    saved = [*inputs, layer.output] if reads_output else list(inputs)
    output = "output[0]" if reuse else "output"
    lines = ["def _setup_context(ctx, inputs, output):"]
    if reuse is None:
        what = f"Saves the inputs{' and the output' if reads_output else ''} for the backward."
        lines += [
            "    " + python_docstring(what),
            f"    ctx.save_for_backward(*inputs{', ' + output if reads_output else ''})",
        ]
    else:
        what = (
            f"Saves the inputs{' and the output' if reads_output else ''} and the second output "
            f"({reuse.text('log_softmax')}) for the backward; the second output has no gradient (none is made)."
        )
        lines += ["    " + _doc(what)]
        lines.append(f"    ctx.save_for_backward(*inputs{', ' + output if reads_output else ''}, output[1])")
        lines += ["    ctx.mark_non_differentiable(output[1])", "    ctx.set_materialize_grads(False)"]
        saved.append(_SAVED)
    lines += ["", "", "def _backward(ctx, g, _=None):" if reuse else "def _backward(ctx, g):"]
    doc = (
        "The gradients of the inputs from the proved claims (grad_ functions); a constant of the layer\n"
        "(not differentiated) has none: asking for it is an error. The grad_ functions are torch operations,\n"
        "so a second backward (create_graph=True) differentiates them."
    )
    if reuse is not None:
        doc += (
            f"\nThe saved {reuse.text('log_softmax')} stands for {reuse.text('softmax')} (its exp) unless a graph is\n"
            f"recorded: a second backward differentiates the softmax computed from {reuse.x}."
        )
    lines.append("    " + _doc(doc))
    if reuse is not None:
        lines.append("    if g is None:  # no gradient reached the op's first output (grads are not materialised)")
        lines.append(f"        return {_tuple(['None'] * len(inputs))}")
    lines.append(f"    {_targets(saved)} = ctx.saved_tensors")
    if not layer.is_loss:
        lines.append("    g = g.contiguous()")
    values = []
    fused = fused_convolution_gradients({n: getattr(fn, "tree", None) for n, fn in grads.items()})
    if fused is not None:
        x, w, _ = fused
        i, j = inputs.index(x), inputs.index(w)
        lines.append(f"    # d{x} and d{w} (grad_{x}, grad_{w}) from one call of the kernel torch's own backward runs")
        lines.append(f"    both = ctx.needs_input_grad[{i}] and ctx.needs_input_grad[{j}]")
        lines.append(f"    d{x}, d{w} = _conv_backward({x}, {w}, g) if both else (None, None)")
    for k, name in enumerate(inputs):
        if fused is not None and name in fused[:2]:
            fn = grads[name]
            call = f"grad_{name}({', '.join(f'{a}={a}' for a in fn.args)})"
            values.append(f"d{name} if both else {call} if ctx.needs_input_grad[{k}] else None")
        elif name in grads:
            fn = grads[name]
            call = f"grad_{name}({', '.join(f'{a}={a}' for a in fn.args)})"
            if name in scaled:
                # the division by a number and the product with g in one pass (see its docstring)
                keywords = [f"{a}={a}" for a in scaled[name].args if "=" not in a]
                if any(a.startswith(_SAVED + "=") for a in scaled[name].args):
                    keywords.append(f"{_SAVED}=None if torch.is_grad_enabled() else {_SAVED}")
                call = f"{scaled[name].name}({', '.join(keywords)})"
            elif _scaled_in_place(layer, fn):
                # the gradient is a new tensor nothing else holds: scaled by g in its storage
                call = f"_in_place({call}, g, 'mul')"
            elif layer.is_loss:
                call = f"{call} * g"
            values.append(f"{call} if ctx.needs_input_grad[{k}] else None")
        else:
            lines.append(f"    if ctx.needs_input_grad[{k}]:")
            message = f"{name} is a constant of layer {layer.name}: symderive emitted no gradient for it"
            lines.append(f"        raise RuntimeError({message!r})")
            values.append("None")
    lines.append("    return (")
    lines += [f"        {v}," for v in values]
    lines.append("    )")
    lines += ["", "", f"{op}.register_autograd(_backward, setup_context=_setup_context)"]
    return "\n".join(lines) + "\n"


def _vmap_source(layer, op: str, two: bool = False) -> str:
    inputs = tuple(layer.inputs)
    stacked = "tuple(torch.stack(o) for o in zip(*outputs)), (0, 0)" if two else "torch.stack(outputs), 0"
    lines = [
        f"def _vmap(info, in_dims, {', '.join(inputs)}):",
        "    " + python_docstring("vmap of the op: one call per batch element, stacked along a new first axis."),
        f"    args = {_tuple(inputs)}",
        "    outputs = []",
        "    for k in range(info.batch_size):",
        "        outputs.append(",
        f"            {op}(*(a if d is None else a.select(d, k) for a, d in zip(args, in_dims, strict=True)))",
        "        )",
        f"    return {stacked}",
        "",
        "",
        f"{op}.register_vmap(_vmap)",
    ]
    return "\n".join(lines) + "\n"


def _forward_source(layer, op: str, shape_doc: str, first: bool = False) -> str:
    inputs = tuple(layer.inputs)
    doc = (
        f"{layer.output} = {layer.forward_text or layer.output}: layer {layer.name} as the custom op {op},\n"
        f"differentiable by torch.autograd through its proved gradients.\n\n"
        f"Keyword arguments named after the layer's inputs (tensors or numbers), brought to one floating dtype.\n"
        f"{shape_doc}"
    )
    lines = [f"def forward(*, {', '.join(inputs)}):", "    " + _doc(doc)]
    lines.append(f"    {_targets(inputs)} = _floating({', '.join(inputs)})")
    lines.append(f"    return {op}({', '.join(inputs)}){'[0]' if first else ''}")
    return "\n".join(lines) + "\n"


def _targets(names) -> str:
    """The left side unpacking a sequence into ``names``: ``x, w`` (``(x,)`` for one name)."""
    return f"({names[0]},)" if len(names) == 1 else ", ".join(names)


def _tuple(names) -> str:
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def _doc(text: str) -> str:
    from .codegen import wrap_doc

    lines = wrap_doc(text.strip("\n")).split("\n")
    if len(lines) == 1:
        return python_docstring(lines[0])
    body = "\n".join(("    " + ln) if ln else "" for ln in lines[1:])
    return python_docstring(f"{lines[0]}\n{body}\n    ")


def _module_class_source(layer) -> str | None:
    params = parameters_of(layer)
    if not params:
        return None
    buffers = tuple(n for n in layer.constants if n in layer.inputs and len(layer.inputs[n]) == 0)
    data = tuple(n for n in layer.inputs if n not in params and n not in buffers)
    name = class_name(layer)
    init_args = ", ".join((*params, *buffers))
    lines = [f"class {name}(torch.nn.Module):"]
    lines.append(
        "    "
        + _doc(
            f"Layer {layer.name} as a torch.nn.Module: parameters {', '.join(params)}"
            + (f", constants {', '.join(buffers)} (buffers)" if buffers else "")
            + f"; forward({', '.join(data)}) calls the custom op."
        )
    )
    lines.append("")
    lines.append(f"    def __init__(self, {init_args}):")
    lines.append("        super().__init__()")
    for p in params:
        lines.append(f"        self.{p} = torch.nn.Parameter(torch.as_tensor({p}))")
    for b in buffers:
        lines.append(f"        self.register_buffer({b!r}, torch.as_tensor({b}))")
    lines.append("")
    lines.append(f"    def forward(self, {', '.join(data)}):")
    call = ", ".join(f"{n}={n if n in data else 'self.' + n}" for n in layer.inputs)
    lines.append(f"        return forward({call})")
    return "\n".join(lines) + "\n"


# -- the check --------------------------------------------------------------------------------------


def check_module(layer, functions, source: str, cases) -> None:
    """Run the module (when torch is installed) and compare its functions and op with their forms."""
    try:
        import torch
    except ImportError:
        return  # the parse check above is all that runs without torch
    namespace = run_module(parse_module(source, ALLOWED_IMPORTS, _allowed_statement), "symderive_emitted_torch")

    def to_array(v):
        return torch.tensor(np.asarray(v, dtype=float), dtype=torch.float64)

    def call_op(values, g):
        inputs = {n: to_array(values[n]).requires_grad_(n in layer.differentiable) for n in layer.inputs}
        out = namespace["forward"](**inputs)
        wrt = [n for n in layer.differentiable]
        upstream = torch.ones((), dtype=torch.float64) if g is None else to_array(g)
        grads = torch.autograd.grad(out, [inputs[n] for n in wrt], upstream)
        return out.detach().numpy(), {n: d.numpy() for n, d in zip(wrt, grads, strict=True)}

    check_functions(layer, functions, namespace, to_array, call_op, cases)


# -- the emitted tests --------------------------------------------------------------------------------

_TESTS_BODY = """

def _tensors(case, grad=False):
    return {
        n: torch.tensor(case["inputs"][n], dtype=torch.float64, requires_grad=grad and n in DIFFERENTIABLE)
        for n in INPUTS
    }


def _upstream(case):
    return torch.ones((), dtype=torch.float64) if case["g"] is None else torch.tensor(case["g"], dtype=torch.float64)


def _output_and_gradients(forward, case):
    inputs = _tensors(case, grad=True)
    output = forward(**inputs)
    grads = torch.autograd.grad(output, [inputs[n] for n in DIFFERENTIABLE], _upstream(case))
    return output, dict(zip(DIFFERENTIABLE, grads, strict=True))


def _perturbed(case):
    # a function of the gradient-checked inputs, the others held at the case's values
    inputs = _tensors(case, grad=True)

    def f(*values):
        return emitted.forward(**{**inputs, **dict(zip(GRADCHECKED, values, strict=True))})

    return f, tuple(inputs[n] for n in GRADCHECKED)


def _fast(values):
    # gradcheck moves one element at a time; past a few dozen elements its fast mode (random projections)
    return sum(v.numel() for v in values) > 48


def _close(got, expected):
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-11)


IDS = [",".join(f"{k}={v}" for k, v in case["sizes"].items()) for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_output_and_gradients_equal_symderive_evaluation(case):
    output, grads = _output_and_gradients(emitted.forward, case)
    _close(output, case["expected"]["output"])
    for name in DIFFERENTIABLE:
        _close(grads[name], case["expected"][name])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case):
    f, values = _perturbed(case)
    assert torch.autograd.gradcheck(f, values, fast_mode=_fast(values))


def test_double_backward_gradgradcheck():
    # the backward is torch operations: a second backward differentiates the proved gradients
    f, values = _perturbed(CASES[-1])
    assert torch.autograd.gradgradcheck(f, values, fast_mode=_fast(values))


@pytest.mark.parametrize("case", CASES[-1:], ids=IDS[-1:])
def test_opcheck(case):
    inputs = _tensors(case, grad=True)
    torch.library.opcheck(emitted.OP, tuple(inputs[n] for n in INPUTS))


def test_compile_fullgraph_equals_eager():
    case = CASES[-1]
    compiled = torch.compile(emitted.forward, fullgraph=True, backend=COMPILE_BACKEND)
    output, grads = _output_and_gradients(compiled, case)
    expected_output, expected_grads = _output_and_gradients(emitted.forward, case)
    torch.testing.assert_close(output, expected_output)
    for name in DIFFERENTIABLE:
        torch.testing.assert_close(grads[name], expected_grads[name])


def test_vmap_equals_one_call_per_element():
    inputs = _tensors(CASES[-1])
    second = {n: v * 0.5 if n in DIFFERENTIABLE else v for n, v in inputs.items()}
    batched = [torch.stack([inputs[n], second[n]]) for n in INPUTS]

    def f(*values):
        return emitted.forward(**dict(zip(INPUTS, values, strict=True)))

    expected = torch.stack([f(*(inputs[n] for n in INPUTS)), f(*(second[n] for n in INPUTS))])
    torch.testing.assert_close(torch.vmap(f)(*batched), expected)
"""

_CONSTANT_TEST = """

@pytest.mark.parametrize("name", CONSTANTS)
def test_gradient_of_a_constant_is_refused(name):
    case = CASES[0]
    inputs = _tensors(case, grad=True)
    inputs[name].requires_grad_(True)
    output = emitted.forward(**inputs)
    with pytest.raises(RuntimeError, match="constant"):
        torch.autograd.grad(output, [inputs[name]], _upstream(case))
"""


def tests_source(layer, module_name: str, op: str, cases, compile_backend: str = "inductor") -> str:
    """The text of the emitted pytest module for a torch module named ``module_name``."""
    doc = (
        f"Tests of {module_name} (layer {layer.name}), generated by symderive.\n\n"
        "At a few sizes (dimensions of 1 and non-square ones included), with float64 inputs drawn from a fixed\n"
        "seed: the op's output and gradients against symderive's evaluation of the forms they came from,\n"
        "torch.autograd.gradcheck and gradgradcheck (their fast mode past 48 elements), torch.library.opcheck,\n"
        "torch.compile(fullgraph=True) against eager, and torch.vmap against one call per batch element.\n"
    )
    imports = ["import pytest", "import torch", "", f"import {module_name} as emitted"]
    names = [f"emitted.OP = emitted.{op}", f"COMPILE_BACKEND = {compile_backend!r}"]
    head = tests_head(layer, module_name, doc, imports, names, cases)
    return head + _TESTS_BODY + (_CONSTANT_TEST if set(layer.inputs) - set(layer.differentiable) else "")
