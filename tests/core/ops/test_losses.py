"""torch.nn.functional's softmax/log_softmax (dim=), mse_loss and cross_entropy (probability targets):
index definitions and NumPy lowerings against torch on random data, and their input errors."""

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import NUMPY_HELPERS, OPERATORS
from symderive.decide.concrete import evaluate
from symderive.errors import InputError

N, M, K = size_symbol("n"), size_symbol("m"), size_symbol("k")
SIZES = {"n": 3, "m": 4, "k": 2}


def _lowered(op, code, arrays):
    namespace = {"np": np, **arrays}
    for helper in op.numpy_helpers:
        exec(NUMPY_HELPERS[helper], namespace)
    return eval(compile(code, "<lowering>", "eval"), namespace)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_torch_normaliser_matches_torch(name, dim):
    op = OPERATORS[f"F.{name}"]
    x = np.random.default_rng(dim + 5).normal(size=(3, 4, 2)) * 3
    x[0, 0, :] = 40.0  # large equal scores
    expected = getattr(F, name)(_t(x), dim=dim).numpy()
    t = op.definition(input=leaf("x", (N, M, K)), dim=dim)
    np.testing.assert_allclose(np.asarray(evaluate(t, SIZES, {"x": x}), float), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        _lowered(op, op.to_numpy(input="x", dim=dim), {"x": x}), expected, rtol=1e-12, atol=1e-14
    )
    assert op.shape_rule((N, M, K), dim=dim) == ((N, M, K), sp.true)


@pytest.mark.parametrize("dim", [None, 3])
def test_torch_normaliser_needs_a_dim_in_range(dim):
    with pytest.raises(InputError, match="dim"):
        OPERATORS["F.softmax"].shape_rule((N, M, K), dim=dim)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shapes", [((N, M), (N, M)), ((N, M), (1, M)), ((M,), (M,))])
def test_mse_loss_matches_torch(reduction, shapes):
    op = OPERATORS["mse_loss"]
    rng = np.random.default_rng(7)
    sizes = {"n": 3, "m": 4}
    a = rng.normal(size=tuple(sizes[str(d)] if d != 1 else 1 for d in shapes[0]))
    b = rng.normal(size=tuple(sizes[str(d)] if d != 1 else 1 for d in shapes[1]))
    b.flat[0] = a.flat[0]  # a zero difference
    with torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns on a broadcast target
            expected = F.mse_loss(_t(a), _t(b), reduction=reduction).numpy()
    t = op.definition(input=leaf("a", shapes[0]), target=leaf("b", shapes[1]), reduction=reduction)
    np.testing.assert_allclose(np.asarray(evaluate(t, sizes, {"a": a, "b": b}), float), expected, rtol=1e-12)
    code = op.to_numpy(input="a", target="b", reduction=reduction)
    np.testing.assert_allclose(_lowered(op, code, {"a": a, "b": b}), expected, rtol=1e-12)
    shape, _ = op.shape_rule(shapes[0], shapes[1], reduction=reduction)
    assert len(shape) == expected.ndim


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(N, M), (M,)])
def test_cross_entropy_with_probabilities_matches_torch(reduction, shape):
    op = OPERATORS["cross_entropy"]
    rng = np.random.default_rng(8)
    concrete = tuple(SIZES[str(d)] for d in shape)
    s = rng.normal(size=concrete) * 3
    p = rng.dirichlet(np.ones(concrete[-1]), size=concrete[:-1] or None)
    p.flat[0] = 0.0  # a class of probability 0
    expected = F.cross_entropy(_t(s), _t(p), reduction=reduction).numpy()
    t = op.definition(input=leaf("s", shape), target=leaf("p", shape), reduction=reduction)
    np.testing.assert_allclose(np.asarray(evaluate(t, SIZES, {"s": s, "p": p}), float), expected, rtol=1e-12)
    code = op.to_numpy(input="s", target="p", reduction=reduction)
    np.testing.assert_allclose(_lowered(op, code, {"s": s, "p": p}), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"target": (N,)}, "class-probability targets"),
        ({"weight": (M,)}, "weight"),
        ({"label_smoothing": sp.Rational(1, 10)}, "label_smoothing"),
        ({"reduction": "batchmean"}, "reduction"),
    ],
)
def test_cross_entropy_refuses_what_it_does_not_model(options, message):
    args = {"input": (N, M), "target": (N, M), **options}
    with pytest.raises(InputError, match=message):
        OPERATORS["cross_entropy"].shape_rule(**args)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("normalized", [(K,), (M, K)])
def test_layer_norm_matches_torch(normalized, affine):
    op = OPERATORS["layer_norm"]
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 4, 2)) * 2
    x[0, 0, :] = 1.5  # a constant row: variance 0, only eps keeps it finite
    tail = tuple(SIZES[str(d)] for d in normalized)
    w, b = (rng.normal(size=tail), rng.normal(size=tail)) if affine else (None, None)
    expected = F.layer_norm(_t(x), tail, None if w is None else _t(w), None if b is None else _t(b)).numpy()
    names = {"x": x} | ({"w": w, "b": b} if affine else {})
    args = {"weight": leaf("w", normalized), "bias": leaf("b", normalized)} if affine else {}
    t = op.definition(input=leaf("x", (N, M, K)), normalized_shape=normalized, **args)
    np.testing.assert_allclose(np.asarray(evaluate(t, SIZES, names), float), expected, rtol=1e-10, atol=1e-12)
    code = op.to_numpy(input="x", normalized_shape=normalized, **({"weight": "w", "bias": "b"} if affine else {}))
    np.testing.assert_allclose(_lowered(op, code, names), expected, rtol=1e-10, atol=1e-12)
    shape, valid = op.shape_rule((N, M, K), normalized, *(((normalized, normalized)) if affine else ()))
    assert shape == (N, M, K) and valid == sp.true


def test_layer_norm_normalized_shape_must_be_the_trailing_sizes():
    _, valid = OPERATORS["layer_norm"].shape_rule((N, M), (K,))
    assert valid.subs({M: 3, K: 3}) == sp.true and valid.subs({M: 3, K: 2}) == sp.false
    with pytest.raises(InputError, match="normalized_shape"):
        OPERATORS["layer_norm"].shape_rule((N,), (N, M))
