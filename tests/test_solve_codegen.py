"""codegen without a claim (issue 16, requirement 3): an input with no known claim gets the
closed form ``solve`` proves; a fallback to gather code says so, with the gather's memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from symderive import cli, codegen
from symderive.codegen import emit_numpy, gather_warnings, solved_claims

#: conv2d's forward without its [[claims]]: a user's own convolution layer
CUSTOM_CONV = """
name = "my_conv"
description = "A custom single-channel 2-D cross-correlation with a bias and no claims."
assume = ["kh <= H", "kw <= W"]

[inputs]
x = ["H", "W"]
w = ["kh", "kw"]
b = []

[output]
y = "correlate(x, w, 'valid') + b"
"""

#: a gradient outside the claim language's reach within a short search: gather code
SQUARED_CONV = """
name = "squared_conv"
description = "The square of a 1-D cross-correlation (no claims)."
assume = ["kh <= H"]

[inputs]
x = ["H"]
w = ["kh"]

[output]
y = "correlate(x, w, 'valid') * correlate(x, w, 'valid')"
"""


@pytest.fixture(scope="module")
def custom_conv(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "my_conv.toml"
    path.write_text(CUSTOM_CONV)
    return str(path)


@pytest.fixture(scope="module")
def custom_conv_source(custom_conv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a closed form was found: no gather warning
        return emit_numpy(custom_conv)


def _namespace(source: str) -> dict:
    namespace: dict = {"__name__": "emitted_custom_conv"}
    exec(compile(source, "<emitted>", "exec"), namespace)  # noqa: S102 -- test of generated code
    return namespace


def test_custom_conv_without_claims_emits_the_closed_form(custom_conv_source):
    namespace = _namespace(custom_conv_source)
    assert "_gather" not in custom_conv_source  # no index-form code anywhere
    # grad_x is one full convolution of g with w, not a gather over index ranges
    assert "_sd_signal(g, w" in custom_conv_source.split("def grad_x", 1)[1].split("def ", 1)[0]
    assert set(namespace) >= {"forward", "grad_x", "grad_w", "grad_b"}


@pytest.mark.parametrize("sizes", [(7, 5, 3, 2), (4, 4, 4, 4), (9, 1, 2, 1)])
def test_custom_conv_gradients_match_torch_autograd(custom_conv_source, sizes):
    H, W, kh, kw = sizes
    rng = np.random.default_rng(sum(sizes))
    x, w, b = rng.normal(size=(H, W)), rng.normal(size=(kh, kw)), rng.normal()
    tx, tw, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, w, b))
    y = F.conv2d(tx[None, None], tw[None, None])[0, 0] + tb
    g = rng.normal(size=tuple(y.shape))
    y.backward(torch.tensor(g))
    ns = _namespace(custom_conv_source)
    np.testing.assert_allclose(ns["forward"](x=x, w=w, b=b), y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ns["grad_x"](w=w, g=g), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ns["grad_w"](x=x, g=g), tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ns["grad_b"](g=g), tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_solved_claims_leave_given_and_known_claims_alone(custom_conv):
    claims, verdicts = solved_claims("conv2d", {"w": "correlate(x, g, 'valid')"})
    assert claims == {"w": "correlate(x, g, 'valid')"} and verdicts == {}  # x and b have known claims
    given = {"x": "convolve(g, w, 'full')", "w": "correlate(x, g, 'valid')"}
    claims, verdicts = solved_claims(custom_conv, given)
    assert set(claims) == {"x", "w", "b"} and set(verdicts) == {"b"}
    assert verdicts["b"].verdict == "proved"


@pytest.fixture(scope="module")
def squared_conv(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "squared_conv.toml"
    path.write_text(SQUARED_CONV)
    return str(path)


@pytest.mark.slow
def test_fallback_to_gather_code_warns_with_its_memory(squared_conv, monkeypatch):
    # a small candidate budget: the search ends by its count, without a closed form, on any machine
    monkeypatch.setattr(codegen, "SOLVE_CANDIDATES", 500)
    with pytest.warns(UserWarning) as record:
        source = emit_numpy(squared_conv, solve_timeout=120)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and "_gather" in source
    dx = next(m for m in messages if "dx " in m)
    # grad_x lowers to an array over x's H positions times the H - kh + 1 output positions, times kh
    # kernel offsets, float64: at H = 64, kh = 3 that is 8 * 64 * 62 * 3 bytes
    assert "gather code" in dx and "8*H*kh*(H - kh + 1)" in dx
    assert f"{8 * 64 * 62 * 3 / 2**20:.3g} MiB at H = 64, kh = 3" in dx


def test_no_warning_when_every_input_has_a_claim():
    assert gather_warnings("conv2d") == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emit_numpy("linear")


@pytest.mark.slow
def test_cli_codegen_warns_on_stderr_and_writes_the_module(squared_conv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(codegen, "SOLVE_CANDIDATES", 500)
    out = tmp_path / "squared.py"
    status = cli.main(["codegen", squared_conv, "-o", str(out), "--timeout", "60"])
    captured = capsys.readouterr()
    assert status == 0 and out.exists()
    lines = captured.err.strip().split("\n")
    assert len(lines) == 2 and all(ln.startswith("symderive codegen: warning: no closed form found") for ln in lines)
    assert all("MiB" in ln for ln in lines)
