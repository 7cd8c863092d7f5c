"""The search space of a layer's gradient: leaves and operator applications, typed by shapes.

Everything comes from the layer's data and the operator table: leaves are the names a
claim may use (inputs, ``g``, the output), the sub-expressions of the layer's closed
forward, small constants and the sizes; operator options (modes, strides, paddings,
dilations, groups, axes, keepdims) are those the layer's forward uses, and the few that
an output shape decides (reduction axes, ``output_padding``) are solved for the target
shape rather than enumerated.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core.ops import NUMPY_HELPERS, OPERATORS
from ..core.parse import parse_tree
from ..core.tree import Call, Node, build, to_numpy
from ..model.layer import Layer, size_text

#: precedence of a candidate's text as an operand (Python's, coarsened)
ATOM, POWER, UNARY, PRODUCT, SUM = 5, 4, 3, 2, 1
#: infix spellings of the operators reached through Python syntax
INFIX = {
    "add": ("+", SUM),
    "subtract": ("-", SUM),
    "multiply": ("*", PRODUCT),
    "divide": ("/", PRODUCT),
    "matmul": ("@", PRODUCT),
}
#: elementwise functions tried besides the forward's own (a derivative of a square is linear,
#: of tanh is 1 - tanh**2)
_ALWAYS_UNARY = frozenset({"square"})
#: operators with an axis that are always tried (the forward adds its own, and the other
#: operators of its families: log_softmax brings softmax)
_AXIS_OPS = ("sum", "mean", "transpose", "flip")
#: comparisons are tried against 0 only: ``g * (x > 0)``
_COMPARISON = "greater"


@dataclass(frozen=True)
class Candidate:
    """One expression: its claim text, symbolic shape, values at the test points.

    ``cost`` counts the operators the search applied (a forward sub-expression leaf
    counts 1), ``prec`` is the text's precedence as an operand.
    """

    text: str
    shape: tuple
    values: tuple = field(repr=False, compare=False)
    cost: int = 0
    prec: int = ATOM
    #: "number" for the constants and "size" for the sizes among the leaves, else ""
    kind: str = ""

    def operand(self, prec: int) -> str:
        """The text as an operand of an operator of precedence ``prec``.

        >>> Candidate("x - t", (), (), prec=SUM).operand(PRODUCT)
        '(x - t)'
        """
        return self.text if self.prec >= prec else f"({self.text})"


@dataclass(frozen=True)
class OpSpec:
    """An operator of the table with fixed options, applied to ``arity`` candidates."""

    op: str
    arity: int
    options: tuple = ()
    #: the tensor parameters the candidates fill, in order
    params: tuple = ()
    #: (texts of the operands) -> (text, precedence)
    spell: Callable = field(default=None, compare=False, repr=False)


def operator_count(text: str) -> int:
    """The number of operators in a claim text (calls, infix and unary operators,
    comparisons, ``.T``) -- what "simplest" counts.

    >>> operator_count("w.T @ g"), operator_count("convolve(g, w, 'full')"), operator_count("g")
    (2, 1, 0)
    """
    count = 0
    for node in ast.walk(ast.parse(text, mode="eval")):
        if isinstance(node, ast.Call | ast.BinOp | ast.Compare | ast.Subscript):
            count += 1
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant):
            count += 1
        elif isinstance(node, ast.Attribute) and node.attr == "T":
            count += 1
    return count


def forward_options(layer: Layer) -> dict[str, set]:
    """Option name -> the values the layer's closed forward passes for it.

    >>> forward_options(__import__("symderive.layer").layer.load_layer("conv2d_nchw_s2p1"))["stride"]
    {2}
    """
    out: dict[str, set] = {}
    for node in forward_calls(layer):
        tensors = {p.name for p in OPERATORS[node.op].params if p.kind in ("tensor", "tensors")}
        for name, value in node.args:
            if name not in tensors and value is not None:
                out.setdefault(name, set()).add(value)
    return out


def forward_calls(layer: Layer) -> Iterator[Call]:
    """The operator applications of the layer's closed forward and of its named intermediates.

    >>> sorted({c.op for c in forward_calls(__import__("symderive.layer").layer.load_layer("attention"))})
    ['divide', 'matmul', 'softmax', 'sqrt', 'transpose']
    """
    for i in getattr(layer, "intermediates", ()):
        yield from _calls(i.tree)
    yield from _calls(layer.forward_tree)


def _calls(node) -> Iterator[Call]:
    if isinstance(node, Call):
        yield node
        for _, value in node.args:
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, Node):
                    yield from _calls(v)


def forward_subexpressions(layer: Layer) -> list[str]:
    """The texts of the operator applications inside the layer's closed forward, inner
    first, the whole forward excluded (it is the output).

    >>> forward_subexpressions(__import__("symderive.layer").layer.load_layer("sigmoid_bce"))[:3]
    ['-x', '1 - t', 'sigmoid(x)']
    """
    texts = [i.text for i in getattr(layer, "intermediates", ()) if i.tree is not None]
    if layer.forward_tree is not None:
        texts.append(layer.forward_text)
    found = []
    for text in (t.strip() for t in texts):
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            # the whole text is the output, or an intermediate a claim reads by name
            if node is tree or not isinstance(node, ast.Call | ast.BinOp | ast.UnaryOp):
                continue
            segment = ast.get_source_segment(text, node)
            if segment and segment not in found:
                found.append(segment)
    return sorted(found, key=len)


class Space:
    """Leaves and operator specs of one layer's gradient search, with the test points.

    ``evaluate(spec, candidates)`` returns the new candidate, or None when the result is
    not shape-correct at every test point or not finite.
    """

    def __init__(self, layer: Layer, wrt: str, points):
        self.layer = layer
        self.wrt = wrt
        self.points = points
        self.target_shape = tuple(layer.inputs[wrt])
        self.options = forward_options(layer)
        self.names = {**{n: tuple(s) for n, s in layer.inputs.items()}}
        self.scope = layer.scope()
        self._helpers: dict = {"np": np}
        self._compiled: dict = {}
        self._shapes: dict = {}
        self._size_env = [{str(k): v for k, v in p.sizes.items()} for p in points]

    # -- leaves --------------------------------------------------------------------
    def leaves(self) -> list[Candidate]:
        """The names, the forward's sub-expressions, the constants 1 and 2 and the sizes.

        >>> from symderive.layer import load_layer
        >>> from symderive.search.points import test_points
        >>> lay = load_layer("linear")
        >>> [c.text for c in Space(lay, "x", test_points(lay, "x", 1)).leaves()][:4]
        ['x', 'w', 'b', 'g']
        """
        out = [self._leaf(name, self.scope[name].shape) for name in self.scope]
        for text in forward_subexpressions(self.layer):
            try:
                node = parse_tree(text, self.scope, self.layer.sizes)
            except Exception:  # noqa: BLE001  (a sub-expression the parser refuses is no leaf)
                continue
            cand = self.tree_candidate(text, node)
            if cand is not None:
                out.append(cand)
        for number in (1, 2):
            out.append(Candidate(str(number), (), tuple(np.array(float(number)) for _ in self.points), kind="number"))
        for s in self.layer.sizes:
            out.append(Candidate(str(s), (), tuple(np.array(float(p.sizes[s])) for p in self.points), kind="size"))
        return out

    def _leaf(self, name: str, shape) -> Candidate:
        return Candidate(name, tuple(shape), tuple(np.asarray(p.values[name], dtype=float) for p in self.points))

    def tree_candidate(self, text: str, node: Node) -> Candidate | None:
        """The candidate of a parsed closed form (its values by NumPy), None where it does not evaluate."""
        code = to_numpy(node)
        for call in _calls(node):
            self._load_helpers(OPERATORS[call.op])
        values = []
        for p, sizes in zip(self.points, self._size_env, strict=True):
            value = self._run(code, {**sizes, **{n: p.values[n] for n in self.scope}})
            if value is None:
                return None
            values.append(value)
        shape = build(node, self.scope).shape
        prec = ATOM if isinstance(ast.parse(text, mode="eval").body, ast.Call) else SUM
        return Candidate(text, tuple(shape), tuple(values), cost=0, prec=prec)

    # -- operator specs -----------------------------------------------------------------
    def unary_specs(self, shape: tuple) -> list[OpSpec]:
        """The one-operand specs that apply to a candidate of ``shape``: the forward's own
        elementwise functions, ``square``, ``> 0``, and the operators with an axis."""
        used = {c.op for c in forward_calls(self.layer)}
        specs = [
            OpSpec(name, 1, (), (op.params[0].name,), _call_spelling(name))
            for name, op in OPERATORS.items()
            if op.algebra == "elementwise" and _tensor_count(op) == 1 and (name in used or name in _ALWAYS_UNARY)
        ]
        specs.append(OpSpec(_COMPARISON, 1, (("x2", 0),), ("x1",), lambda a: (f"({a.operand(SUM)} > 0)", ATOM)))
        for name in self._axis_ops():
            specs += self._axis_specs(name, shape)
        return specs

    def _axis_ops(self) -> list[str]:
        used = [c.op for c in forward_calls(self.layer)]
        families = {OPERATORS[n].family for n in used} - {"numpy"}
        used += [n for n, op in OPERATORS.items() if op.family in families and op.algebra == ""]
        extra = [n for n in used if _has_axis(n) and n not in _AXIS_OPS]
        return list(_AXIS_OPS) + list(dict.fromkeys(extra))

    def _axis_specs(self, name: str, shape: tuple) -> list[OpSpec]:
        rank = len(shape)
        if rank == 0:
            return []
        if name == "transpose":
            if rank == 2:
                return [OpSpec(name, 1, (), ("a",), lambda a: (f"{a.operand(ATOM)}.T", ATOM))]
            perms = []
            for i, j in itertools.combinations(range(rank), 2):
                perm = list(range(rank))
                perm[i], perm[j] = perm[j], perm[i]
                perms.append(tuple(perm))
            return [OpSpec(name, 1, (("axes", p),), ("a",), _call_spelling(name, p)) for p in perms]
        axes = self._axes_for(name, shape)
        keepdims = [False] + ([True] if True in self.options.get("keepdims", set()) else [])
        first = OPERATORS[name].params[0].name
        specs = []
        for axis in axes:
            for keep in keepdims if name in ("sum", "mean") or "keepdims" in _param_names(name) else [False]:
                if keep and axis is None:
                    continue
                opts = (("axis", axis),) + ((("keepdims", True),) if keep else ())
                specs.append(OpSpec(name, 1, opts, (first,), _axis_spelling(name, axis, keep)))
        return specs

    def _axes_for(self, name: str, shape: tuple) -> list:
        rank = len(shape)
        given = {a for a in self.options.get("axis", set()) if _axis_fits(a, rank)}
        if name in ("softmax", "log_softmax", "flip") or not _is_reduction(name):
            return [None] + sorted(given, key=repr)
        axes = [None, *range(rank), *sorted(given, key=repr)]
        # the axes whose removal leaves the target's shape (a bias gradient): solved, not tried
        for k in range(2, rank):
            for drop in itertools.combinations(range(rank), k):
                kept = tuple(d for i, d in enumerate(shape) if i not in drop)
                if _same_shape(kept, self.target_shape):
                    axes.append(drop)
        return list(dict.fromkeys(axes))

    def binary_specs_cached(self) -> list[OpSpec]:
        """:meth:`binary_specs`, built once."""
        if not hasattr(self, "_binary"):
            self._binary = self.binary_specs()
        return self._binary

    def binary_specs(self) -> list[OpSpec]:
        """Two-operand specs: arithmetic, ``@``, ``outer``, and the forward's bilinear family."""
        specs = [OpSpec(name, 2, (), ("x1", "x2"), _infix(name)) for name in INFIX]
        specs.append(OpSpec("outer", 2, (), ("a", "b"), _call_spelling("outer")))
        families = {OPERATORS[c.op].family for c in forward_calls(self.layer) if OPERATORS[c.op].algebra == "bilinear"}
        for name, op in OPERATORS.items():
            if op.algebra != "bilinear" or op.family not in families or not op.by_name or name in ("outer", "dot"):
                continue
            specs += self._bilinear_specs(name)
        return specs

    def _bilinear_specs(self, name: str) -> list[OpSpec]:
        op = OPERATORS[name]
        tensors = tuple(p.name for p in op.params if p.kind == "tensor" and p.required)
        if len(tensors) != 2:
            tensors = tuple(p.name for p in op.params if p.kind == "tensor")[:2]
        choices = []
        for p in op.params:
            if p.kind in ("tensor", "tensors"):
                continue
            values = {p.default}
            if p.kind == "str" and p.name in self.options and p.name == _mode_param(name):
                values |= set(p.choices) - {"same"}
            elif p.kind in ("int", "ints"):
                # a stride's adjoint is a dilation and back (a weight gradient of a dilated
                # convolution is a strided one): each takes the other's values too
                names = {"stride", "dilation"} if p.name in ("stride", "dilation") else {p.name}
                values |= {v for n in names for v in self.options.get(n, ()) if not isinstance(v, str)}
            choices.append([(p.name, v) for v in sorted(values, key=repr)])
        specs = []
        for combo in itertools.product(*choices):
            # a mode is always spelled (``convolve(g, w, 'full')``), other defaults never
            opts = tuple((k, v) for k, v in combo if v != _default(name, k) or k == _mode_param(name))
            modes = [v for _, v in opts if isinstance(v, str)]
            named = {k: v for k, v in opts if not isinstance(v, str)}
            specs.append(OpSpec(name, 2, opts, tensors, _call_spelling(name, *modes, **named)))
        return specs

    # -- evaluation -------------------------------------------------------------------
    def shape_of(self, spec: OpSpec, shapes: tuple):
        """(shape, valid) by the operator's shape rule, None when the rule refuses the
        operands or ``valid`` fails at a test point; remembered per spec and shapes."""
        key = (spec.op, spec.options, shapes)
        if key not in self._shapes:
            kwargs = dict(zip(spec.params, shapes, strict=True)) | dict(spec.options)
            # a tensor parameter fixed to a number (``x > 0``) is a 0-d operand
            kwargs |= {
                p.name: () for p in OPERATORS[spec.op].params if p.kind == "tensor" and p.name in dict(spec.options)
            }
            try:
                shape, valid = OPERATORS[spec.op].shape_rule(**kwargs)
            except Exception:  # noqa: BLE001  (a shape rule refusing the operands: not shape-correct)
                self._shapes[key] = None
            else:
                ok = valid is sp.true or all(_holds_at(valid, p.sizes) for p in self.points)
                self._shapes[key] = (tuple(shape), valid) if ok else None
        return self._shapes[key]

    def apply(self, spec: OpSpec, args: tuple[Candidate, ...], cost: int, skip=None) -> Candidate | None:
        """The candidate ``spec(*args)``, or None unless shape-correct and finite at every point
        (or ``skip`` of its values is true: a caller that has these values already)."""
        # the values first: NumPy refuses most ill-shaped operands faster than the symbolic rule
        code = self._code(spec)
        values = []
        for k, sizes in enumerate(self._size_env):
            value = self._run(code, {**sizes, **{f"_a{i}": a.values[k] for i, a in enumerate(args)}})
            if value is None:
                return None
            values.append(value)
        if skip is not None and skip(values):
            return None  # the symbolic shape rule (a convolution's takes tens of ms) is not needed
        rule = self.shape_of(spec, tuple(a.shape for a in args))
        if rule is None:
            return None
        text, prec = spec.spell(*args)
        return Candidate(text, rule[0], tuple(values), cost, prec)

    def _code(self, spec: OpSpec):
        if spec not in self._compiled:
            op = OPERATORS[spec.op]
            kwargs = {p: f"_a{i}" for i, p in enumerate(spec.params)} | dict(spec.options)
            code = op.to_numpy(**kwargs)
            self._load_helpers(op)
            self._compiled[spec] = compile(code, f"<{spec.op}>", "eval")
        return self._compiled[spec]

    def _load_helpers(self, op) -> None:
        for helper in op.numpy_helpers:
            if helper not in self._helpers:
                exec(NUMPY_HELPERS[helper], self._helpers)  # noqa: S102  (the table's own helper sources)

    def _run(self, code, names: dict):
        if isinstance(code, str):
            code = compile(code, "<tree>", "eval")
        try:
            with np.errstate(all="ignore"):
                value = eval(code, self._helpers, names)  # noqa: S307  (lowered by the operator table: validated names, numbers, the table's own mode strings)
        except Exception:  # noqa: BLE001  (a library refusing the operands: not shape-correct)
            return None
        value = np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) or value.dtype != float else value
        if not np.all(np.isfinite(value)):
            return None
        return value

    # -- output_padding solved for the target shape ------------------------------------
    def fitted(self, spec: OpSpec, args: tuple[Candidate, ...], cost: int, skip=None) -> Candidate | None:
        """A transposed convolution whose spatial sizes miss the target's by ``e % stride``,
        with the ``output_padding`` that makes up the difference (a size expression)."""
        if "output_padding" not in _param_names(spec.op) or "output_padding" in dict(spec.options):
            return None
        # an output padding is less than the stride (or the dilation): none with both 1, and
        # none unless the plain result misses the target by that little at every point (a
        # numeric look before the symbolic shape rule, which is slow)
        strides = [v for k, v in spec.options if k in ("stride", "dilation")]
        most = max((max(v) if isinstance(v, tuple) else v for v in strides), default=1)
        if most <= 1 or not self._short_by_less_than(spec, args, most):
            return None
        key = ("fitted", spec, tuple(a.shape for a in args))
        if key not in self._shapes:
            self._shapes[key] = self._padded_spec(spec, key[2])
        padded = self._shapes[key]
        return None if padded is None else self.apply(padded, args, cost, skip)

    def _short_by_less_than(self, spec: OpSpec, args: tuple[Candidate, ...], most: int) -> bool:
        """Whether ``spec(*args)`` evaluates at every point to the target's rank, with spatial
        sizes short of the gradient's by 0 to ``most - 1`` (all 0 at these points may still be
        a padding of sizes elsewhere)."""
        code = self._code(spec)
        spatial = _spatial(spec.op)
        for k, (sizes, point) in enumerate(zip(self._size_env, self.points, strict=True)):
            value = self._run(code, {**sizes, **{f"_a{i}": a.values[k] for i, a in enumerate(args)}})
            want = point.gradient.shape
            if value is None or value.ndim != len(want) or value.shape[:-spatial] != want[:-spatial]:
                return False
            gaps = [w - v for w, v in zip(want[-spatial:], value.shape[-spatial:], strict=True)]
            if any(gap < 0 or gap >= most for gap in gaps):
                return False
        return True

    def _padded_spec(self, spec: OpSpec, shapes: tuple) -> OpSpec | None:
        rule = self.shape_of(spec, shapes)
        if rule is None or len(rule[0]) != len(self.target_shape):
            return None
        spatial = _spatial(spec.op)
        pairs = zip(self.target_shape[-spatial:], rule[0][-spatial:], strict=True)
        gaps = tuple(sp.simplify(t - s) for t, s in pairs)
        if all(g == 0 for g in gaps):
            return None
        pads = tuple(_as_mod(g, self.layer.sizes) for g in gaps)
        if any(p is None for p in pads):
            return None
        value = pads[0] if len(pads) == 1 else pads
        options = spec.options + (("output_padding", value),)
        return OpSpec(spec.op, 2, options, spec.params, _call_spelling(spec.op, **dict(options)))


