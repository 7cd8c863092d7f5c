"""Concrete refutation: the exact true gradient against torch autograd, and minimal counterexamples.

Every expected value here comes from an independent oracle: torch autograd for
gradients, NumPy/SciPy for the claims, and a brute-force enumeration written in this file
for what "minimal" means (LANGUAGE.md: smallest sum of sizes, ties by the sizes in
declaration order, then values in {-1, 0, 1, 2} with as few nonzero as possible).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import scipy.signal
import sympy as sp
import torch

from symderive import counterexample as cx
from symderive.core.ir import GSum, Tensor, dummy_index, leaf, read, size_symbol
from symderive.core.parse import claim_tensor, parse_claim
from symderive.decide.pose import gradient_problem
from symderive.decide.verdict import REFUTED, UNKNOWN
from symderive.model.layer import Assumption, Layer, load_layer

RNG = np.random.default_rng(20240611)


# -- oracles -------------------------------------------------------------------------------
def torch_forward(name: str, t: dict) -> torch.Tensor:
    """Each built-in layer's forward pass in torch (the independent oracle)."""
    if name == "conv2d":
        return torch.nn.functional.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"]
    if name == "convolution2d":
        return torch.nn.functional.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None])[0, 0]
    if name == "convolution2d_full":
        kh, kw = t["w"].shape
        flipped = torch.flip(t["w"], (0, 1))[None, None]
        return torch.nn.functional.conv2d(t["x"][None, None], flipped, padding=(kh - 1, kw - 1))[0, 0]
    if name == "linear":
        return t["w"] @ t["x"] + t["b"]
    if name == "softmax_cross_entropy":
        return -(t["t"] * torch.log_softmax(t["s"], 0)).sum()
    raise KeyError(name)


def torch_gradient(layer_name: str, wrt: str, values: dict, g=None) -> np.ndarray:
    t = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=(k == wrt)) for k, v in values.items()}
    y = torch_forward(layer_name, t)
    loss = y if g is None else (torch.tensor(np.asarray(g, dtype=np.float64)) * y).sum()
    loss.backward()
    return t[wrt].grad.numpy()


def random_values(shapes: dict) -> dict:
    """Small integer values (exact in SymPy and float64 alike)."""
    return {n: RNG.integers(-3, 4, size=s).astype(np.float64) for n, s in shapes.items()}


def random_floats(shapes: dict) -> dict:
    """Continuous values: almost surely non-symmetric and nonzero."""
    return {n: RNG.standard_normal(size=s) for n, s in shapes.items()}


def sizes_in_minimal_order(names, allowed, largest=5):
    """Every size assignment allowed, smallest sum first, ties lexicographic in declaration order."""
    combos = [
        c
        for c in itertools.product(range(1, largest + 1), repeat=len(names))
        if allowed(dict(zip(names, c, strict=True)))
    ]
    return [dict(zip(names, c, strict=True)) for c in sorted(combos, key=lambda c: (sum(c), c))]


def conv_shapes(s):
    return {"x": (s["H"], s["W"]), "w": (s["kh"], s["kw"]), "b": (), "g": (s["H"] - s["kh"] + 1, s["W"] - s["kw"] + 1)}


def conv2d_allowed(s):
    return s["kh"] <= s["H"] and s["kw"] <= s["W"]


# -- the true gradient -----------------------------------------------------------------------
TRUE_GRADIENT_CASES = [
    pytest.param("conv2d", "x", {"H": 3, "W": 4, "kh": 2, "kw": 3}, id="conv2d-x"),
    pytest.param("conv2d", "w", {"H": 4, "W": 3, "kh": 3, "kw": 1}, id="conv2d-w"),
    pytest.param("conv2d", "b", {"H": 2, "W": 3, "kh": 1, "kw": 2}, id="conv2d-b"),
    pytest.param("convolution2d", "x", {"H": 3, "W": 4, "kh": 2, "kw": 3}, id="convolution2d-x"),
    pytest.param("convolution2d_full", "w", {"H": 2, "W": 3, "kh": 3, "kw": 2}, id="convolution2d_full-w"),
    pytest.param("linear", "x", {"n": 3, "m": 2}, id="linear-x"),
    pytest.param("linear", "w", {"n": 2, "m": 3}, id="linear-w"),
    pytest.param("softmax_cross_entropy", "s", {"n": 3}, id="softmax_cross_entropy-s"),
]


