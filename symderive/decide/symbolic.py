"""Decide a problem: left side == right side, for all sizes (proved | refuted | unknown).

The decision reads a :class:`~symderive.decide.problem.Problem` (for a gradient claim:
the derived gradient on the left, the claim on the right) and never a layer.
The difference ``left - right`` at a free index ``p`` is put into canonical form
(:mod:`symderive.algebra`): monomial terms over guarded integer domains. Terms are
grouped by monomial signature; in each group, the sum of coefficients at every point
(``p`` and the factors' indices) must vanish for every size satisfying the
assumptions: a Presburger question (:mod:`symderive.domains`). ``unsat`` everywhere is a
proof. A satisfiable group is only a candidate: the verdict ``refuted`` needs a concrete
counterexample (:mod:`symderive.counterexample`), confirmed by exact evaluation.
Every proof is cross-checked by exact evaluation at small sizes; a disagreement is an
internal error.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
import z3

from ..core import domains
from ..core.ir import GSum, Iverson, in_range, plain
from ..errors import InternalError
from .algebra import Context, Factor, Term, Unsupported, discharge_domains, flatten, merge_indicators
from .verdict import PROVED, REFUTED, UNKNOWN, Counterexample


@dataclass(frozen=True)
class Outcome:
    """The symbolic prover's answer: "proved", "candidate" (a point where they may differ) or "unknown".

    A candidate's sizes are found when first asked for (``hints`` computes them): the
    concrete search usually finds a counterexample without them, and making a solver's
    model minimal takes several more questions.

    >>> Outcome("candidate", "differs", hints=lambda: ({"n": 1}, {"n": 2})).wider
    {'n': 2}
    """

    status: str
    reason: str = ""
    #: () -> (sizes, wider): a candidate's smallest sizes, and its smallest sizes with every size
    #: at least 2 where ``sizes`` has a 1 (a size 1 hides many differences: a row that sums to 1 is then all 1)
    hints: Callable[[], tuple] | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def _hinted(self) -> tuple:
        return self.hints() if self.hints is not None else (None, None)

    @property
    def sizes(self) -> dict | None:
        return self._hinted[0]

    @property
    def wider(self) -> dict | None:
        return self._hinted[1]


# -- assumptions --------------------------------------------------------------------------


def _positive_tensors(problem) -> set:
    out = set()
    for a in problem.assumptions:
        if a.kind == "sign" and a.rel in (">",) and _is_zero_node(a.rhs):
            name = getattr(a.lhs, "name", None)
            if name:
                out.add(name)
    return out


def _is_zero_node(node) -> bool:
    v = getattr(node, "value", None)
    return v is not None and sp.sympify(v) == 0


@dataclass(frozen=True)
class SumRule:
    """An assumption ``Sum_v B[..v..] == value`` usable as a substitution."""

    key: str
    summed: tuple  # positions of the read index that are summed
    value: sp.Expr
    lo_hi: tuple  # per summed position: (lo, hi) as functions of nothing (full range)


def _sum_rules(problem) -> list[SumRule]:
    """Equality assumptions of the form ``sum(t[, axis]) == constant`` as rules."""
    from ..core.tree import build

    rules = []
    scope = problem.scope
    for a in problem.assumptions:
        if a.kind != "equal":
            continue
        try:
            lhs = build(a.lhs, scope)
            rhs = build(a.rhs, scope)
        except Exception:  # noqa: BLE001 - an unusable assumption is simply not used
            continue
        if rhs.shape != () and rhs.shape != lhs.shape:
            continue
        free = tuple(sp.Symbol(f"_r{k}", integer=True) for k in range(len(lhs.shape)))
        value = rhs.element(()) if rhs.shape == () else rhs.element(free)
        if value.free_symbols - set(problem.sizes):
            continue
        ctx = Context(shapes=dict(problem.tensors), sizes=tuple(problem.sizes))
        try:
            terms = flatten(lhs.element(free), ctx)
        except Unsupported:
            continue
        if len(terms) != 1:
            continue
        t = terms[0]
        if t.coeff != 1 or len(t.factors) != 1 or not t.factors[0].tensor:
            continue
        f = t.factors[0]
        summed = tuple(k for k, ix in enumerate(f.idx) if ix in t.vars)
        if len(summed) != len(t.vars) or any(sp.sympify(f.idx[k]) != t.vars[summed.index(k)] for k in summed):
            continue
        rules.append(SumRule(key=f.key, summed=summed, value=sp.sympify(value), lo_hi=()))
    return rules


def fixed_sums(expr, rules: list[SumRule], shapes: dict):
    """``expr`` with every full-range sum of one read that an equality assumption fixes replaced by
    its value (``Sum_k t[p, k]`` is 1 under ``sum(t, axis=1) == 1``), before domains are discharged:
    ``x / sum(x)`` is then ``x / 1``, defined everywhere.

    The value holds where the read's other indices are inside the tensor (outside, the sum
    of zeros is 0), so it carries that range as a guard.

    >>> from symderive.core.ir import index_symbol, size_symbol
    >>> n, k = size_symbol("n"), index_symbol("k")
    >>> t = sp.IndexedBase("t", real=True)
    >>> fixed_sums(1 / GSum(t[k], (k, 0, n - 1)), [SumRule("t", (0,), sp.S.One, ())], {"t": (n,)})
    1
    """
    if not rules or not expr.has(GSum):
        return expr

    def visit(e):
        if isinstance(e, GSum):
            value = _fixed_value(e, rules, shapes)
            if value is not None:
                return value
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(visit(a) for a in e.args))

    return visit(expr)


def _fixed_value(s, rules: list[SumRule], shapes: dict):
    """The value an assumption gives the sum ``s`` (one read over full ranges), or None."""
    body = s.function
    if not isinstance(body, sp.Indexed):
        return None
    name = str(body.base.label)
    bound = [v for v, _, _ in s.limits]
    for rule in rules:
        shape = shapes.get(name)
        if rule.key != name or shape is None or len(shape) != len(body.indices):
            continue
        summed = [body.indices[k] for k in rule.summed]
        if sorted(map(str, summed)) != sorted(map(str, bound)) or len(set(summed)) != len(summed):
            continue
        limits = {v: (lo, hi) for v, lo, hi in s.limits}
        if any(sp.expand(limits[body.indices[k]][0]) != 0 for k in rule.summed):
            continue
        if any(sp.expand(limits[body.indices[k]][1] - (shape[k] - 1)) != 0 for k in rule.summed):
            continue
        others = [k for k in range(len(shape)) if k not in rule.summed]
        if any(sp.sympify(body.indices[k]).free_symbols & set(bound) for k in others):
            continue
        inside = in_range(tuple(body.indices[k] for k in others), tuple(shape[k] for k in others))
        return rule.value if inside == sp.true else rule.value * Iverson(inside)
    return None


@dataclass(frozen=True)
class Symmetry:
    """An assumption ``a == permuted(a)`` (``a == a.T``): ``a[i] == a[i[order[0]], i[order[1]], ...]``,
    or with ``sign`` -1 ``a == -permuted(a)`` (``a == -a.T``, antisymmetric)."""

    name: str
    order: tuple
    sign: int = 1


def _symmetries(problem) -> list[Symmetry]:
    """Equality assumptions that say a tensor equals a permutation of its own axes (``a == a.T``),
    or its negative (``a == -a.T``)."""
    from ..core.tree import build

    out = []
    for a in problem.assumptions:
        if a.kind != "equal":
            continue
        try:
            lhs, rhs = build(a.lhs, problem.scope), build(a.rhs, problem.scope)
        except Exception:  # noqa: BLE001 - an unusable assumption is simply not used
            continue
        if len(lhs.shape) < 2 or tuple(lhs.shape) != tuple(rhs.shape):
            continue
        free = tuple(sp.Symbol(f"_r{k}", integer=True) for k in range(len(lhs.shape)))
        left, right = lhs.element(free), rhs.element(free)
        sign, right = right.as_coeff_Mul() if isinstance(right, sp.Mul) else (sp.S.One, right)
        if sign not in (1, -1):
            continue
        if not (isinstance(left, sp.Indexed) and isinstance(right, sp.Indexed) and left.base == right.base):
            continue
        if tuple(left.indices) != free or sorted(map(str, right.indices)) != sorted(map(str, free)):
            continue
        name = str(left.base.label)
        order = tuple(free.index(i) for i in right.indices)
        shape = tuple(problem.tensors.get(name, ()))
        # the permuted axes must have the same length (a read outside is then outside both ways)
        if len(shape) == len(order) and all(shape[k] == shape[order[k]] for k in range(len(order))):
            out.append(Symmetry(name, order, int(sign)))
    return out


def symmetrised(expr, symmetries: list[Symmetry]):
    """``expr`` with each read of a symmetric tensor replaced by its mean over the symmetry's permutations
    (the ``k``-th permuted read times ``sign**k``).

    Where the assumption holds the mean is the read itself (``a[p] = sign * a[q]`` at each step);
    and the result depends on the tensor only through that mean, a projection onto the arrays
    the assumption allows, so it is 0 for every array exactly when ``expr`` is 0 for every
    allowed one: ``a[i, k] * x[k]`` meets ``a[k, i] * x[k]`` under ``a == a.T``.

    >>> i, j = sp.symbols("i j", integer=True)
    >>> a = sp.IndexedBase("a", real=True)
    >>> symmetrised(a[i, j] - a[j, i], [Symmetry("a", (1, 0))])
    0
    >>> symmetrised(a[i, j] + a[j, i], [Symmetry("a", (1, 0), -1)]), symmetrised(a[i, i], [Symmetry("a", (1, 0), -1)])
    (0, 0)
    """
    for sym in symmetries:
        reads = [
            r for r in expr.atoms(sp.Indexed) if str(r.base.label) == sym.name and len(r.indices) == len(sym.order)
        ]
        if not reads:
            continue
        mapping = {}
        for r in reads:
            images, idx = [], tuple(r.indices)
            while idx not in images:
                images.append(idx)
                idx = tuple(idx[k] for k in sym.order)
            if sym.sign ** len(images) == -1:
                # back at the read with the sign flipped: a[i, i] == -a[i, i] makes it 0
                mapping[r] = sp.S.Zero
            else:
                mapping[r] = sp.Add(*(sym.sign**k * r.base[i] for k, i in enumerate(images))) / len(images)
        expr = expr.xreplace(mapping)
    return expr


def _apply_sum_rules(terms: list[Term], rules: list[SumRule], shapes: dict) -> list[Term]:
    """Replace an exclusive full-range sum of one read by the assumption's value."""
    out = []
    for t in terms:
        changed = True
        while changed:
            changed = False
            for rule in rules:
                new = _apply_rule(t, rule, shapes)
                if new is not None:
                    t, changed = new, True
                    break
        out.append(t)
    return out


