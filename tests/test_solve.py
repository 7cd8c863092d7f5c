"""symderive.search.solve: the simplest proved closed forms of a gradient.

Every closed form ``solve`` offers must be proved (its Verdict says so), and is checked
here against PyTorch autograd at random non-square sizes (the oracle), and against the
layer file's known closed-form claim through the prover's identity. A third of the
built-in (layer, input) pairs run by default; the rest are marked ``slow``
(``pytest -m slow``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from symderive import cli
from symderive.core.parse import claim_tensor, parse_claim
from symderive.decide.concrete import evaluate
from symderive.errors import InputError
from symderive.layer import load_layer
from symderive.prove import prove_identity
from symderive.search import solve
from symderive.search.space import operator_count


def _conv2d_scipy(t):
    return F.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"]


# torch oracles of the forward passes (the loss is sum(g * y) for a non-final layer)
TORCH = {
    "linear": lambda t: t["w"] @ t["x"] + t["b"],
    "linear_batched": lambda t: F.linear(t["x"], t["w"], t["b"]),
    "relu": lambda t: torch.relu(t["x"]),
    "tanh": lambda t: torch.tanh(t["x"]),
    "sigmoid": lambda t: torch.sigmoid(t["x"]),
    "mse": lambda t: F.mse_loss(t["x"], t["t"]),
    "sigmoid_bce": lambda t: F.binary_cross_entropy_with_logits(t["x"], t["t"]),
    "softmax_cross_entropy": lambda t: -(t["t"] * torch.log_softmax(t["s"], 0)).sum(),
    "log_softmax_nll": lambda t: F.cross_entropy(t["s"], t["t"]),
    "conv2d": _conv2d_scipy,
    # convolve(x, w) is a correlation with the flipped kernel
    "convolution2d": lambda t: F.conv2d(t["x"][None, None], t["w"].flip(0, 1)[None, None])[0, 0],
    # a full convolution is a transposed convolution
    "convolution2d_full": lambda t: F.conv_transpose2d(t["x"][None, None], t["w"][None, None])[0, 0],
    "conv1d_ncl": lambda t: F.conv1d(t["x"], t["w"], t["b"]),
    "conv1d_ncl_s2": lambda t: F.conv1d(t["x"], t["w"], t["b"], stride=2),
    "conv2d_nchw": lambda t: F.conv2d(t["x"], t["w"], t["b"]),
    "conv2d_nchw_s2p1": lambda t: F.conv2d(t["x"], t["w"], t["b"], stride=2, padding=1),
    "conv2d_nchw_d2": lambda t: F.conv2d(t["x"], t["w"], t["b"], dilation=2),
    "conv2d_nchw_g2": lambda t: F.conv2d(t["x"], t["w"], t["b"], groups=2),
    "conv_transpose2d_nchw": lambda t: F.conv_transpose2d(t["x"], t["w"], t["b"]),
    "batch_norm": lambda t: F.batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=float(t["eps"])),
    "layer_norm": lambda t: F.layer_norm(t["x"], t["x"].shape[-1:], t["gamma"], t["beta"], eps=float(t["eps"])),
    "attention": lambda t: F.scaled_dot_product_attention(t["Q"][None], t["K"][None], t["V"][None])[0],
}

# random non-square sizes allowed by each layer (different from the search's own test points)
SIZES = {
    "linear": dict(n=5, m=3),
    "linear_batched": dict(N=3, I=6, O=4),
    "relu": dict(N=3, D=5),
    "tanh": dict(N=4, D=3),
    "sigmoid": dict(N=2, D=5),
    "mse": dict(N=3, D=6),
    "sigmoid_bce": dict(N=4, D=2),
    "softmax_cross_entropy": dict(n=6),
    "log_softmax_nll": dict(N=3, K=5),
    "conv2d": dict(H=6, W=4, kh=3, kw=2),
    "convolution2d": dict(H=5, W=7, kh=2, kw=4),
    "convolution2d_full": dict(H=3, W=5, kh=4, kw=2),
    "conv1d_ncl": dict(N=2, C=3, L=7, O=4, k=3),
    "conv1d_ncl_s2": dict(N=2, C=3, L=8, O=2, k=3),
    "conv2d_nchw": dict(N=2, C=3, H=6, W=5, O=4, kh=3, kw=2),
    "conv2d_nchw_s2p1": dict(N=2, C=3, H=6, W=5, O=2, kh=3, kw=2),
    "conv2d_nchw_d2": dict(N=2, C=3, H=7, W=6, O=2, kh=3, kw=2),
    "conv2d_nchw_g2": dict(N=2, Cg=2, H=6, W=5, Og=3, kh=3, kw=2),
    "conv_transpose2d_nchw": dict(N=2, C=3, H=4, W=3, O=2, kh=3, kw=2),
    "batch_norm": dict(N=4, C=3),
    "layer_norm": dict(N=3, D=4),
    "attention": dict(n=3, d=5, m=4, dv=2),
}

# (layer, input) pairs whose closed form solve finds; the first third runs by default
FAST = [
    ("linear", "x"),
    ("linear", "w"),
    ("linear", "b"),
    ("linear_batched", "w"),
    ("relu", "x"),
    ("mse", "x"),
    ("softmax_cross_entropy", "s"),
    ("conv2d", "x"),
    ("conv2d", "w"),
    ("conv2d", "b"),
    ("convolution2d", "x"),
    ("convolution2d_full", "w"),
    ("conv1d_ncl_s2", "x"),
    ("conv2d_nchw", "b"),
    ("conv2d_nchw_g2", "x"),
]
SLOW = [
    ("linear_batched", "x"),
    ("linear_batched", "b"),
    ("tanh", "x"),
    ("sigmoid", "x"),
    ("sigmoid_bce", "x"),
    ("log_softmax_nll", "s"),
    ("convolution2d", "w"),
    ("convolution2d_full", "x"),
    ("conv1d_ncl", "x"),
    ("conv1d_ncl", "w"),
    ("conv1d_ncl", "b"),
    ("conv1d_ncl_s2", "b"),
    ("conv2d_nchw", "x"),
    ("conv2d_nchw", "w"),
    ("conv2d_nchw_d2", "x"),
    ("conv2d_nchw_d2", "b"),
    ("conv2d_nchw_g2", "b"),
    ("conv2d_nchw_s2p1", "x"),
    ("conv2d_nchw_s2p1", "b"),
    ("conv_transpose2d_nchw", "x"),
    ("conv_transpose2d_nchw", "b"),
    ("conv_transpose2d_nchw", "w"),
    ("batch_norm", "beta"),
    ("layer_norm", "beta"),
    ("attention", "V"),
    # many operators deep: reached through the forward's named intermediates (reverse mode)
    ("attention", "Q"),
    ("attention", "K"),
    ("batch_norm", "x"),
    ("batch_norm", "gamma"),
    ("layer_norm", "x"),
    ("layer_norm", "gamma"),
    ("conv2d_nchw_d2", "w"),
]


#: candidates per pass: log_softmax_nll's (softmax(s, axis=1) - t) / N is built after about 32000
CANDIDATES = 40000


def _values(layer, sizes: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    env = {s: sizes[str(s)] for s in layer.sizes}
    out = {}
    for name, shape in layer.inputs.items():
        dims = tuple(int(d.xreplace(env)) for d in shape)
        out[name] = rng.uniform(0.3, 1.7, dims) * rng.choice([-1.0, 1.0], dims)
    for name in layer.constants:
        if name == "eps":
            out[name] = np.abs(out[name]) * 0.1
    if "t" in layer.inputs and layer.name in ("softmax_cross_entropy", "log_softmax_nll"):
        t = np.abs(out["t"])  # the layer assumes target distributions
        out["t"] = t / t.sum(axis=-1, keepdims=True)
    if "t" in layer.inputs and layer.name == "sigmoid_bce":
        out["t"] = np.abs(out["t"]) / 2
    return out


def _autograd(layer, wrt: str, values: dict):
    tensors = {n: torch.tensor(v, dtype=torch.float64, requires_grad=(n == wrt)) for n, v in values.items()}
    y = TORCH[layer.name](tensors)
    g = None
    if layer.is_loss:
        y.backward()
    else:
        g = np.random.default_rng(99).uniform(-1.5, 1.5, tuple(y.shape))
        y.backward(torch.tensor(g))
    return tensors[wrt].grad.numpy(), g


def _claim_value(layer, wrt: str, claim: str, values: dict, sizes: dict):
    tensor = claim_tensor(parse_claim(claim, layer, wrt), layer)
    env = dict(values)
    if not layer.is_loss:
        env[layer.output] = None
    return np.asarray(evaluate(tensor, sizes, env), dtype=float)


def _known_claim(layer, wrt: str) -> str | None:
    """The layer file's first closed-form claim for ``wrt`` expected proved (no extra assumption)."""
    for claim in layer.claims:
        if claim.wrt == wrt and claim.expect == "proved" and not claim.assume and "==" not in claim.claim:
            return claim.claim
    return None


