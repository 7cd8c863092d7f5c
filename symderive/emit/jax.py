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
from .codegen import (
    _assumption_text,
    _fmt_sizes,
    _shape_text,
    _shapes_line,
    format_source,
    parse_module,
    run_module,
    size_code,
)
from .frameworks import (
    ELEMENTWISE,
    Spelling,
    Target,
    compare,
    conv_options,
    evaluated_cases,
    helper_sources,
    ints_code,
    layer_and_functions,
    pool_options,
    register_target,
    shared_lowerings,
    signal_helpers,
    test_cases,
    tests_head,
)
from .torch import _doc, _targets, _tuple

# -- one lowering per operator (beside the shared ones, frameworks.shared_lowerings) --------------------


def _normalised(log: bool):
    fn = "log_softmax" if log else "softmax"
    return lambda c, x, axis=None: f"jax.nn.{fn}({x}, axis={SPELLING.dims(c, axis, 'x')})"


def _conv(n: int):
    def lower(c, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):

        s, p, d = conv_options(n, stride, padding, dilation)
        if isinstance(p, str):
            raise SPELLING.refusal(f"conv{n}d with padding={p!r}")
        return f"{c.helper('_conv')}({input}, {weight}, {bias}, {s}, {p}, {d}, {int(groups)})"

    return lower


def _avg_pool2d(
    c, input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    kernel, stride, pads, override = pool_options(kernel_size, stride, padding, ceil_mode, divisor_override)
    return f"{c.helper('_avg_pool2d')}({input}, {kernel}, {stride}, {pads}, {bool(count_include_pad)}, {override})"


def _mse_loss(c, input, target, size_average=None, reduce=None, reduction="mean"):
    per = f"({input} - {target}) ** 2"
    return {"none": f"({per})", "sum": f"jnp.sum({per})", "mean": f"jnp.mean({per})"}[reduction]


def _layer_norm(c, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = len(normalized_shape) if isinstance(normalized_shape, tuple | list) else 1
    return f"{c.helper('_layer_norm')}({input}, {k}, {weight}, {bias}, {float(eps)!r})"


def _pad(c, array, pad_width, mode="constant", constant_values=0):
    from ..core.ops.elementwise import option_code

    return f"jnp.pad({array}, {option_code(pad_width)})"


def _logsumexp(c, a, axis=None, b=None, keepdims=False, return_sign=False):
    if return_sign:
        raise SPELLING.refusal("logsumexp with return_sign=True")
    return f"jax.nn.logsumexp({a}, axis={SPELLING.dims(c, axis)}, b={b}, keepdims={bool(keepdims)})"


def _transpose(c, a, axes=None):
    n = c.ndim("a")
    if axes is None:
        return f"jnp.transpose({a})"
    order = tuple(int(v) % n for v in (axes if isinstance(axes, tuple | list) else (axes,)))
    return f"jnp.transpose({a}, {order})"


def _f_softplus(c, input, beta=1, threshold=20):
    beta, threshold = float(beta), float(threshold)
    return f"jnp.where({input} * {beta!r} > {threshold!r}, {input}, jnp.logaddexp({input} * {beta!r}, 0.0) / {beta!r})"


SPELLING = Spelling(
    name="jax",
    xp="jnp",
    nn="jax.nn",
    axis="axis",
    keepdims="keepdims",
    functions={
        **{name: f"jnp.{name}" for name in ELEMENTWISE},
        **{name: f"jax.lax.{name}" for name in ("erf", "erfc")},
        **{name: f"jax.nn.{name}" for name in ("softmax", "log_softmax")},
        "expit": "jax.nn.sigmoid",
        "sigmoid": "jax.nn.sigmoid",
    },
)

LOWERINGS = {
    **shared_lowerings(SPELLING),
    "softplus": lambda c, x: f"jnp.logaddexp({x}, 0.0)",
    "gelu": lambda c, input, approximate="none": f"jax.nn.gelu({input}, approximate={approximate == 'tanh'})",
    "F.softplus": _f_softplus,
    "where": lambda c, condition, x=None, y=None: f"jnp.where({condition}, {x}, {y})",
    "clip": lambda c, a, a_min=None, a_max=None: f"jnp.clip({a}, {a_min}, {a_max})",
    "transpose": _transpose,
    "outer": lambda c, a, b: f"jnp.outer({a}, {b})",
    "dot": lambda c, a, b: f"jnp.dot({a}, {b})",
    "trace": lambda c, a, offset=0, axis1=0, axis2=1: f"jnp.trace({a}, {int(offset)}, {int(axis1)}, {int(axis2)})",
    "pad": _pad,
    "zeros": lambda c, shape: f"jnp.zeros({ints_code(shape)})",
    "ones": lambda c, shape: f"jnp.ones({ints_code(shape)})",
    "eye": lambda c, N, M=None, k=0: f"jnp.eye({size_code(N)}, {None if M is None else size_code(M)}, {int(k)})",
    "softmax": _normalised(False),
    "log_softmax": _normalised(True),
    "logsumexp": _logsumexp,
    "mse_loss": _mse_loss,
    "layer_norm": _layer_norm,
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "avg_pool2d": _avg_pool2d,
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
    **signal_helpers("jnp", _CROSS, "JAX"),
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
    layer, functions = layer_and_functions(layer, JAX, module_name, claims, verdicts, prove)
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

_TEST_IMPORTS = ("import jax.numpy as jnp", "import numpy", "import pytest", "from jax.test_util import check_grads")

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
    imports = ["import jax", "", 'jax.config.update("jax_enable_x64", True)', ""]
    imports += [f"{line}  # noqa: E402" for line in _TEST_IMPORTS + (f"import {module_name} as emitted",)]
    head = tests_head(layer, module_name, doc, imports[:-1] + ["", imports[-1]], [], cases)
    return head + _TESTS_BODY + (_CONSTANT_TEST if set(layer.inputs) - set(layer.differentiable) else "")
