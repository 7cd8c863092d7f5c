"""Emitted NumPy is numerically stable where torch is: ±1000 logits against torch's own functions.

The oracle is torch (its loss functions and autograd) in float64; the emitted forward and
backward must agree with it, stay finite, and raise no floating-point overflow, invalid or
divide-by-zero (NumPy's errors made exceptions). A stable spelling is used only once the
prover has shown it equal to the form as written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from symderive.core import tree as T
from symderive.emit.codegen import emit_numpy
from symderive.emit.stable import call, proved_equal, stable_form
from symderive.layer import layer_from_dict, load_layer

RNG = np.random.default_rng(20261207)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def modules():
    """name -> the emitted module's namespace, each layer emitted once."""
    cache = {}

    def get(layer):
        name = layer if isinstance(layer, str) else layer.name
        if name not in cache:
            namespace: dict = {}
            exec(compile(emit_numpy(layer), f"<{name}>", "exec"), namespace)
            cache[name] = namespace
        return cache[name]

    return get


def strict(fn, **inputs):
    """``fn(**inputs)`` with NumPy's overflow, invalid and divide-by-zero raised as errors."""
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out = np.asarray(fn(**inputs))
    assert np.all(np.isfinite(out)), out
    return out


def extreme_logits(shape):
    """Logits of ±1000 and random values between, every row holding both extremes."""
    x = RNG.uniform(-1000, 1000, size=shape)
    x.flat[0], x.flat[-1] = 1000.0, -1000.0
    if len(shape) == 2:
        x[:, 0], x[:, -1] = 1000.0, -1000.0
    return x


def distribution(shape):
    t = RNG.uniform(0.1, 1.0, size=shape)
    return t / t.sum(axis=-1, keepdims=True)


def test_softmax_cross_entropy_of_the_issue_is_torch_value(modules):
    m = modules("softmax_cross_entropy")
    s, t = np.array([1000.0, 0.0, -1000.0]), np.array([0.0, 1.0, 0.0])
    ts = torch.tensor(s, requires_grad=True)
    loss = F.cross_entropy(ts[None], torch.tensor(t)[None])
    loss.backward()
    assert strict(m["forward"], s=s, t=t) == pytest.approx(1000.0) == loss.item()
    np.testing.assert_allclose(strict(m["grad_s"], s=s, t=t), ts.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_softmax_cross_entropy_matches_torch_at_extremes(modules, n):
    m = modules("softmax_cross_entropy")
    s, t = extreme_logits((n,)), distribution((n,))
    ts = torch.tensor(s, requires_grad=True)
    loss = F.cross_entropy(ts[None], torch.tensor(t)[None])
    loss.backward()
    np.testing.assert_allclose(strict(m["forward"], s=s, t=t), loss.item(), rtol=1e-12)
    np.testing.assert_allclose(strict(m["grad_s"], s=s, t=t), ts.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 2)])
def test_log_softmax_nll_matches_torch_cross_entropy_at_extremes(modules, shape):
    m = modules("log_softmax_nll")
    s, t = extreme_logits(shape), distribution(shape)
    ts = torch.tensor(s, requires_grad=True)
    loss = F.cross_entropy(ts, torch.tensor(t))
    loss.backward()
    np.testing.assert_allclose(strict(m["forward"], s=s, t=t), loss.item(), rtol=1e-12)
    np.testing.assert_allclose(strict(m["grad_s"], s=s, t=t), ts.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3)])
