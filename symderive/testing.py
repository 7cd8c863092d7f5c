"""Gradient claims as tests: :func:`assert_gradient` and the readable rendering of a verdict.

``assert_gradient`` passes when the claim is proved and raises :class:`AssertionError`
otherwise, with the counterexample (sizes, inputs as small matrices, the differing index,
expected against claimed) or the reason the verdict is unknown. The pytest plugin
(:mod:`symderive.pytest_plugin`) renders its failures with the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from .decide.verdict import PROVED, Verdict
from .render.text import claim_heading, format_array, render_counterexample, render_verdict

__all__ = ["assert_gradient", "claim_heading", "format_array", "render_counterexample", "render_verdict"]


def assert_gradient(layer, wrt: str, claim: str, assume: Sequence[str] = (), timeout: float = 60.0) -> Verdict:
    """Assert that ``claim`` is the gradient of ``layer``'s loss w.r.t. ``wrt`` for all sizes.

    Returns the (proved) verdict; raises ``AssertionError`` with the counterexample on
    ``refuted`` and with the reason on ``unknown``, and :class:`~symderive.errors.InputError`
    on a bad claim, layer or assumption. pytest shows neither with a traceback into symderive.

    >>> assert_gradient("linear", "x", "w.T @ g").verdict
    'proved'
    """
    # a failure is the user's test failing: pytest shows the test's line, not this one
    __tracebackhide__ = True
    from .errors import InputError
    from .prove import prove

    try:
        verdict = prove(layer, wrt, claim, assume=tuple(assume), timeout=timeout)
    except InputError as exc:
        # the user's mistake (a bad claim, layer or assumption): its one-line message,
        # without the frames of symderive's parser that found it
        raise exc.with_traceback(None) from None
    if verdict.verdict != PROVED:
        raise AssertionError(render_verdict(verdict))
    return verdict
