"""Layer files: the built-ins load with DESIGN.md's tensors, forwards and claims; bad files are InputErrors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal as ss
import sympy as sp
import torch

from symderive.core.ir import size_symbol
from symderive.core.parse import claim_tensor, parse_claim
from symderive.decide.concrete import evaluate
from symderive.errors import InputError
from symderive.model.layer import builtin_layer_names, describe_layer, layer_from_dict, load_layer

H, W, kh, kw, n, m = (size_symbol(s) for s in ("H", "W", "kh", "kw", "n", "m"))

BUILTINS = {
    "conv2d": ({"x": (H, W), "w": (kh, kw), "b": ()}, "y", (H - kh + 1, W - kw + 1), {"x", "w", "b"}),
    "convolution2d": ({"x": (H, W), "w": (kh, kw)}, "y", (H - kh + 1, W - kw + 1), {"x", "w"}),
    "convolution2d_full": ({"x": (H, W), "w": (kh, kw)}, "y", (H + kh - 1, W + kw - 1), {"x", "w"}),
    "linear": ({"x": (n,), "w": (m, n), "b": (m,)}, "y", (m,), {"x", "w", "b"}),
    "softmax_cross_entropy": ({"s": (n,), "t": (n,)}, "L", (), {"s"}),
}

SIZES = {
    "conv2d": [dict(H=4, W=5, kh=2, kw=3), dict(H=3, W=2, kh=3, kw=2), dict(H=1, W=3, kh=1, kw=1)],
    "linear": [dict(n=3, m=2), dict(n=1, m=1), dict(n=2, m=4)],
    "softmax_cross_entropy": [dict(n=3), dict(n=1), dict(n=4)],
}
SIZES["convolution2d"] = SIZES["conv2d"]
SIZES["convolution2d_full"] = SIZES["conv2d"]


def _conv_full_torch(x, w):
    """scipy.signal.convolve(x, w, 'full') in torch: a cross-correlation with the flipped kernel, padded."""
    k = torch.flip(w, (0, 1))[None, None]
    return torch.nn.functional.conv2d(x[None, None], k, padding=(w.shape[0] - 1, w.shape[1] - 1))[0, 0]


def _torch_forward(name, t):
    """Each built-in's forward written independently in torch."""
    if name == "conv2d":
        return torch.nn.functional.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"]
    if name == "convolution2d":
        return torch.nn.functional.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None])[0, 0]
    if name == "convolution2d_full":
        return _conv_full_torch(t["x"], t["w"])
    if name == "linear":
        return t["w"] @ t["x"] + t["b"]
    if name == "softmax_cross_entropy":
        return -(t["t"] * torch.log_softmax(t["s"], 0)).sum()
    raise AssertionError(name)


def _random_inputs(layer, sizes, rng):
    values = {}
    for name, shape in layer.inputs.items():
        dims = tuple(int(d.subs({size_symbol(k): v for k, v in sizes.items()})) for d in shape)
        values[name] = rng.uniform(0.1, 1.0, size=dims) if name == "t" else rng.normal(size=dims)
    if "t" in values:
        values["t"] = values["t"] / values["t"].sum()  # the layer assumes sum(t) == 1
    return values


def test_builtin_names():
    assert set(BUILTINS) <= set(builtin_layer_names())


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_tensors_sizes_and_shapes(name):
    layer = load_layer(name)
    inputs, output, out_shape, differentiable = BUILTINS[name]
    assert layer.name == name
    assert layer.inputs == inputs
    assert layer.output == output
    assert set(layer.differentiable) == differentiable
    # conv2d's library shape branches on kh <= H; the layer's assumptions resolve it
    assert tuple(sp.simplify(d) for d in layer.forward.shape) == out_shape
    assert layer.upstream().shape == layer.forward.shape
    assert len(layer.claims) == len(differentiable)
    assert {c.wrt for c in layer.claims} == differentiable


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_forward_matches_torch(name):
    layer = load_layer(name)
    rng = np.random.default_rng(7)
    for sizes in SIZES[name]:
        values = _random_inputs(layer, sizes, rng)
        got = evaluate(layer.forward, sizes, values)
        expected = _torch_forward(name, {k: torch.tensor(v) for k, v in values.items()}).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=str(sizes))


