"""symderive.search.nearest_variants: why a claim is wrong, as its nearest proved variant.

Each case is a typical mistake with the true variant derived by hand (the prover confirms
it independently here) and the words the explanation must use. Every mistake must stay
refuted, and every variant offered must carry a proved verdict.
"""

from __future__ import annotations

import tomllib

import pytest

from symderive.layer import LAYERS_DIR, layer_from_dict
from symderive.prove import prove
from symderive.search import candidate_assumptions, nearest_variants

# layer, input, the mistake, the variant it is nearest to (by hand), the explanation
CASES = [
    # scipy-style 2-D convolution layer y = correlate(x, w, 'valid') + b: dx = full convolution with w
    ("conv2d", "x", "convolve(g, flip(w), 'full')", "convolve(g, w, 'full')", "the kernel w is not flipped"),
    ("conv2d", "x", "convolve(g, w, 'valid')", "convolve(g, w, 'full')", "mode 'full', not 'valid'"),
    ("conv2d", "x", "correlate(g, w, 'full')", "correlate(g, flip(w), 'full')", "the kernel w must be flipped"),
    ("conv2d", "x", "convolve2d(g, flip(w), 'full')", "convolve2d(g, w, 'full')", "the kernel w is not flipped"),
    ("conv2d", "x", "convolve2d(g, w, 'valid')", "convolve2d(g, w, 'full')", "mode 'full', not 'valid'"),
    ("conv2d", "x", "convolve(g, w, 'same')", "convolve(g, w, 'full')", "mode 'full', not 'same'"),
    ("conv2d", "w", "convolve(x, g, 'valid')", "convolve(x, flip(g), 'valid')", "the kernel g must be flipped"),
    ("conv2d", "w", "correlate(x, g, 'full')", "correlate(x, g, 'valid')", "mode 'valid', not 'full'"),
    ("conv2d", "w", "correlate(x, flip(g), 'valid')", "correlate(x, g, 'valid')", "the kernel g is not flipped"),
    ("conv2d", "w", "2 * correlate(x, g, 'valid')", "correlate(x, g, 'valid')", "no factor 2"),
    ("conv2d", "b", "-sum(g)", "sum(g)", "the sign is the other way"),
    # y = convolve(x, w, 'valid'): the gradients correlate, i.e. convolve with the flipped kernel
    ("convolution2d", "x", "convolve(g, w, 'full')", "convolve(g, flip(w), 'full')", "the kernel w must be flipped"),
    ("convolution2d", "x", "convolve(g, flip(w), 'valid')", "convolve(g, flip(w), 'full')", "mode 'full', not 'valid'"),
    ("convolution2d", "w", "convolve(g, x, 'valid')", "convolve(g, flip(x), 'valid')", "the kernel x must be flipped"),
    ("convolution2d", "w", "convolve(g, flip(x), 'full')", "convolve(g, flip(x), 'valid')", "mode 'valid', not 'full'"),
    # y = convolve(x, w, 'full'): the gradients are valid correlations
    ("convolution2d_full", "x", "correlate(g, w, 'full')", "correlate(g, w, 'valid')", "mode 'valid', not 'full'"),
    (
        "convolution2d_full",
        "x",
        "correlate(g, flip(w), 'valid')",
        "correlate(g, w, 'valid')",
        "the kernel w is not flipped",
    ),
    ("convolution2d_full", "w", "correlate(g, x, 'same')", "correlate(g, x, 'valid')", "mode 'valid', not 'same'"),
    (
        "convolution2d_full",
        "w",
        "correlate(g, flip(x), 'valid')",
        "correlate(g, x, 'valid')",
        "the kernel x is not flipped",
    ),
    # linear layers: y = w @ x + b and y = x @ w.T + b
    ("linear", "x", "w @ g", "g @ w", "the operands of @ are the other way round"),
    ("linear", "w", "outer(x, g)", "outer(g, x)", "the two operands are the other way round"),
    ("linear", "w", "-outer(g, x)", "outer(g, x)", "the sign is the other way"),
    ("linear", "x", "2 * (g @ w)", "g @ w", "no factor 2"),
    ("linear_batched", "x", "g @ w.T", "g @ w", "w is not transposed"),
    ("linear_batched", "w", "x.T @ g", "(x.T @ g).T", "the result is transposed"),
    ("linear_batched", "b", "sum(g, axis=1)", "sum(g, axis=0)", "the reduction is over axis=0, not axis=1"),
    ("linear_batched", "b", "mean(g, axis=0)", "N * mean(g, axis=0)", "a factor N is missing"),
    # torch convolutions: the input gradient is the transposed convolution, and back
    ("conv2d_nchw", "x", "conv2d(g, w)", "conv_transpose2d(g, w)", "conv_transpose2d, not conv2d"),
    ("conv1d_ncl", "x", "conv1d(g, w)", "conv_transpose1d(g, w)", "conv_transpose1d, not conv1d"),
    ("conv_transpose2d_nchw", "x", "conv_transpose2d(g, w)", "conv2d(g, w)", "conv2d, not conv_transpose2d"),
    ("conv2d_nchw", "b", "sum(g, axis=(0, 2, 3)) / 2", "sum(g, axis=(0, 2, 3))", "no division by 2"),
    # losses: the mean's 1/N, the axis of the softmax, the factor 2 of a square, signs
    ("log_softmax_nll", "s", "softmax(s, axis=1) - t", "(softmax(s, axis=1) - t) / N", "a factor 1/N is missing"),
    ("log_softmax_nll", "s", "(softmax(s, axis=0) - t) / N", "(softmax(s, axis=1) - t) / N", "axis=1, not axis=0"),
    (
        "log_softmax_nll",
        "s",
        "(softmax(s, axis=1) - t) / (N * K)",
        "(softmax(s, axis=1) - t) / N",
        "a factor K is missing",
    ),
    ("mse", "x", "(x - t) / (N * D)", "2 * (x - t) / (N * D)", "a factor 2 is missing"),
    ("mse", "x", "2 * (x - t)", "2 * (x - t) / (N * D)", "a factor 1/(D*N) is missing"),
    ("mse", "x", "2 * (t - x) / (N * D)", "2 * (x - t) / (N * D)", "the sign is the other way"),
    ("sigmoid_bce", "x", "sigmoid(x) - t", "(sigmoid(x) - t) / (N * D)", "a factor 1/(D*N) is missing"),
    ("relu", "x", "-g * (x > 0)", "g * (x > 0)", "the sign is the other way"),
    # index forms: a window's share, shifted sums
    (
        "avg_pool2d_k2",
        "x",
        "dx[n, c, p, q] == g[n, c, p // 2, q // 2]",
        "dx[n, c, p, q] == g[n, c, p // 2, q // 2] / 4",
        "a factor 1/4 is missing",
    ),
    (
        "conv2d",
        "x",
        "dx[p, q] == Sum(g[p + m, q + l] * w[kh - 1 - m, kw - 1 - l], m, l)",
        "dx[p, q] == Sum(g[p - kh + 1 + m, q - kw + 1 + l] * w[kh - 1 - m, kw - 1 - l], m, l)",
        "shifted by (1 - kh, 1 - kw)",
    ),
    (
        "conv2d",
        "x",
        "dx[p, q] == Sum(g[p - m + 1, q - l] * w[m, l], m, l)",
        "dx[p, q] == Sum(g[p - m, q - l] * w[m, l], m, l)",
        "shifted by (-1, 0)",
    ),
    (
        "conv2d",
        "w",
        "dw[m, l] == Sum(g[i, j] * x[i + m + 1, j + l], i, j)",
        "dw[m, l] == Sum(g[i, j] * x[i + m, j + l], i, j)",
        "shifted by (-1, 0)",
    ),
]


