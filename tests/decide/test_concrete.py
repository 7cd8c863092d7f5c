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

from symderive.core.ir import GSum, Iverson, Tensor, index_symbol, read, size_symbol
from symderive.core.parse import claim_tensor, parse_claim
from symderive.decide.concrete import evaluate, is_index_guard
from symderive.decide.problem import exact_array
from symderive.model.layer import load_layer

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


# -- memoised evaluation: normalisation layers, shared subexpressions -----------------------------
def _torch_norm(name: str, x, gamma, beta, eps):
    import torch.nn.functional as F

    if name == "layer_norm":
        return F.layer_norm(x, (x.shape[1],), gamma, beta, eps)
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def _torch_norm_gradient(name: str, wrt: str, values: dict) -> np.ndarray:
    torch = pytest.importorskip("torch")
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(k == wrt)) for k, v in values.items()}
    y = _torch_norm(name, t["x"], t["gamma"], t["beta"], float(values["eps"]))
    (y * t["g"]).sum().backward()
    return t[wrt].grad.numpy()


def _derived(layer, wrt: str):
    from symderive.derive import derive

    d = derive(layer, wrt)
    return Tensor(
        shape=layer.inputs[wrt], element=lambda idx: d.gradient.xreplace(dict(zip(d.index, idx, strict=True)))
    )


NORM_CASES = [
    pytest.param(name, wrt, rows, cols, id=f"{name}-{wrt}-{rows}x{cols}")
    for name, wrt in (("layer_norm", "x"), ("layer_norm", "gamma"), ("batch_norm", "x"), ("batch_norm", "gamma"))
    for rows, cols in ((1, 1), (2, 1), (3, 4), (5, 6), (4, 3))
    if not (name == "batch_norm" and rows < 2)  # torch's training-mode batch norm needs two rows
]


@pytest.mark.parametrize(("name", "wrt", "rows", "cols"), NORM_CASES)
def test_normalisation_gradients_agree_with_torch_autograd(name, wrt, rows, cols):
    layer = load_layer(name)
    rng = np.random.default_rng(rows * 10 + cols)
    values = {
        "x": rng.standard_normal((rows, cols)) * 2 + 0.3,
        "gamma": rng.standard_normal(cols),
        "beta": rng.standard_normal(cols),
        "eps": np.array(0.05),
        "g": rng.standard_normal((rows, cols)),
    }
    sizes = {"N": rows, ("D" if name == "layer_norm" else "C"): cols}
    got = evaluate(_derived(layer, wrt), sizes, values)
    want = _torch_norm_gradient(name, wrt, values)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12), (got, want)


def _sympy_layer_norm_dx(x, gamma, eps, g):
    """Exact dL/dx of sum(g * layer_norm(x)) by SymPy differentiation of the textbook formula."""
    rows, cols = len(x), len(x[0])
    xs = sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"x{i}_{j}"))
    loss = 0
    for i in range(rows):
        mean = sum(xs[i, j] for j in range(cols)) / cols
        var = sum((xs[i, j] - mean) ** 2 for j in range(cols)) / cols
        loss += sum(g[i][j] * gamma[j] * (xs[i, j] - mean) / sp.sqrt(var + eps) for j in range(cols))
    at = {xs[i, j]: x[i][j] for i in range(rows) for j in range(cols)}
    return [[sp.nsimplify(sp.diff(loss, xs[i, j]).subs(at)) for j in range(cols)] for i in range(rows)]


def test_exact_layer_norm_gradient_is_the_exact_rational():
    # rows whose variance + eps is a square: sqrt is rational and so is every element
    x = [[0, 3], [sp.Rational(1, 2), -sp.Rational(5, 2)]]
    gamma, eps, g = [2, -1], sp.Integer(4), [[1, -2], [3, 1]]
    values = {"x": exact_array(x), "gamma": exact_array(gamma), "beta": exact_array([0, 0])}
    values.update(eps=np.array(eps, dtype=object), g=exact_array(g))
    got = evaluate(_derived(load_layer("layer_norm"), "x"), {"N": 2, "D": 2}, values, exact=True)
    want = _sympy_layer_norm_dx(x, gamma, eps, g)
    for i, j in np.ndindex(2, 2):
        assert got[i, j].is_Rational, got
        assert got[i, j] == want[i][j], (got, want)


def test_an_inner_sum_rebinding_the_outer_variable_is_not_confused_with_it():
    i, n = index_symbol("i"), size_symbol("n")
    x = sp.IndexedBase("x", real=True)
    inner = GSum(x[i], (i, 0, n - 1))
    # sum_i (sum_i x[i]) * x[i] * i: the inner i is its own, the outer one reaches x[i] * i
    expr = GSum(inner * x[i] * i, (i, 0, n - 1))
    xs = np.array([1.5, -2.0, 0.25, 3.0])
    got = evaluate(Tensor(shape=(), element=lambda idx: expr), {"n": 4}, {"x": xs})
    assert got[()] == pytest.approx(xs.sum() * float(np.dot(xs, np.arange(4))))


def test_a_row_statistic_is_computed_once_per_row_not_once_per_element(monkeypatch):
    from symderive.decide.concrete import Evaluator

    reads = []
    original = Evaluator._read

    def counting(self, e):
        reads.append(e)
        return original(self, e)

    monkeypatch.setattr(Evaluator, "_read", counting)
    layer = load_layer("layer_norm")
    rows, cols = 2, 8
    rng = np.random.default_rng(3)
    values = {n: rng.standard_normal(s) for n, s in (("x", (rows, cols)), ("gamma", cols), ("beta", cols))}
    values.update(eps=np.array(0.1), g=rng.standard_normal((rows, cols)))
    evaluate(layer.forward, {"N": rows, "D": cols}, values)
    # the mean and variance read each row a bounded number of times; recomputing them for
    # every element would read each row about cols times as often
    assert len(reads) <= 8 * rows * cols, len(reads)