def _torch_gradient(name, layer, values, wrt, g):
    t = {k: torch.tensor(v, requires_grad=(k == wrt)) for k, v in values.items()}
    y = _torch_forward(name, t)
    loss = y if layer.is_loss else (torch.tensor(g) * y).sum()
    loss.backward()
    return t[wrt].grad.numpy()


KNOWN = [(name, c.wrt, c.claim) for name in sorted(BUILTINS) for c in load_layer(name).claims]


@pytest.mark.parametrize(("name", "wrt", "text"), KNOWN, ids=[f"{k[0]}-{k[1]}" for k in KNOWN])
def test_builtin_claims_match_torch_autograd(name, wrt, text):
    layer = load_layer(name)
    tensor = claim_tensor(parse_claim(text, layer, wrt), layer)
    rng = np.random.default_rng(11)
    for sizes in SIZES[name]:
        values = _random_inputs(layer, sizes, rng)
        if not layer.is_loss:
            out = evaluate(layer.forward, sizes, values)
            values["g"] = rng.normal(size=out.shape)
        expected = _torch_gradient(name, layer, values, wrt, values.get("g"))
        got = evaluate(tensor, sizes, values)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=str(sizes))


def test_softmax_cross_entropy_assumes_normalised_targets():
    layer = load_layer("softmax_cross_entropy")
    assert layer.constants == ("t",)
    (a,) = layer.assumptions
    assert a.kind == "equal" and a.text == "sum(t) == 1"


def test_conv2d_size_assumptions():
    layer = load_layer("conv2d")
    conds = layer.size_assumptions()
    assert sp.Le(kh, H) in conds and sp.Le(kw, W) in conds
    assert sp.Ge(H, 1) in conds


def test_describe_layer_shows_tensors_and_forward():
    text = describe_layer(load_layer("conv2d"))
    assert "x [H, W]" in text and "w [kh, kw]" in text
    assert "kh <= H" in text
    assert "correlate(x, w, 'valid') + b" in text
    assert "Sum_{" in text and "y[i0, i1]" in text
    assert "convolve(g, w, 'full')" in text
    loss = describe_layer(load_layer("softmax_cross_entropy"))
    assert "constant" in loss and "L = " in loss


# -- user files ------------------------------------------------------------------------
CONV_INDEX = """
name = "conv_index"
assume = ["kh <= H", "kw <= W"]

[inputs]
x = ["H", "W"]
w = ["kh", "kw"]
b = []

[output]
y = "y[i, j] == Sum(x[i + m, j + n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1)) + b"
%s

[[claims]]
wrt = "x"
claim = "convolve(g, w, 'full')"
"""


