"""The claim language: a whitelisted walk over Python's ``ast``, never evaluated.

Two forms (LANGUAGE.md, "Claims"):

* **closed form** -- an array expression, parsed into a :mod:`symderive.tree` operator
  tree (``convolve(g, w, "full")``, ``w.T @ g``);
* **index form** -- ``d<wrt>[p, q] == body``, whose body becomes one scalar SymPy
  expression with tensor reads, :class:`~symderive.ir.GSum` sums and Kronecker deltas.

Nothing here calls ``eval``, ``exec``, ``compile`` or ``sympify`` on user text: every
SymPy object is built from the AST node by node, and any node type not handled below is
an input error naming it and its column.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp

from ..errors import InputError, InternalError
from . import ops
from .assumptions import Assumption
from .functions import function_class, spellings
from .ir import GSum, Iverson, Tensor, dummy_index, from_scalar, index_symbol, leaf, size_symbol, substituted
from .ops import CONSTANTS, FAMILY_PREFIXES, OPERATORS, REFUSED_SPELLINGS, Operator, Param, row_name
from .tree import Apply, Call, Node, Num, Ref, Scalar, build

#: bounds on what a claim may be, so that hostile text cannot exhaust the machine
MAX_TEXT = 4000
MAX_NODES = 1500
MAX_DEPTH = 100
MAX_INT = 10**15
MAX_EXPONENT = 64
#: the highest polynomial degree an expression may reach (read off its syntax, nothing
#: expanded): ``(((m + 1)**64)**64)**64`` would be expanded to more terms than memory holds
MAX_DEGREE = 64
#: an integer expression (a size, an index, a bound) of higher degree is never linear; it is
#: refused before anything expands it (degree 2 still reaches the linearity check, whose
#: message says what is allowed)
MAX_INT_DEGREE = 2
#: calls whose value multiplies their arguments (the others are at most their arguments' degree)
_PRODUCT_CALLS = frozenset(
    {"outer", "dot", "einsum", "matmul", "inner", "kron", "tensordot", "trace", "convolve", "correlate"}
    | {"convolve2d", "correlate2d", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"}
)

#: spellings refused by name, with the reason (on top of the operator table's own list)
EXTRA_REFUSED = {
    "F.pad": "torch's pad takes reversed per-dimension pairs; use numpy's pad",
    "torch.nn.functional.pad": "torch's pad takes reversed per-dimension pairs; use numpy's pad",
    "torch.tanh": "torch functions other than torch.nn.functional are not in the table; use tanh",
    "torch.exp": "torch functions other than torch.nn.functional are not in the table; use exp",
}
#: NumPy's spellings of a new axis in an index (``x[:, None]``)
_NEWAXIS = ("np.newaxis", "numpy.newaxis")
#: functions the parser itself understands (index form)
SYMPY_FUNCTIONS = ("Sum", "KroneckerDelta")
#: names no tensor, size or index may take
RESERVED = frozenset({"g", "Sum", "KroneckerDelta"})

_BINOPS = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.Pow: "power",
    ast.MatMult: "matmul",
}
_COMPARE = {
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
}
_REL = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}
_REL_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_FORBIDDEN = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.Starred: "a starred argument",
    ast.IfExp: "a conditional expression (use where)",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.JoinedStr: "an f-string",
    ast.BoolOp: "and/or (use the comparison operators on arrays)",
}


@dataclass(frozen=True)
class Claim:
    """A parsed claim.

    Closed form: ``tree`` is the operator tree. Index form: ``index`` are the free index
    symbols of the left side and ``body`` the scalar SymPy expression of one element;
    ``valid`` is the condition on sizes under which the index-form body is defined.

    >>> Claim("g", "b", tree=Ref("g")).tree
    Ref(name='g')
    """

    text: str
    wrt: str
    tree: Node | None = None
    index: tuple[sp.Symbol, ...] = ()
    body: sp.Expr | None = None
    valid: sp.Boolean = sp.true

    @property
    def is_index_form(self) -> bool:
        """Whether the claim gives one element (``dx[p, q] == ...``)."""
        return self.tree is None


@dataclass
class _Read:
    """A tensor read seen in an index-form body: for the bare ``Sum`` bounds rule."""

    shape: tuple
    idx: tuple


@dataclass
class _Frame:
    reads: list = field(default_factory=list)


@dataclass(frozen=True)
class Calculus:
    """What the claim parser needs to take derivatives (``diff``), given by the prover's layer
    (the parser sits below differentiation): every callable is pure.

    ``differentiate(expr, name, at, shape, back)``: d expr / d name[at], reads of ``name`` put
    back by ``back`` (an intermediate's forward); ``scope_with_leaf(name, scope)``: the scope in
    which ``name`` is a leaf and what depends on it is rebuilt (None when it is not an input or
    intermediate); ``forward_of(name, scope)``: how to put its reads back; ``loss(scope)``: the
    loss ``sum(g * y)`` of a non-final layer. (A layer's abstract functions reach the parser
    as ``functions=`` of each parse function, not through here.)

    >>> Calculus(None, None, None, None).loss is None
    True
    """

    differentiate: object
    scope_with_leaf: object
    forward_of: object
    loss: object


def _col(node: ast.AST | None, offset: int = 0) -> int:
    return getattr(node, "col_offset", 0) + 1 + offset


class _Parser:
    """One walk over one expression. ``scope`` maps names to tensors, ``sizes`` names to symbols."""

    def __init__(
        self,
        text: str,
        scope: Mapping[str, Tensor],
        sizes: Mapping[str, sp.Symbol],
        where: str,
        offset: int,
        calculus: Calculus | None = None,
        functions: Iterable[str] = (),
    ):
        self.text = text
        self.scope = dict(scope)
        #: the abstract elementwise functions declared by the layer (``f``), and their derivatives'
        #: spellings (``f_prime``): name -> (function, order)
        self.functions = spellings(functions)
        #: differentiation (``diff(E, x[a, b])``), given by a caller that may take derivatives
        self.calculus = calculus
        self.sizes = dict(sizes)
        self.where = where
        self.offset = offset
        self.indices: dict[str, sp.Symbol] = {}
        self.frames: list[_Frame] = [_Frame()]
        self.valid: list[sp.Boolean] = []
        #: summation variable -> (lo, hi, inferred?) for every Sum met
        self.sum_bounds: dict[sp.Symbol, tuple] = {}

    # -- errors ----------------------------------------------------------------------
    def error(self, message: str, node: ast.AST | None = None) -> InputError:
        where = f"{self.where}, column {_col(node, self.offset)}" if node is not None else self.where
        return InputError(message, where=where)

    def source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or type(node).__name__

    # -- values: tree nodes (Num / Scalar are 0-d) -----------------------------------
    def value(self, node: ast.AST) -> Node:
        """The tree of an array-valued expression."""
        forbidden = _FORBIDDEN.get(type(node))
        if forbidden:
            raise self.error(f"{forbidden} is not allowed in a claim", node)
        method = getattr(self, "_value_" + type(node).__name__, None)
        if method is None:
            raise self.error(f"{type(node).__name__} ({self.source(node)!r}) is not allowed in a claim", node)
        return method(node)

    def _value_Constant(self, node: ast.Constant) -> Node:
        v = node.value
        if isinstance(v, bool) or v is None or isinstance(v, str | bytes | complex) or v is Ellipsis:
            raise self.error(f"{v!r} is not an array value here", node)
        return Num(self.number(v, node))

    def number(self, v, node) -> sp.Expr:
        if isinstance(v, int):
            if abs(v) > MAX_INT:
                # the digits themselves are not shown: str() of thousands of digits is an error
                raise self.error(f"integer {_short(self.source(node))} is too large (at most {MAX_INT})", node)
            return sp.Integer(v)
        if isinstance(v, float):
            if not abs(v) <= MAX_INT:
                raise self.error(f"number {v!r} is too large (at most {MAX_INT})", node)
            frac = Fraction(repr(v))
            return sp.Rational(frac.numerator, frac.denominator)
        raise self.error(f"{v!r} is not a number", node)

    def _value_Name(self, node: ast.Name) -> Node:
        name = node.id
        self.check_name(name, node)
        if name in self.indices:
            return Scalar(self.indices[name])
        if name in self.scope:
            return Ref(name)
        if name in self.sizes:
            return Num(self.sizes[name])
        if name in CONSTANTS:
            return Num(CONSTANTS[name])
        if name in OPERATORS or name in SYMPY_FUNCTIONS:
            raise self.error(f"function {name!r} used as a value (call it)", node)
        raise self.error(self.unknown_name(node), node)

    def unknown_name(self, node: ast.Name) -> str:
        """``unknown name 'q'``, as typed (Python folds ``wᵀ`` to ``wT``), with the close names in scope."""
        typed = self.source(node) if isinstance(node, ast.Name) else node.id
        typed = typed if typed.isidentifier() else node.id
        if node.id == "g" and "L" in self.scope and "g" not in self.scope:
            return "unknown name 'g': a loss layer (output L) has no upstream gradient g"
        known = [*self.indices, *self.scope, *self.sizes]
        return f"unknown name {typed!r}" + _did_you_mean(node.id, known)

    def check_name(self, name: str, node: ast.AST) -> None:
        if name.startswith("__"):
            raise self.error(f"name {name!r} is not allowed", node)

    def _value_Attribute(self, node: ast.Attribute) -> Node:
        if node.attr == "T":
            return self.call_op(OPERATORS["transpose"], [self.value(node.value)], {}, node)
        dotted = self.dotted(node)
        if dotted is not None and dotted.rpartition(".")[0] in FAMILY_PREFIXES["numpy"]:
            if dotted.rpartition(".")[2] in CONSTANTS:
                return Num(CONSTANTS[dotted.rpartition(".")[2]])
        if dotted is not None and dotted.split(".")[-1] in OPERATORS:
            raise self.error(f"function {dotted!r} used as a value (call it)", node)
        raise self.error(f"attribute access {self.source(node)!r} is not allowed (only .T)", node)

    def dotted(self, node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        return ".".join(reversed(parts))

    def _value_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.value(node.operand)
        if isinstance(node.op, ast.USub):
            if isinstance(operand, Num | Scalar):
                return type(operand)(-self.scalar_of(operand))
            return self.call_op(OPERATORS["negative"], [operand], {}, node)
        if isinstance(node.op, ast.UAdd):
            if isinstance(operand, Num | Scalar):
                return operand
            return self.call_op(OPERATORS["positive"], [operand], {}, node)
        raise self.error(f"operator {type(node.op).__name__} is not allowed", node)

    def scalar_of(self, node: Node) -> sp.Expr:
        return node.value if isinstance(node, Num) else node.expr

    def _value_BinOp(self, node: ast.BinOp) -> Node:
        opname = _BINOPS.get(type(node.op))
        if opname is None:
            if isinstance(node.op, ast.FloorDiv | ast.Mod):
                return Num(self.int_expr(node))
            raise self.error(f"operator {type(node.op).__name__} is not allowed", node)
        left, right = self.value(node.left), self.value(node.right)
        scalars = (Num, Scalar)
        if isinstance(left, scalars) and isinstance(right, scalars) and opname != "matmul":
            a, b = self.scalar_of(left), self.scalar_of(right)
            if opname == "power":
                self.check_exponent(b, node.right)
            if isinstance(left, Scalar) or isinstance(right, Scalar):
                if opname == "divide" and b == 0:
                    raise self.error("division by zero", node)
                # index-form values: NumPy's domains (x / x needs x != 0; 0 * log(x) stays undefined)
                out = OPERATORS[opname].definition(from_scalar(a), from_scalar(b)).at(())
            else:
                out = {
                    "add": lambda: a + b,
                    "subtract": lambda: a - b,
                    "multiply": lambda: a * b,
                    "divide": lambda: self.divide(a, b, node),
                    "power": lambda: a**b,
                }[opname]()
            if isinstance(out, sp.Integer) and abs(out) > MAX_INT:
                raise self.error(f"integer {self.source(node)} is too large (at most {MAX_INT})", node)
            kind = Num if isinstance(left, Num) and isinstance(right, Num) else Scalar
            return kind(out)
        if opname == "power" and isinstance(right, Num):
            self.check_exponent(right.value, node.right)
        return self.call_op(OPERATORS[opname], [left, right], {}, node)

    def divide(self, a, b, node):
        if b == 0:
            raise self.error("division by zero", node)
        return a / b

    def check_exponent(self, e: sp.Expr, node: ast.AST) -> None:
        if e.is_Number and abs(e) > MAX_EXPONENT:
            raise self.error(f"exponent {e} is too large (at most {MAX_EXPONENT})", node)

    def _value_Compare(self, node: ast.Compare) -> Node:
        if len(node.ops) != 1:
            raise self.error("chained comparisons are not allowed", node)
        left, right = self.value(node.left), self.value(node.comparators[0])
        return self.call_op(OPERATORS[_COMPARE[type(node.ops[0])]], [left, right], {}, node)

    def _value_Subscript(self, node: ast.Subscript) -> Node:
        base = self.value(node.value)
        entries = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(e, ast.Slice) or self.special_index(e) for e in entries):
            return self.getitem(base, entries, node)
        idx = tuple(self.index_expr(e) for e in entries)
        if not any(s.free_symbols & self.index_symbols() for s in idx):
            return self.getitem(base, entries, node)
        tensor = self.build(base, node)
        if len(idx) != tensor.ndim:
            raise self.error(f"{self.source(node.value)} has rank {tensor.ndim}, indexed with {len(idx)} indices", node)
        self.frames[-1].reads.append(_Read(tensor.shape, idx))
        self.valid.append(tensor.valid)
        return Scalar(tensor.at(idx))

    def special_index(self, entry: ast.AST) -> str | None:
        """NumPy's key entry for a new axis (``None``, ``np.newaxis``) or ``...``, else None."""
        from .ops.linalg import ELLIPSIS, NEWAXIS

        if isinstance(entry, ast.Constant) and entry.value is None or self.dotted(entry) in _NEWAXIS:
            return NEWAXIS
        if isinstance(entry, ast.Constant) and entry.value is Ellipsis:
            return ELLIPSIS
        return None

    def getitem(self, base: Node, entries: list, node: ast.AST) -> Node:
        key = []
        for e in entries:
            if isinstance(e, ast.Slice):
                step = self.int_expr(e.step) if e.step is not None else None
                if step is not None and not step.is_Integer:
                    raise self.error("a slice step must be an integer constant", e)
                key.append(
                    (
                        self.int_expr(e.lower) if e.lower is not None else None,
                        self.int_expr(e.upper) if e.upper is not None else None,
                        step,
                    )
                )
            else:
                key.append(self.special_index(e) or self.index_expr(e))
        return self.call_op(OPERATORS["getitem"], [base], {"key": tuple(key)}, node)

    def _value_Tuple(self, node) -> Node:
        raise self.error(f"a tuple {self.source(node)!r} is not an array value", node)

    def _value_List(self, node) -> Node:
        raise self.error(f"a list {self.source(node)!r} is not an array value", node)

    # -- calls -------------------------------------------------------------------------
    def _value_Call(self, node: ast.Call) -> Node:
        func = node.func
        if isinstance(func, ast.Name):
            name = func.id
            self.check_name(name, func)
            if name in self.indices or name in self.scope or name in self.sizes:
                raise self.error(f"{name!r} is not a function", func)
            if name == "Sum":
                return self.sum(node)
            if name == "KroneckerDelta":
                return self.kronecker(node)
            if name == "diff" and self.calculus is not None:
                return self.derivative(node)
            if name in self.functions:
                return self.abstract_function(name, node)
            if name == "sum" and _index_arguments(node):
                return self.lowercase_sum(node)
            return self.call_named(name, name, node)
        dotted = self.dotted(func) if isinstance(func, ast.Attribute) else None
        if dotted is None:
            raise self.error(f"calling {self.source(func)!r} is not allowed", func)
        if dotted in REFUSED_SPELLINGS:
            raise self.error(f"{dotted} is not supported: {REFUSED_SPELLINGS[dotted]}", func)
        if dotted in EXTRA_REFUSED:
            raise self.error(f"{dotted} is not supported: {EXTRA_REFUSED[dotted]}", func)
        prefix, _, name = dotted.rpartition(".")
        root = dotted.split(".")[0]
        known_prefixes = {p for ps in FAMILY_PREFIXES.values() for p in ps}
        if root in self.scope or root in self.indices or root in self.sizes or prefix not in known_prefixes:
            if root not in {p.split(".")[0] for p in known_prefixes} or root in self.scope:
                raise self.error(f"method call {self.source(func)}() is not allowed", func)
            raise self.error(f"unknown function {dotted!r}", func)
        name = row_name(prefix, name)
        op = OPERATORS.get(name)
        if op is None or not op.by_name:
            raise self.error(f"unknown function {dotted!r}" + _did_you_mean(name, _function_names()), func)
        if name == "sigmoid":
            raise self.error(
                f"{dotted} is not supported: write sigmoid without a prefix (or scipy.special.expit)", func
            )
        if prefix not in FAMILY_PREFIXES.get(op.family, ()):
            allowed = ", ".join(f"{p}." for p in FAMILY_PREFIXES.get(op.family, ())) or "none"
            raise self.error(
                f"{dotted} is not supported: {name} means the {op.family} function here (prefixes allowed: {allowed})",
                func,
            )
        return self.call_named(name, dotted, node)

    def lowercase_sum(self, node: ast.Call) -> Node:
        """NumPy's ``sum`` where it parses as one; else an error that points to ``Sum`` for an index sum."""
        try:
            return self.call_named("sum", "sum", node)
        except InputError:
            names = ", ".join(_index_arguments(node))
            raise self.error(
                f"sum is NumPy's sum over axes; for an index sum over {names} write Sum(body, {names})", node.func
            ) from None

    def call_named(self, name: str, spelling: str, node: ast.Call) -> Node:
        op = OPERATORS.get(name)
        if op is None or not op.by_name:
            raise self.error(f"unknown function {spelling!r}" + _did_you_mean(name, _function_names()), node.func)
        params = op.params
        keywords = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error("**kwargs is not allowed", kw)
            if kw.arg == "dim" and "dim" not in {p.name for p in params}:
                raise self.error(f"keyword dim= is PyTorch's; {spelling} takes axis=", kw.value)
            if kw.arg in keywords:
                raise self.error(f"keyword {kw.arg}= given twice", kw.value)
            if kw.arg not in {p.name for p in params}:
                raise self.error(f"{spelling} has no keyword {kw.arg}=", kw.value)
            keywords[kw.arg] = kw.value
        return self.bind(op, spelling, list(node.args), keywords, node)

    def bind(self, op: Operator, spelling: str, args: list, keywords: dict, node: ast.AST) -> Node:
        """Bind AST arguments to the operator's params, parse each by its kind, and build the call."""
        bound: dict[str, object] = {}
        params = list(op.params)
        rest = list(args)
        for p in params:
            if not rest:
                break
            if p.kind == "tensors":
                bound[p.name] = tuple(self.value(a) for a in rest)
                rest = []
                break
            if p.name in keywords:
                break
            bound[p.name] = self.parse_param(p, rest.pop(0), spelling)
        if rest:
            positional = sum(1 for p in params if p.kind != "tensors")
            raise self.error(f"{spelling} takes at most {positional} positional arguments, got {len(args)}", rest[0])
        for name, v in keywords.items():
            if name in bound:
                raise self.error(f"{spelling} got {name} both positionally and as a keyword", v)
            p = next(p for p in params if p.name == name)
            bound[name] = (
                tuple(self.value(a) for a in v.elts) if p.kind == "tensors" else self.parse_param(p, v, spelling)
            )
        for p in params:
            if p.name not in bound:
                if p.required:
                    raise self.error(f"{spelling} is missing its argument {p.name}", node)
                bound[p.name] = () if p.kind == "tensors" else p.default
        return self.finish_call(op, tuple((p.name, bound[p.name]) for p in params), node)

    def call_op(self, op: Operator, tensor_args: list, options: dict, node: ast.AST) -> Node:
        """A call of a syntax operator (``+``, ``@``, ``.T``, ``x[...]``) with positional tensors."""
        bound = {}
        positional = [p for p in op.params if p.kind in ("tensor", "tensors")]
        for p, v in zip(positional, tensor_args, strict=False):
            bound[p.name] = v
        bound.update(options)
        args = tuple((p.name, bound.get(p.name, p.default)) for p in op.params)
        return self.finish_call(op, args, node)

    def finish_call(self, op: Operator, args: tuple, node: ast.AST) -> Node:
        """The Call node; in an index-form body a 0-d call on element values folds to a Scalar."""
        call = Call(op.name, args)
        kinds = {p.name: p.kind for p in op.params}
        tensors = []
        for name, v in args:
            if kinds[name] == "tensor" and isinstance(v, Node):
                tensors.append(v)
            elif kinds[name] == "tensors":
                tensors.extend(v)
        built = self.build(call, node)
        if any(self.has_scalar(t) for t in tensors):
            if built.ndim != 0:
                raise self.error(
                    f"{self.source(node)!r} mixes an indexed element with whole arrays (shape {built.shape})", node
                )
            self.valid.append(built.valid)
            return Scalar(built.at(()))
        return call

    def has_scalar(self, node: Node) -> bool:
        return isinstance(node, Scalar)

    def build(self, node: Node, where: ast.AST) -> Tensor:
        """The tensor of a tree; an operator that rejects its arguments makes an input error."""
        try:
            tensor = build(node, self.scope)
        except InputError as exc:
            if exc.where:
                raise
            raise self.error(exc.message, where) from None
        except InternalError:
            raise
        except Exception as exc:  # an operator rejecting its arguments is the user's mistake
            if isinstance(exc, RecursionError | MemoryError):
                raise self.error("expression too large to build", where) from None
            raise self.error(f"{self.source(where)}: {exc}", where) from exc
        if tensor.valid is sp.false or tensor.valid == sp.false:
            raise self.error(f"{self.source(where)!r} is defined at no size (shapes never fit)", where)
        return tensor

    def parse_param(self, p: Param, node: ast.AST, spelling: str):
        """One argument parsed according to its parameter kind."""
        if p.kind == "tensor":
            if isinstance(node, ast.Constant) and (node.value is None):
                if p.default is None and not p.required:
                    return None
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bool):
                raise self.error(f"{spelling}: argument {p.name} must be an array, got {node.value!r}", node)
            return self.value(node)
        if p.kind == "str" or p.kind == "spec":
            if isinstance(node, ast.Constant) and node.value is None and p.default is None:
                return None
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                raise self.error(f"{spelling}: {p.name} must be a string", node)
            if p.choices and node.value not in p.choices:
                choices = ", ".join(repr(c) for c in p.choices)
                raise self.error(f"{spelling}: {p.name}={node.value!r} is not one of {choices}", node)
            return node.value
        if p.kind == "bool":
            if not (isinstance(node, ast.Constant) and isinstance(node.value, bool)):
                raise self.error(f"{spelling}: {p.name} must be True or False", node)
            return node.value
        value = self.option(node)
        if isinstance(value, str):
            # a numeric option may also take named values (torch's padding="same")
            if value in p.choices:
                return value
            allowed = f" (one of {', '.join(repr(c) for c in p.choices)}, or numbers)" if p.choices else ""
            raise self.error(f"{spelling}: {p.name}={value!r} is not allowed{allowed}", node)
        if isinstance(value, bool):
            raise self.error(f"{spelling}: {p.name} must be a number, not {value}", node)
        if p.kind == "int":
            ok = value is None or _is_ints(value, nested=False) and not isinstance(value, tuple)
        elif p.kind in ("ints", "axis"):
            ok = value is None or _is_ints(value, nested=p.kind == "ints")
        elif p.kind == "number":
            ok = value is None or isinstance(value, int | sp.Expr)
        else:
            ok = True
        if value is None and p.default is not None and p.kind in ("int",):
            ok = False
        if not ok:
            raise self.error(f"{spelling}: bad value {self.source(node)!r} for {p.name}", node)
        return value

    def option(self, node: ast.AST):
        """An option value: an int (or integer expression over sizes), a tuple, None, a string."""
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None or isinstance(v, str | bool):
                return v
            if isinstance(v, float):
                return self.number(v, node)
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self.option(e) for e in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            if isinstance(node.operand.value, float):
                return -self.number(node.operand.value, node)
        e = self.int_expr(node)
        return int(e) if e.is_Integer else e

    # -- integer expressions: indices, bounds, options, shapes -------------------------
    def int_expr(self, node: ast.AST) -> sp.Expr:
        """An integer expression over sizes and index variables (``%``/``//`` by constants)."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                raise self.error(f"{node.value!r} is not an integer", node)
            return self.number(node.value, node)
        if isinstance(node, ast.Name):
            self.check_name(node.id, node)
            if node.id in self.indices:
                return self.indices[node.id]
            if node.id in self.sizes:
                return self.sizes[node.id]
            if node.id in self.scope:
                raise self.error(f"{node.id!r} is a tensor, not an integer", node)
            raise self.error(self.unknown_name(node), node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = self.int_expr(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self.int_expr(node.left), self.int_expr(node.right)
            out = self.int_binop(node, a, b)
            if isinstance(node.op, ast.Mult | ast.Pow) and _int_degree(out) > MAX_INT_DEGREE:
                raise self.error(
                    f"{_short(self.source(node))} is not linear (sizes and indices may be added, subtracted and "
                    "multiplied by integer constants; // and % by integer constants)",
                    node,
                )
            if out.is_Integer and abs(out) > MAX_INT:
                raise self.error(f"integer {self.source(node)} is too large (at most {MAX_INT})", node)
            return out
        forbidden = _FORBIDDEN.get(type(node))
        if forbidden:
            raise self.error(f"{forbidden} is not allowed in a claim", node)
        raise self.error(f"{self.source(node)!r} is not an integer expression", node)

    def int_binop(self, node: ast.BinOp, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        op = node.op
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.FloorDiv | ast.Mod):
            if not b.is_Integer or b == 0:
                sym = "//" if isinstance(op, ast.FloorDiv) else "%"
                raise self.error(
                    f"{sym} needs a nonzero integer constant on its right, got {self.source(node.right)}", node
                )
            return sp.floor(a / b) if isinstance(op, ast.FloorDiv) else sp.Mod(a, b)
        if isinstance(op, ast.Pow):
            if not b.is_Integer or b < 0:
                raise self.error(f"exponent {self.source(node.right)} must be a nonnegative integer constant", node)
            self.check_exponent(b, node.right)
            return a**b
        if isinstance(op, ast.Div):
            raise self.error("/ is not integer division here (use //)", node)
        raise self.error(f"operator {type(op).__name__} is not allowed in an integer expression", node)

    def index_symbols(self) -> set:
        return set(self.indices.values())

    def index_expr(self, node: ast.AST) -> sp.Expr:
        """An index: affine in the index variables with integer coefficients (plus ``//``, ``%``)."""
        e = self.int_expr(node)
        self.check_affine(e, node)
        return e

    def check_affine(self, e: sp.Expr, node: ast.AST, variables: set | None = None) -> None:
        """Raise an input error unless ``e`` is affine in ``variables`` (default: the index
        variables) with integer coefficients; ``variables`` given means a size expression."""
        over_sizes = variables is not None
        variables = self.index_symbols() if variables is None else variables
        atoms = {}
        for a in e.atoms(sp.floor, sp.Mod):
            # floor(e / c) and Mod(e, c): e itself must be affine (c is a constant)
            numerator, denominator = sp.fraction(sp.together(a.args[0]))
            if not denominator.is_Integer:
                raise self.error(f"{self.source(node)} divides by a non-constant", node)
            self.check_affine(sp.expand(numerator), node, variables if over_sizes else None)
            atoms[a] = sp.Dummy(integer=True)
        flat = e.xreplace(atoms)
        used = [v for v in variables | set(atoms.values()) if flat.has(v)]
        if not used:
            return
        try:
            poly = sp.Poly(flat, *used)
        except sp.PolynomialError:
            poly = None
        if poly is None or poly.total_degree() > 1:
            raise self.error(self.not_affine(node, over_sizes), node)
        for v in used:
            c = poly.coeff_monomial(v)
            if not c.is_Integer:
                if over_sizes:
                    raise self.error(self.not_affine(node, over_sizes), node)
                raise self.error(
                    f"index {self.source(node)} has a non-constant coefficient {c} (a symbolic stride)", node
                )

    def not_affine(self, node: ast.AST, over_sizes: bool) -> str:
        """Why an expression is refused: an index must be affine in the index variables, a
        size expression (a dimension, an assumption) linear in the sizes."""
        if over_sizes:
            return (
                f"{self.source(node)} is not linear in the sizes (sizes may be added, subtracted and "
                "multiplied by integer constants; // and % by integer constants)"
            )
        return f"index {self.source(node)} is not affine in the index variables"

    # -- derivatives and abstract functions -------------------------------------------------
    def derivative(self, node: ast.Call) -> Node:
        """``diff(E, x[a, b])`` (one element: a scalar) or ``diff(E, x)`` (whole tensor: an array
        of shape E.shape + x.shape); x an input, ``g`` or an intermediate, ``L`` the loss."""
        if node.keywords or len(node.args) != 2:
            raise self.error("diff takes two arguments: diff(E, x[a, b]) or diff(E, x)", node)
        of, wrt = node.args
        target = wrt.value if isinstance(wrt, ast.Subscript) else wrt
        if not isinstance(target, ast.Name) or target.id not in self.scope:
            raise self.error(f"diff: {self.source(wrt)!r} is not a tensor of the layer (x[a, b] or x)", wrt)
        name = target.id
        scope = self.calculus.scope_with_leaf(name, self.scope)
        if scope is None:
            raise self.error(f"diff: {name!r} is not an input or intermediate of the layer", wrt)
        shape = self.scope[name].shape
        saved, self.scope = self.scope, scope
        try:
            value = self.loss_value(of) if isinstance(of, ast.Name) and of.id == "L" else self.value(of)
            tensor = from_scalar(self.scalar_of(value)) if isinstance(value, Num | Scalar) else self.build(value, of)
        finally:
            self.scope = saved
        self.valid.append(tensor.valid)
        back = self.calculus.forward_of(name, self.scope)
        if isinstance(wrt, ast.Subscript):
            entries = wrt.slice.elts if isinstance(wrt.slice, ast.Tuple) else [wrt.slice]
            at = tuple(self.index_expr(e) for e in entries)
            if len(at) != len(shape):
                raise self.error(f"{name} has rank {len(shape)}, indexed with {len(at)} indices", wrt)
            if tensor.ndim:
                raise self.error(f"diff of an array {self.source(of)!r} by one element: index it first", of)
            return Scalar(self.calculus.differentiate(tensor.at(()), name, at, shape, back))
        return self.jacobian(tensor, name, shape, back)

    def loss_value(self, node: ast.Name) -> Node:
        """``L`` inside ``diff``: the loss (a loss layer's output, else ``sum(g * y)``)."""
        if "L" in self.scope:
            return Ref("L")
        loss = self.calculus.loss(self.scope)
        if loss is None:
            raise self.error(self.unknown_name(node), node)
        return Scalar(loss)

    def jacobian(self, tensor: Tensor, name: str, shape: tuple, back) -> Node:
        """The array of derivatives of every element of ``tensor`` by every element of ``name``."""
        calculus, rank = self.calculus, tensor.ndim

        def element(idx):
            return calculus.differentiate(tensor.at(idx[:rank]), name, tuple(idx[rank:]), shape, back)

        return self.named_array(Tensor(shape=tuple(tensor.shape) + tuple(shape), element=element, valid=tensor.valid))

    def named_array(self, tensor: Tensor) -> Node:
        """A computed array kept in this parse's scope under a fresh name, referenced."""
        key = f"__array{len(self.scope)}"
        self.scope[key] = tensor
        return Ref(key)

    def abstract_function(self, name: str, node: ast.Call) -> Node:
        """``f(E)`` of a declared abstract elementwise function (``f_prime`` its derivative):
        a scalar on an element, else the tree node applying it elementwise."""
        if node.keywords or len(node.args) != 1:
            raise self.error(f"{name} takes one argument (it is elementwise)", node)
        value = self.value(node.args[0])
        base, order = self.functions[name]
        if isinstance(value, Num | Scalar):
            return Scalar(function_class(base, order)(self.scalar_of(value)))
        applied = Apply(base, order, value)
        self.build(applied, node)
        return applied

    # -- Sum and KroneckerDelta --------------------------------------------------------
    def kronecker(self, node: ast.Call) -> Node:
        if node.keywords or len(node.args) != 2:
            raise self.error("KroneckerDelta takes exactly two index expressions", node)
        a, b = (self.index_expr(x) for x in node.args)
        return Scalar(sp.KroneckerDelta(a, b))

    def sum(self, node: ast.Call) -> Node:
        if node.keywords:
            raise self.error("Sum takes no keywords", node.keywords[0].value)
        if len(node.args) < 2:
            raise self.error("Sum needs a body and at least one index: Sum(body, i, ...)", node)
        body_node, limit_nodes = node.args[0], node.args[1:]
        names = []
        for lim in limit_nodes:
            target = lim.elts[0] if isinstance(lim, ast.Tuple) and lim.elts else lim
            if not isinstance(target, ast.Name):
                raise self.error(f"a Sum index must be a name or (name, lo, hi), got {self.source(lim)!r}", lim)
            if isinstance(lim, ast.Tuple) and len(lim.elts) != 3:
                raise self.error(f"a Sum range is (name, lo, hi), got {self.source(lim)!r}", lim)
            self.check_name(target.id, target)
            if target.id in RESERVED or target.id in names:
                raise self.error(f"{target.id!r} cannot be a Sum index here", target)
            names.append(target.id)
        saved = dict(self.indices)
        outer = set(self.indices.values())
        syms = [dummy_index(n) for n in names]
        self.indices.update(zip(names, syms, strict=False))
        self.frames.append(_Frame())
        try:
            explicit = {}
            for k, lim in enumerate(limit_nodes):
                if isinstance(lim, ast.Tuple):
                    lo, hi = self.index_expr(lim.elts[1]), self.index_expr(lim.elts[2])
                    inner = set(syms[: k + 1])
                    if (lo.free_symbols | hi.free_symbols) & inner:
                        raise self.error(f"the bounds of {names[k]} use an inner Sum index", lim)
                    explicit[k] = (lo, hi)
            body = self.value(body_node)
            if not isinstance(body, Num | Scalar):
                body_t = self.build(body, body_node)
                if body_t.ndim != 0:
                    raise self.error(f"the Sum body {self.source(body_node)!r} is not a scalar", body_node)
                self.valid.append(body_t.valid)
                body_expr = body_t.at(())
            else:
                body_expr = self.scalar_of(body)
            reads = self.frames[-1].reads
            limits, guards = [], []
            for k, (name, sym) in enumerate(zip(names, syms, strict=False)):
                if k in explicit:
                    lo, hi = explicit[k]
                    self.sum_bounds[sym] = (lo, hi, False)
                else:
                    allowed = outer | set(syms[k + 1 :])
                    lo, hi, guard = self.bare_bounds(sym, name, allowed, reads, limit_nodes[k])
                    self.sum_bounds[sym] = (lo, hi, True)
                    guards.append(guard)
                limits.append((sym, lo, hi))
        finally:
            frame = self.frames.pop()
            self.frames[-1].reads.extend(frame.reads)
            self.indices = saved
        guard = self.combined_guard(guards)
        return Scalar(GSum(guard * body_expr, *limits) if body_expr != 0 else sp.S.Zero)

    def bare_bounds(self, sym, name, allowed: set, reads: list, where: ast.AST):
        """Bounds of a bare Sum index from the reads that use it, and the guard 'one of them is in range'.

        Each read contributes the range of ``sym`` over which its positions that use ``sym``
        are in range; the bounds are the hull of those ranges, and the guard (None when a
        single read gives the range exactly) keeps the points where one of them holds.
        """
        using = [r for r in reads if any(i.has(sym) for i in r.idx)]
        if not using:
            raise self.error(f"Sum index {name!r} is used by no tensor read; give its range as ({name}, lo, hi)", where)
        los, his, conds = [], [], []
        for r in using:
            r_lo, r_hi, r_cond = [], [], []
            for i, n in zip(r.idx, r.shape, strict=True):
                if not i.has(sym):
                    continue
                others = i.free_symbols - {sym} - set(self.sizes.values())
                if others - allowed or i.has(sp.floor, sp.Mod):
                    raise self.error(
                        f"cannot infer the range of Sum index {name!r} from {i}; give it as ({name}, lo, hi)", where
                    )
                a = sp.expand(i).coeff(sym)
                rest = sp.expand(i - a * sym)
                if a > 0:
                    r_lo.append(sp.ceiling(-rest / a))
                    r_hi.append(sp.floor((n - 1 - rest) / a))
                else:
                    r_lo.append(sp.ceiling((n - 1 - rest) / a))
                    r_hi.append(sp.floor(-rest / a))
                r_cond += [sp.Ge(i, 0), sp.Lt(i, n)]
            los.append(sp.Max(*r_lo))
            his.append(sp.Min(*r_hi))
            conds.append(sp.And(*r_cond))
        # reads that all give the same range need no guard: the bounds are that range (Sum(w[i, k]
        # * x[k], k) over w [m, n] and x [n]); a guard left inside f(...) would hide the sum from the prover
        same = len(set(zip(los, his, strict=True))) == 1
        guard = None if len(using) == 1 or same else sp.Or(*conds)
        return sp.Min(*los), sp.Max(*his), guard

    def combined_guard(self, guards) -> sp.Expr:
        """The Iverson guard of the bare indices whose range is a hull of several reads' ranges."""
        guards = [g for g in guards if g is not None]
        return Iverson(sp.And(*guards)) if guards else sp.S.One


def _index_arguments(node: ast.Call) -> list[str]:
    """The names a ``sum(body, i, (j, lo, hi))`` call gives after its body, as ``Sum`` takes them.

    >>> _index_arguments(ast.parse("sum(x[i], i, (j, 0, n))", mode="eval").body)
    ['i', 'j']
    >>> _index_arguments(ast.parse("sum(x, 0)", mode="eval").body)
    []
    """
    names = []
    for arg in node.args[1:]:
        target = arg.elts[0] if isinstance(arg, ast.Tuple) and arg.elts else arg
        if not isinstance(target, ast.Name):
            return []
        names.append(target.id)
    return names


def _function_names() -> list[str]:
    """The functions a claim may call by name."""
    return [n for n, op in OPERATORS.items() if op.by_name] + list(SYMPY_FUNCTIONS)


def _did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the names in ``known`` closest to a misspelt ``name``, or "".

    >>> _did_you_mean("softmx", ["softmax", "sum"]), _did_you_mean("zzz", ["x"])
    (" (did you mean 'softmax'?)", '')
    """
    import difflib

    known = sorted(set(known))
    same_letters = [k for k in known if k.lower() == name.lower() and k != name]  # W for w
    close = same_letters or difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _is_ints(value, nested: bool) -> bool:
    """An int, or a tuple of ints (of tuples of ints, when ``nested``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if isinstance(value, sp.Expr):
        return bool(value.is_integer)
    if isinstance(value, tuple):
        return all(_is_ints(v, False) or (nested and _is_ints(v, True)) for v in value)
    return False


def _check_size(text: str, where: str) -> None:
    if len(text) > MAX_TEXT:
        raise InputError(f"text too long ({len(text)} characters, at most {MAX_TEXT})", where=where)


def _parse_ast(text: str, where: str) -> tuple[ast.AST, ast.AST | None, int]:
    """(right side, left side or None, column offset) of ``expr``, ``lhs == rhs`` or ``lhs = rhs``."""
    _check_size(text, where)
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    stripped = stripped.rstrip()
    if not stripped:
        raise InputError("empty expression", where=where)
    try:
        try:
            tree = ast.parse(stripped, mode="eval").body
            lhs = None
        except SyntaxError as first:
            try:
                module = ast.parse(stripped, mode="exec")
            except SyntaxError:
                raise first from None
            if len(module.body) != 1 or not isinstance(module.body[0], ast.Assign) or len(module.body[0].targets) != 1:
                raise first from None
            tree, lhs = module.body[0].value, module.body[0].targets[0]
    except SyntaxError as exc:
        # Python reports offset 0 for a text that ends too early: point past its end
        col = (exc.offset or len(stripped) + 1) + offset
        raise InputError(f"syntax error: {exc.msg}", where=f"{where}, column {col}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise InputError(f"expression too deeply nested or too large ({type(exc).__name__})", where=where) from None
    _check_shape(tree if lhs is None else ast.Tuple(elts=[lhs, tree]), where, offset)
    return tree, lhs, offset


def _short(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters for a message (a hostile literal can be thousands long).

    >>> _short("1" * 100, 10)
    '1111111...'
    """
    return text if len(text) <= width else text[: width - 3] + "..."


def _int_degree(e: sp.Expr) -> int:
    """The total degree of an integer expression in its symbols, read off its tree (nothing expanded).

    >>> m = size_symbol("m")
    >>> _int_degree((m + 1) ** 4096), _int_degree(2 * m + (m // 2) % 3)
    (4096, 1)
    """
    if e.is_Number:
        return 0
    if e.is_Symbol:
        return 1
    if isinstance(e, sp.Mul):
        return sum(_int_degree(a) for a in e.args)
    if isinstance(e, sp.Pow):
        if e.exp.is_Integer and e.exp >= 0:
            return _int_degree(e.base) * int(e.exp)
        return MAX_INT_DEGREE + 1
    return max((_int_degree(a) for a in e.args), default=0)


def _exponent(node: ast.AST) -> float | None:
    """The constant exponent a ``**`` node raises to, or None when it is not a number."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return abs(value)


def _degree(node: ast.AST) -> float:
    """An upper bound of the polynomial degree of an expression, read off its syntax.

    Expanding a product of sums multiplies out their terms; the degree bounds how far.

    >>> _degree(ast.parse("(((m + 1)**64)**64)**64", mode="eval").body)
    262144
    >>> _degree(ast.parse("g * (1 - y**2)", mode="eval").body)
    3
    """
    if isinstance(node, ast.Constant):
        return 0
    if isinstance(node, ast.Name | ast.Attribute) and not (isinstance(node, ast.Attribute) and node.attr == "T"):
        return 1
    if isinstance(node, ast.Attribute | ast.Subscript):
        return _degree(node.value)
    if isinstance(node, ast.UnaryOp):
        return _degree(node.operand)
    if isinstance(node, ast.BinOp):
        left, right = _degree(node.left), _degree(node.right)
        if isinstance(node.op, ast.Mult | ast.MatMult | ast.Div):
            return left + right
        if isinstance(node.op, ast.Pow):
            e = _exponent(node.right)
            return left * math.ceil(e) if e is not None else max(left, right)
        if isinstance(node.op, ast.FloorDiv | ast.Mod):
            return left
        return max(left, right)
    if isinstance(node, ast.Call):
        args = [_degree(a) for a in node.args]
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "Sum":
            return args[0] if args else 0
        if name == "square":
            return 2 * max(args, default=0)
        return sum(args) if name in _PRODUCT_CALLS else max(args, default=0)
    return max((_degree(c) for c in ast.iter_child_nodes(node)), default=0)


def _has_large_exponent(tree: ast.AST) -> bool:
    """Whether one ``**`` alone has an exponent over the bound (the parser names that exponent)."""
    return any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) and (_exponent(n.right) or 0) > MAX_EXPONENT
        for n in ast.walk(tree)
    )


def _check_shape(tree: ast.AST, where: str, offset: int) -> None:
    count = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InputError(f"expression too large (more than {MAX_NODES} syntax nodes)", where=where)
        if depth > MAX_DEPTH:
            raise InputError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                where=f"{where}, column {_col(node, offset)}",
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    degree = _degree(tree)
    if degree > MAX_DEGREE and not _has_large_exponent(tree):
        raise InputError(
            f"expression of polynomial degree {degree:g} (at most {MAX_DEGREE}): its powers and products "
            "would expand to more terms than memory holds",
            where=where,
        )


def _split_equation(tree: ast.AST, lhs: ast.AST | None, wrt: str, scope_names: Iterable[str]):
    """(left side, right side) when the claim is an equation ``d<wrt>[...] == body``."""
    if lhs is not None:
        return lhs, tree
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        left = tree.left
        base = left.value if isinstance(left, ast.Subscript) else left
        if isinstance(base, ast.Name) and base.id.startswith("d") and base.id not in scope_names:
            return left, tree.comparators[0]
    return None, tree


def parse_claim(text: str, layer, wrt: str) -> Claim:
    """Parse a claim about the gradient of ``layer``'s loss with respect to input ``wrt``.

    >>> from symderive.layer import load_layer
    >>> c = parse_claim('convolve(g, w, "full")', load_layer("conv2d"), "x")
    >>> c.tree.op
    'convolve'
    """
    where = "claim"
    if not isinstance(text, str):
        raise TypeError(f"the claim is a string such as 'w.T @ g', got {type(text).__name__} {text!r:.60}")
    if wrt not in layer.inputs:
        raise InputError(f"--wrt {wrt!r} is not an input of layer {layer.name} ({', '.join(layer.inputs)})")
    if wrt in layer.constants:
        raise InputError(f"--wrt {wrt!r} is a constant of layer {layer.name}, not differentiated")
    scope = layer.scope()
    sizes = {str(s): s for s in layer.sizes}
    tree, lhs, offset = _parse_ast(text, where)
    parser = _Parser(text.lstrip().rstrip(), scope, sizes, where, offset, functions=getattr(layer, "functions", ()))
    left, right = _split_equation(tree, lhs, wrt, scope)
    if left is None:
        return _closed_claim(parser, text, wrt, right, layer)
    base = left.value if isinstance(left, ast.Subscript) else left
    if not isinstance(base, ast.Name) or base.id != "d" + wrt:
        got = parser.source(base)
        raise parser.error(f"the left side must be d{wrt} (the gradient with respect to --wrt {wrt}), got {got}", base)
    if not isinstance(left, ast.Subscript):
        return _closed_claim(parser, text, wrt, right, layer)
    entries = left.slice.elts if isinstance(left.slice, ast.Tuple) else [left.slice]
    names = []
    for e in entries:
        if not isinstance(e, ast.Name) or e.id in names or e.id in RESERVED or e.id.startswith("__"):
            raise parser.error(f"the left side's indices must be distinct names, got {parser.source(e)!r}", e)
        names.append(e.id)
    rank = len(layer.inputs[wrt])
    if len(names) != rank:
        raise parser.error(f"d{wrt} has {rank} indices ({wrt} has rank {rank}), got {len(names)}", left)
    free = tuple(index_symbol(n) for n in names)
    parser.indices = dict(zip(names, free, strict=False))
    value = parser.value(right)
    body = _scalar_body(parser, value, right)
    return Claim(text=text, wrt=wrt, index=free, body=body, valid=sp.And(*parser.valid))


def _scalar_body(parser: _Parser, value: Node, where: ast.AST) -> sp.Expr:
    if isinstance(value, Num | Scalar):
        return parser.scalar_of(value)
    tensor = parser.build(value, where)
    if tensor.ndim != 0:
        raise parser.error(
            f"the right side {parser.source(where)!r} is an array (shape {tensor.shape}), not an element", where
        )
    parser.valid.append(tensor.valid)
    return tensor.at(())


def _closed_claim(parser: _Parser, text: str, wrt: str, node: ast.AST, layer) -> Claim:
    value = parser.value(node)
    if isinstance(value, Scalar):
        if not layer.inputs[wrt]:
            # an index-level scalar about a 0-d input: the index form without brackets (db == Sum(...))
            return Claim(text=text, wrt=wrt, index=(), body=value.expr, valid=sp.And(*parser.valid))
        # a scalar claim about an array input: kept as a 0-d closed form, so its shape is refuted
        value = Scalar(value.expr, latex=sp.latex(value.expr))
    parser.build(value, node)
    return Claim(text=text, wrt=wrt, tree=value)


def claim_tensor(claim: Claim, layer) -> Tensor:
    """The index-level tensor a claim denotes.

    >>> from symderive.layer import load_layer
    >>> layer = load_layer("linear")
    >>> claim_tensor(parse_claim("g", layer, "b"), layer).shape
    (m,)
    """
    if claim.tree is not None:
        return build(claim.tree, layer.scope())
    free, body = claim.index, claim.body

    def element(idx):
        return substituted(body, free, idx)

    return Tensor(shape=tuple(layer.inputs[claim.wrt]), element=element, valid=claim.valid, latex=sp.latex(body))


# -- identities ------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """A parsed identity ``LHS == RHS``.

    Each side is a :class:`~symderive.ir.Tensor` (a closed form, an array) or, when
    ``free`` is not empty or the side is index-level, a SymPy scalar at the free indices.
    """

    text: str
    left: object
    right: object
    free: tuple[sp.Symbol, ...]
    valid: sp.Boolean


def _sum_bound_names(tree: ast.AST) -> set[str]:
    """The names some ``Sum(...)`` in ``tree`` binds as its summation variables."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Sum":
            for lim in node.args[1:]:
                target = lim.elts[0] if isinstance(lim, ast.Tuple) and lim.elts else lim
                if isinstance(target, ast.Name):
                    out.add(target.id)
    return out


def _free_index_names(tree: ast.AST, known: set[str]) -> list[str]:
    """Names used inside an index (``x[e - a]``, ``KroneckerDelta(i, j)``) that nothing binds, in order."""
    bound = _sum_bound_names(tree) | known
    found: list[str] = []
    for node in ast.walk(tree):
        places = []
        if isinstance(node, ast.Subscript):
            places = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "KroneckerDelta":
            places = list(node.args)
        for place in places:
            for name in ast.walk(place):
                if isinstance(name, ast.Name) and name.id not in bound and name.id not in found:
                    found.append(name.id)
    return sorted(found, key=lambda n: (n.startswith("_"), n))


def parse_identity(
    text: str, names, sizes, where: str = "identity", calculus: Calculus | None = None, functions: Iterable[str] = ()
) -> Identity:
    """Parse ``LHS == RHS`` over named tensors: two closed forms, or two index-level scalars.

    An index variable used by a side but bound by no ``Sum`` is free (the identity is
    claimed at every integer value of it).

    >>> n, k = size_symbol("n"), size_symbol("k")
    >>> ident = parse_identity("Sum(w[e - a] * x[a], a) == Sum(w[a] * x[e - a], a)", {"x": (n,), "w": (k,)}, [n, k])
    >>> ident.free
    (e,)
    >>> parse_identity("flip(flip(x)) == x", {"x": (n,)}, [n]).left.shape
    (n,)
    """
    tree, lhs, offset = _parse_ast(text, where)
    if lhs is None:
        if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq)):
            raise InputError("an identity is LHS == RHS (one ==)", where=where)
        lhs, tree = tree.left, tree.comparators[0]
    scope = _scope_of(names)
    sizes = _sizes_of(sizes)
    parser = _Parser(text.strip(), scope, sizes, where, offset, calculus, functions)
    if calculus is not None:
        lhs, tree = (_GradientReads(scope).visit(side) for side in (lhs, tree))
    known = set(scope) | set(sizes) | set(OPERATORS) | set(SYMPY_FUNCTIONS)
    known |= set(parser.functions)
    if calculus is not None:
        known |= {"diff", "L"}
    free_names = _free_index_names(ast.Tuple(elts=[lhs, tree]), known)
    free = tuple(index_symbol(n) for n in free_names)
    parser.indices = dict(zip(free_names, free, strict=True))
    sides = [parser.value(lhs), parser.value(tree)]
    scalar = [isinstance(v, Num | Scalar) for v in sides]
    if free or any(scalar):
        if not all(scalar) and free:
            raise parser.error("with free index variables both sides are elements (index-level), not arrays", tree)
        if all(scalar):
            left, right = (_scalar_body(parser, v, n) for v, n in zip(sides, (lhs, tree), strict=True))
            ranged = _free_index_ranges(lhs, dict(zip(free_names, free, strict=True)), scope, parser)
            if ranged != sp.true:
                # DERIVATIONS.md, free indices: where an index is out of its range the entry says nothing
                left, right = Iverson(ranged) * left, Iverson(ranged) * right
            return Identity(text, left, right, free, sp.And(*parser.valid))
    left, right = (parser.build(v, n) for v, n in zip(sides, (lhs, tree), strict=True))
    return Identity(text, left, right, (), sp.And(*parser.valid))


def _free_index_ranges(lhs: ast.AST, free: dict, scope: dict, parser: _Parser | None = None) -> sp.Boolean:
    """The condition that each free index standing alone in an index position of a tensor read
    on the left side is inside that dimension (in every such read); others are unbounded.
    The element reads of a derivative on the left (``diff(y[i - m], x[i])``) are in range too:
    the derivative of an element that does not exist says nothing.

    >>> n = size_symbol("n")
    >>> i = index_symbol("i")
    >>> _free_index_ranges(ast.parse("x[i] + x[i + 1]", mode="eval").body, {"i": i}, {"x": leaf("x", (n,))})
    (i >= 0) & (i < n)
    """
    conditions = []
    bound = _sum_bound_names(lhs)
    for node in ast.walk(lhs):
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in scope):
            continue
        entries = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        shape = scope[node.value.id].shape
        if len(entries) != len(shape):
            continue
        for entry, size in zip(entries, shape, strict=True):
            if isinstance(entry, ast.Name) and entry.id in free and entry.id not in bound:
                conditions += [sp.Ge(free[entry.id], 0), sp.Lt(free[entry.id], size)]
    if parser is not None:
        conditions += _derivative_reads_in_range(lhs, free, scope, parser, bound)
    return sp.And(*dict.fromkeys(conditions))


def _derivative_reads_in_range(lhs: ast.AST, free: dict, scope: dict, parser: _Parser, bound: set) -> list:
    """In-range conditions of the element reads ``diff`` differentiates and differentiates by."""
    out = []
    for node in ast.walk(lhs):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "diff"):
            continue
        for read in node.args[:2]:
            if not (isinstance(read, ast.Subscript) and isinstance(read.value, ast.Name) and read.value.id in scope):
                continue
            entries = read.slice.elts if isinstance(read.slice, ast.Tuple) else [read.slice]
            shape = scope[read.value.id].shape
            names = {n.id for e in entries for n in ast.walk(e) if isinstance(n, ast.Name)}
            if len(entries) != len(shape) or names & bound or not names <= set(free) | set(parser.sizes):
                continue
            for entry, size in zip(entries, shape, strict=True):
                if any(isinstance(n, ast.Name) and n.id in free for n in ast.walk(entry)):
                    index = parser.index_expr(entry)
                    out += [sp.Ge(index, 0), sp.Lt(index, size)]
    return out


