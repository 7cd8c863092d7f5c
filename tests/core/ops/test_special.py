"""scipy.special normalisers: index definitions and stable lowerings against SciPy."""

import numpy as np
import pytest
import scipy.special as ss
import sympy as sp

from symderive.core.ir import GSum, leaf, size_symbol
from symderive.core.ops import NUMPY_HELPERS, OPERATORS
from symderive.decide.concrete import concrete_int, evaluate, normalise_sizes
from symderive.errors import InputError

N, M, K = size_symbol("n"), size_symbol("m"), size_symbol("k")
SIZES = {"n": 3, "m": 4, "k": 2}


def _concrete(shape, sizes=SIZES):
    return tuple(concrete_int(d, normalise_sizes(sizes)) for d in shape)


def _lowered(op, code, arrays):
    namespace = {"np": np, **arrays}
    for helper in op.numpy_helpers:
        exec(NUMPY_HELPERS[helper], namespace)
    return eval(compile(code, "<lowering>", "eval"), namespace)


AXES = [
    ((N, M), None),
    ((N, M), 0),
    ((N, M), -1),
    ((N, M), (0, 1)),
    ((N, M, K), (0, 2)),
    ((N, M, K), 1),
    ((1, M), 0),
    ((N,), None),
    ((N,), -1),
    ((N, 1), -1),
]


@pytest.mark.parametrize("shape, axis", AXES, ids=[f"{s}-{a}" for s, a in AXES])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normaliser_matches_scipy(name, shape, axis):
    op = OPERATORS[name]
    x = np.random.default_rng(0).normal(size=_concrete(shape)) * 3
    expected = getattr(ss, name)(x, axis=axis)
    t = op.definition(x=leaf("x", shape), axis=axis)
    np.testing.assert_allclose(evaluate(t, SIZES, {"x": x}), expected, rtol=1e-10, atol=1e-12)
    out_shape, _ = op.shape_rule(x=shape, axis=axis)
    assert _concrete(out_shape) == expected.shape
    np.testing.assert_allclose(_lowered(op, op.to_numpy(x="x", axis=axis), {"x": x}), expected, rtol=1e-10)
    assert r"\mathrm{softmax}" in op.to_latex(x="x", axis=axis)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape, axis", AXES, ids=[f"{s}-{a}" for s, a in AXES])