def _write(tmp_path, text, name="layer.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("shape", ["", 'shape = ["H - kh + 1", "W - kw + 1"]'], ids=["inferred", "explicit"])
def test_index_form_output(tmp_path, shape):
    layer = load_layer(str(_write(tmp_path, CONV_INDEX % shape)))
    assert layer.forward_tree is None and layer.forward_index is not None
    assert [sp.simplify(d) for d in layer.forward.shape] == [H - kh + 1, W - kw + 1]
    rng = np.random.default_rng(3)
    for sizes in SIZES["conv2d"]:
        values = _random_inputs(layer, sizes, rng)
        got = evaluate(layer.forward, sizes, values)
        np.testing.assert_allclose(got, ss.correlate(values["x"], values["w"], "valid") + values["b"])
    # the claim with g of the index-form output's shape is still the conv2d gradient
    claim = claim_tensor(parse_claim("convolve(g, w, 'full')", layer, "x"), layer)
    sizes = SIZES["conv2d"][0]
    values = _random_inputs(layer, sizes, rng)
    values["g"] = rng.normal(size=(3, 3))
    np.testing.assert_allclose(evaluate(claim, sizes, values), ss.convolve(values["g"], values["w"], "full"))


def test_index_form_output_not_starting_at_zero_asks_for_shape(tmp_path):
    text = '[inputs]\nx = ["n"]\n[output]\ny = "y[i] == x[i - 1]"\n'
    with pytest.raises(InputError, match="shape") as info:
        load_layer(str(_write(tmp_path, 'name = "shift"\n' + text)))
    assert "layer.toml" in str(info.value) and "output.y" in str(info.value)
    layer = load_layer(str(_write(tmp_path, 'name = "shift"\n' + text + 'shape = ["n"]\n', "ok.toml")))
    got = evaluate(layer.forward, {"n": 3}, {"x": np.array([1.0, 2.0, 3.0])})
    np.testing.assert_allclose(got, [0.0, 1.0, 2.0])


def test_constant_sizes_and_loss_layer(tmp_path):
    text = """
name = "quad"
constants = ["a"]
[inputs]
w = ["4", "k"]
a = ["k"]
[output]
L = "sum((w @ a) ** 2)"
[[claims]]
wrt = "w"
claim = "2 * outer(w @ a, a)"
"""
    layer = load_layer(str(_write(tmp_path, text)))
    assert layer.inputs["w"] == (4, size_symbol("k"))
    assert layer.sizes == (size_symbol("k"),)
    assert layer.is_loss and layer.forward.shape == ()
    assert layer.scope().keys() == {"w", "a", "L"}


def test_load_by_path_forms(tmp_path, monkeypatch):
    path = _write(tmp_path, CONV_INDEX % "", "mine.toml")
    monkeypatch.chdir(tmp_path)
    assert load_layer("mine.toml").name == "conv_index"
    assert load_layer("./mine.toml").name == "conv_index"
    assert load_layer(path).name == "conv_index"
    with pytest.raises(InputError, match="unknown layer 'conv3d'"):
        load_layer("conv3d")
    with pytest.raises(InputError, match="no layer file"):
        load_layer("missing/layer.toml")


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("lineer", "'linear'"), ("conv2D", "'conv2d'"), ("softmax", "'softmax_cross_entropy'")],
)
def test_an_unknown_layer_name_suggests_the_close_builtin(typed, suggested):
    with pytest.raises(InputError) as info:
        load_layer(typed)
    assert f"unknown layer {typed!r} (did you mean " in str(info.value) and suggested in str(info.value)


