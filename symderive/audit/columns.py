"""Column vectors (``column_vectors = true``, DERIVATIONS.md): which way a claim value points.

Under the flag a 1-D array is a column and its transpose a row. Claims are NumPy
(LANGUAGE.md), where both are the same 1-D array, so the reader tracks the orientation of
every value it builds and writes each product of arrays as what it means: a column times a
row is ``outer(u, v)``, a row times a column ``dot(u, v)``, a row times a matrix ``u.T @ A``
(a row again), a matrix times a column ``A @ v``. A product, sum or equation whose
dimensions do not match (a column times a column, a matrix plus a vector) is an
:class:`OrientationError`, never read some other way.

>>> scope = Scope(lambda n: {"v": 1, "A": 2}.get(n, 0))
>>> v, A = ast.Name("v"), ast.Name("A")
>>> ast.unparse(product(v, ast.Attribute(v, "T"), scope)), ast.unparse(product(ast.Attribute(v, "T"), v, scope))
('outer(v, v)', 'dot(v, v)')
>>> orientation(product(ast.Attribute(v, "T"), A, scope), scope)
'row'
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

SCALAR, COLUMN, ROW, MATRIX, HIGHER = "scalar", "column", "row", "matrix", "array of rank 3 or more"
VECTORS = (COLUMN, ROW)
_BY_RANK = {0: SCALAR, 1: COLUMN, 2: MATRIX}
#: NumPy/SciPy functions applied element by element (their value points as their argument)
ELEMENTWISE = frozenset(
    "exp log sqrt square tanh sinh cosh sin cos log1p expm1 abs sign expit sigmoid relu maximum minimum where "
    "clip flip zeros_like ones_like".split()
)
#: reductions: a scalar without an axis
REDUCTIONS = frozenset("sum mean var max amax min amin logsumexp".split())
_WORDS = {
    SCALAR: "a scalar",
    COLUMN: "a column vector",
    ROW: "a row vector",
    MATRIX: "a matrix",
    HIGHER: "an array of rank 3 or more",
}


class OrientationError(ValueError):
    """A value whose dimensions do not match under column vectors (the reason says which)."""


@dataclass(frozen=True)
class Scope:
    """What orientation needs to know of names: ``rank`` of a claim name (0 for a scalar,
    None when unknown) and the declared elementwise ``functions`` (``f``, ``f_prime``).

    >>> Scope(lambda n: 1).rank("x")
    1
    """

    rank: Callable[[str], int | None]
    functions: frozenset[str] = frozenset()


def orientation(tree: ast.expr, scope: Scope, strict: bool = False) -> str | None:
    """The orientation of a claim value (``scalar``, ``column``, ``row``, ``matrix``, or of
    rank 3 or more), None when unknown; ``strict``: a mismatch inside is an OrientationError.

    >>> scope = Scope(lambda n: {"v": 1}.get(n, 0))
    >>> orientation(ast.parse("v.T.T", mode="eval").body, scope)
    'column'
    >>> orientation(ast.parse("v + v.T", mode="eval").body, scope, strict=True)
    Traceback (most recent call last):
    ...
    symderive.audit.columns.OrientationError: v + v.T: a column vector and a row vector do not match
    """
    return _Orient(scope, strict).of(tree)


def describe(kind: str | None) -> str:
    """An orientation in words.

    >>> describe("row"), describe(None)
    ('a row vector', 'an array of unknown shape')
    """
    return _WORDS.get(kind, "an array of unknown shape")


def product(left: ast.expr, right: ast.expr, scope: Scope) -> ast.expr:
    """The claim for ``left right`` (juxtaposition or ``\\cdot``) under column vectors.

    >>> scope = Scope(lambda n: {"v": 1, "A": 2}.get(n, 0))
    >>> ast.unparse(product(ast.Name("A"), ast.Name("v"), scope))
    'A @ v'
    >>> product(ast.Name("v"), ast.Name("v"), scope)
    Traceback (most recent call last):
    ...
    symderive.audit.columns.OrientationError: a column vector times a column vector: the dimensions do not match under column_vectors = true (u^T v is a dot product, u v^T an outer product)
    """
    a, b = orientation(left, scope, strict=True), orientation(right, scope, strict=True)
    if SCALAR in (a, b):
        return ast.BinOp(left, ast.Mult(), right)
    if (a, b) == (COLUMN, ROW):
        return ast.Call(ast.Name("outer", ast.Load()), [as_1d(left, scope), as_1d(right, scope)], [])
    if (a, b) == (ROW, COLUMN):
        return ast.Call(ast.Name("dot", ast.Load()), [as_1d(left, scope), as_1d(right, scope)], [])
    if _matmul(a, b) is not None:
        return ast.BinOp(left, ast.MatMult(), right)
    if a is None or b is None:
        unknown = ast.unparse(left if a is None else right)
        raise OrientationError(
            f"the shape of {unknown} is not known here, so its product is not read under column_vectors = true"
        )
    hint = " (u^T v is a dot product, u v^T an outer product)" if (a, b) == (COLUMN, COLUMN) else ""
    raise OrientationError(
        f"{describe(a)} times {describe(b)}: the dimensions do not match under column_vectors = true{hint}"
    )


def comparable(left: ast.expr, right: ast.expr, scope: Scope) -> tuple[ast.expr, ast.expr]:
    """The two sides of an equation, checked; a row equated to a column becomes a (1, n)
    matrix equated to an (n, 1) one, so that the shapes differ as they do on paper.

    >>> scope = Scope(lambda n: {"v": 1}.get(n, 0))
    >>> [ast.unparse(s) for s in comparable(ast.Name("v"), ast.parse("v.T", mode="eval").body, scope)]
    ['outer(v, ones(1))', 'outer(ones(1), v.T)']
    """
    a, b = orientation(left, scope, strict=True), orientation(right, scope, strict=True)
    if {a, b} == {COLUMN, ROW}:
        return _as_matrix(left, a), _as_matrix(right, b)
    if (a is None or b is None) and (_has_row(left, scope) or _has_row(right, scope)):
        unknown = ast.unparse(left if a is None else right)
        raise OrientationError(
            f"the shape of {unknown} is not known here, so whether it is a row or a column is not read"
        )
    return left, right


def as_1d(tree: ast.expr, scope: Scope) -> ast.expr:
    """A vector without its transposes (a NumPy 1-D array is its own transpose).

    >>> ast.unparse(as_1d(ast.parse("v.T.T.T", mode="eval").body, Scope(lambda n: 1)))
    'v'
    """
    while isinstance(tree, ast.Attribute) and tree.attr == "T" and orientation(tree.value, scope) in VECTORS:
        tree = tree.value
    return tree


def _as_matrix(tree: ast.expr, kind: str) -> ast.expr:
    ones = ast.Call(ast.Name("ones", ast.Load()), [ast.Constant(1)], [])
    pair = [tree, ones] if kind == COLUMN else [ones, tree]
    return ast.Call(ast.Name("outer", ast.Load()), pair, [])


def as_vector(text: str) -> tuple[str, str] | None:
    """(``row`` or ``column``, the vector) of a side :func:`comparable` wrote as a (1, n) or
    (n, 1) matrix, else None.

    >>> as_vector("outer(ones(1), g.T @ w)"), as_vector("outer(v, ones(1))"), as_vector("outer(u, v)")
    (('row', 'g.T @ w'), ('column', 'v'), None)
    """
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "outer"):
        return None
    ones = ast.dump(ast.Call(ast.Name("ones", ast.Load()), [ast.Constant(1)], []))
    for k, kind in ((0, ROW), (1, COLUMN)):
        if len(tree.args) == 2 and not tree.keywords and ast.dump(tree.args[k]) == ones:
            return kind, ast.unparse(tree.args[1 - k])
    return None


def _has_row(tree: ast.expr, scope: Scope) -> bool:
    orient = _Orient(scope, strict=False)  # one for the whole walk: each node is oriented once
    return any(isinstance(node, ast.expr) and orient.of(node) == ROW for node in ast.walk(tree))


def _matmul(a: str | None, b: str | None) -> str | None:
    """The orientation of ``a @ b`` where it means what the flag says, else None."""
    table = {
        (ROW, MATRIX): ROW,
        (MATRIX, COLUMN): COLUMN,
        (MATRIX, MATRIX): MATRIX,
        (ROW, COLUMN): SCALAR,
        (HIGHER, MATRIX): HIGHER,
        (MATRIX, HIGHER): HIGHER,
        (HIGHER, HIGHER): HIGHER,
    }
    return table.get((a, b))


class _Orient:
    def __init__(self, scope: Scope, strict: bool):
        self.scope = scope
        self.strict = strict
        self.known: dict[int, str | None] = {}  # by node id, while the tree is being read

    def of(self, node: ast.expr) -> str | None:
        if id(node) not in self.known:
            self.known[id(node)] = self._of(node)
        return self.known[id(node)]

    def _of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant):
            return SCALAR
        if isinstance(node, ast.Compare):
            return self._elementwise(node, [node.left, *node.comparators])
        if isinstance(node, ast.Name):
            rank = self.scope.rank(node.id)
            return None if rank is None else _BY_RANK.get(rank, HIGHER)
        if isinstance(node, ast.Subscript):
            return self._read(node)
        if isinstance(node, ast.Attribute):
            inner = self.of(node.value)
            if node.attr != "T":
                return None
            return {COLUMN: ROW, ROW: COLUMN}.get(inner, inner)
        if isinstance(node, ast.UnaryOp):
            return self.of(node.operand)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self._call(node)
        return None

    def _read(self, node: ast.Subscript) -> str | None:
        base = self.of(node.value)
        where = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(i, ast.Slice) for i in where):
            return None
        rank = self.scope.rank(node.value.id) if isinstance(node.value, ast.Name) else None
        rank = rank if rank is not None else {SCALAR: 0, COLUMN: 1, ROW: 1, MATRIX: 2}.get(base)
        return SCALAR if rank == len(where) else None

    def _binop(self, node: ast.BinOp) -> str | None:
        if isinstance(node.op, ast.MatMult):
            a, b = self.of(node.left), self.of(node.right)
            out = _matmul(a, b)
            if out is None and a is not None and b is not None and self.strict:
                raise OrientationError(
                    f"{ast.unparse(node)}: {describe(a)} times {describe(b)} does not match under column_vectors = true"
                )
            return out
        if isinstance(node.op, ast.Pow) and self.of(node.right) == SCALAR:
            return self.of(node.left)
        return self._elementwise(node, [node.left, node.right])

    def _elementwise(self, node: ast.expr, operands: list[ast.expr]) -> str | None:
        """Operands combined element by element: a scalar goes with anything, else all alike."""
        kinds = [self.of(o) for o in operands]
        arrays = {k for k in kinds if k != SCALAR}
        if not arrays:
            return SCALAR
        if len(arrays) == 1:
            return arrays.pop()
        known = sorted(k for k in arrays if k is not None)
        if self.strict and len(known) >= 2:
            raise OrientationError(f"{ast.unparse(node)}: {describe(known[0])} and {describe(known[1])} do not match")
        return None

    def _call(self, node: ast.Call) -> str | None:
        f = node.func.id
        args = node.args
        axis = any(k.arg == "axis" for k in node.keywords)
        kinds = [self.of(a) for a in args] if f != "diff" else []
        first = kinds[0] if kinds else None
        if f in ELEMENTWISE or f in self.scope.functions:
            return self._elementwise(node, args[:1] if f == "clip" else args) if args else None
        if f in ("softmax", "log_softmax"):
            return first if not axis or first == MATRIX else None
        if f in REDUCTIONS:
            if not axis and len(args) == 1:
                return SCALAR
            return COLUMN if first == MATRIX else None
        if f == "Sum" and args:
            return first  # a sum over indices of elements is a number, of rows a row
        if f in ("KroneckerDelta", "trace"):
            return SCALAR
        if f == "dot":
            return SCALAR if len(kinds) == 2 and all(k in VECTORS for k in kinds) else None
        if f in ("outer", "eye"):
            return MATRIX
        if f == "diag" and len(args) == 1:
            return MATRIX if first in VECTORS else COLUMN if first == MATRIX else None
        if f == "transpose" and len(args) == 1:
            return {COLUMN: ROW, ROW: COLUMN}.get(first, first)
        if f == "rot90":
            return MATRIX if first == MATRIX else None
        if f in ("zeros", "ones") and len(args) == 1:
            return COLUMN if not isinstance(args[0], ast.Tuple) else MATRIX if len(args[0].elts) == 2 else None
        if f == "diff" and len(args) == 2:
            return self._derivative(args[0], args[1])
        return None

    def _derivative(self, of: ast.expr, wrt: ast.expr) -> str | None:
        """``diff(A, B)``: a derivative with respect to an element points as A, of a scalar
        as B, of a column with respect to a column is the Jacobian (a matrix)."""
        a, b = self.of(of), self.of(wrt)
        if b == SCALAR:
            return a
        if a == SCALAR:
            return b
        if (a, b) == (COLUMN, COLUMN):
            return MATRIX
        return None
