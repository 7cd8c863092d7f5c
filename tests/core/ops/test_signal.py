"""scipy.signal operators: index definitions, shape rules and NumPy lowerings against SciPy."""

import numpy as np
import pytest
import scipy.signal
import sympy as sp

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import NUMPY_HELPERS, OPERATORS, REFUSED_SPELLINGS
from symderive.decide.concrete import Evaluator, evaluate
from symderive.errors import InputError

LIBRARY = {
    "correlate": scipy.signal.correlate,
    "convolve": scipy.signal.convolve,
    "correlate2d": scipy.signal.correlate2d,
    "convolve2d": scipy.signal.convolve2d,
}

# (operator, in1 shape, in2 shape, mode)
CASES = [
    ("correlate", (7, 5), (3, 4), "full"),
    ("correlate", (7, 5), (3, 4), "valid"),
    ("correlate", (7, 5), (4, 2), "same"),
    ("correlate", (6,), (4,), "same"),
    ("correlate", (3, 4), (5, 6), "valid"),  # in2 larger: SciPy swaps, result reversed
    ("correlate", (3, 4), (5, 6), "same"),
    ("correlate", (4, 3), (4, 3), "valid"),  # kernel as large as the input
    ("correlate", (1, 5), (1, 2), "full"),
    ("correlate", (2, 3, 4), (2, 2, 3), "valid"),
    ("correlate", (1,), (1,), "same"),
    ("convolve", (7, 5), (3, 4), "full"),
    ("convolve", (7, 5), (3, 4), "valid"),
    ("convolve", (6, 5), (4, 2), "same"),
    ("convolve", (2, 3), (5, 4), "valid"),
    ("convolve", (5,), (8,), "full"),
    ("convolve", (3, 4), (3, 4), "same"),
    ("correlate2d", (7, 5), (3, 4), "full"),
    ("correlate2d", (6, 5), (4, 2), "same"),  # even kernel: centred unlike correlate
    ("correlate2d", (5, 6), (3, 3), "same"),
    ("correlate2d", (3, 4), (5, 6), "valid"),
    ("correlate2d", (1, 4), (1, 4), "valid"),
    ("convolve2d", (6, 5), (4, 2), "same"),
    ("convolve2d", (7, 5), (3, 4), "valid"),
    ("convolve2d", (2, 3), (4, 5), "valid"),
    ("convolve2d", (4, 1), (2, 1), "full"),
]


def case_id(case):
    op, s1, s2, mode = case
    return f"{op}-{'x'.join(map(str, s1))}-{'x'.join(map(str, s2))}-{mode}"


def symbolic_operands(s1, s2):
    """Leaves with symbolic sizes a0.., b0.., and the sizes dict binding them."""
    a = tuple(size_symbol(f"a{k}") for k in range(len(s1)))
    b = tuple(size_symbol(f"b{k}") for k in range(len(s2)))
    sizes = {**dict(zip(a, s1, strict=True)), **dict(zip(b, s2, strict=True))}
    return leaf("x", a), leaf("w", b), sizes