def _apply_rule(t: Term, rule: SumRule, shapes: dict):
    # conjunctions split, so that the summed variables' ranges can be told apart
    t = Term(t.coeff, t.vars, tuple(a for g in t.guard for a in sp.And.make_args(g)), t.factors)
    for fi, f in enumerate(t.factors):
        if f.key != rule.key or not f.tensor or f.exp != 1:
            continue
        vs = []
        for k in rule.summed:
            ix = sp.sympify(f.idx[k])
            if ix not in t.vars:
                break
            vs.append(ix)
        else:
            if len(set(vs)) != len(vs):
                continue
            others = [g for gi, g in enumerate(t.factors) if gi != fi]
            nonsummed = [sp.sympify(f.idx[k]) for k in range(len(f.idx)) if k not in rule.summed]
            if any(v in ix.free_symbols for g in others for ix in map(sp.sympify, g.idx) for v in vs):
                continue
            if any(v in ix.free_symbols for ix in nonsummed for v in vs):
                continue
            # the guards that mention the summed variables must be exactly their full range
            shape = shapes[f.key]
            rng = {v: (0, shape[k] - 1) for v, k in zip(vs, rule.summed, strict=False)}
            mention = [g for g in t.guard if g.free_symbols & set(vs)]
            if not _guards_are_ranges(mention, rng, f, shape):
                continue
            rest_guard = tuple(g for g in t.guard if not (g.free_symbols & set(vs)))
            rest_guard += tuple(
                c for k, ix in enumerate(f.idx) if k not in rule.summed for c in (sp.Ge(ix, 0), sp.Lt(ix, shape[k]))
            )
            return Term(t.coeff * rule.value, tuple(v for v in t.vars if v not in vs), rest_guard, tuple(others))
    return None