@pytest.mark.parametrize(("name", "wrt", "sizes"), TRUE_GRADIENT_CASES)
def test_true_gradient_matches_torch_autograd(name, wrt, sizes):
    layer = load_layer(name)
    shapes = cx.input_shapes(layer, sizes)
    values = random_values(shapes)
    got = cx.true_gradient(layer, wrt, sizes, values)
    g = values.pop("g", None)
    expected = torch_gradient(name, wrt, values, g)
    assert got.shape == expected.shape
    np.testing.assert_allclose(
        np.array([float(v) for v in got.flat]).reshape(got.shape), expected, rtol=1e-12, atol=1e-12
    )


def test_true_gradient_of_softmax_is_exact():
    layer = load_layer("softmax_cross_entropy")
    got = cx.true_gradient(layer, "s", {"n": 2}, {"s": [0, 1], "t": [1, 0]})
    # d/ds0 of -log(e^0 / (e^0 + e^1)) = softmax(s)[0] - 1, kept as an exact expression
    assert sp.simplify(got[0] - (1 / (1 + sp.E) - 1)) == 0
    assert not got[0].is_Float


def test_true_gradient_on_a_hand_built_layer():
    """Independent of the layer loader: y[i] = x[i]**2 * w, built from ir pieces."""
    n = size_symbol("n")
    x = leaf("x", (n,))
    forward = Tensor((n,), lambda idx: x.at(idx) ** 2 * read("w", ()))
    layer = Layer("square", "", (n,), {"x": (n,), "w": ()}, "y", forward)
    got = cx.true_gradient(layer, "x", {"n": 3}, {"x": [1, -2, 3], "w": 5, "g": [2, 1, -1]})
    assert [int(v) for v in got] == [2 * 1 * 5 * 2, 2 * -2 * 5 * 1, 2 * 3 * 5 * -1]


# -- sizes ---------------------------------------------------------------------------------
def test_size_candidates_follow_minimal_order():
    layer = load_layer("conv2d")
    got = [{str(k): v for k, v in env.items()} for env in itertools.islice(cx.size_candidates(layer), 25)]
    expected = sizes_in_minimal_order(["H", "W", "kh", "kw"], conv2d_allowed)[:25]
    assert got == expected


def test_size_candidates_respect_extra_assumptions():
    layer = load_layer("linear")
    m, n = (next(s for s in layer.sizes if str(s) == name) for name in ("m", "n"))
    got = [{str(k): v for k, v in env.items()} for env in itertools.islice(cx.size_candidates(layer, [sp.Gt(m, n)]), 6)]
    expected = sizes_in_minimal_order(["n", "m"], lambda s: s["m"] > s["n"])[:6]
    assert got == expected


# -- counterexamples ---------------------------------------------------------------------------
def claim_of(layer, wrt, text):
    return claim_tensor(parse_claim(text, layer, wrt), layer)


def conv_flip_claim_numpy(v):
    return scipy.signal.convolve(v["g"], v["w"][::-1, ::-1], "full")


def first_sizes_where_conv_flip_differs():
    for s in sizes_in_minimal_order(["H", "W", "kh", "kw"], conv2d_allowed):
        v = random_floats(conv_shapes(s))
        g = v.pop("g")
        true = torch_gradient("conv2d", "x", v, g)
        if not np.allclose(true, conv_flip_claim_numpy({**v, "g": g})):
            return s
    raise AssertionError("unreachable")


