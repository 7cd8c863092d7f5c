"""The wall-clock guard of a command: a claim that runs out of time is ``unknown``.

SIGALRM-based, so it acts in the main thread only. Clocks nest: an inner clock never
outlasts the outer one, and the outer clock keeps counting while the inner one runs (the
time left is read back from the interval timer itself, so no state is kept here).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from .errors import InputError

#: the longest clock (a year); a longer --timeout is refused by the command line
MAX_SECONDS = 365 * 24 * 3600.0


class ClaimTimeout(BaseException):
    """The wall-clock guard ran out (a BaseException, so library code cannot swallow it)."""


@contextlib.contextmanager
def wall_clock(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ClaimTimeout` inside the block once ``seconds`` have passed.

    Uses SIGALRM, so it only acts in the main thread (elsewhere it does nothing).

    >>> with wall_clock(5.0):
    ...     pass
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    # setitimer overflows past about 2**31 s; no command waits that long
    seconds = min(float(seconds), MAX_SECONDS)
    rang = []

    def _ring(signum, frame):
        rang.append(True)
        raise ClaimTimeout()

    # an outer clock already running: this one ends no later than it, and it is set
    # going again afterwards with the time it has left
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    seconds = min(seconds, outer_left) if outer_left > 0 else seconds
    previous = signal.signal(signal.SIGALRM, _ring)
    # rings again every 0.25 s: a ring that lands where Python ignores exceptions (a
    # destructor inside z3, say) must not silently lose the timeout
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.25)
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        # a ring that lands inside a library call can come out wrapped (ctypes turns it
        # into an ArgumentError while converting a z3 argument): after the clock has run
        # out, whatever went wrong is the timeout
        if rang:
            raise ClaimTimeout() from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:
            # the outer clock rings at once when its time ran out while this one ran
            left = max(outer_left - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, 0.25)
    # the block finished although the time ran out: every ring was swallowed where
    # Python ignores exceptions, and the answer must still be the same as for a ring
    # that landed, so the outcome does not depend on where the clock happened to strike
    if rang:
        raise ClaimTimeout()


def seconds_left() -> float | None:
    """The seconds before the running wall clock rings, or None when none runs.

    Code that waits in C without returning to Python (a z3 check) is told this, so that it
    gives up in time for the ring to be heard.

    >>> seconds_left() is None
    True
    >>> with wall_clock(30.0):
    ...     0 < seconds_left() <= 30.0
    True
    """
    if not hasattr(signal, "getitimer"):
        return None
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    return left if left > 0 else None