def test_a_layer_name_without_toml_points_to_the_file_in_the_folder(tmp_path, monkeypatch):
    _write(tmp_path, CONV_INDEX % "", "mine.toml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="write mine.toml"):
        load_layer("mine")


@pytest.mark.parametrize("equals", ["==", "="])
def test_an_index_form_output_under_another_name_is_named_as_the_left_side(tmp_path, equals):
    text = f'name = "a"\n[inputs]\nx = ["n"]\n[output]\ny = "z[i] {equals} 2 * x[i]"\n'
    with pytest.raises(InputError) as info:
        load_layer(str(_write(tmp_path, text, "z.toml")))
    assert "output.y" in str(info.value) and "the left side must be y[...], got 'z[i]'" in str(info.value)
    assert "unknown name" not in str(info.value)


def test_a_layer_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    assert load_layer(str(path)).inputs == {"x": (n,), "w": (m, n)}


STRIDED = """name = "strided"
%s
[inputs]
x = ["n"]
w = ["k"]
[output]
y = "x[::2] + w"
"""
HALF = """name = "half"
%s
[inputs]
x = ["n"]
[output]
y = "y[i] == x[2 * i]"
shape = ["n // 2"]
"""


@pytest.mark.parametrize(
    ("text", "hint", "length"),
    [
        (STRIDED, "(n + 1) // 2 == k", lambda n: len(range(0, n, 2))),
        (HALF, "n // 2 >= 1", lambda n: n // 2),
    ],
    ids=["forward-defined", "dimension-at-least-1"],
)
def test_the_assumption_a_refusal_suggests_is_valid_layer_syntax_and_is_enough(tmp_path, text, hint, length):
    with pytest.raises(InputError) as info:
        load_layer(str(_write(tmp_path, text % "", "bad.toml")))
    assert f'add an assumption such as "{hint}"' in str(info.value)
    assert "floor" not in str(info.value) and "ceiling" not in str(info.value)
    layer = load_layer(str(_write(tmp_path, text % f'assume = ["{hint}"]', "fixed.toml")))
    # the output has NumPy's length (x[::2] has ceil(n / 2) elements) at every allowed n
    for size in range(2, 9):
        env = {str(s): size for s in layer.sizes}
        env.update({"k": length(size)} if "k" in env else {})
        assert int(layer.forward.shape[0].subs({s: env[str(s)] for s in layer.sizes})) == length(size)


GOOD = """name = "lin"
[inputs]
x = ["n"]
w = ["m", "n"]
[output]
y = "w @ x"
"""


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('name = "lin"\n[inputs\nx = ["n"]', ["malformed TOML"]),
        ('colour = "red"\n' + GOOD, ["unknown key 'colour'", ": colour"]),
        (GOOD + '[[claims]]\nwrt = "z"\nclaim = "g"\n', ["claims[0].wrt", "'z'"]),
        (GOOD + '[[claims]]\nwrt = "x"\nclaim = "w.T @ q"\n', ["claims[0].claim", "'q'", "column 7"]),
        (GOOD + '[[claims]]\nwrt = "x"\nclaim = "g"\ncolour = 1\n', ["claims[0].colour", "unknown key"]),
        (GOOD + '[[claims]]\nwrt = "x"\nclaim = "g"\nexpect = "maybe"\n', ["claims[0].expect"]),
        (GOOD + '[[claims]]\nwrt = "x"\nclaim = "g"\nassume = ["n >= q"]\n', ["claims[0].assume[0]", "'q'"]),
        (GOOD.replace('y = "w @ x"', 'y = "w @ x"\nshape = ["n"]'), ["output.shape", "inconsistent"]),
        (GOOD.replace('y = "w @ x"', 'g = "w @ x"'), ["output.g", "reserved"]),
        (GOOD.replace('y = "w @ x"', 'L = "w @ x"'), ["output.L", "scalar"]),
        (GOOD.replace('y = "w @ x"', 'y = "w @ z"'), ["output.y", "'z'"]),
        (GOOD.replace('y = "w @ x"', 'y = "np.convolve(w, x)"'), ["output.y", "np.convolve"]),
        (GOOD + 'constants = ["v"]\n', ["constants"]),
        (GOOD.replace('name = "lin"', 'name = "lin"\nconstants = ["v"]'), ["constants", "'v'"]),
        (
            GOOD.replace('name = "lin"', 'name = "lin"\nassume = ["n * m >= 1"]'),
            ["assume[0]", "not linear in the sizes"],
        ),
        (GOOD.replace('x = ["n"]', 'x = ["n * m"]'), ["inputs.x[0]", "not linear in the sizes"]),
        (GOOD.replace('x = ["n"]', "x = 3"), ["inputs.x", "list"]),
        (GOOD.replace('x = ["n"]', 'g = ["n"]'), ["inputs.g", "reserved"]),
        (GOOD.replace('[output]\ny = "w @ x"', '[output]\ny = "w @ x"\nz = "x"'), ["output", "exactly one"]),
        ('[inputs]\nx = ["n"]\n[output]\ny = "x"\n', ["missing key 'name'"]),
    ],
    ids=[
        "malformed",
        "unknown-key",
        "claim-wrt",
        "claim-text",
        "claim-key",
        "claim-expect",
        "claim-assume",
        "output-shape",
        "output-g",
        "loss-not-scalar",
        "output-unknown-name",
        "output-refused",
        "constants-after-table",
        "constants-unknown",
        "assume-nonlinear",
        "shape-nonlinear",
        "shape-not-list",
        "input-g",
        "two-outputs",
        "no-name",
    ],
)
def test_bad_layer_files(tmp_path, text, fragments):
    path = _write(tmp_path, text, "bad.toml")
    with pytest.raises(InputError) as info:
        load_layer(str(path))
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_good_file_loads_and_known_claims_are_kept(tmp_path):
    text = (
        GOOD
        + '[[claims]]\nwrt = "x"\nclaim = "w.T @ g"\n[[claims]]\nwrt = "w"\nclaim = "outer(x, g)"\nexpect = "refuted"\n'
    )
    layer = load_layer(str(_write(tmp_path, text)))
    assert [(c.wrt, c.expect) for c in layer.claims] == [("x", "proved"), ("w", "refuted")]
    assert layer.source.endswith("layer.toml")


def test_layer_from_dict_assumption_kinds():
    layer = layer_from_dict(
        {
            "name": "t",
            "assume": ["(H + 2 - kh) % 2 == 0", "x > 0", "w == w.T"],
            "inputs": {"x": ["H", "H"], "w": ["kh", "kh"]},
            "output": {"y": "correlate(x, w, 'valid')"},
        }
    )
    assert [a.kind for a in layer.assumptions] == ["size", "sign", "equal"]
    assert layer.assumptions[0].cond == sp.Eq(sp.Mod(H + 2 - kh, 2), 0)