def _guards_are_ranges(guards, rng, f, shape) -> bool:
    """Whether the guards on the summed variables say exactly ``0 <= v <= n - 1`` for each.

    Decided for every size >= 1 (a read outside the tensor is zero, so a wider bound
    together with the read's own range is the same range)."""
    wanted = sp.And(*[c for v, (lo, hi) in rng.items() for c in (sp.Ge(v, lo), sp.Le(v, hi))])
    have = sp.And(*guards)
    sizes = [sp.Ge(s, 1) for s in (have.free_symbols | wanted.free_symbols) if s.is_positive]
    return domains.implies(sizes + [have], wanted) is True and domains.implies(sizes + [wanted], have) is True


# -- the decision per signature group -------------------------------------------------------


def _signature(t: Term):
    return tuple(sorted((f.key, f.exp) for f in t.factors))


def _merge_factors(t: Term) -> Term:
    """Equal atoms at equal indices multiplied into one power; positive integer powers of
    reads split into unit factors (so ``x[i]**2`` and ``x[i] * x[j]`` at ``i == j`` meet)."""
    merged: dict = {}
    units = []
    for f in _exponentials_combined(t.factors):
        idx = tuple(sp.expand(i) for i in f.idx)
        if f.exp.is_Integer and f.exp > 0 and (f.tensor or f.exp <= 4):
            units += [Factor(f.key, idx, f.tensor, sp.S.One, f.expr)] * int(f.exp)
            continue
        k = (f.key, idx, f.tensor)
        exp = merged[k].exp + f.exp if k in merged else f.exp
        merged[k] = Factor(f.key, idx, f.tensor, exp, f.expr)
    factors = tuple(units) + tuple(f for f in merged.values() if f.exp != 0)
    return Term(t.coeff, t.vars, t.guard, factors)


def _exponentials_combined(factors) -> list:
    """The factors with powers of one exponential at one index added up (``exp(m) * exp(m)**-1`` is 1).

    Only exponentials: they are never 0, so a power and its inverse cancel at every point;
    the powers of any other atom are merged as before (by sign).
    """
    out: list = []
    at: dict = {}
    for f in factors:
        if f.tensor or not isinstance(f.expr, sp.exp):
            out.append(f)
            continue
        k = (f.key, tuple(sp.expand(i) for i in f.idx))
        if k in at:
            out[at[k]] = Factor(f.key, out[at[k]].idx, False, out[at[k]].exp + f.exp, f.expr)
        else:
            at[k] = len(out)
            out.append(f)
    return [f for f in out if f.exp != 0]


