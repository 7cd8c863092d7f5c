"""The built-in layers beyond the seeds, against PyTorch: forward, derived gradient, known claims.

These test the layer files and the operators, not the prover: each layer's forward is
evaluated concretely (element by element) and compared with ``torch.nn.functional``;
the derived gradient (``symderive.derive``) and every claim the file expects to be
proved are evaluated concretely and compared with torch autograd, on random data over
several sizes, edge sizes included (dimensions of 1, kernels as large as the input,
strides that do not divide). Every claim the file keeps as a known mistake must differ
from autograd at some of those sizes.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from heavy import by_weight

from symderive import counterexample as cx
from symderive.core.ir import Tensor
from symderive.core.parse import claim_tensor, parse_claim
from symderive.decide.concrete import EvaluationError, evaluate
from symderive.derive import derive
from symderive.errors import InputError
from symderive.model.layer import load_layer

# -- torch oracles --------------------------------------------------------------------------------


def _attention(t):
    q, k, v = t["Q"], t["K"], t["V"]
    return F.scaled_dot_product_attention(q[None], k[None], v[None])[0]


TORCH = {
    "conv1d_ncl": lambda t: F.conv1d(t["x"], t["w"], t["b"]),
    "conv1d_ncl_s2": lambda t: F.conv1d(t["x"], t["w"], t["b"], stride=2),
    "conv2d_nchw": lambda t: F.conv2d(t["x"], t["w"], t["b"]),
    "conv2d_nchw_s2p1": lambda t: F.conv2d(t["x"], t["w"], t["b"], stride=2, padding=1),
    "conv2d_nchw_d2": lambda t: F.conv2d(t["x"], t["w"], t["b"], dilation=2),
    "conv2d_nchw_g2": lambda t: F.conv2d(t["x"], t["w"], t["b"], groups=2),
    "conv_transpose2d_nchw": lambda t: F.conv_transpose2d(t["x"], t["w"], t["b"]),
    "avg_pool2d_k2": lambda t: F.avg_pool2d(t["x"], 2),
    "linear_batched": lambda t: F.linear(t["x"], t["w"], t["b"]),
    "relu": lambda t: torch.relu(t["x"]),
    "tanh": lambda t: torch.tanh(t["x"]),
    "sigmoid": lambda t: torch.sigmoid(t["x"]),
    "mse": lambda t: F.mse_loss(t["x"], t["t"]),
    "log_softmax_nll": lambda t: F.cross_entropy(t["s"], t["t"]),
    "sigmoid_bce": lambda t: F.binary_cross_entropy_with_logits(t["x"], t["t"]),
    "layer_norm": lambda t: F.layer_norm(t["x"], t["x"].shape[-1:], t["gamma"], t["beta"], eps=float(t["eps"])),
    "batch_norm": lambda t: F.batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=float(t["eps"])),
    "attention": _attention,
    # the user layer files of examples/user_layers/
    "depthwise_conv2d": lambda t: F.conv2d(t["x"], t["w"], t["b"], groups=3),
    "strided_conv1d": lambda t: F.conv1d(t["x"], t["w"], t["b"], stride=3, padding=1),
    "swish": lambda t: F.silu(t["x"]),
    "gelu": lambda t: F.gelu(t["x"]),
    "silu": lambda t: F.silu(t["x"]),
    "leaky_relu": lambda t: F.leaky_relu(t["x"], negative_slope=0.2),
    "elu": lambda t: F.elu(t["x"], alpha=0.5),
    "softplus_beta": lambda t: F.softplus(t["x"], beta=2),
    "log_partition": lambda t: F.softplus(t["x"]) + torch.logaddexp(t["x"], t["w"]),
    "std_axis": lambda t: torch.std(t["x"], dim=1, correction=0) ** 2,
    "mse_loss": lambda t: F.mse_loss(t["x"], t["t"]),
    "cross_entropy_probs": lambda t: F.cross_entropy(t["s"], t["t"]),
    "layer_norm_fn": lambda t: F.layer_norm(t["x"], t["x"].shape[-1:], t["gamma"], t["beta"]),
}

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "user_layers"
EXAMPLES = (
    "depthwise_conv2d",
    "strided_conv1d",
    "swish",
    "gelu",
    "silu",
    "leaky_relu",
    "elu",
    "softplus_beta",
    "log_partition",
    "std_axis",
    "mse_loss",
    "cross_entropy_probs",
    "layer_norm_fn",
)

# sizes per layer, in the order the layer declares them (symderive show LAYER lists them)
SIZES = {
    "conv1d_ncl": [
        dict(N=1, C=1, L=1, O=1, k=1),
        dict(N=2, C=3, L=5, O=2, k=2),
        dict(N=1, C=2, L=4, O=3, k=4),  # kernel as large as the input
    ],
    "conv1d_ncl_s2": [
        dict(N=1, C=1, L=1, O=1, k=1),
        dict(N=2, C=2, L=6, O=3, k=3),  # 2 does not divide L - k
        dict(N=1, C=3, L=7, O=2, k=3),  # 2 divides L - k
        dict(N=2, C=1, L=4, O=1, k=4),
    ],
    "conv2d_nchw": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=2, H=4, W=3, O=3, kh=2, kw=3),
        dict(N=1, C=3, H=3, W=5, O=2, kh=3, kw=1),
    ],
    "conv2d_nchw_s2p1": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=1, C=1, H=1, W=2, O=1, kh=3, kw=4),  # kernel as large as the padded input
        dict(N=2, C=2, H=4, W=5, O=2, kh=3, kw=2),  # 2 divides H + 2 - kh on one axis only
        dict(N=1, C=2, H=5, W=3, O=3, kh=3, kw=3),  # 2 divides both
        dict(N=1, C=1, H=6, W=4, O=1, kh=2, kw=1),
    ],
    "conv2d_nchw_d2": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=2, H=5, W=4, O=2, kh=2, kw=2),
        dict(N=1, C=1, H=5, W=3, O=3, kh=3, kw=2),  # dilated kernel as large as the input
    ],
    "conv2d_nchw_g2": [
        dict(N=1, Cg=1, H=1, W=1, Og=1, kh=1, kw=1),
        dict(N=2, Cg=2, H=4, W=3, Og=1, kh=2, kw=2),
        dict(N=1, Cg=1, H=3, W=3, Og=2, kh=3, kw=2),
    ],
    "conv_transpose2d_nchw": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=2, H=3, W=2, O=3, kh=2, kw=3),
        dict(N=1, C=3, H=1, W=4, O=2, kh=3, kw=1),
    ],
    "avg_pool2d_k2": [
        dict(N=1, C=1, H=2, W=2),
        dict(N=2, C=3, H=5, W=4),  # odd height: the last row is dropped
        dict(N=1, C=2, H=3, W=7),
    ],
    "linear_batched": [dict(N=1, I=1, O=1), dict(N=3, I=4, O=2), dict(N=2, I=1, O=5)],
    "relu": [dict(N=1, D=1), dict(N=3, D=4)],
    "tanh": [dict(N=1, D=1), dict(N=3, D=4)],
    "sigmoid": [dict(N=1, D=1), dict(N=3, D=4)],
    "mse": [dict(N=1, D=1), dict(N=3, D=4), dict(N=2, D=1)],
    "log_softmax_nll": [dict(N=1, K=1), dict(N=3, K=4), dict(N=2, K=1), dict(N=1, K=5)],
    "sigmoid_bce": [dict(N=1, D=1), dict(N=3, D=4), dict(N=2, D=1)],
    "layer_norm": [dict(N=1, D=1), dict(N=2, D=4), dict(N=3, D=2)],
    "batch_norm": [dict(N=2, C=1), dict(N=4, C=2), dict(N=2, C=3)],
    "attention": [dict(n=1, d=1, m=1, dv=1), dict(n=2, d=3, m=4, dv=2), dict(n=3, d=2, m=1, dv=3)],
    "depthwise_conv2d": [
        dict(N=1, H=1, W=1, kh=1, kw=1),
        dict(N=2, H=4, W=3, kh=2, kw=3),
        dict(N=1, H=3, W=5, kh=3, kw=2),
    ],
    "strided_conv1d": [
        dict(N=1, C=1, L=1, O=1, k=1),
        dict(N=1, C=1, L=1, O=1, k=3),  # kernel as large as the padded input
        dict(N=2, C=2, L=7, O=2, k=2),  # (L + 2 - k) % 3 == 1
        dict(N=1, C=2, L=8, O=3, k=2),  # (L + 2 - k) % 3 == 2
        dict(N=1, C=1, L=6, O=1, k=2),  # 3 divides L + 2 - k
    ],
    "swish": [dict(N=1, D=1), dict(N=3, D=4)],
    "gelu": [dict(N=1, D=1), dict(N=3, D=4)],
    "silu": [dict(N=1, D=1), dict(N=3, D=4)],
    "leaky_relu": [dict(N=1, D=1), dict(N=3, D=4)],
    "elu": [dict(N=1, D=1), dict(N=3, D=4)],
    "softplus_beta": [dict(N=1, D=1), dict(N=3, D=4)],
    "log_partition": [dict(N=1, D=1), dict(N=3, D=4)],
    "std_axis": [dict(N=1, D=1), dict(N=2, D=3), dict(N=3, D=4)],
    "mse_loss": [dict(N=1, D=1), dict(N=3, D=4), dict(N=2, D=1)],
    "cross_entropy_probs": [dict(N=1, K=1), dict(N=3, K=4), dict(N=2, K=1), dict(N=1, K=5)],
    "layer_norm_fn": [dict(N=1, D=1), dict(N=2, D=4), dict(N=3, D=2)],
}

LAYERS = sorted(set(SIZES) - set(EXAMPLES)) + list(EXAMPLES)

# -- data -----------------------------------------------------------------------------------------


def rng_for(*key) -> np.random.Generator:
    """A generator seeded by the test's parameters (reproducible, different per case)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def random_values(layer, sizes: dict, rng: np.random.Generator) -> dict:
    """Random inputs (and ``g``) satisfying the layer's tensor assumptions."""
    shapes = cx.input_shapes(layer, sizes)
    values = {n: rng.standard_normal(s) for n, s in shapes.items()}
    if layer.name in ("relu", "leaky_relu", "elu"):
        # half-integers with zeros among them: the kink, where torch's derivative is its own (0, slope, alpha)
        values["x"] = rng.integers(-3, 4, size=shapes["x"]) / 2.0
    if layer.name == "softplus_beta":
        # both sides of torch's threshold (beta * x > 20), and the threshold itself
        values["x"] = rng.integers(-24, 25, size=shapes["x"]) / 2.0
    if layer.name in ("log_softmax_nll", "cross_entropy_probs"):
        values["t"] = rng.dirichlet(np.ones(shapes["t"][1]), size=shapes["t"][0])
    if layer.name == "sigmoid_bce":
        values["t"] = rng.random(shapes["t"])
    if "eps" in shapes:
        values["eps"] = np.array(0.05 + rng.random())
    return values