def test_index_form_loss_layer_and_describe(tmp_path):
    text = """
name = "sq"
[inputs]
x = ["n"]
[output]
L = "L == Sum(x[i] ** 2, i)"
[[claims]]
wrt = "x"
claim = "dx[i] == 2 * x[i]"
"""
    layer = load_layer(str(_write(tmp_path, text)))
    assert layer.is_loss and layer.forward.shape == ()
    got = evaluate(layer.forward, {"n": 3}, {"x": np.array([1.0, -2.0, 3.0])})
    assert float(got) == 14.0
    shown = describe_layer(layer)
    assert "defined as: L == Sum(x[i] ** 2, i)" in shown
    assert "dx: dx[i] == 2 * x[i]" in shown


# -- layers that do not exist at every size they allow --------------------------------------
def _sizes_in(message: str) -> dict:
    """The sizes of a refusal's ``(e.g. m=1, n=2)``."""
    inside = message.split("(e.g. ", 1)[1].split(")", 1)[0]
    return {k: int(v) for k, v in (part.split("=") for part in inside.split(", "))}


def _numpy_inputs(shapes: dict, sizes: dict, rng) -> dict:
    return {
        name: rng.normal(size=tuple(sizes[d] if d in sizes else int(d) for d in shape))
        for name, shape in shapes.items()
    }


def _layer_text(inputs: dict, output: str, assume=()) -> str:
    lines = ['name = "probe"']
    if assume:
        lines.append("assume = [" + ", ".join(f'"{a}"' for a in assume) + "]")
    lines.append("[inputs]")
    lines += [f"{k} = [{', '.join(repr(d) for d in v)}]" for k, v in inputs.items()]
    lines += ["[output]", f'y = "{output}"']
    return "\n".join(lines) + "\n"


UNDEFINED_FORWARDS = [
    # inputs, forward, the same forward in NumPy, the assumption that makes it a layer
    ({"w": ["m", "n"], "x": ["n"]}, "w.T @ x", lambda v: v["w"].T @ v["x"], "m == n"),
    ({"x": ["n"], "w": ["m"]}, "x + w", lambda v: v["x"] + v["w"], "n == m"),
    ({"a": ["p", "q"], "b": ["r", "s"]}, "a @ b", lambda v: v["a"] @ v["b"], "q == r"),
    ({"x": ["n", "3"], "w": ["n"]}, "x * w", lambda v: v["x"] * v["w"], "n == 3"),
]


@pytest.mark.parametrize(
    ("inputs", "forward", "numpy_forward", "fix"), UNDEFINED_FORWARDS, ids=[f for _, f, _, _ in UNDEFINED_FORWARDS]
)
def test_forward_undefined_at_allowed_sizes_is_refused(tmp_path, inputs, forward, numpy_forward, fix):
    path = _write(tmp_path, _layer_text(inputs, forward), "undefined.toml")
    with pytest.raises(InputError) as info:
        load_layer(str(path))
    message = str(info.value)
    assert str(path) in message and "output.y" in message, message
    assert "not defined for all sizes the layer allows" in message and f'"{fix}"' in message, message
    # the sizes named are sizes where NumPy itself refuses the forward
    sizes = _sizes_in(message)
    assert all(v >= 1 for v in sizes.values()), message
    with pytest.raises(ValueError, match="broadcast|mismatch|shape"):
        numpy_forward(_numpy_inputs(inputs, sizes, np.random.default_rng(1)))
    # the hinted assumption makes it a layer, whose forward is NumPy's wherever it holds
    layer = load_layer(str(_write(tmp_path, _layer_text(inputs, forward, [fix]), "fixed.toml")))
    rng = np.random.default_rng(2)
    names = [str(s) for s in layer.sizes]
    for values in itertools.product(range(1, 4), repeat=len(names)):
        at = dict(zip(names, values, strict=True))
        lhs, rhs = (at[side] if side in at else int(side) for side in fix.split(" == "))
        if lhs != rhs:
            continue
        arrays = _numpy_inputs(inputs, at, rng)
        np.testing.assert_allclose(evaluate(layer.forward, at, arrays), numpy_forward(arrays))


