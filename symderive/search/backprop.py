"""Reverse mode over a layer's closed forward, written in the claim language.

A candidate for :func:`symderive.search.solve`: the gradient of an input as the textbook
backward pass writes it, one rule per operator of the forward (``softmax``: ``P * (G -
sum(G * P, axis, keepdims=True))``, ``a @ b``: ``G @ b.T``, a broadcast operand: ``G``
summed over the broadcast axes), through the layer's named intermediates in reverse
order. It reaches gradients many operators deep (a normalisation's input, attention's
queries) that an enumeration cannot; like every candidate it is screened numerically
and then proved, never offered on its own word. A forward with an operator that has no
rule here gives no candidate.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import sympy as sp

from ..core.parse import parse_tree
from ..core.tree import build
from ..model.layer import Layer, size_text


class NoRule(Exception):
    """The forward uses an operator (or a form of one) that has no rule here."""


def backprop_claim(layer: Layer, wrt: str) -> str | None:
    """The gradient of ``layer``'s loss with respect to ``wrt`` by reverse mode, as a claim
    text, or None when the forward has an operator without a rule.

    >>> from symderive.layer import load_layer
    >>> backprop_claim(load_layer("linear_batched"), "x")
    'g @ w'
    """
    try:
        return _Backprop(layer, wrt).claim()
    except (NoRule, SyntaxError, ValueError, TypeError, KeyError):
        return None


class _Backprop:
    def __init__(self, layer: Layer, wrt: str):
        self.layer, self.wrt = layer, wrt
        self.scope = layer.scope()
        self.shapes: dict[str, tuple] = {}
        self.definitions = _definitions(layer)
        self.dependent = _dependent(self.definitions, wrt)
        #: a defined quantity's text -> its name: a rule that reads the value it differentiates
        #: (``softmax``'s ``P``, ``tanh``'s ``y``) reads it by name
        self.named = {ast.unparse(ast.parse(t, mode="eval")): n for n, t in self.definitions}

    # -- the pass -------------------------------------------------------------------------
    def claim(self) -> str | None:
        grads: dict[str, list[ast.expr]] = {}
        output = self.layer.output
        grads[output] = [ast.Constant(1) if self.layer.is_loss else ast.Name("g")]
        for name, text in reversed(self.definitions):
            if name not in grads or name not in self.dependent:
                continue
            total = _total(grads.pop(name))
            self._back(ast.parse(text, mode="eval").body, total, grads)
        if self.wrt not in grads:
            return None
        text = ast.unparse(_total(grads[self.wrt]))
        if self.shape(text) != tuple(self.layer.inputs[self.wrt]):
            return None
        return text

    def _back(self, node: ast.expr, grad: ast.expr, grads: dict) -> None:
        """Add ``grad`` (the gradient of the loss w.r.t. ``node``'s value) to every dependent name in ``node``."""
        if not self._depends(node):
            return
        if isinstance(node, ast.Name):
            grads.setdefault(node.id, []).append(grad)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self._back(node.operand, _neg(grad), grads)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            self._back(node.operand, grad, grads)
        elif isinstance(node, ast.BinOp):
            self._binary(node, grad, grads)
        elif isinstance(node, ast.Attribute) and node.attr == "T":
            self._back(node.value, _transposed(grad), grads)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CONVS:
            self._conv(node, grad, grads)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = _arguments(node)
            operand = args.pop("_")
            self._back(operand, _CALLS[node.func.id](self, self.value(node), operand, grad, args), grads)
        else:
            raise NoRule(ast.unparse(node))

    def _binary(self, node: ast.BinOp, grad: ast.expr, grads: dict) -> None:
        left, right, op = node.left, node.right, node.op
        if isinstance(op, ast.Add | ast.Sub):
            self._back(left, self._unbroadcast(grad, left), grads)
            other = grad if isinstance(op, ast.Add) else _neg(grad)
            self._back(right, self._unbroadcast(other, right), grads)
        elif isinstance(op, ast.Mult):
            self._back(left, self._unbroadcast(_mul(grad, right), left), grads)
            self._back(right, self._unbroadcast(_mul(grad, left), right), grads)
        elif isinstance(op, ast.Div):
            self._back(left, self._unbroadcast(_div(grad, right), left), grads)
            # d(l / r)/dr = -(l / r) / r
            self._back(right, self._unbroadcast(_neg(_div(_mul(grad, self.value(node)), right)), right), grads)
        elif isinstance(op, ast.Pow) and isinstance(right, ast.Constant) and not self._depends(right):
            power = right.value
            rest = left if power == 2 else ast.BinOp(left, ast.Pow(), ast.Constant(power - 1))
            self._back(left, _mul(ast.Constant(power), _mul(grad, rest)), grads)
        elif isinstance(op, ast.MatMult):
            self._matmul(left, right, grad, grads)
        else:
            raise NoRule(ast.unparse(node))

    def _matmul(self, left, right, grad, grads) -> None:
        rank_l, rank_r = len(self.shape(left)), len(self.shape(right))
        if (rank_l, rank_r) == (2, 2):
            self._back(left, ast.BinOp(grad, ast.MatMult(), _transposed(right)), grads)
            self._back(right, ast.BinOp(_transposed(left), ast.MatMult(), grad), grads)
        elif (rank_l, rank_r) == (2, 1):
            self._back(left, _call("outer", grad, right), grads)
            self._back(right, ast.BinOp(grad, ast.MatMult(), left), grads)
        elif (rank_l, rank_r) == (1, 2):
            self._back(left, ast.BinOp(right, ast.MatMult(), grad), grads)
            self._back(right, _call("outer", left, grad), grads)
        elif (rank_l, rank_r) == (1, 1):
            self._back(left, _mul(grad, right), grads)
            self._back(right, _mul(grad, left), grads)
        else:
            raise NoRule("a batched @")

    def _conv(self, node: ast.Call, grad, grads) -> None:
        """torch's convolutions (one group). ``conv1d``/``conv2d`` (a cross-correlation): the
        weight's gradient correlates the input with ``grad`` (batch and channels swapped, stride
        and dilation trading places), at stride 1 the input's is the transposed convolution
        with the same padding and dilation. ``conv_transpose1d``/``2d``: the weight's correlates
        ``grad`` with the input the same way, the input's is the convolution of ``grad`` with the
        weight. The bias's sums ``grad`` over the batch and the positions. A result of another
        shape than its operand (a stride that skips positions, an output padding) has no rule."""
        from ..core.ops import OPERATORS

        op = node.func.id
        params = [p.name for p in OPERATORS[op].params]
        bound: dict = dict(zip(params, node.args, strict=False))
        for kw in node.keywords:
            if kw.arg is None:
                raise NoRule("**options")
            bound[kw.arg] = kw.value
        options = {k: ast.literal_eval(v) for k, v in bound.items() if k not in ("input", "weight", "bias")}
        if options.get("groups", 1) != 1 or isinstance(options.get("padding", 0), str):
            raise NoRule(f"{op} with groups or a padding mode")
        x, w, b = bound["input"], bound["weight"], bound.get("bias")
        if isinstance(b, ast.Constant) and b.value is None:
            b = None
        spatial, transposed = _CONVS[op]
        plain = f"conv{spatial}d"
        perm = ast.Constant((1, 0, *range(2, 2 + spatial)))
        stride, padding, dilation = (options.get(k, d) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1)))

        def options_of(**given) -> dict:
            defaults = {"stride": 1, "padding": 0, "dilation": 1}
            return {k: ast.Constant(v) for k, v in given.items() if v not in (defaults[k], (defaults[k],) * spatial)}

        if self._depends(w):
            swapped = options_of(stride=dilation, padding=padding, dilation=stride)
            first, second = (grad, x) if transposed else (x, grad)
            inner = _call(plain, _call("transpose", first, perm), _call("transpose", second, perm), **swapped)
            self._back(w, self._same_shape(_call("transpose", inner, perm), w), grads)
        if b is not None and self._depends(b):
            self._back(b, _call("sum", grad, axis=ast.Constant((0, *range(2, 2 + spatial)))), grads)
        if self._depends(x):
            if transposed:
                adjoint = _call(plain, grad, w, **options_of(stride=stride, padding=padding, dilation=dilation))
            elif stride in (1, (1,) * spatial):
                adjoint = _call(f"conv_transpose{spatial}d", grad, w, **options_of(padding=padding, dilation=dilation))
            else:
                raise NoRule(f"the input of a strided {op}")
            self._back(x, self._same_shape(adjoint, x), grads)

    def _same_shape(self, grad: ast.expr, operand: ast.expr) -> ast.expr:
        if self.shape(grad) != self.shape(operand):
            raise NoRule("a gradient of another shape than its operand")
        return grad

    def value(self, node: ast.expr) -> ast.expr:
        """``node`` as a claim reads its value: by name when it is a defined quantity."""
        name = self.named.get(ast.unparse(node))
        return ast.Name(name) if name is not None else node

    # -- shapes and broadcasting -----------------------------------------------------------
    def shape(self, node) -> tuple:
        """The symbolic shape of an expression (a node or its text) over the layer's scope."""
        text = node if isinstance(node, str) else ast.unparse(node)
        if text not in self.shapes:
            scope = {**self.scope}
            self.shapes[text] = tuple(build(parse_tree(text, scope, self.layer.sizes), scope).shape)
        return self.shapes[text]

    def _depends(self, node: ast.expr) -> bool:
        return any(isinstance(n, ast.Name) and n.id in self.dependent for n in ast.walk(node))

    def _unbroadcast(self, grad: ast.expr, operand: ast.expr) -> ast.expr:
        """``grad`` summed over the axes along which ``operand`` was broadcast."""
        if not self._depends(operand):
            return grad
        have, want = self.shape(grad), self.shape(operand)
        extra = len(have) - len(want)
        if extra > 0:
            axes = tuple(range(extra))
            grad = _call("sum", grad, axis=ast.Constant(axes[0] if extra == 1 else axes))
            have = have[extra:]
        kept = [k for k, (h, w) in enumerate(zip(have, want, strict=False)) if w == 1 and h != 1]
        if kept:
            axis = kept[0] if len(kept) == 1 else tuple(kept)
            grad = _call("sum", grad, axis=ast.Constant(axis), keepdims=ast.Constant(True))
        return grad

    def reduced_count(self, operand: ast.expr, axis) -> sp.Expr:
        """The number of elements a reduction over ``axis`` of ``operand`` takes together."""
        shape = self.shape(operand)
        axes = range(len(shape)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
        count = sp.Integer(1)
        for a in axes:
            count *= shape[a]
        return count

    def spread(self, grad: ast.expr, operand: ast.expr, axis, keepdims: bool) -> ast.expr:
        """The gradient of a reduction's result, as it broadcasts back over ``operand``: as it is
        when the reduced axes are kept or leading (NumPy's broadcasting lines it up)."""
        rank = len(self.shape(operand))
        axes = range(rank) if axis is None else axis if isinstance(axis, tuple) else (axis,)
        axes = sorted(a % rank for a in axes)
        if keepdims or axes == list(range(len(axes))):
            return grad
        raise NoRule("a reduction over trailing axes without keepdims")


def _definitions(layer: Layer) -> list[tuple[str, str]]:
    """(name, closed-form text) of each intermediate, then the output; NoRule for an index form."""
    out = []
    for i in getattr(layer, "intermediates", ()):
        if i.tree is None:
            raise NoRule(f"the index-form intermediate {i.name}")
        out.append((i.name, i.text))
    if layer.forward_tree is None:
        raise NoRule("an index-form output")
    out.append((layer.output, layer.forward_text))
    return out


def _dependent(definitions, wrt: str) -> set[str]:
    """``wrt`` and every defined name whose definition reads it (directly or through another)."""
    out = {wrt}
    for name, text in definitions:
        names = {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)}
        if names & out:
            out.add(name)
    return out


