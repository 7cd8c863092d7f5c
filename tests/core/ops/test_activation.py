"""Activation rows (erf, erfc, softplus, logaddexp, gelu, silu, leaky_relu, elu, F.softplus) and std:
index definitions and NumPy lowerings against SciPy, NumPy and torch.nn.functional on random data
with edge values; derivatives at kinks against torch autograd."""

import numpy as np
import pytest
import scipy.special as ss
import sympy as sp
import torch
import torch.nn.functional as F

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import CONSTANTS, NUMPY_HELPERS, OPERATORS
from symderive.core.parse import parse_tree
from symderive.decide.concrete import evaluate
from symderive.errors import InputError

N, M = size_symbol("n"), size_symbol("m")
SIZES = {"n": 3, "m": 5}
# edge values: 0 (every kink), +-1, large of both signs (softplus's threshold at beta * x = 20)
EDGES = np.array([0.0, 1.0, -1.0, 10.0, -10.0, 10.5, 25.0, -30.0])


def _data(seed: int) -> np.ndarray:
    random = np.random.default_rng(seed).normal(size=(SIZES["n"], SIZES["m"])) * 3
    return np.concatenate([random.ravel(), EDGES])[: SIZES["n"] * SIZES["m"] + len(EDGES)].reshape(-1, 1)


def _lowered(op, code, arrays):
    namespace = {"np": np, **arrays}
    for helper in op.numpy_helpers:
        exec(NUMPY_HELPERS[helper], namespace)
    return eval(compile(code, "<lowering>", "eval"), namespace)


def _torch(fn, x, **kw):
    return fn(torch.tensor(x, dtype=torch.float64), **kw).numpy()


# (row, its options as a claim passes them, the library's value of x)
UNARY = [
    ("erf", {}, ss.erf),
    ("erfc", {}, ss.erfc),
    ("softplus", {}, ss.softplus),
    ("gelu", {}, lambda x: _torch(F.gelu, x)),
    ("gelu", {"approximate": "tanh"}, lambda x: _torch(F.gelu, x, approximate="tanh")),
    ("silu", {}, lambda x: _torch(F.silu, x)),
    ("leaky_relu", {}, lambda x: _torch(F.leaky_relu, x)),
    ("leaky_relu", {"negative_slope": sp.Rational(1, 5)}, lambda x: _torch(F.leaky_relu, x, negative_slope=0.2)),
    ("elu", {}, lambda x: _torch(F.elu, x)),
    ("elu", {"alpha": sp.Rational(1, 2)}, lambda x: _torch(F.elu, x, alpha=0.5)),
    ("F.softplus", {}, lambda x: _torch(F.softplus, x)),
    ("F.softplus", {"beta": sp.Integer(2)}, lambda x: _torch(F.softplus, x, beta=2)),
    (
        "F.softplus",
        {"beta": sp.Rational(1, 2), "threshold": sp.Integer(3)},
        lambda x: _torch(F.softplus, x, beta=0.5, threshold=3),
    ),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw, _ in UNARY]


@pytest.mark.parametrize("name, options, library", UNARY, ids=IDS)
def test_unary_matches_its_library(name, options, library):
    op = OPERATORS[name]
    first = op.params[0].name
    x = _data(len(name))
    expected = library(x)
    shape = (sp.Integer(x.shape[0]), sp.Integer(1))
    t = op.definition(**{first: leaf("x", shape)}, **options)
    np.testing.assert_allclose(evaluate(t, SIZES, {"x": x}).astype(float), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        _lowered(op, op.to_numpy(**{first: "x"}, **options), {"x": x}), expected, rtol=1e-12, atol=1e-14
    )
    assert op.shape_rule(shape, **options) == (shape, sp.true)
    assert op.to_latex(**{first: "x"}, **options)


