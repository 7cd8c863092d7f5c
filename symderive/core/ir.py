"""Index-level expressions on SymPy: tensor reads, guarded sums, Iverson guards.

Everything symderive knows about an array expression is a :class:`Tensor`: a symbolic
shape, a validity condition on the sizes, and a function from an index tuple to a
scalar SymPy expression. Scalars are ordinary SymPy expressions built from

* tensor reads ``x[i, j]`` (``sympy.Indexed``; a 0-d tensor is a real ``Symbol``),
  which read as zero outside the tensor's shape,
* :class:`GSum` -- a sum over integer ranges whose empty ranges sum to zero,
* :class:`Iverson` -- ``[cond]``, 1 where a condition on integers holds, else 0,
* ``KroneckerDelta`` and ordinary functions (``exp``, ``log``, ``Piecewise`` ...).

Sizes are positive integer symbols (:func:`size_symbol`), index variables integer
symbols (:func:`index_symbol`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

Expr = sp.Expr
Shape = tuple[sp.Expr, ...]


def size_symbol(name: str) -> sp.Symbol:
    """The positive integer symbol of a size.

    >>> size_symbol("H").is_positive
    True
    """
    return sp.Symbol(name, integer=True, positive=True)


def index_symbol(name: str) -> sp.Symbol:
    """The integer symbol of an index variable.

    >>> index_symbol("i").is_integer
    True
    """
    return sp.Symbol(name, integer=True)


def scalar_symbol(name: str) -> sp.Symbol:
    """The real symbol that stands for a 0-d tensor.

    >>> scalar_symbol("b").is_real
    True
    """
    return sp.Symbol(name, real=True)


class Iverson(sp.Function):
    """``[cond]``: 1 where the integer condition holds, else 0.

    >>> i = index_symbol("i")
    >>> Iverson(i < 3).subs(i, 1)
    1
    """

    is_integer = True
    is_nonnegative = True

    @classmethod
    def eval(cls, cond):
        if cond is sp.true or cond == sp.true:
            return sp.S.One
        if cond is sp.false or cond == sp.false:
            return sp.S.Zero
        return None

    def _latex(self, printer, exp=None):
        inner = rf"\left[{printer._print(self.args[0])}\right]"
        return inner if exp is None else rf"{inner}^{{{exp}}}"

    def _eval_is_zero(self):
        return None


class GSum(sp.Sum):
    """A sum over inclusive integer ranges; a range with ``hi < lo`` is empty (0).

    Unlike SymPy's ``Sum`` there is no Karr convention: reversed limits are empty.

    >>> i, n = index_symbol("i"), size_symbol("n")
    >>> GSum(i, (i, 0, 2)).doit()
    3
    >>> GSum(i, (i, 3, 1)).doit()
    0
    """

    def doit(self, **hints):
        body = self.function
        if hints.get("deep", True):
            body = body.doit(**hints)
        if not all(sp.sympify(b).is_Integer for _, lo, hi in self.limits for b in (lo, hi)):
            return self.func(body, *self.limits)
        total = body
        for var, lo, hi in self.limits:
            terms = [total.xreplace({var: sp.Integer(v)}) for v in range(int(lo), int(hi) + 1)]
            total = sp.Add(*terms)
        return total


def gsum(body: Expr, *limits) -> Expr:
    """A :class:`GSum`, or ``body`` itself when there are no limits.

    >>> gsum(sp.Integer(1))
    1
    """
    if not limits:
        return body
    if body == 0:
        return sp.S.Zero
    return GSum(body, *limits)


def in_range(idx: Sequence[Expr], shape: Shape) -> sp.Boolean:
    """The condition that an index tuple lies inside a shape.

    >>> i, n = index_symbol("i"), size_symbol("n")
    >>> in_range((i,), (n,))
    (i >= 0) & (i < n)
    """
    try:
        return _in_range(tuple(idx), tuple(shape))
    except TypeError:  # an index without a hash
        return _in_range.__wrapped__(tuple(idx), tuple(shape))


# Cached: a pure function of SymPy expressions (hashable), asked again and again about the same
# reads; building each relation asks SymPy's assumptions, which is slow.
@functools.lru_cache(maxsize=4096)
def _in_range(idx: tuple, shape: tuple) -> sp.Boolean:
    conds = []
    for i, n in zip(idx, shape, strict=True):
        conds.append(sp.Ge(i, 0))
        conds.append(sp.Lt(i, n))
    return sp.And(*conds)


def read(name: str, idx: Sequence[Expr]) -> Expr:
    """A read of the named input tensor (a real symbol when ``idx`` is empty).

    >>> read("x", (index_symbol("i"),))
    x[i]
    """
    if not idx:
        return scalar_symbol(name)
    return sp.IndexedBase(name, real=True)[tuple(idx)]


@dataclass(frozen=True)
class Tensor:
    """A tensor-valued expression.

    ``element(idx)`` is the scalar value at an index tuple inside ``shape``;
    ``zero_outside`` says that it already evaluates to 0 outside (so no guard is
    needed); ``valid`` is the condition on the sizes under which the expression is
    defined at all (NumPy would raise elsewhere, e.g. ``w @ g`` with ``m != n``).

    >>> n = size_symbol("n")
    >>> x = leaf("x", (n,))
    >>> x.at((index_symbol("i"),))
    x[i]
    """

    shape: Shape
    element: Callable[[tuple], Expr] = field(compare=False)
    zero_outside: bool = False
    valid: sp.Boolean = sp.true
    latex: str = ""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def at(self, idx: Sequence[Expr]) -> Expr:
        """The element at ``idx``, zero when ``idx`` lies outside the shape."""
        idx = tuple(sp.sympify(i) for i in idx)
        if len(idx) != len(self.shape):
            raise ValueError(f"index of length {len(idx)} for a tensor of rank {len(self.shape)}")
        value = self.element(idx)
        if self.zero_outside or not idx:
            return value
        guard = in_range(idx, self.shape)
        if guard == sp.true:
            return value
        return Iverson(guard) * value


def leaf(name: str, shape: Shape, latex: str = "") -> Tensor:
    """The tensor of a layer input (reads outside its shape are zero).

    >>> leaf("w", (size_symbol("k"),)).shape
    (k,)
    """
    shape = tuple(sp.sympify(s) for s in shape)
    return Tensor(shape=shape, element=lambda idx: read(name, idx), zero_outside=True, latex=latex or name)


def from_scalar(value: Expr, latex: str = "") -> Tensor:
    """A 0-d tensor holding a scalar expression.

    >>> from_scalar(sp.Integer(2)).at(())
    2
    """
    value = sp.sympify(value)
    return Tensor(shape=(), element=lambda idx: value, zero_outside=True, latex=latex or sp.latex(value))


def fresh_indices(prefix: str, count: int, avoid: set | None = None) -> tuple[sp.Symbol, ...]:
    """``count`` index symbols named ``prefix0, prefix1, ...`` not in ``avoid``.

    >>> fresh_indices("i", 2)
    (i0, i1)
    """
    avoid = {str(s) for s in (avoid or ())}
    out = []
    if count == 0:
        return ()
    for k in itertools.count():
        name = f"{prefix}{k}"
        if name not in avoid:
            out.append(index_symbol(name))
            if len(out) == count:
                return tuple(out)
    raise AssertionError("unreachable")


def dummy_index(hint: str = "k") -> sp.Dummy:
    """A fresh summation variable that cannot clash with any other symbol.

    >>> dummy_index("m").is_integer
    True
    """
    return sp.Dummy(hint, integer=True)


def size_sum(expr: Tensor, idx_hint: str = "k") -> Expr:
    """The sum of all elements of a tensor, as a scalar.

    >>> n = size_symbol("n")
    >>> size_sum(leaf("x", (n,))).func.__name__
    'GSum'
    """
    idx = tuple(dummy_index(idx_hint) for _ in expr.shape)
    limits = [(i, 0, n - 1) for i, n in zip(idx, expr.shape, strict=False)]
    return gsum(expr.element(idx), *limits)


def substituted(expr: Expr, old: Sequence, new: Sequence) -> Expr:
    """``expr.xreplace`` of each ``old`` symbol by the ``new`` one at its position.

    Remembered: a claim's element is asked for at the same index symbols by the proof and by
    every exact evaluation of its cross-check, and rebuilding a sum with its guards asks
    SymPy's assumptions again each time.

    >>> i, p = index_symbol("i"), index_symbol("p")
    >>> substituted(read("x", (i,)) + i, (i,), (p,))
    p + x[p]
    """
    try:
        return _substituted(expr, tuple(old), tuple(new))
    except TypeError:  # something without a hash
        return expr.xreplace(dict(zip(old, new, strict=False)))


# Cached: a pure function of SymPy expressions (hashable, compared by structure).
@functools.lru_cache(maxsize=1024)
def _substituted(expr: Expr, old: tuple, new: tuple) -> Expr:
    return expr.xreplace(dict(zip(old, new, strict=False)))


def subs_free(expr: Expr, mapping: dict) -> Expr:
    """Substitute symbols where they are free (not inside a sum that binds them).

    >>> i, p = index_symbol("i"), index_symbol("p")
    >>> subs_free(read("x", (i,)) * GSum(read("x", (i,)), (i, 0, 2)), {i: p})
    Sum(x[i], (i, 0, 2))*x[p]
    """
    if not mapping or not isinstance(expr, sp.Basic):
        return expr
    if isinstance(expr, GSum):
        bound = {v for v, _, _ in expr.limits}
        inner = {k: v for k, v in mapping.items() if k not in bound}
        limits = [(v, subs_free(lo, mapping), subs_free(hi, mapping)) for v, lo, hi in expr.limits]
        return GSum(subs_free(expr.function, inner), *limits)
    if expr in mapping:
        return mapping[expr]
    if not expr.args:
        return expr
    if not (expr.free_symbols & set(mapping)):
        return expr
    return expr.func(*(subs_free(a, mapping) for a in expr.args))


class Defined(sp.Function):
    """``value`` where the domain condition ``cond`` holds, else undefined (NumPy's nan).

    Partial operations (division, ``log``, ``sqrt``, fractional powers) keep their domain
    here, because SymPy simplifies ``x / x`` to 1 and ``exp(log(x))`` to ``x`` as soon as
    they are built; the prover may drop the condition only where the assumptions imply it.

    >>> x = read("x", (index_symbol("i"),))
    >>> Defined(x / x, sp.Ne(x, 0)).args[1]
    Ne(x[i], 0)
    """

    @classmethod
    def eval(cls, value, cond):
        if cond is sp.true or cond == sp.true:
            return value
        if cond is sp.false or cond == sp.false:
            return sp.nan
        return None

    def _eval_derivative(self, s):
        return Defined(self.args[0].diff(s), self.args[1])

    @property
    def precedence(self):
        # printed as its value, so it binds as its value does (a sum inside a product gets brackets)
        from sympy.printing.precedence import precedence

        return precedence(self.args[0])

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"

    def _sympystr(self, printer):
        return printer._print(self.args[0])


def defined(value: Expr, cond) -> Expr:
    """``value`` guarded by its domain condition, unless SymPy already knows it holds.

    >>> n = size_symbol("n")
    >>> defined(1 / n, sp.Ne(n, 0))
    1/n
    """
    cond = sp.sympify(cond)
    if cond.has(Defined):
        # a comparison with nan is False (or True for !=): require the compared value's domain
        cond = sp.And(domain_condition(cond), strip_domains(cond))
    if cond == sp.true:
        return value
    return Defined(value, cond)


def divide_value(a: Expr, b: Expr) -> Expr:
    """``a / b`` with the condition ``b != 0`` unless ``b`` is known nonzero (a size, exp ...).

    >>> x = read("x", (index_symbol("i"),))
    >>> divide_value(x, x).func.__name__
    'Defined'
    """
    b = sp.sympify(b)
    if b.is_nonzero or b.is_positive or b.is_negative:
        return a / b
    return defined(a / b, sp.Ne(b, 0))


def log_value(x: Expr) -> Expr:
    """``log(x)`` with the condition ``x > 0`` unless known."""
    x = sp.sympify(x)
    return sp.log(x) if x.is_positive else defined(sp.log(x), sp.Gt(x, 0))


def sqrt_value(x: Expr) -> Expr:
    """``sqrt(x)`` with the condition ``x >= 0`` unless known."""
    x = sp.sympify(x)
    return sp.sqrt(x) if x.is_nonnegative else defined(sp.sqrt(x), sp.Ge(x, 0))


def power_value(b: Expr, e: Expr) -> Expr:
    """``b ** e`` with NumPy's domain: ``b != 0`` for negative, ``b >= 0`` for fractional powers."""
    b, e = sp.sympify(b), sp.sympify(e)
    value = sp.Pow(b, e)
    if e.is_integer and e.is_nonnegative:
        return value
    conds = []
    if not e.is_integer and not b.is_nonnegative:
        conds.append(sp.Ge(b, 0))
    if not e.is_nonnegative and not (b.is_nonzero or b.is_positive or b.is_negative):
        conds.append(sp.Ne(b, 0))
    return defined(value, sp.And(*conds)) if conds else value


def domain_parts(expr) -> list:
    """The maximal subterms of ``expr`` that carry a domain: Defined nodes, and sums or
    Piecewise choices with a Defined inside (their domain is not one plain condition).

    >>> x = read("x", (index_symbol("i"),))
    >>> [p.args[1] for p in domain_parts(2 * log_value(x) + x)]
    [x[i] > 0]
    """
    out: dict = {}

    def walk(e):
        if not isinstance(e, sp.Basic) or not e.args or isinstance(e, sp.Indexed):
            return
        if isinstance(e, Defined | GSum | sp.Piecewise):
            if e.has(Defined):
                out[e] = None
            return
        for a in e.args:
            walk(a)

    walk(sp.sympify(expr))
    return list(out)


def strip_domains(expr):
    """``expr`` with every ``Defined(v, c)`` replaced by ``v`` (for conditions whose
    domains are already required separately: a comparison with nan would not say so).

    >>> x = read("x", (index_symbol("i"),))
    >>> strip_domains(divide_value(1, x) + 1)
    1 + 1/x[i]
    """
    if not isinstance(expr, sp.Basic) or not expr.has(Defined):
        return expr
    if isinstance(expr, Defined):
        return strip_domains(expr.args[0])
    return expr.func(*(strip_domains(a) for a in expr.args))


def domain_condition(expr) -> sp.Boolean:
    """The condition under which every partial operation in ``expr`` is defined.

    A sum needs its body defined at every index of its ranges (``[not ok]`` counted to 0);
    a Piecewise needs its conditions defined and the branch it takes defined.

    >>> x = read("x", (index_symbol("i"),))
    >>> domain_condition(log_value(x) * divide_value(1, x))
    (x[i] > 0) & Ne(x[i], 0)
    """
    return sp.And(*(_part_condition(p) for p in domain_parts(expr)))


def _part_condition(part) -> sp.Boolean:
    if isinstance(part, Defined):
        value, cond = part.args
        inner = [domain_condition(a) for a in (cond.args if isinstance(cond, sp.Basic) else ())]
        return sp.And(*inner, strip_domains(cond), domain_condition(value))
    if isinstance(part, GSum):
        body = domain_condition(part.function)
        if body == sp.true:
            return sp.true
        return sp.Eq(GSum(Iverson(sp.Not(body)), *part.limits), 0)
    # Piecewise: the conditions are evaluated up to the branch taken, whose value must be defined
    conds, previous = [], []
    for value, cond in part.args:
        conds.append(domain_condition(cond))
        taken = sp.And(strip_domains(cond), *[sp.Not(strip_domains(p)) for p in previous])
        value_ok = domain_condition(value)
        if value_ok != sp.true:
            conds.append(sp.Or(sp.Not(taken), value_ok))
        previous.append(cond)
    return sp.And(*conds)


def keep_domains(result: Expr, *operands: Expr) -> Expr:
    """``result`` of an operation on ``operands``, undefined wherever an operand is.

    SymPy evaluates ``0 * log(x)`` to 0, ``d - d`` to 0 and ``d ** 0`` to 1 as it builds
    them, dropping the domain of ``d``; NumPy computes every operand and its nan
    propagates. A domain the result no longer carries is put back around it.

    >>> x = read("x", (index_symbol("i"),))
    >>> keep_domains(sp.S.Zero, log_value(x)).args
    (0, x[i] > 0)
    """
    result = sp.sympify(result)
    parts: dict = {}
    for operand in operands:
        for p in domain_parts(operand):
            parts[p] = None
    lost = sorted((p for p in parts if not result.has(p)), key=sp.default_sort_key)
    if not lost:
        return result
    return defined(result, sp.And(*(_part_condition(p) for p in lost)))


class IntegerDivisionPrinting:
    """Printer methods for ``floor``, ``ceiling`` and ``Mod`` in the layer file's and claim
    language's spellings (``n // 2``, ``n % 2``), not SymPy's class names; mixed into the plain
    printer and the layer file's size printer."""

    def _print_floor(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if not den.is_Integer or den == 1:
            return super()._print_Function(e)
        return f"({self._operand(num)} // {den})"

    def _print_ceiling(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if not den.is_Integer or den == 1:
            return super()._print_Function(e)
        return f"({self._operand(num + den - 1)} // {den})"

    def _print_Mod(self, e):
        return f"({self._operand(e.args[0])} % {self._operand(e.args[1])})"

    def _operand(self, e) -> str:
        text = self._print(e)
        return f"({text})" if isinstance(e, sp.Add | sp.Mul) else text


class PlainPrinter(IntegerDivisionPrinting, StrPrinter):
    """Index expressions as a reader writes them: ``Sum_{i=0..n-1} [i <= p] x[i]``.

    >>> i, n = index_symbol("i"), size_symbol("n")
    >>> plain(GSum(Iverson(i >= 1) * read("x", (i,)), (i, 0, n - 1)))
    'Sum_{i=0..n - 1} ([i >= 1]*x[i])'
    """

    def _print_GSum(self, e):
        lims = ", ".join(f"{self._print(v)}={self._print(lo)}..{self._print(hi)}" for v, lo, hi in e.limits)
        body = self.parenthesize(e.function, PRECEDENCE["Mul"])
        return f"Sum_{{{lims}}} {body}"

    def _print_Iverson(self, e):
        return f"[{self._print(e.args[0])}]"

    def _print_KroneckerDelta(self, e):
        return f"delta({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_And(self, e):
        return " & ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in e.args)

    def _print_Defined(self, e):
        return self._print(e.args[0])

    def _print_Relational(self, e):
        if isinstance(e, sp.Eq | sp.Ne):
            # [c] != 0 is c, [c] == 0 is not c
            for guard, other in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
                if isinstance(guard, Iverson) and other == 0:
                    cond = guard.args[0] if isinstance(e, sp.Ne) else sp.Not(guard.args[0])
                    return self._print(cond)
            op = "==" if isinstance(e, sp.Eq) else "!="
            return f"{self.parenthesize(e.lhs, PRECEDENCE['Relational'])} {op} {self.parenthesize(e.rhs, PRECEDENCE['Relational'])}"
        return super()._print_Relational(e)

    def _print_Not(self, e):
        return f"~({self._print(e.args[0])})"

    def _print_Piecewise(self, e):
        # the value of each piece under its guard: [x > 0]*x, not Piecewise((x, x > 0), (0, True))
        terms, before = [], []
        for value, cond in e.args:
            guard = (
                sp.And(*[sp.Not(c) for c in before], cond)
                if cond is not sp.true
                else sp.And(*[sp.Not(c) for c in before])
            )
            before.append(cond)
            if value == 0 or guard is sp.false:
                continue
            shown = f"[{self._print(guard)}]" if guard is not sp.true else ""
            if value == 1 and shown:
                terms.append(shown)
            else:
                text = self.parenthesize(value, PRECEDENCE["Mul"])
                terms.append(f"{shown}*{text}" if shown else text)
        return " + ".join(terms) if terms else "0"

    def _print_Min(self, e):
        return f"min({', '.join(self._print(a) for a in e.args)})"

    def _print_Dummy(self, e):
        # a bound variable by its name (k), not SymPy's _k
        return e.name

    def _reduction(self, word: str, e) -> str:
        lims = ", ".join(f"{self._print(v)}={self._print(lo)}..{self._print(hi)}" for v, lo, hi in e.limits)
        return f"{word}_{{{lims}}} {self.parenthesize(e.function, PRECEDENCE['Mul'])}"

    def _print_ReduceMax(self, e):  # symderive.core.ops.reduce's classes, found by name
        return self._reduction("max", e)

    def _print_ReduceMin(self, e):
        return self._reduction("min", e)

    def _print_Max(self, e):
        return f"max({', '.join(self._print(a) for a in e.args)})"

    def _print_Abs(self, e):
        # NumPy's spelling, as a claim writes it
        return f"abs({self._print(e.args[0])})"


def plain(expr) -> str:
    """A one-line readable text form of an index expression (for the command line), in the
    claim language's spellings (``[x > 0]*x``, ``(n - k) // 2``), never SymPy's class names.

    >>> n, x = size_symbol("n"), read("x", (index_symbol("i"),))
    >>> plain(sp.floor((n - 1) / 2) + 1), plain(sp.Piecewise((x, x > 0), (0, True)))
    ('((n - 1) // 2) + 1', '[x[i] > 0]*x[i]')
    """
    text = PlainPrinter().doprint(expr)
    return text[1:-1] if _one_group(text) else text


def _one_group(text: str) -> bool:
    """Whether ``text`` is one parenthesised group, ``(a // 2)`` but not ``(a) % (b)``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for k, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and k < len(text) - 1:
            return False
    return True


def held_form(expr: Expr, is_held: Callable[[sp.Basic], bool]) -> tuple[Expr, dict]:
    """``expr`` with every maximal subterm that ``is_held`` picks replaced by a real symbol.

    Returns the held expression and the map subterm -> symbol (equal subterms share one),
    so SymPy can differentiate or simplify in them as plain variables.

    >>> x = read("x", (index_symbol("i"),))
    >>> held, holders = held_form(sp.exp(x) * x, lambda e: isinstance(e, sp.Indexed))
    >>> len(holders)
    1
    """
    holders: dict = {}

    def hold(e):
        if is_held(e):
            if e not in holders:
                holders[e] = sp.Dummy("h", real=True)
            return holders[e]
        if not e.args:
            return e
        return e.func(*(hold(a) for a in e.args))

    return hold(sp.sympify(expr)), holders
