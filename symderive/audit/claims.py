"""Claim-language expressions as Python ``ast`` trees: building, substituting, free indices.

The reader writes each side of a relation as a claim (LANGUAGE.md), which is a Python
expression; keeping it as an ``ast`` tree makes substitution exact (bound summation
indices are renamed instead of captured) and ``ast.unparse`` prints it.

>>> body = call("Sum", sub(name("x"), name("i"), name("m")), name("m"))
>>> ast.unparse(substitute(body, {"i": name("m")}))
'Sum(x[m, m1], m1)'
"""

from __future__ import annotations

import ast
import copy
import itertools


def name(identifier: str) -> ast.Name:
    """A name node.

    >>> ast.unparse(name("x"))
    'x'
    """
    return ast.Name(identifier, ast.Load())


def const(value: int | float) -> ast.Constant:
    """A number node.

    >>> ast.unparse(const(2))
    '2'
    """
    return ast.Constant(value)


def call(function: str, *args: ast.expr) -> ast.Call:
    """A call node ``function(*args)``.

    >>> ast.unparse(call("exp", name("s")))
    'exp(s)'
    """
    return ast.Call(name(function), list(args), [])


def sub(base: ast.expr, *indices: ast.expr) -> ast.Subscript:
    """An element read ``base[indices]``.

    >>> ast.unparse(sub(name("x"), name("a"), name("b")))
    'x[a, b]'
    """
    index = indices[0] if len(indices) == 1 else ast.Tuple(list(indices), ast.Load())
    return ast.Subscript(base, index, ast.Load())


def indices_of(read: ast.Subscript) -> list[ast.expr]:
    """The index expressions of an element read.

    >>> [ast.unparse(i) for i in indices_of(sub(name("x"), name("a"), name("b")))]
    ['a', 'b']
    """
    index = read.slice
    return list(index.elts) if isinstance(index, ast.Tuple) else [index]


def binop(left: ast.expr, op: ast.operator, right: ast.expr) -> ast.BinOp:
    """``left op right``.

    >>> ast.unparse(binop(name("a"), ast.Sub(), binop(name("b"), ast.Add(), name("c"))))
    'a - (b + c)'
    """
    return ast.BinOp(left, op, right)


def neg(value: ast.expr) -> ast.expr:
    """``-value`` (a negative number stays a number).

    >>> ast.unparse(neg(const(1))), ast.unparse(neg(name("x")))
    ('-1', '-x')
    """
    if isinstance(value, ast.Constant) and isinstance(value.value, int | float):
        return const(-value.value)
    return ast.UnaryOp(ast.USub(), value)


def delta(i: ast.expr, j: ast.expr) -> ast.Call:
    """``KroneckerDelta(i, j)``.

    >>> ast.unparse(delta(name("a"), name("k")))
    'KroneckerDelta(a, k)'
    """
    return call("KroneckerDelta", i, j)


def text(tree: ast.expr) -> str:
    """The claim text of a tree.

    >>> text(binop(name("x"), ast.Mult(), const(2)))
    'x * 2'
    """
    return ast.unparse(tree)


def same(a: ast.expr, b: ast.expr) -> bool:
    """True when two trees print the same.

    >>> same(name("i"), name("i")), same(name("i"), name("j"))
    (True, False)
    """
    return ast.dump(a) == ast.dump(b)


def sum_variables(node: ast.Call) -> list[str]:
    """The summation indices bound by a ``Sum(body, i, (j, lo, hi))`` node.

    >>> sum_variables(ast.parse("Sum(x[i, j], i, (j, 0, 3))", mode="eval").body)
    ['i', 'j']
    """
    out = []
    for arg in node.args[1:]:
        if isinstance(arg, ast.Name):
            out.append(arg.id)
        elif isinstance(arg, ast.Tuple) and arg.elts and isinstance(arg.elts[0], ast.Name):
            out.append(arg.elts[0].id)
    return out


def is_sum(node: ast.AST) -> bool:
    """True for a ``Sum(...)`` call.

    >>> is_sum(call("Sum", name("x"), name("i")))
    True
    """
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Sum"


def free_names(tree: ast.AST) -> list[str]:
    """Names occurring free in ``tree`` (not bound by an enclosing Sum), first occurrence first.

    >>> free_names(ast.parse("Sum(x[i, j] * w[j], j) + b[k]", mode="eval").body)
    ['x', 'i', 'w', 'b', 'k']
    """
    out: list[str] = []
    _free(tree, frozenset(), out)
    return out


