"""Numerically stable spellings of closed forms, each proved equal to the form it replaces.

Written literally, ``log(softmax(s))`` is ``log(0) = -inf`` wherever the softmax underflows
(``s = [1000, 0, -1000]``), and ``t * -inf`` is nan even where ``t`` is 0; ``log(sigmoid(-x))``
and ``log(1 + exp(x))`` overflow the same way, and so do the logistic and the softmax written
out (``1 / (1 + exp(-x))``, ``exp(a) / (exp(a) + exp(b))``, ``exp(s) / sum(exp(s))``: inf / inf).
The libraries compute these as ``log_softmax``, ``logaddexp``, ``logsumexp``, ``expit`` and
``softmax``, whose NumPy lowerings subtract the maximum (or take ``exp(-|x|)``) first. :func:`stable_form` rewrites a tree into those forms, bottom up; a rewrite is
used only once the prover has shown the two sub-forms equal for every size and value the
layer allows (:func:`proved_equal`), never on the pattern's word alone.

>>> from symderive.model.layer import as_layer
>>> from symderive.core.parse import parse_claim
>>> layer = as_layer("softmax_cross_entropy")
>>> node, rewrites = stable_form(layer, layer.forward_tree)
>>> [r.text for r in rewrites]
['log(softmax(x)) as log_softmax(x)']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..core import tree as T
from ..core.ir import index_symbol
from ..core.ops import OPERATORS
from ..decide.verdict import PROVED

#: seconds the concrete search may spend on a rewrite the symbolic decision leaves open
REWRITE_SEARCH_SECONDS = 5.0


@dataclass(frozen=True)
class Rewrite:
    """One stable spelling put in: ``before`` and ``after`` are sub-trees, ``text`` says which rule.

    >>> Rewrite(T.Ref("a"), T.Ref("a"), "a as a").text
    'a as a'
    """

    before: T.Node
    after: T.Node
    text: str


def call(op: str, **args) -> T.Call:
    """A tree node calling ``op`` with every parameter bound (defaults where not given), as the parser binds them.

    >>> call("exp", x=T.Ref("s")).args
    (('x', Ref(name='s')),)
    """
    params = OPERATORS[op].params
    return T.Call(op, tuple((p.name, args.get(p.name, p.default)) for p in params))


def _is_zero(node) -> bool:
    return isinstance(node, T.Num) and sp.sympify(node.value) == 0


def _is_one(node) -> bool:
    return isinstance(node, T.Num) and sp.sympify(node.value) == 1


def _calls(node, *ops) -> bool:
    return isinstance(node, T.Call) and node.op in ops


def _negated(node) -> T.Node:
    """``-node``, with a double negation removed (``-(-x)`` is ``x``)."""
    return node.arg("x") if _calls(node, "negative") else call("negative", x=node)


def _softplus(u) -> T.Node:
    """``log(1 + exp(u))`` as NumPy computes it without overflow: ``logaddexp(0, u)``."""
    return call("logaddexp", x1=T.Num(sp.Integer(0)), x2=u)


def _log_of(node) -> tuple[T.Node, str] | None:
    """The stable replacement of ``log(inner)`` and the rule's text, or None."""
    inner = node.arg("x")
    if _calls(inner, "softmax"):
        args = dict(inner.args)
        return call("log_softmax", **args), "log(softmax(x)) as log_softmax(x)"
    if _calls(inner, "F.softmax"):
        return T.Call("F.log_softmax", inner.args), "log(F.softmax(x)) as F.log_softmax(x)"
    if _calls(inner, "sigmoid", "expit"):
        # log(1 / (1 + exp(-u))) = -log(1 + exp(-u))
        return call("negative", x=_softplus(_negated(inner.arg("x")))), "log(sigmoid(u)) as -logaddexp(0, -u)"
    if _calls(inner, "subtract") and _is_one(inner.arg("x1")) and _calls(inner.arg("x2"), "sigmoid", "expit"):
        # 1 - sigmoid(u) = sigmoid(-u)
        u = inner.arg("x2").arg("x")
        return call("negative", x=_softplus(u)), "log(1 - sigmoid(u)) as -logaddexp(0, u)"
    if _calls(inner, "add"):
        one, other = (inner.arg("x1"), inner.arg("x2"))
        if _is_one(other):
            one, other = other, one
        if _is_one(one) and _calls(other, "exp"):
            return _softplus(other.arg("x")), "log(1 + exp(u)) as logaddexp(0, u)"
    if _calls(inner, "sum") and _calls(inner.arg("a"), "exp"):
        args = dict(inner.args)
        if args.get("dtype") is None and args.get("out") is None:
            return (
                call("logsumexp", a=inner.arg("a").arg("x"), axis=args.get("axis"), keepdims=args.get("keepdims")),
                "log(sum(exp(u))) as logsumexp(u)",
            )
    return None


def _one_plus_exp(node) -> T.Node | None:
    """``u`` where ``node`` is ``1 + exp(u)`` or ``exp(u) + 1``, else None."""
    if not _calls(node, "add"):
        return None
    a, b = node.arg("x1"), node.arg("x2")
    if _is_one(b):
        a, b = b, a
    return b.arg("x") if _is_one(a) and _calls(b, "exp") else None