@pytest.mark.parametrize(
    ("dims", "fragments"),
    [
        ('["-2"]', ["inputs.x[0]", "dimension '-2'", "integer >= 1"]),
        ('["0"]', ["inputs.x[0]", "dimension '0'", "integer >= 1"]),
        ("[-2]", ["inputs.x[0]", "dimension -2", "integer >= 1"]),
        ('["n", 0]', ["inputs.x[1]", "dimension 0", "integer >= 1"]),
        ('["3 - 5"]', ["inputs.x[0]", "dimension '3 - 5'", "integer >= 1"]),
    ],
    ids=["minus-two", "zero", "int-minus-two", "int-zero", "folded-negative"],
)
def test_constant_dimension_below_one_is_refused(tmp_path, dims, fragments):
    path = _write(tmp_path, f'name = "c"\n[inputs]\nx = {dims}\n[output]\ny = "2 * x"\n', "const.toml")
    with pytest.raises(InputError) as info:
        load_layer(str(path))
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_size_expression_that_can_fall_below_one_is_refused(tmp_path):
    path = _write(tmp_path, _layer_text({"x": ["n - 3"]}, "2 * x"), "nm3.toml")
    with pytest.raises(InputError) as info:
        load_layer(str(path))
    message = str(info.value)
    assert "inputs.x" in message and "n - 3" in message and "less than 1" in message, message
    assert _sizes_in(message)["n"] - 3 < 1
    assert '"n >= 4"' in message
    layer = load_layer(str(_write(tmp_path, _layer_text({"x": ["n - 3"]}, "2 * x", ["n >= 4"]), "ok.toml")))
    assert layer.inputs["x"] == (n - 3,)


def test_output_dimension_that_can_fall_below_one_is_refused(tmp_path):
    text = _layer_text({"x": ["n"], "w": ["k"]}, "y[i] == Sum(x[i + j] * w[j], (j, 0, k - 1))")
    with pytest.raises(InputError) as info:
        load_layer(str(_write(tmp_path, text, "valid.toml")))
    message = str(info.value)
    assert "output.y" in message and "less than 1" in message and '"n >= k"' in message, message
    at = _sizes_in(message)
    # NumPy's valid correlation of these sizes is empty (or, swapped, not the layer's)
    assert at["n"] - at["k"] + 1 < 1
    layer = load_layer(
        str(_write(tmp_path, _layer_text({"x": ["n"], "w": ["k"]}, text.split('y = "')[1][:-2], ["n >= k"]), "ok.toml"))
    )
    x, w = np.random.default_rng(4).normal(size=5), np.random.default_rng(5).normal(size=2)
    np.testing.assert_allclose(evaluate(layer.forward, {"n": 5, "k": 2}, {"x": x, "w": w}), np.correlate(x, w, "valid"))


def test_explicit_output_shape_below_one_is_refused(tmp_path):
    text = _layer_text({"x": ["n"]}, "y[i] == x[i]") + 'shape = ["n - 1"]\n'
    with pytest.raises(InputError) as info:
        load_layer(str(_write(tmp_path, text, "shape.toml")))
    assert "output.y" in str(info.value) and "less than 1" in str(info.value) and "n=1" in str(info.value)


def _brute_force_satisfiable(conds, names, largest=30) -> bool:
    for values in itertools.product(range(1, largest + 1), repeat=len(names)):
        if all(c(dict(zip(names, values, strict=True))) for c in conds):
            return True
    return False


