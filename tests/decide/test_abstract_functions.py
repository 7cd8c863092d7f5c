"""Claims about a layer with an abstract activation f (``functions = ["f"]``), each checked by torch.

A claim is proved only for every differentiable f (f opaque to the prover); a false one is
refuted with a concrete f that its counterexample names. The oracle here is torch autograd:
every proved claim agrees with it for f = tanh and f = sin at random sizes and values, and
every counterexample is recomputed with the concrete f it names (read back from its text).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.decide.concrete import STAND_INS, stand_ins, with_stand_ins
from symderive.decide.pose import decided, gradient_problem, with_functions
from symderive.layer import layer_from_dict, load_layer
from symderive.prove import prove, prove_identity

torch.set_default_dtype(torch.float64)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_layers" / "activation_f.toml"
LAYER = load_layer(str(EXAMPLE))  # y = f(z), z = w @ x + b; x [n], w [m, n], b [m]
U = sp.Symbol("u")


# -- the oracle: torch autograd with a concrete f ------------------------------------------------
def torch_function(text: str):
    """A counterexample's concrete f (``u**2 + 3*u``, ``exp(u)``) as a torch function."""
    return sp.lambdify(U, sp.sympify(text, locals={"u": U}), modules=[{"exp": torch.exp}, "math"])


def f_prime(f, z: np.ndarray) -> np.ndarray:
    u = torch.tensor(z, requires_grad=True)
    (d,) = torch.autograd.grad(f(u).sum(), u)
    return d.numpy()


def autograd(f, values: dict, wrt: str) -> np.ndarray:
    """d sum(g * f(w @ x + b)) / d wrt, by torch."""
    t = {k: torch.tensor(np.asarray(v, dtype=float), requires_grad=True) for k, v in values.items()}
    loss = (t["g"] * f(t["w"] @ t["x"] + t["b"])).sum()
    (d,) = torch.autograd.grad(loss, t[wrt])
    return d.numpy()


def _z(v):
    return np.asarray(v["w"], dtype=float) @ np.asarray(v["x"], dtype=float) + np.asarray(v["b"], dtype=float)


#: each claim of the example layer written again in NumPy (``fp``: f' as a NumPy function of arrays)
CLAIMS = {
    "g * f_prime(z)": lambda v, f, fp: v["g"] * fp(_z(v)),
    "w.T @ (g * f_prime(w @ x + b))": lambda v, f, fp: v["w"].T @ (v["g"] * fp(_z(v))),
    "outer(g * f_prime(z), x)": lambda v, f, fp: np.outer(v["g"] * fp(_z(v)), v["x"]),
    "dw[i, j] == g[i] * f_prime(z[i]) * x[j]": lambda v, f, fp: np.outer(v["g"] * fp(_z(v)), v["x"]),
    "g * f(z)": lambda v, f, fp: v["g"] * f(torch.tensor(_z(v))).numpy(),
    "w.T @ g": lambda v, f, fp: v["w"].T @ v["g"],
    "w.T @ (g * f_prime(b))": lambda v, f, fp: v["w"].T @ (v["g"] * fp(np.asarray(v["b"], dtype=float))),
}


def _draw(rng):
    m, n = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    return {"x": rng.normal(size=n), "w": rng.normal(size=(m, n)), "b": rng.normal(size=m), "g": rng.normal(size=m)}


def test_every_claim_of_the_example_has_an_oracle():
    assert {c.claim for c in LAYER.claims} == set(CLAIMS)
    assert {c.expect for c in LAYER.claims} == {"proved", "refuted"}


