"""torch.nn.functional operators: index definitions, shape rules and NumPy lowerings against PyTorch."""

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import NUMPY_HELPERS, OPERATORS
from symderive.decide.concrete import Evaluator, evaluate
from symderive.errors import InputError

TORCH = {
    "conv1d": F.conv1d,
    "conv2d": F.conv2d,
    "conv_transpose1d": F.conv_transpose1d,
    "conv_transpose2d": F.conv_transpose2d,
}

# (operator, input shape, weight shape, with bias, options)
CONV_CASES = [
    ("conv2d", (1, 1, 5, 4), (1, 1, 3, 2), False, {}),
    ("conv2d", (2, 3, 5, 6), (2, 3, 2, 3), True, {}),
    ("conv2d", (1, 2, 7, 6), (3, 2, 3, 2), True, {"stride": 2}),  # stride not dividing the input
    ("conv2d", (1, 1, 7, 8), (2, 1, 2, 3), False, {"stride": (2, 3), "padding": (1, 2)}),
    ("conv2d", (1, 2, 7, 7), (2, 2, 2, 3), True, {"dilation": 2, "padding": 1}),
    ("conv2d", (1, 4, 5, 4), (6, 2, 2, 2), True, {"groups": 2}),
    ("conv2d", (2, 3, 4, 5), (3, 1, 3, 2), False, {"groups": 3}),  # depthwise
    ("conv2d", (1, 2, 5, 4), (2, 2, 2, 3), True, {"padding": "same"}),  # even kernel: extra pad on the right
    ("conv2d", (1, 2, 6, 5), (2, 1, 3, 2), False, {"padding": "same", "dilation": (2, 1), "groups": 2}),
    ("conv2d", (2, 4, 3), (3, 2, 4, 3), True, {"padding": "valid"}),  # unbatched, kernel as large as the input
    ("conv2d", (1, 1, 1, 4), (1, 1, 1, 4), False, {}),
    ("conv1d", (2, 3, 7), (4, 3, 3), True, {}),
    ("conv1d", (1, 2, 9), (2, 2, 2), False, {"stride": 3, "dilation": 2, "padding": 1}),
    ("conv1d", (3, 6), (2, 3, 2), True, {"groups": 1}),  # unbatched
    ("conv1d", (1, 4, 6), (4, 2, 3), False, {"groups": 2, "padding": "same"}),
    ("conv_transpose2d", (1, 1, 3, 4), (1, 1, 2, 3), False, {}),
    ("conv_transpose2d", (2, 3, 3, 2), (3, 2, 3, 2), True, {"stride": 2}),
    ("conv_transpose2d", (1, 2, 3, 4), (2, 1, 3, 3), True, {"stride": (2, 3), "padding": 1, "output_padding": (1, 2)}),
    ("conv_transpose2d", (1, 4, 2, 3), (4, 2, 2, 2), True, {"groups": 2, "dilation": 2}),
    (
        "conv_transpose2d",
        (1, 2, 3, 3),
        (2, 1, 2, 2),
        False,
        {"groups": 2, "stride": 2, "dilation": 3, "output_padding": 2},
    ),
    ("conv_transpose2d", (2, 3, 4), (2, 3, 2, 2), True, {"padding": (0, 1)}),  # unbatched
    ("conv_transpose1d", (2, 3, 4), (3, 2, 3), True, {"stride": 3, "output_padding": 1}),
    ("conv_transpose1d", (1, 4, 5), (4, 1, 2), False, {"groups": 4, "padding": 1}),  # depthwise
    ("conv_transpose1d", (2, 1), (2, 3, 1), True, {}),  # unbatched, length 1
]


def case_id(case):
    op, xs, ws, bias, options = case
    opts = "-".join(f"{k}={v}" for k, v in options.items()).replace(" ", "")
    return f"{op}-{'x'.join(map(str, xs))}-{'x'.join(map(str, ws))}{'-b' if bias else ''}-{opts}"