def _free(node: ast.AST, bound: frozenset[str], out: list[str]) -> None:
    if isinstance(node, ast.Name):
        if node.id not in bound and node.id not in out:
            out.append(node.id)
        return
    if is_sum(node):
        inner = bound | set(sum_variables(node))
        _free(node.args[0], inner, out)
        for arg in node.args[1:]:
            if isinstance(arg, ast.Tuple):
                for bound_expr in arg.elts[1:]:
                    _free(bound_expr, bound, out)
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            continue
        if isinstance(node, ast.Attribute) and child is not node.value:
            continue
        _free(child, bound, out)


def all_names(tree: ast.AST) -> set[str]:
    """Every identifier in ``tree``, bound or free.

    >>> sorted(all_names(ast.parse("Sum(x[i], i)", mode="eval").body))
    ['Sum', 'i', 'x']
    """
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def fresh(base: str, taken: set[str]) -> str:
    """``base`` followed by the first number that makes it unused.

    >>> fresh("m", {"m", "m1"})
    'm2'
    """
    for k in itertools.count(1):
        candidate = f"{base}{k}"
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable")


def substitute(tree: ast.expr, mapping: dict[str, ast.expr]) -> ast.expr:
    """``tree`` with free names replaced, renaming summation indices that would capture.

    >>> ast.unparse(substitute(ast.parse("Sum(w[m] * x[i - m], m)", mode="eval").body, {"i": name("m")}))
    'Sum(w[m1] * x[m - m1], m1)'
    """
    if not mapping:
        return tree
    return _Substitution(mapping).visit(copy.deepcopy(tree))


class _Substitution(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, ast.expr]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.expr:
        value = self.mapping.get(node.id)
        return copy.deepcopy(value) if value is not None else node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        if not is_sum(node):
            node.args = [self.visit(a) for a in node.args]
            node.keywords = [self.visit(k) for k in node.keywords]
            return node
        bound = sum_variables(node)
        incoming = set().union(*(all_names(v) for v in self.mapping.values())) if self.mapping else set()
        taken = incoming | all_names(node) | set(self.mapping)
        renames: dict[str, ast.expr] = {}
        for var in bound:
            if var in incoming:
                new = fresh(var, taken)
                taken.add(new)
                renames[var] = name(new)
        inner = {k: v for k, v in self.mapping.items() if k not in bound}
        body = substitute(node.args[0], renames) if renames else node.args[0]
        new_args = [_Substitution(inner).visit(body) if inner else body]
        for arg in node.args[1:]:
            if isinstance(arg, ast.Name):
                new_args.append(renames.get(arg.id, arg))
            else:
                var, *limits = arg.elts
                var = renames.get(var.id, var)
                new_args.append(ast.Tuple([var, *(self.visit(limit) for limit in limits)], ast.Load()))
        node.args = new_args
        return node


def index_position_names(tree: ast.AST) -> list[str]:
    """Names free in index positions (element reads, Kronecker deltas, sum bounds, comparisons),
    first occurrence first: the index variables of a claim, even where a tensor has the same
    spelling (an index shadows it).

    >>> index_position_names(ast.parse("Sum(x[a, b] * w[e - a], a) + b * KroneckerDelta(e, k)", mode="eval").body)
    ['b', 'e', 'k']
    """
    out: list[str] = []
    _index_positions(tree, frozenset(), False, out)
    return out


def _index_positions(node: ast.AST, bound: frozenset[str], inside: bool, out: list[str]) -> None:
    if isinstance(node, ast.Name):
        if inside and node.id not in bound and node.id not in out:
            out.append(node.id)
        return
    if is_sum(node):
        _index_positions(node.args[0], bound | set(sum_variables(node)), inside, out)
        for arg in node.args[1:]:
            if isinstance(arg, ast.Tuple):
                for limit in arg.elts[1:]:
                    _index_positions(limit, bound, True, out)
        return
    if isinstance(node, ast.Subscript):
        _index_positions(node.value, bound, inside, out)
        _index_positions(node.slice, bound, True, out)
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "KroneckerDelta":
        for arg in node.args:
            _index_positions(arg, bound, True, out)
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            continue
        _index_positions(child, bound, inside, out)
