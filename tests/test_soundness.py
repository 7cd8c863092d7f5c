"""The mutation campaign at its small size: no false claim proved, no true one refuted.

``benchmarks/soundness.py`` mutates every true claim the project knows and settles each
mutant's truth with PyTorch autograd against NumPy/SciPy/torch evaluation of the claim,
independently of the prover. Here about a hundred mutants run; the full campaign
(``python benchmarks/soundness.py``) runs more than a thousand.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import soundness  # noqa: E402

#: the soundness campaign is slow (`pytest -m "not slow"` leaves it out)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_campaign():
    return soundness.campaign("small", processes=2)


def test_no_false_mutant_is_proved(small_campaign):
    figures, results = small_campaign
    wrong = [r for r in results if r.truth == "false" and r.verdict == "proved"]
    assert figures["false proved (MUST be 0)"] == 0, wrong


def test_no_true_mutant_is_refuted(small_campaign):
    _, results = small_campaign
    assert [r for r in results if r.truth == "true" and r.verdict == "refuted"] == []


def test_every_counterexample_survives_the_independent_recheck(small_campaign):
    _, results = small_campaign
    assert [(r.claim, r.recheck) for r in results if r.recheck] == []


def test_the_prover_never_crashes_on_a_mutant(small_campaign):
    _, results = small_campaign
    assert [(r.layer, r.claim, r.note) for r in results if r.verdict == "crash"] == []


def test_small_campaign_is_large_and_mostly_decisive(small_campaign):
    figures, _ = small_campaign
    assert figures["mutants tried"] >= 60
    assert figures["false"] >= 40
    assert figures["false refuted"] >= 0.9 * figures["false"]


# -- the campaign's own parts, checked against hand-worked cases ---------------------------


def test_every_known_true_claim_is_judged_true_by_the_oracle():
    for layer, wrt, claim, assume in soundness.base_claims()[::7]:
        assert soundness.judge(layer, wrt, claim, assume, count=3) == "true", (layer, wrt, claim)


@pytest.mark.parametrize(
    ("layer", "wrt", "claim"),
    [
        ("conv2d", "x", "convolve(g, flip(w), 'full')"),
        ("linear", "x", "w @ g"),
        ("relu", "x", "g * (x >= 0)"),  # differs only at the kink x == 0
        ("softmax_cross_entropy", "s", "softmax(s) - t + 0 * sum(t)"),
        ("conv2d", "w", "dw[m, n] == Sum(x[i + m, j + n] * g[i, j], (i, 0, H - kh), (j, 0, W - kw - 1))"),
        ("conv2d", "b", "db == Sum(g[i, j], i, (j, 1, W - kw))"),
    ],
)
def test_oracle_judges_known_mistakes(layer, wrt, claim):
    expected = "true" if "0 * sum" in claim else "false"
    assert soundness.judge(layer, wrt, claim, count=6) == expected


def test_bare_sum_runs_where_a_read_is_in_range():
    # Sum(exp(s[j]), j) runs over s's length only: exp(0) outside must not count
    s = np.array([0.3, -1.2, 2.0])
    got = soundness.evaluate_claim("ds[k] == exp(s[k]) / Sum(exp(s[j]), j)", "s", (3,), {"s": s}, {"n": 3})
    np.testing.assert_allclose(got, np.exp(s) / np.exp(s).sum())


def test_index_reads_outside_are_zero():
    g = np.arange(1.0, 5.0)
    got = soundness.evaluate_claim("dx[p] == g[p - 1]", "x", (5,), {"g": g}, {})
    np.testing.assert_array_equal(got, [0.0, 1.0, 2.0, 3.0, 4.0])


def test_mutants_cover_the_listed_kinds():
    kinds = {k for k, _ in soundness.mutants("convolve(g, flip(w), 'full') - 2 * transpose(x)", {"g", "w", "x"})}
    kinds |= {k for k, _ in soundness.mutants("dw[m] == Sum(x[i + m] * g[i], (i, 0, H - k))", {"g", "x"})}
    kinds |= {k for k, _ in soundness.mutants("sum(g, axis=0).T", {"g"})}
    for kind in [
        "flip added", "flip removed", "arguments swapped", "convolve<->correlate", "mode changed",
        "transpose added", "transpose removed", "axis changed", "sign flipped", "term dropped",
        "term doubled", "index shifted", "bound moved", "constant changed",
    ]:  # fmt: skip
        assert kind in kinds, kind


def test_mutants_parse_and_differ_from_the_claim():
    claim = "dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)"
    ms = soundness.mutants(claim, {"g", "w", "x"})
    assert len(ms) >= 8
    for _, text in ms:
        ast.parse(text, mode="eval")
        assert text != claim


@pytest.mark.parametrize(
    ("layer", "wrt", "claim"),
    [("tanh", "x", "g * (1 - y ** 2)"), ("linear", "x", "w.T @ g"), ("sigmoid", "x", "g * y * (1 - y)")],
)
def test_terms_zero_except_where_undefined_are_refuted(layer, wrt, claim):
    # 0 * log(x) is nan where x <= 0 in NumPy: SymPy's 0 * anything = 0 must not hide that
    from symderive.prove import prove

    added = [text for kind, text in soundness.mutants(claim, {wrt}, wrt) if kind == "undefined term added"]
    assert len(added) == 3
    for text in added:
        assert soundness.judge(layer, wrt, text, count=4) == "false", text
        verdict = prove(layer, wrt, text, timeout=30)
        assert verdict.verdict == "refuted", (text, verdict.reason)
        assert soundness.recheck_counterexample(layer, wrt, text, (), verdict.counterexample) == "", text
