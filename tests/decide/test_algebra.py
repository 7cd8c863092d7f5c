"""Canonical forms: index expressions flattened into monomial terms over guarded domains.

Checked by brute force: a term list is evaluated point by point (its guard enumerated
over the summation variables in a box) and compared with a direct NumPy computation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from symderive.core.ir import GSum, Iverson, index_symbol, read, size_symbol
from symderive.decide.algebra import Context, flatten, is_integer_cond, is_integer_expr

n = size_symbol("n")
m = size_symbol("m")
i, j, p = index_symbol("i"), index_symbol("j"), index_symbol("p")
CTX = Context(shapes={"x": (n,), "w": (m, n)}, sizes=(n, m))


def term_value(terms, env: dict, arrays: dict) -> float:
    """The value of a canonical term list at sizes/free indices ``env`` (summation box -6..12)."""
    total = 0.0
    for t in terms:
        for point in itertools.product(range(-6, 13), repeat=len(t.vars)):
            local = {**env, **dict(zip(t.vars, point, strict=True))}
            if not all(bool(sp.sympify(g).xreplace(local)) for g in t.guard):
                continue
            value = float(t.coeff.xreplace(local))
            for f in t.factors:
                idx = tuple(int(sp.sympify(ix).xreplace(local)) for ix in f.idx)
                a = arrays[f.key]
                inside = all(0 <= q < s for q, s in zip(idx, a.shape, strict=True))
                value *= float(a[idx]) ** float(f.exp) if inside else 0.0
            total += value
    return total


def test_flatten_plain_sum_is_one_term():
    terms = flatten(GSum(2 * read("x", (i,)), (i, 0, n - 1)), CTX)
    assert len(terms) == 1
    assert terms[0].coeff == 2
    assert [f.key for f in terms[0].factors] == ["x"]
    x = np.array([1.5, -2.0, 0.25])
    assert term_value(terms, {n: 3, m: 1}, {"x": x}) == 2 * x.sum()


def test_flatten_sum_of_sums_splits_into_terms():
    e = GSum(read("x", (i,)), (i, 0, n - 1)) + GSum(3 * read("x", (j,)), (j, 1, n - 1))
    terms = flatten(e, CTX)
    assert len(terms) == 2
    x = np.array([1.0, -2.0, 4.0, 0.5])
    assert term_value(terms, {n: 4, m: 1}, {"x": x}) == x.sum() + 3 * x[1:].sum()


def test_flatten_out_of_range_reads_are_guarded():
    """x[i + 1] summed to n - 1 reads past the end: zero there, so the value is sum(x[1:])."""
    terms = flatten(GSum(read("x", (i + 1,)), (i, 0, n - 1)), CTX)
    x = np.array([7.0, 1.0, 2.0])
    assert term_value(terms, {n: 3, m: 1}, {"x": x}) == 3.0


def test_flatten_product_of_sums_is_bilinear():
    e = GSum(read("w", (i, p)) * Iverson(sp.Ge(i, 1)), (i, 0, m - 1)) * read("x", (p,))
    terms = flatten(e, CTX)
    w = np.arange(6.0).reshape(2, 3) - 2.5
    x = np.array([0.5, -1.0, 2.0])
    for pv in range(3):
        assert term_value(terms, {n: 3, m: 2, p: pv}, {"w": w, "x": x}) == w[1:, pv].sum() * x[pv]


def test_flatten_kronecker_delta_becomes_an_equality_guard():
    e = GSum(read("x", (i,)) * sp.KroneckerDelta(i, p), (i, 0, n - 1))
    terms = flatten(e, CTX)
    assert any(isinstance(g, sp.Eq) for g in terms[0].guard)
    x = np.array([3.0, 5.0])
    assert [term_value(terms, {n: 2, m: 1, p: pv}, {"x": x}) for pv in range(-1, 3)] == [0.0, 3.0, 5.0, 0.0]


def test_flatten_zero_is_empty():
    assert flatten(sp.S.Zero, CTX) == []


def test_flatten_exp_is_an_atom():
    terms = flatten(sp.exp(read("x", (p,))), CTX)
    assert len(terms) == 1 and len(terms[0].factors) == 1
    assert not terms[0].factors[0].tensor
    assert terms[0].factors[0].idx == (p,)


def test_same_atom_pattern_at_two_indices_shares_its_key():
    a = flatten(sp.exp(read("x", (p,))), CTX)[0].factors[0]
    b = flatten(sp.exp(read("x", (i + 1,))), CTX)[0].factors[0]
    assert a.key == b.key
    assert sp.expand(b.idx[0] - (i + 1)) == 0


def test_integer_predicates():
    assert is_integer_expr(i + 2 * n, CTX)
    assert not is_integer_expr(read("x", (i,)), CTX)
    assert is_integer_cond(sp.Ge(i, n), CTX)
    assert not is_integer_cond(sp.Gt(read("x", (i,)), 0), CTX)


# -- where(...) branches on [c] != 0, which is c itself ----------------------------------------
@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ("where(x > 0, g, 0)", "proved"),
        ("where(y > 0, g, 0)", "proved"),
        ("where(x <= 0, 0, g)", "proved"),
        ("where(x >= 0, g, 0)", "refuted"),
        ("where(x > 0, 0, g)", "refuted"),
        ("where(y > 0, 0, g)", "refuted"),
    ],
)
def test_where_claims_on_relu_match_torch(claim, verdict):
    from symderive.prove import prove

    v = prove("relu", "x", claim)
    assert v.verdict == verdict, v.reason
    if verdict == "refuted":
        # torch's relu gradient at the counterexample differs from the claim there
        import torch

        found = v.counterexample
        x = torch.tensor(found.values["x"], dtype=torch.float64, requires_grad=True)
        g = torch.tensor(found.values["g"], dtype=torch.float64)
        (torch.relu(x) * g).sum().backward()
        assert float(x.grad[tuple(found.index)]) == float(sp.Rational(found.expected))
        assert float(sp.Rational(found.claimed)) != float(x.grad[tuple(found.index)])


# -- 0/1 guards on values: comparisons in two atoms, conditions in canonical form --------------
from symderive.core.domains import value_implies  # noqa: E402
from symderive.core.ir import Defined, log_value  # noqa: E402
from symderive.decide.algebra import discharge_domains, merge_indicators, settle_by_facts, simplest_condition  # noqa: E402

q = index_symbol("q")
XP, XQ = read("x", (p,)), read("x", (q,))
VCTX = Context(shapes={"x": (n,), "w": (n, n)}, sizes=(n,), value_implies=value_implies)
GRID = [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
NUMPY_RELATIONS = [
    (sp.Gt, np.greater),
    (sp.Ge, np.greater_equal),
    (sp.Lt, np.less),
    (sp.Le, np.less_equal),
    (sp.Eq, np.equal),
    (sp.Ne, np.not_equal),
]


def value_terms_at(terms, point: dict) -> float:
    """A term list without summation variables at values of the reads (atoms evaluated by SymPy)."""
    total = 0.0
    for t in terms:
        assert not t.vars
        value = float(t.coeff)
        for f in t.factors:
            value *= float(sp.sympify(f.expr).xreplace(point)) ** float(f.exp)
        total += value
    return total


def truth_at(cond, point: dict) -> bool:
    return bool(cond.xreplace(point)) if cond not in (sp.true, sp.false) else cond == sp.true


@pytest.mark.parametrize(("rel", "numpy_rel"), NUMPY_RELATIONS)
@pytest.mark.parametrize("written", ["x - 1 rel 0", "2 rel 2x", "x rel x_q"])
def test_value_comparison_is_two_atoms_of_one_difference(rel, numpy_rel, written):
    lhs, rhs = {"x - 1 rel 0": (XP - 1, 0), "2 rel 2x": (2, 2 * XP), "x rel x_q": (XP, XQ)}[written]
    terms = flatten(Iverson(rel(lhs, rhs)), VCTX)
    for a, b in itertools.product(GRID, GRID):
        point = {XP: sp.nsimplify(a), XQ: sp.nsimplify(b)}
        want = float(numpy_rel(float(sp.sympify(lhs).xreplace(point)), float(sp.sympify(rhs).xreplace(point))))
        assert value_terms_at(terms, point) == want, (rel, written, a, b)


@pytest.mark.parametrize("written", ["x - 1 rel 0", "x rel x_q"])
def test_every_comparison_of_one_difference_uses_the_same_two_atoms(written):
    lhs, rhs = {"x - 1 rel 0": (XP - 1, 0), "x rel x_q": (XP, XQ)}[written]
    keys = {f.key for rel, _ in NUMPY_RELATIONS for t in flatten(Iverson(rel(lhs, rhs)), VCTX) for f in t.factors}
    keys |= {f.key for rel, _ in NUMPY_RELATIONS for t in flatten(Iverson(rel(rhs, lhs)), VCTX) for f in t.factors}
    assert len(keys) == 2


SIMPLEST = [
    pytest.param(sp.And(XP > 0, sp.Ne(XP, 0)), XP > 0, id="positive-and-nonzero"),
    pytest.param(sp.And(XP >= 0, XP <= 0), sp.Eq(XP, 0), id="both-ways-is-equal"),
    pytest.param(sp.Or(XP > 0, XP < 0), sp.Ne(XP, 0), id="either-side-is-nonzero"),
    pytest.param(sp.Or(XP > 1, XP > 2), XP - 1 > 0, id="weaker-disjunct"),
    pytest.param(sp.Or(XP > 1, XP <= 1), sp.true, id="always"),
    pytest.param(sp.And(XP > 1, XP < 0), sp.false, id="never"),
    pytest.param(sp.And(XP > XQ, XQ >= XP), sp.false, id="two-reads-never"),
    pytest.param(sp.And(XP > 0, XP < 1, sp.Ne(XP, 2)), None, id="interval-keeps-two-comparisons"),
]


@pytest.mark.parametrize(("cond", "want"), SIMPLEST)
def test_simplest_condition_is_equivalent_on_a_grid(cond, want):
    got = simplest_condition(cond, VCTX)
    if want is not None:
        assert got == want
    else:
        assert len(got.atoms(sp.Rel)) == 2
    for a, b in itertools.product(GRID, GRID):
        point = {XP: sp.nsimplify(a), XQ: sp.nsimplify(b)}
        assert truth_at(got, point) == truth_at(cond, point), (cond, got, a, b)


def test_simplest_condition_leaves_partial_conditions_and_needs_its_oracle():
    partial = sp.And(Defined(1 / XP, sp.Ne(XP, 0)) > 0, sp.Ne(XP, 0))
    assert simplest_condition(partial, VCTX) == partial
    plain = sp.And(XP > 0, sp.Ne(XP, 0))
    assert simplest_condition(plain, Context(shapes={"x": (n,)}, sizes=(n,))) == plain


def test_merged_indicators_meet_a_single_one():
    merged = merge_indicators(flatten(Iverson(XP > 0) * Iverson(XP >= 0) * read("w", (p, p)), VCTX), VCTX)
    single = flatten(Iverson(XP > 0) * read("w", (p, p)), VCTX)
    assert sorted(f.key for t in merged for f in t.factors) == sorted(f.key for t in single for f in t.factors)
    squared = merge_indicators(flatten(Iverson(XP < 0) ** 2, VCTX), VCTX)
    for a in GRID:
        assert value_terms_at(squared, {XP: sp.nsimplify(a)}) == float(a < 0)


def test_where_branch_discharges_the_domain_its_condition_implies():
    # where(x > 0, log(x), 0): log's domain is the branch's own condition
    taken = sp.Piecewise((log_value(XP), XP > 0), (0, True))
    assert not discharge_domains(taken, VCTX).has(Defined)
    # the else branch of where(x <= 0, 0, 1 / x) knows x > 0
    other = sp.Piecewise((0, XP <= 0), (Defined(1 / XP, sp.Ne(XP, 0)), True))
    assert not discharge_domains(other, VCTX).has(Defined)


@pytest.mark.parametrize(
    "pw",
    [
        pytest.param(sp.Piecewise((log_value(XP), XP >= 0), (0, True)), id="log-at-zero-taken"),
        pytest.param(sp.Piecewise((log_value(XP), XQ > 0), (0, True)), id="another-element"),
        pytest.param(sp.Piecewise((0, XP > 0), (log_value(XP), True)), id="negative-branch"),
        pytest.param(
            sp.Piecewise((log_value(XP), Defined(1 / XP, sp.Ne(XP, 0)) > 0), (0, True)), id="partial-condition"
        ),
    ],
)
def test_where_branch_keeps_a_domain_its_condition_does_not_imply(pw):
    # at x = 0 (or x <= 0) NumPy's value of the taken branch is nan: the domain must stay
    assert discharge_domains(pw, VCTX).has(Defined)


def test_settle_by_facts_picks_the_branch_the_facts_decide():
    relu_value = sp.Piecewise((XP, XP > 0), (0, True))
    inside = Context(shapes={"x": (n,)}, sizes=(n,), value_implies=value_implies, value_facts=(XP - 1 > 0,))
    assert settle_by_facts(relu_value, inside) == XP
    open_ = Context(shapes={"x": (n,)}, sizes=(n,), value_implies=value_implies, value_facts=(XP > -1,))
    assert settle_by_facts(relu_value, open_) == relu_value
    below = Context(shapes={"x": (n,)}, sizes=(n,), value_implies=value_implies, value_facts=(XP <= 0,))
    assert settle_by_facts(relu_value, below) == 0


def _reduced(expr) -> dict:
    """Coefficient per product of atoms after flattening and merging (zero entries dropped)."""
    out: dict = {}
    for t in merge_indicators(flatten(expr, VCTX), VCTX):
        key = tuple(sorted((f.key, f.idx) for f in t.factors))
        out[key] = out.get(key, 0) + t.coeff
    return {k: v for k, v in out.items() if v != 0}


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(Iverson(sp.And(XP >= -1, XP <= 1)), id="and"),
        pytest.param(Iverson(XP >= -1) * Iverson(XP <= 1), id="product"),
        pytest.param(1 - Iverson(XP < -1) - Iverson(XP > 1), id="complement"),
        pytest.param(Iverson(sp.Abs(XP) <= 1), id="abs"),
        pytest.param(1 - Iverson(sp.Or(XP < -1, XP > 1)), id="or"),
    ],
)
def test_an_interval_in_any_spelling_has_one_canonical_form(spelling):
    reference = Iverson(sp.And(XP >= -1, XP <= 1))
    assert _reduced(spelling) == _reduced(reference)
    for a in GRID:
        assert value_terms_at(merge_indicators(flatten(spelling, VCTX), VCTX), {XP: sp.nsimplify(a)}) == float(
            abs(a) <= 1
        )


def test_irreducible_products_of_two_elements_drop_only_what_is_implied():
    # x[p] > x[q] > 0 implies x[p] > 0; the pair x[p] > x[q], x[q] > 0 stays a product
    terms = merge_indicators(flatten(Iverson(XP > XQ) * Iverson(XQ > 0) * Iverson(XP > 0), VCTX), VCTX)
    assert len(terms) == 1 and len(terms[0].factors) == 2
    for a, b in itertools.product(GRID, GRID):
        point = {XP: sp.nsimplify(a), XQ: sp.nsimplify(b)}
        assert value_terms_at(terms, point) == float(a > b > 0)
