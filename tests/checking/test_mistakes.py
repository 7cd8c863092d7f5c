"""check names the wrong formula an implementation computes (issue 16, requirement 5).

Each buggy implementation below is written by hand with its bug; the expected mistake is
what that bug is, said by hand (not read from symderive).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import convolve, correlate
from scipy.special import softmax

from symderive.checking.check import check_implementation
from symderive.checking.mistakes import candidate_mistakes, matching_mistake

CLASS = Path(__file__).resolve().parents[2] / "examples" / "course" / "class"

#: softmax cross-entropy whose targets need not sum to one: p - t holds only if they do
ANY_TARGET = """
name = "softmax_ce_any_target"
description = "Cross-entropy of softmax scores s against targets t that need not sum to one."
constants = ["t"]

[inputs]
s = ["n"]
t = ["n"]

[output]
L = "-sum(t * log(softmax(s)))"

[[claims]]
wrt = "s"
claim = "softmax(s) * sum(t) - t"

[[claims]]
wrt = "s"
claim = "softmax(s) - t"
assume = ["sum(t) == 1"]
"""


def conv_no_flip(g, w):
    return correlate(g, w, "full")


def conv_valid_mode(g, w):
    return convolve(g, w, "valid")


def conv_same_mode(g, w):
    return convolve(g, w, "same")


def conv_correct(g, w):
    return convolve(g, w, "full")


def conv_doubled(g, w):
    return 2 * convolve(g, w, "full") + 1  # no one-place edit of the gradient gives this


@pytest.mark.parametrize(
    ("impl", "formula", "words"),
    [
        (conv_no_flip, "correlate(g, w, 'full')", "the kernel is not flipped"),
        (conv_valid_mode, "convolve(g, w, 'valid')", "mode 'full', not 'valid'"),
        (conv_same_mode, "convolve(g, w, 'same')", "mode 'full', not 'same'"),
        # g padded by kh instead of kh - 1: every element one row and one column late
        (
            f"{CLASS}/conv2d/pad_off_by_one.py:conv2d_backward_x",
            "convolve(g, w, 'full') shifted by (1, 1)",
            "off-by-one",
        ),
    ],
)
def test_conv2d_mistakes_are_named(impl, formula, words):
    report = check_implementation("conv2d", "x", impl)
    assert not report.ok
    assert report.mistake is not None and report.mistake.startswith(f"your function computes {formula}: ")
    assert words in report.mistake
    assert report.mistake in report.summary() and report.to_json()["mistake"] == report.mistake


def test_linear_w_for_w_transposed_is_named():
    # w @ g raises unless w is square; where it is square it answers w @ g
    report = check_implementation("linear", "x", lambda w, g: w @ g)
    assert report.mistake == "your function computes w @ g: w must be transposed"


def test_softmax_ce_without_the_targets_summing_to_one_is_named(tmp_path):
    layer = tmp_path / "any_target.toml"
    layer.write_text(ANY_TARGET)
    report = check_implementation(str(layer), "s", lambda s, t: softmax(s) - t)
    assert report.status == "wrong"
    assert report.mistake == "your function computes softmax(s) - t: it holds only if sum(t) == 1"
    right = check_implementation(str(layer), "s", lambda s, t: softmax(s) * t.sum() - t)
    assert right.ok and right.mistake is None


@pytest.mark.parametrize("impl", [conv_correct, conv_doubled])
def test_a_correct_or_unmatched_implementation_gets_no_mistake(impl):
    report = check_implementation("conv2d", "x", impl)
    assert report.ok is (impl is conv_correct)
    assert report.mistake is None


def test_linear_forgetting_g_matches_no_candidate():
    report = check_implementation("linear", "x", f"{CLASS}/linear/forgot_g.py:linear_backward_x")
    assert report.status == "wrong" and report.mistake is None


def test_matching_needs_every_answer():
    rng = np.random.default_rng(0)
    g, w = rng.normal(size=(2, 3)), rng.normal(size=(2, 2))
    small = ({"H": 3, "W": 4, "kh": 2, "kw": 2}, {"g": g, "w": w})
    wrong = correlate(g, w, "full")
    assert matching_mistake("conv2d", "x", [(*small, wrong)]).computes == "correlate(g, w, 'full')"
    # a second answer that is the right gradient rules the no-flip formula out
    g2, w2 = rng.normal(size=(3, 3)), rng.normal(size=(2, 2))
    second = ({"H": 4, "W": 4, "kh": 2, "kw": 2}, {"g": g2, "w": w2}, convolve(g2, w2, "full"))
    assert matching_mistake("conv2d", "x", [(*small, wrong), second]) is None


def test_candidates_come_from_the_search_edits():
    computes = [c.computes for c in candidate_mistakes("conv2d", "x")]
    assert "correlate(g, w, 'full')" in computes and "convolve(g, w, 'valid')" in computes
    assert "convolve(g, w.T, 'full')" in computes