def test_conv2d_missing_flip_is_refuted_at_minimal_sizes_and_values():
    layer = load_layer("conv2d")
    found = cx.find_counterexample(layer, "x", claim_of(layer, "x", 'convolve(g, flip(w), "full")'))
    assert found is not None and not found.is_shape_mismatch
    assert found.sizes == first_sizes_where_conv_flip_differs()
    values = {n: np.array(v, dtype=np.float64) for n, v in found.values.items()}
    g = values.pop("g")
    true = torch_gradient("conv2d", "x", values, g)
    claimed = conv_flip_claim_numpy({**values, "g": g})
    assert float(found.expected) == true[found.index]
    assert float(found.claimed) == claimed[found.index]
    assert true[found.index] != claimed[found.index]
    # the index is the first differing element in row-major order
    first = next(idx for idx in np.ndindex(true.shape) if true[idx] != claimed[idx])
    assert tuple(found.index) == first
    # no assignment with fewer nonzero values in {-1, 0, 1, 2} shows a difference
    nonzero = sum(int(np.count_nonzero(np.asarray(v))) for v in found.values.values())
    shapes = conv_shapes(found.sizes)
    slots = [(n, idx) for n, s in shapes.items() for idx in np.ndindex(*s)]
    for count in range(nonzero):
        for chosen in itertools.combinations(slots, count):
            for vals in itertools.product((-1, 1, 2), repeat=count):
                v = {n: np.zeros(s) for n, s in shapes.items()}
                for (n, idx), val in zip(chosen, vals, strict=True):
                    v[n][idx] = val
                g = v.pop("g")
                assert np.allclose(torch_gradient("conv2d", "x", v, g), conv_flip_claim_numpy({**v, "g": g}))


def test_linear_w_times_g_is_a_shape_mismatch_at_the_first_m_not_n():
    layer = load_layer("linear")
    found = cx.find_counterexample(layer, "x", claim_of(layer, "x", "w @ g"))
    # w @ g is defined (and equal to w.T @ g) while m == n; the first m != n in minimal order
    for s in sizes_in_minimal_order(["n", "m"], lambda s: True):
        w, g = np.ones((s["m"], s["n"])), np.ones(s["m"])
        try:
            claimed_shape = (w @ g).shape
        except ValueError:
            claimed_shape = None
        if claimed_shape != (s["n"],):
            break
    assert found is not None and found.is_shape_mismatch
    assert found.sizes == s
    assert tuple(found.expected_shape) == (s["n"],)
    assert found.claimed_shape == claimed_shape


def test_softmax_without_normalised_target_is_refuted_at_n1_t0_s0():
    layer = dataclasses.replace(load_layer("softmax_cross_entropy"), assumptions=())
    found = cx.find_counterexample(layer, "s", claim_of(layer, "s", "softmax(s) - t"))
    assert found is not None
    assert found.sizes == {"n": 1}
    assert found.values == {"s": [0], "t": [0]}
    # torch: the gradient of -(t * log_softmax(s)).sum() at t = [0] is 0; the claim is softmax([0]) - 0 = 1
    assert found.expected == float(torch_gradient("softmax_cross_entropy", "s", {"s": [0.0], "t": [0.0]})[0]) == 0
    assert found.claimed == 1


@pytest.mark.parametrize(
    ("name", "wrt", "claim"),
    [
        pytest.param("conv2d", "x", 'convolve(g, w, "full")', id="conv2d-x"),
        pytest.param("conv2d", "w", 'correlate(x, g, "valid")', id="conv2d-w"),
        pytest.param("convolution2d", "x", 'convolve(g, flip(w), "full")', id="convolution2d-x"),
        pytest.param("linear", "x", "w.T @ g", id="linear-x"),
        pytest.param("linear", "w", "outer(g, x)", id="linear-w"),
        pytest.param("softmax_cross_entropy", "s", "softmax(s) - t", id="softmax-with-sum-t-1"),
    ],
)
def test_true_claims_have_no_counterexample(name, wrt, claim):
    layer = load_layer(name)
    assert cx.find_counterexample(layer, wrt, claim_of(layer, wrt, claim), max_candidates=12) is None


def test_sign_assumption_restricts_the_values():
    """With x > 0 declared, |x| and x agree; the search may not use x = -1 or 0 to refute."""
    n = size_symbol("n")
    x = leaf("x", (n,))
    layer = Layer("abs", "", (n,), {"x": (n,)}, "y", Tensor((n,), lambda idx: sp.Abs(x.at(idx))))
    layer = dataclasses.replace(layer, assumptions=(Assumption("x > 0", "sign", lhs=_ref("x"), rhs=_num(0), rel=">"),))
    claim = claim_of(layer, "x", "g")
    assert cx.find_counterexample(layer, "x", claim, max_candidates=3) is None
    unrestricted = dataclasses.replace(layer, assumptions=())
    found = cx.find_counterexample(unrestricted, "x", claim, max_candidates=3)
    assert found is not None and found.values["x"][found.index[0]] <= 0


def _ref(name):
    from symderive.core.tree import Ref

    return Ref(name)


