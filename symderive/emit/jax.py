"""Proved gradients -> a JAX module: the layer as a ``jax.custom_vjp`` function.

:func:`emit_jax` writes a module that imports ``jax`` and ``jax.numpy`` only and defines
``_forward`` (the forward pass in ``jax.numpy``/``jax.lax`` operations), one ``grad_<input>``
per differentiable input (each from a proved claim), the ``custom_vjp`` function ``_layer``
whose backward rule calls them (jit-, vmap- and grad-of-grad-compatible: they are JAX
operations), and ``forward(**inputs)`` with the layer's inputs as keyword arguments. A
constant of the layer has no emitted gradient: differentiating with respect to it raises.

>>> "jax.custom_vjp" in emit_jax("linear", check=False)
True
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping

import numpy as np

from ..errors import InternalError
from ..escape import python_docstring
from .codegen import CodegenRefusal, _assumption_text, _fmt_sizes, _shape_text, _shapes_line, format_source, size_code
from .frameworks import (
    Target,
    cases_literal,
    compare,
    emitted_functions,
    evaluated_cases,
    gradchecked,
    helper_sources,
    parse_module,
    reduction_axes,
    register_target,
    run_module,
    test_cases,
)
from .torch import _doc, _targets, _tuple

# -- one lowering per operator ---------------------------------------------------------------------


def _refusal(what: str) -> CodegenRefusal:
    return CodegenRefusal(f"{what} has no jax lowering yet")


def _unary(fn: str):
    return lambda c, x, **_: f"{fn}({x})"


def _binary(symbol: str):
    return lambda c, x1, x2: f"({x1} {symbol} {x2})"


def _dims(c, axis, param="a"):
    return reduction_axes(axis, c.ndim(param), "sum")


def _reduce(fn: str):
    def lower(c, a, axis=None, dtype=None, out=None, keepdims=False, **options):
        if dtype is not None or out is not None:
            raise _refusal(f"{fn} with dtype= or out=")
        extra = f", ddof={options['ddof']}" if "ddof" in options else ""
        return f"jnp.{fn}({a}, axis={_dims(c, axis)}{extra}, keepdims={bool(keepdims)})"

    return lower


def _extreme(fn: str):
    return lambda c, a, axis=None, out=None, keepdims=False: (
        f"jnp.{fn}({a}, axis={_dims(c, axis)}, keepdims={bool(keepdims)})"
    )


def _normalised(log: bool):
    fn = "log_softmax" if log else "softmax"
    return lambda c, x, axis=None: f"jax.nn.{fn}({x}, axis={_dims(c, axis, 'x')})"


def _torch_normalised(log: bool):
    fn = "log_softmax" if log else "softmax"
    return lambda c, input, dim=None, _stacklevel=3, dtype=None: f"jax.nn.{fn}({input}, axis={int(dim)})"


def _ints(values) -> str:
    values = tuple(values) if isinstance(values, tuple | list) else (values,)
    return "(" + ", ".join(size_code(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def _conv(n: int):
    def lower(c, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        from ..core.ops.nn import concrete_ints

        op = f"conv{n}d"
        s = concrete_ints(op, "stride", stride, n, 1)
        d = concrete_ints(op, "dilation", dilation, n, 1)
        if isinstance(padding, str):
            raise _refusal(f"{op} with padding={padding!r}")
        p = concrete_ints(op, "padding", padding, n, 0)
        return f"{c.helper('_conv')}({input}, {weight}, {bias}, {s}, {p}, {d}, {int(groups)})"

    return lower


def _conv_transpose(n: int):
    def lower(c, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        from ..core.ops.nn import concrete_ints, size_ints

        op = f"conv_transpose{n}d"
        s = concrete_ints(op, "stride", stride, n, 1)
        d = concrete_ints(op, "dilation", dilation, n, 1)
        p = concrete_ints(op, "padding", padding, n, 0)
        e = _ints(size_ints(op, "output_padding", output_padding, n))
        c.helper("_conv")
        return f"{c.helper('_conv_transpose')}({input}, {weight}, {bias}, {s}, {p}, {e}, {int(groups)}, {d})"

    return lower


def _avg_pool2d(
    c, input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    from ..core.ops.nn import _pool_options

    kernel, stride, pads = _pool_options("avg_pool2d", kernel_size, stride, padding, ceil_mode, divisor_override)
    override = None if divisor_override is None else int(divisor_override)
    return f"{c.helper('_avg_pool2d')}({input}, {kernel}, {stride}, {pads}, {bool(count_include_pad)}, {override})"


def _signal(kind: str):
    def lower(c, in1, in2, mode="full", method="auto", boundary="fill", fillvalue=0):
        if boundary != "fill" or fillvalue != 0:
            raise _refusal(f"{kind} with boundary={boundary!r}, fillvalue={fillvalue!r}")
        if c.ndim("in1") != c.ndim("in2") or not 1 <= c.ndim("in1") <= 3:
            raise _refusal(f"{kind} of arrays of {c.ndim('in1')} and {c.ndim('in2')} axes")
        # not jax.scipy.signal's: it requires one operand no larger than the other in every mode
        c.helper("_cross_correlation")
        return f"{c.helper('_' + kind)}({in1}, {in2}, {mode!r})"

    return lower


def _mse_loss(c, input, target, size_average=None, reduce=None, reduction="mean"):
    per = f"({input} - {target}) ** 2"
    return {"none": f"({per})", "sum": f"jnp.sum({per})", "mean": f"jnp.mean({per})"}[reduction]


def _cross_entropy(
    c,
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0,
):
    per = f"(-jnp.sum({target} * jax.nn.log_softmax({input}, axis=-1), axis=-1))"
    return {"none": per, "sum": f"jnp.sum({per})", "mean": f"jnp.mean({per})"}[reduction]


def _layer_norm(c, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = len(normalized_shape) if isinstance(normalized_shape, tuple | list) else 1
    return f"{c.helper('_layer_norm')}({input}, {k}, {weight}, {bias}, {float(eps)!r})"


def _getitem(c, x, key):
    from ..core.ops.linalg import _key_code

    return f"({x})[{_key_code(key)}]"


def _pad(c, array, pad_width, mode="constant", constant_values=0):
    from ..core.ops.elementwise import option_code

    return f"jnp.pad({array}, {option_code(pad_width)})"


def _logsumexp(c, a, axis=None, b=None, keepdims=False, return_sign=False):
    if return_sign:
        raise _refusal("logsumexp with return_sign=True")
    return f"jax.nn.logsumexp({a}, axis={_dims(c, axis)}, b={b}, keepdims={bool(keepdims)})"


def _transpose(c, a, axes=None):
    n = c.ndim("a")
    if axes is None:
        return f"jnp.transpose({a})"
    order = tuple(int(v) % n for v in (axes if isinstance(axes, tuple | list) else (axes,)))
    return f"jnp.transpose({a}, {order})"


def _f_softplus(c, input, beta=1, threshold=20):
    beta, threshold = float(beta), float(threshold)
    return f"jnp.where({input} * {beta!r} > {threshold!r}, {input}, jnp.logaddexp({input} * {beta!r}, 0.0) / {beta!r})"


LOWERINGS = {
    **{name: _unary(f"jnp.{name}") for name in ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos")},
    **{name: _unary(f"jnp.{name}") for name in ("log1p", "expm1", "abs", "sign", "square")},
    "erf": _unary("jax.lax.erf"),
    "erfc": _unary("jax.lax.erfc"),
    "expit": _unary("jax.nn.sigmoid"),
    "sigmoid": _unary("jax.nn.sigmoid"),
    "relu": lambda c, input, inplace=False: f"jax.nn.relu({input})",
    "softplus": lambda c, x: f"jnp.logaddexp({x}, 0.0)",
    "gelu": lambda c, input, approximate="none": f"jax.nn.gelu({input}, approximate={approximate == 'tanh'})",
    "silu": lambda c, input, inplace=False: f"jax.nn.silu({input})",
    "leaky_relu": lambda c, input, negative_slope=0.01, inplace=False: (
        f"jax.nn.leaky_relu({input}, {float(negative_slope)!r})"
    ),
    "elu": lambda c, input, alpha=1, inplace=False: f"jax.nn.elu({input}, {float(alpha)!r})",
    "F.softplus": _f_softplus,
    "negative": lambda c, x: f"(-{x})",
    "positive": lambda c, x: f"(+{x})",
    "add": _binary("+"),
    "subtract": _binary("-"),
    "multiply": _binary("*"),
    "divide": _binary("/"),
    "power": _binary("**"),
    "matmul": _binary("@"),
    "less": _binary("<"),
    "less_equal": _binary("<="),
    "greater": _binary(">"),
    "greater_equal": _binary(">="),
    "equal": _binary("=="),
    "not_equal": _binary("!="),
    "maximum": lambda c, x1, x2: f"jnp.maximum({x1}, {x2})",
    "minimum": lambda c, x1, x2: f"jnp.minimum({x1}, {x2})",
    "logaddexp": lambda c, x1, x2: f"jnp.logaddexp({x1}, {x2})",
    "where": lambda c, condition, x=None, y=None: f"jnp.where({condition}, {x}, {y})",
    "clip": lambda c, a, a_min=None, a_max=None: f"jnp.clip({a}, {a_min}, {a_max})",
    "transpose": _transpose,
    "flip": lambda c, m, axis=None: f"jnp.flip({m}, {_dims(c, axis, 'm')})",
    "rot90": lambda c, m, k=1, axes=(0, 1): f"jnp.rot90({m}, {int(k)}, {tuple(int(a) for a in axes)})",
    "outer": lambda c, a, b: f"jnp.outer({a}, {b})",
    "dot": lambda c, a, b: f"jnp.dot({a}, {b})",
    "einsum": lambda c, subscripts, operands: f"jnp.einsum({subscripts!r}, {', '.join(operands)})",
    "trace": lambda c, a, offset=0, axis1=0, axis2=1: f"jnp.trace({a}, {int(offset)}, {int(axis1)}, {int(axis2)})",
    "diag": lambda c, v, k=0: f"jnp.diag({v}, {int(k)})",
    "pad": _pad,
    "zeros": lambda c, shape: f"jnp.zeros({_ints(shape)})",
    "ones": lambda c, shape: f"jnp.ones({_ints(shape)})",
    "zeros_like": lambda c, a: f"jnp.zeros_like({a})",
    "ones_like": lambda c, a: f"jnp.ones_like({a})",
    "eye": lambda c, N, M=None, k=0: f"jnp.eye({size_code(N)}, {None if M is None else size_code(M)}, {int(k)})",
    "getitem": _getitem,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "var": _reduce("var"),
    "std": _reduce("std"),
    "max": _extreme("amax"),
    "amax": _extreme("amax"),
    "min": _extreme("amin"),
    "amin": _extreme("amin"),
    "softmax": _normalised(False),
    "log_softmax": _normalised(True),
    "logsumexp": _logsumexp,
    "F.softmax": _torch_normalised(False),
    "F.log_softmax": _torch_normalised(True),
    "mse_loss": _mse_loss,
    "cross_entropy": _cross_entropy,
    "layer_norm": _layer_norm,
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "conv_transpose1d": _conv_transpose(1),
    "conv_transpose2d": _conv_transpose(2),
    "avg_pool2d": _avg_pool2d,
    "correlate": _signal("correlate"),
    "convolve": _signal("convolve"),
    "correlate2d": _signal("correlate"),
    "convolve2d": _signal("convolve"),
}

# -- helpers the emitted module may define ---------------------------------------------------------

_GATHER = '''def _gather(a, *index):
    """a[index] with index arrays broadcast together; reads outside a's shape are 0."""
    index = jnp.broadcast_arrays(*(jnp.asarray(i) for i in index))
    inside = jnp.ones(index[0].shape, dtype=bool)
    for i, n in zip(index, a.shape, strict=True):
        inside = inside & (i >= 0) & (i < n)
    clipped = tuple(jnp.clip(i, 0, n - 1) for i, n in zip(index, a.shape, strict=True))
    return jnp.where(inside, a[clipped], 0)
