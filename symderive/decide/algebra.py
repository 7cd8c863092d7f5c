"""Scalar canonical forms: index expressions as sums of monomial terms over guarded domains.

A scalar index expression (reads, guarded sums, Iverson guards, Kronecker deltas and
scalar functions) becomes a list of :class:`Term` s: a coefficient over the sizes, the
summation variables, an integer guard, and a product of *factors*. A factor is either a
tensor read (zero outside its shape: its range joins the guard) or an *atom*: a
non-polynomial subexpression (``exp(s[k])``, ``1/sum(exp(s))``) treated as an
uninterpreted function of its outer index arguments. Treating atoms as independent is
sound for proofs (a formal identity is a true identity); a difference that does not
cancel is only a candidate, to be confirmed concretely.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits

from ..core.ir import Defined, GSum, Iverson, in_range, plain


class Unsupported(ValueError):
    """An expression the canonical form cannot represent (the verdict is unknown)."""


@dataclass(frozen=True)
class Factor:
    """One factor of a monomial: ``key`` names a tensor (``tensor=True``) or an atom pattern.

    >>> Factor("x", (sp.Integer(0),), True).exp
    1
    """

    key: str
    idx: tuple
    tensor: bool
    exp: sp.Rational = sp.S.One
    expr: sp.Expr = field(default=sp.S.One, compare=False)


@dataclass(frozen=True)
class Term:
    """``coeff * Sum_{vars} [guard] * prod(factors)``.

    >>> Term(sp.Integer(2)).coeff
    2
    """

    coeff: sp.Expr
    vars: tuple = ()
    guard: tuple = ()
    factors: tuple = ()


@dataclass
class Context:
    """What flattening needs: tensor shapes, size symbols, positivity facts, domain oracle."""

    shapes: dict
    sizes: tuple
    positive: set = field(default_factory=set)
    #: callable(cond_list, cond) -> True/False/None: do the conditions imply cond?
    implies: object = None
    #: conditions known to hold (size assumptions, free index ranges)
    facts: tuple = ()
    #: callable(cond_list, cond) -> True/False/None for conditions on tensor values (reals)
    value_implies: object = None
    #: conditions on tensor values known to hold here (the branch of a ``where`` being taken)
    value_facts: tuple = ()
    #: value conditions already put into canonical form (the solver is asked once per condition)
    canonical: dict = field(default_factory=dict)


def is_integer_expr(e, ctx: Context) -> bool:
    """Whether ``e`` involves only integers (index variables, sizes, numbers)."""
    e = sp.sympify(e)
    if e.has(sp.Indexed):
        return False
    return all(s.is_integer for s in e.free_symbols)


def _is_size_coefficient(expr, ctx: Context) -> bool:
    """A rational function of the sizes (guards on sizes are guards, not coefficients)."""
    if expr.free_symbols - set(ctx.sizes) or not is_integer_expr(expr, ctx):
        return False
    return not expr.has(Iverson, sp.KroneckerDelta, sp.Piecewise, sp.floor, sp.ceiling, sp.Mod, sp.Max, sp.Min)


def is_integer_cond(c, ctx: Context) -> bool:
    """Whether a condition involves only integers."""
    if c in (sp.true, sp.false):
        return True
    return not c.has(sp.Indexed) and all(s.is_integer for s in c.free_symbols)


def _mul_terms(a: list[Term], b: list[Term]) -> list[Term]:
    out = []
    for s in a:
        for t in b:
            clash = set(s.vars) & set(t.vars)
            if clash:
                ren = {v: sp.Dummy(v.name, integer=True) for v in clash}
                t = Term(
                    t.coeff,
                    tuple(ren.get(v, v) for v in t.vars),
                    tuple(g.xreplace(ren) for g in t.guard),
                    tuple(
                        replace(f, idx=tuple(sp.sympify(i).xreplace(ren) for i in f.idx), expr=f.expr.xreplace(ren))
                        for f in t.factors
                    ),
                )
            out.append(Term(s.coeff * t.coeff, s.vars + t.vars, s.guard + t.guard, s.factors + t.factors))
    return out


def flatten(expr: sp.Expr, ctx: Context, guards: tuple = ()) -> list[Term]:
    """The canonical list of terms of a scalar index expression.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> i = sp.Dummy("i", integer=True)
    >>> x = sp.IndexedBase("x", real=True)
    >>> len(flatten(GSum(2 * x[i], (i, 0, n - 1)), Context({"x": (n,)}, (n,))))
    1
    """
    expr = sp.sympify(expr)
    if expr.is_Number or _is_size_coefficient(expr, ctx):
        return [Term(expr)] if expr != 0 else []
    if isinstance(expr, sp.Indexed):
        name = str(expr.base.label)
        if name not in ctx.shapes:
            raise Unsupported(f"read of unknown tensor {name}")
        guard = in_range(expr.indices, ctx.shapes[name])
        return [Term(sp.S.One, (), (guard,), (Factor(name, tuple(expr.indices), True, expr=expr),))]
    if isinstance(expr, sp.Symbol):
        if expr.is_integer:
            raise Unsupported(f"index variable {plain(expr)} used as a value")
        return [Term(sp.S.One, (), (), (Factor(expr.name, (), True, expr=expr),))]
    if isinstance(expr, sp.Add):
        return [t for a in expr.args for t in flatten(a, ctx, guards)]
    if isinstance(expr, sp.Mul):
        terms = [Term(sp.S.One)]
        # integer guards first, so that factors inside non-linear atoms see them
        args = sorted(expr.args, key=lambda a: 0 if isinstance(a, Iverson | sp.KroneckerDelta) else 1)
        local = list(guards)
        for a in args:
            if isinstance(a, Iverson) and is_integer_cond(a.args[0], ctx):
                local.append(a.args[0])
            terms = _mul_terms(terms, flatten(a, ctx, tuple(local)))
            if not terms:
                return []
        return terms
    if isinstance(expr, GSum):
        local = list(guards)
        lims = []
        for v, lo, hi in expr.limits:
            lims.append((v, lo, hi))
            local += [sp.Ge(v, lo), sp.Le(v, hi)]
        body = flatten(expr.function, ctx, tuple(local))
        extra_vars = tuple(v for v, _, _ in lims)
        extra_guard = tuple(c for v, lo, hi in lims for c in (sp.Ge(v, lo), sp.Le(v, hi)))
        return [Term(t.coeff, extra_vars + t.vars, extra_guard + t.guard, t.factors) for t in body]
    if isinstance(expr, Defined):
        value, cond = expr.args
        if condition_holds(cond, ctx, guards):
            return flatten(value, ctx, guards)
        return [_atom(expr, ctx, guards)]
    if isinstance(expr, Iverson):
        c = expr.args[0]
        if is_integer_cond(c, ctx):
            return [Term(sp.S.One, (), (c,), ())]
        c = simplest_condition(canonical_condition(c), ctx)
        if c in (sp.true, sp.false):
            return [Term(sp.S.One)] if c == sp.true else []
        # (a NaN compares false both ways: only where no partial operation is involved)
        if isinstance(c, sp.Rel) and not c.has(Defined):
            return _comparison_terms(c, ctx, guards)
        if isinstance(c, sp.And) and not c.has(Defined):
            # [a and b] = [a] * [b]: each comparison in its atoms, products reduced by merge_indicators
            return flatten(sp.Mul(*(Iverson(a) for a in c.args)), ctx, guards)
        if isinstance(c, sp.Or):
            # [a or b] = [a] + [b and not a]: each part an atom of its own
            first, rest = c.args[0], sp.Or(*c.args[1:])
            return flatten(Iverson(first) + Iverson(sp.And(rest, sp.Not(first))), ctx, guards)
        return [_atom(Iverson(c), ctx, guards)]
    if isinstance(expr, sp.KroneckerDelta):
        return [Term(sp.S.One, (), (sp.Eq(expr.args[0], expr.args[1]),), ())]
    if isinstance(expr, sp.Piecewise):
        if all(is_integer_cond(c, ctx) for _, c in expr.args):
            out, previous = [], []
            for val, cond in expr.args:
                g = sp.And(cond, *[sp.Not(p) for p in previous])
                previous.append(cond)
                out += [Term(t.coeff, t.vars, (g,) + t.guard, t.factors) for t in flatten(val, ctx, guards + (g,))]
            return out
        if not expr.has(Defined):
            # branches on values: sum of [branch condition] * value, as the deriver writes them
            parts, previous = [], []
            for val, cond in expr.args:
                parts.append(Iverson(sp.And(cond, *[sp.Not(p) for p in previous])) * val)
                previous.append(cond)
            return flatten(sp.Add(*parts), ctx, guards)
        return [_atom(expr, ctx, guards)]
    if isinstance(expr, sp.Pow):
        base, e = expr.args
        if e.is_Integer and 0 < int(e) <= 6 and not _is_atomic_base(base, ctx):
            terms = [Term(sp.S.One)]
            for _ in range(int(e)):
                terms = _mul_terms(terms, flatten(base, ctx, guards))
            return terms
        if e.is_Rational and is_integer_expr(base, ctx) and not base.free_symbols - set(ctx.sizes):
            return [Term(expr)]
        if e.is_Rational:
            base = normalise_sums(base)
            if isinstance(base, sp.Mul) and (e.is_Integer or all(is_positive(f, ctx, guards) for f in base.args)):
                # (a b)^e = a^e b^e: exact for integer e, and for positive factors
                return flatten(sp.Mul(*(sp.Pow(f, e) for f in base.args)), ctx, guards)
            inner = _atom(base, ctx, guards)
            if not inner.factors:
                return [Term(inner.coeff**e)]
            f = inner.factors[0]
            return [Term(inner.coeff, inner.vars, inner.guard, (replace(f, exp=f.exp * e),))]
        return [_atom(expr, ctx, guards)]
    if isinstance(expr, sp.log):
        # a sum's constant factors outside first: log(sum(exp(x - m))) is -m + log(sum(exp(x)))
        split = _split_log(normalise_sums(expr.args[0]), ctx, guards)
        if split is not None:
            return flatten(split, ctx, guards)
        return [_atom(expr, ctx, guards)]
    if isinstance(expr, sp.exp):
        arg = expr.args[0]
        if isinstance(arg, sp.Add):
            return flatten(sp.Mul(*(sp.exp(a) for a in arg.args)), ctx, guards)
        if isinstance(arg, sp.log):
            return flatten(arg.args[0], ctx, guards)
        coeff, rest = arg.as_coeff_Mul()
        if coeff.is_Rational and coeff != 1 and not rest.is_Number:
            # exp(c u) = exp(u)**c for real u: exp(-m) meets exp(m) as its inverse (a stable softmax's
            # shift by the maximum cancels), exp(2 u) meets exp(u) * exp(u)
            inner = _atom(sp.exp(rest), ctx, guards)
            if not inner.factors:
                return [Term(inner.coeff**coeff)]
            f = inner.factors[0]
            return [Term(inner.coeff, inner.vars, inner.guard, (replace(f, exp=f.exp * coeff),))]
        return [_atom(expr, ctx, guards)]
    if isinstance(expr, sp.Function) or isinstance(expr, sp.Expr):
        if is_integer_expr(expr, ctx):
            raise Unsupported(f"index expression used as a value: {plain(expr)}")
        return [_atom(expr, ctx, guards)]
    raise Unsupported(f"cannot put {plain(expr)} into canonical form")


def merge_indicators(terms: list[Term], ctx: Context) -> list[Term]:
    """Terms whose products of 0/1 factors on values are reduced to a canonical product.

    ``[a] * [b]`` is ``[a and b]``: where that is never true the term goes, where it is one
    comparison it becomes that comparison's atoms (``[x > 0] * [x >= 0]`` is ``[x > 0]``,
    ``[x + 1 > 0] * [x - 1 > 0]`` is ``[x - 1 > 0]``), and otherwise the factors that the
    others imply are dropped. So ``[-1 <= x <= 1]`` written in any of its ways meets itself.

    >>> from symderive.core.domains import value_implies
    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> ctx = Context({"x": (3,)}, (), value_implies=value_implies)
    >>> [t.factors[0].expr for t in merge_indicators(flatten(Iverson(x > 0) * Iverson(x >= 0), ctx), ctx)]
    [Iverson(x[p] > 0)]
    """
    out = []
    for t in terms:
        picked = sorted((f for f in t.factors if _is_indicator(f)), key=lambda f: sp.default_sort_key(f.expr))
        if len(picked) < 2:
            out.append(t)
            continue
        rest = Term(t.coeff, t.vars, t.guard, tuple(f for f in t.factors if not _is_indicator(f)))
        both = simplest_condition(canonical_condition(sp.And(*(f.expr.args[0] for f in picked))), ctx)
        if both == sp.false:
            continue
        if both == sp.true or isinstance(both, sp.Rel):
            out += _mul_terms([rest], flatten(Iverson(both), ctx, t.guard))
            continue
        kept = _irredundant(picked, ctx)
        out.append(Term(t.coeff, t.vars, t.guard, rest.factors + tuple(kept)))
    return out


def _irredundant(factors: list, ctx: Context) -> list:
    """The 0/1 factors without those that the others imply (``[x > y] [y > 0] [x > 0]`` drops ``[x > 0]``)."""
    kept = list(factors)
    if ctx.value_implies is None:
        return kept
    for f in factors:
        others = [g.expr.args[0] for g in kept if g is not f]
        if others and ctx.value_implies(others, f.expr.args[0]) is True:
            kept = [g for g in kept if g is not f]
    return kept


def _is_indicator(f: Factor) -> bool:
    return not f.tensor and f.exp == 1 and isinstance(f.expr, Iverson) and not f.expr.has(Defined)


#: a comparison of e with 0 in the two atoms [e > 0] and [e == 0]: (constant, [e > 0], [e == 0])
_BASIS = {
    sp.StrictGreaterThan: (0, 1, 0),
    sp.GreaterThan: (0, 1, 1),
    sp.Equality: (0, 0, 1),
    sp.Unequality: (1, 0, -1),
    sp.LessThan: (1, -1, 0),
    sp.StrictLessThan: (1, -1, -1),
}
_REVERSED = {
    sp.StrictGreaterThan: sp.StrictLessThan,
    sp.GreaterThan: sp.LessThan,
    sp.StrictLessThan: sp.StrictGreaterThan,
    sp.LessThan: sp.GreaterThan,
    sp.Equality: sp.Equality,
    sp.Unequality: sp.Unequality,
}


def _comparison_terms(c, ctx: Context, guards) -> list[Term]:
    """``[a rel b]`` in two atoms of ``e = a - b`` (content and sign normalised): ``[e > 0]``, ``[e == 0]``.

    So every comparison of the same two values meets every other: ``[x >= 0]`` is
    ``[x > 0] + [x == 0]``, ``[x < 0]`` is ``1 - [x > 0] - [x == 0]``, ``[x != 0]`` is
    ``1 - [x == 0]`` (for real values; a partial one, nan, is never put here).
    """
    e = sp.expand(c.lhs - c.rhs, deep=False).as_content_primitive()[1]
    rel = type(c)
    if e.could_extract_minus_sign():
        e, rel = -e, _REVERSED[rel]
    constant, positive, zero = _BASIS[rel]
    out = [Term(sp.Integer(constant))] if constant else []
    for weight, atom in ((positive, sp.Gt(e, 0)), (zero, sp.Eq(e, 0))):
        if weight:
            t = _atom(Iverson(atom), ctx, guards)
            out.append(Term(weight * t.coeff, t.vars, t.guard, t.factors))
    return out


def normalise_sums(expr):
    """Sums in a canonical shape: ranges from 0, constant factors outside, ``exp(a + b)`` split.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> j = sp.Symbol("j", integer=True)
    >>> s = sp.IndexedBase("s", real=True)
    >>> normalise_sums(GSum(sp.exp(s[j - 1] + 1), (j, 1, n)))
    E*Sum(exp(s[j]), (j, 0, n - 1))
    """
    if not isinstance(expr, sp.Basic) or not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, GSum):
        body = normalise_sums(expr.function)
        limits = []
        for v, lo, hi in expr.limits:
            if lo != 0 and not (lo.free_symbols & {w for w, _, _ in expr.limits}):
                body = body.xreplace({v: v + lo}) if not _binds(body, v) else body
                hi, lo = sp.expand(hi - lo), sp.S.Zero
            limits.append((v, lo, hi))
        bound = {v for v, _, _ in limits}
        inside, outside = [], []
        for f in sp.Mul.make_args(body):
            (inside if f.free_symbols & bound or isinstance(f, Iverson) else outside).append(f)
        return sp.Mul(*outside) * GSum(sp.Mul(*inside), *limits)
    if isinstance(expr, sp.exp) and isinstance(expr.args[0], sp.Add):
        return sp.Mul(*(sp.exp(normalise_sums(a)) for a in expr.args[0].args))
    return expr.func(*(normalise_sums(a) for a in expr.args))


def _binds(e, v) -> bool:
    return any(isinstance(a, GSum) and v in {w for w, _, _ in a.limits} for a in sp.preorder_traversal(e))


def canonical_condition(c):
    """A value condition with Piecewise sides lifted out and relations in canonical form.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("i", integer=True)]
    >>> canonical_condition(sp.Piecewise((x, x > 0), (0, True)) > 0)
    x[i] > 0
    """

    def lift(r):
        if not isinstance(r, sp.Rel):
            return visit(r) if isinstance(r, sp.And | sp.Or | sp.Not) else r
        truth = _truth_test(r)
        if truth is not None:
            return visit(truth)
        if r.has(sp.Abs) and not r.has(Defined):
            # |e| as its two branches, so that |x| <= 1 meets -1 <= x <= 1
            return lift(r.replace(sp.Abs, lambda e: sp.Piecewise((e, e >= 0), (-e, True))))
        for side in (r.lhs, r.rhs):
            pw = next((a for a in sp.preorder_traversal(side) if isinstance(a, sp.Piecewise)), None)
            if pw is not None:
                options, previous = [], []
                for value, cond in pw.args:
                    options.append(sp.And(cond, *[sp.Not(q) for q in previous], lift(r.xreplace({pw: value}))))
                    previous.append(cond)
                return sp.Or(*options)
        return r.canonical if isinstance(r, sp.Rel) else r

    def visit(e):
        if isinstance(e, sp.Rel):
            return lift(e)
        if isinstance(e, sp.ITE):
            c, a, b = e.args
            return visit(sp.Or(sp.And(c, a), sp.And(sp.Not(c), b)))
        if isinstance(e, sp.And | sp.Or | sp.Not):
            return e.func(*(visit(a) for a in e.args))
        return e

    out = visit(c)
    try:
        out = sp.simplify_logic(out, form="dnf", force=False) if len(out.atoms(sp.Rel)) <= 6 else out
    except Exception:  # noqa: BLE001 - simplification is only cosmetic here
        pass
    # simplify_logic rebuilds a GSum as SymPy's Sum (Karr's reversed ranges, and a condition that
    # no longer meets its own spelling elsewhere): every sum in our expressions is a GSum
    return out.replace(lambda e: type(e) is sp.Sum, lambda e: GSum(*e.args))


def _truth_test(r):
    """A comparison of a 0/1 value ``[c]`` with 0 or 1 as ``c``, ``not c``, true or false, else None.

    ``where(x > 0, g, 0)`` branches on ``[x > 0] != 0``, which is ``x > 0`` itself.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("i", integer=True)]
    >>> _truth_test(sp.Ne(Iverson(x > 0), 0)), _truth_test(sp.Eq(Iverson(x > 0), 1))
    (x[i] > 0, x[i] > 0)
    """
    if isinstance(r.rhs, Iverson) and not isinstance(r.lhs, Iverson):
        r = r.reversed
    if not isinstance(r.lhs, Iverson) or r.rhs not in (sp.S.Zero, sp.S.One):
        return None
    c, one = r.lhs.args[0], r.rhs == 1
    # [c] is 0 or 1, so each comparison holds where c does, where it does not, always or never
    answers = {
        sp.StrictGreaterThan: sp.false if one else c,
        sp.GreaterThan: c if one else sp.true,
        sp.StrictLessThan: sp.Not(c) if one else sp.false,
        sp.LessThan: sp.true if one else sp.Not(c),
        sp.Equality: c if one else sp.Not(c),
        sp.Unequality: sp.Not(c) if one else c,
    }
    return answers.get(type(r))


#: value conditions with more comparisons than this keep their spelling (the solver is asked
#: a few times per comparison)
SIMPLEST_MAX_RELATIONS = 6


def simplest_condition(c, ctx: Context):
    """A condition on tensor values in one canonical spelling among its equivalents.

    Equal conditions must become equal atoms: on ``relu``, ``y != 0`` lifts to
    ``x > 0 & x != 0``, which is the gradient's ``x > 0``. Decided by the solver over the
    reals (``ctx.value_implies``), never by SymPy's relational simplification: a
    condition that always holds is ``true``, one that never does ``false``, one
    equivalent to one of its own comparisons (or that comparison's negation) is that
    comparison; otherwise redundant comparisons are dropped. Comparisons are written
    ``e rel 0`` with ``e``'s content divided out (``2*x > 2`` is ``x - 1 > 0``). A partial
    condition (nan compares False both ways) is left as it is.

    >>> from symderive.core.domains import value_implies
    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> simplest_condition(sp.And(x > 0, sp.Ne(x, 0)), Context({}, (), value_implies=value_implies))
    x[p] > 0
    """
    if ctx.value_implies is None or c in (sp.true, sp.false) or not isinstance(c, sp.Basic) or c.has(Defined):
        return c
    if c not in ctx.canonical:
        relations = sorted(c.atoms(sp.Rel), key=sp.default_sort_key)
        ctx.canonical[c] = c if len(relations) > SIMPLEST_MAX_RELATIONS else _simplest(c, relations, ctx)
    return ctx.canonical[c]


def _simplest(c, relations: list, ctx: Context):
    def implies(a, b) -> bool:
        return ctx.value_implies([a], b) is True

    def equivalent(a, b) -> bool:
        return implies(a, b) and implies(b, a)

    if implies(sp.true, c):
        return sp.true
    if implies(c, sp.false):
        return sp.false
    for r in _single_comparisons(relations):
        if equivalent(c, r):
            return r
    return _without_redundant(c, equivalent)


def _single_comparisons(relations: list) -> list:
    """Every comparison of the compared expressions with 0 (``x >= 0 & x <= 0`` is ``x == 0``)."""
    exprs = []
    for r in relations:
        e = sp.expand(r.lhs - r.rhs, deep=False).as_content_primitive()[1]
        if e not in exprs and -e not in exprs:
            exprs.append(e)
    rels = (sp.Gt, sp.Ge, sp.Eq, sp.Le, sp.Lt, sp.Ne)
    return [normal_relation(rel(e, 0)) for e in exprs for rel in rels]


def _without_redundant(c, equivalent):
    """``c`` without the conjuncts and disjuncts the others make redundant, comparisons normalised."""
    if isinstance(c, sp.Rel):
        return normal_relation(c)
    if not isinstance(c, sp.And | sp.Or):
        return c
    kept = [_without_redundant(a, equivalent) for a in sorted(c.args, key=sp.default_sort_key)]
    for a in list(kept):
        rest = [b for b in kept if b is not a]
        if rest and equivalent(c.func(*rest), c.func(*kept)):
            kept = rest
    return c.func(*kept)


def normal_relation(r):
    """A comparison on values as ``e rel 0``, ``e`` without its positive content, SymPy-canonical.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> normal_relation(sp.Lt(2, 2 * x)), normal_relation(sp.Eq(1 - x, 0))
    (x[p] - 1 > 0, Eq(x[p] - 1, 0))
    """
    if not isinstance(r, sp.Rel) or is_integer_cond(r, None):
        return r
    diff = sp.expand(r.lhs - r.rhs, deep=False)
    _, primitive = diff.as_content_primitive()
    out = r.func(primitive, 0)
    return out.canonical if isinstance(out, sp.Rel) else out


def _is_atomic_base(base, ctx) -> bool:
    return False


def is_positive(e, ctx: Context, guards=()) -> bool:
    """Whether a real expression is positive for every value (conservative)."""
    e = sp.sympify(e)
    if e.is_Number:
        return bool(e > 0)
    if isinstance(e, sp.exp):
        return not e.args[0].has(sp.I)
    if isinstance(e, sp.Mul):
        return all(is_positive(a, ctx, guards) for a in e.args)
    if isinstance(e, sp.Add):
        # positive + nonnegative is positive
        pos = [is_positive(a, ctx, guards) for a in e.args]
        return any(pos) and all(p or is_nonnegative(a, ctx, guards) for p, a in zip(pos, e.args, strict=True))
    if isinstance(e, sp.Pow):
        return is_positive(e.base, ctx, guards) and e.exp.is_real
    if isinstance(e, Defined):
        return condition_holds(e.args[1], ctx, guards) and is_positive(e.args[0], ctx, guards)
    if isinstance(e, Iverson) and is_integer_cond(e.args[0], ctx):
        facts = list(ctx.facts) + list(guards)
        return ctx.implies is not None and ctx.implies(facts, e.args[0]) is True
    if isinstance(e, sp.Indexed):
        return str(e.base.label) in ctx.positive
    if isinstance(e, sp.Symbol):
        return e.name in ctx.positive or bool(e.is_positive)
    if isinstance(e, GSum):
        if not is_positive(e.function, ctx, guards):
            return False
        nonempty = sp.And(*[sp.Le(lo, hi) for _, lo, hi in e.limits])
        return ctx.implies is not None and ctx.implies(list(ctx.facts) + list(guards), nonempty) is True
    return False


def is_nonnegative(e, ctx: Context, guards=()) -> bool:
    """Whether a real expression is nonnegative for every value (conservative)."""
    e = sp.sympify(e)
    if e.is_Number:
        return bool(e >= 0)
    if is_positive(e, ctx, guards) or isinstance(e, Iverson | sp.Abs):
        return True
    if isinstance(e, sp.Pow) and e.exp.is_Integer and int(e.exp) % 2 == 0:
        return True
    if isinstance(e, sp.Mul | sp.Add):
        return all(is_nonnegative(a, ctx, guards) for a in e.args)
    if isinstance(e, GSum):
        return is_nonnegative(e.function, ctx, guards)
    if isinstance(e, sp.Symbol):
        return bool(e.is_nonnegative)
    return False


def condition_holds(cond, ctx: Context, guards=()) -> bool:
    """Whether a domain condition on values (``b != 0``, ``b > 0``, ``b >= 0``) always holds
    (everywhere, or wherever ``ctx.value_facts`` do: inside the branch of a ``where``)."""
    if cond is sp.true or cond == sp.true:
        return True
    if _holds_everywhere(cond, ctx, guards):
        return True
    if ctx.value_implies is None or cond.has(Defined):
        return False
    return ctx.value_implies(list(ctx.value_facts), cond) is True


def _holds_everywhere(cond, ctx: Context, guards) -> bool:
    if isinstance(cond, sp.And):
        return all(condition_holds(c, ctx, guards) for c in cond.args)
    if isinstance(cond, sp.Rel):
        # not expanded: (x - m)**2 must stay visibly a square
        diff = cond.lhs if cond.rhs == 0 else cond.lhs - cond.rhs
        if _sign_holds(cond, diff, ctx, guards):
            return True
        # over one denominator the sign may show: 1 - 1/(1 + exp(-x)) is exp(-x)/(1 + exp(-x))
        together = sp.together(diff)
        return together != diff and _sign_holds(cond, together, ctx, guards)
    return False


def _sign_holds(cond, diff, ctx: Context, guards) -> bool:
    """Whether ``diff`` has the sign the comparison ``cond`` (of ``diff`` with 0) asks for."""
    if isinstance(cond, sp.Ne):
        return is_positive(diff, ctx, guards) or is_positive(-diff, ctx, guards)
    if isinstance(cond, sp.StrictGreaterThan):
        return is_positive(diff, ctx, guards)
    if isinstance(cond, sp.StrictLessThan):
        return is_positive(-diff, ctx, guards)
    if isinstance(cond, sp.GreaterThan):
        return is_nonnegative(diff, ctx, guards)
    if isinstance(cond, sp.LessThan):
        return is_nonnegative(-diff, ctx, guards)
    return False


def discharge_domains(expr, ctx: Context, guards=()):
    """``Defined(v, c)`` replaced by ``v`` wherever the assumptions imply ``c``.

    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("i", integer=True)]
    >>> discharge_domains(Defined(x / x, sp.Ne(x, 0)), Context({}, (), positive={"x"}))
    1
    """
    if isinstance(expr, Defined) and condition_holds(expr.args[1], ctx, guards):
        return discharge_domains(expr.args[0], ctx, guards)
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Piecewise) and expr.has(Defined):
        return _discharge_branches(expr, ctx, guards)
    if isinstance(expr, GSum) and expr.has(Defined):
        # inside the sum its ranges hold (a broadcast's range guard is 1 there)
        inner = guards + tuple(c for v, lo, hi in expr.limits for c in (sp.Ge(v, lo), sp.Le(v, hi)))
        return GSum(discharge_domains(expr.function, ctx, inner), *expr.limits)
    return expr.func(*(discharge_domains(a, ctx, guards) for a in expr.args))


def _discharge_branches(pw: sp.Piecewise, ctx: Context, guards):
    """A Piecewise whose branch values drop the domains their own branch conditions imply.

    NumPy's ``where`` picks each element from the branch its condition selects, so a
    value in the untaken branch (``log(x)`` where ``x <= 0``) never reaches the result:
    inside ``where(x > 0, log(x), 0)``'s first branch, ``x > 0`` holds. A condition that
    is itself partial (nan compares False both ways) is not used as a fact.
    """
    branches, before = [], []
    for value, cond in pw.args:
        facts = [sp.Not(c) for c in before if not c.has(Defined)]
        facts += [cond] if not cond.has(Defined) else []
        inside = replace(ctx, value_facts=ctx.value_facts + tuple(facts))
        value = settle_by_facts(value, inside)
        branches.append((discharge_domains(value, inside, guards), discharge_domains(cond, ctx, guards)))
        before.append(cond)
    return sp.Piecewise(*branches)


def settle_by_facts(expr, ctx: Context):
    """``expr`` with each choice on values that ``ctx.value_facts`` decide reduced to its branch.

    Inside ``where(y > 0, g * y / y, 0)`` on ``relu`` (``y`` is ``x`` where ``x > 0``, else 0)
    the first branch knows ``y > 0``, so ``y`` is ``x`` there. A choice whose conditions
    are partial, or that the facts leave open, stays.

    >>> from symderive.core.domains import value_implies
    >>> x = sp.IndexedBase("x", real=True)[sp.Symbol("p", integer=True)]
    >>> ctx = Context({}, (), value_implies=value_implies, value_facts=(x > 1,))
    >>> settle_by_facts(sp.Piecewise((x, x > 0), (0, True)), ctx)
    x[p]
    """
    if ctx.value_implies is None or not ctx.value_facts or not expr.has(sp.Piecewise):
        return expr

    def decided(cond):
        if cond == sp.true:
            return True
        if cond.has(Defined):
            return None
        facts = list(ctx.value_facts)
        if ctx.value_implies(facts, cond) is True:
            return True
        return False if ctx.value_implies(facts, sp.Not(cond)) is True else None

    from ..core.domains import settle_choices

    return settle_choices(expr, decided)


def _split_log(arg, ctx: Context, guards):
    """log of a product of positive factors as a sum of logs; log(exp(u)) = u."""
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if isinstance(arg, sp.Mul) and all(is_positive(a, ctx, guards) for a in arg.args):
        return sp.Add(*(sp.log(a) for a in arg.args))
    if isinstance(arg, sp.Pow) and is_positive(arg.base, ctx, guards) and arg.exp.is_real:
        return arg.exp * sp.log(arg.base)
    return None


# -- atoms ---------------------------------------------------------------------------------


def _drop_implied_guards(expr, ctx: Context, guards):
    """Replace Iverson guards (inside an atom) that the context decides by 1 or 0."""
    if ctx.implies is None:
        return expr

    def visit(e):
        if isinstance(e, Iverson) and is_integer_cond(e.args[0], ctx):
            facts = list(ctx.facts) + list(guards)
            if ctx.implies(facts, e.args[0]) is True:
                return sp.S.One
            if ctx.implies(facts, sp.Not(e.args[0])) is True:
                return sp.S.Zero
            return e
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(visit(a) for a in e.args))

    return visit(expr)


def _atom(expr, ctx: Context, guards) -> Term:
    """A non-polynomial subexpression as one factor: a pattern applied to outer indices."""
    expr = normalise_sums(_drop_implied_guards(expr, ctx, guards))
    if expr.is_Number:
        return Term(expr)
    pattern, args = atom_pattern(expr, ctx)
    return Term(sp.S.One, (), (), (Factor(pattern, args, False, expr=expr),))


def atom_pattern(expr, ctx: Context) -> tuple[str, tuple]:
    """A canonical key for an atom and the outer index expressions it is applied to.

    Bound summation variables are renamed in order; every read index position that
    involves outer index variables becomes a placeholder whose argument is that index.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> k = sp.Symbol("k", integer=True)
    >>> atom_pattern(sp.exp(sp.IndexedBase("s", real=True)[k]), Context({}, (n,)))[1]
    (k,)
    """
    bound = []

    def rename_bound(e):
        # sums and reductions (max, min) alike: equal atoms must not differ by a bound name
        if isinstance(e, ExprWithLimits):
            ren = {}
            for v, _, _ in e.limits:
                ren[v] = sp.Symbol(f"_b{len(bound)}", integer=True)
                bound.append(ren[v])
            body = rename_bound(e.function.xreplace(ren))
            lims = [(ren[v], lo, hi) for v, lo, hi in e.limits]
            return e.func(body, *lims)
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(rename_bound(a) for a in e.args))

    canon = rename_bound(expr)
    bound_set = set(bound)
    outer_syms = {s for s in canon.free_symbols if s.is_integer and s not in ctx.sizes and s not in bound_set}
    args: list = []
    slots: dict = {}

    def mask_index(ix):
        ix = sp.sympify(ix)
        if not (ix.free_symbols & outer_syms):
            return ix
        outer_part = sp.expand(ix.xreplace({b: 0 for b in bound_set}))
        if outer_part not in slots:
            slots[outer_part] = sp.Symbol(f"_a{len(args)}", integer=True)
            args.append(outer_part)
        return slots[outer_part] + sp.expand(ix - outer_part)

    reads = sorted(
        canon.atoms(sp.Indexed), key=lambda r: sp.srepr(r.xreplace({s: sp.Symbol("_o") for s in outer_syms}))
    )
    mapping = {r: r.base[tuple(mask_index(i) for i in r.indices)] for r in reads}
    masked = canon.xreplace(mapping)
    leftover = {s for s in masked.free_symbols if s in outer_syms}
    if leftover:
        raise Unsupported(f"index variable used as a value inside {plain(expr)}")
    return sp.srepr(masked), tuple(args)