class _GradientReads(ast.NodeTransformer):
    """``dx[p, q]`` (``dx``) for an input x as ``diff(L, x[p, q])`` (``diff(L, x)``): the
    gradient of the loss, where ``dx`` names nothing else."""

    def __init__(self, scope):
        self.scope = scope

    def gradient_of(self, node) -> str | None:
        if isinstance(node, ast.Name) and node.id.startswith("d") and node.id not in self.scope:
            return node.id[1:] if node.id[1:] in self.scope and node.id[1:] != "g" else None
        return None

    def visit_Subscript(self, node: ast.Subscript):
        name = self.gradient_of(node.value)
        if name is None:
            return self.generic_visit(node)
        read = ast.copy_location(ast.Subscript(ast.Name(name, ast.Load()), node.slice, ast.Load()), node)
        return ast.copy_location(ast.Call(ast.Name("diff", ast.Load()), [ast.Name("L", ast.Load()), read], []), node)

    def visit_Name(self, node: ast.Name):
        name = self.gradient_of(node)
        if name is None:
            return node
        whole = ast.copy_location(ast.Name(name, ast.Load()), node)
        return ast.copy_location(ast.Call(ast.Name("diff", ast.Load()), [ast.Name("L", ast.Load()), whole], []), node)


# -- layer expressions -----------------------------------------------------------------
def _scope_of(names) -> dict[str, Tensor]:
    if isinstance(names, Mapping):
        return {n: v if isinstance(v, Tensor) else leaf(n, tuple(v)) for n, v in names.items()}
    raise TypeError("names must map names to tensors or shapes")