@pytest.mark.parametrize("claim", [c for c in LAYER.claims if c.expect == "proved"], ids=lambda c: c.claim)
def test_a_true_claim_is_proved_for_every_f_and_torch_agrees_for_tanh_and_sin(claim):
    verdict = prove(LAYER, claim.wrt, claim.claim)
    assert verdict.verdict == "proved", verdict.reason
    rng = np.random.default_rng(7)
    for f in (torch.tanh, torch.sin):
        for _ in range(3):
            v = _draw(rng)
            expected = autograd(f, v, claim.wrt)
            claimed = CLAIMS[claim.claim](v, f, lambda z, f=f: f_prime(f, z))
            np.testing.assert_allclose(claimed, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("claim", [c for c in LAYER.claims if c.expect == "refuted"], ids=lambda c: c.claim)
def test_a_false_claim_is_refuted_with_a_concrete_f_that_torch_confirms(claim):
    verdict = prove(LAYER, claim.wrt, claim.claim)
    assert verdict.verdict == "refuted", verdict.reason
    cex = verdict.counterexample
    assert set(cex.functions) == {"f"}
    f = torch_function(cex.functions["f"])
    values = {k: np.asarray(v, dtype=float) for k, v in cex.values.items()}
    expected = autograd(f, values, claim.wrt)
    claimed = CLAIMS[claim.claim](values, f, lambda z: f_prime(f, z))
    np.testing.assert_allclose(expected, np.asarray(cex.expected_array, dtype=float), atol=1e-12)
    np.testing.assert_allclose(claimed, np.asarray(cex.claimed_array, dtype=float), atol=1e-12)
    assert expected[cex.index] != pytest.approx(claimed[cex.index])
    assert verdict.to_json()["counterexample"]["functions"] == cex.functions


# -- soundness: a stand-in never proves ---------------------------------------------------------------
@pytest.mark.slow  # ~2 s: the first stand-in's search runs out its share before the second refutes
def test_a_claim_true_for_the_first_stand_in_only_is_refuted_with_another():
    # f'(u) = 2u + 3 for the first stand-in, u**2 + 3u: not for every f
    assert sp.diff(STAND_INS[0], sp.Symbol("u", real=True)) == 2 * sp.Symbol("u", real=True) + 3
    verdict = prove(LAYER, "b", "g * (2 * z + 3)", timeout=6)
    assert verdict.verdict == "refuted"
    f = torch_function(verdict.counterexample.functions["f"])
    values = {k: np.asarray(v, dtype=float) for k, v in verdict.counterexample.values.items()}
    claimed = values["g"] * (2 * _z(values) + 3)
    assert not np.allclose(autograd(f, values, "b"), claimed)


def test_an_identity_true_for_every_cubic_is_refuted_with_exp():
    # the fourth finite difference vanishes for the polynomial stand-ins, not for every f
    layer = layer_from_dict(
        {"name": "act", "functions": ["f"], "inputs": {"b": ["m"]}, "output": {"y": "f(b)"}}, source="act.toml"
    )
    identity = "f(b) - 4 * f(b + 1) + 6 * f(b + 2) - 4 * f(b + 3) + f(b + 4) == 0 * b"
    verdict = prove_identity(layer, identity, timeout=9)
    assert verdict.verdict == "refuted", verdict.reason
    assert verdict.counterexample.functions == {"f": "exp(u)"}
    b = float(np.asarray(verdict.counterexample.values["b"], dtype=float).flat[0])
    fourth = sum(c * np.exp(b + k) for k, c in enumerate((1, -4, 6, -4, 1)))
    assert fourth == pytest.approx(float(sp.N(sp.sympify(str(verdict.counterexample.expected)))))
    assert fourth != pytest.approx(0)


def test_an_identity_about_f_is_proved_only_for_every_f():
    layer = layer_from_dict(
        {"name": "act", "functions": ["f", "h"], "inputs": {"b": ["m"]}, "output": {"y": "f(b) * h(b)"}},
        source="act.toml",
    )
    assert prove_identity(layer, "y == h(b) * f(b)").verdict == "proved"
    assert prove_identity(layer, "diff(y[i], b[i]) == f_prime(b[i]) * h(b[i]) + f(b[i]) * h_prime(b[i])").proved
    # two functions are two functions: f == h is not proved, and refuted with two different stand-ins
    verdict = prove_identity(layer, "f(b) == h(b)", timeout=6)
    assert verdict.verdict == "refuted"
    assert len(set(verdict.counterexample.functions.values())) == 2


def test_the_stand_ins_replace_every_derivative_consistently():
    u = sp.Symbol("u", real=True)
    problem = gradient_problem(LAYER, "b", "g * f_prime(z)")
    concrete = with_functions(problem, stand_ins(LAYER.functions, 0))
    element = concrete.right.at((sp.Integer(0),))
    assert "f" not in str(element)
    assert with_stand_ins(element, {}) == element
    assert stand_ins(["f"], 2) == {"f": sp.exp(u)}
    assert decided(problem, LAYER.functions).status == "proved"


def test_the_concrete_search_alone_names_its_f_and_never_proves():
    from symderive.counterexample import prove_concrete

    verdict = prove_concrete(LAYER, "b", "g * f(z)")
    assert verdict.verdict == "refuted" and verdict.counterexample.functions == {"f": str(STAND_INS[0])}
    assert prove_concrete(LAYER, "b", "g * f_prime(z)", deadline=0).verdict == "unknown"


def test_a_bare_sum_inside_f_prime_is_proved():
    claim = "dw[i, j] == g[i] * f_prime(Sum(w[i, k] * x[k], k) + b[i]) * x[j]"
    assert prove(LAYER, "w", claim).verdict == "proved"
