"""Gradient claims as tests: :func:`assert_gradient` and the readable rendering of a verdict.

``assert_gradient`` passes when the claim is proved and raises :class:`AssertionError`
otherwise, with the counterexample (sizes, inputs as small matrices, the differing index,
expected against claimed) or the reason the verdict is unknown. The pytest plugin
(:mod:`symderive.pytest_plugin`) renders its failures with the same functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .verdict import PROVED, REFUTED, Counterexample, Verdict

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
        raise AssertionError(render_verdict(verdict))
    return verdict


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


# -- rendering ------------------------------------------------------------------------------------
def claim_heading(wrt: str, claim: str) -> str:
    """A claim as an equation: ``dx = CLAIM`` for a closed form, the index form as written.

    >>> claim_heading("x", "w.T @ g"), claim_heading("x", "dx[p] == Sum(w[i, p] * g[i], i)")
    ('dx = w.T @ g', 'dx[p] == Sum(w[i, p] * g[i], i)')
    """
    if re.match(rf"\s*d{re.escape(wrt)}\s*(\[|==?)", claim):
        return claim.strip()
    return f"d{wrt} = {claim}"


def render_verdict(verdict: Verdict) -> str:
    """A verdict as a few readable lines: the claim, then the counterexample or the reason.

    >>> print(render_verdict(Verdict("unknown", layer="l", wrt="x", claim="g", reason="too hard")))
    dx = g  (layer l): unknown
    reason: too hard
    """
    head = f"{claim_heading(verdict.wrt, verdict.claim)}  (layer {verdict.layer}): {verdict.verdict}"
    lines = [head]
    if verdict.assumptions and verdict.verdict != PROVED:
        lines.append(f"assuming: {', '.join(verdict.assumptions)}")
    if verdict.verdict == REFUTED and verdict.counterexample is not None:
        lines.append(render_counterexample(verdict.counterexample, verdict.wrt))
    elif verdict.reason:
        lines.append(f"reason: {verdict.reason}")
    return "\n".join(lines)


def render_counterexample(cx: Counterexample, wrt: str = "x") -> str:
    """A counterexample as text: sizes, inputs as matrices, the differing element.

    >>> cx = Counterexample(sizes={"n": 2}, values={"x": [1, 0], "g": [2, -1]}, index=(1,),
    ...                     expected=-1, claimed=0, expected_array=[2, -1], claimed_array=[2, 0])
    >>> print(render_counterexample(cx))
    counterexample at sizes n=2
    inputs:
      x = [1, 0]
      g = [ 2, -1]
    at dx[1]: expected -1, claimed 0
    expected dx = [ 2, -1]
    claimed  dx = [ 2,  0]
    """
    sizes = ", ".join(f"{k}={v}" for k, v in cx.sizes.items()) or "(no sizes)"
    lines = [f"counterexample at sizes {sizes}"]
    if cx.is_shape_mismatch:
        claimed = "undefined" if cx.claimed_shape is None else _shape(cx.claimed_shape)
        lines.append(f"the gradient has shape {_shape(cx.expected_shape)}, the claim {claimed}")
        if cx.message:
            lines.append(cx.message)
        return "\n".join(lines)
    if cx.values:
        lines.append("inputs:")
        lines.extend(_named_array(f"  {name} = ", value) for name, value in cx.values.items())
    at = f"d{wrt}[{', '.join(map(str, cx.index))}]" if cx.index else f"d{wrt}"
    lines.append(f"at {at}: expected {cx.expected}, claimed {cx.claimed}")
    if cx.expected_array is not None and cx.claimed_array is not None:
        # one width for both arrays, so the differing element lines up
        width = max(_width(cx.expected_array), _width(cx.claimed_array))
        lines.append(_named_array(f"expected d{wrt} = ", cx.expected_array, width))
        lines.append(_named_array(f"claimed  d{wrt} = ", cx.claimed_array, width))
    if cx.message:
        lines.append(cx.message)
    return "\n".join(lines)


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _named_array(prefix: str, value, width: int | None = None) -> str:
    """``prefix`` then the array, continuation lines indented under its first bracket."""
    text = format_array(value, width)
    pad = " " * len(prefix)
    return prefix + text.replace("\n", "\n" + pad)


def _width(value) -> int:
    if isinstance(value, list | tuple):
        return max((_width(v) for v in value), default=0)
    return len(str(value))


def format_array(value, width: int | None = None) -> str:
    """Nested lists as a NumPy-like matrix, elements right-aligned to one width.

    >>> print(format_array([[1, -2], [30, 4]]))
    [[ 1, -2],
     [30,  4]]
    >>> format_array(5), format_array([])
    ('5', '[]')
    """
    if not isinstance(value, list | tuple):
        return str(value)
    width = _width(value) if width is None else width
    return _format_nested(value, width, 0)


def _format_nested(value, width: int, depth: int) -> str:
    if not value:
        return "[]"
    if not isinstance(value[0], list | tuple):
        return "[" + ", ".join(str(v).rjust(width) for v in value) + "]"
    inner = [_format_nested(v, width, depth + 1) for v in value]
    # rows of a matrix on their own lines; deeper blocks separated by a blank line
    sep = ",\n" + ("\n" if isinstance(value[0][0], list | tuple) else "") + " " * (depth + 1)
    return "[" + sep.join(inner) + "]"