def _as_mod(gap, sizes) -> sp.Expr | None:
    """``gap`` (target size minus a transposed convolution's size) as ``e % s`` when it is
    one: equal to it at every size tried, for ``e`` a linear size expression in ``gap``."""
    gap = sp.sympify(gap)
    if gap == 0:
        return sp.Integer(0)
    floors = [f for f in gap.atoms(sp.floor)]
    if len(floors) != 1:
        return None
    inner = floors[0].args[0]
    num, den = sp.fraction(sp.together(inner))
    if not den.is_Integer:
        return None
    guess = sp.Mod(sp.expand(num), den)
    used = sorted(gap.free_symbols, key=str)
    for values in itertools.product(range(1, 7), repeat=len(used)):
        env = dict(zip(used, values, strict=True))
        if int(gap.xreplace(env)) != int(guess.xreplace(env)):
            return None
    return guess


def _spatial(name: str) -> int:
    return int(name[-2]) if name[-2].isdigit() else 1


def _holds_at(cond, sizes: dict) -> bool:
    value = sp.sympify(cond).xreplace(sizes)
    return value is sp.true or (value not in (sp.false,) and bool(sp.simplify(value)))


def _same_shape(a, b) -> bool:
    return len(a) == len(b) and all(sp.simplify(x - y) == 0 for x, y in zip(a, b, strict=True))


