"""Presburger questions about integer index domains, decided by z3.

SymPy integer expressions (affine in index variables and sizes, with ``floor`` and
``Mod`` by constants, ``Max``/``Min``/``Piecewise``) translate to z3's integer
arithmetic. Every query runs under z3's deterministic resource limit, so the same input
gets the same answer on a busy machine; an exhausted limit is ``None`` ("unknown").
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from functools import reduce

import sympy as sp
import z3

#: z3's deterministic resource bound for one query (not a wall-clock time)
RLIMIT = 20_000_000


def _text(expr) -> str:
    """An expression as a reason shows it: the claim language's spelling, never SymPy's class names."""
    from .ir import plain  # here: ir is loaded by whoever asks, and imports nothing of this module

    try:
        return plain(expr)
    except Exception:  # noqa: BLE001 - a reason is still given when the printer cannot spell a term
        return str(expr)


class NonLinear(ValueError):
    """An integer expression outside Presburger arithmetic (e.g. ``i * j``)."""


@dataclass
class Z3Context:
    """Symbol -> z3 Int map shared by the queries about one claim.

    A symbol's z3 constant is named after it (a Dummy with its index), so the translation of
    an expression depends on the expression alone: it is remembered across contexts.

    >>> ctx = Z3Context()
    >>> str(ctx.expr(2 * sp.Symbol("n", integer=True) + 1))
    '1 + 2*n'
    """

    symbols: dict = None

    def __post_init__(self):
        if self.symbols is None:
            self.symbols = {}

    def var(self, s: sp.Symbol):
        if s not in self.symbols:
            self.symbols[s] = _var(s)
        return self.symbols[s]

    def expr(self, e):
        """The z3 integer term of a SymPy integer expression."""
        e = sp.sympify(e)
        try:
            return _term(e)
        except TypeError:  # something without a hash
            return _term.__wrapped__(e)

    def cond(self, c):
        """The z3 formula of a SymPy condition over integers."""
        try:
            return _formula(c)
        except TypeError:  # something without a hash
            return _formula.__wrapped__(c)


def _var(s: sp.Symbol):
    return z3.Int(s.name if not isinstance(s, sp.Dummy) else f"{s.name}_{s.dummy_index}")


# Cached: a pure function of a SymPy expression (hashable, compared by structure); a proof
# translates the same guards again and again (each term, each ordering, each question).
@functools.lru_cache(maxsize=8192)
def _term(e):
    if e.is_Integer:
        return z3.IntVal(int(e))
    if e.is_Rational:
        raise NonLinear(f"non-integer constant {_text(e)}")
    if isinstance(e, sp.Symbol):
        return _var(e)
    if isinstance(e, sp.Add):
        den = _common_denominator(e)
        if den != 1:
            raise NonLinear(f"non-integer expression {_text(e)}")
        return z3.Sum([_term(a) for a in e.args])
    if isinstance(e, sp.Mul):
        consts = [a for a in e.args if a.is_Number]
        rest = [a for a in e.args if not a.is_Number]
        c = sp.Mul(*consts)
        if len(rest) > 1:
            raise NonLinear(f"non-linear integer expression {_text(e)}")
        if not c.is_Integer:
            raise NonLinear(f"non-integer expression {_text(e)}")
        return int(c) * _term(rest[0])
    if isinstance(e, sp.floor):
        return _floor(e.args[0])
    if isinstance(e, sp.ceiling):
        return -_floor(-e.args[0])
    if isinstance(e, sp.Mod):
        a, b = e.args
        if not b.is_Integer or int(b) <= 0:
            raise NonLinear(f"modulus by a non-constant in {_text(e)}")
        return _term(a) % int(b)
    if isinstance(e, sp.Max):
        return reduce(lambda x, y: z3.If(x >= y, x, y), [_term(a) for a in e.args])
    if isinstance(e, sp.Min):
        return reduce(lambda x, y: z3.If(x <= y, x, y), [_term(a) for a in e.args])
    if isinstance(e, sp.Piecewise):
        out = None
        for val, cond in reversed(e.args):
            v = _term(val)
            out = v if out is None else z3.If(_formula(cond), v, out)
        return out
    raise NonLinear(f"not an integer index expression: {_text(e)}")


def _floor(arg):
    arg = sp.expand(arg)
    den = _common_denominator(arg)
    num = sp.expand(arg * den)
    if den == 1:
        return _term(num)
    return _term(num) / int(den)  # z3's div is floor division for a positive divisor


@functools.lru_cache(maxsize=8192)
def _formula(c):
    if c is sp.true or c == sp.true:
        return z3.BoolVal(True)
    if c is sp.false or c == sp.false:
        return z3.BoolVal(False)
    if isinstance(c, sp.And):
        return z3.And(*[_formula(a) for a in c.args])
    if isinstance(c, sp.Or):
        return z3.Or(*[_formula(a) for a in c.args])
    if isinstance(c, sp.Not):
        return z3.Not(_formula(c.args[0]))
    if isinstance(c, sp.ITE):
        return z3.If(*(_formula(a) for a in c.args))
    if isinstance(c, sp.Implies):
        return z3.Implies(_formula(c.args[0]), _formula(c.args[1]))
    if isinstance(c, sp.Equivalent):
        return _formula(c.args[0]) == _formula(c.args[1])
    if isinstance(c, sp.Xor):
        return z3.Xor(*(_formula(a) for a in c.args))
    if isinstance(c, sp.Rel):
        lhs, rhs = _integerise(c.lhs - c.rhs)
        # one z3 term, not all six (each is a call into z3)
        return _RELATIONS[c.rel_op](_term(lhs), _term(rhs))
    raise NonLinear(f"not an integer condition: {_text(c)}")


_RELATIONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _common_denominator(e) -> int:
    den = 1
    for t in sp.Add.make_args(sp.expand(e)):
        c, _ = t.as_coeff_Mul()
        if c.is_Rational:
            den = sp.ilcm(den, int(c.q))
    return int(den)


def _integerise(diff):
    """``diff`` scaled to integer coefficients, as (lhs, 0) for a relation ``lhs rel 0``."""
    diff = sp.expand(diff)
    den = _common_denominator(diff)
    return sp.expand(diff * den), sp.S.Zero


def new_solver(rlimit: int | None = None, simple: bool = False) -> z3.Solver:
    """A solver under a deterministic resource limit (:data:`RLIMIT` unless told, read at each call).

    ``simple``: z3's SMT core without the tactics of its default solver, which cost several
    milliseconds per solver on the small questions asked once each (a proof asks hundreds).

    >>> new_solver().check(), new_solver(simple=True).check()
    (sat, sat)
    """
    from ..clock import seconds_left

    s = z3.SimpleSolver() if simple else z3.Solver()
    s.set("rlimit", RLIMIT if rlimit is None else rlimit)
    left = seconds_left()
    if left is not None:
        # z3 does not return to Python before it is done, so the wall clock's ring would wait
        # for it: z3 gives up a moment after the ring, which then decides (a timeout)
        s.set("timeout", int(left * 1000) + 200)
    return s


def check(formulas, ctx: Z3Context | None = None, rlimit: int | None = None):
    """``True`` (satisfiable), ``False`` (unsatisfiable) or ``None`` (limit reached), and a model.

    >>> n = sp.Symbol("n", integer=True)
    >>> check([sp.Gt(n, 2), sp.Lt(n, 2)])[0]
    False
    """
    ctx = ctx or Z3Context()
    s = new_solver(rlimit, simple=True)
    for f in formulas:
        s.add(f if isinstance(f, z3.ExprRef) else ctx.cond(f))
    r = s.check()
    if r == z3.sat:
        return True, s.model()
    if r == z3.unsat:
        return False, None
    return None, None


def implies(premises, conclusion, ctx: Z3Context | None = None):
    """Whether the premises imply the conclusion for all integers (None: undecided).

    >>> n, k = sp.symbols("n k", integer=True)
    >>> implies([sp.Ge(n, k), sp.Ge(k, 1)], sp.Ge(n, 1))
    True
    """
    if ctx is None:
        try:
            return _implied(tuple(premises), conclusion)
        except _Undecided:
            return None
        except TypeError:  # a premise without a hash: asked without the cache
            ctx = Z3Context()
    try:
        sat, _ = check([*[ctx.cond(p) for p in premises], z3.Not(ctx.cond(conclusion))], ctx)
    except NonLinear:
        return None
    if sat is None:
        return None
    return not sat


class _Undecided(Exception):
    """No answer (non-linear, or the solver's limit reached): raised so that it is not cached."""


# Cached: a pure function of SymPy conditions (hashable, compared by structure); the same guards
# are asked about again for every claim on one gradient. Only definite answers are kept: a limit
# reached under a running clock may not be reached next time.
@functools.lru_cache(maxsize=4096)
def _implied(premises: tuple, conclusion) -> bool:
    ctx = Z3Context()
    try:
        sat, _ = check([*[ctx.cond(p) for p in premises], z3.Not(ctx.cond(conclusion))], ctx)
    except NonLinear:
        raise _Undecided from None
    if sat is None:
        raise _Undecided
    return not sat


def satisfiable(conds, ctx: Z3Context | None = None):
    """Whether some integers satisfy all conditions (None: undecided or non-linear).

    >>> n = sp.Symbol("n", integer=True)
    >>> satisfiable([sp.Ge(n, 3)])
    True
    """
    try:
        return check(list(conds), ctx)[0]
    except NonLinear:
        return None


def decided_by(facts, cond, cache: dict | None = None):
    """True or False where ``facts`` (size conditions) decide ``cond`` for all integers, else None.

    A condition that reads a tensor (``x[i] > 0``) is never decided here.

    >>> H, k = sp.symbols("H k", integer=True, positive=True)
    >>> decided_by([H >= k], H + 1 > k), decided_by([H >= k], H < k), decided_by([], H >= k)
    (True, False, None)
    """
    if cond in (sp.true, True):
        return True
    if cond in (sp.false, False):
        return False
    cache = {} if cache is None else cache
    if cond not in cache:
        cache[cond] = None
        if not cond.has(sp.Indexed):
            try:
                if implies(facts, cond) is True:
                    cache[cond] = True
                elif implies(facts, sp.Not(cond)) is True:
                    cache[cond] = False
            except Exception:  # noqa: BLE001  (no decision procedure for this condition: it stays undecided)
                cache[cond] = None
    return cache[cond]


def settle_piecewise(expr, facts, cache: dict | None = None):
    """``expr`` with each ``Piecewise`` reduced to the branches that ``facts`` leave possible.

    A branch whose condition the facts imply is taken (and ends the list); one whose
    condition they refute is dropped; anything undecided stays. Sound wherever the facts
    hold, which is everywhere a layer is used (its own size assumptions).

    >>> H, k = sp.symbols("H k", integer=True, positive=True)
    >>> settle_piecewise(sp.Piecewise((H - k + 1, H >= k), (k - H + 1, True)), [H >= k])
    H - k + 1
    """
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Piecewise):
        return expr
    cache = {} if cache is None else cache
    return settle_choices(expr, lambda cond: decided_by(facts, cond, cache))


