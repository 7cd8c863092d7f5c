"""symderive.testing: assert_gradient and the rendering of counterexamples."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import torch

from symderive.prove import prove
from symderive.testing import assert_gradient, format_array, render_counterexample


def test_proved_claim_passes():
    assert assert_gradient("linear", "x", "w.T @ g").verdict == "proved"


def test_refuted_claim_fails_with_a_readable_counterexample_that_really_is_one():
    # the classic mistake: the kernel not flipped
    claim = "correlate(g, w, 'full')"
    with pytest.raises(AssertionError) as info:
        assert_gradient("conv2d", "x", claim)
    text = str(info.value)
    cx = prove("conv2d", "x", claim).counterexample
    sizes = ", ".join(f"{k}={v}" for k, v in cx.sizes.items())
    assert f"counterexample at sizes {sizes}" in text
    for name, value in cx.values.items():
        assert f"  {name} = {format_array(value)}" in text
    # independently: at these inputs the true dx is convolve(g, w, "full") and the claim correlates
    g, w = np.array(cx.values["g"], float), np.array(cx.values["w"], float)
    true_dx = scipy.signal.convolve2d(g, w, "full")
    claimed = scipy.signal.correlate2d(g, w, "full")
    index = ", ".join(map(str, cx.index))
    assert true_dx[cx.index] != claimed[cx.index]
    assert f"at dx[{index}]: expected {true_dx[cx.index]:g}, claimed {claimed[cx.index]:g}" in text


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(AssertionError) as info:
        assert_gradient("linear", "x", "w @ g")
    text = str(info.value)
    # w @ g needs m == n; at n=1, m=2 the gradient has x's shape (1,) and the claim is undefined
    assert "sizes n=1, m=2" in text
    assert "the gradient has shape (1,), the claim undefined" in text


@pytest.mark.slow
def test_unknown_claim_fails_with_the_reason():
    # true (exp(x) > x for every real x), but the prover decides comparisons of polynomials,
    # not of exponentials: no proof, and no counterexample since there is none
    claim = "w.T @ g * (exp(x) > x)"
    verdict = prove("linear", "x", claim)
    assert verdict.verdict == "unknown"
    with pytest.raises(AssertionError) as info:
        assert_gradient("linear", "x", claim)
    # the reason as far as it does not depend on how many sizes the timed search reached
    reason = verdict.reason.split(" (the search timed out")[0]
    assert f"reason: {reason}" in str(info.value)
    assert ": unknown" in str(info.value)


def test_assumptions_are_passed_through():
    assert assert_gradient("linear", "x", "w.T @ g", assume=["m >= 2"]).assumptions == ("m >= 2",)


USER_TESTS = """
from symderive.checking.check import check_implementation
from symderive.testing import assert_gradient


def test_refuted():
    assert_gradient("conv2d", "x", "correlate(g, w, 'full')")


def test_bad_claim():
    assert_gradient("linear", "x", "frobnicate(g)")


def test_bad_layer():
    assert_gradient("nosuchlayer", "x", "g")


def test_bad_impl():
    check_implementation("linear", "x", "missing.py:dx")
"""


@pytest.mark.slow
@pytest.mark.parametrize("tb", ["auto", "long"])
def test_failures_in_a_users_pytest_run_show_no_frames_of_symderive(tmp_path, tb):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--tb={tb}", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert "4 failed" in out, out
    # the counterexample and the one-line input errors, each at the user's line
    assert "counterexample at sizes H=1, W=2, kh=1, kw=2" in out
    assert "unknown function 'frobnicate'" in out and "nosuchlayer" in out and "missing.py" in out
    for line in ("test_user.py:7:", "test_user.py:11:", "test_user.py:15:", "test_user.py:19:"):
        assert line in out, out
    assert "symderive/testing.py" not in out and "symderive/" not in out.replace("symderive/errors", ""), out


def test_format_array_aligns_matrices_and_blocks():
    assert format_array([[1, -2], [30, 4]]) == "[[ 1, -2],\n [30,  4]]"
    assert format_array([1, "1/3"]) == "[  1, 1/3]"
    assert format_array(np.float64(0.5)) == "0.5"
    assert format_array([[[1]], [[2]]]) == "[[[1]],\n\n [[2]]]"


def test_render_counterexample_without_values():
    from symderive.decide.verdict import Counterexample

    cx = Counterexample(sizes={"n": 1, "m": 2}, expected_shape=(1,), claimed_shape=(2,))
    assert render_counterexample(cx).splitlines() == [
        "counterexample at sizes n=1, m=2",
        "the gradient has shape (1,), the claim (2,)",
    ]


def test_refuted_claim_fails_with_its_nearest_true_variant():
    # the kernel flipped once too often: the message says what holds instead
    with pytest.raises(AssertionError) as info:
        assert_gradient("conv2d", "x", "convolve(g, flip(w), 'full')")
    text = str(info.value)
    assert "nearest true variant: holds with `convolve(g, w, 'full')`: the kernel w is not flipped" in text
    # independently (SciPy against torch autograd): the variant is the gradient
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((2, 3))
    g = rng.standard_normal((4, 2))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w)
    (torch.nn.functional.conv2d(xt[None, None], wt[None, None])[0, 0] * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(scipy.signal.convolve2d(g, w, "full"), xt.grad.numpy(), rtol=1e-12)