def _num(v):
    from symderive.core.tree import Num

    return Num(sp.Integer(v))


def test_hand_built_conv_claim_without_parser():
    """The search on tensors built from ir pieces only (no parser, no loader)."""
    H, kh = size_symbol("H"), size_symbol("kh")
    x, w = leaf("x", (H,)), leaf("w", (kh,))

    def y(idx):
        m = dummy_index("m")
        return GSum(x.at((idx[0] + m,)) * w.at((m,)), (m, 0, kh - 1))

    layer = Layer(
        "c1",
        "",
        (H, kh),
        {"x": (H,), "w": (kh,)},
        "y",
        Tensor((H - kh + 1,), y),
        (Assumption("H >= kh", "size", cond=sp.Ge(H, kh)),),
    )
    g = layer.upstream()

    def claim(flip):
        def el(idx):
            e = dummy_index("e")
            k = idx[0] - e
            return GSum(g.at((e,)) * w.at((kh - 1 - k if flip else k,)), (e, 0, H - kh))

        return Tensor((H,), el)

    assert cx.find_counterexample(layer, "x", claim(False)) is None
    found = cx.find_counterexample(layer, "x", claim(True))
    assert found.sizes == {"H": 2, "kh": 2}
    assert found.values == {"x": [0, 0], "w": [1, 0], "g": [1]}
    assert (found.index, found.expected, found.claimed) == ((0,), 1, 0)


# -- verdicts and numbers ------------------------------------------------------------------------
def test_prove_concrete_never_proves():
    verdict = cx.prove_concrete("linear", "x", "w.T @ g")
    assert verdict.verdict == UNKNOWN
    assert "no counterexample at sizes up to" in verdict.reason and "no all-sizes proof" in verdict.reason


def test_prove_concrete_refutes_with_extra_assumption_parsed_like_the_layer():
    verdict = cx.prove_concrete("linear", "x", "w @ g", assume=["m >= n + 1"])
    assert verdict.verdict == REFUTED
    assert verdict.counterexample.sizes == {"n": 1, "m": 2}
    assert verdict.assumptions == ("m >= n + 1",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(sp.Integer(-2), -2, id="int"),
        pytest.param(sp.Rational(1, 3), "1/3", id="rational"),
        pytest.param(sp.E / (1 + sp.E), "exp(1)/(1 + exp(1))", id="exp"),
        pytest.param(sp.Float(0.5), 0.5, id="float"),
    ],
)
def test_json_numbers(value, expected):
    assert cx.json_number(value) == expected


@pytest.mark.parametrize(
    ("value", "nonzero"),
    [
        pytest.param(sp.Integer(0), False, id="zero"),
        pytest.param(sp.exp(1) - sp.exp(1), False, id="cancels"),
        pytest.param(sp.log(sp.exp(2)) - 2, False, id="log-exp"),
        pytest.param(sp.E / (1 + sp.E) - sp.Rational(7, 10), True, id="close-but-not-equal"),
        pytest.param(sp.zoo, False, id="undefined"),
    ],
)
def test_certainly_nonzero(value, nonzero):
    assert cx.certainly_nonzero(value) is nonzero


# -- large symbolic gradients (the float screen in front of the exact comparison) ---------
NORM_MUTANTS = [
    pytest.param(
        "batch_norm",
        "gamma / sqrt(var(x, axis=0) + eps) * (g - mean(g, axis=0) - (x - mean(x)) / sqrt(var(x, axis=0) + eps)"
        " * mean(g * (x - mean(x, axis=0)) / sqrt(var(x, axis=0) + eps), axis=0))",
        id="batch_norm-mean-over-all",
    ),
    pytest.param(
        "layer_norm",
        "(g * gamma - mean(g * gamma, axis=1, keepdims=True) - (x - mean(x, axis=1, keepdims=True))"
        " / sqrt(var(x, axis=1, keepdims=True) + eps) * mean(g * gamma * x / sqrt(var(x, axis=1, keepdims=True)"
        " + eps), axis=1, keepdims=True)) / sqrt(var(x, axis=1, keepdims=True) + eps)",
        id="layer_norm-uncentred-x",
    ),
]


def torch_norm(name: str, t: dict) -> torch.Tensor:
    eps = float(t["eps"])
    if name == "batch_norm":
        return torch.nn.functional.batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=eps)
    return torch.nn.functional.layer_norm(t["x"], t["x"].shape[-1:], t["gamma"], t["beta"], eps=eps)