def random_pair(s1, s2, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(s1), rng.standard_normal(s2)


def helper_namespace(op):
    """``np`` and the helpers the operator lists (only those: the list must be complete)."""
    ns = {"np": np}
    for source in (NUMPY_HELPERS[name] for name in OPERATORS[op].numpy_helpers):
        exec(compile(source, "<symderive helper>", "exec"), ns)  # our own helper sources
    return ns


def run_lowering(op, mode, x, w):
    code = OPERATORS[op].to_numpy(in1="x", in2="w", mode=mode)
    ns = helper_namespace(op)
    ns.update(x=x, w=w)
    return eval(compile(code, "<lowering>", "eval"), ns)  # our own emitted code


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_definition_matches_scipy(case):
    op, s1, s2, mode = case
    x_leaf, w_leaf, sizes = symbolic_operands(s1, s2)
    x, w = random_pair(s1, s2, seed=len(case_id(case)))
    got = evaluate(OPERATORS[op].definition(in1=x_leaf, in2=w_leaf, mode=mode), sizes, {"x": x, "w": w})
    np.testing.assert_allclose(got, LIBRARY[op](x, w, mode), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_shape_rule_matches_scipy(case):
    op, s1, s2, mode = case
    x_leaf, w_leaf, sizes = symbolic_operands(s1, s2)
    shape, valid = OPERATORS[op].shape_rule(in1=x_leaf.shape, in2=w_leaf.shape, mode=mode)
    ev = Evaluator(sizes, {})
    assert ev.truth(valid)
    x, w = random_pair(s1, s2, seed=0)
    assert tuple(int(ev.value(d)) for d in shape) == LIBRARY[op](x, w, mode).shape


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_lowering_matches_scipy(case):
    op, s1, s2, mode = case
    x, w = random_pair(s1, s2, seed=3)
    np.testing.assert_allclose(run_lowering(op, mode, x, w), LIBRARY[op](x, w, mode), rtol=1e-10, atol=1e-12)


LARGE = [
    ("correlate", (64, 48), (3, 5), "same"),
    ("convolve", (96, 80), (40, 33), "full"),  # large kernel: the FFT path
    ("correlate2d", (70, 64), (31, 40), "same"),
    ("correlate", (30, 40), (70, 60), "valid"),
]


@pytest.mark.parametrize("case", LARGE, ids=case_id)
def test_lowering_matches_scipy_large(case):
    op, s1, s2, mode = case
    x, w = random_pair(s1, s2, seed=5)
    np.testing.assert_allclose(run_lowering(op, mode, x, w), LIBRARY[op](x, w, mode), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "op, s1, s2",
    [
        ("correlate", (5, 3), (3, 5)),
        ("convolve", (2, 6), (4, 2)),
        ("correlate2d", (5, 3), (4, 4)),
        ("convolve2d", (1, 3), (2, 2)),
    ],
)
def test_valid_is_false_where_scipy_raises(op, s1, s2):
    x_leaf, w_leaf, sizes = symbolic_operands(s1, s2)
    x, w = random_pair(s1, s2, seed=0)
    with pytest.raises(ValueError):
        LIBRARY[op](x, w, "valid")
    _, valid = OPERATORS[op].shape_rule(in1=x_leaf.shape, in2=w_leaf.shape, mode="valid")
    assert not Evaluator(sizes, {}).truth(valid)
    assert not Evaluator(sizes, {}).truth(OPERATORS[op].definition(in1=x_leaf, in2=w_leaf, mode="valid").valid)
    # the other modes stay defined at the same sizes
    assert Evaluator(sizes, {}).truth(OPERATORS[op].shape_rule(in1=x_leaf.shape, in2=w_leaf.shape, mode="full")[1])


def test_valid_shape_is_piecewise_on_which_operand_is_larger():
    n, k = size_symbol("n"), size_symbol("k")
    shape, valid = OPERATORS["correlate"].shape_rule(in1=(n,), in2=(k,), mode="valid")
    assert isinstance(shape[0], sp.Piecewise)
    assert valid == sp.Or(sp.Ge(n, k), sp.Ge(k, n))


def test_valid_shape_is_plain_when_sizes_decide():
    n = size_symbol("n")
    shape, valid = OPERATORS["convolve"].shape_rule(in1=(n + 2,), in2=(n,), mode="valid")
    assert shape == (sp.Integer(3),) and valid == sp.true


def test_same_centre_of_correlate2d_differs_for_even_kernels():
    x_leaf, w_leaf, sizes = symbolic_operands((5, 5), (2, 2))
    x, w = random_pair((5, 5), (2, 2), seed=9)
    nd = evaluate(OPERATORS["correlate"].definition(in1=x_leaf, in2=w_leaf, mode="same"), sizes, {"x": x, "w": w})
    twod = evaluate(OPERATORS["correlate2d"].definition(in1=x_leaf, in2=w_leaf, mode="same"), sizes, {"x": x, "w": w})
    assert not np.allclose(nd, twod)


def test_scalar_operands_multiply():
    x, w = leaf("x", ()), leaf("w", ())
    got = evaluate(OPERATORS["convolve"].definition(in1=x, in2=w), {}, {"x": np.array(2.0), "w": np.array(-3.0)})
    assert got == scipy.signal.convolve(np.array(2.0), np.array(-3.0))


@pytest.mark.parametrize(
    "op, kwargs, word",
    [
        ("correlate2d", {"boundary": "wrap"}, "boundary"),
        ("convolve2d", {"fillvalue": 1}, "fillvalue"),
        ("correlate", {"mode": "circular"}, "mode"),
        ("convolve", {"method": "fast"}, "method"),
    ],
)
def test_unsupported_options_are_input_errors(op, kwargs, word):
    x_leaf, w_leaf, _ = symbolic_operands((3, 3), (2, 2))
    with pytest.raises(InputError, match=word):
        OPERATORS[op].definition(in1=x_leaf, in2=w_leaf, **kwargs)


@pytest.mark.parametrize("op", ["correlate", "correlate2d"])
def test_rank_mismatch_is_an_input_error(op):
    x_leaf, w_leaf, _ = symbolic_operands((3, 3), (2,))
    with pytest.raises(InputError, match="dimensions"):
        OPERATORS[op].definition(in1=x_leaf, in2=w_leaf)


def test_correlate2d_needs_2d_arrays():
    x_leaf, w_leaf, _ = symbolic_operands((3,), (2,))
    with pytest.raises(InputError, match="2-D"):
        OPERATORS["correlate2d"].definition(in1=x_leaf, in2=w_leaf)


def test_numpy_spellings_are_refused():
    assert "np.convolve" in REFUSED_SPELLINGS and "np.correlate" in REFUSED_SPELLINGS


def test_latex_names_the_mode():
    assert (
        OPERATORS["convolve"].to_latex(in1="x", in2="w", mode="full")
        == r"\left(x \mathbin{\ast_{\mathrm{full}}} w\right)"
    )
    assert r"\star_{\mathrm{valid}}" in OPERATORS["correlate2d"].to_latex(in1="x", in2="w", mode="valid")


# -- the lowering's four methods, each chosen by its cost model, and dtypes ------------------
BRANCHES = ("_sd_valid_flat", "_sd_valid_kernel_loop", "_sd_valid_output_loop", "_sd_valid_fft")

# (operator, in1 shape, in2 shape, mode, the method the cost model must pick, in float64 and float32)
METHOD_CASES = [
    ("correlate", (40, 37), (3, 4), "valid", "_sd_valid_flat"),  # small: one stacked copy per tap
    ("convolve", (38, 34), (3, 4), "full", "_sd_valid_flat"),  # the input gradient: padded region
    ("correlate2d", (33, 29), (4, 2), "same", "_sd_valid_flat"),
    ("correlate", (300,), (7,), "same", "_sd_valid_flat"),
    ("correlate", (30, 27), (27, 25), "valid", "_sd_valid_flat"),  # tiny output: one stacked copy per output
    ("correlate", (9, 8), (12, 13), "valid", "_sd_valid_flat"),  # in2 larger: zero-padded region
    ("correlate", (6, 7, 8), (5, 6, 6), "valid", "_sd_valid_flat"),
    ("convolve", (25, 31), (25, 31), "valid", "_sd_valid_flat"),  # kernel as large as the input
    ("correlate", (1000,), (990,), "valid", "_sd_valid_flat"),
    ("correlate", (1, 70), (1, 3), "full", "_sd_valid_flat"),  # size-1 rows
    ("correlate", (64, 64), (3, 3), "valid", "_sd_valid_flat"),  # the seed layer's benchmark: forward,
    ("convolve", (62, 62), (3, 3), "full", "_sd_valid_flat"),  # input gradient
    ("correlate", (64, 64), (62, 62), "valid", "_sd_valid_flat"),  # and weight gradient
    ("correlate", (300, 280), (3, 4), "valid", "_sd_valid_kernel_loop"),  # stacked copies too large for cache
    ("convolve", (300, 290), (3, 4), "full", "_sd_valid_kernel_loop"),
    ("correlate2d", (200, 190), (4, 2), "same", "_sd_valid_kernel_loop"),
    ("correlate", (100000,), (7,), "same", "_sd_valid_kernel_loop"),
    ("correlate", (300, 290), (297, 288), "valid", "_sd_valid_output_loop"),  # the weight gradient
    ("correlate", (297, 288), (300, 290), "valid", "_sd_valid_output_loop"),  # in2 larger: zero-padded region
    ("correlate", (40, 50, 60), (37, 48, 58), "valid", "_sd_valid_output_loop"),
    ("convolve", (96, 80), (40, 33), "full", "_sd_valid_fft"),
    ("correlate", (120, 90), (50, 41), "same", "_sd_valid_fft"),
    ("correlate", (3000,), (1500,), "full", "_sd_valid_fft"),
]


def method_id(case):
    return case_id(case[:4]) + "-" + case[4].removeprefix("_sd_valid_")


def run_lowering_recording(op, mode, x, w):
    """The lowering's result and the names of the methods it called."""
    ns = helper_namespace(op)
    called = []
    for name in BRANCHES:
        ns[name] = (lambda f, n: lambda *args: (called.append(n), f(*args))[1])(ns[name], name)
    ns.update(x=x, w=w)
    code = OPERATORS[op].to_numpy(in1="x", in2="w", mode=mode)
    return eval(compile(code, "<lowering>", "eval"), ns), called  # our own emitted code


@pytest.mark.parametrize("case", METHOD_CASES, ids=method_id)
def test_each_method_matches_scipy_in_float64(case):
    op, s1, s2, mode, method = case
    x, w = random_pair(s1, s2, seed=11)
    got, called = run_lowering_recording(op, mode, x, w)
    assert called == [method]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, LIBRARY[op](x, w, mode), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", METHOD_CASES, ids=method_id)
def test_each_method_keeps_float32(case):
    op, s1, s2, mode, method = case
    x, w = (a.astype(np.float32) for a in random_pair(s1, s2, seed=12))
    got, called = run_lowering_recording(op, mode, x, w)
    expected = LIBRARY[op](x, w, mode)
    assert called == [method]
    assert got.dtype == expected.dtype == np.float32
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * scale)


def test_mixed_and_integer_inputs_promote_as_numpy():
    x, w = random_pair((9, 7), (3, 2), seed=13)
    got = run_lowering("correlate", "valid", x.astype(np.float32), w)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, scipy.signal.correlate(x.astype(np.float32), w, "valid"), rtol=1e-6)
    xi, wi = np.arange(12).reshape(3, 4), np.array([[2, -1], [0, 3]])
    np.testing.assert_array_equal(run_lowering("convolve2d", "full", xi, wi), scipy.signal.convolve2d(xi, wi))