def torch_forward(name: str, values: dict, wrt: str | None = None) -> tuple[torch.Tensor, dict]:
    t = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=(k == wrt)) for k, v in values.items()}
    return TORCH[name](t), t


def torch_gradient(layer, wrt: str, values: dict) -> np.ndarray:
    """Autograd's gradient of the layer's loss (``sum(g * y)`` for a non-final layer)."""
    y, t = torch_forward(layer.name, values, wrt)
    loss = y if layer.is_loss else (t["g"] * y).sum()
    loss.backward()
    return t[wrt].grad.numpy()


def size_assumptions_hold(layer, texts, sizes: dict) -> bool:
    """Whether a claim's own size assumptions hold at concrete sizes."""
    env = {s: sizes[str(s)] for s in layer.sizes}
    for a in cx.parse_assumptions(list(texts), layer):
        if a.kind == "size" and not bool(sp.sympify(a.cond).xreplace(env)):
            return False
    return True


def derived_gradient(derivation, layer, wrt: str, sizes: dict, values: dict) -> np.ndarray:
    index = derivation.index
    tensor = Tensor(
        shape=layer.inputs[wrt],
        element=lambda idx: derivation.gradient.xreplace(dict(zip(index, idx, strict=True))),
    )
    return np.asarray(evaluate(tensor, sizes, values), dtype=np.float64)