def conv_operands(xs, ws, bias):
    """Leaves with symbolic sizes, the sizes dict, and random float64 values."""
    x_syms = tuple(size_symbol(f"x{k}") for k in range(len(xs)))
    w_syms = tuple(size_symbol(f"w{k}") for k in range(len(ws)))
    sizes = {**dict(zip(x_syms, xs, strict=True)), **dict(zip(w_syms, ws, strict=True))}
    rng = np.random.default_rng(sum(xs) * 31 + sum(ws))
    values = {"x": rng.standard_normal(xs), "w": rng.standard_normal(ws)}
    leaves = {"input": leaf("x", x_syms), "weight": leaf("w", w_syms)}
    if bias:
        b_sym = size_symbol("b0")
        # the bias length is a size of its own (bound by bind_bias): its match with C_out is part of `valid`
        leaves["bias"] = leaf("b", (b_sym,))
    return leaves, sizes, values


def is_transposed(op):
    return op is not None and op.startswith("conv_transpose")


def bind_bias(op, ws, options, leaves, sizes, values):
    if "bias" not in leaves:
        return None
    c_out = ws[1] * options.get("groups", 1) if is_transposed(op) else ws[0]
    sizes[size_symbol("b0")] = c_out
    values["b"] = np.random.default_rng(c_out).standard_normal(c_out)
    return values["b"]


def setup(case):
    op, xs, ws, bias, options = case
    leaves, sizes, values = conv_operands(xs, ws, bias)
    bind_bias(op, ws, options, leaves, sizes, values)
    t = {k: torch.from_numpy(v) for k, v in values.items()}
    expected = TORCH[op](t["x"], t["w"], t.get("b"), **options).numpy()
    return op, leaves, sizes, values, options, expected


class PoisonedNumpy:
    """NumPy whose ``empty`` hands back signalling NaNs: arithmetic on a value never written raises under errstate."""

    SIGNALLING = {np.dtype(np.float64): (np.uint64, 0x7FF0000000000001), np.dtype(np.float32): (np.uint32, 0x7F800001)}

    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, shape, dtype=float, **kwargs):
        a = np.empty(shape, dtype=dtype, **kwargs)
        bits, value = self.SIGNALLING[a.dtype]
        a.view(bits).fill(value)
        return a

    def empty_like(self, a, dtype=None, **kwargs):
        return self.empty(a.shape, a.dtype if dtype is None else dtype)


def helper_namespace(op, numpy=np):
    """``np`` (or a stand-in) and the helpers the operator lists (only those: the list must be complete)."""
    ns = {"np": numpy}
    for source in (NUMPY_HELPERS[name] for name in OPERATORS[op].numpy_helpers):
        exec(compile(source, "<symderive helper>", "exec"), ns)  # our own helper sources
    return ns


def run_lowering(op, arg_codes, values, options, numpy=np):
    code = OPERATORS[op].to_numpy(**arg_codes, **options)
    ns = helper_namespace(op, numpy)
    ns.update(values)
    with np.errstate(invalid="raise"):  # with PoisonedNumpy: no arithmetic on a value never written
        return eval(compile(code, "<lowering>", "eval"), ns)  # our own emitted code


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv_definition_matches_torch(case):
    op, leaves, sizes, values, options, expected = setup(case)
    got = evaluate(OPERATORS[op].definition(**leaves, **options), sizes, values)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv_shape_rule_matches_torch(case):
    op, leaves, sizes, values, options, expected = setup(case)
    shapes = {k: v.shape for k, v in leaves.items()}
    shape, valid = OPERATORS[op].shape_rule(**shapes, **options)
    ev = Evaluator(sizes, {})
    assert ev.truth(valid)
    assert tuple(int(ev.value(d)) for d in shape) == expected.shape


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv_lowering_matches_torch(case):
    op, leaves, sizes, values, options, expected = setup(case)
    codes = {"input": "x", "weight": "w", **({"bias": "b"} if "bias" in leaves else {})}
    np.testing.assert_allclose(run_lowering(op, codes, values, options), expected, rtol=1e-10, atol=1e-12)