def _tensor_count(op) -> int:
    return sum(
        1
        for p in op.params
        if p.kind in ("tensor", "tensors") and (p.required or p.default is None) and p.name not in ("out", "b")
    )


def _param_names(name: str) -> set:
    return {p.name for p in OPERATORS[name].params}


def _has_axis(name: str) -> bool:
    return "axis" in _param_names(name) and OPERATORS[name].params[0].kind == "tensor"


def _is_reduction(name: str) -> bool:
    return "keepdims" in _param_names(name)


def _axis_fits(axis, rank: int) -> bool:
    axes = axis if isinstance(axis, tuple) else (axis,)
    return all(isinstance(a, int) and -rank <= a < rank for a in axes)


def _mode_param(name: str) -> str | None:
    """An operator's mode: its first option with a fixed set of string choices."""
    return next((p.name for p in OPERATORS[name].params if p.kind == "str" and p.choices), None)


def _default(name: str, param: str):
    return next(p.default for p in OPERATORS[name].params if p.name == param)


def _option_text(value) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(_option_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, sp.Basic) and not value.is_Integer:
        return size_text(value)
    return str(value)


def _call_spelling(name: str, *positional, **options):
    def spell(*args: Candidate):
        parts = [a.text for a in args] + [_option_text(v) for v in positional]
        parts += [f"{k}={_option_text(v)}" for k, v in options.items()]
        return f"{name}({', '.join(parts)})", ATOM

    return spell


def _axis_spelling(name: str, axis, keepdims: bool):
    options = {} if axis is None else {"axis": axis}
    if keepdims:
        options["keepdims"] = True
    return _call_spelling(name, **options)


def _infix(name: str):
    symbol, prec = INFIX[name]

    def spell(a: Candidate, b: Candidate):
        # the right operand of - and / (and of any same-precedence chain) is parenthesised
        return f"{a.operand(prec)} {symbol} {b.operand(prec + 1)}", prec

    return spell
