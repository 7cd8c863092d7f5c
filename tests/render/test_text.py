"""Verdict helpers: counterexample values as people read them."""

from __future__ import annotations

import math

import pytest

from symderive.render.text import printed_value, readable_values


def test_a_long_exact_value_is_shown_by_its_digits_and_short_ones_as_printed():
    long = "-904916785211765779083*tanh(833561968939165526361/1000000000000000000000)**2/2000000000000000000000 + 1"
    t = math.tanh(833561968939165526361 / 1000000000000000000000)
    assert readable_values(long, "1/3", -1, 0.5) == [
        f"\u2248{1 - 904916785211765779083 / 2e21 * t * t:.6g}",
        "1/3",
        "-1",
        "0.5",
    ]


def test_two_long_values_that_differ_get_the_digits_that_tell_them_apart():
    a = "exp(1)/(1 + exp(1)) + 1/100000000000000000000000000"
    b = "exp(1)/(1 + exp(1)) + 3/10000000000"
    shown = readable_values(a, b)
    assert shown[0] != shown[1]
    # 0.7310585786 vs 0.7310585789: ten significant digits are needed
    assert shown[1] == "\u2248" + f"{math.e / (1 + math.e) + 3e-10:.10g}"


@pytest.mark.parametrize("text", ["x + 1", "f(1)", "__import__('os')", "1 if 1 else 2", "(1).real"])
def test_only_printed_numbers_are_read(text):
    assert printed_value(text) is None
    assert readable_values(text * 10) == [text * 10]


def test_a_3d_counterexample_prints_as_numbers_everywhere():
    # one renderer for the command line and assert_gradient: nested lists of any rank are
    # aligned numbers, never JSON strings with quotes
    from symderive.decide.verdict import Counterexample, Verdict
    from symderive.render.text import format_verdict, render_verdict

    cube = [[[1, -2], [3, 4]], [[5, 6], [7, "1/2"]]]
    cex = Counterexample(
        sizes={"n": 2},
        values={"x": cube},
        index=(1, 1, 1),
        expected="1/2",
        claimed=0,
        expected_array=cube,
        claimed_array=[[[1, -2], [3, 4]], [[5, 6], [7, 0]]],
    )
    verdict = Verdict("refuted", layer="l", wrt="x", claim="g", counterexample=cex)
    for text in (format_verdict(verdict), render_verdict(verdict)):
        assert '"' not in text and "'" not in text
        assert "1/2" in text and "[[[" in text
