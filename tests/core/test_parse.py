"""The claim language: every construct parses to the value NumPy/SciPy give, every misuse is an InputError."""

from __future__ import annotations

import builtins
import os
import re

import numpy as np
import pytest
import scipy.signal as ss
import scipy.special as sps
import sympy as sp

from symderive.core.ir import size_symbol
from symderive.core.parse import (
    MAX_TEXT,
    claim_tensor,
    parse_assumption,
    parse_claim,
    parse_index_definition,
    parse_size_expr,
    parse_tree,
)
from symderive.core.tree import Call, Ref
from symderive.decide.concrete import evaluate
from symderive.errors import InputError
from symderive.model.layer import load_layer

LAYERS = {name: load_layer(name) for name in ("conv2d", "linear", "softmax_cross_entropy", "convolution2d_full")}

CONV_SIZES = [dict(H=4, W=5, kh=2, kw=3), dict(H=3, W=3, kh=3, kw=3), dict(H=1, W=4, kh=1, kw=2)]
LINEAR_SIZES = [dict(n=3, m=2), dict(n=1, m=4), dict(n=2, m=2)]
SOFTMAX_SIZES = [dict(n=3), dict(n=1), dict(n=5)]


def conv_values(rng, s):
    x = rng.normal(size=(s["H"], s["W"]))
    w = rng.normal(size=(s["kh"], s["kw"]))
    b = np.array(rng.normal())
    g = rng.normal(size=(s["H"] - s["kh"] + 1, s["W"] - s["kw"] + 1))
    return dict(x=x, w=w, b=b, g=g)


def linear_values(rng, s):
    return dict(
        x=rng.normal(size=s["n"]),
        w=rng.normal(size=(s["m"], s["n"])),
        b=rng.normal(size=s["m"]),
        g=rng.normal(size=s["m"]),
    )


def softmax_values(rng, s):
    return dict(s=rng.normal(size=s["n"]), t=rng.uniform(0.1, 1.0, size=s["n"]))


FAMILIES = {
    "conv2d": (CONV_SIZES, conv_values),
    "linear": (LINEAR_SIZES, linear_values),
    "softmax_cross_entropy": (SOFTMAX_SIZES, softmax_values),
}


def _xent(v):
    return -np.sum(v["t"] * np.log(sps.softmax(v["s"])))