def _sizes_of(sizes) -> dict[str, sp.Symbol]:
    if isinstance(sizes, Mapping):
        return dict(sizes)
    return {str(s): s for s in sizes}


def parse_tree(text: str, names, sizes, where: str = "expression", functions: Iterable[str] = ()) -> Node:
    """A closed-form expression over named tensors (layer outputs, assumptions).

    ``names`` maps names to tensors or shapes, ``sizes`` names to size symbols (or is a
    list of size symbols).

    >>> n = size_symbol("n")
    >>> parse_tree("exp(s) - t", {"s": (n,), "t": (n,)}, [n]).op
    'subtract'
    """
    tree, lhs, offset = _parse_ast(text, where)
    if lhs is not None:
        raise InputError("an assignment is not an expression here", where=where)
    parser = _Parser(text.strip(), _scope_of(names), _sizes_of(sizes), where, offset, functions=functions)
    value = parser.value(tree)
    if isinstance(value, Scalar):
        raise parser.error("an index variable outside an index-form definition", tree)
    parser.build(value, tree)
    return value


def parse_size_expr(text: str, sizes, where: str = "shape", new_sizes: bool = False) -> tuple[sp.Expr, list]:
    """An integer expression over sizes; with ``new_sizes`` unknown names become new sizes.

    Returns the expression and the list of size symbols it introduced.

    >>> parse_size_expr("H - kh + 1", {}, new_sizes=True)
    (H - kh + 1, [H, kh])
    """
    tree, lhs, offset = _parse_ast(str(text), where)
    if lhs is not None:
        raise InputError("an assignment is not a size expression", where=where)
    sizes = _sizes_of(sizes)
    introduced = []
    if new_sizes:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in sizes:
                if node.id in RESERVED or node.id.startswith("__"):
                    raise InputError(f"{node.id!r} cannot be a size", where=f"{where}, column {_col(node, offset)}")
                sym = size_symbol(node.id)
                sizes[node.id] = sym
                introduced.append(sym)
    parser = _Parser(str(text).strip(), {}, sizes, where, offset)
    e = parser.int_expr(tree)
    parser.check_affine(e, tree, set(sizes.values()))
    return e, introduced