def settle_choices(expr, decide):
    """``expr`` with each ``Piecewise`` reduced by ``decide(condition)`` (True, False or None).

    A branch decided True is taken (and ends the list), one decided False dropped, an
    undecided one kept.

    >>> x = sp.Symbol("x", real=True)
    >>> settle_choices(sp.Piecewise((1, x > 0), (2, x < 0), (0, True)), lambda c: False if c == (x > 0) else None)
    Piecewise((2, x < 0), (0, True))
    """

    def settle(pw):
        kept = []
        for value, cond in pw.args:
            verdict = decide(cond)
            if verdict is True and not kept:
                return value
            if verdict is not False:
                kept.append((value, cond))
            if verdict is True:
                break
        return sp.Piecewise(*kept) if kept and kept != list(pw.args) else pw

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), settle)


def failing_sizes(premises, conclusion, sizes, rlimit: int | None = None):
    """Whether ``premises`` imply ``conclusion`` for all sizes >= 1, with sizes where they do not.

    Returns ``(True, None)`` (implied), ``(False, {name: value})`` (premises hold and the
    conclusion fails there; every size is given) or ``(None, reason)`` (undecided: the
    question is outside Presburger arithmetic or the resource limit ran out). The size
    floor is stated to z3 directly: SymPy folds ``Ge(n, 1)`` to true for a positive symbol.
    ``rlimit`` replaces :data:`RLIMIT` for this question (still deterministic).

    >>> m, n = sp.symbols("m n", integer=True, positive=True)
    >>> failing_sizes([], sp.Eq(m, n), [m, n])[0], failing_sizes([sp.Eq(m, n)], sp.Eq(m, n), [m, n])
    (False, (True, None))
    """
    ctx = Z3Context()
    try:
        facts = [ctx.var(s) >= 1 for s in sizes] + [ctx.cond(p) for p in premises]
        sat, model = check([*facts, z3.Not(ctx.cond(conclusion))], ctx, rlimit=rlimit)
    except NonLinear as exc:
        return None, f"outside Presburger arithmetic ({exc})"
    if sat is None:
        return None, "the solver's resource limit ran out"
    if not sat:
        return True, None
    return False, {str(s): model.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}


