"""Presburger questions through z3: implication, satisfiability, the integer translation.

Expected answers come from Python's own integer arithmetic (``//`` and ``%`` floor
semantics) and from brute-force enumeration over a small box.
"""

from __future__ import annotations

import itertools

import pytest
import sympy as sp
import z3

from symderive.core import domains as domains

n, k, i, j = sp.symbols("n k i j", integer=True)


def test_implies_transitivity():
    assert domains.implies([sp.Ge(n, k), sp.Ge(k, 1)], sp.Ge(n, 1)) is True


def test_implies_false_when_a_counterexample_exists():
    assert domains.implies([sp.Ge(n, 1)], sp.Ge(n, 2)) is False


def test_implies_uses_integrality():
    # over the rationals 0 < 2n < 2 has solutions; over the integers none
    assert domains.implies([sp.Gt(2 * n, 0)], sp.Ge(n, 1)) is True


def test_implies_non_linear_is_undecided():
    assert domains.implies([sp.Ge(n, 1)], sp.Ge(n * k, 0)) is None


def test_satisfiable():
    assert domains.satisfiable([sp.Ge(n, 3), sp.Le(n, 3)]) is True
    assert domains.satisfiable([sp.Ge(n, 3), sp.Lt(n, 3)]) is False


def test_satisfiable_parity():
    # 2i == 2j + 1 has no integer solution (it has rational ones)
    assert domains.satisfiable([sp.Eq(2 * i, 2 * j + 1)]) is False


def test_satisfiable_non_linear_is_none():
    assert domains.satisfiable([sp.Eq(i * j, 6)]) is None


def test_non_linear_product_raises():
    with pytest.raises(domains.NonLinear):
        domains.Z3Context().expr(i * j)


def test_symbolic_modulus_raises():
    with pytest.raises(domains.NonLinear):
        domains.Z3Context().expr(sp.Mod(i, n))


@pytest.mark.parametrize("d", [2, 3, 5])
def test_floor_and_mod_match_python(d):
    """z3's translation of floor(i/d) and Mod(i, d) against Python's // and % for negative i too."""
    ctx = domains.Z3Context()
    fl = ctx.expr(sp.floor(i / d))
    md = ctx.expr(sp.Mod(i, d))
    fl_shift = ctx.expr(sp.floor((i + 1) / d))
    for value in range(-11, 12):
        s = z3.Solver()
        s.add(ctx.var(i) == value)
        assert s.check() == z3.sat
        m = s.model()
        assert m.eval(fl).as_long() == value // d
        assert m.eval(md).as_long() == value % d
        assert m.eval(fl_shift).as_long() == (value + 1) // d


def test_max_min_piecewise():
    ctx = domains.Z3Context()
    e = ctx.expr(sp.Max(i, j) - sp.Min(i, j))
    for a, b in itertools.product(range(-3, 4), repeat=2):
        s = z3.Solver()
        s.add(ctx.var(i) == a, ctx.var(j) == b)
        s.check()
        assert s.model().eval(e).as_long() == abs(a - b)


def test_check_returns_a_model_satisfying_the_conditions():
    ctx = domains.Z3Context()
    sat, model = domains.check([sp.Ge(n, 4), sp.Eq(sp.Mod(n, 3), 1)], ctx)
    assert sat is True
    value = model.eval(ctx.var(n)).as_long()
    assert value >= 4 and value % 3 == 1


def test_rational_relation_is_integerised():
    # n/2 >= 1  <=>  n >= 2
    assert domains.implies([sp.Ge(n / 2, 1)], sp.Ge(n, 2)) is True
    assert domains.implies([sp.Ge(n, 2)], sp.Ge(n / 2, 1)) is True


def test_box_count_agrees_with_enumeration():
    """The number of (i, j) in a box with i + j even, counted by z3's models, equals Python's count."""
    conds = [sp.Ge(i, 0), sp.Le(i, 3), sp.Ge(j, 0), sp.Le(j, 2), sp.Eq(sp.Mod(i + j, 2), 0)]
    ctx = domains.Z3Context()
    s = domains.new_solver()
    for c in conds:
        s.add(ctx.cond(c))
    found = 0
    while s.check() == z3.sat:
        m = s.model()
        found += 1
        s.add(z3.Or(ctx.var(i) != m.eval(ctx.var(i)), ctx.var(j) != m.eval(ctx.var(j))))
    assert found == sum(1 for a in range(4) for b in range(3) if (a + b) % 2 == 0)


# -- failing_sizes: implication over sizes >= 1, with the sizes where it fails ----------------
m_, n_ = sp.symbols("m n", integer=True, positive=True)


@pytest.mark.parametrize(
    ("premises", "conclusion", "holds"),
    [
        ([], sp.Eq(m_, n_), lambda m, n: m == n),
        ([], sp.Ge(n_ - 3, 1), lambda m, n: n - 3 >= 1),
        ([sp.Ge(n_, m_)], sp.Ge(n_ - m_ + 1, 1), lambda m, n: n - m + 1 >= 1),
        ([sp.Eq(sp.Mod(n_, 2), 0)], sp.Ge(n_, 2), lambda m, n: n >= 2),
        ([], sp.Or(sp.Eq(m_, 1), sp.Eq(n_, 1), sp.Eq(m_, n_)), lambda m, n: m == 1 or n == 1 or m == n),
    ],
)
def test_failing_sizes_agrees_with_enumeration(premises, conclusion, holds):
    ok, sizes = domains.failing_sizes(premises, conclusion, [m_, n_])

    def premise_ok(m, n):
        return all(bool(p.subs({m_: m, n_: n})) for p in premises)

    box = [(m, n) for m in range(1, 25) for n in range(1, 25) if premise_ok(m, n)]
    if all(holds(m, n) for m, n in box):
        assert (ok, sizes) == (True, None)
        return
    assert ok is False and set(sizes) == {"m", "n"}
    m, n = sizes["m"], sizes["n"]
    assert m >= 1 and n >= 1 and premise_ok(m, n) and not holds(m, n)