@pytest.mark.parametrize(("name", "claim"), NORM_MUTANTS)
def test_normalisation_mutants_are_refuted_and_torch_agrees(name, claim):
    # these answered "unknown" within the soundness campaign's 15 s before the float screen
    layer = load_layer(name)
    found = cx.find_counterexample(layer, "x", claim_of(layer, "x", claim), deadline=None)
    assert found is not None and not found.is_shape_mismatch
    values = {n: torch.tensor(np.asarray(v, dtype=np.float64)) for n, v in found.values.items()}
    g = values.pop("g")
    values["x"].requires_grad_(True)
    (torch_norm(name, values) * g).sum().backward()
    true = values["x"].grad.numpy()
    assert float(sp.sympify(found.expected)) == pytest.approx(true[found.index], rel=1e-12, abs=1e-12)
    claimed = float(sp.sympify(found.claimed))
    assert abs(claimed - true[found.index]) > 1e-6


@pytest.mark.parametrize("name", ["batch_norm", "layer_norm"])
def test_normalisation_true_claims_have_no_counterexample(name):
    layer = load_layer(name)
    for known in layer.claims:
        if known.expect == "proved" and known.wrt == "x":
            summary = cx.SearchSummary()
            found = cx.find_counterexample(
                layer, "x", claim_of(layer, "x", known.claim), summary=summary, max_candidates=2
            )
            # the whole search at the two smallest sizes ran, and nothing was called a difference
            assert found is None and not summary.timed_out and len(summary.tried) == 2


def test_disagreement_sizes_finds_a_wrong_claim_and_passes_a_right_one():
    layer = load_layer("conv2d")
    # a missing flip shows only once the kernel is larger than 1 x 1: the first sizes with
    # every size at least 2 are always among those compared
    flip = claim_of(layer, "x", 'convolve(g, flip(w), "full")')
    wrong = cx.disagreement_sizes(layer, "x", flip, candidates=3)
    assert wrong is not None and min(wrong.values()) >= 2
    # scipy and torch show the difference at the sizes named
    values = {"x": RNG.standard_normal((wrong["H"], wrong["W"])), "w": RNG.standard_normal((wrong["kh"], wrong["kw"]))}
    g = RNG.standard_normal((wrong["H"] - wrong["kh"] + 1, wrong["W"] - wrong["kw"] + 1))
    true = torch_gradient("conv2d", "x", {**values, "b": 0.0}, g)
    assert not np.allclose(true, conv_flip_claim_numpy({**values, "g": g}))
    assert cx.disagreement_sizes(layer, "x", claim_of(layer, "x", 'convolve(g, w, "full")'), candidates=20) is None


def test_a_claim_that_may_be_nan_is_not_identical_to_its_expansion():
    # log(x) * (1 + x) - log(x) - x * log(x) expands to 0, but NumPy gives nan at x <= 0:
    # the search must still look, and find x = 0 (the fewest nonzero values)
    from symderive.core.parse import claim_tensor, parse_claim

    with np.errstate(all="ignore"):
        x = np.array([[0.0]])
        assert np.isnan(np.log(x) * (1 + x) - np.log(x) - x * np.log(x)).all()
    layer = load_layer("tanh")
    claim = "g * (1 - y**2) + log(x) * (1 + x) - log(x) - x * log(x)"
    found = cx.find_counterexample(layer, "x", claim_tensor(parse_claim(claim, layer, "x"), layer))
    assert found is not None and found.claimed == "nan"
    assert found.sizes == {"N": 1, "D": 1} and found.values["x"] == [[0]]
    same = "g * (1 - y**2) + 0 * x"
    assert cx.find_counterexample(layer, "x", claim_tensor(parse_claim(same, layer, "x"), layer)) is None


