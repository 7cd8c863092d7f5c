"""What the PyTorch and JAX emitters share: lowering closed forms and index forms to a framework's
array operations, the functions of an emitted module, and its check before it is written.

A :class:`Target` names a framework's spellings: one lowering per operator of the table
(``lowerings``, each taking the operator's bound arguments, tensors as code), the helpers the
emitted module may define, and the imports it may have. :mod:`symderive.emit.torch` and
:mod:`symderive.emit.jax` each define one target and the shape of their module (a
``torch.library.custom_op``, a ``jax.custom_vjp``).

The emitted functions follow the NumPy emitter's (:mod:`symderive.emit.codegen`): ``_forward``
and one ``grad_<input>`` per differentiable input, keyword arguments named after the layer's
inputs, ``g`` and, where a claim reads it, the layer's output; each returns an array of its
input's shape and dtype. A gradient comes from a proved claim only (a given one, a known one,
or the closed form ``solve`` proved); with none, the target refuses (:class:`NoProvedClaim`).
Before a module is returned it is parsed (only the imports its target allows, only definitions
and the registrations its target writes) and, where the framework is installed, run in float64
at several sizes against symderive's own evaluation of the forms the functions came from.

>>> from symderive.emit import torch as _torch_target  # each target module registers its target
>>> "torch" in TARGETS
True
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core import tree as T
from ..core.ops import OPERATORS
from ..core.ops.elementwise import normalize_axes
from ..decide.concrete import EvaluationError, evaluate
from ..errors import InputError, InternalError
from ..escape import python_docstring
from . import codegen as numpy_emitter
from .codegen import (
    CHECK_ATOL,
    CHECK_RTOL,
    CodegenRefusal,
    Function,
    IndexLowering,
    NotVectorisable,
    Val,
    _depends_on,
    _needed_sizes,
    _ordered_args,
    _proved_claim,
    _shape_matches,
    _shape_text,
    _shapes_line,
    _walk,
    _with_shape,
    bind_sizes,
    check_sizes,
    random_values,
    settle_sizes,
    size_code,
)

#: target name -> Target, filled by symderive.emit.torch and symderive.emit.jax
TARGETS: dict[str, Target] = {}


@dataclass
class FormFunction(Function):
    """An emitted function with the text of the form it came from (``forward`` or the proved
    claim): two targets' functions of one layer with the same forms have the same expected values."""

    form: str = ""
    #: the closed form's tree (None for an index form)
    tree: object = None


def _with_form(fn: Function, form: str, tree=None) -> FormFunction:
    return FormFunction(**vars(fn), form=form, tree=tree)


class NoProvedClaim(CodegenRefusal):
    """An input has no proved claim to emit its gradient from (a framework target never emits
    the derived index form: only proved claims reach PyTorch and JAX code)."""


@dataclass(frozen=True)
class Target:
    """A framework's spellings for emitted code.

    ``xp`` is the array namespace (``torch``, ``jnp``); ``lowerings`` maps an operator name
    to a function of a :class:`Context` and the operator's bound arguments returning code;
    ``helpers`` are the sources of helper functions a lowering may call (by name);
    ``imports`` are the module's import lines, exactly the imports its check allows;
    ``reserved`` names an input may not have (they would hide the framework).
    """

    name: str
    xp: str
    imports: tuple[str, ...]
    lowerings: Mapping[str, Callable[..., str]]
    helpers: Mapping[str, str]
    reserved: frozenset[str]
    #: code of an integer array 0..n-1, an array's sum over its last axis, a 0/1 integer array of a condition
    arange: Callable[[str], str]
    sum_last: Callable[[str], str]
    as_int: Callable[[str], str]
    #: code of an array from a Python number or array (``torch.as_tensor``)
    as_array: Callable[[str], str]
    #: code of ``value`` broadcast to ``shape`` with the dtype of the array ``like``
    finish: Callable[[str, str, str], str]


def register_target(target: Target) -> Target:
    """Add a framework target (once).

    >>> register_target(TARGETS["torch"]) is TARGETS["torch"]
    True
    """
    TARGETS[target.name] = target
    return target


# -- the operators both frameworks spell alike ----------------------------------------------------


def _as_is(code: str) -> str:
    return code


@dataclass(frozen=True)
class Spelling:
    """A framework's names for the operators PyTorch and JAX lower alike (:func:`shared_lowerings`).

    ``functions`` maps an elementwise operator of one tensor to the framework's function; ``number``
    is the code of an elementwise function's argument when that argument is a number.

    >>> names = {"exp": "jnp.exp", "softmax": "jax.nn.softmax", "log_softmax": "jax.nn.log_softmax"}
    >>> spelling = Spelling("jax", "jnp", "jax.nn", "axis", "keepdims", names)
    >>> sorted(shared_lowerings(spelling))[:3]
    ['F.log_softmax', 'F.softmax', 'add']
    """

    name: str
    xp: str
    nn: str
    axis: str
    keepdims: str
    functions: Mapping[str, str]
    #: the keyword of a variance's degrees of freedom (``correction=``, ``ddof=``)
    ddof: str = "ddof"
    number: Callable[[str], str] = _as_is
    #: an operand of a two-array function (``torch.maximum`` takes tensors only)
    operand: Callable[[str], str] = _as_is

    def refusal(self, what: str) -> CodegenRefusal:
        """The refusal of a call this framework's lowering does not cover."""
        return CodegenRefusal(f"{what} has no {self.name} lowering yet")

    def dims(self, c, axis, param: str = "a") -> tuple[int, ...]:
        """The axes a reduction of the current call's argument ``param`` runs over."""
        return reduction_axes(axis, c.ndim(param), "sum")