@pytest.mark.parametrize(
    ("assume", "oracle", "fragments"),
    [
        (["n >= 3", "n <= 2"], [lambda s: s["n"] >= 3, lambda s: s["n"] <= 2], ["no sizes"]),
        (["n % 2 == 0", "(n + 1) % 2 == 0"], [lambda s: s["n"] % 2 == 0, lambda s: (s["n"] + 1) % 2 == 0], ["sizes"]),
        (["m >= n + 1", "n >= m"], [lambda s: s["m"] >= s["n"] + 1, lambda s: s["n"] >= s["m"]], ["sizes"]),
        (["x > 0", "x < 0"], None, ["no tensor values"]),
        (["x >= 1", "x <= 0.5"], None, ["no tensor values"]),
        (["x == 2", "x != 2"], None, ["no tensor values"]),
        (["sum(x) == 1", "x <= 0"], None, ["no tensor values"]),
        (["sum(x) == 1", "0 > x"], None, ["no tensor values"]),
    ],
    ids=["sizes", "parity", "order", "sign", "bounds", "equal-unequal", "sum-sign", "sum-sign-reversed"],
)
def test_contradictory_assumptions_are_refused(tmp_path, capsys, assume, oracle, fragments):
    from symderive.cli import main

    if oracle is not None:  # no sizes in a box satisfy them, by plain Python arithmetic
        assert not _brute_force_satisfiable(oracle, ["n", "m"])
    path = _write(tmp_path, _layer_text({"x": ["n"], "w": ["m", "n"]}, "w @ x", assume), "contra.toml")
    with pytest.raises(InputError) as info:
        load_layer(str(path))
    message = str(info.value)
    assert str(path) in message and ": assume:" in message and "contradict each other" in message, message
    for fragment in fragments + [f'"{a}"' for a in assume]:
        assert fragment in message, message
    status = main(["prove", str(path), "--wrt", "x", "3 * w.T @ g"], prog="symderive")
    _, err = capsys.readouterr()
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize(
    "assume",
    [
        ["n >= 3", "n <= 3"],
        ["x >= 0", "x <= 0"],
        ["sum(x) == 1", "x >= 0"],
        ["sum(x) == 0", "x != 0"],
        ["x > -1", "x < 0.5"],
    ],
    ids=["sizes", "sign-point", "simplex", "sum-zero", "interval"],
)
def test_consistent_assumptions_still_load(tmp_path, assume):
    layer = load_layer(str(_write(tmp_path, _layer_text({"x": ["n"], "w": ["m", "n"]}, "w @ x", assume))))
    assert [a.text for a in layer.assumptions] == assume


def test_claim_assumption_contradicting_the_layer_is_refused(tmp_path):
    text = _layer_text({"x": ["n"], "w": ["m", "n"]}, "w @ x", ["n >= 3"])
    text += '[[claims]]\nwrt = "x"\nclaim = "w.T @ g"\nassume = ["n <= 2"]\n'
    with pytest.raises(InputError) as info:
        load_layer(str(_write(tmp_path, text)))
    message = str(info.value)
    assert "claims[0].assume" in message and '"n <= 2"' in message and '"n >= 3"' in message, message


AUDIT_FILES = {
    "inc": ({"w": ["m", "n"], "x": ["n"]}, "w.T @ x", "x", "w @ g"),
    "add": ({"x": ["n"], "w": ["m"]}, "x + w", "x", "g"),
    "neg": ({"x": ["-2"]}, "2 * x", "x", "2 * x * g"),
    "zero": ({"x": ["0"]}, "2 * x", "x", "5 * g"),
    "nm3": ({"x": ["n - 3"]}, "2 * x", "x", "3 * g"),
}


@pytest.mark.parametrize("name", AUDIT_FILES)
def test_cli_refuses_bad_layers_with_one_line(tmp_path, capsys, name):
    from symderive.cli import main

    inputs, forward, wrt, claim = AUDIT_FILES[name]
    path = _write(tmp_path, _layer_text(inputs, forward), f"{name}.toml")
    for argv in (["show", str(path)], ["prove", str(path), "--wrt", wrt, claim]):
        status = main(argv, prog="symderive")
        out, err = capsys.readouterr()
        assert status == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(path) in err


@pytest.mark.parametrize("name", builtin_layer_names())
def test_builtin_layer_exists_at_every_size_it_allows(name):
    from symderive.core import domains as domains

    layer = load_layer(name)
    facts = [a.cond for a in layer.assumptions if a.kind == "size"]
    assert domains.failing_sizes(facts, layer.forward.valid, layer.sizes) == (True, None)
    for dim in [d for shape in layer.inputs.values() for d in shape] + list(layer.forward.shape):
        assert domains.failing_sizes(facts, sp.Ge(dim, 1), layer.sizes) == (True, None), dim


def test_example_layers_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    paths = sorted(root.glob("user_layers/*.toml")) + sorted(root.glob("course/*.toml"))
    assert len(paths) >= 4
    for path in paths:
        assert load_layer(str(path)).forward is not None