# -- conditions on tensor values, over the reals ------------------------------------------


class ValueContext:
    """SymPy value expressions as z3 real terms: linear parts exactly, the rest as opaque reals.

    A read, a sum, a non-linear product or a function application becomes a real variable
    of its own (equal subterms share one; an exponential is known positive). Proving a
    statement for every value of those variables proves it for their actual values, so a
    ``True`` answer is sound; distinct reads that happen to coincide are merely not used.
    Integer symbols (indices, sizes) are z3 integers. A partial value (``Defined``, nan)
    is refused with :class:`NonLinear`: NumPy's nan compares False both ways, which no real
    number does.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> str(ValueContext().cond(sp.Gt(2 * x, 1)))
    '1 < 2*v0'
    """

    def __init__(self):
        self.opaque: dict = {}
        self.ints: dict = {}
        self.facts: list = []

    def _var(self, e):
        if e not in self.opaque:
            v = self.opaque[e] = z3.Real(f"v{len(self.opaque)}")
            if isinstance(e, sp.exp) or e.is_positive:
                self.facts.append(v > 0)
            elif e.is_nonnegative:
                self.facts.append(v >= 0)
            self.facts.extend(self._range_facts(e, v))
        return self.opaque[e]

    def _range_facts(self, e, v) -> list:
        """What is known of a hyperbolic value at a real argument: ``sinh(u)`` and ``tanh(u)`` have
        ``u``'s sign, ``tanh(u)`` (and a product of powers of them) lies in (-1, 1), ``cosh(u) >= 1``."""
        if _strictly_inside_one(e):
            out = [v > -1, v < 1]
        elif isinstance(e, sp.cosh) and e.args[0].is_real:
            out = [v >= 1]
        else:
            out = []
        if isinstance(e, sp.sinh | sp.tanh) and e.args[0].is_real:
            try:
                u = self.real(e.args[0])
            except NonLinear:
                return out
            out += [(v > 0) == (u > 0), (v == 0) == (u == 0)]
        return out

    def _int(self, s):
        if s not in self.ints:
            self.ints[s] = z3.Int(f"i{len(self.ints)}_{s.name}")
            if s.is_positive:
                self.facts.append(self.ints[s] >= 1)
        return self.ints[s]

    def real(self, e):
        """The z3 real term of a SymPy value expression."""
        e = sp.sympify(e)
        if e.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or _has_partial(e):
            raise NonLinear(f"a possibly undefined value: {_text(e)}")
        if e.is_Rational:
            return z3.RealVal(str(e))
        if isinstance(e, sp.Symbol) and e.is_integer:
            return z3.ToReal(self._int(e))
        if isinstance(e, sp.Add):
            return z3.Sum([self.real(a) for a in e.args])
        if isinstance(e, sp.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff.is_Rational and coeff != 1:
                return z3.RealVal(str(coeff)) * self.real(rest)
        if type(e).__name__ == "Iverson":
            return z3.If(self.cond(e.args[0]), z3.RealVal(1), z3.RealVal(0))
        if isinstance(e, sp.Piecewise):
            if e.args[-1][1] != sp.true:
                raise NonLinear(f"a choice of values with no otherwise case: {_text(e)}")
            out = self.real(e.args[-1][0])
            for value, cond in reversed(e.args[:-1]):
                out = z3.If(self.cond(cond), self.real(value), out)
            return out
        if isinstance(e, sp.Max | sp.Min):
            pick = (lambda a, b: z3.If(a >= b, a, b)) if isinstance(e, sp.Max) else (lambda a, b: z3.If(a <= b, a, b))
            return reduce(pick, [self.real(a) for a in e.args])
        if isinstance(e, sp.Abs):
            inner = self.real(e.args[0])
            return z3.If(inner >= 0, inner, -inner)
        if e.is_real is False or e.is_number and not e.is_real:
            raise NonLinear(f"a value that is not real: {_text(e)}")
        return self._var(e)

    def cond(self, c):
        """The z3 formula of a condition on values (and integers)."""
        if c is sp.true or c == sp.true:
            return z3.BoolVal(True)
        if c is sp.false or c == sp.false:
            return z3.BoolVal(False)
        if isinstance(c, sp.And | sp.Or):
            parts = [self.cond(a) for a in c.args]
            return z3.And(*parts) if isinstance(c, sp.And) else z3.Or(*parts)
        if isinstance(c, sp.Not):
            return z3.Not(self.cond(c.args[0]))
        if isinstance(c, sp.ITE):
            return z3.If(*(self.cond(a) for a in c.args))
        if isinstance(c, sp.Rel):
            a, b = self.real(c.lhs), self.real(c.rhs)
            return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[c.rel_op]
        raise NonLinear(f"not a condition on values: {_text(c)}")


def _strictly_inside_one(e) -> bool:
    """Whether ``e`` is ``tanh`` of a real value, or a product of positive powers of such (|e| < 1)."""
    if isinstance(e, sp.tanh):
        return bool(e.args[0].is_real)
    if isinstance(e, sp.Pow):
        return bool(e.exp.is_Integer and e.exp > 0) and _strictly_inside_one(e.base)
    if isinstance(e, sp.Mul):
        return all(_strictly_inside_one(a) for a in e.args)
    return False


def _has_partial(e) -> bool:
    return any(type(a).__name__ == "Defined" for a in sp.preorder_traversal(e))


def value_implies(premises, conclusion):
    """Whether conditions on tensor values imply another for all values (None: undecided).

    Only ``True`` is a proof (see :class:`ValueContext`); ``False`` means that the
    conditions with their opaque parts as free reals do not imply it.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> value_implies([sp.Gt(x, 0)], sp.Ne(x, 0)), value_implies([sp.Ge(x, 0)], sp.Ne(x, 0))
    (True, False)
    """
    ctx = ValueContext()
    try:
        formulas = [ctx.cond(p) for p in premises] + [z3.Not(ctx.cond(conclusion))]
    except (NonLinear, TypeError, z3.Z3Exception):
        return None
    sat, _ = check(ctx.facts + formulas)
    return None if sat is None else not sat


def value_equivalent(a, b):
    """Whether two conditions on tensor values agree for all values (None: undecided).

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> value_equivalent(sp.And(sp.Gt(x, 0), sp.Ne(x, 0)), sp.Gt(x, 0))
    True
    """
    ctx = ValueContext()
    try:
        differ = ctx.cond(a) != ctx.cond(b)
    except (NonLinear, TypeError, z3.Z3Exception):
        return None
    sat, _ = check(ctx.facts + [differ])
    return None if sat is None else not sat