LARGE = [
    ("conv2d", (2, 4, 40, 33), (6, 2, 5, 4), True, {"stride": 2, "padding": 2, "groups": 2}),
    ("conv2d", (5, 3, 30, 28), (4, 3, 27, 26), True, {"stride": 1}),  # weight-gradient shape: taps >> positions
    ("conv_transpose2d", (2, 4, 17, 21), (4, 3, 3, 5), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ("conv1d", (3, 4, 101), (8, 4, 7), True, {"dilation": 3}),
]


@pytest.mark.parametrize("case", LARGE, ids=case_id)
def test_conv_lowering_matches_torch_large(case):
    op, leaves, sizes, values, options, expected = setup(case)
    codes = {"input": "x", "weight": "w", "bias": "b"}
    np.testing.assert_allclose(run_lowering(op, codes, values, options), expected, rtol=1e-9, atol=1e-9)


INVALID = [
    ("conv2d", (1, 3, 5, 5), (2, 2, 3, 3), False, {}),  # channel mismatch
    ("conv2d", (1, 4, 5, 5), (3, 2, 3, 3), False, {"groups": 2}),  # C_out not divisible by groups
    ("conv2d", (1, 1, 3, 5), (1, 1, 4, 2), False, {}),  # kernel larger than the input
    ("conv1d", (1, 1, 4), (1, 1, 3), False, {"dilation": 2}),  # dilated kernel too large
    ("conv_transpose2d", (1, 3, 3, 3), (2, 1, 2, 2), False, {}),  # channel mismatch
    ("conv_transpose1d", (1, 1, 3), (1, 1, 2), False, {"stride": 2, "output_padding": 2}),  # output_padding too big
    ("conv_transpose1d", (1, 1, 1), (1, 1, 1), False, {"padding": 1}),  # empty output
]


@pytest.mark.parametrize("case", INVALID, ids=case_id)
def test_valid_is_false_where_torch_raises(case):
    op, xs, ws, bias, options = case
    leaves, sizes, values = conv_operands(xs, ws, bias)
    with pytest.raises(RuntimeError):
        TORCH[op](torch.from_numpy(values["x"]), torch.from_numpy(values["w"]), None, **options)
    _, valid = OPERATORS[op].shape_rule(**{k: v.shape for k, v in leaves.items()}, **options)
    assert not Evaluator(sizes, {}).truth(valid)


def test_bias_length_must_match_output_channels():
    leaves, sizes, _ = conv_operands((1, 2, 4, 4), (3, 2, 2, 2), True)
    sizes[size_symbol("b0")] = 2
    _, valid = OPERATORS["conv2d"].shape_rule(**{k: v.shape for k, v in leaves.items()})
    assert not Evaluator(sizes, {}).truth(valid)


def test_symbolic_output_padding_follows_the_sizes():
    h, k = size_symbol("H"), size_symbol("kh")
    x, w = leaf("x", (1, 1, h, 3)), leaf("w", (1, 1, k, 2))
    extra = (sp.Mod(h + 1 - k, 2), 1)
    t = OPERATORS["conv_transpose2d"].definition(input=x, weight=w, stride=2, padding=1, output_padding=extra)
    rng = np.random.default_rng(4)
    for hv, kv in [(3, 2), (4, 2), (4, 3)]:
        xv, wv = rng.standard_normal((1, 1, hv, 3)), rng.standard_normal((1, 1, kv, 2))
        op = (hv + 1 - kv) % 2
        ref = F.conv_transpose2d(
            torch.from_numpy(xv), torch.from_numpy(wv), stride=2, padding=1, output_padding=(op, 1)
        )
        got = evaluate(t, {h: hv, k: kv}, {"x": xv, "w": wv})
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-10, atol=1e-12)
        code = OPERATORS["conv_transpose2d"].to_numpy(input="x", weight="w", stride=2, padding=1, output_padding=extra)
        ns = helper_namespace("conv_transpose2d")
        ns.update(x=xv, w=wv, H=hv, kh=kv)
        np.testing.assert_allclose(eval(compile(code, "<lowering>", "eval"), ns), ref.numpy(), rtol=1e-10, atol=1e-12)