def test_sigmoid_bce_matches_torch_at_extremes(modules, shape):
    m = modules("sigmoid_bce")
    x, t = extreme_logits(shape), RNG.uniform(0, 1, size=shape)
    tx = torch.tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(tx, torch.tensor(t))
    loss.backward()
    np.testing.assert_allclose(strict(m["forward"], x=x, t=t), loss.item(), rtol=1e-12)
    np.testing.assert_allclose(strict(m["grad_x"], x=x, t=t), tx.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_sigmoid_matches_torch_at_extremes(modules):
    m = modules("sigmoid")
    x, g = extreme_logits((3, 4)), RNG.normal(size=(3, 4))
    tx = torch.tensor(x, requires_grad=True)
    torch.sigmoid(tx).backward(torch.tensor(g))
    np.testing.assert_allclose(strict(m["forward"], x=x), torch.sigmoid(tx).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(strict(m["grad_x"], x=x, g=g), tx.grad.numpy(), rtol=1e-9, atol=1e-300)


def test_user_softplus_and_logsumexp_written_literally_are_stable(modules):
    layer = layer_from_dict(
        {
            "name": "literal_softplus",
            "inputs": {"x": ["n"], "w": ["n"]},
            "output": {"y": "log(1 + exp(x)) + log(sum(exp(w))) + log1p(exp(-x))"},
            "claims": [{"wrt": "x", "claim": "g * sigmoid(x) - g * sigmoid(-x)"}],
        }
    )
    m = modules(layer)
    x, w = np.array([1000.0, -1000.0, 3.0]), np.array([1000.0, 999.0, -1000.0])
    tx = torch.tensor(x)
    expected = F.softplus(tx) + torch.logsumexp(torch.tensor(w), 0) + F.softplus(-tx)
    np.testing.assert_allclose(strict(m["forward"], x=x, w=w), expected.numpy(), rtol=1e-12)
    assert "Computed stably" in m["forward"].__doc__


def test_a_rewrite_is_used_only_when_proved():
    layer = load_layer("softmax_cross_entropy")
    node, rewrites = stable_form(layer, layer.forward_tree, equal=lambda *_: False)
    assert node == layer.forward_tree and rewrites == ()
    node, rewrites = stable_form(layer, layer.forward_tree)
    assert [r.text for r in rewrites] == ["log(softmax(x)) as log_softmax(x)"]
    assert "log_softmax" in T.to_numpy(node)


def test_the_prover_refuses_a_wrong_stable_spelling():
    layer = load_layer("sigmoid_bce")
    x = T.Ref("x")
    softplus = call("logaddexp", x1=T.Num(0), x2=x)
    # log(sigmoid(x)) is -logaddexp(0, -x), not -logaddexp(0, x)
    assert not proved_equal(layer, call("log", x=call("sigmoid", x=x)), call("negative", x=softplus))
    assert proved_equal(layer, call("log", x=call("sigmoid", x=call("negative", x=x))), call("negative", x=softplus))


def test_logistic_and_softmax_written_out_are_stable(modules):
    layer = layer_from_dict(
        {
            "name": "literal_logistic_softmax",
            "inputs": {"x": ["n", "m"], "s": ["n", "m"]},
            "output": {"y": "1 / (1 + exp(-x)) + exp(x) / (1 + exp(x)) + exp(s) / sum(exp(s), axis=1, keepdims=True)"},
        }
    )
    m = modules(layer)
    x, s = extreme_logits((3, 4)), extreme_logits((3, 4))
    expected = 2 * torch.sigmoid(torch.tensor(x)) + torch.softmax(torch.tensor(s), dim=1)
    np.testing.assert_allclose(strict(m["forward"], x=x, s=s), expected.numpy(), rtol=1e-12, atol=1e-300)
    doc = " ".join(m["forward"].__doc__.split())
    assert "1 / (1 + exp(-u)) as sigmoid(u)" in doc and "exp(u) / sum(exp(u)) as softmax(u)" in doc
    assert "exp(u) / (1 + exp(u)) as sigmoid(u)" in doc


def test_the_prover_refuses_a_softmax_over_the_wrong_axis():
    layer = layer_from_dict({"name": "rows", "inputs": {"s": ["n", "m"]}, "output": {"y": "sum(s)"}})
    s = T.Ref("s")
    rows = call("divide", x1=call("exp", x=s), x2=call("sum", a=call("exp", x=s), axis=1, keepdims=True))
    assert proved_equal(layer, rows, call("softmax", x=s, axis=1))
    assert not proved_equal(layer, rows, call("softmax", x=s, axis=0))
    assert not proved_equal(layer, rows, call("softmax", x=s))


def test_a_claim_with_a_ratio_of_exponentials_is_computed_stably(modules):
    layer = load_layer(str(EXAMPLES / "user_layers" / "log_partition.toml"))
    m = modules(layer)
    x, w, g = extreme_logits((2, 3)), extreme_logits((2, 3)), RNG.normal(size=(2, 3))
    w[0, 0] = x[0, 0]  # exp(1000) / (exp(1000) + exp(1000)): inf / inf written literally
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w)
    (F.softplus(tx) + torch.logaddexp(tx, tw)).backward(torch.tensor(g))
    np.testing.assert_allclose(strict(m["grad_x"], x=x, w=w, g=g), tx.grad.numpy(), rtol=1e-9, atol=1e-300)
    assert "exp(a) / (exp(a) + exp(b)) as sigmoid(a - b)" in " ".join(m["grad_x"].__doc__.split())
