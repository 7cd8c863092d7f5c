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

__all__ = [
    "assert_gradient",
    "assert_implementation",
    "claim_heading",
    "format_array",
    "render_counterexample",
    "render_verdict",
]


def assert_gradient(layer, wrt: str, claim: str, assume: Sequence[str] = (), timeout: float = 60.0) -> Verdict:
    """Assert that ``claim`` is the gradient of ``layer``'s loss w.r.t. ``wrt`` for all sizes.

    Returns the (proved) verdict; raises ``AssertionError`` with the counterexample (and
    the nearest true variant, when the search finds one within a few seconds) on
    ``refuted`` and with the reason on ``unknown``, and :class:`~symderive.errors.InputError`
    on a bad claim, layer or assumption. pytest shows neither with a traceback into symderive.

    >>> assert_gradient("linear", "x", "w.T @ g").verdict
    'proved'
    """
    # a failure is the user's test failing: pytest shows the test's line, not this one
    __tracebackhide__ = True
    from .errors import InputError
    from .prove import prove

    if callable(claim):
        raise TypeError(
            "assert_gradient takes a claim (a string such as 'w.T @ g'), not a function: to test a backward "
            "implementation use symderive.testing.assert_implementation(layer, wrt, fn)"
        )
    try:
        verdict = prove(layer, wrt, claim, assume=tuple(assume), timeout=timeout)
    except InputError as exc:
        # the user's mistake (a bad claim, layer or assumption): its one-line message,
        # without the frames of symderive's parser that found it
        raise exc.with_traceback(None) from None
    if verdict.verdict != PROVED:
        raise AssertionError(_failure_message(layer, verdict, timeout))
    return verdict


def _failure_message(layer, verdict: Verdict, timeout: float) -> str:
    """The rendered verdict, and for a refuted claim its nearest true variant when the search
    finds one quickly (what the claim gets wrong, in one line)."""
    from .search.variants import VARIANT_SECONDS, with_variants

    verdict = with_variants(verdict, layer, timeout=min(timeout, VARIANT_SECONDS))
    text = render_verdict(verdict)
    if verdict.variants and verdict.variants[0].explanation not in text:
        text += f"\nnearest true variant: {verdict.variants[0].explanation}"
    return text


def assert_implementation(layer, wrt: str, fn, **options):
    """Assert that the backward implementation ``fn`` (a callable or ``"FILE.py:FUNCTION"``) agrees with the gradient.

    ``check`` inside a test: the same sweep of sizes, the same rules and the same message
    (the status, the smallest failing sizes, the inputs, expected and returned arrays).
    ``options`` are :func:`symderive.checking.check_implementation`'s (``rtol``, ``atol``,
    ``seed``, ``timeout``, ``memory_mb``). Returns the report.

    >>> import numpy as np
    >>> assert_implementation("linear", "b", lambda g: np.array(g)).status
    'ok'
    """
    __tracebackhide__ = True
    from .checking import check_implementation
    from .errors import InputError

    try:
        report = check_implementation(layer, wrt, fn, **options)
    except InputError as exc:
        raise exc.with_traceback(None) from None
    if not report.ok:
        # as `symderive check` prints it: the implementation, DIFFERS, then the details indented
        details = "\n".join("  " + line for line in report.details().splitlines())
        raise AssertionError(f"{report.impl}: DIFFERS\n{details}")
    return report