def test_seed_layer_shapes_take_the_direct_loops():
    """Forward and weight gradient of a small-kernel layer (SciPy picks the FFT there): the direct loops, same result."""
    rng = np.random.default_rng(14)
    x, w = rng.standard_normal((128, 128)), rng.standard_normal((5, 5))
    g = rng.standard_normal((124, 124))
    for a, b, mode, method in [(x, w, "valid", "_sd_valid_kernel_loop"), (x, g, "valid", "_sd_valid_output_loop")]:
        got, called = run_lowering_recording("correlate", mode, a, b)
        assert called == [method]
        np.testing.assert_allclose(got, scipy.signal.correlate(a, b, mode, method="fft"), rtol=1e-9, atol=1e-9)


def random_signal_case(rng):
    """(operator, in1, in2, mode) with random sizes from 1 up, in2 up to as large as in1 (or larger, for valid)."""
    op = str(rng.choice(list(LIBRARY)))
    ndim = 2 if op.endswith("2d") else int(rng.integers(1, 4))
    mode = str(rng.choice(["full", "valid", "same"]))
    s1 = tuple(int(v) for v in rng.integers(1, 13, ndim))
    s2 = tuple(int(rng.integers(1, n + 1)) for n in s1)
    if mode == "valid" and rng.random() < 0.3:
        s1, s2 = s2, s1  # SciPy swaps the operands when in2 is the larger
    return op, rng.standard_normal(s1), rng.standard_normal(s2), mode


