"""Regressions: inputs on which symderive once went wrong, or that guard a known trap.

Each case names the layer, the input, the claim and the right verdict, settled by hand
and by PyTorch autograd (DESIGN.md's known traps: Karr sums, Kronecker deltas over the
rationals, PyTorch's values at kinks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symderive.cli import main
from symderive.layer import load_layer
from symderive.prove import prove


def _layer_file(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\n{body}', encoding="utf-8")
    return str(path)


# found by the mutation campaign's first run: an IndexError ('tuple index out of range', exit 70)
# on every x / gamma claim of the built-in batch_norm and layer_norm layers
@pytest.mark.parametrize("name", ["batch_norm", "layer_norm"])
def test_normalisation_layers_gamma_claims_get_their_expected_verdicts(name):
    layer = load_layer(name)
    for c in layer.claims:
        if c.wrt == "gamma":
            v = prove(layer, c.wrt, c.claim, assume=list(c.assume))
            assert v.verdict == c.expect, (c.wrt, c.claim, v)


def test_normalisation_layer_claim_is_not_an_internal_error(capsys):
    claim = "sum(g * (x - mean(x, axis=0)) / sqrt(var(x, axis=0) + eps), axis=0)"
    assert main(["prove", "batch_norm", "--wrt", "gamma", claim]) in (0, 3)
    assert "internal error" not in capsys.readouterr().err


def test_maximum_splits_the_gradient_at_a_tie(tmp_path):
    # torch.maximum(x, 0) at x == 0 gives half the gradient to each side: g * (x > 0) is wrong there
    x = torch.zeros(1, requires_grad=True)
    torch.maximum(x, torch.zeros(1)).sum().backward()
    assert x.grad.item() == 0.5
    path = _layer_file(tmp_path, "maxrelu", '[inputs]\nx = ["N"]\n[output]\ny = "maximum(x, 0)"\n')
    assert prove(path, "x", "g * (x > 0)").verdict == "refuted"
    assert prove(path, "x", "g * (x >= 0)").verdict == "refuted"


def test_relu_takes_torch_value_at_the_kink():
    assert prove("relu", "x", "g * (x >= 0)").verdict == "refuted"
    assert prove("relu", "x", "g * (x > 0)").verdict == "proved"


def test_reversed_explicit_bounds_are_an_empty_sum_not_karr():
    # SymPy's Karr convention would make Sum(f, (i, m - 1, 0)) a nonzero sum for m > 2
    v = prove("linear", "x", "dx[p] == Sum(w[i, p] * g[i], (i, m - 1, 0))")
    assert v.verdict == "refuted"
    assert (
        prove("linear", "x", "dx[p] == Sum(w[i, p] * g[i], (i, 0, m - 1)) + Sum(g[i], (i, 3, 1))").verdict == "proved"
    )


def test_strided_read_delta_is_solved_over_the_integers(tmp_path):
    # y[k] = x[2k]: only even p receive a gradient (SymPy's delta summation says every p does)
    path = _layer_file(
        tmp_path, "stride", '[inputs]\nx = ["N"]\n[output]\ny = "y[k] == x[2 * k]"\nshape = ["(N + 1) // 2"]\n'
    )
    assert prove(path, "x", "dx[p] == g[p // 2]").verdict == "refuted"
    assert prove(path, "x", "dx[p] == g[p // 2] * (p % 2 == 0)").verdict == "proved"
    assert prove(path, "x", "dx[p] == Sum(g[k] * KroneckerDelta(2 * k, p), k)").verdict == "proved"


def test_softmax_cross_entropy_needs_its_assumption():
    # without sum(t) == 1 the residual (sum(t) - 1) * softmax(s) remains
    s, t = np.array([0.5, -1.0, 2.0]), np.array([0.2, 0.3, 0.9])
    st = torch.tensor(s, requires_grad=True)
    (-(torch.tensor(t) * torch.log_softmax(st, 0)).sum()).backward()
    claim = torch.softmax(torch.tensor(s), 0).numpy() - t
    assert not np.allclose(st.grad.numpy(), claim)
    assert prove("softmax_cross_entropy", "s", "softmax(s) * sum(t) - t").verdict == "proved"
