"""Elementwise operators against NumPy: values, broadcast shapes, validity, lowerings, kinks."""

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import NUMPY_HELPERS, OPERATORS
from symderive.decide.concrete import Evaluator, concrete_int, evaluate, normalise_sizes
from symderive.errors import InputError

N, M, K = size_symbol("n"), size_symbol("m"), size_symbol("k")
SIZES = {"n": 3, "m": 4, "k": 2}


def _array(rng, shape, domain):
    x = rng.normal(size=shape)
    if domain == "positive":
        return np.abs(x) + 0.5
    if domain == "unit":
        return np.tanh(x) * 0.9
    return x


def _concrete(shape, sizes):
    return tuple(concrete_int(d, normalise_sizes(sizes)) for d in shape)


def check_against_numpy(op_name, inputs, options, expected_fn, sizes=SIZES, seed=0, domains=None):
    """Build ``op`` on symbolic leaves, evaluate, compare with ``expected_fn`` and the lowering."""
    op = OPERATORS[op_name]
    rng = np.random.default_rng(seed)
    domains = domains or {}
    arrays, tensors, shapes = {}, {}, {}
    for param, (name, shape) in inputs.items():
        arrays[name] = _array(rng, _concrete(shape, sizes), domains.get(param, "real"))
        tensors[param] = leaf(name, shape)
        shapes[param] = shape
    expected = expected_fn(**{p: arrays[name] for p, (name, _) in inputs.items()}, **options)
    got = evaluate(op.definition(**tensors, **options), sizes, arrays)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    shape, valid = op.shape_rule(**shapes, **options)
    assert _concrete(shape, sizes) == np.shape(expected)
    assert Evaluator(normalise_sizes(sizes), {}).truth(valid)
    namespace = {"np": np, **arrays}
    for helper in op.numpy_helpers:
        exec(NUMPY_HELPERS[helper], namespace)
    code = op.to_numpy(**{p: name for p, (name, _) in inputs.items()}, **options)
    lowered = eval(compile(code, "<lowering>", "eval"), namespace)
    np.testing.assert_allclose(lowered, expected, rtol=1e-10, atol=1e-12)
    assert isinstance(op.to_latex(**{p: name for p, (name, _) in inputs.items()}, **options), str)


BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
}

BROADCASTS = [
    pytest.param((N, M), (N, M), id="same"),
    pytest.param((N, 1), (M,), id="column-row"),
    pytest.param((1,), (N, M), id="one-vs-matrix"),
    pytest.param((), (N,), id="scalar-vector"),
    pytest.param((K, 1, M), (N, 1), id="rank3"),
    pytest.param((N, M), (1, 1), id="ones"),
]


@pytest.mark.parametrize("s1, s2", BROADCASTS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_matches_numpy(name, s1, s2):
    domains = {"x1": "positive", "x2": "positive"} if name in ("power", "divide") else {}

    def expected(x1, x2):
        return BINARY[name](x1, x2).astype(float)

    check_against_numpy(name, {"x1": ("a", s1), "x2": ("b", s2)}, {}, expected, domains=domains)


def test_comparisons_see_equal_elements():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 3.0, 2.0])
    for name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal"):
        t = OPERATORS[name].definition(x1=leaf("a", (N,)), x2=leaf("b", (N,)))
        np.testing.assert_array_equal(evaluate(t, {"n": 3}, {"a": a, "b": b}), BINARY[name](a, b).astype(float))


UNARY = {
    "exp": (np.exp, "real"),
    "log": (np.log, "positive"),
    "sqrt": (np.sqrt, "positive"),
    "square": (np.square, "real"),
    "tanh": (np.tanh, "real"),
    "sinh": (np.sinh, "real"),
    "cosh": (np.cosh, "real"),
    "sin": (np.sin, "real"),
    "cos": (np.cos, "real"),
    "log1p": (np.log1p, "unit"),
    "expm1": (np.expm1, "real"),
    "abs": (np.abs, "real"),
    "sign": (np.sign, "real"),
    "negative": (np.negative, "real"),
    "positive": (np.positive, "real"),
}


