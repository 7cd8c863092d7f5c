"""The wall-clock guard: once the time has run out the answer is the timeout, wherever the clock struck."""

from __future__ import annotations

import gc
import time

import pytest

from symderive.clock import ClaimTimeout, wall_clock


class _SlowDestructor:
    def __del__(self):
        # the alarm rings while this runs; Python ignores exceptions raised in __del__
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_wall_clock_times_out_even_when_the_ring_is_swallowed():
    # the CI failure this guards against: the only ring landed in z3's destructor,
    # the claim then finished within the re-ring interval, and a timeout became a verdict
    with pytest.raises(ClaimTimeout), wall_clock(0.01):
        _SlowDestructor()
        gc.collect()


def test_wall_clock_turns_a_wrapped_ring_into_the_timeout():
    import ctypes

    def convert(value):
        # ctypes calls this while converting the argument; the ring lands here
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass
        return value

    class Slow:
        @classmethod
        def from_param(cls, value):
            return convert(value)

    labs = ctypes.CDLL(None).labs
    labs.argtypes = [Slow]
    with pytest.raises(ClaimTimeout), wall_clock(0.01):
        labs(-3)


def test_wall_clock_keeps_other_errors_when_the_clock_has_not_run_out():
    with pytest.raises(KeyError), wall_clock(5.0):
        {}["missing"]


def test_wall_clock_lets_a_quick_block_finish():
    with wall_clock(5.0):
        total = sum(range(1000))
    assert total == 499500