def _arguments(node: ast.Call) -> dict:
    """A call's operand (``"_"``) and its options by name, as Python values (axis, keepdims, ddof)."""
    from ..core.ops import OPERATORS

    params = [p.name for p in OPERATORS[node.func.id].params]
    out: dict = {}
    for k, arg in enumerate(node.args):
        out["_" if k == 0 else params[k]] = arg if k == 0 else ast.literal_eval(arg)
    for kw in node.keywords:
        if kw.arg is None:
            raise NoRule("**options")
        out["_" if kw.arg == params[0] else kw.arg] = kw.value if kw.arg == params[0] else ast.literal_eval(kw.value)
    if "_" not in out:
        raise NoRule("a call without its operand")
    return out


# -- the rules of the operators: (pass, call node, operand, gradient of the call, options) -> gradient of the operand
def _sqrt(bp, node, operand, grad, args):
    return _div(grad, _mul(ast.Constant(2), node))


def _exp(bp, node, operand, grad, args):
    return _mul(grad, node)


def _log(bp, node, operand, grad, args):
    return _div(grad, operand)


def _tanh(bp, node, operand, grad, args):
    return _mul(grad, ast.BinOp(ast.Constant(1), ast.Sub(), ast.BinOp(node, ast.Pow(), ast.Constant(2))))