@dataclass(frozen=True)
class IndexDefinition:
    """A parsed index-form definition ``y[i, j] == body`` (a layer's output)."""

    name: str
    index: tuple[sp.Symbol, ...]
    body: sp.Expr
    valid: sp.Boolean
    #: summation variable -> (lo, hi, inferred) for every Sum in the body
    sum_bounds: dict
    reads: tuple


def parse_index_definition(
    text: str, names, sizes, target: str, where: str = "output", functions: Iterable[str] = ()
) -> IndexDefinition:
    """Parse ``target[i, j] == body`` (or ``=``) over named tensors.

    >>> n = size_symbol("n")
    >>> d = parse_index_definition("y[i] == 2 * x[i]", {"x": (n,)}, [n], "y")
    >>> d.body
    2*x[i]
    """
    tree, lhs, offset = _parse_ast(text, where)
    scope = _scope_of(names)
    parser = _Parser(text.strip(), scope, _sizes_of(sizes), where, offset, functions=functions)
    if lhs is None:
        if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq)):
            raise parser.error(f"an index-form definition is {target}[i, ...] == body", tree)
        lhs, tree = tree.left, tree.comparators[0]
    base = lhs.value if isinstance(lhs, ast.Subscript) else lhs
    if not isinstance(base, ast.Name) or base.id != target:
        raise parser.error(f"the left side must be {target}[...], got {parser.source(lhs)!r}", lhs)
    names_ = []
    if isinstance(lhs, ast.Subscript):
        entries = lhs.slice.elts if isinstance(lhs.slice, ast.Tuple) else [lhs.slice]
        for e in entries:
            if not isinstance(e, ast.Name) or e.id in names_ or e.id in RESERVED or e.id.startswith("__"):
                raise parser.error(f"the left side's indices must be distinct names, got {parser.source(e)!r}", e)
            names_.append(e.id)
    free = tuple(index_symbol(n) for n in names_)
    parser.indices = dict(zip(names_, free, strict=False))
    value = parser.value(tree)
    body = _scalar_body(parser, value, tree)
    reads = tuple(parser.frames[0].reads)
    return IndexDefinition(target, free, body, sp.And(*parser.valid), dict(parser.sum_bounds), reads)