def strided(a, rng):
    """a itself, or the same values in a non-contiguous array (reversed, or a transposed copy transposed back)."""
    pick = rng.integers(0, 3)
    if pick == 1:
        return np.flip(np.flip(a).copy())
    if pick == 2:
        return np.ascontiguousarray(a.T).T
    return a


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(3))
def test_lowering_matches_scipy_on_random_small_cases(seed, dtype):
    """Random shapes in 1-3 dimensions, every mode, non-contiguous inputs: both stackings of the flat method."""
    rng = np.random.default_rng(300 + seed)
    seen = set()
    for _ in range(80):
        op, x, w, mode = random_signal_case(rng)
        x, w = x.astype(dtype), w.astype(dtype)
        got, called = run_lowering_recording(op, mode, strided(x, rng), strided(w, rng))
        expected = LIBRARY[op](x, w, mode)
        assert got.dtype == expected.dtype == dtype and got.shape == expected.shape, (op, x.shape, w.shape, mode)
        atol = (1e-12 if dtype == np.float64 else 2e-6) * max(np.abs(expected).max(), 1.0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol, err_msg=f"{op} {x.shape} {w.shape} {mode}")
        seen.update(called)
        seen.add("taps stacked" if w.size <= got.size else "outputs stacked")
    assert {"_sd_valid_flat", "taps stacked", "outputs stacked"} <= seen