def test_the_value_by_value_fallback_takes_nan_over_a_zero_factor():
    # amax over two symbolic values cannot be expanded, so each assignment is evaluated with
    # numbers; (x < 0) is 0 at x = 0, but NumPy computes 0 * log(0) = 0 * -inf = nan there
    from symderive.core.parse import claim_tensor, parse_claim

    with np.errstate(all="ignore"):
        x = np.zeros((1, 2))
        assert np.isnan((x < 0) * np.log(x) * np.amax(x)).all()
    layer = load_layer("relu")
    claim = "g * (x > 0) + (x < 0) * log(x) * amax(x)"
    tensor = claim_tensor(parse_claim(claim, layer, "x"), layer)
    extra = cx.parse_assumptions(["D >= 2"], layer)
    env = {s: v for s, v in zip(layer.sizes, (1, 2), strict=True)}
    problem = gradient_problem(layer, "x", tensor, symbolic=False)
    assert cx._Comparison(problem, env, cx.input_shapes(layer, env)).grad is None
    found = cx.find_counterexample(layer, "x", tensor, extra)
    # the fewest nonzero values: all zeros, where only the undefined factor shows
    assert found.sizes == {"N": 1, "D": 2} and found.values == {"x": [[0, 0]], "g": [[0, 0]]}
    assert found.claimed == "nan" and found.expected == 0


def _numpy_linear_claim(values: dict) -> np.ndarray:
    with np.errstate(all="ignore"):
        return values["w"].T @ values["g"] + np.sum(values["g"]) / (values["x"] - 1)


def test_a_counterexample_with_numbers_on_both_sides_is_preferred_among_equally_sparse_ones():
    # x = [1] (one nonzero value) makes the claim 0/0; g = [1] (also one) shows -1 against 0,
    # which a user can check in NumPy without meeting nan
    layer = load_layer("linear")
    found = cx.prove_concrete(layer, "x", "w.T @ g + sum(g) / (x - 1)").counterexample
    values = {k: np.array(v, dtype=float) for k, v in found.values.items()}
    assert found.sizes == {"n": 1, "m": 1}
    assert sum(int(np.count_nonzero(v)) for v in values.values()) == 1
    claimed = _numpy_linear_claim(values)
    assert np.isfinite(claimed).all() and np.isfinite(float(found.claimed))
    assert claimed[found.index] == float(found.claimed) != values["w"].T @ values["g"]
    # the all-zero assignment shows no difference, so one nonzero value is the fewest
    zero = {k: np.zeros_like(v) for k, v in values.items()}
    assert np.allclose(_numpy_linear_claim(zero), zero["w"].T @ zero["g"])


def test_an_undefined_counterexample_stays_when_it_is_the_sparsest():
    # log(0) at the all-zero assignment: no other assignment has as few nonzero values
    found = cx.prove_concrete(load_layer("linear"), "x", "w.T @ g + log(x)").counterexample
    assert found.claimed == "nan" and found.values["x"] == [0]


def test_first_difference_prefers_an_element_with_numbers_on_both_sides():
    comparison = object.__new__(cx._Comparison)
    comparison._screen, comparison.grad, comparison._exact_runs = None, None, 0
    expected = np.array([sp.Integer(0), sp.Integer(0), sp.Integer(0)], dtype=object)
    claimed = np.array([sp.nan, sp.Integer(0), sp.Integer(2)], dtype=object)
    comparison.arrays = lambda values: (expected, claimed)
    assert comparison.first_difference({})[0] == (2,)
    only_nan = np.array([sp.nan, sp.Integer(0), sp.Integer(0)], dtype=object)
    comparison.arrays = lambda values: (expected, only_nan)
    assert comparison.first_difference({})[0] == (0,)


# -- minimal values (LANGUAGE.md: as few nonzero values as possible, in {-1, 0, 1, 2}) ----------
def _linear_layer_values(found) -> dict:
    return {k: np.array(v, dtype=float) for k, v in found.values.items()}


def _differs(true_fn, claim_fn, values: dict) -> bool:
    with np.errstate(all="ignore"):
        true, claimed = true_fn(values), claim_fn(values)
    return true.shape != claimed.shape or not np.array_equal(true, claimed)


def _fewest_nonzero_by_brute_force(true_fn, claim_fn, shapes: dict, up_to: int):
    """The fewest nonzero values (each in {-1, 1, 2}) at which the two functions differ, by
    trying every assignment with at most ``up_to`` of them; None when none of those differs."""
    slots = [(n, idx) for n, s in shapes.items() for idx in np.ndindex(*s)]
    for count in range(up_to + 1):
        for chosen in itertools.combinations(slots, count):
            for vals in itertools.product((-1, 1, 2), repeat=count):
                v = {n: np.zeros(s) for n, s in shapes.items()}
                for (n, idx), val in zip(chosen, vals, strict=True):
                    v[n][idx] = val
                if _differs(true_fn, claim_fn, v):
                    return count
    return None