def parse_assumption(text: str, names, sizes, where: str = "assumption"):
    """An assumption: a size condition, a tensor equality or a sign condition.

    >>> H, k = size_symbol("H"), size_symbol("k")
    >>> parse_assumption("H >= k", {}, [H, k]).cond
    H >= k
    >>> parse_assumption("sum(t) == 1", {"t": (H,)}, [H]).kind
    'equal'
    """
    shown = _double_equals(text, keep_columns=False)  # the assumption as listed: kh = H is kh == H
    text = _double_equals(text)
    tree, lhs, offset = _parse_ast(text, where)
    if lhs is not None:
        raise InputError("an assumption is a comparison (use == for equality)", where=where)
    scope = _scope_of(names)
    sizes = _sizes_of(sizes)
    parser = _Parser(text.strip(), scope, sizes, where, offset)
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1:
        raise parser.error("an assumption is one comparison (a == b, a >= b, ...)", tree)
    op = type(tree.ops[0])
    left, right = tree.left, tree.comparators[0]
    if not _mentions_tensor(tree, scope):
        a, b = parser.int_expr(left), parser.int_expr(right)
        for side, node in ((a, left), (b, right)):
            parser.check_affine(side, node, set(sizes.values()))
        cond = _REL[op](a, b)
        if cond is sp.false or cond == sp.false:
            raise parser.error(f"assumption {text.strip()!r} is never true", tree)
        return Assumption(text=shown, kind="size", cond=cond)
    lhs_tree, rhs_tree = parser.value(left), parser.value(right)
    for t, node in ((lhs_tree, left), (rhs_tree, right)):
        if isinstance(t, Scalar):
            raise parser.error("an index variable in an assumption", node)
        parser.build(t, node)
    kind = "equal" if op is ast.Eq else "sign"
    return Assumption(text=shown, kind=kind, lhs=lhs_tree, rhs=rhs_tree, rel=_REL_TEXT[op])