def _check_against_torch(name: str, wrt: str):
    layer = load_layer(name)
    # bounded by counts, not by this machine's speed (the safety timeout is generous for a busy
    # CI machine; benchmarks/solve.py times each search)
    result = solve(layer, wrt, timeout=240, max_candidates=CANDIDATES)
    assert result.found, f"{name}/{wrt}: nothing proved; numeric matches were {result.unproved}"
    claims = [f.claim for f in result.claims]
    assert all(f.verdict.verdict == "proved" for f in result.claims)
    counts = [f.operators for f in result.claims]
    assert counts == sorted(counts), claims  # simplest first
    sizes = SIZES[name]
    values = _values(layer, sizes, seed=len(name))
    expected, g = _autograd(layer, wrt, values)
    if g is not None:
        values["g"] = g
    # the output, for claims that use it (y, L)
    out = {n: torch.tensor(v, dtype=torch.float64) for n, v in values.items() if n != "g"}
    values[layer.output] = TORCH[name](out).numpy()
    for claim in claims:
        got = _claim_value(layer, wrt, claim, values, sizes)
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9, err_msg=f"{name}/{wrt}: {claim}")
    # the simplest form equals the layer file's known claim, for all sizes and values
    known = _known_claim(layer, wrt)
    if known is not None and known != claims[0]:
        verdict = prove_identity(layer, f"{claims[0]} == {known}")
        assert verdict.verdict == "proved", (claims[0], known, verdict.reason)