def test_strided_transpose_reads_under_a_divisibility_guard():
    h, k = size_symbol("H"), size_symbol("k")
    t = OPERATORS["conv_transpose1d"].definition(input=leaf("x", (1, h)), weight=leaf("w", (1, 1, k)), stride=2)
    element = t.element((sp.Symbol("c", integer=True), sp.Symbol("i", integer=True)))
    assert element.has(sp.floor) and element.has(sp.Mod)
    assert not any(not r.is_integer for r in element.atoms(sp.Indexed) for r in r.indices)


@pytest.mark.parametrize(
    "op, options, word",
    [
        ("conv2d", {"stride": size_symbol("s")}, "symbolic stride"),
        ("conv2d", {"dilation": (1, size_symbol("d"))}, "symbolic dilation"),
        ("conv2d", {"padding": "same", "stride": 2}, "same"),
        ("conv2d", {"padding": "full"}, "padding"),
        ("conv2d", {"groups": 0}, "groups"),
        ("conv_transpose2d", {"stride": size_symbol("s")}, "symbolic stride"),
        ("conv_transpose2d", {"padding": "same"}, "padding"),
    ],
)
def test_unsupported_options_are_input_errors(op, options, word):
    leaves, _, _ = conv_operands((1, 2, 5, 5), (2, 2, 2, 2), False)
    with pytest.raises(InputError, match=word):
        OPERATORS[op].definition(**leaves, **options)


def test_wrong_rank_is_an_input_error():
    leaves, _, _ = conv_operands((5, 5), (2, 2, 2, 2), False)
    with pytest.raises(InputError, match="input"):
        OPERATORS["conv2d"].definition(**leaves)


# -- avg_pool2d ----------------------------------------------------------------------------
POOL_CASES = [
    ((1, 1, 4, 6), {"kernel_size": 2}),
    ((2, 3, 5, 7), {"kernel_size": (2, 3)}),  # stride (= kernel) not dividing the input
    ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ((1, 1, 5, 5), {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1), "count_include_pad": False}),
    ((2, 5, 4), {"kernel_size": (5, 4)}),  # unbatched, kernel as large as the input
    ((1, 1, 1, 6), {"kernel_size": (1, 2), "stride": 1}),
    ((1, 2, 6, 5), {"kernel_size": 2, "stride": 3, "divisor_override": 3}),
    ((1, 1, 4, 4), {"kernel_size": 4, "padding": 2, "count_include_pad": False}),
]


def pool_id(case):
    xs, options = case
    return "x".join(map(str, xs)) + "-" + "-".join(f"{k}={v}" for k, v in options.items()).replace(" ", "")


def pool_setup(case):
    xs, options = case
    syms = tuple(size_symbol(f"x{k}") for k in range(len(xs)))
    xv = np.random.default_rng(sum(xs)).standard_normal(xs)
    expected = F.avg_pool2d(torch.from_numpy(xv), **options).numpy()
    return leaf("x", syms), dict(zip(syms, xs, strict=True)), xv, options, expected


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_avg_pool2d_definition_matches_torch(case):
    x, sizes, xv, options, expected = pool_setup(case)
    got = evaluate(OPERATORS["avg_pool2d"].definition(input=x, **options), sizes, {"x": xv})
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_avg_pool2d_shape_and_lowering_match_torch(case):
    x, sizes, xv, options, expected = pool_setup(case)
    shape, valid = OPERATORS["avg_pool2d"].shape_rule(input=x.shape, **options)
    ev = Evaluator(sizes, {})
    assert ev.truth(valid)
    assert tuple(int(ev.value(d)) for d in shape) == expected.shape
    got = run_lowering("avg_pool2d", {"input": "x"}, {"x": xv}, options)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_avg_pool2d_lowering_large():
    xv = np.random.default_rng(0).standard_normal((2, 3, 64, 48))
    options = {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}
    expected = F.avg_pool2d(torch.from_numpy(xv), **options).numpy()
    np.testing.assert_allclose(run_lowering("avg_pool2d", {"input": "x"}, {"x": xv}, options), expected, rtol=1e-10)