def _double_equals(text: str, keep_columns: bool = True) -> str:
    """``text`` with a lone ``=`` outside brackets written ``==``: an assumption ``kh = H`` means ``kh == H``.

    With ``keep_columns``, a space beside the ``=`` is taken into the ``==``, so that the
    columns of error messages past it still point into the text as written.

    >>> _double_equals("kh = H"), _double_equals("kh = H", keep_columns=False), _double_equals("kh=H")
    ('kh== H', 'kh == H', 'kh==H')
    >>> _double_equals("sum(t, axis=0) == 1")
    'sum(t, axis=0) == 1'
    """
    import io
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text  # the parser says what is wrong
    depth, lone = 0, []
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == "=" and depth == 0 and tok.start[0] == 1:
            lone.append(tok.start[1])
    if len(lone) != 1:
        return text
    col = lone[0]
    if not keep_columns:
        return text[:col] + "==" + text[col + 1 :]
    if col > 0 and text[col - 1] == " ":
        return text[: col - 1] + "==" + text[col + 1 :]
    if text[col + 1 : col + 2] == " ":
        return text[:col] + "==" + text[col + 2 :]
    return text[:col] + "==" + text[col + 1 :]


def _mentions_tensor(tree: ast.AST, scope) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in scope:
            return True
        if isinstance(node, ast.Call):
            return True
    return False


__all__ = [
    "Claim",
    "IndexDefinition",
    "claim_tensor",
    "parse_assumption",
    "parse_claim",
    "parse_index_definition",
    "parse_size_expr",
    "parse_tree",
    "from_scalar",
    "ops",
]