def _linear_x(v):
    return v["w"].T @ v["g"]


def _linear_w(v):
    return np.outer(v["g"], v["x"])


def _relu_x(v):
    return v["g"] * (v["x"] > 0)


MINIMAL_CASES = [
    # (layer, wrt, claim, the true gradient by NumPy, the claim by NumPy)
    pytest.param("linear", "x", "w.T @ g + x", _linear_x, lambda v: _linear_x(v) + v["x"], id="linear-x-plus-x"),
    pytest.param(
        "linear", "x", "w.T @ (g * g)", _linear_x, lambda v: v["w"].T @ (v["g"] * v["g"]), id="linear-g-squared"
    ),
    pytest.param(
        "linear",
        "w",
        "outer(g, x * x)",
        _linear_w,
        lambda v: np.outer(v["g"], v["x"] * v["x"]),
        id="linear-w-x-squared",
    ),
    pytest.param(
        "linear", "w", "outer(g, x) * (w > 1)", _linear_w, lambda v: _linear_w(v) * (v["w"] > 1), id="linear-w-masked"
    ),
    pytest.param("relu", "x", "g * (x > 1)", _relu_x, lambda v: v["g"] * (v["x"] > 1), id="relu-shifted-kink"),
    pytest.param("relu", "x", "g * (x >= 0)", _relu_x, lambda v: v["g"] * (v["x"] >= 0), id="relu-kink-at-zero"),
]


@pytest.mark.parametrize(("name", "wrt", "claim", "true_fn", "claim_fn"), MINIMAL_CASES)
def test_counterexample_values_are_minimal_by_brute_force(name, wrt, claim, true_fn, claim_fn):
    layer = load_layer(name)
    found = cx.prove_concrete(layer, wrt, claim).counterexample
    assert found is not None and not found.is_shape_mismatch
    values = _linear_layer_values(found)
    assert all(set(np.unique(v)) <= {-1.0, 0.0, 1.0, 2.0} for v in values.values())
    # the counterexample really is one (NumPy), at the element it names
    assert _differs(true_fn, claim_fn, values)
    assert true_fn(values)[found.index] == float(found.expected)
    assert claim_fn(values)[found.index] == float(found.claimed) != float(found.expected)
    # and no assignment with fewer nonzero values differs at these sizes (brute force)
    nonzero = sum(int(np.count_nonzero(v)) for v in values.values())
    shapes = {k: v.shape for k, v in values.items()}
    assert _fewest_nonzero_by_brute_force(true_fn, claim_fn, shapes, nonzero) == nonzero


def test_counterexample_is_minimal_where_the_claim_differs_only_at_few_values_of_large_sizes():
    # issue 20: the claim differs from w.T @ g only where a b and a g are both 2; at the
    # smallest sizes allowed (n=6, m=5: 46 values, b and g last) the minimal order over all
    # values runs out of its budget before it reaches them (a dense counterexample once)
    claim = "w.T @ g + sum(b > 1) * sum(g > 1)"
    verdict = cx.prove_concrete("linear", "x", claim, assume=["n >= 6", "m >= 5"])
    assert verdict.verdict == REFUTED
    found = verdict.counterexample
    assert found.sizes == {"n": 6, "m": 5}
    values = _linear_layer_values(found)

    def claimed(v):
        return v["w"].T @ v["g"] + np.sum(v["b"] > 1) * np.sum(v["g"] > 1)

    assert _differs(_linear_x, claimed, values)
    assert sum(int(np.count_nonzero(v)) for v in values.values()) == 2
    # no single nonzero value shows a difference (brute force over the 46 values)
    shapes = {k: v.shape for k, v in values.items()}
    assert _fewest_nonzero_by_brute_force(_linear_x, claimed, shapes, 1) is None
    # the first b and g in the minimal order, each 2 (no value of {-1, 1} is > 1)
    assert values["b"].tolist() == [2, 0, 0, 0, 0] and values["g"].tolist() == [2, 0, 0, 0, 0]
    assert not values["x"].any() and not values["w"].any()
    assert float(found.expected) == 0 and float(found.claimed) == 1
