"""Reductions against NumPy: values, shapes, lowerings; ReduceMax's derivative against torch.amax."""

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.core.ir import leaf, read, size_symbol
from symderive.core.ops import OPERATORS
from symderive.decide.concrete import Evaluator, concrete_int, evaluate, is_valid_at, normalise_sizes
from symderive.errors import InputError

N, M, K = size_symbol("n"), size_symbol("m"), size_symbol("k")
SIZES = {"n": 3, "m": 4, "k": 2}

REDUCTIONS = {
    "sum": np.sum,
    "mean": np.mean,
    "var": np.var,
    "max": np.max,
    "amax": np.amax,
    "min": np.min,
    "amin": np.amin,
}

CASES = [
    ((N, M), None, False),
    ((N, M), 0, False),
    ((N, M), -1, True),
    ((N, M), (0, 1), True),
    ((N, M, K), (0, -1), False),
    ((N, M, K), 1, True),
    ((1, M), 0, False),
    ((N, 1), -1, False),
    ((N,), None, True),
    ((N,), 0, False),
]


def _concrete(shape, sizes=SIZES):
    return tuple(concrete_int(d, normalise_sizes(sizes)) for d in shape)


@pytest.mark.parametrize("shape, axis, keepdims", CASES, ids=[f"{s}-{a}-{k}" for s, a, k in CASES])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_matches_numpy(name, shape, axis, keepdims):
    op = OPERATORS[name]
    a = np.random.default_rng(0).normal(size=_concrete(shape))
    expected = np.asarray(REDUCTIONS[name](a, axis=axis, keepdims=keepdims))
    t = op.definition(a=leaf("a", shape), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(evaluate(t, SIZES, {"a": a}), expected, rtol=1e-10, atol=1e-12)
    out_shape, _ = op.shape_rule(a=shape, axis=axis, keepdims=keepdims)
    assert _concrete(out_shape) == expected.shape
    lowered = eval(op.to_numpy(a="a", axis=axis, keepdims=keepdims), {"np": np, "a": a})
    np.testing.assert_allclose(lowered, expected, rtol=1e-10, atol=1e-12)
    assert isinstance(op.to_latex(a="a", axis=axis, keepdims=keepdims), str)


@pytest.mark.parametrize("ddof, axis", [(1, None), (1, 0), (2, -1), (0, (0, 1))])
def test_var_ddof_matches_numpy(ddof, axis):
    op = OPERATORS["var"]
    a = np.random.default_rng(1).normal(size=(3, 4))
    expected = np.var(a, axis=axis, ddof=ddof)
    t = op.definition(a=leaf("a", (N, M)), axis=axis, ddof=ddof)
    np.testing.assert_allclose(evaluate(t, SIZES, {"a": a}), expected, rtol=1e-10)
    lowered = eval(op.to_numpy(a="a", axis=axis, ddof=ddof), {"np": np, "a": a})
    np.testing.assert_allclose(lowered, expected, rtol=1e-10)


def test_var_without_degrees_of_freedom_is_invalid():
    t = OPERATORS["var"].definition(a=leaf("a", (N,)), ddof=1)
    assert not is_valid_at(t, normalise_sizes({"n": 1}))
    assert is_valid_at(t, normalise_sizes({"n": 2}))


def test_bad_axis_and_unsupported_arguments_are_input_errors():
    with pytest.raises(InputError):
        OPERATORS["sum"].definition(a=leaf("a", (N, M)), axis=2)
    with pytest.raises(InputError):
        OPERATORS["sum"].definition(a=leaf("a", (N, M)), axis=(0, -2))
    with pytest.raises(InputError):
        OPERATORS["max"].definition(a=leaf("a", (N,)), out=leaf("o", ()))


@pytest.mark.parametrize(
    "values",
    [[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 2.0, 2.0], [0.5, -1.0, 4.0, 1.0]],
    ids=["tie-of-two", "all-tied", "unique"],
)
@pytest.mark.parametrize("name, fn", [("amax", torch.amax), ("amin", torch.amin), ("max", torch.amax)])
def test_extreme_derivative_splits_ties_like_torch(name, fn, values):
    expr = OPERATORS[name].definition(a=leaf("a", (N,))).at(())
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    fn(x, dim=0).backward()
    subs = {read("a", (sp.Integer(p),)): v for p, v in enumerate(values)}
    for p in range(len(values)):
        d = sp.diff(expr, read("a", (sp.Integer(p),)))
        got = evaluate_scalar(d.xreplace({N: len(values)}).doit(), subs)
        assert got == pytest.approx(x.grad[p].item())


def evaluate_scalar(expr, subs):
    """A scalar expression's value with ``a`` read from ``subs`` (index -> value)."""
    values = {"a": np.array([subs[k] for k in sorted(subs, key=lambda r: int(r.indices[0]))])}
    return float(Evaluator({}, values).value(expr))