'''

_CONV = '''def _conv(x, w, b, stride, padding, dilation, groups):
    """torch.nn.functional.conv1d/conv2d (NCL/NCHW inputs, OIL/OIHW weights) as jax.lax.conv_general_dilated."""
    n = len(stride)
    spatial = "HW"[:n] if n == 2 else "H"
    numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    y = jax.lax.conv_general_dilated(
        x,
        w,
        stride,
        [(p, p) for p in padding],
        rhs_dilation=dilation,
        dimension_numbers=numbers,
        feature_group_count=groups,
        precision=jax.lax.Precision.HIGHEST,
    )
    return y if b is None else y + b.reshape((1, -1) + (1,) * n)
'''

_CONV_TRANSPOSE = '''def _conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation):
    """torch.nn.functional.conv_transpose1d/2d: the convolution whose adjoint it is, input dilated by the stride."""
    n = len(stride)
    kernel = w.shape[2:]
    # [C, O / groups, k...] -> [O, C / groups, k...], flipped in space
    c_in, o_group = w.shape[0], w.shape[1]
    w = w.reshape((groups, c_in // groups, o_group) + kernel)
    w = jnp.swapaxes(w, 1, 2).reshape((groups * o_group, c_in // groups) + kernel)
    w = jnp.flip(w, tuple(range(2, 2 + n)))
    pads = [
        (d * (k - 1) - p, d * (k - 1) - p + e)
        for k, p, e, d in zip(kernel, padding, output_padding, dilation, strict=True)
    ]
    spatial = "HW"[:n] if n == 2 else "H"
    numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    y = jax.lax.conv_general_dilated(
        x,
        w,
        (1,) * n,
        pads,
        lhs_dilation=stride,
        rhs_dilation=dilation,
        dimension_numbers=numbers,
        feature_group_count=groups,
        precision=jax.lax.Precision.HIGHEST,
    )
    return y if b is None else y + b.reshape((1, -1) + (1,) * n)
'''

_AVG_POOL2D = '''def _avg_pool2d(x, kernel, stride, padding, count_include_pad, divisor):
    """torch.nn.functional.avg_pool2d (floor mode) as a window sum."""
    lead = x.ndim - 2
    pads = ((0, 0),) * lead + tuple((p, p) for p in padding)
    window, strides = (1,) * lead + tuple(kernel), (1,) * lead + tuple(stride)

    def window_sum(a):
        return jax.lax.reduce_window(jnp.pad(a, pads), 0.0, jax.lax.add, window, strides, "VALID")

    sums = window_sum(x)
    if divisor is not None:
        return sums / divisor
    if count_include_pad or not any(padding):
        return sums / (kernel[0] * kernel[1])
    return sums / window_sum(jnp.ones_like(x))
'''

_LAYER_NORM = '''def _layer_norm(x, k, w, b, eps):
    """torch.nn.functional.layer_norm over the last k axes (biased variance)."""
    axes = tuple(range(x.ndim - k, x.ndim))
    out = (x - jnp.mean(x, axis=axes, keepdims=True)) / jnp.sqrt(jnp.var(x, axis=axes, keepdims=True) + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out
'''

_CORRELATE = '''def _correlate(a, b, mode):
    """scipy.signal.correlate(a, b, mode) of two arrays of 1 to 3 axes, as a JAX convolution."""
    if mode == "valid" and not all(p >= q for p, q in zip(a.shape, b.shape, strict=True)):
        # SciPy's valid mode with the larger second operand: convolve(a, flip(b)) with its operands swapped
        return _cross_correlation(jnp.flip(b), jnp.flip(a), mode)
    return _cross_correlation(a, b, mode)
'''

_CONVOLVE = '''def _convolve(a, b, mode):
    """scipy.signal.convolve(a, b, mode): a correlation with b flipped (commutative in mode "valid")."""
    if mode == "valid" and not all(p >= q for p, q in zip(a.shape, b.shape, strict=True)):
        a, b = b, a
    return _cross_correlation(a, jnp.flip(b), mode)
'''

_CROSS = '''def _cross_correlation(a, b, mode):
    """The correlation of a with a kernel b (no larger than a in mode "valid") as jax.lax.conv_general_dilated."""
    pads = [(0, 0) if mode == "valid" else (k - 1, k - 1) for k in b.shape]
    full = jax.lax.conv_general_dilated(
        a[None, None], b[None, None], (1,) * a.ndim, pads, precision=jax.lax.Precision.HIGHEST
    )[0, 0]
    if mode != "same":
        return full
    # "same": a's shape, centred in the full result as SciPy centres it
    index = tuple(slice((k - 1) // 2, (k - 1) // 2 + m) for k, m in zip(b.shape, a.shape, strict=True))
    return full[index]
'''

_FLOATING = '''def _floating(*values):
    """The values as arrays of one floating dtype (the inputs' promoted dtype, 0-d ones counting only
    when every value is 0-d; the default floating dtype for integers)."""
    arrays = [jnp.asarray(v) for v in values]
    ranked = [a for a in arrays if a.ndim > 0] or arrays
    dtype = jnp.result_type(*ranked)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return [a.astype(dtype) for a in arrays]
'''

HELPERS = {
    "_gather": _GATHER,
    "_conv": _CONV,
    "_conv_transpose": _CONV_TRANSPOSE,
    "_avg_pool2d": _AVG_POOL2D,
    "_layer_norm": _LAYER_NORM,
    "_correlate": _CORRELATE,
    "_convolve": _CONVOLVE,
    "_cross_correlation": _CROSS,
}


def _finish(value: str, shape: str | None, like: str) -> str:
    if shape is None:
        return f"jnp.asarray({value}, dtype={like}.dtype)"
    return f"jnp.broadcast_to(jnp.asarray({value}, dtype={like}.dtype), {shape})"


JAX = register_target(
    Target(
        name="jax",
        xp="jnp",
        imports=("import jax", "import jax.numpy as jnp"),
        lowerings=LOWERINGS,
        helpers=HELPERS,
        reserved=frozenset({"jax", "jnp"}),
        arange=lambda n: f"jnp.arange({n})",
        sum_last=lambda code: f"jnp.sum({code}, axis=-1)",
        as_int=lambda code: f"jnp.asarray({code}).astype(int)",
        as_array=lambda code: f"jnp.asarray({code})",
        finish=_finish,
    )
)

ALLOWED_IMPORTS = {(None, "jax", None), (None, "jax.numpy", "jnp")}


def _allowed_statement(node: ast.stmt) -> bool:
    """Definitions and the ``_layer.defvjp(...)`` registration."""
    if isinstance(node, ast.FunctionDef):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr == "defvjp"
    return False


# -- the module -------------------------------------------------------------------------------------


def emit_jax(layer, claims: Mapping[str, str] | None = None, check: bool = True, verdicts=None, prove=None) -> str:
    """The source of a JAX module for a layer: a ``jax.custom_vjp`` with its proved backward, and ``forward``.

    ``claims``, ``verdicts`` and ``prove`` as for :func:`symderive.emit.codegen.emit_numpy`; an input
    without a proved claim is refused (:class:`symderive.emit.frameworks.NoProvedClaim`).

    >>> "def forward(*, x, w, b):" in emit_jax("linear", check=False)
    True
    """
    return emit(layer, None, claims, check, verdicts, prove)[0]


def emit(layer, module_name=None, claims=None, check=True, verdicts=None, prove=None):
    """(module source, its pytest tests or None): the tests when ``module_name`` names the module to import.

    >>> emit("linear", check=False)[1] is None
    True
    """
    from .codegen import _as_layer, _require_module_name

    layer = _as_layer(layer)
    if module_name is not None:
        _require_module_name(module_name)
    functions = emitted_functions(layer, JAX, claims, verdicts, prove)
    source = format_source(module_source(layer, functions))
    tree = parse_module(source, ALLOWED_IMPORTS, _allowed_statement)
    cases = evaluated_cases(layer, functions) if check or module_name is not None else []
    if check:
        check_module(layer, functions, tree, cases)
    tests = None
    if module_name is not None:
        tests = format_source(tests_source(layer, module_name, test_cases(cases)))
    return source, tests


def module_source(layer, functions) -> str:
    """The module text: docstring, imports, helpers, the functions, the custom_vjp and ``forward``."""
    inputs = tuple(layer.inputs)
    doc = (
        f"JAX function for layer {layer.name} with its proved gradients, generated and checked by symderive.\n\n"
        f"`forward(**inputs)` calls the jax.custom_vjp function _layer, whose backward rule calls the grad_\n"
        f"functions, each lowered from a claim symderive proved for every size (see its docstring).\n"
        f"Regenerate with `symderive codegen {layer.name} --target jax -o FILE.py` rather than editing.\n"
    )
    parts = [python_docstring(doc) + "\n\n" + "\n".join(JAX.imports) + "\n"]
    parts += helper_sources(JAX, functions)
    parts.append(_FLOATING)
    parts += [fn.source() for fn in functions]
    shape_doc = (
        f"Shapes: {_shapes_line(layer, inputs)} -> {layer.output} {_shape_text(layer.forward.shape, layer)}.\n"
        f"Assumes: {_assumption_text(layer)}."
    )
    names = ", ".join(inputs)
    call = ", ".join(f"{n}={n}" for n in inputs)
    parts.append(
        "\n".join(
            [
                "@jax.custom_vjp",
                f"def _layer({names}):",
                "    " + _doc(f"Layer {layer.name} with its backward rule from the proved claims.\n\n{shape_doc}"),
                f"    return _forward({call})",
            ]
        )
        + "\n"
    )
    fwd = [f"def _layer_fwd({names}):"]
    fwd.append("    " + _doc("The forward rule: the output, and what the backward rule reads."))
    for name in inputs:
        if name not in layer.differentiable:
            message = f"{name} is a constant of layer {layer.name}: symderive emitted no gradient for it"
            fwd += [f"    if {name}.perturbed:", f"        raise ValueError({message!r})"]
    fwd.append(f"    {_targets(inputs)} = {_tuple([f'{n}.value' for n in inputs])}")
    fwd.append(f"    {layer.output} = _forward({call})")
    fwd.append(f"    return {layer.output}, {_tuple([*inputs, layer.output])}")
    parts.append("\n".join(fwd) + "\n")
    parts.append(_bwd_source(layer, functions))
    parts.append("_layer.defvjp(_layer_fwd, _layer_bwd, symbolic_zeros=True)\n")
    doc = (
        f"{layer.output} = {layer.forward_text or layer.output}: layer {layer.name} as a jax.custom_vjp function,\n"
        f"differentiable (jax.grad, jax.vjp, under jax.jit and jax.vmap) through its proved gradients.\n\n"
        f"Keyword arguments named after the layer's inputs (arrays or numbers), brought to one floating dtype.\n"
        f"{shape_doc}"
    )
    parts.append(
        "\n".join(
            [
                f"def forward(*, {names}):",
                "    " + _doc(doc),
                f"    {_targets(inputs)} = _floating({names})",
                f"    return _layer({names})",
            ]
        )
        + "\n"
    )
    return "\n\n".join(parts)


def _bwd_source(layer, functions) -> str:
    inputs = tuple(layer.inputs)
    grads = {fn.name[len("grad_") :]: fn for fn in functions if fn.name.startswith("grad_")}
    lines = [f"def _layer_bwd(residuals, {'g'}):"]
    lines.append(
        "    " + _doc("The backward rule: the proved gradients (grad_ functions); a constant's cotangent is zero.")
    )
    lines.append(f"    {_targets([*inputs, layer.output])} = residuals")
    lines.append("    if isinstance(g, jax.custom_derivatives.SymbolicZero):")
    lines.append(f"        g = jnp.zeros_like({layer.output})")
    values = []
    for name in inputs:
        if name in grads:
            call = f"grad_{name}({', '.join(f'{a}={a}' for a in grads[name].args)})"
            values.append(f"{call} * g" if layer.is_loss else call)
        else:
            values.append(f"jnp.zeros_like({name})")
    lines.append(f"    return {_tuple(values)}")
    return "\n".join(lines) + "\n"


# -- the check --------------------------------------------------------------------------------------


def check_module(layer, functions, tree, cases) -> None:
    """Run the module (when JAX is installed) in float64 and compare its functions and its vjp with their forms.

    Each case is one ``jax.jit`` call computing every function and the op's output and vjp (an eager JAX
    call compiles each operation anew at each shape: one compilation per case is many times faster).
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return  # the parse check above is all that runs without JAX
    with jax.enable_x64(True):
        namespace = run_module(tree, "symderive_emitted_jax")
        wrt = list(layer.differentiable)
        arguments = {fn.name: tuple(inspect.signature(namespace[fn.name]).parameters) for fn in functions}

        def everything(values, output):
            direct = {}
            for fn in functions:
                kwargs = {a: output if a == layer.output else values[a] for a in arguments[fn.name]}
                direct[fn.name] = namespace[fn.name](**kwargs)
            inputs = {n: values[n] for n in layer.inputs}

            def f(*diff):
                return namespace["forward"](**{**inputs, **dict(zip(wrt, diff, strict=True))})

            out, vjp = jax.vjp(f, *(inputs[n] for n in wrt))
            upstream = jnp.ones((), dtype=jnp.float64) if layer.is_loss else values["g"]
            return direct, out, dict(zip(wrt, vjp(upstream), strict=True))

        everything = jax.jit(everything)
        for case in cases:
            at = _fmt_sizes(case.sizes)
            values = {n: jnp.asarray(np.asarray(v, dtype=float), dtype=jnp.float64) for n, v in case.values.items()}
            output = jnp.asarray(np.asarray(case.expected["_forward"], dtype=float), dtype=jnp.float64)
            try:
                direct, out, grads = everything(values, output)
            except Exception as exc:
                raise InternalError(f"the emitted code at sizes {at} raises {type(exc).__name__}: {exc}") from exc
            for fn in functions:
                compare(f"{fn.name} at sizes {at}", direct[fn.name], case.expected[fn.name])
            compare(f"the op's output at sizes {at}", out, case.expected["_forward"])
            for name, got in grads.items():
                compare(f"the op's gradient d{name} at sizes {at}", got, case.expected[f"grad_{name}"])


# -- the emitted tests --------------------------------------------------------------------------------

_TESTS_BODY = """

def _arrays(case):
    return {n: jnp.asarray(case["inputs"][n], dtype=jnp.float64) for n in INPUTS}


def _upstream(case):
    return jnp.ones((), dtype=jnp.float64) if case["g"] is None else jnp.asarray(case["g"], dtype=jnp.float64)


def _of(names, inputs):
    # forward as a function of the named inputs, the others held at their values
    def f(*values):
        return emitted.forward(**{**inputs, **dict(zip(names, values, strict=True))})

    return f


def _output_and_gradients(inputs, g):
    # the output and the vjp of the differentiable inputs (the constants held)
    output, vjp = jax.vjp(_of(DIFFERENTIABLE, inputs), *(inputs[n] for n in DIFFERENTIABLE))
    return output, dict(zip(DIFFERENTIABLE, vjp(g), strict=True))


def _close(got, expected, rtol=1e-9, atol=1e-11):
    numpy.testing.assert_allclose(numpy.asarray(got), numpy.asarray(expected, dtype=float), rtol=rtol, atol=atol)


IDS = [",".join(f"{k}={v}" for k, v in case["sizes"].items()) for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_output_and_gradients_equal_symderive_evaluation(case):
    # under jax.jit (one compilation; test_jit_equals_eager compares it with eager dispatch)
    output, grads = jax.jit(_output_and_gradients)(_arrays(case), _upstream(case))
    _close(output, case["expected"]["output"])
    for name in DIFFERENTIABLE:
        _close(grads[name], case["expected"][name])


@pytest.mark.parametrize("case", CASES[::2], ids=IDS[::2])
def test_check_grads(case):
    # at dimensions of 1 and at non-square sizes (test_second_order_check_grads takes the last case)
    inputs = _arrays(case)
    check_grads(jax.jit(_of(GRADCHECKED, inputs)), tuple(inputs[n] for n in GRADCHECKED), order=1, modes=["rev"])


def test_second_order_check_grads():
    # the backward rule is JAX operations: reverse over reverse differentiates the proved gradients
    inputs = _arrays(CASES[-1])
    check_grads(jax.jit(_of(GRADCHECKED, inputs)), tuple(inputs[n] for n in GRADCHECKED), order=2, modes=["rev"])


def test_jit_equals_eager():
    case = CASES[-1]
    inputs, g = _arrays(case), _upstream(case)
    eager, jitted = _output_and_gradients(inputs, g), jax.jit(_output_and_gradients)(inputs, g)
    for got, expected in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager), strict=True):
        _close(got, expected, rtol=1e-12, atol=1e-12)
    _close(eager[0], case["expected"]["output"])


def test_vmap_equals_one_call_per_element():
    case = CASES[-1]
    inputs, g = _arrays(case), _upstream(case)
    second = {n: v * 0.5 if n in DIFFERENTIABLE else v for n, v in inputs.items()}

    def f(*values):
        return _output_and_gradients(dict(zip(INPUTS, values, strict=True)), g)

    batched = [jnp.stack([inputs[n], second[n]]) for n in INPUTS]
    got = jax.jit(jax.vmap(f))(*batched)
    for k, one in enumerate((inputs, second)):
        expected = jax.jit(f)(*(one[n] for n in INPUTS))
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True):
            _close(a[k], b, rtol=1e-12, atol=1e-12)
"""

_CONSTANT_TEST = """

@pytest.mark.parametrize("name", CONSTANTS)
def test_gradient_of_a_constant_is_refused(name):
    inputs = _arrays(CASES[0])
    with pytest.raises(ValueError, match="constant"):
        jax.grad(lambda v: jnp.sum(_of((name,), inputs)(v)))(inputs[name])
"""


def tests_source(layer, module_name: str, cases) -> str:
    """The text of the emitted pytest module for a JAX module named ``module_name``."""
    doc = (
        f"Tests of {module_name} (layer {layer.name}), generated by symderive.\n\n"
        "At a few sizes (dimensions of 1 and non-square ones included), with float64 inputs drawn from a fixed\n"
        "seed: the output and vjp against symderive's evaluation of the forms they came from,\n"
        "jax.test_util.check_grads (first and second order, reverse mode), jax.jit against eager, and\n"
        "jax.vmap of the function and of its vjp against one call per batch element; each under jax.jit\n"
        "but the eager check (eager JAX compiles every operation anew at every shape).\n"
    )
    constants = tuple(n for n in layer.inputs if n not in layer.differentiable)
    head = [
        python_docstring(doc),
        "",
        "import jax",
        "",
        'jax.config.update("jax_enable_x64", True)',
        "",
        "import jax.numpy as jnp  # noqa: E402",
        "import numpy  # noqa: E402",
        "import pytest  # noqa: E402",
        "from jax.test_util import check_grads  # noqa: E402",
        "",
        f"import {module_name} as emitted  # noqa: E402",
        "",
        f"INPUTS = {tuple(layer.inputs)!r}",
        f"DIFFERENTIABLE = {tuple(layer.differentiable)!r}",
        "# the differentiable inputs a finite-difference check may move one element at a time",
        f"GRADCHECKED = {gradchecked(layer)!r}",
        f"CONSTANTS = {constants!r}",
        "",
        cases_literal(layer, cases),
    ]
    return "\n".join(head) + _TESTS_BODY + (_CONSTANT_TEST if constants else "")
