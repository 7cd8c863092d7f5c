"""Every known claim of every new built-in layer gets its expected verdict from the prover.

True claims must be ``proved`` (for all sizes), known mistakes ``refuted``; a refutation's
counterexample is confirmed against torch autograd at its own sizes and values: torch's
gradient there is the counterexample's expected value and differs from the claim.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from heavy import by_weight
from test_layers_torch import LAYERS, claim_value, layer_named, random_values, rng_for, torch_gradient

from symderive.decide.verdict import PROVED, REFUTED
from symderive.prove import prove


def all_claims() -> list:
    return [
        pytest.param(name, k, id=f"{name}-d{c.wrt}-{k}-{c.expect}")
        for name in LAYERS
        for k, c in enumerate(layer_named(name).claims)
    ]


def number(text) -> float:
    """A counterexample's number: JSON int/float, or an exact value in SymPy's printing."""
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(Fraction(text))
    except ValueError:
        # symderive's own printing of an exact irrational value (e.g. "exp(1)/(1 + exp(1))")
        return float(sp.sympify(text))


def as_array(nested) -> np.ndarray:
    return np.vectorize(number, otypes=[np.float64])(np.array(nested, dtype=object))


def confirm_against_torch(layer, wrt: str, claim: str, cex) -> None:
    """The counterexample is real: torch's gradient there differs from the claim."""
    if cex.is_shape_mismatch:
        values = random_values(layer, cex.sizes, rng_for(layer.name, claim, "shape"))
        expected = torch_gradient(layer, wrt, values)
        assert expected.shape == tuple(cex.expected_shape)
        got = claim_value(layer, wrt, claim, cex.sizes, values)
        if cex.claimed_shape is None:
            assert got is None
        else:
            assert got.shape == tuple(cex.claimed_shape) != expected.shape
        return
    values = {n: as_array(v) for n, v in cex.values.items()}
    expected = torch_gradient(layer, wrt, values)
    got = claim_value(layer, wrt, claim, cex.sizes, values)
    index = tuple(cex.index)
    assert expected[index] == pytest.approx(number(cex.expected), rel=1e-9, abs=1e-12)
    assert got[index] == pytest.approx(number(cex.claimed), rel=1e-9, abs=1e-12)
    assert not np.isclose(got[index], expected[index], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "k"), by_weight(all_claims(), layer=lambda case: case[0]))
def test_known_claim_gets_its_expected_verdict(name, k):
    layer = layer_named(name)
    claim = layer.claims[k]
    v = prove(layer, claim.wrt, claim.claim, assume=claim.assume)
    assert v.verdict == claim.expect, f"{name}/d{claim.wrt}: {claim.claim!r} -> {v.verdict} ({v.reason})"
    if v.verdict == REFUTED:
        confirm_against_torch(layer, claim.wrt, claim.claim, v.counterexample)
    if v.verdict == PROVED:
        assert set(v.assumptions) >= {a.text for a in layer.assumptions} | set(claim.assume)


def test_stride_two_claim_without_output_padding_is_refuted_at_sizes_needing_it():
    v = prove("conv2d_nchw_s2p1", "x", "conv_transpose2d(g, w, stride=2, padding=1)")
    assert v.verdict == REFUTED
    s = v.counterexample.sizes
    assert (s["H"] + 2 - s["kh"]) % 2 == 1 or (s["W"] + 2 - s["kw"]) % 2 == 1


def test_stride_two_claim_without_output_padding_is_proved_under_congruences_given_as_assume():
    v = prove(
        "conv2d_nchw_s2p1",
        "x",
        "conv_transpose2d(g, w, stride=2, padding=1)",
        assume=["(H + 2 - kh) % 2 == 0", "(W + 2 - kw) % 2 == 0"],
    )
    assert v.verdict == PROVED


def test_congruence_on_one_axis_only_is_not_enough():
    v = prove("conv2d_nchw_s2p1", "x", "conv_transpose2d(g, w, stride=2, padding=1)", assume=["(H + 2 - kh) % 2 == 0"])
    assert v.verdict == REFUTED
    s = v.counterexample.sizes
    assert (s["W"] + 2 - s["kw"]) % 2 == 1