def claim_value(layer, wrt: str, text: str, sizes: dict, values: dict) -> np.ndarray | None:
    """The claim evaluated concretely (None where it is not defined at these sizes)."""
    tensor = claim_tensor(parse_claim(text, layer, wrt), layer)
    try:
        return np.asarray(evaluate(tensor, sizes, values), dtype=np.float64)
    except EvaluationError:
        return None


_LOADED: dict = {}


def layer_named(name: str):
    if name not in _LOADED:
        _LOADED[name] = load_layer(EXAMPLES_DIR / f"{name}.toml" if name in EXAMPLES else name)
    return _LOADED[name]


def claims_of(expect: str) -> list:
    out = []
    for name in LAYERS:
        for k, c in enumerate(layer_named(name).claims):
            if c.expect == expect:
                out.append(pytest.param(name, k, id=f"{name}-d{c.wrt}-{k}"))
    return out


def wrt_cases() -> list:
    return [pytest.param(n, w, id=f"{n}-{w}") for n in LAYERS for w in layer_named(n).differentiable]


# -- tests ----------------------------------------------------------------------------------------


def test_every_new_builtin_layer_is_covered():
    from symderive.model.layer import builtin_layer_names

    seeds = {"conv2d", "convolution2d", "convolution2d_full", "linear", "softmax_cross_entropy"}
    assert set(builtin_layer_names()) - seeds == set(SIZES) - set(EXAMPLES)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_sizes_are_declared_in_order(name):
    layer = layer_named(name)
    for sizes in SIZES[name]:
        assert list(sizes) == [str(s) for s in layer.sizes]
        assert all(
            bool(sp.sympify(c).xreplace({s: sizes[str(s)] for s in layer.sizes})) for c in layer.size_assumptions()
        )


