"""Closed forms as operator trees, and the three walks over them.

The claim parser turns text into a :class:`Node` tree; the operator table gives each
node its meaning. One tree serves three readers:

* :func:`build` -- the index-level :class:`~symderive.ir.Tensor` (prover, concrete checks),
* :func:`to_numpy` -- a NumPy expression (code generation),
* :func:`to_latex` -- LaTeX (reports).

Operators receive their bound arguments as keyword arguments named after their
:class:`~symderive.ops.Param` s: tensor arguments as ``Tensor`` / code / LaTeX, options
as plain values (ints, SymPy integer expressions, strings, tuples, None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from .functions import derivative_name, function_class
from .ir import Tensor, from_scalar
from .ops import OPERATORS


@dataclass(frozen=True)
class Node:
    """Base class of closed-form tree nodes."""


@dataclass(frozen=True)
class Ref(Node):
    """A name: a layer input, ``g``, the layer's output, or a size used as a value.

    >>> Ref("x").name
    'x'
    """

    name: str


@dataclass(frozen=True)
class Num(Node):
    """A numeric constant (a SymPy number, or a SymPy expression over sizes).

    >>> Num(sp.Integer(2)).value
    2
    """

    value: sp.Expr


@dataclass(frozen=True)
class Call(Node):
    """An operator applied to bound arguments: ``(("in1", Ref("x")), ("mode", "full"))``.

    Tensor arguments are Nodes (a tuple of Nodes for a ``tensors`` parameter); options
    are plain values.

    >>> Call("exp", (("x", Ref("s")),)).op
    'exp'
    """

    op: str
    args: tuple[tuple[str, object], ...]

    def arg(self, name: str):
        """The bound value of one parameter."""
        return dict(self.args)[name]


@dataclass(frozen=True)
class Element(Node):
    """A tree indexed by index expressions (``softmax(s)[k]``): a 0-d value.

    >>> Element(Ref("x"), (sp.Symbol("k", integer=True),)).index
    (k,)
    """

    node: Node
    index: tuple[sp.Expr, ...]


@dataclass(frozen=True)
class Scalar(Node):
    """An index-form scalar (a SymPy expression with reads and sums) used as a 0-d value."""

    expr: sp.Expr
    latex: str = ""


@dataclass(frozen=True)
class Apply(Node):
    """A layer's abstract elementwise function (``functions = ["f"]``), or its derivative of
    ``order``, applied to a tree: ``f(w @ x + b)``. No operator of the table: it has no NumPy
    code, and what cannot handle it refuses the layer (:func:`abstract_functions`).

    >>> Apply("f", 1, Ref("y")).spelling
    'f_prime'
    """

    function: str
    order: int
    node: Node

    @property
    def spelling(self) -> str:
        """Its name in a claim (``f``, ``f_prime``)."""
        return derivative_name(self.function, self.order)


def _map_args(call: Call, fn) -> dict:
    op = OPERATORS[call.op]
    kinds = {p.name: p.kind for p in op.params}
    out = {}
    for name, value in call.args:
        if kinds.get(name) == "tensor" and value is not None:
            out[name] = fn(value)
        elif kinds.get(name) == "tensors":
            out[name] = tuple(fn(v) for v in value)
        else:
            out[name] = value
    return out


def build(node: Node, scope: Mapping[str, Tensor]) -> Tensor:
    """The index-level tensor of a tree; ``scope`` maps names to tensors.

    >>> from .ir import leaf, size_symbol
    >>> t = build(Call("exp", (("x", Ref("s")),)), {"s": leaf("s", (size_symbol("n"),))})
    >>> t.shape
    (n,)
    """
    if isinstance(node, Ref):
        return scope[node.name]
    if isinstance(node, Num):
        return from_scalar(node.value)
    if isinstance(node, Scalar):
        return from_scalar(node.expr, latex=node.latex)
    if isinstance(node, Element):
        inner = build(node.node, scope)
        value = inner.at(node.index)
        return Tensor(shape=(), element=lambda idx: value, zero_outside=True, valid=inner.valid)
    if isinstance(node, Apply):
        inner, function = build(node.node, scope), function_class(node.function, node.order)
        # f(0) need not be 0: reads outside the shape are guarded by Tensor.at
        return Tensor(shape=inner.shape, element=lambda idx: function(inner.element(idx)), valid=inner.valid)
    if isinstance(node, Call):
        return OPERATORS[node.op].definition(**_map_args(node, lambda n: build(n, scope)))
    raise TypeError(f"not a tree node: {node!r}")


# comparisons: NumPy gives booleans where LANGUAGE.md says 0/1 arrays. The two agree under the
# operators whose ``booleans_as_numbers`` is set; elsewhere they do not (True + True is True,
# -True and sign(True) raise, a boolean matmul or convolution saturates at True, exp(True) is
# float16), so there a comparison (an operator whose ``comparison`` is set) is lowered as 0/1 integers


def counted(parent_op: str, child: Node, code: str) -> str:
    """The code of ``child`` as an operand of ``parent_op``: a comparison as 0/1 integers where a
    NumPy boolean would not count as 0/1.

    >>> counted("add", Call("greater", (("x1", Ref("x")), ("x2", Num(0)))), "(x > 0)")
    '(x > 0).astype(np.int64)'
    >>> counted("multiply", Call("greater", (("x1", Ref("x")), ("x2", Num(0)))), "(x > 0)")
    '(x > 0)'
    """
    if OPERATORS[parent_op].booleans_as_numbers or not (isinstance(child, Call) and OPERATORS[child.op].comparison):
        return code
    return f"{code}.astype(np.int64)" if code.startswith("(") and code.endswith(")") else f"({code}).astype(np.int64)"


def to_numpy(node: Node, names: Mapping[str, str] | None = None) -> str:
    """A NumPy expression computing a tree (``np`` and registered helpers in scope).

    >>> to_numpy(Call("exp", (("x", Ref("s")),)))
    'np.exp(s)'
    """
    names = names or {}
    if isinstance(node, Ref):
        return names.get(node.name, node.name)
    if isinstance(node, Num):
        return _numpy_number(node.value)
    if isinstance(node, Element):
        inner = to_numpy(node.node, names)
        return f"({inner})[{', '.join(sp.pycode(i) for i in node.index)}]"
    if isinstance(node, Scalar):
        raise NotImplementedError("index-form scalars are lowered by codegen")
    if isinstance(node, Apply):
        raise NotImplementedError(f"the abstract function {node.spelling} has no NumPy code")
    if isinstance(node, Call):
        return OPERATORS[node.op].to_numpy(**_map_args(node, lambda n: counted(node.op, n, to_numpy(n, names))))
    raise TypeError(f"not a tree node: {node!r}")


#: a fraction whose denominator has more digits than this is shown as a decimal when it terminates
DECIMAL_DENOMINATOR_DIGITS = 3


def decimal_text(value) -> str | None:
    """A rational with a long denominator of 2s and 5s (a float constant of a layer file, such as
    GELU's 0.044715 = 8943/200000) as its exact, terminating decimal; None for any other number.

    >>> decimal_text(sp.Rational(8943, 200000)), decimal_text(sp.Rational(-1, 2)), decimal_text(sp.Rational(1, 3000))
    ('0.044715', None, None)
    """
    value = sp.Rational(value)
    q = int(value.q)
    if len(str(q)) <= DECIMAL_DENOMINATOR_DIGITS:
        return None
    twos, fives = sp.multiplicity(2, q), sp.multiplicity(5, q)
    if 2**twos * 5**fives != q:
        return None
    places = max(twos, fives)
    scaled = abs(int(value.p)) * 10**places // q
    whole, frac = divmod(scaled, 10**places)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{str(frac).rjust(places, '0').rstrip('0') or '0'}"


def _numpy_number(value) -> str:
    value = sp.sympify(value)
    if value.is_Integer:
        return str(int(value))
    if value.is_Rational:
        # a layer file's float constant (8943/200000) as its exact decimal, which parses to the same double
        decimal = decimal_text(value)
        return decimal if decimal is not None else f"({int(value.p)} / {int(value.q)})"
    if value.is_Float:
        return repr(float(value))
    code = sp.pycode(value).replace("math.", "np.")
    # a compound number such as N*D is an operand of the operator around it: 2 * x / (N * D)
    return code if value.is_Atom or isinstance(value, sp.Function) else f"({code})"


def to_latex(node: Node, names: Mapping[str, str] | None = None) -> str:
    """LaTeX for a tree, in the operator table's notation.

    >>> to_latex(Call("exp", (("x", Ref("s")),)))
    '\\\\exp\\\\left(s\\\\right)'
    """
    names = names or {}
    if isinstance(node, Ref):
        return names.get(node.name, sp.latex(sp.Symbol(node.name)))
    if isinstance(node, Num):
        value = sp.sympify(node.value)
        decimal = decimal_text(value) if value.is_Rational else None
        return decimal if decimal is not None else sp.latex(value)
    if isinstance(node, Element):
        inner = to_latex(node.node, names)
        return r"\left({}\right)_{{{}}}".format(inner, ", ".join(sp.latex(i) for i in node.index))
    if isinstance(node, Scalar):
        return node.latex or sp.latex(node.expr)
    if isinstance(node, Apply):
        return r"{}{}\left({}\right)".format(node.function, "'" * node.order, to_latex(node.node, names))
    if isinstance(node, Call):
        return OPERATORS[node.op].to_latex(**_map_args(node, lambda n: to_latex(n, names)))
    raise TypeError(f"not a tree node: {node!r}")