@pytest.mark.parametrize(
    ("layer", "wrt", "mistake", "true_variant", "words"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES]
)
@pytest.mark.slow
def test_nearest_variant_of_a_mistake(layer, wrt, mistake, true_variant, words):
    assert prove(layer, wrt, mistake).verdict == "refuted"  # the mistake stays a mistake
    assert prove(layer, wrt, true_variant).verdict == "proved"  # the hand-derived fix
    # the search is bounded in seconds (10 by default): a loaded machine must not make it miss
    variants = nearest_variants(layer, wrt, mistake, timeout=60)
    assert variants, f"no variant of {mistake!r}"
    first = variants[0]
    assert first.explanation.startswith(f"holds with `{first.claim}`: ")
    assert words in first.explanation
    assert first.verdict is not None and first.verdict.verdict == "proved"
    assert all(v.verdict.verdict == "proved" and v.claim != mistake for v in variants)
    # the variant found is the hand-derived one, or (both being proved) equal to it
    assert first.claim.replace(" ", "") == true_variant.replace(" ", "") or first.verdict.proved


def test_at_least_forty_mistakes():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) >= 10


def _layer_without_assumptions(name: str):
    data = tomllib.loads((LAYERS_DIR / f"{name}.toml").read_text())
    data["assume"] = []
    data["claims"] = []
    data["name"] = f"{name}_any_target"
    return layer_from_dict(data)


@pytest.mark.parametrize(
    ("name", "claim", "assumption"),
    [
        ("softmax_cross_entropy", "softmax(s) - t", "sum(t) == 1"),
        ("log_softmax_nll", "(softmax(s, axis=1) - t) / N", "sum(t, axis=1) == 1"),
    ],
)
def test_missing_assumption(name, claim, assumption):
    # the same cross-entropy without "the targets sum to 1": the textbook gradient needs it
    layer = _layer_without_assumptions(name)
    assert prove(layer, "s", claim).verdict == "refuted"
    assert assumption in candidate_assumptions(layer)
    variants = nearest_variants(layer, "s", claim)
    assert [v.explanation for v in variants][:1] == [f"holds if {assumption}"]
    assert variants[0].assume == (assumption,) and variants[0].verdict.verdict == "proved"


def test_a_claim_far_from_any_variant_gets_none():
    # w is no gradient of anything here, and no one-place edit makes it one
    assert nearest_variants("linear", "b", "sum(w, axis=1)") == ()


def test_candidate_assumptions_come_from_the_layer():
    # a constant target of rank 2 may sum to 1 in all, or along either axis; inputs may be positive
    assert candidate_assumptions("mse") == ["sum(t) == 1", "sum(t, axis=0) == 1", "sum(t, axis=1) == 1", "x > 0"]
    # the layer's own assumption is not offered again
    assert "sum(t) == 1" not in candidate_assumptions("softmax_cross_entropy")
