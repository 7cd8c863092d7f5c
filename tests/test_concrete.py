"""Exact and float evaluation at concrete sizes, against NumPy and SciPy on the same values.

NumPy computes every factor of a product, so ``0 * nan`` is nan: a comparison that is 0
does not hide an undefined factor. A read outside a tensor's shape is not computed at all
(the padding of a "full" convolution is zeros, not ``log(0)``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import sympy as sp

from symderive.concrete import evaluate, is_index_guard
from symderive.counterexample import exact_array
from symderive.ir import Iverson, index_symbol, read, size_symbol
from symderive.language import claim_tensor, parse_claim
from symderive.layer import load_layer

X_VALUES = np.array([[-1.0, 0.0, 2.0], [0.5, -2.0, 0.0]])

PRODUCTS = [
    pytest.param("g * (x > 0) * log(x)", lambda x, g: g * (x > 0) * np.log(x), id="comparison-times-log"),
    pytest.param("(x > 0) * (x < 0) * log(x)", lambda x, g: (x > 0) * (x < 0) * np.log(x), id="never-times-log"),
    pytest.param("x * log(x)", lambda x, g: x * np.log(x), id="zero-times-log-of-zero"),
    pytest.param("(x >= 0) * sqrt(x) + g", lambda x, g: (x >= 0) * np.sqrt(x) + g, id="comparison-times-sqrt"),
    pytest.param("(x != 0) * g / x", lambda x, g: (x != 0) * g / x, id="comparison-times-division"),
    pytest.param("where(x > 0, log(x), 0) * g", lambda x, g: np.where(x > 0, np.log(x), 0) * g, id="where-picks"),
]


def _relu_claim(text: str):
    layer = load_layer("relu")
    return claim_tensor(parse_claim(text, layer, "x"), layer)


def _numpy(oracle, x, g):
    with np.errstate(all="ignore"):
        return np.asarray(oracle(x, g), dtype=np.float64)


@pytest.mark.parametrize(("claim", "oracle"), PRODUCTS)
def test_float_products_are_undefined_where_numpy_is(claim, oracle):
    g = np.array([[0.0, 1.5, -1.0], [2.0, 0.0, 3.0]])
    got = evaluate(_relu_claim(claim), {"N": 2, "D": 3}, {"x": X_VALUES, "g": g})
    want = _numpy(oracle, X_VALUES, g)
    # NumPy's log(0) is -inf where symderive says undefined (nan): compare finiteness, then values
    assert (np.isfinite(got) == np.isfinite(want)).all(), (got, want)
    assert np.allclose(got[np.isfinite(want)], want[np.isfinite(want)])


@pytest.mark.parametrize(("claim", "oracle"), PRODUCTS)
def test_exact_products_are_undefined_where_numpy_is(claim, oracle):
    g = np.array([[0, 1, -1], [2, 0, 3]])
    x = np.array([[-1, 0, 2], [1, -2, 0]])
    got = evaluate(_relu_claim(claim), {"N": 2, "D": 3}, {"x": exact_array(x), "g": exact_array(g)}, exact=True)
    want = _numpy(oracle, x.astype(float), g.astype(float))
    undefined = np.vectorize(lambda v: bool(sp.sympify(v).has(sp.nan, sp.zoo, sp.oo, -sp.oo)))(got)
    assert (undefined == ~np.isfinite(want)).all(), (got, want)
    values = np.vectorize(lambda v: float(v) if v.is_number and v.is_finite else np.nan)(got[~undefined])
    assert np.allclose(values, want[~undefined])


def test_a_padded_convolution_does_not_compute_outside_its_input():
    # "full" reads w outside its shape: zeros, never log(0)
    layer = load_layer("conv2d")
    tensor = claim_tensor(parse_claim('convolve(g, log(w), "full")', layer, "x"), layer)
    rng = np.random.default_rng(7)
    w = rng.uniform(0.5, 2.0, (2, 3))
    g = rng.standard_normal((3, 2))
    sizes = {"H": 4, "W": 4, "kh": 2, "kw": 3}
    got = evaluate(tensor, sizes, {"x": rng.standard_normal((4, 4)), "w": w, "b": np.array(0.0), "g": g})
    assert np.allclose(got, ss.convolve(g, np.log(w), "full"))


def test_index_guards_are_told_from_comparisons_of_values():
    i, n = index_symbol("i"), size_symbol("n")
    assert is_index_guard(Iverson(sp.And(i >= 0, i < n)))
    assert is_index_guard(sp.KroneckerDelta(i, n - 1))
    assert not is_index_guard(Iverson(read("x", (i,)) > 0))
    assert not is_index_guard(Iverson(sp.Symbol("b", real=True) > 0))
