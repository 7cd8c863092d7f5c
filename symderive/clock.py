"""The wall-clock guard of a command: a claim that runs out of time is ``unknown``.

SIGALRM-based, so it acts in the main thread only; one clock at a time (an inner clock
stops an outer one).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from .errors import InputError


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

    rang = []

    def _ring(signum, frame):
        rang.append(True)
        raise ClaimTimeout()

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
    # the block finished although the time ran out: every ring was swallowed where
    # Python ignores exceptions, and the answer must still be the same as for a ring
    # that landed, so the outcome does not depend on where the clock happened to strike
    if rang:
        raise ClaimTimeout()