def _floor_mod(v, s):
    out = np.zeros((s["H"], s["W"]))
    for p in range(s["H"]):
        for q in range(s["W"]):
            out[p, q] = v["x"][p // 2, q % 3] if q % 3 < s["W"] else 0.0
    return out


# (layer, wrt, claim, oracle(values, sizes) -> array)
VALUE_CASES = [
    ("conv2d", "x", 'convolve(g, w, "full")', lambda v, s: ss.convolve(v["g"], v["w"], "full")),
    ("conv2d", "x", "convolve(g, w, 'full')", lambda v, s: ss.convolve(v["g"], v["w"], "full")),
    ("conv2d", "x", 'scipy.signal.convolve(g, w, mode="full")', lambda v, s: ss.convolve(v["g"], v["w"], "full")),
    ("conv2d", "x", "dx == convolve(g, w)", lambda v, s: ss.convolve(v["g"], v["w"], "full")),
    (
        "conv2d",
        "x",
        "dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)",
        lambda v, s: ss.convolve(v["g"], v["w"], "full"),
    ),
    (
        "conv2d",
        "x",
        "dx[p, q] = Sum(g[e, f] * w[p - e, q - f], e, f)",
        lambda v, s: ss.convolve(v["g"], v["w"], "full"),
    ),
    ("conv2d", "x", "-convolve(g, w, 'full')", lambda v, s: -ss.convolve(v["g"], v["w"], "full")),
    (
        "conv2d",
        "x",
        "dx[p, q] == -Sum(g[e, f] * w[p - e, q - f], e, f)",
        lambda v, s: -ss.convolve(v["g"], v["w"], "full"),
    ),
    ("conv2d", "w", "correlate(x, g, 'valid')", lambda v, s: ss.correlate(v["x"], v["g"], "valid")),
    ("conv2d", "w", "scipy.signal.correlate(x, g, mode='valid')", lambda v, s: ss.correlate(v["x"], v["g"], "valid")),
    (
        "conv2d",
        "w",
        "dw[m, n] == Sum(x[i + m, j + n] * g[i, j], (i, 0, H - kh), (j, 0, W - kw))",
        lambda v, s: ss.correlate(v["x"], v["g"], "valid"),
    ),
    (
        "conv2d",
        "w",
        "dw[m, n] == Sum(x[i + m, j + n] * g[i, j], i, j)",
        lambda v, s: ss.correlate(v["x"], v["g"], "valid"),
    ),
    ("conv2d", "b", "sum(g)", lambda v, s: np.sum(v["g"])),
    ("conv2d", "b", "np.sum(g)", lambda v, s: np.sum(v["g"])),
    ("conv2d", "b", "numpy.sum(numpy.sum(g, axis=0))", lambda v, s: np.sum(v["g"])),
    ("conv2d", "b", "db == Sum(g[i, j], i, j)", lambda v, s: np.sum(v["g"])),
    ("conv2d", "b", "Sum(Sum(g[i, j], (j, 0, W - kw)), i)", lambda v, s: np.sum(v["g"])),
    ("conv2d", "x", "flip(w)", lambda v, s: np.flip(v["w"])),
    ("conv2d", "x", "np.flip(x, axis=0)", lambda v, s: np.flip(v["x"], axis=0)),
    ("conv2d", "x", "dx[p, q] == x[H - 1 - p, q]", lambda v, s: np.flip(v["x"], axis=0)),
    ("conv2d", "x", "dx[p, q] == x[p // 2, q % 3]", _floor_mod),
    ("conv2d", "x", "dx[p, q] == Sum(KroneckerDelta(p, i) * x[i, q], i)", lambda v, s: v["x"]),
    ("conv2d", "x", "dx[p, q] == 2 * x[p, q] ** 2 - 1 / 2", lambda v, s: 2 * v["x"] ** 2 - 0.5),
    ("conv2d", "x", "dx[i, j] == exp(x[i, j]) * b", lambda v, s: np.exp(v["x"]) * v["b"]),
    ("conv2d", "x", "x[1:, ::2]", lambda v, s: v["x"][1:, ::2]),
    ("conv2d", "x", "x[:, 0]", lambda v, s: v["x"][:, 0]),
    (
        "conv2d",
        "x",
        "pad(x, ((H % 2, 0), (0, W // 2)))",
        lambda v, s: np.pad(v["x"], ((s["H"] % 2, 0), (0, s["W"] // 2))),
    ),
    ("conv2d", "x", "(x > 0) * x", lambda v, s: (v["x"] > 0) * v["x"]),
    ("conv2d", "x", "x * (H - kh + 1)", lambda v, s: v["x"] * (s["H"] - s["kh"] + 1)),
    ("conv2d", "x", "y", lambda v, s: ss.correlate(v["x"], v["w"], "valid") + v["b"]),
    ("conv2d", "x", "F.relu(x)", lambda v, s: np.maximum(v["x"], 0)),
    ("conv2d", "x", "torch.nn.functional.relu(x)", lambda v, s: np.maximum(v["x"], 0)),
    ("linear", "x", "w.T @ g", lambda v, s: v["w"].T @ v["g"]),
    ("linear", "x", "-w.T @ g", lambda v, s: -v["w"].T @ v["g"]),
    ("linear", "x", "transpose(w) @ g", lambda v, s: v["w"].T @ v["g"]),
    ("linear", "x", "numpy.transpose(w) @ g", lambda v, s: v["w"].T @ v["g"]),
    ("linear", "x", "dx[j] == Sum(w[i, j] * g[i], i)", lambda v, s: v["w"].T @ v["g"]),
    ("linear", "x", "dx[j] == Sum(w[i, j] * g[i], (i, 0, m - 1))", lambda v, s: v["w"].T @ v["g"]),
    ("linear", "w", "outer(g, x)", lambda v, s: np.outer(v["g"], v["x"])),
    ("linear", "w", "np.outer(g, x)", lambda v, s: np.outer(v["g"], v["x"])),
    ("linear", "w", "dw[i, j] == g[i] * x[j]", lambda v, s: np.outer(v["g"], v["x"])),
    ("linear", "w", "transpose(outer(x, g))", lambda v, s: np.outer(v["x"], v["g"]).T),
    ("linear", "b", "g", lambda v, s: v["g"]),
    ("linear", "b", "db[i] == g[i]", lambda v, s: v["g"]),
    ("linear", "b", "g * y", lambda v, s: v["g"] * (v["w"] @ v["x"] + v["b"])),
    ("linear", "b", "db[i] == y[i] ** 2", lambda v, s: (v["w"] @ v["x"] + v["b"]) ** 2),
    ("softmax_cross_entropy", "s", "softmax(s) - t", lambda v, s: sps.softmax(v["s"]) - v["t"]),
    ("softmax_cross_entropy", "s", "scipy.special.softmax(s) - t", lambda v, s: sps.softmax(v["s"]) - v["t"]),
    ("softmax_cross_entropy", "s", "ds[k] == softmax(s)[k] - t[k]", lambda v, s: sps.softmax(v["s"]) - v["t"]),
    (
        "softmax_cross_entropy",
        "s",
        "ds[k] = exp(s[k]) / Sum(exp(s[j]), j) - t[k]",
        lambda v, s: sps.softmax(v["s"]) - v["t"],
    ),
    ("softmax_cross_entropy", "s", "exp(s) / sum(exp(s)) - t", lambda v, s: sps.softmax(v["s"]) - v["t"]),
    (
        "softmax_cross_entropy",
        "s",
        "ds[k] == sum(t) * softmax(s)[k] - t[k]",
        lambda v, s: np.sum(v["t"]) * sps.softmax(v["s"]) - v["t"],
    ),
    ("softmax_cross_entropy", "s", "sigmoid(s)", lambda v, s: sps.expit(v["s"])),
    ("softmax_cross_entropy", "s", "scipy.special.expit(s)", lambda v, s: sps.expit(v["s"])),
    ("softmax_cross_entropy", "s", "log_softmax(s, axis=0)", lambda v, s: sps.log_softmax(v["s"], axis=0)),
    ("softmax_cross_entropy", "s", "L * s", lambda v, s: _xent(v) * v["s"]),
    ("softmax_cross_entropy", "s", "  softmax(s)-t  ", lambda v, s: sps.softmax(v["s"]) - v["t"]),
]


@pytest.mark.parametrize(("layer", "wrt", "text", "oracle"), VALUE_CASES, ids=[c[2] for c in VALUE_CASES])
def test_claim_value_matches_numpy(layer, wrt, text, oracle):
    lay = LAYERS[layer]
    claim = parse_claim(text, lay, wrt)
    tensor = claim_tensor(claim, lay)
    sizes_list, make = FAMILIES[layer]
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    for sizes in sizes_list:
        values = make(rng, sizes)
        expected = np.asarray(oracle(values, sizes), dtype=float)
        got = evaluate(tensor, sizes, values)
        assert got.shape == expected.shape, (sizes, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=str(sizes))


def test_closed_form_tree_binds_params_in_order():
    claim = parse_claim('convolve(g, w, "full")', LAYERS["conv2d"], "x")
    assert claim.tree == Call("convolve", (("in1", Ref("g")), ("in2", Ref("w")), ("mode", "full"), ("method", "auto")))
    keyword = parse_claim('convolve(in2=w, in1=g, mode="full")', LAYERS["conv2d"], "x")
    assert keyword.tree == claim.tree
    assert not claim.is_index_form


def test_index_form_has_free_indices_of_left_side():
    claim = parse_claim("dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)", LAYERS["conv2d"], "x")
    assert claim.is_index_form
    assert [str(i) for i in claim.index] == ["p", "q"]
    assert {str(s) for s in claim.body.free_symbols} >= {"p", "q"}


def test_scalar_gradient_without_brackets_is_index_form():
    claim = parse_claim("db == Sum(g[i, j], i, j)", LAYERS["conv2d"], "b")
    assert claim.is_index_form and claim.index == ()
    closed = parse_claim("db == sum(g)", LAYERS["conv2d"], "b")
    assert not closed.is_index_form
    # a scalar claim about an array input keeps its 0-d shape (refuted later, not an input error)
    wrong = parse_claim("dx == Sum(g[i, j], i, j)", LAYERS["conv2d"], "x")
    assert claim_tensor(wrong, LAYERS["conv2d"]).shape == ()


def test_index_names_shadow_tensors_and_sizes():
    # ``w`` and ``H`` are bound by the left side / the Sum, so they are indices here
    claim = parse_claim("dx[w, H] == Sum(x[w, H] * g[j, 0], j)", LAYERS["conv2d"], "x")
    rng = np.random.default_rng(1)
    sizes = CONV_SIZES[0]
    v = conv_values(rng, sizes)
    got = evaluate(claim_tensor(claim, LAYERS["conv2d"]), sizes, v)
    np.testing.assert_allclose(got, v["x"] * np.sum(v["g"][:, 0]))


def test_sum_with_reversed_range_is_empty():
    claim = parse_claim("db == Sum(g[i, 0], (i, 2, 1))", LAYERS["conv2d"], "b")
    got = evaluate(
        claim_tensor(claim, LAYERS["conv2d"]), CONV_SIZES[0], conv_values(np.random.default_rng(2), CONV_SIZES[0])
    )
    assert float(got) == 0.0


def test_shape_wrong_at_some_sizes_is_not_an_input_error():
    claim = parse_claim("w @ g", LAYERS["linear"], "x")  # defined only when m == n
    assert claim.tree is not None
    parse_claim("x @ w", LAYERS["conv2d"], "x")  # W == kh at some sizes


def E(text, fragment, column, layer="conv2d", wrt="x"):
    return pytest.param(text, fragment, column, layer, wrt, id=text)


ERROR_CASES = [
    E("x + q", "'q'", 5),
    E("np.convolve(g, w)", "np.convolve", 1),
    E("numpy.correlate(x, g)", "numpy.correlate", 1),
    E("F.softmax(s)", "dim=", None, "softmax_cross_entropy", "s"),
    E("softmax(s, dim=0)", "dim", 16, "softmax_cross_entropy", "s"),
    E("F.pad(x, (1, 1))", "F.pad", 1),
    E("torch.tanh(x)", "torch.tanh", 1),
    E("np.relu(x)", "np.relu", 1),
    E("scipy.signal.softmax(x)", "scipy.signal.softmax", 1),
    E("scipy.special.sigmoid(x)", "sigmoid", 1),
    E("sum(g, dim=0)", "dim", 12),
    E("sum(g, keepdim=True)", "keepdim", 16),
    E("x.sum()", "x.sum", 1),
    E("g.__class__", "__class__", 1),
    E("x.shape", "x.shape", 1),
    E('__import__("os")', "__import__", 1),
    E("lambda: g", "lambda", 1),
    E("[a for a in g]", "comprehension", 1),
    E("x if b else g", "conditional", 1),
    E("x and g", "and/or", 1),
    E("dx[i, j] == x[i * j, j]", "not affine", 15),
    E("dx[i, j] == x[H * i, j]", "stride", 15),
    E("dx[i, j] == x[i / 2, j]", "//", 15),
    E("dx[i, j] == x[i // kh, j]", "//", 15),
    E("convolve(g, w", "never closed", 9),
    E("x +", "syntax", 4),
    E("10**10**10", "exponent", 5),
    E("x * 10**30", "too large", 5),
    E("flip(x, 0, 1, 2)", "positional", 12),
    E("flip()", "missing", 1),
    E('convolve(g, w, "ful")', "'ful'", 16),
    E("convolve(g, w, mode=3)", "mode", 21),
    E("convolve(g, w, mode='full', mode='valid')", "twice", 34),
    E("exp", "exp", 1),
    E("frobnicate(x)", "frobnicate", 1),
    E("dw[p, q] == x[p, q]", "dx", 1),
    E("dx[p] == x[p, 0]", "indices", 1),
    E("dx[p, p] == x[p, 0]", "distinct", 7),
    E("dx[p, q] == Sum(x[p, q], i)", "'i'", 26),
    E("dx[p, q] == x[p, r]", "'r'", 18),
    E("dx[p, q] == x", "array", 13),
    E("ones(3) + ones(4)", "no size", 1),
    E("x[..., 0, ...]", "single ellipsis", 1),
    E("x[0, None, 0, 0]", "too many indices (3)", 1),
    E("[g, x]", "a list", 1),
    E("g", "'g'", 1, "softmax_cross_entropy", "s"),
    E("t", "constant", None, "softmax_cross_entropy", "t"),
    E("x", "'z'", None, "conv2d", "z"),
    E("x < w < g", "chained", 1),
    E("x % 2", "x", 1),
    E("Sum(x, i)", "i", None),
    E("KroneckerDelta(1)", "KroneckerDelta", 1),
]


@pytest.mark.parametrize(("text", "fragment", "column", "layer", "wrt"), ERROR_CASES)
def test_input_errors_name_the_construct_and_column(text, fragment, column, layer, wrt):
    with pytest.raises(InputError) as info:
        parse_claim(text, LAYERS[layer], wrt)
    message = str(info.value)
    assert fragment in message, message
    if column is not None:
        assert f"column {column}:" in message, message


@pytest.mark.parametrize(
    ("text", "layer", "wrt", "expected"),
    [
        ("w.T @ gg", "linear", "x", "unknown name 'gg' (did you mean 'g'?)"),
        ("W.T @ g", "linear", "x", "unknown name 'W' (did you mean 'w'?)"),
        ("softmx(s) - t", "softmax_cross_entropy", "s", "unknown function 'softmx' (did you mean 'softmax'"),
        ("np.transpos(w) @ g", "linear", "x", "unknown function 'np.transpos' (did you mean 'transpose'"),
        ("dx[p, q] == Sum(g[e, f] * w[p - e, q - ff], e, f)", "conv2d", "x", "unknown name 'ff' (did you mean 'f'?)"),
        # Python folds the identifier to wT: the message quotes what was typed
        ("wᵀ @ g", "linear", "x", "unknown name 'wᵀ' (did you mean 'w'?)"),
        ("softmax(s) - t + 0 * g", "softmax_cross_entropy", "s", "a loss layer (output L) has no upstream gradient g"),
        ("frobnicate(g)", "linear", "x", "unknown function 'frobnicate'"),
    ],
    ids=["name", "case", "function", "prefixed-function", "index", "unicode", "g-of-a-loss", "far-from-all"],
)
def test_a_misspelt_name_is_quoted_as_typed_with_the_close_names(text, layer, wrt, expected):
    with pytest.raises(InputError) as info:
        parse_claim(text, LAYERS[layer], wrt)
    assert expected in str(info.value), str(info.value)
    if "did you mean" not in expected:
        assert "did you mean" not in str(info.value)


def test_hostile_text_never_executes(tmp_path, monkeypatch):
    target = tmp_path / "pwned"

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    hostile = [
        f'__import__("os").system("touch {target}")',
        f'g.__class__.__mro__[1].__subclasses__()[0]("touch {target}")',
        f'(lambda: __import__("os").system("touch {target}"))()',
        f'dx[p, q] == __import__("os").system("touch {target}")',
        f'convolve(g, w, mode=__import__("os").system("touch {target}"))',
        f'x[__import__("os").system("touch {target}")]',
        f'[os.system("touch {target}") for os in [__import__("os")]]',
    ]
    for text in hostile:
        with pytest.raises(InputError):
            parse_claim(text, LAYERS["conv2d"], "x")
    assert not target.exists()
    assert not os.path.exists("/tmp/pwned")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x + " * (MAX_TEXT // 4 + 1) + "x", "too long"),
        ("exp(" * 120 + "x" + ")" * 120, "nest"),
        ("-" * 150 + "x", "nest"),
        ("amax(x, axis=(" + ",".join(["0"] * 1600) + "))", "large"),
        ("x * " + "9" * 40, "too large"),
        ("x ** 1000", "exponent"),
    ],
    ids=["long", "parens", "unary", "nodes", "literal", "power"],
)
def test_bounds_give_clear_errors(text, fragment):
    with pytest.raises(InputError) as info:
        parse_claim(text, LAYERS["conv2d"], "x")
    assert fragment in str(info.value)


def test_parse_tree_and_size_expressions():
    n = size_symbol("n")
    tree = parse_tree("exp(s) - t", {"s": (n,), "t": (n,)}, [n])
    assert tree.op == "subtract"
    e, new = parse_size_expr("H - kh + 1", {}, new_sizes=True)
    H, kh = size_symbol("H"), size_symbol("kh")
    assert e == H - kh + 1 and new == [H, kh]
    with pytest.raises(InputError, match="not linear in the sizes"):
        parse_size_expr("H * kh", {}, new_sizes=True)
    with pytest.raises(InputError, match="unknown name 'q'"):
        parse_tree("exp(q)", {"s": (n,)}, [n])


def test_options_accept_size_arithmetic_with_mod_and_floordiv():
    claim = parse_claim("pad(x, ((H + 2 - kh) % 2, W // 2))", LAYERS["conv2d"], "x")
    pad_width = claim.tree.arg("pad_width")
    H, kh, W = size_symbol("H"), size_symbol("kh"), size_symbol("W")
    assert pad_width == (sp.Mod(H + 2 - kh, 2), sp.floor(W / 2))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("H >= kh", "size"),
        ("kh <= H", "size"),
        ("(H + 2 - kh) % 2 == 0", "size"),
        ("H == 2 * kh + 1", "size"),
        ("sum(x) == 1", "equal"),
        ("sum(x, axis=1) == 1", "equal"),
        ("w == w.T", "equal"),
        ("x > 0", "sign"),
        ("w >= 0", "sign"),
    ],
)
def test_assumption_kinds(text, kind):
    H, W, kh, kw = (size_symbol(s) for s in ("H", "W", "kh", "kw"))
    a = parse_assumption(text, {"x": (H, W), "w": (kh, kw)}, [H, W, kh, kw])
    assert a.kind == kind
    assert a.text == text
    if kind == "size":
        assert a.cond.free_symbols <= {H, W, kh}
    else:
        assert a.lhs is not None and a.rhs is not None