def _orderings(t: Term, limit: int = 24):
    """Every order of the term's factors that keeps their (key, power) sequence sorted.

    A monomial with a repeated factor is symmetric in it: its coefficient at a point is
    the sum over these orders (up to a factor common to every term at that point)."""
    ordered = sorted(t.factors, key=lambda f: (f.key, f.exp))
    groups: dict = defaultdict(list)
    for pos, f in enumerate(ordered):
        groups[(f.key, f.exp)].append(pos)
    count = math.prod(math.factorial(len(g)) for g in groups.values())
    if count > limit:
        raise Unsupported(f"{count} orderings of repeated factors (more than {limit})")
    choices = [list(itertools.permutations(g)) for g in groups.values() if len(g) > 1]
    movable = [g for g in groups.values() if len(g) > 1]
    for combo in itertools.product(*choices):
        order = list(ordered)
        for original, perm in zip(movable, combo, strict=True):
            for dst, src in zip(original, perm, strict=True):
                order[dst] = ordered[src]
        yield order


def _solve_equalities(t: Term) -> Term:
    """Substitute summation variables fixed by unit-coefficient equalities in the guard."""
    vars_ = list(t.vars)
    guard = list(t.guard)
    changed = True
    while changed:
        changed = False
        for gi, g in enumerate(guard):
            if not isinstance(g, sp.Eq):
                continue
            diff = sp.expand(g.lhs - g.rhs)
            for v in vars_:
                c = diff.coeff(v)
                if c in (1, -1) and not sp.expand(diff - c * v).has(v):
                    value = sp.expand(-(diff - c * v) / c)
                    vars_.remove(v)
                    guard = [h.xreplace({v: value}) for k, h in enumerate(guard) if k != gi]
                    factors = tuple(
                        Factor(f.key, tuple(sp.sympify(i).xreplace({v: value}) for i in f.idx), f.tensor, f.exp, f.expr)
                        for f in t.factors
                    )
                    t = Term(t.coeff, tuple(vars_), tuple(guard), factors)
                    changed = True
                    break
            if changed:
                break
    return Term(t.coeff, tuple(vars_), tuple(g for g in guard if g != sp.true), t.factors)


def _coefficient_basis(c: sp.Expr) -> dict:
    """A coefficient over sizes as {size monomial: rational}."""
    out: dict = defaultdict(lambda: sp.S.Zero)
    for term in sp.Add.make_args(sp.expand(c)):
        coeff, mono = term.as_coeff_Mul()
        if not coeff.is_Rational:
            raise Unsupported(f"non-rational coefficient {plain(term)}")
        out[mono] += coeff
    return out


def _term_weight(t: Term, slots: list, ctx: domains.Z3Context, order=None, sizes=(), size_conds=()):
    """How often ``t``'s summation points hit the point ``slots``: a z3 count and a size polynomial."""
    eqs = []
    order = order if order is not None else sorted(t.factors, key=lambda f: (f.key, f.exp))
    for f, slot in zip(order, slots, strict=True):
        for ix, sv in zip(f.idx, slot, strict=True):
            eqs.append(sp.expand(sp.sympify(ix) - sv))
    vars_ = list(t.vars)
    extra = []
    # the solved variables' values, each free of solved variables: the guards are substituted once, at the end
    solved: dict = {}
    progress = True
    while progress and vars_:
        progress = False
        for v in list(vars_):
            for k, e in enumerate(eqs):
                c = e.coeff(v)
                if c == 0 or e.coeff(v).has(v) or not c.is_Integer:
                    continue
                rest = sp.expand(e - c * v)
                if abs(int(c)) == 1:
                    value = sp.expand(-rest / c)
                else:
                    value = sp.floor(-rest / c)
                    extra.append(sp.Eq(sp.Mod(-rest, abs(int(c))), 0) if c > 0 else sp.Eq(sp.Mod(rest, abs(int(c))), 0))
                vars_.remove(v)
                eqs = [sp.expand(x.xreplace({v: value})) for j, x in enumerate(eqs) if j != k]
                solved = {u: w.xreplace({v: value}) for u, w in solved.items()}
                solved[v] = value
                extra = [g.xreplace({v: value}) for g in extra]
                progress = True
                break
            if progress:
                break
    if any(set(vars_) & e.free_symbols for e in eqs):
        # a summation variable the index equations could not be solved for (inside a floor,
        # say): its count is not a plain membership, so nothing is claimed about it
        raise Unsupported("an index equation that cannot be solved for its summation variable")
    fixed, guard = _substituted_guards(t.guard, solved, set(vars_), ctx)
    conds = (
        [ctx.cond(sp.Eq(e, 0)) for e in eqs]
        + fixed
        + [ctx.cond(g) for g in guard + extra if not (set(vars_) & g.free_symbols)]
    )
    member = z3.And(*conds) if conds else z3.BoolVal(True)
    if not vars_:
        return z3.If(member, 1, 0), sp.S.One
    leftover = [a for g in guard + extra if set(vars_) & g.free_symbols for a in sp.And.make_args(g)]
    multiplier = _size_only_count(vars_, leftover, sizes, size_conds)
    if multiplier is not None:
        return z3.If(member, 1, 0), multiplier
    if len(vars_) > 1:
        raise Unsupported("a term sums over several variables its factors do not determine")
    return z3.If(member, _count_one(vars_[0], leftover, ctx), 0), sp.S.One