def test_avg_pool2d_valid_is_false_where_torch_raises():
    x, sizes, _, _, _ = pool_setup(((1, 1, 4, 4), {"kernel_size": 2}))
    with pytest.raises(RuntimeError):
        F.avg_pool2d(torch.zeros(1, 1, 2, 4, dtype=torch.float64), kernel_size=3)
    _, valid = OPERATORS["avg_pool2d"].shape_rule(input=x.shape, kernel_size=3)
    sizes[size_symbol("x2")] = 2
    assert not Evaluator(sizes, {}).truth(valid)


@pytest.mark.parametrize(
    "options, word",
    [
        ({"kernel_size": 2, "ceil_mode": True}, "ceil_mode"),
        ({"kernel_size": 2, "padding": 2}, "half"),
        ({"kernel_size": size_symbol("k")}, "symbolic"),
    ],
)
def test_avg_pool2d_unsupported_options(options, word):
    x, _, _, _, _ = pool_setup(((1, 1, 4, 4), {"kernel_size": 2}))
    with pytest.raises(InputError, match=word):
        OPERATORS["avg_pool2d"].definition(input=x, **options)


# -- relu -------------------------------------------------------------------------------------
def test_relu_matches_torch_and_has_derivative_zero_at_zero():
    n, m = size_symbol("n"), size_symbol("m")
    xv = np.array([[-1.5, 0.0, 2.0], [3.0, -0.25, 0.5]])
    t = OPERATORS["relu"].definition(input=leaf("x", (n, m)))
    expected = F.relu(torch.from_numpy(xv)).numpy()
    np.testing.assert_array_equal(evaluate(t, {n: 2, m: 3}, {"x": xv}), expected)
    np.testing.assert_array_equal(run_lowering("relu", {"input": "x"}, {"x": xv}, {}), expected)
    assert OPERATORS["relu"].shape_rule(input=(n, m)) == ((n, m), sp.true)
    v = sp.Symbol("v", real=True)
    slope = sp.diff(t.element((0, 0)).subs(sp.IndexedBase("x")[0, 0], v), v)
    xt = torch.tensor(0.0, requires_grad=True)
    F.relu(xt).backward()
    assert float(slope.subs(v, 0)) == float(xt.grad)


def test_latex_shows_non_default_options():
    tex = OPERATORS["conv_transpose2d"].to_latex(input="g", weight="w", stride=2, padding=1)
    assert r"\operatorname{conv\_transpose2d}" in tex and r"\mathrm{stride}=2" in tex and "dilation" not in tex
    assert OPERATORS["relu"].to_latex(input="x") == r"\operatorname{relu}\left(x\right)"