def _sigmoid(bp, node, operand, grad, args):
    return _mul(_mul(grad, node), ast.BinOp(ast.Constant(1), ast.Sub(), node))


def _relu(bp, node, operand, grad, args):
    return _mul(grad, ast.Compare(operand, [ast.Gt()], [ast.Constant(0)]))


def _square(bp, node, operand, grad, args):
    return _mul(ast.Constant(2), _mul(grad, operand))


def _sum(bp, node, operand, grad, args):
    if args.keys() - {"axis", "keepdims"}:
        raise NoRule("sum with options")
    return bp.spread(grad, operand, args.get("axis"), bool(args.get("keepdims")))


def _mean(bp, node, operand, grad, args):
    if args.keys() - {"axis", "keepdims"}:
        raise NoRule("mean with options")
    count = bp.reduced_count(operand, args.get("axis"))
    return _div(bp.spread(grad, operand, args.get("axis"), bool(args.get("keepdims"))), _size(count))


def _var(bp, node, operand, grad, args):
    if args.keys() - {"axis", "keepdims", "ddof"}:
        raise NoRule("var with options")
    axis = args.get("axis")
    count = bp.reduced_count(operand, axis) - args.get("ddof", 0)
    options = {} if axis is None else {"axis": ast.Constant(axis)}
    # the mean as the forward spells it where it lines up without keepdims (then read by name: ``mu``)
    mean = _call("mean", operand, **options)
    if bp.shape(ast.BinOp(operand, ast.Sub(), mean)) != bp.shape(operand) or axis is None:
        mean = _call("mean", operand, **options, keepdims=ast.Constant(True))
    centred = ast.BinOp(operand, ast.Sub(), bp.value(mean))
    spread = bp.spread(grad, operand, axis, bool(args.get("keepdims")))
    return _div(_mul(ast.Constant(2), _mul(spread, centred)), _size(count))