def test_logaddexp_matches_numpy_with_broadcasting():
    op = OPERATORS["logaddexp"]
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 5)) * 4, rng.normal(size=(1, 5)) * 4
    b[0, 0] = a[0, 0]  # equal arguments
    t = op.definition(x1=leaf("a", (N, M)), x2=leaf("b", (1, M)))
    np.testing.assert_allclose(evaluate(t, SIZES, {"a": a, "b": b}).astype(float), np.logaddexp(a, b), rtol=1e-12)
    np.testing.assert_allclose(_lowered(op, op.to_numpy(x1="a", x2="b"), {"a": a, "b": b}), np.logaddexp(a, b))
    assert op.shape_rule((N, M), (1, M)) == ((N, M), sp.true)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1), -1])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_std_matches_numpy(axis, ddof, keepdims):
    op = OPERATORS["std"]
    a = np.random.default_rng(4).normal(size=(3, 5)) * 2
    expected = np.std(a, axis=axis, ddof=ddof, keepdims=keepdims)
    t = op.definition(a=leaf("a", (N, M)), axis=axis, ddof=ddof, keepdims=keepdims)
    got = np.asarray(evaluate(t, SIZES, {"a": a}), dtype=float)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    code = op.to_numpy(a="a", axis=axis, ddof=ddof, keepdims=keepdims)
    np.testing.assert_allclose(_lowered(op, code, {"a": a}), expected, rtol=1e-12)


# derivatives at kinks (and around them) as torch's autograd gives them
KINKED = [
    ("leaky_relu", {}, lambda t: F.leaky_relu(t)),
    ("leaky_relu", {"negative_slope": sp.Rational(1, 5)}, lambda t: F.leaky_relu(t, negative_slope=0.2)),
    ("elu", {}, lambda t: F.elu(t)),
    ("elu", {"alpha": sp.Rational(1, 2)}, lambda t: F.elu(t, alpha=0.5)),
    ("F.softplus", {}, lambda t: F.softplus(t)),
    ("F.softplus", {"beta": sp.Integer(2)}, lambda t: F.softplus(t, beta=2)),
    ("gelu", {}, lambda t: F.gelu(t)),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ("silu", {}, lambda t: F.silu(t)),
]


@pytest.mark.parametrize("point", [0.0, -0.5, 0.5, 10.0, 10.5, 20.0, 21.0])
@pytest.mark.parametrize("name, options, fn", KINKED, ids=[f"{n}-{o}" for n, o, _ in KINKED])
def test_derivative_is_torch_autograds(name, options, fn, point):
    op = OPERATORS[name]
    x = leaf("x", ())
    s = x.element(())
    value = op.definition(**{op.params[0].name: x}, **options).element(())
    ours = float(sp.diff(value, s).subs(s, sp.nsimplify(point)))
    t = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    fn(t).backward()
    assert ours == pytest.approx(t.grad.item(), rel=1e-12, abs=1e-15)


def test_softplus_spellings_name_their_library():
    n = {"x": (N,)}
    assert parse_tree("F.softplus(x, beta=2)", n, [N]).op == "F.softplus"
    assert parse_tree("torch.nn.functional.softplus(x)", n, [N]).op == "F.softplus"
    assert parse_tree("scipy.special.softplus(x)", n, [N]).op == "softplus"
    assert parse_tree("softplus(x)", n, [N]).op == "softplus"
    with pytest.raises(InputError, match="np.softplus"):
        parse_tree("np.softplus(x)", n, [N])
    with pytest.raises(InputError, match="approximate"):
        parse_tree("gelu(x, approximate='fast')", n, [N])


def test_constants_are_numpys():
    assert float(CONSTANTS["pi"]) == np.pi and float(CONSTANTS["e"]) == np.e
    n = {"x": (N,)}
    for text in ("x * pi", "x * np.pi", "x * e", "x * numpy.e"):
        tree = parse_tree(text, n, [N])
        assert any(isinstance(v, sp.Expr) and v.has(sp.pi, sp.E) for v in _values(tree)), text


def _values(tree):
    # the numbers of a closed-form tree, wherever they sit
    out = [getattr(tree, "value", None)]
    for _, v in getattr(tree, "args", ()):
        out += _values(v) if hasattr(v, "__dataclass_fields__") else []
    return out
