"""Text of verdicts, counterexamples, arrays and values: the one place that writes them.

The command line (:func:`format_verdict`), :func:`symderive.testing.assert_gradient` and the
pytest plugin (:func:`render_verdict`), :func:`symderive.check_implementation`
(:func:`format_array`) and the report (:func:`long_value`) all print through here, so an
array of any rank reads as numbers the same way everywhere.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re

from ..decide.verdict import ERROR, PROVED, REFUTED, UNKNOWN, Counterexample, Verdict

#: characters of SymPy's printing of a value beyond which a report shows the value's digits instead
LONG_NUMBER = 24

#: what SymPy's printing of a counterexample's value may call, and the float functions that compute them
_VALUE_FUNCTIONS = {
    name: getattr(math, name) for name in ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "atan")
}
_VALUE_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def printed_value(text: str) -> float | None:
    """The float value of SymPy's printing of a real number (as counterexamples hold them), read
    from its syntax tree (never evaluated as code); None for anything else.

    >>> round(printed_value("-tanh(1/2)**2/2 + 1"), 6), printed_value("x + 1"), printed_value("f()")
    (0.893224, None, None)
    """
    try:
        return float(_value_of(ast.parse(text, mode="eval").body))
    except (SyntaxError, ValueError, ArithmeticError, TypeError, RecursionError):
        return None


def _value_of(node) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("E", "pi"):
        return math.e if node.id == "E" else math.pi
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value_of(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _VALUE_OPERATORS:
        left, right = _value_of(node.left), _value_of(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            # integers stay exact (10**21 must not overflow a float early) but a huge power is a float's job
            left, right = float(left), float(right)
        return _VALUE_OPERATORS[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _VALUE_FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        return _VALUE_FUNCTIONS[node.func.id](_value_of(node.args[0]))
    raise ValueError("not a number")


def long_value(value) -> float | None:
    """The float value of SymPy's printing of a real number too long to read, else None.

    >>> long_value("1/3"), round(long_value("exp(1)/(1 + exp(1)) + 1/10**30"), 6)
    (None, 0.731059)
    """
    return printed_value(value) if isinstance(value, str) and len(value) > LONG_NUMBER else None


def readable_values(*values, start: int = 6) -> list[str]:
    """Counterexample values as a person reads them: each as printed, except SymPy's long printing
    of a real number, shown as ``≈`` and as many significant digits (from ``start``) as keep
    values that differ from printing alike.

    >>> readable_values("-tanh(1/2)**2/2 + 1 + 1/10**30", 1)
    ['≈0.893224', '1']
    """
    floats = [long_value(v) for v in values]
    for digits in range(start, 18):
        shown = [str(v) if f is None else f"\u2248{f:.{digits}g}" for v, f in zip(values, floats, strict=True)]
        if len(set(shown)) == len(set(map(str, values))) or digits == 17:
            return shown
    return shown


# -- verdicts and arrays ----------------------------------------------------------------
def claim_heading(wrt: str, claim: str) -> str:
    """A claim as an equation: ``dx = CLAIM`` for a closed form, the index form as written.

    >>> claim_heading("x", "w.T @ g"), claim_heading("x", "dx[p] == Sum(w[i, p] * g[i], i)")
    ('dx = w.T @ g', 'dx[p] == Sum(w[i, p] * g[i], i)')
    >>> claim_heading("", "flip(flip(x)) == x")
    'flip(flip(x)) == x'
    """
    if not wrt:  # an identity: it is its own equation
        return claim.strip()
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
        lines.extend(named_array(f"  {name} = ", value) for name, value in cx.values.items())
    if cx.functions:
        lines.append("with " + ", ".join(f"{name}(u) = {text}" for name, text in cx.functions.items()))
    at = f"d{wrt}[{', '.join(map(str, cx.index))}]" if cx.index else f"d{wrt}"
    if not wrt:  # an identity: its left side is "expected", its right side "claimed"
        at = f"[{', '.join(map(str, cx.index))}]" if cx.index else "the value"
    lines.append(f"at {at}: expected {cx.expected}, claimed {cx.claimed}")
    if cx.expected_array is not None and cx.claimed_array is not None:
        # one width for both arrays, so the differing element lines up
        width = max(_width(cx.expected_array), _width(cx.claimed_array))
        lines.append(named_array(f"expected d{wrt} = ", cx.expected_array, width))
        lines.append(named_array(f"claimed  d{wrt} = ", cx.claimed_array, width))
    if cx.message:
        lines.append(cx.message)
    return "\n".join(lines)


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def named_array(prefix: str, value, width: int | None = None) -> str:
    """``prefix`` then the array, continuation lines indented under its first bracket.

    >>> print(named_array("x = ", [[1, 2], [3, 4]]))
    x = [[1, 2],
         [3, 4]]
    """
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


# -- the command line's verdicts ---------------------------------------------------------
def _shown(value) -> str:
    """A verdict's layer, wrt or claim as text: a string as itself, a bad entry's other JSON value as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def format_verdict(verdict: Verdict) -> str:
    """A verdict for people: the claim, the verdict, and the counterexample or the reason."""
    identity = verdict.wrt == ""
    about = "" if identity else f", d/d{_shown(verdict.wrt)}"
    head = f"{_shown(verdict.layer)}{about}: {_shown(verdict.claim)}"
    if verdict.verdict == PROVED:
        assumed = f" (assuming {', '.join(verdict.assumptions)})" if verdict.assumptions else ""
        return f"{head}\n  proved{assumed}"
    if verdict.verdict == UNKNOWN:
        return f"{head}\n  unknown: {verdict.reason}"
    if verdict.verdict == ERROR:
        return f"{head}\n  error: {verdict.reason}"
    lines = [head, "  refuted"]
    ce = verdict.counterexample
    if ce is None:
        lines.append(f"  {verdict.reason}" if verdict.reason else "")
        return "\n".join(line for line in lines if line)
    sizes = ", ".join(f"{k}={v}" for k, v in ce.sizes.items())
    lines.append(f"  at sizes {sizes}" if sizes else "  at the layer's sizes")
    if ce.is_shape_mismatch:
        expected = tuple(ce.expected_shape)
        if ce.claimed_shape is None:
            # the search's own words say why where they say more than "not defined"
            why = ce.message or ""
            why = why.split(": ", 1)[1] if why.startswith("the claim is not defined here: ") else ""
            left, right = ("the left side", "the right side") if identity else ("the gradient", "the claim")
            lines.append(f"  {left} has shape {expected}; {right} is not defined at these sizes")
            if why:
                lines.append(f"  ({why})")
        else:
            left, right = ("the left side", "the right side") if identity else ("the gradient", "the claim")
            lines.append(f"  {left} has shape {expected}; {right} has shape {tuple(ce.claimed_shape)}")
        return "\n".join(lines)
    for name, value in (ce.values or {}).items():
        prefix = f"    {name} = "
        lines.append(named_array(prefix, value))
    # the concrete function an abstract one (functions = ["f"]) stood for
    lines.extend(f"    {name}(u) = {text}" for name, text in (ce.functions or {}).items())
    index = ", ".join(str(i) for i in (ce.index or ()))
    # SymPy's long exact printing (tanh of a 21-digit fraction) as its digits; --json keeps it exact
    expected, claimed = readable_values(ce.expected, ce.claimed)
    if identity:
        lines.append(
            f"  at [{index}]: left {expected}, right {claimed}" if index else f"  left {expected}, right {claimed}"
        )
        names = ("    left:  ", "    right: ")
    else:
        element = f"d{verdict.wrt}[{index}]" if index else f"d{verdict.wrt}"
        lines.append(f"  at {element}: expected {expected}, claimed {claimed}")
        names = ("    gradient: ", "    claim:    ")
    if ce.expected_array is not None and ce.claimed_array is not None and isinstance(ce.expected_array, list):
        lines.append(named_array(names[0], _readable_array(ce.expected_array)))
        lines.append(named_array(names[1], _readable_array(ce.claimed_array)))
    if ce.message and identity:
        lines.append(f"  ({ce.message})")
    return "\n".join(lines)


def _readable_array(value):
    if isinstance(value, list):
        return [_readable_array(v) for v in value]
    return readable_values(value)[0]