def _substituted_guards(guards, solved: dict, remaining: set, ctx: domains.Z3Context) -> tuple[list, list]:
    """The guards with the solved variables put in: (z3 formulas of those that no longer read a
    remaining summation variable, SymPy guards that may still read one).

    The first are substituted in z3 (the guard's translation is remembered, the substitution
    is one call); rebuilding each guard in SymPy asked its assumptions again for every term.
    A guard whose values bring in a remaining variable is substituted in SymPy, where terms
    may cancel it.
    """
    fixed, rest = [], []
    for g in guards:
        reads = g.free_symbols
        brings = set().union(*(solved[u].free_symbols for u in reads if u in solved))
        if (reads - solved.keys()) & remaining or brings & remaining:
            rest.append(g.xreplace(solved))
            continue
        try:
            pairs = [(ctx.var(u), ctx.expr(solved[u])) for u in reads if u in solved]
            formula = ctx.cond(g)
            fixed.append(z3.substitute(formula, *pairs) if pairs else formula)
        except domains.NonLinear:  # may be linear once substituted in SymPy
            rest.append(g.xreplace(solved))
    return fixed, rest


def _size_only_count(vars_, atoms, sizes, size_conds):
    """The number of points of a box whose bounds are sizes only (a polynomial), or None.

    ``Sum_{i, j} x[k]`` over ``0 <= i < N`` contributes ``N`` times ``x[k]``: the count
    joins the coefficient, so coefficients over sizes and counts can cancel."""
    sizes = set(sizes)
    count = sp.S.One
    for v in vars_:
        lows, highs = [], []
        for a in atoms:
            if v not in a.free_symbols:
                continue
            if not isinstance(a, sp.Rel) or isinstance(a, sp.Eq | sp.Ne) or not (a.free_symbols - {v}) <= sizes:
                return None
            diff = sp.expand(a.lhs - a.rhs)
            c = diff.coeff(v)
            if c not in (1, -1):
                return None
            bound = sp.expand(-(diff - c * v) / c)
            op = a.rel_op if c > 0 else {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[a.rel_op]
            {">=": lows, ">": lows, "<=": highs, "<": highs}[op].append(bound + {">=": 0, ">": 1, "<=": 0, "<": -1}[op])
        lows, highs = set(lows), set(highs)
        if len(lows) != 1 or len(highs) != 1:
            return None
        lo, hi = lows.pop(), highs.pop()
        if domains.implies(size_conds + [sp.Ge(s, 1) for s in sizes], sp.Ge(hi, lo - 1)) is not True:
            return None
        count *= hi - lo + 1
    return sp.expand(count)


def _count_one(v, guards, ctx: domains.Z3Context):
    """The number of integers ``v`` with ``lo <= v <= hi`` for unit-coefficient bounds."""
    lows, highs = [], []
    for g in guards:
        for a in sp.And.make_args(g):
            if not isinstance(a, sp.Rel) or isinstance(a, sp.Eq | sp.Ne):
                raise Unsupported(f"cannot count the points of {plain(a)}")
            diff = sp.expand(a.lhs - a.rhs)
            c = diff.coeff(v)
            rest = sp.expand(diff - c * v)
            if c not in (1, -1) or rest.has(v):
                raise Unsupported(f"cannot count the points of {plain(a)}")
            # c*v + rest  (rel) 0
            op = a.rel_op
            bound = sp.expand(-rest / c)
            if c < 0:
                op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
            if op == ">=":
                lows.append(ctx.expr(bound))
            elif op == ">":
                lows.append(ctx.expr(bound + 1))
            elif op == "<=":
                highs.append(ctx.expr(bound))
            else:
                highs.append(ctx.expr(bound - 1))
    if not lows or not highs:
        raise Unsupported("an unbounded summation variable")
    lo = lows[0]
    for x in lows[1:]:
        lo = z3.If(x > lo, x, lo)
    hi = highs[0]
    for x in highs[1:]:
        hi = z3.If(x < hi, x, hi)
    return z3.If(hi >= lo, hi - lo + 1, 0)


def decide_zero(terms: list[Term], free: tuple, free_range: sp.Boolean, size_conds: list, sizes: tuple) -> Outcome:
    """Whether a canonical sum of terms is zero at every free index and size.

    >>> decide_zero([], (), sp.true, [], ()).status
    'proved'
    """
    terms = [_merge_factors(_solve_equalities(t)) for t in terms]
    groups: dict = defaultdict(list)
    for t in terms:
        groups[_signature(t)].append(t)
    for group in groups.values():
        if any(f.idx and any(not domains_ok(i) for i in f.idx) for t in group for f in t.factors):
            return Outcome("unknown", "an index expression outside Presburger arithmetic")
        ctx = domains.Z3Context()
        slot_syms = []
        for k, f in enumerate(sorted(group[0].factors, key=lambda f: (f.key, f.exp))):
            slot_syms.append(tuple(sp.Symbol(f"_P{k}_{d}", integer=True) for d in range(len(f.idx))))
        try:
            bases: dict = defaultdict(list)
            for t in group:
                for order in _orderings(t):
                    w, multiplier = _term_weight(t, slot_syms, ctx, order, sizes, list(size_conds))
                    for mono, r in _coefficient_basis(t.coeff * multiplier).items():
                        bases[mono].append((r, w))
            base_conds = _size_floor(ctx, sizes) + [ctx.cond(c) for c in size_conds] + [ctx.cond(free_range)]
            totals = []
            for mono, items in bases.items():
                den = 1
                for r, _ in items:
                    den = sp.ilcm(den, int(sp.Rational(r).q))
                total = z3.Sum([int(r * den) * w for r, w in items]) if items else z3.IntVal(0)
                totals.append((mono / den, total))
            for _, total in totals:
                sat, model = domains.check(base_conds + [total != 0], ctx)
                if sat is None:
                    return Outcome("unknown", "the solver's resource limit ran out")
                if sat:
                    hints = functools.partial(_candidate_sizes, base_conds + [total != 0], ctx, sizes, model, totals)
                    return Outcome("candidate", f"the terms in {_describe_monomial(group[0])} do not cancel", hints)
        except (Unsupported, domains.NonLinear) as exc:
            return Outcome("unknown", str(exc))
    return Outcome("proved")


def _candidate_sizes(formulas, ctx: domains.Z3Context, sizes, model, totals) -> tuple:
    """(smallest sizes, smallest sizes with every size at least 2 or None) of a candidate's
    formulas, where the group's whole coefficient is nonzero."""
    keep = _whole_coefficient_nonzero(totals, ctx, sizes)
    sizes_at = _smallest_sizes(formulas, ctx, sizes, model, keep)
    wider = None
    if 1 in sizes_at.values():
        at_least_two = list(formulas) + [ctx.var(s) >= 2 for s in sizes]
        sat, model = domains.check(at_least_two, ctx)
        wider = _smallest_sizes(at_least_two, ctx, sizes, model, keep) if sat else None
    return sizes_at, wider


def _whole_coefficient_nonzero(totals, ctx: domains.Z3Context, sizes):
    """Whether a model makes the group's whole coefficient nonzero: the sum over size monomials
    of each monomial times its count (``1/N - 1`` is 0 at ``N = 1`` though each part is not)."""

    def nonzero(model) -> bool:
        at = {s: model.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}
        value = sp.S.Zero
        for mono, total in totals:
            value += sp.sympify(mono).subs(at) * model.eval(total, model_completion=True).as_long()
        return value != 0

    return nonzero


def _smallest_sizes(formulas, ctx: domains.Z3Context, sizes, model, keep=None, rounds: int = 64) -> dict:
    """The sizes of a model of ``formulas`` made minimal as LANGUAGE.md's counterexamples are:
    the smallest sum of sizes, then each size in declaration order as small as can be (the
    solver's first model may be any one; a few more questions, each bounded, tighten it).

    ``keep(model)`` must hold of a smaller model for it to be taken (the whole coefficient
    nonzero there); a smaller one where it fails is excluded and the question asked again.
    """
    excluded: list = []
    for _ in range(rounds if keep is not None else 0):
        if keep(model):
            break
        # the solver's first model cancels as a whole: another one, that one excluded
        excluded.append(z3.Or([ctx.var(s) != model.eval(ctx.var(s), model_completion=True) for s in sizes]))
        sat, other = domains.check(list(formulas) + excluded, ctx) if sizes else (False, None)
        if not sat:
            break
        model = other
    values = {s: model.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}
    fixed: list = []
    for step in [None, *sizes]:
        for _ in range(rounds):
            if step is None:
                tighter = z3.Sum([ctx.var(s) for s in sizes]) < sum(values.values()) if sizes else z3.BoolVal(False)
            else:
                tighter = ctx.var(step) < values[step]
            total = z3.Sum([ctx.var(s) for s in sizes]) == sum(values.values()) if step is not None else None
            extra = [tighter, *fixed, *excluded] + ([total] if total is not None else [])
            sat, smaller = domains.check(list(formulas) + extra, ctx)
            if not sat:
                break
            found = {s: smaller.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}
            if keep is not None and not keep(smaller):
                excluded.append(z3.Or([ctx.var(s) != v for s, v in found.items()]) if sizes else z3.BoolVal(False))
                continue
            values = found
        if step is not None:
            fixed.append(ctx.var(step) == values[step])
    return {str(s): v for s, v in values.items()}


def _describe_monomial(t: Term, width: int = 160) -> str:
    """A short readable name of a monomial, for reasons (``g[i] * w[p - i]``)."""
    from ..core.ir import plain

    parts = []
    for f in sorted(t.factors, key=lambda f: (f.key, f.exp)):
        text = plain(f.expr)
        parts.append(text if f.exp == 1 else f"({text})**{f.exp}")
    text = " * ".join(parts) or "1"
    return text if len(text) <= width else text[: width - 3] + "..."


def _size_floor(ctx: domains.Z3Context, sizes) -> list:
    # SymPy folds Ge(n, 1) to True for a positive symbol: state it to z3 directly
    return [ctx.var(s) >= 1 for s in sizes]


def domains_ok(ix) -> bool:
    try:
        domains.Z3Context().expr(sp.sympify(ix))
        return True
    except domains.NonLinear:
        return False


# -- shapes ------------------------------------------------------------------------------


def decide_shape(claim_tensor, wrt_shape, size_conds, sizes) -> Outcome:
    """Whether the claim is defined with the input's shape at every allowed size."""
    if len(claim_tensor.shape) != len(wrt_shape):
        return Outcome("candidate", f"the claim has rank {len(claim_tensor.shape)}, the gradient rank {len(wrt_shape)}")
    ctx = domains.Z3Context()
    try:
        bad = z3.Or(
            z3.Not(ctx.cond(claim_tensor.valid)),
            *[ctx.expr(a) != ctx.expr(b) for a, b in zip(claim_tensor.shape, wrt_shape, strict=False)],
        )
        sat, model = domains.check(_size_floor(ctx, sizes) + [ctx.cond(c) for c in size_conds] + [bad], ctx)
    except domains.NonLinear as exc:
        return Outcome("unknown", f"shape question outside Presburger arithmetic: {exc}")
    if sat is None:
        return Outcome("unknown", "the solver's resource limit ran out on the shape question")
    if sat:
        at = {str(s): model.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}
        return Outcome("candidate", "the claim's shape differs at some sizes", lambda: (at, None))
    return Outcome("proved")


# -- the decision ----------------------------------------------------------------------------


def scalar_identity(expr) -> bool:
    """Whether ``expr`` is zero as a function of its reads and sums held as free symbols.

    Sound: an identity in independent symbols stays one when reads coincide. It settles
    elementwise algebra (``sigmoid(x) * (1 - sigmoid(x))`` against ``exp(-x) / (1 + exp(-x))**2``).

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> scalar_identity(sp.exp(-x) / (1 + sp.exp(-x)) ** 2 - (1 / (1 + sp.exp(-x))) * (1 - 1 / (1 + sp.exp(-x))))
    True
    """
    from sympy.concrete.expr_with_limits import ExprWithLimits

    from ..core.ir import Iverson, held_form

    held, _ = held_form(
        expr, lambda e: isinstance(e, sp.Indexed | ExprWithLimits | Iverson | sp.Piecewise | sp.KroneckerDelta)
    )
    if held == 0:
        return True
    if sp.count_ops(held) > 400:
        return False
    try:
        rational = sp.cancel(sp.together(exponentials_as_powers(held)))
        if rational == 0:
            return True
        if not rational.has(sp.Function):
            # a rational function of independent symbols that is not 0: no simplification makes it 0
            return False
        reduced = sp.cancel(sp.together(held))
        # simplify(0) is 0; not calling it then spares a cold start its import of sympy.physics (0.3 s)
        return reduced == 0 or sp.simplify(reduced) == 0
    except Exception:  # noqa: BLE001 - an identity SymPy cannot show is simply not used
        return False


#: hyperbolic functions, written through exponentials for the algebra (tanh = (e^x - e^-x) / (e^x + e^-x))
HYPERBOLIC = (sp.tanh, sp.sinh, sp.cosh, sp.sech, sp.csch, sp.coth)


def exponentials_as_powers(expr):
    """``expr`` with hyperbolic functions through exponentials and each exponential as an integer
    power of one positive symbol per exponent direction: a rational function where ``exp`` was.

    ``exp(c u)`` for the rational multiples ``c`` of one real ``u`` becomes ``Y**(c/d)`` with
    ``Y = exp(d u)`` and ``d`` the largest rational dividing every such ``c``; ``exp(a + b)``
    is ``exp(a) * exp(b)``. Exact for real exponents, so a rational function that cancels to 0
    is an identity (``tanh(x/2)`` meets ``exp(-x)``).

    >>> x = sp.Symbol("x", real=True)
    >>> sp.cancel(sp.together(exponentials_as_powers(sp.tanh(x) - (1 - sp.exp(-2 * x)) / (1 + sp.exp(-2 * x)))))
    0
    """
    if expr.has(sp.I):
        return expr
    expr = expr.replace(lambda e: isinstance(e, HYPERBOLIC), lambda e: e.rewrite(sp.exp))
    exps = expr.atoms(sp.exp)
    if not exps:
        return expr
    parts = {e: [t.as_coeff_Mul() for t in sp.Add.make_args(sp.expand(e.args[0]))] for e in exps}
    steps: dict = {}
    for terms in parts.values():
        for c, u in terms:
            if not u.is_Number:
                steps[u] = _rational_gcd(steps.get(u, c), c)
    # exp of a real exponent is positive; of any other it is still never 0 (exp(k d u) = exp(d u)**k holds)
    powers = {u: sp.Dummy("E", positive=True) if u.is_real else sp.Dummy("E", nonzero=True) for u in steps}

    def product(terms):
        return sp.Mul(*(sp.exp(c * u) if u.is_Number else powers[u] ** (c / steps[u]) for c, u in terms))

    return expr.xreplace({e: product(terms) for e, terms in parts.items()})


def _rational_gcd(a, b):
    """The largest positive rational of which both rationals are integer multiples (the sign of neither)."""
    a, b = sp.Rational(a), sp.Rational(b)
    return sp.Rational(sp.igcd(a.p, b.p), sp.ilcm(a.q, b.q))


def undischarged_domain(claimed):
    """A domain condition of the claim that nothing has shown to hold, or None.

    A partial value (``log(x)``, ``1 / x``) whose condition neither the assumptions nor
    the branch it sits in imply may be nan at some point where the gradient is a number;
    the canonical form would treat it as an ordinary value and cancel ``d - d`` or
    ``[x > 0] * [x < 0] * d`` to 0, which NumPy computes as nan. So no proof is built on it.

    >>> from ..core.ir import index_symbol, log_value, read
    >>> x = read("x", (index_symbol("i"),))
    >>> undischarged_domain(log_value(x) * (1 + x) - log_value(x) - x * log_value(x))
    x[i] > 0
    """
    from ..core.ir import domain_condition

    cond = domain_condition(claimed)
    return None if cond == sp.true else cond


def symbolic_outcome(problem) -> Outcome:
    """The all-sizes decision of a problem (no concrete search here)."""
    from ..calculus.derive import simplify_guards

    size_conds = problem.size_assumptions()
    shape = decide_shape(problem.right, problem.shape, size_conds, problem.sizes)
    if shape.status != "proved":
        return shape
    left = problem.left_element
    if left is None:
        return Outcome("unknown", problem.left_reason)
    p = problem.free
    free_range = problem.free_range
    ctx = Context(
        shapes=dict(problem.tensors),
        sizes=tuple(problem.sizes),
        positive=_positive_tensors(problem),
        implies=domains.implies,
        facts=tuple(size_conds) + ((free_range,) if p and not problem.unbounded else ()),
        value_implies=domains.value_implies,
    )
    rules, symmetries, shapes = _sum_rules(problem), _symmetries(problem), dict(problem.tensors)

    def assumed(expr):
        # the equality assumptions put in: sums they fix by their values, symmetric tensors symmetrised
        return symmetrised(fixed_sums(expr, rules, shapes), symmetries)

    claimed = discharge_domains(assumed(problem.right_at_free), ctx)
    partial = undischarged_domain(claimed)
    if partial is not None:
        return Outcome(
            "unknown", f"{problem.right_name} is undefined (nan in NumPy) unless {plain(partial)}, which is not shown"
        )
    diff_expr = discharge_domains(assumed(left), ctx) - claimed
    if scalar_identity(simplify_guards(diff_expr, list(ctx.facts))):
        return Outcome("proved")
    try:
        terms = merge_indicators(flatten(diff_expr, ctx), ctx)
    except Unsupported as exc:
        return Outcome("unknown", str(exc))
    terms = _apply_sum_rules(terms, rules, shapes)
    return decide_zero(terms, p, free_range, size_conds, problem.sizes)


@dataclass(frozen=True)
class Decision:
    """A problem's answer as plain data: ``proved``, ``refuted`` (with the counterexample) or ``unknown``."""

    status: str
    counterexample: Counterexample | None = None
    reason: str = ""


PROOF_DETAIL = (
    "Index domains decided by z3, scalar algebra in SymPy; cross-checked by exact evaluation at the smallest sizes."
)


def decide(problem, timeout: float = 60.0, cross_check: bool = True) -> Decision:
    """Whether a :class:`~symderive.decide.problem.Problem`'s two sides are equal everywhere.

    Proved only by the all-sizes decision (then, with ``cross_check``, compared once more
    at the smallest sizes); otherwise the concrete search looks for a counterexample
    within ``timeout`` seconds (at most its own budget).

    >>> from symderive.decide.pose import gradient_problem
    >>> decide(gradient_problem("linear", "x", "w.T @ g")).status
    'proved'
    """
    from . import search as cx

    outcome = symbolic_outcome(problem)
    if outcome.status == "proved":
        if cross_check:
            # the second, independent check of every proof: SymPy's differentiation of the finite
            # expression at the first few allowed sizes
            bad = cx.disagreement_sizes(problem)
            if bad is not None:
                raise InternalError(
                    f"the all-sizes proof of {problem.name} disagrees with exact evaluation at sizes {bad}"
                )
        return Decision(PROVED)
    # the concrete search spends at most its own budget, and never more than the timeout
    deadline = time.monotonic() + min(float(timeout), cx.SEARCH_SECONDS)
    summary = cx.SearchSummary()
    found = cx.find_counterexample(problem, deadline=deadline, summary=summary)
    if found is None:  # the solver's sizes are made minimal only when they are needed
        for hint in (outcome.sizes, outcome.wider):
            if found is None and hint:
                found = cx.find_counterexample(problem, at_sizes=hint)
    if found is not None:
        return Decision(REFUTED, counterexample=found)
    searched = f"{'the search timed out at' if summary.timed_out else 'searched'} {summary.describe()}"
    reason = (
        f"{outcome.reason}; no concrete counterexample ({searched})"
        if outcome.status == "unknown"
        else f"{outcome.reason}, but no concrete counterexample was found ({searched})"
    )
    return Decision(UNKNOWN, reason=reason)