def _softmax(bp, node, operand, grad, args):
    axis = {} if args.get("axis") is None else {"axis": ast.Constant(args["axis"])}
    inner = _call("sum", _mul(grad, node), **axis, keepdims=ast.Constant(True))
    return _mul(node, ast.BinOp(grad, ast.Sub(), inner))


def _log_softmax(bp, node, operand, grad, args):
    axis = {} if args.get("axis") is None else {"axis": ast.Constant(args["axis"])}
    total = _call("sum", grad, **axis, keepdims=ast.Constant(True))
    return ast.BinOp(grad, ast.Sub(), _mul(_call("softmax", operand, **axis), total))


#: the convolutions with a rule: their spatial axes, and whether transposed (``_Backprop._conv``)
_CONVS = {"conv1d": (1, False), "conv2d": (2, False), "conv_transpose1d": (1, True), "conv_transpose2d": (2, True)}

_CALLS: dict[str, Callable] = {
    "sqrt": _sqrt,
    "exp": _exp,
    "log": _log,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "relu": _relu,
    "square": _square,
    "sum": _sum,
    "mean": _mean,
    "var": _var,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


# -- building texts ---------------------------------------------------------------------------
def _size(count: sp.Expr) -> ast.expr:
    return ast.parse(size_text(count), mode="eval").body


def _call(name: str, *args: ast.expr, **options: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name), list(args), [ast.keyword(k, v) for k, v in options.items()])


def _neg(a: ast.expr) -> ast.expr:
    if isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub):
        return a.operand
    return ast.UnaryOp(ast.USub(), a)


def _mul(a: ast.expr, b: ast.expr) -> ast.expr:
    if isinstance(a, ast.Constant) and a.value == 1:
        return b
    if isinstance(b, ast.Constant) and b.value == 1:
        return a
    if isinstance(a, ast.Constant) and a.value == 2:
        # 2 * (u / (2 * v) * w) is u / v * w (a variance's 2 against a square root's 1/2)
        halved = _halved(b)
        if halved is not None:
            return halved
    return ast.BinOp(a, ast.Mult(), b)


def _halved(node: ast.expr) -> ast.expr | None:
    """``node / 2`` with a visible ``/ (2 * v)`` of a product or quotient chain made ``/ v``, or None."""
    if not isinstance(node, ast.BinOp):
        return None
    if isinstance(node.op, ast.Div):
        right = node.right
        if isinstance(right, ast.BinOp) and isinstance(right.op, ast.Mult):
            if isinstance(right.left, ast.Constant) and right.left.value == 2:
                return ast.BinOp(node.left, ast.Div(), right.right)
        left = _halved(node.left)
        return None if left is None else ast.BinOp(left, ast.Div(), node.right)
    if isinstance(node.op, ast.Mult):
        left = _halved(node.left)
        if left is not None:
            return ast.BinOp(left, ast.Mult(), node.right)
        right = _halved(node.right)
        return None if right is None else ast.BinOp(node.left, ast.Mult(), right)
    return None


def _div(a: ast.expr, b: ast.expr) -> ast.expr:
    if isinstance(b, ast.Constant) and b.value == 1:
        return a
    return ast.BinOp(a, ast.Div(), b)


def _transposed(a: ast.expr) -> ast.expr:
    if isinstance(a, ast.Attribute) and a.attr == "T":
        return a.value
    return ast.Attribute(a, "T")


def _total(parts: list[ast.expr]) -> ast.expr:
    """The sum of contributions, a negated one subtracted."""
    total = parts[0]
    for part in parts[1:]:
        if isinstance(part, ast.UnaryOp) and isinstance(part.op, ast.USub):
            total = ast.BinOp(total, ast.Sub(), part.operand)
        else:
            total = ast.BinOp(total, ast.Add(), part)
    return total