def test_logsumexp_matches_scipy(shape, axis, keepdims):
    op = OPERATORS["logsumexp"]
    a = np.random.default_rng(1).normal(size=_concrete(shape)) * 3
    expected = np.asarray(ss.logsumexp(a, axis=axis, keepdims=keepdims))
    t = op.definition(a=leaf("a", shape), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(evaluate(t, SIZES, {"a": a}), expected, rtol=1e-10)
    out_shape, _ = op.shape_rule(a=shape, axis=axis, keepdims=keepdims)
    assert _concrete(out_shape) == expected.shape
    lowered = _lowered(op, op.to_numpy(a="a", axis=axis, keepdims=keepdims), {"a": a})
    assert np.shape(lowered) == expected.shape
    np.testing.assert_allclose(lowered, expected, rtol=1e-10)


def test_logsumexp_refuses_b_and_return_sign():
    with pytest.raises(InputError, match="b="):
        OPERATORS["logsumexp"].definition(a=leaf("a", (N,)), b=leaf("b", (N,)))
    with pytest.raises(InputError, match="return_sign"):
        OPERATORS["logsumexp"].definition(a=leaf("a", (N,)), return_sign=True)


@pytest.mark.parametrize("shape", [(N, M), (N,), (), (1, K)])
@pytest.mark.parametrize("name", ["expit", "sigmoid"])
def test_expit_matches_scipy(name, shape):
    op = OPERATORS[name]
    x = np.random.default_rng(2).normal(size=_concrete(shape)) * 4
    expected = ss.expit(x)
    np.testing.assert_allclose(evaluate(op.definition(x=leaf("x", shape)), SIZES, {"x": x}), expected, rtol=1e-12)
    np.testing.assert_allclose(_lowered(op, op.to_numpy(x="x"), {"x": x}), expected, rtol=1e-12)


def test_lowerings_are_stable_where_the_plain_form_overflows():
    x = np.array([[1000.0, 999.0, -1000.0], [-800.0, 0.0, 800.0]])
    for name in ("softmax", "log_softmax"):
        op = OPERATORS[name]
        np.testing.assert_allclose(_lowered(op, op.to_numpy(x="x", axis=1), {"x": x}), getattr(ss, name)(x, axis=1))
    op = OPERATORS["logsumexp"]
    np.testing.assert_allclose(_lowered(op, op.to_numpy(a="x", axis=None), {"x": x}), ss.logsumexp(x))
    op = OPERATORS["expit"]
    with np.errstate(over="raise"):
        np.testing.assert_allclose(_lowered(op, op.to_numpy(x="x"), {"x": x}), ss.expit(x))


def test_softmax_definition_is_the_plain_quotient():
    t = OPERATORS["softmax"].definition(x=leaf("s", (N,)))
    i = sp.Symbol("i", integer=True)
    element = t.element((i,))
    numerator, denominator = sp.fraction(element)
    assert numerator.func == sp.exp
    assert isinstance(denominator, GSum)


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "expit"])
def test_lowerings_keep_float32_and_leave_the_input_alone(name, axis):
    op = OPERATORS[name]
    x = (np.random.default_rng(5).normal(size=(3, 5)) * 4).astype(np.float32)
    before = x.copy()
    code = op.to_numpy(x="x") if name == "expit" else op.to_numpy(**{op.params[0].name: "x", "axis": axis})
    out = _lowered(op, code, {"x": x})
    expected = ss.expit(x.astype(float)) if name == "expit" else getattr(ss, name)(x.astype(float), axis=axis)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normalisers_of_integers_and_0d_arrays_are_float64_arrays(name):
    op = OPERATORS[name]
    ints = np.array([[3, -1, 0], [2, 2, 7]])
    out = _lowered(op, op.to_numpy(x="x", axis=1), {"x": ints})
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, getattr(ss, name)(ints.astype(float), axis=1), rtol=1e-12)
    zero_d = _lowered(op, op.to_numpy(x="x", axis=None), {"x": np.asarray(2.5)})
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == ()
    np.testing.assert_allclose(zero_d, getattr(ss, name)(2.5))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((70, 1000), 1),
        ((70, 1000), -1),
        ((70, 1000), 0),  # along the blocked axis: one block
        ((1000, 70), 0),
        ((9, 40, 300), (1, 2)),
        ((9, 40, 300), 1),
        ((300, 300), None),
        ((1, 70000), 1),
        ((70000, 1), 1),
        ((300, 257), 1),
    ],
)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_blocked_normalisers_match_scipy_along_every_axis(name, shape, axis):
    op = OPERATORS[name]
    rng = np.random.default_rng(len(shape) + shape[0])
    x = rng.normal(size=shape) * 4
    before = x.copy()
    saved = np.getbufsize()
    out = _lowered(op, op.to_numpy(x="x", axis=axis), {"x": x})
    np.testing.assert_allclose(out, getattr(ss, name)(x, axis=axis), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(x, before)
    assert np.getbufsize() == saved  # the ufunc buffer size is restored


def test_blocked_normalisers_restore_the_buffer_size_when_they_raise():
    op = OPERATORS["softmax"]
    saved = np.getbufsize()
    x = np.zeros((70, 1000))
    x[40, 1] = -1000.0  # exp(-1000) underflows, in the second block
    with np.errstate(under="raise"), pytest.raises(FloatingPointError):
        _lowered(op, op.to_numpy(x="x", axis=1), {"x": x})
    assert np.getbufsize() == saved