@pytest.mark.parametrize(("name", "wrt"), FAST, ids=[f"{n}-{w}" for n, w in FAST])
def test_found_claims_agree_with_autograd(name, wrt):
    _check_against_torch(name, wrt)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "wrt"), SLOW, ids=[f"{n}-{w}" for n, w in SLOW])
def test_found_claims_agree_with_autograd_slow(name, wrt):
    _check_against_torch(name, wrt)


def test_simplest_claims_are_the_textbook_ones():
    # hand derivations: dL/dx of y = w @ x + b is w^T g (here spelled g @ w, one operator),
    # of y = correlate(x, w, 'valid') + b is the full convolution with w
    assert solve("linear", "x").claims[0].claim in ("g @ w", "w.T @ g")
    assert "convolve(g, w, 'full')" in [f.claim for f in solve("conv2d", "x").claims]
    assert solve("linear", "b").claims[0].claim == "g"


def test_operator_count_is_what_simplest_means():
    assert operator_count("g") == 0
    assert operator_count("w.T @ g") == 2
    assert operator_count("-(x - t)") == 2
    assert operator_count("sum(g, axis=(0, 2, 3))") == 1


def test_nothing_unproved_is_offered():
    # a factor of sizes found numerically is proved before it is offered; every claim of
    # every result carries a proved verdict, and numeric matches that fail stay out
    result = solve("relu", "x")
    assert result.found
    for f in result.claims:
        assert f.verdict.verdict == "proved"
        assert f.claim not in result.unproved
    # g * (y / x) agrees with relu's gradient wherever x != 0 but is undefined at 0: refuted
    assert all("/ x" not in f.claim for f in result.claims)


def test_index_form_when_none_found():
    # a weight gradient with stride and padding has no closed form within the search
    result = solve("conv2d_nchw_s2p1", "w", timeout=4)
    assert not result.found
    assert result.index_form.startswith("dL/dw[p, q, r, u] = ")
    assert "x[i, q, 2*l + r - 1, 2*o + u - 1]" in result.index_form
    assert result.to_json() == [
        {"layer": "conv2d_nchw_s2p1", "wrt": "w", "verdict": "none", "index_form": result.index_form}
    ]


def test_input_errors():
    with pytest.raises(InputError):
        solve("linear", "z")
    with pytest.raises(InputError):
        solve("softmax_cross_entropy", "t")  # a constant
    with pytest.raises(InputError):
        solve("linear", "x", timeout=-1)
    with pytest.raises(InputError):
        solve("linear", "x", max_results=0)


def test_max_results():
    assert len(solve("conv2d", "x", max_results=1).claims) == 1


# -- command line ------------------------------------------------------------------------------
def test_cli_solve_json(capsys):
    assert cli.main(["solve", "linear_batched", "--wrt", "w", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0] == {
        "layer": "linear_batched",
        "wrt": "w",
        "claim": "g.T @ x",
        "verdict": "proved",
        "assumptions": [],
    }
    assert all(obj["verdict"] == "proved" for obj in lines)


def test_cli_solve_text(capsys):
    assert cli.main(["solve", "conv2d", "--wrt", "b"]) == 0
    out = capsys.readouterr().out
    assert "sum(g)" in out and "proved" in out


def test_cli_solve_none_exits_3(capsys):
    assert cli.main(["solve", "conv2d_nchw_s2p1", "--wrt", "w", "--json", "--timeout", "3"]) == 3
    (obj,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert obj["verdict"] == "none" and obj["index_form"].startswith("dL/dw")


def test_cli_solve_input_error(capsys):
    assert cli.main(["solve", "linear", "--wrt", "nope"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope" in err
    assert cli.main(["solve", "no_such_layer", "--wrt", "x"]) == 2


def test_cli_prove_why_shows_the_nearest_variant(capsys):
    assert cli.main(["prove", "conv2d", "--wrt", "x", "convolve(g, flip(w), 'full')", "--why"]) == 1
    out = capsys.readouterr().out
    assert "refuted" in out
    assert out.rstrip().endswith("holds with `convolve(g, w, 'full')`: the kernel w is not flipped")


def test_cli_prove_without_why_searches_no_variant(capsys):
    assert cli.main(["prove", "conv2d", "--wrt", "x", "convolve(g, flip(w), 'full')"]) == 1
    assert "holds with" not in capsys.readouterr().out