def test_failing_sizes_detects_contradictions_and_states_the_size_floor():
    # n >= 3 and n <= 2 have no solution: they imply anything, false included
    assert domains.failing_sizes([sp.Ge(n_, 3), sp.Le(n_, 2)], sp.false, [n_]) == (True, None)
    # over all integers n + m <= 1 is satisfiable; with every size >= 1 it is not
    assert domains.failing_sizes([sp.Le(n_ + m_, 1)], sp.false, [m_, n_]) == (True, None)
    assert domains.failing_sizes([sp.Le(n_ + m_, 2)], sp.false, [m_, n_]) == (False, {"m": 1, "n": 1})


def test_failing_sizes_undecided_outside_presburger():
    ok, reason = domains.failing_sizes([], sp.Ge(sp.Symbol("a", integer=True) * sp.Symbol("b", integer=True), 1), [])
    assert ok is None and "Presburger" in reason


# -- conditions on tensor values, over the reals -----------------------------------------------
X = sp.IndexedBase("x", real=True)
XI, XJ = X[i], X[j]
VALUES = [sp.Rational(v, 2) for v in range(-5, 6)]


def _holds_on_grid(premises, conclusion) -> bool:
    """Whether the implication holds at every pair of grid values of x[i], x[j] (a necessary condition)."""
    for a, b in itertools.product(VALUES, VALUES):
        point = {XI: a, XJ: b}
        if all(bool(p.xreplace(point)) for p in premises) and not bool(conclusion.xreplace(point)):
            return False
    return True


VALUE_IMPLICATIONS = [
    pytest.param([XI > 0], sp.Ne(XI, 0), True, id="positive-is-nonzero"),
    pytest.param([XI >= 0], sp.Ne(XI, 0), False, id="nonnegative-may-be-zero"),
    pytest.param([XI > XJ, XJ >= 1], XI > 1, True, id="chain"),
    pytest.param([XI > XJ], XI > 0, False, id="chain-without-bound"),
    pytest.param([2 * XI - 1 > 0], XI > 0, True, id="scaled"),
    pytest.param([sp.Ne(sp.Piecewise((XI, XI > 0), (0, True)), 0)], XI > 0, True, id="relu-output-nonzero"),
    pytest.param([sp.Piecewise((XI, XI > 0), (0, True)) >= 0], XI >= 0, False, id="relu-output-always-nonnegative"),
    pytest.param([sp.Abs(XI) > 1], sp.Ne(XI, 0), True, id="abs"),
    pytest.param([sp.Max(XI, XJ) < 0], XJ < 0, True, id="max"),
]


@pytest.mark.parametrize(("premises", "conclusion", "want"), VALUE_IMPLICATIONS)
def test_value_implies_agrees_with_a_grid(premises, conclusion, want):
    assert domains.value_implies(premises, conclusion) is want
    # the grid can only refute: a True answer must survive it, a False one is shown by it here
    assert _holds_on_grid(premises, conclusion) is want


def test_value_implies_knows_exp_is_positive_and_nothing_else_about_opaque_terms():
    assert domains.value_implies([], sp.exp(XI) > 0) is True
    # sin is opaque: sin <= 1 is true but not known, so the answer is not a proof
    assert domains.value_implies([], sp.sin(XI) <= 1) is False


def test_value_implies_knows_the_ranges_and_signs_of_hyperbolic_functions():
    yj = sp.IndexedBase("y", real=True)[sp.Symbol("j", integer=True)]
    assert domains.value_implies([], sp.tanh(XI) < 1) is True
    assert domains.value_implies([], 1 + sp.tanh(XI) * sp.tanh(yj) > 0) is True
    assert domains.value_implies([], sp.cosh(XI) >= 1) is True
    assert domains.value_implies([XI > 0], sp.sinh(XI) > 0) is True
    assert domains.value_implies([sp.Ne(sp.tanh(XI), 0)], sp.Ne(sp.sinh(XI), 0)) is True
    # and no more than that: each of these fails at some real value
    assert domains.value_implies([], sp.tanh(XI) < sp.Rational(1, 2)) is False
    assert domains.value_implies([], sp.cosh(XI) > 1) is False
    assert domains.value_implies([], sp.sinh(XI) > 0) is False
    assert domains.value_implies([], sp.tanh(XI) + sp.tanh(yj) < 1) is False
    assert domains.value_implies([XI > 0], sp.sinh(XI) > XI + 1) is False


def test_value_implies_refuses_partial_values():
    # nan compares False both ways, which no real number does: a partial value is not a real
    from symderive.core.ir import Defined

    d = Defined(1 / XI, sp.Ne(XI, 0))
    assert domains.value_implies([XI > 0], d > 0) is None
    assert domains.value_implies([d > 0], d >= 0) is None


def test_value_equivalent():
    assert domains.value_equivalent(sp.And(XI >= 0, XI <= 0), sp.Eq(XI, 0)) is True
    assert domains.value_equivalent(sp.And(XI >= 0, XI <= 1), sp.Eq(XI, 0)) is False