@pytest.mark.parametrize("name", LAYERS)
def test_show_gives_every_tensor_and_size(name):
    from symderive.model.layer import describe_layer

    layer = layer_named(name)
    text = describe_layer(layer)
    assert text.splitlines()[0] == f"layer {name}"
    for tensor, shape in layer.inputs.items():
        assert f"  {tensor} [{', '.join(sp.sstr(d) for d in shape)}]" in text
    assert f"sizes: {', '.join(str(s) for s in layer.sizes)} (each >= 1)" in text
    assert len([c for c in text.splitlines() if c.startswith("  d")]) == len(layer.claims)


@pytest.mark.parametrize("name", LAYERS)
def test_forward_matches_torch(name):
    layer = layer_named(name)
    for sizes in SIZES[name]:
        values = random_values(layer, sizes, rng_for(name, "forward", sizes))
        expected = torch_forward(name, values)[0].detach().numpy()
        got = evaluate(layer.forward, sizes, values)
        assert got.shape == expected.shape, f"{name} at {sizes}"
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"{name} at {sizes}")


@pytest.mark.parametrize(("name", "wrt"), by_weight(wrt_cases(), layer=lambda case: case[0]))
def test_derived_gradient_matches_autograd(name, wrt):
    layer = layer_named(name)
    d = derive(layer, wrt)
    for sizes in SIZES[name]:
        values = random_values(layer, sizes, rng_for(name, wrt, sizes))
        expected = torch_gradient(layer, wrt, values)
        got = derived_gradient(d, layer, wrt, sizes, values)
        assert got.shape == expected.shape, f"{name}/{wrt} at {sizes}"
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-11, err_msg=f"{name}/{wrt} at {sizes}")


@pytest.mark.parametrize(("name", "wrt"), [("conv1d_ncl", "x"), ("attention", "K"), ("layer_norm", "x")])
def test_exact_true_gradient_matches_autograd(name, wrt):
    """The counterexample search's exact gradient (SymPy on the finite expression), at the smallest sizes."""
    layer = layer_named(name)
    sizes = SIZES[name][1]
    rng = rng_for(name, wrt, "exact")
    values = {k: np.round(v * 2) / 2 for k, v in random_values(layer, sizes, rng).items()}
    if "eps" in values:
        values["eps"] = np.array(0.5)
    expected = torch_gradient(layer, wrt, values)
    got = np.asarray(cx.true_gradient(layer, wrt, sizes, values), dtype=np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "k"), claims_of("proved"))
