"""Canonical forms: index expressions flattened into monomial terms over guarded domains.

Checked by brute force: a term list is evaluated point by point (its guard enumerated
over the summation variables in a box) and compared with a direct NumPy computation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from symderive.algebra import Context, flatten, is_integer_cond, is_integer_expr
from symderive.ir import GSum, Iverson, index_symbol, read, size_symbol

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