def _unary(spell: Spelling, fn: str):
    def lower(c, x=None, input=None, **_):
        value = x if input is None else input
        if c is not None and c.node is not None and c.is_number("x" if input is None else "input"):
            return f"{fn}({spell.number(value)})"
        return f"{fn}({value})"

    return lower


def _binary(symbol: str):
    return lambda c, x1, x2: f"({x1} {symbol} {x2})"


def _two_arrays(spell: Spelling, fn: str):
    return lambda c, x1, x2: f"{fn}({spell.operand(x1)}, {spell.operand(x2)})"


def _reduce(spell: Spelling, fn: str):
    def lower(c, a, axis=None, dtype=None, out=None, keepdims=False, **options):
        if dtype is not None or out is not None:
            raise spell.refusal(f"{fn} with dtype= or out=")
        dims = spell.dims(c, axis)
        if not dims:
            return f"({a})"
        extra = ""
        if "ddof" in options:
            extra = f", {spell.ddof}={options['ddof']}"
        return f"{spell.xp}.{fn}({a}, {spell.axis}={dims}{extra}, {spell.keepdims}={bool(keepdims)})"

    return lower


def _extreme(spell: Spelling, fn: str):
    return lambda c, a, axis=None, out=None, keepdims=False: _reduce(spell, fn)(c, a, axis, keepdims=keepdims)


def _torch_normalised(spell: Spelling, fn: str):
    return lambda c, input, dim=None, _stacklevel=3, dtype=None: f"{fn}({input}, {spell.axis}={int(dim)})"


def _signal(spell: Spelling, kind: str):
    """scipy.signal's correlate/convolve (and their 2-d names) through the helpers ``_correlate``/``_convolve``."""

    def lower(c, in1, in2, mode="full", method="auto", boundary="fill", fillvalue=0):
        if boundary != "fill" or fillvalue != 0:
            raise spell.refusal(f"{kind} with boundary={boundary!r}, fillvalue={fillvalue!r}")
        if c.ndim("in1") != c.ndim("in2") or not 1 <= c.ndim("in1") <= 3:
            raise spell.refusal(f"{kind} of arrays of {c.ndim('in1')} and {c.ndim('in2')} axes")
        c.helper("_cross_correlation")
        return f"{c.helper('_' + kind)}({in1}, {in2}, {mode!r})"

    return lower


def _cross_entropy(spell: Spelling):
    softmax = spell.functions["log_softmax"]

    def lower(c, input, target, reduction="mean", **_):
        # the other options (class weights, ignore_index, label smoothing) are refused when the claim is read
        per = f"(-{spell.xp}.sum({target} * {softmax}({input}, {spell.axis}=-1), {spell.axis}=-1))"
        return {"none": per, "sum": f"{spell.xp}.sum({per})", "mean": f"{spell.xp}.mean({per})"}[reduction]

    return lower


def _getitem(c, x, key):
    from ..core.ops.linalg import _key_code

    return f"({x})[{_key_code(key)}]"


