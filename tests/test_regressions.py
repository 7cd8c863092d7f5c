"""Regressions: inputs on which symderive once went wrong, or that guard a known trap.

Each case names the layer, the input, the claim and the right verdict, settled by hand
and by PyTorch autograd (DESIGN.md's known traps: Karr sums, Kronecker deltas over the
rationals, PyTorch's values at kinks).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.cli import main
from symderive.model.layer import load_layer
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


# found by an audit: SymPy evaluates 0 * log(x) to 0, d - d to 0 and d ** 0 to 1 as it
# builds them, which dropped the domain of d; NumPy computes log(x) and its nan propagates
_TANH_GRAD = "g * (1 - y**2)"
_LOST_DOMAIN_CLAIMS = [
    ("tanh", "x", f"{_TANH_GRAD} + 0 * log(x)", np.log),
    ("tanh", "x", f"{_TANH_GRAD} + log(x) - log(x)", np.log),
    ("tanh", "x", f"{_TANH_GRAD} + sqrt(x) - sqrt(x)", np.sqrt),
    ("tanh", "x", f"{_TANH_GRAD} + 0 * (1 / x)", lambda x: 1 / x),
    ("tanh", "x", f"{_TANH_GRAD} + 0 * sum(log(x))", np.log),
    ("tanh", "x", f"{_TANH_GRAD} + maximum(log(x), 0) * 0", np.log),
    ("tanh", "x", f"{_TANH_GRAD} + abs(log(x)) - abs(log(x))", np.log),
    ("linear", "x", "w.T @ g + 0 * log(x)", np.log),
]


@pytest.mark.parametrize(("layer", "wrt", "claim", "partial"), _LOST_DOMAIN_CLAIMS)
def test_a_domain_sympy_simplifies_away_is_still_refuted(layer, wrt, claim, partial):
    v = prove(layer, wrt, claim)
    assert v.verdict == "refuted", v
    ce = v.counterexample
    assert ce.claimed == "nan", ce
    assert set(ce.sizes.values()) == {1}, ce.sizes
    # the oracle: NumPy's partial operation is not finite there (nan, or log(0) = -inf)
    with np.errstate(all="ignore"):
        assert not np.isfinite(partial(np.array(ce.values["x"], dtype=float))).all()
    with np.errstate(all="ignore"):
        assert np.isnan(0 * partial(np.array(ce.values["x"], dtype=float))).any()


@pytest.mark.parametrize(
    ("compare", "numpy_compare"),
    [(">=", np.greater_equal), ("==", np.equal), ("<=", np.less_equal), ("!=", np.not_equal)],
)
def test_comparing_an_undefined_value_with_itself_is_numpys_false(compare, numpy_compare):
    # SymPy decides log(x) >= log(x) is True; NumPy's nan >= nan is False (and nan != nan True)
    with np.errstate(all="ignore"):
        at_nan = float(numpy_compare(np.log(-1.0), np.log(-1.0)))
        at_one = float(numpy_compare(np.log(1.0), np.log(1.0)))
    assert at_nan != at_one
    claim = f"{_TANH_GRAD} + (log(x) {compare} log(x)) - {int(at_one)}"
    v = prove("tanh", "x", claim)
    assert v.verdict == "refuted", v
    assert float(v.counterexample.claimed) == at_nan - at_one


def test_nan_to_the_power_zero_is_one_as_in_numpy():
    # IEEE pow: nan ** 0 == 1 and 1 ** nan == 1, so these claims are right wherever NumPy evaluates them
    with np.errstate(all="ignore"):
        x = np.array([-1.0, 0.0, 2.0])
        assert (np.log(x) ** 0 == 1).all() and (1 ** np.log(x) == 1).all()
    assert prove("tanh", "x", f"{_TANH_GRAD} * log(x)**0").verdict == "proved"
    assert prove("tanh", "x", f"{_TANH_GRAD} * 1**log(x)").verdict == "proved"
    v = prove("tanh", "x", f"{_TANH_GRAD} * (0 * log(x))**0 + 0 * log(x)**2")
    assert v.verdict == "refuted" and v.counterexample.claimed == "nan"


def test_where_does_not_take_the_domain_of_the_branch_it_does_not_choose():
    # np.where(x > 0, log(x), 0) is defined everywhere: the nan of log(x) at x <= 0 is not read
    with np.errstate(all="ignore"):
        assert not np.isnan(np.where(np.array([-1.0, 0.0, 2.0]) > 0, np.log([-1.0, 0.0, 2.0]), 0)).any()
    assert prove("tanh", "x", f"{_TANH_GRAD} + where(x > 0, log(x), 0) * 0").verdict == "proved"
    # inside the branch x > 0 holds, and with it log's domain
    assert prove("tanh", "x", f"{_TANH_GRAD} + where(x > 0, 0 * log(x), 0)").verdict == "proved"
    assert prove("tanh", "x", f"{_TANH_GRAD} + where(x <= 0, 0, 0 * log(x))").verdict == "proved"
    # the neighbours: the branch at x == 0 takes log(0) (nan), or the other branch is not 0
    with np.errstate(all="ignore"):
        assert np.isnan(np.where(np.array([0.0]) >= 0, 0 * np.log([0.0]), 0)).all()
    at_zero = prove("tanh", "x", f"{_TANH_GRAD} + where(x >= 0, 0 * log(x), 0)")
    assert at_zero.verdict == "refuted" and at_zero.counterexample.claimed == "nan"
    assert prove("tanh", "x", f"{_TANH_GRAD} + where(x > 0, 0 * log(x), 1)").verdict == "refuted"


# found while teaching the prover where's branch conditions: partial values that cancel in
# the canonical form were proved, but NumPy's value is nan where the partial value is
# (log(x) * (1 + x) - log(x) - x * log(x) is nan at x <= 0, not 0; so is 0 * log(x) guarded by
# a product of comparisons that is always 0)
@pytest.mark.parametrize(
    ("extra", "numpy_extra"),
    [
        ("log(x) * (1 + x) - log(x) - x * log(x)", lambda x: np.log(x) * (1 + x) - np.log(x) - x * np.log(x)),
        ("(x > 0) * (x < 0) * log(x)", lambda x: (x > 0) * (x < 0) * np.log(x)),
        ("(x > 0) * (x <= 0) * log(x)", lambda x: (x > 0) * (x <= 0) * np.log(x)),
        (
            "sqrt(x) * (2 + x) - 2 * sqrt(x) - x * sqrt(x)",
            lambda x: np.sqrt(x) * (2 + x) - 2 * np.sqrt(x) - x * np.sqrt(x),
        ),
        ("(x != 0) * (x == 0) / x", lambda x: (x != 0) * (x == 0) / x),
    ],
)
def test_partial_values_that_cancel_are_still_nan(extra, numpy_extra):
    with np.errstate(all="ignore"):
        assert np.isnan(numpy_extra(np.array([-1.0, 0.0]))).any()
        assert np.allclose(numpy_extra(np.array([0.5, 2.0])), 0, atol=1e-12)
    v = prove("tanh", "x", f"{_TANH_GRAD} + {extra}")
    assert v.verdict == "refuted", v
    assert v.counterexample.claimed == "nan"
    at = float(np.ravel(v.counterexample.values["x"])[0])
    with np.errstate(all="ignore"):
        assert np.isnan(numpy_extra(np.array([at])))[0]
    # with the domain assumed, the terms do cancel
    assert prove("tanh", "x", f"{_TANH_GRAD} + {extra}", assume=["x > 0"]).verdict == "proved"


def test_a_kept_domain_is_discharged_by_the_assumption_that_implies_it():
    assert prove("tanh", "x", f"{_TANH_GRAD} + 0 * log(x)", assume=["x > 0"]).verdict == "proved"
    assert prove("tanh", "x", f"{_TANH_GRAD} + sqrt(x) - sqrt(x)", assume=["x > 0"]).verdict == "proved"


def test_a_loss_with_logs_of_values_still_proves_its_gradient():
    # sigmoid_bce takes log(1 - sigmoid(x)), which SymPy does not know is defined
    x = torch.tensor([[0.3, -1.2, 2.0], [0.1, 0.7, -0.4]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.nn.functional.binary_cross_entropy(torch.sigmoid(x), t).backward()
    assert torch.allclose(x.grad, (torch.sigmoid(x) - t) / x.numel())
    assert prove("sigmoid_bce", "x", "(sigmoid(x) - t) / (N * D)").verdict == "proved"
    assert prove("sigmoid_bce", "x", "(sigmoid(x) - t) / (N * D) + 0 * log(1 - sigmoid(x))").verdict == "proved"


# found by an audit: einsum let a label repeated within one operand broadcast from size 1,
# so einsum("ii", w) passed for a 1 x 2 w; NumPy raises ("collapsing index ... don't match")
@pytest.mark.parametrize(
    ("wrt", "claim"), [("x", 'w.T @ g + 0 * einsum("ii", w)'), ("b", 'g + 0 * einsum("ii->i", w)')]
)
def test_einsum_diagonal_of_a_non_square_matrix_is_refuted(wrt, claim):
    with pytest.raises(ValueError):
        np.einsum("ii", np.ones((1, 2)))
    v = prove("linear", wrt, claim, assume=["n == 1", "m == 2"])
    assert v.verdict == "refuted", v
    assert v.counterexample.is_shape_mismatch and v.counterexample.claimed_shape is None
    v = prove("linear", wrt, claim)
    assert v.verdict == "refuted", v
    sizes = v.counterexample.sizes
    assert sorted(sizes.values()) == [1, 2], sizes
    with pytest.raises(ValueError):
        np.einsum("ii", np.ones((sizes["m"], sizes["n"])))


@pytest.mark.parametrize(
    "extra",
    ["0 * log(x[i, j])", "x[i, j] * 0 / x[i, j]", "0 * Sum(log(x[i, k]), k)", "log(x[i, j]) - log(x[i, j])"],
)
def test_index_form_values_keep_their_domains(extra):
    # NumPy's x * 0 / x and 0 * log(x) are nan at x == 0, in index form as in closed form
    with np.errstate(all="ignore"):
        assert np.isnan(np.float64(0.0) * 0 / np.float64(0.0)) and np.isnan(0 * np.log(np.float64(0.0)))
    v = prove("tanh", "x", f"dx[i, j] == g[i, j] * (1 - y[i, j]**2) + {extra}")
    assert v.verdict == "refuted", v
    assert v.counterexample.claimed == "nan" and set(v.counterexample.sizes.values()) == {1}


def test_matrix_products_keep_the_domain_of_a_factor_times_zero():
    v = prove("linear", "x", "w.T @ (0 * log(g)) + w.T @ g")
    assert v.verdict == "refuted" and v.counterexample.claimed == "nan", v
    assert prove("linear", "x", "w.T @ g").verdict == "proved"


def test_a_partial_value_inside_a_product_is_printed_in_brackets():
    # Defined printed bare made g * (a - b) read as g*a - b in reports and derivations
    from symderive.core.ir import Defined

    a, b, g = sp.symbols("a b g")
    product = g * Defined(a - b, a > 0)
    assert sp.latex(product) == r"g \left(a - b\right)"
    assert sp.sstr(product) == "g*(a - b)"
