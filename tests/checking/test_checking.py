"""check_implementation: user backward functions in a child process against the derived gradient.

Expected gradients are recomputed here with torch autograd, independently of symderive.
"""

import dataclasses
import itertools
import json
import os
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from symderive.checking.check import check_implementation, check_many, format_reports, sweep_sizes
from symderive.errors import InputError
from symderive.model.layer import load_layer


def torch_conv2d_dx(x, w, b, g) -> np.ndarray:
    """dL/dx for L = sum(g * (correlate(x, w, 'valid') + b)), by torch autograd."""
    xt = torch.tensor(np.array(x, dtype=float), requires_grad=True)
    wt = torch.tensor(np.array(w, dtype=float))
    y = torch.nn.functional.conv2d(xt[None, None], wt[None, None])[0, 0] + float(b)
    (y * torch.tensor(np.array(g, dtype=float))).sum().backward()
    return xt.grad.numpy()


def unflipped_conv_backward(g, w):
    """The classic bug: a full correlation where a full convolution (flipped kernel) belongs."""
    kh, kw = w.shape
    padded = np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    out = np.zeros((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(padded[i : i + kh, j : j + kw] * w)
    return out


def test_correct_conv_backward_is_ok():
    def backward(g, w):
        return unflipped_conv_backward(g, w[::-1, ::-1])

    report = check_implementation("conv2d", "x", backward)
    assert report.ok and report.status == "ok", report.details()
    assert len(report.sizes_tried) >= 5


def test_unflipped_kernel_is_a_mismatch_at_the_smallest_size_with_a_kernel_above_one_element():
    report = check_implementation("conv2d", "x", unflipped_conv_backward)
    assert not report.ok and report.status == "wrong"
    # the bug is invisible for a 1x1 kernel and visible (random values) for any other; with
    # kh <= H, kw <= W the smallest sum of sizes with one is 6, first in declaration order
    # H=1, W=2, kh=1, kw=2 (LANGUAGE.md's minimal order)
    assert report.sizes == {"H": 1, "W": 2, "kh": 1, "kw": 2}
    assert report.sizes_tried and all(s["kh"] * s["kw"] == 1 for s in report.sizes_tried)
    inputs = report.inputs
    expected = torch_conv2d_dx(inputs["x"], inputs["w"], inputs["b"], inputs["g"])
    np.testing.assert_allclose(np.array(report.expected), expected, rtol=1e-12, atol=1e-12)
    returned = unflipped_conv_backward(np.array(inputs["g"]), np.array(inputs["w"]))
    np.testing.assert_array_equal(np.array(report.returned), returned)
    differing = [tuple(i) for i in np.argwhere(~np.isclose(returned, expected, rtol=1e-7, atol=1e-9))]
    assert report.differing == differing and differing
    assert "wrong at sizes" in report.summary()
    assert "differing elements:" in report.details()


def torch_log_softmax_nll_ds(s, t) -> np.ndarray:
    """dL/ds of torch's cross_entropy with probability targets (mean over the batch)."""
    st = torch.tensor(np.array(s, dtype=float), requires_grad=True)
    torch.nn.functional.cross_entropy(st, torch.tensor(np.array(t, dtype=float))).backward()
    return st.grad.numpy()


def test_a_missing_mean_is_reported_at_the_smallest_size_that_shows_it():
    def no_mean(s, t):
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - t  # "/ N" forgotten

    report = check_implementation("log_softmax_nll", "s", no_mean)
    # invisible at N=1 (dividing by 1) and at K=1 (softmax = t = 1, the gradient is 0):
    # the smallest sizes that show it are N=2, K=2
    assert report.status == "wrong" and report.sizes == {"N": 2, "K": 2}, report.details()
    s, t = np.array(report.inputs["s"]), np.array(report.inputs["t"])
    np.testing.assert_allclose(np.array(report.expected), torch_log_softmax_nll_ds(s, t), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.array(report.returned), 2 * torch_log_softmax_nll_ds(s, t), rtol=1e-12)


def test_the_sweep_has_the_smallest_sizes_with_every_dimension_at_least_two():
    # a bug that a dimension of 1 hides (a missing mean over a batch of one) shows there;
    # by hand: every size 2 is allowed by these layers' assumptions (kh <= H, kw <= W)
    smallest = {
        "log_softmax_nll": {"N": 2, "K": 2},
        "linear": {"n": 2, "m": 2},
        "conv2d": {"H": 2, "W": 2, "kh": 2, "kw": 2},
    }
    for name, sizes in smallest.items():
        sweep = sweep_sizes(load_layer(name))
        assert sizes in sweep, (name, sweep)
        assert sweep == sorted(sweep, key=lambda s: (sum(s.values()), tuple(s.values()))), (name, sweep)


@pytest.mark.parametrize("kind", ["wrong", "raised"])
def test_after_a_failure_the_smallest_failing_size_is_reported(kind):
    # linear: x[n], w[m, n]; wrong only once n >= 3, which the sweep first meets at a larger size
    def late_bug(w, g):
        if w.shape[1] >= 3:
            if kind == "raised":
                raise ArithmeticError("late")
            return w.T @ g + 1.0
        return w.T @ g

    report = check_implementation("linear", "x", late_bug)
    assert report.status == kind
    # the smallest sum of sizes with n >= 3 is n=3, m=1
    assert report.sizes == {"n": 3, "m": 1}, report.details()
    assert all(s["n"] < 3 for s in report.sizes_tried)
    inputs = report.inputs
    assert np.array(inputs["w"]).shape == (1, 3)
    np.testing.assert_allclose(np.array(report.expected), np.array(inputs["w"]).T @ np.array(inputs["g"]))


def test_details_summarise_large_arrays_and_show_small_ones():
    def plus_one(w, g):
        return w.T @ g + 1.0

    report = check_implementation("linear", "x", plus_one)
    assert report.sizes == {"n": 1, "m": 1}
    text = report.details()
    assert "expected = [" in text and "returned = [" in text and "  w = [[" in text
    big = dataclasses.replace(report, expected=list(np.arange(50.0)), returned=list(np.arange(50.0) + 1))
    line = next(x for x in big.details().splitlines() if x.startswith("expected = "))
    assert "..." in line and "(shape (50,))" in line and "49" in line and "25" not in line
    assert "..." not in big.details(max_elements=None)


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_the_seed_is_a_non_negative_integer(seed):
    with pytest.raises(InputError, match="seed"):
        check_implementation("linear", "b", lambda g: np.array(g), seed=seed)


LINEAR_DX = "def dx(w, g):\n    return w.T @ g\n"


def _misbehaving():
    def raises(w, g):
        raise ValueError("no idea")

    def wrong_shape(w, g):
        return (w.T @ g)[None, :]

    def single(w, g):
        return (w.T @ g).astype(np.float32)

    def exits(w, g):
        os._exit(3)

    def greedy(w, g):
        # 1 GiB of address space: more than the 200 MB bound below, harmless without it
        big = np.empty(2**27)
        return w.T @ g + 0 * big[0]

    def everything(**kwargs):
        return kwargs["w"].T @ kwargs["g"]

    return [raises, wrong_shape, single, exits, greedy, everything]


@pytest.mark.slow
def test_misbehaving_implementations_are_reported_not_fatal():
    reports = check_many("linear", "x", _misbehaving(), memory_mb=200, timeout=20)
    by_name = {r.impl.rsplit(".", 1)[-1]: r for r in reports}
    assert by_name["raises"].status == "raised"
    assert "ValueError: no idea" in by_name["raises"].message
    assert by_name["raises"].sizes == {"n": 1, "m": 1}
    assert by_name["wrong_shape"].status == "wrong shape"
    assert "(1, 1)" in by_name["wrong_shape"].message
    # a float32 result of the right values is compared at float32 tolerances, its dtype said
    assert by_name["single"].status == "ok" and by_name["single"].dtype == "float32"
    assert "float32" in by_name["single"].message
    assert by_name["exits"].status == "raised"
    assert "status 3" in by_name["exits"].message
    assert by_name["greedy"].status == "memory"
    assert "MemoryError" in by_name["greedy"].message
    assert by_name["everything"].status == "ok"
    assert [r.ok for r in reports] == [False, False, True, False, False, True]
    lines = format_reports(reports).splitlines()
    assert len(lines) == len(reports)
    assert re.search(
        r"raises: raised at sizes n=1, m=1: ValueError: no idea \(at test_checking\.py, line \d+\)$", lines[0]
    )
    for r in reports:
        json.loads(json.dumps(r.to_json()))


def test_the_memory_bound_is_what_stops_the_greedy_one():
    greedy = _misbehaving()[4]
    assert check_implementation("linear", "x", greedy, memory_mb=4096).status == "ok"


def test_a_function_that_never_returns_times_out():
    def forever(w, g):
        while True:
            pass

    start = time.monotonic()
    report = check_implementation("linear", "x", forever, timeout=1.0)
    assert report.status == "timeout" and "1 s" in report.message
    assert time.monotonic() - start < 8


def test_file_specs_and_the_calling_convention(tmp_path):
    (tmp_path / "alice.py").write_text(LINEAR_DX)
    (tmp_path / "bob.py").write_text("import numpy as np\n\ndef dx(w, g, x):\n    print('debug')\n    return w @ g\n")
    (tmp_path / "carol.py").write_text("def dx(w, g, h):\n    return w.T @ g\n")
    (tmp_path / "dave.py").write_text("import no_such_module\n")
    specs = [f"{tmp_path / n}.py:dx" for n in ("alice", "bob", "carol", "dave")]
    alice, bob, carol, dave = check_many("linear", "x", specs)
    assert alice.ok and alice.impl == specs[0]
    # w @ g is only defined when m == n: the first size with m != n raises in NumPy
    assert bob.status == "raised" and bob.sizes == {"n": 1, "m": 2}
    assert carol.status == "raised" and "'h'" in carol.message
    assert dave.status == "not loaded" and "no_such_module" in dave.message


def test_a_missing_function_is_an_input_error_before_anything_runs(tmp_path):
    (tmp_path / "impls.py").write_text(LINEAR_DX + "\nnot_a_function = 5\n")
    good = f"{tmp_path}/impls.py:dx"
    for missing in ("nofunc", "not_a_function"):
        with pytest.raises(InputError, match=f"no function '{missing}'"):
            check_many("linear", "x", [good, f"{tmp_path}/impls.py:{missing}"])


def test_error_places_are_in_the_users_file_not_in_symderive_or_numpy(tmp_path):
    (tmp_path / "impls.py").write_text(
        textwrap.dedent(
            """\
            import numpy as np


            def extra(w, g, h):
                return w.T @ g


            def inverse(w):
                return np.linalg.cholesky(-(w @ w.T) - np.eye(len(w)))


            def uses_inverse(w, g):
                return inverse(w).T @ g


            def greedy(w, g):
                big = np.ones(2**31)
                return w.T @ g + big[0]
            """
        )
    )
    specs = [f"{tmp_path}/impls.py:{n}" for n in ("extra", "uses_inverse", "greedy")]
    extra, inverse, greedy = check_many("linear", "x", specs, memory_mb=200)
    # the missing argument: where the function is defined
    assert extra.status == "raised" and extra.message.endswith("(at impls.py, line 4)"), extra.message
    # numpy raises (the matrix is negative definite): the last line of the user's file is named
    assert inverse.status == "raised" and "LinAlgError" in inverse.message
    assert inverse.message.endswith("(at impls.py, line 9)"), inverse.message
    assert greedy.status == "memory" and "MemoryError" in greedy.message
    assert "(at impls.py, line 17)" in greedy.message, greedy.message
    for r in (extra, inverse, greedy):
        assert "checking.py" not in r.message and "numeric.py" not in r.message and "linalg" not in r.message


def test_a_near_miss_shows_digits_that_differ_and_the_bound_it_exceeds():
    # off by 2e-7 relative: rejected at the default rtol=1e-7, and the message must not print
    # the two numbers identically (6 significant digits would)
    report = check_implementation("linear", "x", lambda w, g: (w.T @ g) * (1 + 2e-7))
    assert report.status == "wrong", report.details()
    found = re.search(r"expected (\S+), returned (\S+) \(difference (\S+), allowed (\S+) ", report.message)
    assert found, report.message
    want, got, difference, allowed = found.groups()
    assert want != got
    x, w, b, g = (np.array(report.inputs[k], dtype=float) for k in ("x", "w", "b", "g"))
    xt = torch.tensor(x, requires_grad=True)
    (torch.tensor(g) * (torch.tensor(w) @ xt + torch.tensor(b))).sum().backward()
    truth = xt.grad.numpy()[0]
    # printed rounded, but each is the true value's nearest at the digits shown
    assert float(want) == pytest.approx(truth, rel=1e-6) and float(got) == pytest.approx(truth, rel=1e-6)
    assert abs(float(want) - truth) <= abs(float(got) - truth)
    assert float(difference) == pytest.approx(abs(truth) * 2e-7, rel=0.05)
    assert float(allowed) == pytest.approx(1e-9 + 1e-7 * abs(truth), rel=0.05)


def test_a_gross_mismatch_keeps_the_short_message():
    report = check_implementation("linear", "x", lambda w, g: -(w.T @ g))
    assert report.status == "wrong" and "difference" not in report.message, report.message
    assert re.search(r"expected -?\d\.\d+, returned -?\d\.\d+$", report.message), report.message


def test_a_positional_only_function_is_told_about_the_keyword_convention():
    def backward(w, g, /):
        return w.T @ g

    report = check_implementation("linear", "x", backward)
    assert report.status == "raised" and "'w' is positional-only" in report.message, report.message
    assert "keyword arguments" in report.message


def test_input_errors(tmp_path):
    with pytest.raises(InputError):
        check_implementation("linear", "x", f"{tmp_path}/missing.py:dx")
    with pytest.raises(InputError):
        check_implementation("linear", "x", "no_colon.py")
    with pytest.raises(InputError):
        check_implementation("linear", "q", lambda g: g)


@pytest.mark.parametrize(
    ("rtol", "atol"), [(-1, 1e-9), (float("nan"), 1e-9), (0.0, -1), (1e-7, float("inf")), ("1", 0)]
)
def test_tolerances_must_be_finite_and_not_negative(rtol, atol):
    # a negative or NaN tolerance would call every correct implementation wrong
    with pytest.raises(InputError, match="tol"):
        check_implementation("linear", "b", lambda g: np.array(g), rtol=rtol, atol=atol)
    with pytest.raises(InputError, match="tol"):
        check_many("linear", "b", [lambda g: np.array(g)], rtol=rtol, atol=atol)


def test_scalar_input_and_loss_layer_with_normalised_target(tmp_path):
    # db of conv2d is a 0-d array: sum(g); softmax cross-entropy needs sum(t) == 1 to have softmax(s) - t
    assert check_implementation("conv2d", "b", lambda g: np.array(g.sum())).ok

    def ce(s, t):
        e = np.exp(s - s.max())
        return e / e.sum() - t

    report = check_implementation("softmax_cross_entropy", "s", ce)
    assert report.ok, report.details()
    path = tmp_path / "ce.py"
    path.write_text(
        textwrap.dedent(
            """
            import numpy as np
            def ce(s, t):
                st = s.copy()
                return np.exp(st) / np.exp(st).sum() - t / t.sum() * 1.5
            """
        )
    )
    assert check_implementation("softmax_cross_entropy", "s", f"{path}:ce").status == "wrong"


def test_the_course_example_submissions():
    course = Path(__file__).parents[2] / "examples" / "course"
    specs = [f"{course}/students/{s}.py:conv2d_backward_x" for s in ("alice", "bob")]
    alice, bob = check_many(course / "conv2d.symd.toml", "x", specs)
    assert alice.status == "ok", alice.details()
    assert bob.status == "wrong"
    # bob correlates with the unflipped kernel: exactly the bug reproduced above
    inputs = bob.inputs
    returned = unflipped_conv_backward(np.array(inputs["g"]), np.array(inputs["w"]))
    np.testing.assert_allclose(np.array(bob.returned), returned, rtol=1e-12)
    np.testing.assert_allclose(
        np.array(bob.expected), torch_conv2d_dx(inputs["x"], inputs["w"], inputs["b"], inputs["g"]), rtol=1e-12
    )


# -- sizes that separate (issue 21) -----------------------------------------------------------------
def torch_conv_s2p1_dx(x, w, b, g) -> np.ndarray:
    """dL/dx of conv2d(x, w, b, stride=2, padding=1), by torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, torch.tensor(w), torch.tensor(b), stride=2, padding=1)
    (y * torch.tensor(g)).sum().backward()
    return xt.grad.numpy()


def right_only_when(condition):
    """The true gradient where ``condition(x, w, g)`` holds, and a wrong one (one element off) elsewhere."""

    def backward(x, w, b, g):
        dx = torch_conv_s2p1_dx(x, w, b, g)
        if not condition(x, w, g):
            dx.flat[-1] += 1.0
        return dx

    return backward


#: buggy conv2d_nchw_s2p1 gradients w.r.t. x, each right on a family of sizes a narrow sweep can miss
ONLY_RIGHT_WHEN = {
    "square": lambda x, w, g: x.shape[2] == x.shape[3],
    "H <= W": lambda x, w, g: x.shape[2] <= x.shape[3],
    "W <= H": lambda x, w, g: x.shape[3] <= x.shape[2],
    "N = 1": lambda x, w, g: x.shape[0] == 1,
    "C = 1": lambda x, w, g: x.shape[1] == 1,
    # the stride 2 divides H + 2 * padding - kh (and so no output_padding is needed)
    "the stride divides": lambda x, w, g: (
        (x.shape[2] + 2 - w.shape[2]) % 2 == 0 and (x.shape[3] + 2 - w.shape[3]) % 2 == 0
    ),
    "output H <= output W": lambda x, w, g: g.shape[2] <= g.shape[3],
}


@pytest.fixture(scope="module")
def strided_cases():
    from symderive.checking import CaseCache

    return CaseCache("conv2d_nchw_s2p1", "x")


@pytest.mark.slow
def test_every_size_family_bug_is_rejected_and_the_true_gradient_passes(strided_cases):
    impls = [right_only_when(c) for c in ONLY_RIGHT_WHEN.values()]
    always = right_only_when(lambda x, w, g: True)
    reports = check_many("conv2d_nchw_s2p1", "x", [*impls, always], cases=strided_cases)
    *buggy, correct = reports
    assert correct.ok, correct.details()
    for (name, condition), report in zip(ONLY_RIGHT_WHEN.items(), buggy, strict=True):
        assert report.status == "wrong", (name, report.details())
        x, w, g = (np.array(report.inputs[k]) for k in ("x", "w", "g"))
        assert not condition(x, w, g), name
        assert report.sizes == first_size_where_wrong(condition), name


def compositions(total: int, parts: int):
    """Tuples of ``parts`` integers >= 1 summing to ``total``, first in lexicographic order."""
    if parts == 1:
        yield (total,)
        return
    for first in range(1, total - parts + 2):
        for rest in compositions(total - first, parts - 1):
            yield (first, *rest)


def first_size_where_wrong(condition) -> dict:
    """LANGUAGE.md's minimal order (smallest sum, then declaration order) over conv2d_nchw_s2p1's sizes, by hand."""
    for total in itertools.count(7):
        for n, c, h, w, o, kh, kw in compositions(total, 7):
            if kh <= h + 2 and kw <= w + 2:
                x, k = np.empty((n, c, h, w)), np.empty((o, c, kh, kw))
                g = np.empty((n, o, (h + 2 - kh) // 2 + 1, (w + 2 - kw) // 2 + 1))
                if not condition(x, k, g):
                    return {"N": n, "C": c, "H": h, "W": w, "O": o, "kh": kh, "kw": kw}


def test_the_smallest_size_with_h_above_w_is_reported(strided_cases):
    # by hand: sizes N, C, H, W, O, kh, kw all 1 except H = 2 is the smallest sum (8) with H > W, and the
    # first in declaration order among the sums of 8 that have H > W
    report = check_many("conv2d_nchw_s2p1", "x", [right_only_when(ONLY_RIGHT_WHEN["H <= W"])], cases=strided_cases)[0]
    assert report.sizes == {"N": 1, "C": 1, "H": 2, "W": 1, "O": 1, "kh": 1, "kw": 1}, report.details()
    x, w, b, g = (np.array(report.inputs[k]) for k in ("x", "w", "b", "g"))
    np.testing.assert_allclose(np.array(report.expected), torch_conv_s2p1_dx(x, w, b, g), rtol=1e-12, atol=1e-12)


def test_a_weight_gradient_wrong_when_the_output_is_taller_than_wide():
    # conv2d (y = correlate(x, w, "valid") + b): dw = correlate(x, g, "valid"); the student's version swaps
    # the output's axes, which only works when the output is square or wide enough to hide it
    from scipy.signal import correlate

    def swapped(x, g):
        if g.shape[0] > g.shape[1]:
            raise IndexError("index out of range")
        return correlate(x, g, "valid")

    def right(x, g):
        return correlate(x, g, "valid")

    wrong, ok = check_many("conv2d", "w", [swapped, right])
    assert ok.ok, ok.details()
    assert wrong.status == "raised"
    # by hand: the output is (H - kh + 1, W - kw + 1); the smallest sum with a taller output is H=2, W=1, kh=1, kw=1
    assert wrong.sizes == {"H": 2, "W": 1, "kh": 1, "kw": 1}, wrong.details()


def test_the_sweep_covers_every_order_of_each_tensors_dimensions():
    # x [N, C, H, W] of conv2d_nchw_s2p1: each dimension strictly largest, and all equal; each size 1
    # next to larger ones; a stride that does not divide H + 2 - kh and W + 2 - kw
    sweep = sweep_sizes("conv2d_nchw_s2p1")
    for d in ("N", "C", "H", "W"):
        assert any(all(s[d] > s[e] for e in "NCHW" if e != d) for s in sweep), d
    assert any(s["N"] == s["C"] == s["H"] == s["W"] >= 2 for s in sweep)
    for d in sweep[0]:
        assert any(s[d] == 1 and sum(v >= 2 for v in s.values()) == len(s) - 1 for s in sweep), d
    assert any((s["H"] - s["kh"]) % 2 for s in sweep) and any((s["W"] - s["kw"]) % 2 for s in sweep)
    out = [((s["H"] + 2 - s["kh"]) // 2 + 1, (s["W"] + 2 - s["kw"]) // 2 + 1) for s in sweep]
    assert any(h > w for h, w in out) and any(w > h for h, w in out)


def test_verbose_prints_the_sizes_and_why(capsys, tmp_path):
    from symderive.cli import main

    (tmp_path / "dx.py").write_text(LINEAR_DX)
    assert main(["check", "linear", "--wrt", "x", "--impl", f"{tmp_path}/dx.py:dx", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "n=3, m=2: w [m, n]: n largest" in out and "n=1, m=1: the smallest allowed sizes" in out


def test_expected_gradients_are_computed_once_for_all_implementations(monkeypatch):
    from symderive.checking import check as checking

    calls = []
    real = checking.expected_gradient
    monkeypatch.setattr(checking, "expected_gradient", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    cache = checking.CaseCache("linear", "x")
    impls = [lambda w, g: w.T @ g, lambda w, g: (w.T @ g).copy()]
    assert all(r.ok for r in check_many("linear", "x", impls, cases=cache))
    assert all(r.ok for r in check_many("linear", "x", impls, cases=cache))
    assert len(calls) == len(cache.plan) == len({tuple(c.values()) for c in calls})