def _quotient(node) -> tuple[T.Node, str] | None:
    """The stable replacement of ``x1 / x2`` (a logistic or softmax written out) and the rule's text, or None."""
    num, den = node.arg("x1"), node.arg("x2")
    u = _one_plus_exp(den)
    if u is not None and _is_one(num):
        # 1 / (1 + exp(-v)) overflows in exp(-v) at v = -1000 (and is nan with it in a product)
        return call("sigmoid", x=_negated(u)), "1 / (1 + exp(-u)) as sigmoid(u)"
    if u is not None and _calls(num, "exp") and num.arg("x") == u:
        return call("sigmoid", x=u), "exp(u) / (1 + exp(u)) as sigmoid(u)"
    if _calls(num, "exp") and _calls(den, "add") and num in (den.arg("x1"), den.arg("x2")):
        other = den.arg("x2") if den.arg("x1") == num else den.arg("x1")
        if _calls(other, "exp"):
            # exp(a) / (exp(a) + exp(b)) is inf / inf at a = b = 1000
            return (
                call("sigmoid", x=call("subtract", x1=num.arg("x"), x2=other.arg("x"))),
                "exp(a) / (exp(a) + exp(b)) as sigmoid(a - b)",
            )
    if _calls(num, "exp") and _calls(den, "sum") and den.arg("a") == num:
        args = dict(den.args)
        if args.get("dtype") is None and args.get("out") is None and (args.get("axis") is None or args.get("keepdims")):
            # exp(1000) / sum(exp(...)) is inf / inf; softmax subtracts the maximum first
            return call("softmax", x=num.arg("x"), axis=args.get("axis")), "exp(u) / sum(exp(u)) as softmax(u)"
    return None


def candidate(node) -> tuple[T.Node, str] | None:
    """The stable spelling of one node (whose children are already stable) and its rule, or None.

    >>> candidate(call("log1p", x=call("exp", x=T.Ref("x"))))[1]
    'log1p(exp(u)) as logaddexp(0, u)'
    >>> one = T.Num(sp.Integer(1))
    >>> candidate(call("divide", x1=one, x2=call("add", x1=one, x2=call("exp", x=call("negative", x=T.Ref("x"))))))
    (Call(op='sigmoid', args=(('x', Ref(name='x')),)), '1 / (1 + exp(-u)) as sigmoid(u)')
    """
    if _calls(node, "log"):
        return _log_of(node)
    if _calls(node, "log1p") and _calls(node.arg("x"), "exp"):
        return _softplus(node.arg("x").arg("x")), "log1p(exp(u)) as logaddexp(0, u)"
    if _calls(node, "divide"):
        return _quotient(node)
    return None


def proved_equal(layer, before: T.Node, after: T.Node) -> bool:
    """Whether the prover shows two closed forms equal at every size, index and value ``layer`` allows.

    >>> from symderive.model.layer import as_layer
    >>> layer = as_layer("sigmoid_bce")
    >>> proved_equal(layer, call("log1p", x=call("exp", x=T.Ref("x"))), _softplus(T.Ref("x")))
    True
    """
    from ..decide.pose import _context
    from ..decide.problem import Problem
    from ..decide.symbolic import decide

    scope = layer.scope()
    left, right = T.build(before, scope), T.build(after, scope)
    free = tuple(index_symbol(f"_e{k}") for k in range(len(left.shape)))
    problem = Problem(
        name="a stable spelling",
        left=left,
        right=right,
        free=free,
        left_name="the form as written",
        right_name="its stable spelling",
        **_context(layer, ()),
    )
    return decide(problem, REWRITE_SEARCH_SECONDS).status == PROVED


def stable_form(
    layer, node: T.Node, equal: Callable[[object, T.Node, T.Node], bool] = proved_equal
) -> tuple[T.Node, tuple[Rewrite, ...]]:
    """``node`` with every sub-form that has a stable spelling proved equal to it replaced, bottom up,
    and the rewrites made (``equal`` is the prover asked).

    >>> from symderive.model.layer import as_layer
    >>> layer = as_layer("sigmoid_bce")
    >>> sorted(r.text for r in stable_form(layer, layer.forward_tree)[1])
    ['log(sigmoid(u)) as -logaddexp(0, -u)', 'log(sigmoid(u)) as -logaddexp(0, -u)']
    """
    done: list[Rewrite] = []

    def visit(n):
        if isinstance(n, T.Element):
            return T.Element(visit(n.node), n.index)
        if not isinstance(n, T.Call):
            return n
        args = []
        for name, value in n.args:
            if isinstance(value, T.Node):
                value = visit(value)
            elif isinstance(value, tuple) and any(isinstance(v, T.Node) for v in value):
                value = tuple(visit(v) if isinstance(v, T.Node) else v for v in value)
            args.append((name, value))
        n = T.Call(n.op, tuple(args))
        found = candidate(n)
        if found is None:
            return n
        after, text = found
        if not equal(layer, n, after):
            return n
        done.append(Rewrite(n, after, text))
        return after

    return visit(node), tuple(done)


__all__ = ["Rewrite", "call", "candidate", "proved_equal", "stable_form"]