@pytest.mark.parametrize("text", ["H = kh", "H=kh", "  H  = kh "])
def test_a_single_equals_in_an_assumption_means_equality(text):
    # claims accept "=", so assumptions do too (issue 20): the condition is H == kh
    H, kh = size_symbol("H"), size_symbol("kh")
    a = parse_assumption(text, {"x": (H,)}, [H, kh])
    assert a.cond == sp.Eq(H, kh)
    assert "==" in a.text


def test_size_assumption_congruence_is_mod():
    H, kh = size_symbol("H"), size_symbol("kh")
    a = parse_assumption("(H + 2 - kh) % 2 == 0", {}, [H, kh])
    assert a.cond == sp.Eq(sp.Mod(H + 2 - kh, 2), 0)


@pytest.mark.parametrize("text", ["H * kh >= 1", "H >= q", "H = kh = 1", "H", "1 > 2"])
def test_bad_assumptions(text):
    H, kh = size_symbol("H"), size_symbol("kh")
    with pytest.raises(InputError):
        parse_assumption(text, {"x": (H,)}, [H, kh])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("H * kh >= 1", "H * kh is not linear in the sizes"), ("2 * H >= kh * kh", "kh * kh is not linear in the sizes")],
)
def test_a_nonlinear_size_assumption_is_named_as_such_not_as_an_index(text, fragment):
    H, kh = size_symbol("H"), size_symbol("kh")
    with pytest.raises(InputError) as info:
        parse_assumption(text, {"x": (H,)}, [H, kh])
    assert fragment in str(info.value) and "index" not in str(info.value)