# -- float32 stays float32; the im2col GEMM and the scatter on larger multi-channel cases ----------
FLOAT32_CASES = [
    ("conv2d", (2, 8, 20, 18), (6, 8, 3, 3), True, {"padding": 1}),
    ("conv2d", (2, 4, 21, 19), (6, 2, 3, 2), True, {"stride": (2, 1), "dilation": (1, 2), "groups": 2}),
    ("conv2d", (2, 3, 12, 11), (3, 1, 3, 3), True, {"padding": "same", "groups": 3}),  # depthwise: shifted slices
    ("conv1d", (3, 5, 40), (7, 5, 4), True, {"stride": 2, "padding": 2}),
    ("conv2d", (3, 4, 9, 8), (6, 2, 7, 7), True, {"groups": 2, "padding": (1, 0)}),  # more taps than positions
    ("conv1d", (4, 3, 30), (5, 3, 27), False, {"dilation": 1}),  # a weight-gradient shape
    ("conv_transpose2d", (2, 6, 9, 8), (6, 4, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ("conv_transpose2d", (2, 4, 7, 6), (4, 3, 2, 3), False, {"groups": 2, "dilation": (2, 1)}),
    ("conv_transpose1d", (5, 11), (5, 2, 3), True, {"stride": 3}),  # unbatched
]


@pytest.mark.parametrize("case", FLOAT32_CASES, ids=case_id)
def test_conv_lowering_keeps_float32(case):
    op, xs, ws, bias, options = case
    leaves, sizes, values = conv_operands(xs, ws, bias)
    bind_bias(op, ws, options, leaves, sizes, values)
    values = {k: v.astype(np.float32) for k, v in values.items()}
    t = {k: torch.from_numpy(v) for k, v in values.items()}
    expected = TORCH[op](t["x"], t["w"], t.get("b"), **options).numpy()
    codes = {"input": "x", "weight": "w", **({"bias": "b"} if bias else {})}
    got = run_lowering(op, codes, values, options)
    assert got.dtype == expected.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_conv2d_lowering_on_the_issue_benchmark_layout():
    """Many channels and a batch (the GEMM-shaped case, scaled down): float64 agrees with torch closely."""
    rng = np.random.default_rng(21)
    x, w = rng.standard_normal((3, 16, 14, 13)), rng.standard_normal((12, 16, 3, 3))
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    got = run_lowering("conv2d", {"input": "x", "weight": "w"}, {"x": x, "w": w}, {"padding": 1})
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert got.flags.c_contiguous


@pytest.mark.parametrize(
    "options", [{"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, {"kernel_size": 2}]
)
def test_avg_pool2d_lowering_keeps_float32(options):
    xv = np.random.default_rng(22).standard_normal((2, 3, 11, 9)).astype(np.float32)
    expected = F.avg_pool2d(torch.from_numpy(xv), **options).numpy()
    got = run_lowering("avg_pool2d", {"input": "x"}, {"x": xv}, options)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def random_conv_case(rng, transposed: bool):
    """(operator, x, w, b, options) of a random valid conv/conv_transpose: 1-D or 2-D, groups, dilation, padding."""
    nsp = int(rng.integers(1, 3))
    n, groups, c_group, o_group = int(rng.integers(1, 4)), int(rng.choice([1, 1, 2, 3])), *rng.integers(1, 4, 2)
    ks = tuple(int(v) for v in rng.integers(1, 6, nsp))
    dilation = tuple(int(v) for v in rng.integers(1, 3, nsp))
    stride = tuple(int(v) for v in rng.choice([1, 1, 1, 2], nsp))
    padding = tuple(int(v) for v in rng.integers(0, 3, nsp))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, ks, strict=True)]
    ins = tuple(int(max(s - 2 * p, 1) + rng.integers(0, 7)) for s, p in zip(spans, padding, strict=True))
    x = rng.standard_normal((n, groups * c_group) + ins)
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if transposed:
        w = rng.standard_normal((groups * c_group, o_group) + ks)
        options["output_padding"] = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
        )
        op = f"conv_transpose{nsp}d"
    else:
        w = rng.standard_normal((groups * o_group, c_group) + ks)
        op = f"conv{nsp}d"
    return op, x, w, rng.standard_normal(groups * o_group), options


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("seed", range(4))
def test_conv_lowering_matches_torch_on_random_cases(seed, transposed, dtype):
    """Random sizes and options (both regimes of the shifted-GEMM lowering, and the strided im2col one); np.empty
    poisoned, so that no arithmetic on a value never written goes unnoticed."""
    rng = np.random.default_rng(100 + seed)
    checked = 0
    while checked < 40:
        op, *arrays, options = random_conv_case(rng, transposed)
        x, w, b = (a.astype(dtype) for a in arrays)
        t = {k: torch.from_numpy(v) for k, v in {"x": x, "w": w, "b": b}.items()}
        try:
            expected = TORCH[op](t["x"], t["w"], t["b"], **options).numpy()
        except RuntimeError:  # an empty or invalid output: outside what the layers allow
            continue
        if expected.size == 0:
            continue
        # x transposed in memory (a weight gradient's layout) half the time: the lowering must not assume C order
        xs = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1) if checked % 2 else x
        values = {"x": xs, "w": w, "b": b}
        got = run_lowering(op, {"input": "x", "weight": "w", "bias": "b"}, values, options, numpy=PoisonedNumpy())
        assert got.dtype == dtype and got.shape == expected.shape, (op, options, got.shape, expected.shape)
        atol = (1e-12 if dtype == np.float64 else 1e-5) * np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol, err_msg=f"{op} {x.shape} {w.shape} {options}")
        checked += 1