def test_true_claim_matches_autograd(name, k):
    layer = layer_named(name)
    claim = layer.claims[k]
    checked = 0
    for sizes in SIZES[name]:
        if not size_assumptions_hold(layer, claim.assume, sizes):
            continue
        values = random_values(layer, sizes, rng_for(name, k, sizes))
        expected = torch_gradient(layer, claim.wrt, values)
        got = claim_value(layer, claim.wrt, claim.claim, sizes, values)
        assert got is not None, f"{claim.claim} undefined at {sizes}"
        assert got.shape == expected.shape, f"{claim.claim} at {sizes}"
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-11, err_msg=f"{claim.claim} at {sizes}")
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(("name", "k"), claims_of("refuted"))
def test_known_mistake_differs_from_autograd(name, k):
    layer = layer_named(name)
    claim = layer.claims[k]
    for sizes in SIZES[name]:
        values = random_values(layer, sizes, rng_for(name, k, sizes))
        expected = torch_gradient(layer, claim.wrt, values)
        got = claim_value(layer, claim.wrt, claim.claim, sizes, values)
        if got is None or got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-8, atol=1e-11):
            return
    pytest.fail(f"{name}: {claim.claim!r} agrees with autograd at every size tried")


# -- the deliberate consequences of torch's conventions ------------------------------------------


@pytest.mark.parametrize(("H", "W", "kh", "kw"), [(4, 5, 3, 2), (5, 3, 3, 3), (1, 1, 1, 1), (6, 4, 2, 1)])
def test_stride_two_transposed_convolution_needs_output_padding_exactly_when_two_does_not_divide(H, W, kh, kw):
    layer = layer_named("conv2d_nchw_s2p1")
    sizes = dict(N=1, C=1, H=H, W=W, O=1, kh=kh, kw=kw)
    values = random_values(layer, sizes, rng_for("op", H, W, kh, kw))
    plain = claim_value(layer, "x", "conv_transpose2d(g, w, stride=2, padding=1)", sizes, values)
    fits = (H + 2 - kh) % 2 == 0 and (W + 2 - kw) % 2 == 0
    assert (plain is not None and plain.shape == (1, 1, H, W)) == fits


def test_relu_gradient_at_zero_is_zero_as_in_torch():
    layer = layer_named("relu")
    sizes = dict(N=1, D=3)
    values = {"x": np.array([[-1.0, 0.0, 2.0]]), "g": np.array([[5.0, 7.0, 11.0]])}
    d = derive(layer, "x")
    np.testing.assert_array_equal(derived_gradient(d, layer, "x", sizes, values), [[0.0, 0.0, 11.0]])
    np.testing.assert_array_equal(torch_gradient(layer, "x", values), [[0.0, 0.0, 11.0]])


# -- unsupported constructs in a layer file are input errors naming them ---------------------------


def _load_error(tmp_path, text: str) -> str:
    """The message (without the file's path) of loading a layer file that must be refused."""
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_layer(path)
    return info.value.message


CONV1D_HEAD = 'name = "bad"\n[inputs]\nx = ["N", "C", "L"]\nw = ["O", "C", "k"]\n'


@pytest.mark.parametrize(
    ("call", "construct"),
    [
        ("conv1d(x, w, stride=k)", "symbolic stride k"),
        ("conv1d(x, w, dilation=O)", "symbolic dilation O"),
        ("conv1d(x, w, groups=C)", "symbolic groups C"),
    ],
)
def test_symbolic_conv_option_in_the_forward_is_an_input_error(tmp_path, call, construct):
    assert construct in _load_error(tmp_path, CONV1D_HEAD + f'[output]\ny = "{call}"\n')


def test_symbolic_stride_in_a_claim_is_an_input_error(tmp_path):
    text = (
        CONV1D_HEAD.replace("[inputs]", 'assume = ["L >= k"]\n[inputs]')
        + '[output]\ny = "conv1d(x, w)"\n[[claims]]\nwrt = "x"\nclaim = "conv_transpose1d(g, w, stride=k)"\n'
    )
    assert "symbolic stride k" in _load_error(tmp_path, text)


def test_symbolic_stride_in_an_index_form_is_an_input_error(tmp_path):
    text = 'name = "bad"\n[inputs]\nx = ["L"]\n[output]\ny = "y[i] == x[s * i]"\nshape = ["s"]\n'
    assert "symbolic stride" in _load_error(tmp_path, text)


@pytest.mark.parametrize("body", ["x[t[i]]", "Sum(x[j] * KroneckerDelta(j, t[i]), j)"])
def test_data_dependent_index_is_an_input_error(tmp_path, body):
    text = f'name = "bad"\n[inputs]\nx = ["n"]\nt = ["m"]\n[output]\ny = "y[i] == {body}"\nshape = ["m"]\n'
    assert "t[i]" in _load_error(tmp_path, text)