def test_a_nonlinear_dimension_is_named_as_such():
    with pytest.raises(InputError) as info:
        parse_size_expr("n * m", {}, new_sizes=True)
    assert "n * m is not linear in the sizes" in str(info.value)


def test_index_definition_records_bounds():
    H, k = size_symbol("H"), size_symbol("k")
    d = parse_index_definition("y[i] == Sum(x[i + m] * w[m], (m, 0, k - 1))", {"x": (H,), "w": (k,)}, [H, k], "y")
    assert [str(i) for i in d.index] == ["i"]
    ((lo, hi, inferred),) = d.sum_bounds.values()
    assert (lo, hi, inferred) == (0, k - 1, False)


def test_error_where_is_claim_with_column():
    with pytest.raises(InputError) as info:
        parse_claim("x + q", LAYERS["conv2d"], "x")
    assert info.value.where == "claim, column 5"
    assert re.search(r"unknown name 'q'", info.value.message)


def _nchw_layer():
    from symderive.model.layer import layer_from_dict

    return layer_from_dict(
        {
            "name": "conv_s2",
            "assume": ["H + 2 >= kh", "W + 2 >= kw"],
            "inputs": {"x": ["N", "C", "H", "W"], "w": ["O", "C", "kh", "kw"]},
            "output": {"y": "F.conv2d(x, w, stride=2, padding=1)"},
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        "F.conv_transpose2d(g, w, stride=2, padding=1)",
        "conv_transpose2d(g, w, stride=2, padding=1, output_padding=((H + 2 - kh) % 2, (W + 2 - kw) % 2))",
        "torch.nn.functional.conv_transpose2d(g, w, None, 2, 1, (H % 2, W % 2))",
    ],
)
def test_torch_options_match_torch(text):
    import torch

    layer = _nchw_layer()
    tensor = claim_tensor(parse_claim(text, layer, "x"), layer)
    rng = np.random.default_rng(5)
    sizes = dict(N=1, C=2, H=4, W=5, O=2, kh=2, kw=3)
    x = rng.normal(size=(1, 2, 4, 5))
    w = rng.normal(size=(2, 2, 2, 3))
    g = rng.normal(size=(1, 2, 3, 3))
    op = (
        ((4 + 2 - 2) % 2, (5 + 2 - 3) % 2)
        if "output_padding" in text
        else ((4 % 2, 5 % 2) if "None" in text else (0, 0))
    )
    expected = torch.nn.functional.conv_transpose2d(
        torch.tensor(g), torch.tensor(w), stride=2, padding=1, output_padding=op
    ).numpy()
    got = evaluate(tensor, sizes, dict(x=x, w=w, g=g))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_einsum_spec_and_variadic_tensors():
    layer = LAYERS["linear"]
    claim = parse_claim('einsum("ij,i->j", w, g)', layer, "x")
    rng = np.random.default_rng(9)
    v = linear_values(rng, LINEAR_SIZES[0])
    np.testing.assert_allclose(
        evaluate(claim_tensor(claim, layer), LINEAR_SIZES[0], v), np.einsum("ij,i->j", v["w"], v["g"])
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("F.conv2d(x, w, padding='middle')", "'middle'"),
        ("F.conv2d(x, w, padding=True)", "padding"),
        ("sum(x, axis='a')", "axis"),
        ("F.conv2d(x, w, stride=2.5)", "stride"),
    ],
)
def test_bad_torch_and_axis_options(text, fragment):
    with pytest.raises(InputError) as info:
        parse_claim(text, _nchw_layer(), "x")
    assert fragment in str(info.value) and "column" in str(info.value)


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ("g[:, None] * x", "proved"),
        ("g[:, np.newaxis] * x[np.newaxis, :]", "proved"),
        ("g[..., None] * x[None, ...]", "proved"),
        ("g[None, :] * x[:, None]", "refuted"),  # the transpose: [n, m], not [m, n]
        ("g[:, None] * x[None, ::-1]", "refuted"),
    ],
)
def test_new_axes_and_ellipsis_index_as_in_numpy(claim, verdict):
    from symderive.prove import prove

    assert prove(load_layer("linear"), "w", claim).verdict == verdict


def test_a_claim_with_a_new_axis_is_emitted_and_printed():
    from symderive.core.parse import parse_claim
    from symderive.emit.codegen import emit_numpy

    layer = load_layer("linear")
    namespace: dict = {}
    exec(emit_numpy(layer, claims={"w": "g[:, None] * x"}), namespace)  # noqa: S102 -- generated code
    rng = np.random.default_rng(3)
    g, x = rng.standard_normal(4), rng.standard_normal(3)
    np.testing.assert_allclose(namespace["grad_w"](g=g, x=x), np.outer(g, x), rtol=1e-14)
    from symderive.core.tree import to_latex

    latex = to_latex(parse_claim("g[:, None] * x[..., 0:2]", layer, "w").tree)
    assert r"\mathrm{None}" in latex and r"\ldots" in latex