# -- the stride-1 shifted-GEMM lowering: padding fused into its stacked copy, each regime -----------------
SHIFTED_CASES = [
    # (operator, input shape, weight shape, options): regime
    ("conv2d", (3, 5, 9, 7), (4, 5, 3, 3), {"padding": 1}),  # small kernel, padded on the way
    ("conv2d", (2, 4, 6, 9), (6, 2, 2, 4), {"padding": (2, 0), "groups": 2}),  # asymmetric, groups
    ("conv2d", (2, 3, 7, 8), (4, 3, 3, 2), {"padding": "same", "dilation": (2, 3)}),  # even kernel: pad more right
    ("conv2d", (1, 2, 5, 6), (3, 2, 1, 3), {"padding": (1, 1)}),  # one kernel row
    ("conv2d", (2, 2, 6, 5), (3, 2, 4, 1), {"padding": (0, 2)}),  # one kernel column
    ("conv2d", (2, 3, 1, 8), (2, 3, 1, 3), {}),  # one input row
    ("conv2d", (2, 3, 4, 5), (2, 3, 4, 5), {}),  # kernel as large as the input: one output
    ("conv2d", (2, 3, 4, 5), (2, 3, 4, 5), {"padding": 1}),  # ... padded: a small output, larger kernel
    ("conv2d", (3, 2, 9, 8), (4, 2, 7, 7), {"padding": (1, 0)}),  # more taps than outputs
    ("conv1d", (2, 3, 11), (5, 3, 4), {"padding": 3, "dilation": 2}),
    ("conv1d", (3, 1), (2, 3, 1), {"padding": 2}),  # unbatched, length 1
    ("conv_transpose2d", (2, 4, 6, 5), (4, 3, 3, 2), {"padding": (1, 0)}),  # stride 1: a padded convolution
    ("conv_transpose2d", (1, 4, 5, 7), (4, 2, 3, 3), {"padding": 2, "dilation": (1, 2), "groups": 2}),
    ("conv_transpose2d", (2, 3, 4, 4), (3, 2, 2, 3), {"padding": (1, 2), "output_padding": (0, 1), "dilation": 2}),
    ("conv_transpose1d", (2, 3, 6), (3, 2, 4), {"padding": 3}),  # padding past the kernel: the input cropped
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SHIFTED_CASES, ids=lambda c: case_id((c[0], c[1], c[2], True, c[3])))
def test_shifted_lowering_matches_torch(case, dtype):
    """Random non-square data, a non-contiguous input half the time, bias: against torch in each dtype."""
    op, xs, ws, options = case
    rng = np.random.default_rng(sum(xs) + 7 * sum(ws))
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    c_out = ws[1] * options.get("groups", 1) if is_transposed(op) else ws[0]
    b = rng.standard_normal(c_out).astype(dtype)
    expected = TORCH[op](*(torch.from_numpy(a) for a in (x, w, b)), **options).numpy()
    for xv in (x, np.flip(np.flip(x).copy())):
        got = run_lowering(op, {"input": "x", "weight": "w", "bias": "b"}, {"x": xv, "w": w, "b": b}, options)
        assert got.dtype == dtype and got.shape == expected.shape and got.flags.c_contiguous
        atol = (1e-12 if dtype == np.float64 else 2e-6) * np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("case", SHIFTED_CASES, ids=lambda c: case_id((*c[:3], False, c[3])))
def test_lowering_never_computes_with_uninitialised_values(case):
    """Rows summed whole (W wide) read past the GEMM's columns: that tail is zeroed, never garbage."""
    op, xs, ws, options = case
    rng = np.random.default_rng(23)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    got = run_lowering(op, {"input": "x", "weight": "w"}, {"x": x, "w": w}, options, numpy=PoisonedNumpy())
    expected = TORCH[op](torch.from_numpy(x), torch.from_numpy(w), **options).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