def ints_code(values) -> str:
    """A Python tuple of integer size expressions.

    >>> ints_code(3), ints_code((1, 2))
    ('(3,)', '(1, 2)')
    """
    values = tuple(values) if isinstance(values, tuple | list) else (values,)
    return "(" + ", ".join(size_code(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def conv_transpose_options(n: int, stride, padding, output_padding, dilation) -> tuple:
    """(stride, padding, output padding code, dilation) of a ``conv_transposeNd`` call, checked."""
    from ..core.ops.nn import concrete_ints, size_ints

    op = f"conv_transpose{n}d"
    s = concrete_ints(op, "stride", stride, n, 1)
    d = concrete_ints(op, "dilation", dilation, n, 1)
    p = concrete_ints(op, "padding", padding, n, 0)
    return s, p, ints_code(size_ints(op, "output_padding", output_padding, n)), d


def _conv_transpose(n: int):
    # the helper _conv_transpose of each target (its own convolution's adjoint)
    def lower(c, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        s, p, e, d = conv_transpose_options(n, stride, padding, output_padding, dilation)
        if "_conv" in c.target.helpers:
            c.helper("_conv")
        return f"{c.helper('_conv_transpose')}({input}, {weight}, {bias}, {s}, {p}, {e}, {int(groups)}, {d})"

    return lower


def conv_options(n: int, stride, padding, dilation) -> tuple:
    """(stride, padding, dilation) of a ``convNd`` call as tuples of ints (padding may be ``"same"``/``"valid"``)."""
    from ..core.ops.nn import concrete_ints

    op = f"conv{n}d"
    s = concrete_ints(op, "stride", stride, n, 1)
    d = concrete_ints(op, "dilation", dilation, n, 1)
    p = padding if isinstance(padding, str) else concrete_ints(op, "padding", padding, n, 0)
    return s, p, d


def pool_options(kernel_size, stride, padding, ceil_mode, divisor_override) -> tuple:
    """(kernel, stride, padding, divisor or None) of an ``avg_pool2d`` call, checked."""
    from ..core.ops.nn import _pool_options

    kernel, stride, pads = _pool_options("avg_pool2d", kernel_size, stride, padding, ceil_mode, divisor_override)
    return kernel, stride, pads, None if divisor_override is None else int(divisor_override)


def shared_lowerings(spell: Spelling) -> dict[str, Callable[..., str]]:
    """The lowerings PyTorch and JAX write alike, in a framework's spelling; a target adds its own and
    replaces any of these (:data:`symderive.emit.torch.LOWERINGS`, :data:`symderive.emit.jax.LOWERINGS`)."""
    xp, nn = spell.xp, spell.nn
    pair = {name: f"{xp}.{name}" for name in ("maximum", "minimum", "logaddexp")}
    return {
        **{name: _unary(spell, fn) for name, fn in spell.functions.items() if name not in ("log_softmax", "softmax")},
        "relu": lambda c, input, inplace=False: f"{nn}.relu({input})",
        "silu": lambda c, input, inplace=False: f"{nn}.silu({input})",
        "leaky_relu": lambda c, input, negative_slope=0.01, inplace=False: (
            f"{nn}.leaky_relu({input}, {float(negative_slope)!r})"
        ),
        "elu": lambda c, input, alpha=1, inplace=False: f"{nn}.elu({input}, {float(alpha)!r})",
        "negative": lambda c, x: f"(-{x})",
        "positive": lambda c, x: f"(+{x})",
        **{name: _binary(symbol) for name, symbol in _SYMBOLS.items()},
        **{name: _two_arrays(spell, fn) for name, fn in pair.items()},
        "flip": lambda c, m, axis=None: f"{xp}.flip({m}, {spell.dims(c, axis, 'm')})",
        "rot90": lambda c, m, k=1, axes=(0, 1): f"{xp}.rot90({m}, {int(k)}, {tuple(int(a) for a in axes)})",
        "einsum": lambda c, subscripts, operands: f"{xp}.einsum({subscripts!r}, {', '.join(operands)})",
        "diag": lambda c, v, k=0: f"{xp}.diag({v}, {int(k)})",
        "zeros_like": lambda c, a: f"{xp}.zeros_like({a})",
        "ones_like": lambda c, a: f"{xp}.ones_like({a})",
        "getitem": _getitem,
        **{name: _reduce(spell, name) for name in ("sum", "mean", "var", "std")},
        **{
            name: _extreme(spell, fn)
            for name, fn in (("max", "amax"), ("amax", "amax"), ("min", "amin"), ("amin", "amin"))
        },
        "F.softmax": _torch_normalised(spell, spell.functions["softmax"]),
        "F.log_softmax": _torch_normalised(spell, spell.functions["log_softmax"]),
        "cross_entropy": _cross_entropy(spell),
        "conv_transpose1d": _conv_transpose(1),
        "conv_transpose2d": _conv_transpose(2),
        **{name: _signal(spell, kind) for name, kind in _SIGNALS.items()},
    }


_SYMBOLS = {
    **{"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**", "matmul": "@"},
    **{"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=", "equal": "==", "not_equal": "!="},
}
_SIGNALS = {"correlate": "correlate", "convolve": "convolve", "correlate2d": "correlate", "convolve2d": "convolve"}

#: the elementwise operators named alike in torch and jax.numpy (``torch.exp``, ``jnp.exp``)
ELEMENTWISE = ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "log1p", "expm1", "abs", "sign", "square")


def signal_helpers(xp: str, cross: str, framework: str) -> dict[str, str]:
    """The sources of ``_correlate`` and ``_convolve`` (scipy.signal's, from ``_cross_correlation``, whose
    source ``cross`` each target writes with its own convolution)."""
    correlate = f'''def _correlate(a, b, mode):
    """scipy.signal.correlate(a, b, mode) of two arrays of 1 to 3 axes, as a {framework} convolution."""
    if mode == "valid" and not all(p >= q for p, q in zip(a.shape, b.shape, strict=True)):
        # SciPy's valid mode with the larger second operand: convolve(a, flip(b)) with its operands swapped
        dims = tuple(range(a.ndim))
        return _cross_correlation({xp}.flip(b, dims), {xp}.flip(a, dims), mode)
    return _cross_correlation(a, b, mode)
'''
    convolve = f'''def _convolve(a, b, mode):
    """scipy.signal.convolve(a, b, mode): a correlation with b flipped (commutative in mode "valid")."""
    if mode == "valid" and not all(p >= q for p, q in zip(a.shape, b.shape, strict=True)):
        a, b = b, a
    return _cross_correlation(a, {xp}.flip(b, tuple(range(b.ndim))), mode)
'''
    return {"_correlate": correlate, "_convolve": convolve, "_cross_correlation": cross}


# -- closed forms ---------------------------------------------------------------------------------


@dataclass
class Context:
    """What an operator's lowering may ask about the call it lowers: the number of axes of an
    argument, and helpers to define in the module.

    >>> from symderive.layer import load_layer
    >>> from symderive.emit import torch as _torch_target
    >>> Context(load_layer("linear"), TARGETS["torch"]).code(T.Call("exp", (("x", T.Ref("x")),)))
    'torch.exp(x)'
    """

    layer: object
    target: Target
    helpers: set[str] = field(default_factory=set)
    node: T.Call | None = None
    #: subtrees with code of their own (a value computed once and named): their code, not their lowering
    named: Mapping = field(default_factory=dict)
    #: named subtrees whose tensor something else holds: never written in place
    held: frozenset = frozenset()

    def ndim(self, param: str) -> int:
        """The number of axes of the current call's argument ``param``."""
        return len(T.build(self.node.arg(param), self.layer.scope()).shape)

    def is_number(self, param: str) -> bool:
        """Whether the current call's argument ``param`` is a number (a constant or a size)."""
        return isinstance(self.node.arg(param), T.Num)

    def helper(self, name: str) -> str:
        """``name``, a helper of the target, recorded to be defined in the module."""
        if name not in self.target.helpers:
            raise InternalError(f"{self.target.name} helper {name!r} is called but not defined")
        self.helpers.add(name)
        return name

    def code(self, node) -> str:
        """Code computing a closed-form tree with the target's operations."""
        if node in self.named:
            return self.named[node]
        if isinstance(node, T.Ref):
            return node.name
        if isinstance(node, T.Num):
            return number_code(node.value)
        if isinstance(node, T.Element):
            inner = self.code(node.node)
            return f"({inner})[{', '.join(size_code(i) for i in node.index)}]"
        if isinstance(node, T.Scalar):
            raise NotVectorisable("an index-form value inside a closed form is not lowered")
        if not isinstance(node, T.Call):
            raise InternalError(f"not a tree node: {node!r}")
        lowering = self.target.lowerings.get(node.op)
        if lowering is None:
            raise CodegenRefusal(
                f"{node.op} has no {self.target.name} lowering yet: codegen --target {self.target.name} "
                f"cannot emit a claim or forward pass that calls it (--target numpy can)"
            )
        args = T._map_args(node, lambda n: self._counted(node.op, n, self.code(n)))
        saved, self.node = self.node, node
        try:
            return lowering(self, **args)
        finally:
            self.node = saved

    def _counted(self, parent_op: str, child, code: str) -> str:
        # a comparison is a 0/1 number in the claim language; a boolean array is one only where
        # the parent computes with booleans as numbers (NumPy's rule, symderive.core.tree.counted)
        if OPERATORS[parent_op].booleans_as_numbers or not (
            isinstance(child, T.Call) and OPERATORS[child.op].comparison
        ):
            return code
        return self.target.as_int(code)


def number_code(value) -> str:
    """Python for a number of a claim (an integer, a fraction, a size expression, a constant),
    written without a module (``sqrt(d)`` as ``d ** 0.5``).

    >>> d = sp.Symbol("d", integer=True, positive=True)
    >>> number_code(sp.Rational(1, 3)), number_code(sp.sqrt(d)), number_code(2 * sp.pi)
    ('(1 / 3)', '(d ** 0.5)', '6.283185307179586')
    """
    value = sp.sympify(value)
    if value.is_Integer:
        return str(int(value))
    if value.is_Rational:
        return f"({int(value.p)} / {int(value.q)})"
    if value.is_number:
        return repr(float(value))
    return f"({_NumberPrinter().doprint(value)})"


class _NumberPrinter(numpy_emitter._SizePrinter):
    """Python for a size expression with powers and constants, calling no module."""

    def _print_Pow(self, e, rational=False):
        base = self._print(e.base)
        if not (e.base.is_Symbol or (e.base.is_Integer and e.base >= 0)):
            base = f"({base})"
        exp = e.exp
        if exp.is_Rational and not exp.is_Integer:
            return f"{base} ** {float(exp)!r}"
        return f"{base} ** ({self._print(exp)})"

    def _print_Exp1(self, e):
        return repr(float(sp.E))

    def _print_Pi(self, e):
        return repr(float(sp.pi))

    def _print_Function(self, e):
        raise NotVectorisable(f"{e} in a number of a claim is not lowered")

    _print_exp = _print_log = _print_Function


# -- index forms --------------------------------------------------------------------------------


class FrameworkIndexLowering(IndexLowering):
    """The NumPy emitter's index-form lowering (an axis per index variable, reads that are zero
    outside the tensor) written with a framework's operations.

    A sum's range covers every value of its bounds over the indices they depend on, computed
    with Python integers (so a traced or compiled function sees fixed ranges for fixed shapes);
    the exact bounds are applied as a mask, as in the NumPy lowering.
    """

    def __init__(self, layer, target: Target):
        super().__init__(layer)
        self.target = target
        #: index variable -> (Python loop variable, the Python iterable of its values)
        self.loops: dict[sp.Symbol, tuple[str, str]] = {}
        self.helpers: set[str] = set()

    def function_body(self, expr, index, shape, prefer=None):
        """(body lines, arguments, helpers) of a function returning ``expr`` over ``shape``."""
        xp = self.target
        shape = tuple(sp.sympify(d) for d in shape)
        for k, (i, n) in enumerate(zip(index, shape, strict=True)):
            name = self._fresh(str(i))
            trail = len(shape) - 1 - k
            reshape = f".reshape(-1{', 1' * trail})" if trail else ""
            self.lines.append(f"{name} = {xp.arange(self._size_code(n))}{reshape}")
            self.vars[i] = (name, len(shape))
            self.loops[i] = (self._fresh(f"{i}_value"), f"range({self._size_code(n)})")
        self.depth = len(shape)
        value = self.lower(settle_sizes(expr, self.layer))
        args = _ordered_args(self.layer, self.reads)
        if self.sizes - set(self.layer.sizes):
            raise NotVectorisable(f"unexpected symbols {sorted(map(str, self.sizes - set(self.layer.sizes)))}")
        args, bindings = bind_sizes(self.layer, args, set(self.sizes), prefer)
        like = next((a for a in args if a != self.layer.output), None)
        shape_code = "(" + ", ".join(self._size_code(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        result = xp.finish(self._at(value, len(shape)), shape_code, like)
        helpers = set(self.helpers)
        return bindings + self.lines + [f"return {result}"], args, helpers

    def _number(self, code: str) -> Val:
        return Val(code, 0)

    def _print_Rational(self, e) -> Val:
        return Val(f"({int(e.p)} / {int(e.q)})", 0)

    _print_Half = _print_Rational

    def _print_Float(self, e) -> Val:
        value = float(e)
        return Val(repr(value) if np.isfinite(value) else f'float("{value}")', 0)

    _print_NaN = _print_Infinity = _print_NegativeInfinity = _print_Float

    def _print_Exp1(self, e) -> Val:
        return Val(repr(float(sp.E)), 0)

    def _print_Pi(self, e) -> Val:
        return Val(repr(float(sp.pi)), 0)

    def _print_Iverson(self, e) -> Val:
        cond = self._print(e.args[0])
        return Val(self.target.as_int(self.target.as_array(cond.code)), cond.depth)

    def _print_KroneckerDelta(self, e) -> Val:
        (a, b), depth = self._common([self._print(x) for x in e.args[:2]])
        return Val(self.target.as_int(self.target.as_array(f"{a} == {b}")), depth)

    def _print_Piecewise(self, e) -> Val:
        vals = [(self._print(expr), self._print(cond)) for expr, cond in e.args]
        depth = max(max(v.depth, c.depth) for v, c in vals)
        code = self._at(vals[-1][0], depth)
        where = self.target.lowerings["where"]
        for v, c in reversed(vals[:-1]):
            cond = self.target.as_array(self._at(c, depth))
            code = where(None, condition=cond, x=self._at(v, depth), y=code)
        return Val(code, depth)

    def _print_Defined(self, e) -> Val:
        (value, cond), depth = self._common([self._print(e.args[0]), self._print(e.args[1])])
        where = self.target.lowerings["where"]
        return Val(where(None, condition=self.target.as_array(cond), x=value, y='float("nan")'), depth)

    def _folded(self, fn: str, args) -> Val:
        name = {"np.maximum": "maximum", "np.minimum": "minimum"}[fn]
        lowering = self.target.lowerings[name]
        codes, depth = self._common([self._print(a) for a in args])
        code = codes[0]
        for c in codes[1:]:
            code = lowering(None, x1=self.target.as_array(code), x2=self.target.as_array(c))
        return Val(code, depth)

    def _print_elementwise(self, op: str, e) -> Val:
        (arg,), depth = self._common([self._print(e.args[0])])
        lowering = self.target.lowerings.get(op)
        if lowering is None:
            raise CodegenRefusal(f"{op} has no {self.target.name} lowering yet")
        return Val(lowering(None, x=self.target.as_array(arg)), depth)

    def _print_Indexed(self, e) -> Val:
        name = str(e.base.label)
        if name not in self.layer.inputs and name != "g":
            raise NotVectorisable(f"read of unknown tensor {name}")
        self.reads.add(name)
        codes, depth = self._common([self._print(i) for i in e.indices])
        self.helpers.add("_gather")
        return Val(f"_gather({name}, {', '.join(codes)})", depth)

    def _joined(self, op: str, args) -> Val:
        codes, depth = self._common([self._print(a) for a in args])
        return Val("(" + op.join(self.target.as_array(x) for x in codes) + ")", depth)

    def _print_Not(self, c) -> Val:
        inner = self._print(c.args[0])
        return Val(f"~{self.target.as_array(inner.code)}", inner.depth)

    def _bound(self, expr, pick: str) -> str:
        """Python computing the least (``min``) or greatest (``max``) value of an integer bound over
        the values of the index variables it depends on."""
        expr = sp.sympify(expr)
        depends = [v for v in self.loops if v in expr.free_symbols]
        self.sizes |= {s for s in expr.free_symbols if s not in self.loops}
        if not depends:
            return size_code(expr)
        loops = [self.loops[v] for v in depends]
        body = size_code(expr.xreplace({v: sp.Symbol(self.loops[v][0]) for v in depends}))
        fors = " ".join(f"for {name} in {values}" for name, values in loops)
        return f"{pick}(({body} {fors}), default=0)"

    def _sum_limits(self, body, limits) -> Val:
        if not limits:
            return self.lower(body)
        var, lo, hi = limits[-1]
        if any(b.has(sp.oo, -sp.oo) for b in (sp.sympify(lo), sp.sympify(hi))):
            raise NotVectorisable(f"unbounded summation over {var}")
        lo_v, hi_v = self.lower(lo), self.lower(hi)
        depth = self.depth + 1
        name = self._fresh(str(var))
        low, high = self._fresh(f"{var}_lo"), self._fresh(f"{var}_hi")
        self.lines.append(f"{low} = {self._bound(lo, 'min')}")
        self.lines.append(f"{high} = {self._bound(hi, 'max')}")
        self.lines.append(f"{name} = {self.target.arange(f'{high} + 1 - {low}')} + {low}")
        saved, saved_loop = self.vars.get(var), self.loops.get(var)
        self.vars[var] = (name, depth)
        self.loops[var] = (self._fresh(f"{var}_value"), f"range({low}, {high} + 1)")
        outer_depth, self.depth = self.depth, depth
        inner = self._sum_limits(body, limits[:-1])
        if lo_v.depth == 0 and hi_v.depth == 0 and _depends_on(body, limits[:-1], var):
            summed = self.target.sum_last(inner.code)
        else:
            mask = f"(({name} >= {self._at(lo_v, depth)}) & ({name} <= {self._at(hi_v, depth)}))"
            summed = self.target.sum_last(f"{self._at(inner, depth)} * {mask}")
        self.depth = outer_depth
        for table, old in ((self.vars, saved), (self.loops, saved_loop)):
            if old is None:
                table.pop(var)
            else:
                table[var] = old
        tmp = self._fresh("s")
        self.lines.append(f"{tmp} = {summed}")
        return Val(tmp, outer_depth)


# -- the functions of a module --------------------------------------------------------------------


def check_names(layer, target: Target) -> None:
    """InputError when an input's name would hide what the target's code uses (``torch``, ``jnp``)."""
    for name in layer.inputs:
        if name in target.reserved:
            raise InputError(
                f"input {name!r} of layer {layer.name} is a name the emitted {target.name} code uses; rename it",
                where=f"layer {layer.name}",
            )


def closed_form_function(layer, target: Target, name: str, node, shape, doc: str, expected, prefer=None) -> Function:
    """A function returning a closed form at ``shape`` (the form broadcast to it where it is smaller)."""
    ctx = Context(layer, target)
    code = ctx.code(node)
    reads, output_read = set(), False
    for n in _walk(node):
        if isinstance(n, T.Ref):
            if n.name == layer.output:
                output_read = True
            elif n.name in layer.inputs or n.name == "g":
                reads.add(n.name)
    built = T.build(node, layer.scope()).shape
    broadcast = not _shape_matches(layer, built, shape)
    if broadcast and prefer is not None:
        reads.add(prefer)
    args, bindings = bind_sizes(layer, _ordered_args(layer, reads), _needed_sizes(node), prefer)
    like = prefer if prefer in args else next(iter(args), None)
    if like is None:
        raise CodegenRefusal(f"{name} of layer {layer.name} reads no input: nothing gives its dtype")
    shape_code = f"{prefer}.shape" if broadcast else None
    result = target.finish(code, shape_code, like)
    if output_read:
        args = (*args, layer.output)
    return Function(name, args, [*bindings, f"return {result}"], doc, expected, ctx.helpers)


def forward_function(layer, target: Target) -> Function:
    """``_forward``: the layer's output from its inputs, with the target's operations."""
    shape = layer.forward.shape
    doc = (
        f"{layer.output} = {layer.forward_text or layer.output}, the forward pass of layer {layer.name} "
        f"in {target.name} operations (differentiable by {target.name} itself).\n\n"
        f"Shapes: {_shapes_line(layer, layer.inputs)} -> {layer.output} {_shape_text(shape, layer)}.\n"
        f"Assumes: {numpy_emitter._assumption_text(layer)}."
    )
    if layer.forward_tree is not None:
        fn = closed_form_function(layer, target, "_forward", layer.forward_tree, shape, doc, layer.forward)
    else:
        lowering = FrameworkIndexLowering(layer, target)
        body, args, helpers = lowering.function_body(layer.forward_index, layer.output_indices, shape)
        fn = Function("_forward", args, body, doc, layer.forward, helpers)
    # the custom op calls it with every input
    fn.args = tuple(layer.inputs)
    return _with_form(fn, "forward", layer.forward_tree)


def gradient_function(layer, target: Target, wrt: str, claim=None, verdict=None, prove=None) -> Function:
    """``grad_<wrt>`` from the proved claim for ``wrt`` (given, known, or solved), or NoProvedClaim."""
    from ..core.parse import claim_tensor, parse_claim

    chosen = _proved_claim(layer, wrt, claim, verdict, prove)
    if chosen is None:
        raise NoProvedClaim(
            f"no proved claim for d{wrt} of layer {layer.name}: codegen --target {target.name} emits proved "
            f'gradients only (give one with --claim {wrt} "..."; symderive solve {layer.name} --wrt {wrt} '
            f"searches for one)"
        )
    text, verdict = chosen
    parsed = parse_claim(text, layer, wrt)
    target_shape = layer.inputs[wrt]
    expected = _with_shape(claim_tensor(parsed, layer), target_shape)
    assumptions = verdict.assumptions or tuple(a.text for a in layer.assumptions)
    name = f"grad_{wrt}"
    if parsed.tree is not None:
        fn = closed_form_function(layer, target, name, parsed.tree, target_shape, "", expected, prefer=wrt)
    else:
        lowering = FrameworkIndexLowering(layer, target)
        body, args, helpers = lowering.function_body(parsed.body, tuple(parsed.index), target_shape, prefer=wrt)
        fn = Function(name, args, body, "", expected, helpers)
    upstream = "" if layer.is_loss else f", g = dL/d{layer.output}"
    fn.doc = (
        f"dL/d{wrt} = {text}, proved by symderive for layer {layer.name}{upstream}.\n\n"
        f"Shapes: {_shapes_line(layer, [a for a in fn.args if a != layer.output])} -> d{wrt} "
        f"{_shape_text(target_shape, layer)}.\n"
        f"Assumes: {', '.join(assumptions) if assumptions else 'none'}."
    )
    return _with_form(fn, text, parsed.tree)


def emitted_functions(layer, target: Target, claims=None, verdicts=None, prove=None) -> list[Function]:
    """``_forward``, then ``grad_<input>`` for every differentiable input."""
    if claims is not None and not isinstance(claims, Mapping):
        raise TypeError(f"claims maps input names to claim strings, got {type(claims).__name__}")
    claims, verdicts = dict(claims or {}), dict(verdicts or {})
    unknown = set(claims) - set(layer.differentiable)
    if unknown:
        raise InputError(
            f"no differentiable input named {sorted(unknown)[0]!r} in layer {layer.name!r}", where="--claim"
        )
    check_names(layer, target)
    functions = [forward_function(layer, target)]
    for wrt in layer.differentiable:
        functions.append(gradient_function(layer, target, wrt, claims.get(wrt), verdicts.get(wrt), prove))
    return functions


def layer_and_functions(layer, target: Target, module_name, claims, verdicts, prove) -> tuple:
    """(the layer, its emitted functions) for a target's ``emit``: the layer loaded by name or path, the
    tests' module name checked, ``_forward`` and the ``grad_`` functions lowered."""
    from .codegen import _as_layer, _require_module_name

    layer = _as_layer(layer)
    if module_name is not None:
        _require_module_name(module_name)
    return layer, emitted_functions(layer, target, claims, verdicts, prove)


def helper_sources(target: Target, functions: list[Function]) -> list[str]:
    """The sources of the helpers the functions call, each once, in a fixed order."""
    names = sorted({h for fn in functions for h in fn.helpers})
    return [target.helpers[h].strip("\n") + "\n" for h in names]


def output_shape_code(layer) -> str:
    """The output's shape as a Python tuple over size names (bound by :func:`input_size_bindings`)."""
    dims = [size_code(numpy_emitter._readable(d, layer)) for d in layer.forward.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def input_size_bindings(layer) -> list[str]:
    """Lines binding every size the output's shape mentions from the inputs' shapes."""
    sizes = set()
    for d in layer.forward.shape:
        sizes |= set(sp.sympify(d).free_symbols)
    _, lines = bind_sizes(layer, tuple(layer.inputs), sizes)
    return lines


def namespace_of(layer, text: str) -> str:
    """The custom op's namespace: ``symderive_<layer>_<hash of the module>``, unique per module text.

    >>> namespace_of(type("L", (), {"name": "conv-2d"})(), "x")
    'symderive_conv_2d_2d711642'
    """
    base = "".join(c if c.isalnum() else "_" for c in layer.name.lower()).strip("_") or "layer"
    return f"symderive_{base}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def class_name(layer) -> str:
    """The nn.Module's class name: the layer's name in CamelCase.

    >>> class_name(type("L", (), {"name": "conv2d_nchw"})())
    'Conv2dNchw'
    """
    parts = "".join(c if c.isalnum() else "_" for c in layer.name).split("_")
    name = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Layer"
    return name if name[0].isalpha() else "Layer" + name


#: input names read as a layer's parameters (its nn.Module holds them; the rest are forward's arguments)
PARAMETER_NAMES = frozenset({"w", "b", "W", "weight", "bias", "gamma", "beta", "scale", "shift"})


def parameters_of(layer) -> tuple[str, ...]:
    """The differentiable inputs that are the layer's parameters (weights, biases, scales).

    >>> from symderive.layer import load_layer
    >>> parameters_of(load_layer("linear")), parameters_of(load_layer("attention"))
    (('w', 'b'), ())
    """
    return tuple(n for n in layer.differentiable if n in PARAMETER_NAMES)


# -- the check ----------------------------------------------------------------------------------------


def compare(where: str, got, expected) -> None:
    """InternalError unless ``got`` (an array) equals ``expected`` within the pre-emission tolerances."""
    got = np.asarray(got, dtype=float)
    if got.shape != expected.shape:
        raise InternalError(f"{where}: emitted shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL, equal_nan=True):
        raise InternalError(
            f"{where}: emitted code and the form it came from differ\nemitted:  {got.tolist()}\n"
            f"expected: {expected.tolist()}"
        )


@dataclass(frozen=True)
class Case:
    """One size assignment of the check: random float64 inputs (and ``g``) satisfying the layer's
    assumptions, and the expected value of every emitted function there (symderive's evaluation of
    the form it came from)."""

    sizes: dict
    values: dict
    expected: dict


#: (id of a layer, its functions' names and forms) -> (the layer, its cases): the last few layers' cases,
#: so that emitting a layer for a second target does not evaluate its forms again
_CASES: dict[tuple, tuple[object, list]] = {}
_CASES_KEPT = 8


def evaluated_cases(layer, functions: list[Function]) -> list[Case]:
    """The cases at :func:`symderive.emit.codegen.check_sizes` (dimensions of 1, tight assumptions, non-square
    sizes, the largest, other parities), each with its expected values.

    Functions that say their forms (:class:`FormFunction`) share the cases of an earlier call on the
    same layer object with the same forms (the values are fixed by seeds; the cases are not mutated).
    """
    forms = tuple((fn.name, getattr(fn, "form", None)) for fn in functions)
    key = (id(layer), forms)
    if all(form for _, form in forms) and key in _CASES and _CASES[key][0] is layer:
        return _CASES[key][1]
    cases = _evaluated_cases(layer, functions)
    if all(form for _, form in forms):
        while len(_CASES) >= _CASES_KEPT:
            _CASES.pop(next(iter(_CASES)))
        _CASES[key] = (layer, cases)
    return cases


def _evaluated_cases(layer, functions: list[Function]) -> list[Case]:
    cases = []
    for k, sizes in enumerate(check_sizes(layer)):
        values = random_values(layer, sizes, np.random.default_rng(k))
        expected = {}
        for fn in functions:
            try:
                expected[fn.name] = evaluate(fn.expected, sizes, values)
            except EvaluationError as exc:
                where = f"{fn.name} at sizes {numpy_emitter._fmt_sizes(sizes)}"
                raise InternalError(f"{where}: the proved form does not evaluate ({exc})") from exc
        cases.append(Case(sizes, values, expected))
    return cases


def check_functions(layer, functions: list[Function], namespace: dict, to_array, call_op, cases) -> None:
    """Compare each emitted function, and the op's forward and backward, with its form at every case.

    ``to_array`` makes a framework float64 array of a NumPy one; ``call_op(values, g)`` returns the op's
    output and its gradients (dict input -> array) for upstream ``g`` (None for a loss layer).
    """
    for case in cases:
        at = numpy_emitter._fmt_sizes(case.sizes)
        for fn in functions:
            where = f"{fn.name} at sizes {at}"
            kwargs = {}
            for a in inspect.signature(namespace[fn.name]).parameters:
                kwargs[a] = to_array(case.expected["_forward"] if a == layer.output else case.values[a])
            try:
                got = namespace[fn.name](**kwargs)
            except Exception as exc:
                raise InternalError(f"{where}: the emitted code raises {type(exc).__name__}: {exc}") from exc
            compare(where, got, case.expected[fn.name])
        try:
            output, grads = call_op(case.values, None if layer.is_loss else case.values["g"])
        except Exception as exc:
            raise InternalError(f"the op at sizes {at} raises {type(exc).__name__}: {exc}") from exc
        compare(f"the op's output at sizes {at}", output, case.expected["_forward"])
        for wrt, got in grads.items():
            compare(f"the op's gradient d{wrt} at sizes {at}", got, case.expected[f"grad_{wrt}"])


#: which of the check's cases the emitted tests take: dimensions of 1, tight, non-square, other parities
TEST_CASES = (0, 1, 2, 4)


def test_cases(cases: list[Case]) -> list[Case]:
    """The cases the emitted tests embed (the largest sizes left out: the checks there run long)."""
    return [cases[k] for k in TEST_CASES if k < len(cases)] or cases[:1]


def tests_head(layer, module_name: str, doc: str, imports: list[str], constants: list[str], cases) -> str:
    """The head of an emitted pytest module: its docstring, imports (``imports`` before the emitted module's),
    the layer's input names, the cases, and ``constants`` (more lines of names the tests read)."""
    lines = [python_docstring(doc), "", *imports, ""]
    lines += [f"INPUTS = {tuple(layer.inputs)!r}", f"DIFFERENTIABLE = {tuple(layer.differentiable)!r}"]
    lines.append("# the differentiable inputs a finite-difference check may move one element at a time")
    lines.append(f"GRADCHECKED = {gradchecked(layer)!r}")
    lines.append(f"CONSTANTS = {tuple(n for n in layer.inputs if n not in layer.differentiable)!r}")
    return "\n".join([*lines, *constants, "", cases_literal(layer, cases)])


def literal(value) -> str:
    """A float64 array as a Python literal (nested lists; a number for a 0-d array).

    >>> literal(np.array([[1.0, 2.5]])), literal(np.array(3.0))
    ('[[1.0, 2.5]]', '3.0')
    """
    return repr(np.asarray(value, dtype=float).tolist())


def cases_literal(layer, cases: list[Case]) -> str:
    """``CASES = [...]``: the embedded cases of an emitted test module."""
    lines = ["CASES = ["]
    for case in cases:
        lines.append("    {")
        lines.append(f'        "sizes": {{{", ".join(f"{str(k)!r}: {int(v)}" for k, v in case.sizes.items())}}},')
        lines.append('        "inputs": {')
        lines += [f"            {n!r}: {literal(case.values[n])}," for n in layer.inputs]
        lines.append("        },")
        lines.append(f'        "g": {"None" if layer.is_loss else literal(case.values["g"])},')
        lines.append('        "expected": {')
        for name, value in case.expected.items():
            key = "output" if name == "_forward" else name[len("grad_") :]
            lines.append(f"            {key!r}: {literal(value)},")
        lines.append("        },")
        lines.append("    },")
    lines.append("]")
    return "\n".join(lines)


def gradchecked(layer) -> tuple[str, ...]:
    """The differentiable inputs a finite-difference check may perturb one element at a time: those no
    equality assumption ties (``w == w.T`` holds only for symmetric perturbations)."""
    tied = set()
    for a in layer.assumptions:
        if a.kind == "equal":
            tied |= {n.name for n in _walk(a.lhs) if isinstance(n, T.Ref)}
            tied |= {n.name for n in _walk(a.rhs) if isinstance(n, T.Ref)}
    return tuple(n for n in layer.differentiable if n not in tied)


def reduction_axes(axis, ndim: int, op: str) -> tuple[int, ...]:
    """The axes a reduction runs over, as non-negative ints (all for None).

    >>> reduction_axes(-1, 3, "sum"), reduction_axes(None, 2, "sum")
    ((2,), (0, 1))
    """
    return tuple(normalize_axes(axis, ndim, op))


__all__ = [
    "Context",
    "FrameworkIndexLowering",
    "NoProvedClaim",
    "TARGETS",
    "Target",
    "emitted_functions",
]