@pytest.mark.parametrize("shape", [(N, M), (1,), (N, 1, K), ()], ids=["nm", "1", "n1k", "scalar"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_numpy(name, shape):
    fn, domain = UNARY[name]
    check_against_numpy(name, {"x": ("a", shape)}, {}, lambda x: fn(x), domains={"x": domain})


@pytest.mark.parametrize(
    "shapes",
    [((N, M), (), ()), ((N, M), (M,), (N, 1)), ((N,), (1,), (N,)), ((K, N), (N,), ())],
    ids=["scalar-bounds", "broadcast-bounds", "vector", "row-bound"],
)
def test_clip_matches_numpy(shapes):
    sa, slo, shi = shapes
    op = OPERATORS["clip"]
    rng = np.random.default_rng(1)
    sizes = normalise_sizes(SIZES)
    a, lo, hi = (rng.normal(size=_concrete(s, SIZES)) for s in shapes)
    hi = hi + 1.0  # mostly above a_min, so both bounds bite somewhere
    t = op.definition(a=leaf("a", sa), a_min=leaf("lo", slo), a_max=leaf("hi", shi))
    got = evaluate(t, SIZES, {"a": a, "lo": lo, "hi": hi})
    np.testing.assert_allclose(got, np.clip(a, lo, hi))
    shape, _ = op.shape_rule(a=sa, a_min=slo, a_max=shi)
    assert tuple(concrete_int(d, sizes) for d in shape) == np.clip(a, lo, hi).shape
    lowered = eval(op.to_numpy(a="a", a_min="lo", a_max="hi"), {"np": np, "a": a, "lo": lo, "hi": hi})
    np.testing.assert_allclose(lowered, np.clip(a, lo, hi))


def test_clip_with_one_bound_and_crossed_bounds():
    a = np.array([-2.0, -0.5, 0.3, 1.7])
    t = OPERATORS["clip"].definition(a=leaf("a", (N,)), a_max=leaf("hi", ()))
    np.testing.assert_allclose(evaluate(t, {"n": 4}, {"a": a, "hi": np.array(0.2)}), np.clip(a, None, 0.2))
    t = OPERATORS["clip"].definition(a=leaf("a", (N,)), a_min=leaf("lo", ()), a_max=leaf("hi", ()))
    crossed = {"a": a, "lo": np.array(1.0), "hi": np.array(-1.0)}
    np.testing.assert_allclose(evaluate(t, {"n": 4}, crossed), np.clip(a, 1.0, -1.0))
    with pytest.raises(InputError):
        OPERATORS["clip"].definition(a=leaf("a", (N,)))


@pytest.mark.parametrize(
    "shapes", [((N, M), (N, M), (N, M)), ((N, 1), (M,), ()), ((M,), (N, M), (1, M))], ids=["same", "mixed", "rows"]
)
def test_where_matches_numpy(shapes):
    sc, sx, sy = shapes
    rng = np.random.default_rng(2)
    c = (rng.normal(size=_concrete(sc, SIZES)) > 0).astype(float)
    x, y = (rng.normal(size=_concrete(s, SIZES)) for s in (sx, sy))
    t = OPERATORS["where"].definition(condition=leaf("c", sc), x=leaf("x", sx), y=leaf("y", sy))
    np.testing.assert_allclose(evaluate(t, SIZES, {"c": c, "x": x, "y": y}), np.where(c, x, y))
    lowered = eval(OPERATORS["where"].to_numpy(condition="c", x="x", y="y"), {"np": np, "c": c, "x": x, "y": y})
    np.testing.assert_allclose(lowered, np.where(c, x, y))


@pytest.mark.parametrize(
    "s1, s2, sizes, ok",
    [
        ((N,), (M,), {"n": 2, "m": 3}, False),
        ((N,), (M,), {"n": 2, "m": 1}, True),
        ((N,), (M,), {"n": 3, "m": 3}, True),
        ((N, 1), (M, K), {"n": 2, "m": 3, "k": 4}, False),
        ((N, 1), (M, K), {"n": 3, "m": 3, "k": 4}, True),
    ],
)
def test_broadcast_validity_is_numpys(s1, s2, sizes, ok):
    shape, valid = OPERATORS["add"].shape_rule(x1=s1, x2=s2)
    assert Evaluator(normalise_sizes(sizes), {}).truth(valid) is ok
    try:
        expected = np.add(np.zeros(_concrete(s1, sizes)), np.zeros(_concrete(s2, sizes)))
    except ValueError:
        assert not ok
    else:
        assert ok and _concrete(shape, sizes) == expected.shape


# -- kinks take PyTorch's derivative --------------------------------------------------
def _sympy_grads(expr, symbols, point):
    return [float(sp.diff(expr, s).subs(point)) for s in symbols]


def _torch_grads(fn, values):
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    fn(*ts).backward()
    return [t.grad.item() for t in ts]


def test_abs_derivative_at_zero_is_torchs():
    x = sp.Symbol("x", real=True)
    expr = OPERATORS["abs"].definition(x=leaf("x", ())).at(())
    assert _sympy_grads(expr, [x], {x: 0}) == _torch_grads(torch.abs, [0.0])
    assert _sympy_grads(expr, [x], {x: -1.5}) == _torch_grads(torch.abs, [-1.5])


def test_sign_derivative_is_zero_everywhere():
    x = sp.Symbol("x", real=True)
    expr = OPERATORS["sign"].definition(x=leaf("x", ())).at(())
    for v in (0.0, 2.0):
        assert _sympy_grads(expr, [x], {x: v}) == _torch_grads(torch.sign, [v])


@pytest.mark.parametrize("name, fn", [("maximum", torch.maximum), ("minimum", torch.minimum)])
@pytest.mark.parametrize("a, b", [(1.0, 1.0), (2.0, -1.0), (-3.0, 0.5)])
def test_maximum_minimum_derivative_is_torchs(name, fn, a, b):
    x1, x2 = sp.Symbol("p", real=True), sp.Symbol("q", real=True)
    expr = OPERATORS[name].definition(x1=leaf("p", ()), x2=leaf("q", ())).at(())
    assert _sympy_grads(expr, [x1, x2], {x1: a, x2: b}) == _torch_grads(fn, [a, b])


@pytest.mark.parametrize("a", [0.0, 1.0, -0.5, 2.0, -3.0])
def test_clip_derivative_at_bounds_is_torch_clamps(a):
    x, lo, hi = (sp.Symbol(s, real=True) for s in ("a", "lo", "hi"))
    expr = OPERATORS["clip"].definition(a=leaf("a", ()), a_min=leaf("lo", ()), a_max=leaf("hi", ())).at(())
    point = {x: a, lo: -0.5, hi: 1.0}
    expected = _torch_grads(lambda t, mn, mx: torch.clamp(t, mn, mx), [a, -0.5, 1.0])
    assert _sympy_grads(expr, [x, lo, hi], point) == expected


# a value undefined everywhere (a division by a literal zero, log of 0) inside an operator that
# compares (relu, maximum, abs, sign, clip, comparisons, where's condition): refuted, never a crash
UNDEFINED_EVERYWHERE = [
    "relu(x / 0)",
    "(x / 0) > 0",
    "abs(x / 0)",
    "g * (x / zeros_like(x) > 0)",
    "relu(log(0 * x))",
    "maximum(x / 0, 0)",
    "where(x / 0 > 0, g, 0)",
    "clip(x / 0, 0, 1)",
    "sign(x / 0)",
    "g * (sum(x / 0) > 0)",
]


@pytest.mark.parametrize("claim", UNDEFINED_EVERYWHERE)
def test_an_operator_comparing_a_value_undefined_everywhere_is_refuted_not_a_crash(claim):
    from symderive.cli import main

    # relu's gradient is g * (x > 0), finite everywhere; each claim is nan or a constant guard there
    assert main(["prove", "relu", "--wrt", "x", claim]) == 1


def test_a_comparison_of_a_value_undefined_everywhere_is_false_as_in_numpy():
    from symderive.model.layer import load_layer
    from symderive.prove import prove

    # 0 * (x/0 > 0) adds 0 whatever x / 0 is: NumPy computes exactly relu's gradient
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.array([-1.0, 0.0, 2.0])
        assert np.array_equal(1.0 * (x > 0) + 0 * (x / 0 > 0), 1.0 * (x > 0))
    assert prove(load_layer("relu"), "x", "g * (x > 0) + 0 * (x / 0 > 0)").verdict == "proved"
