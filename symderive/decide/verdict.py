"""Verdicts: proved, refuted (with a counterexample) or unknown (with the reason)."""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field

PROVED, REFUTED, UNKNOWN, ERROR = "proved", "refuted", "unknown", "error"


@dataclass(frozen=True)
class Counterexample:
    """Concrete sizes (and values) at which a claim differs from the true gradient.

    Either a value mismatch (``values``, ``index``, ``expected``, ``claimed``) or a
    shape mismatch (``expected_shape``, ``claimed_shape``; ``claimed_shape`` is None
    when the claim is not defined at these sizes, with ``message`` saying why).
    ``values`` maps every input and ``g`` to nested lists; numbers are ints, floats or
    SymPy-printed strings as LANGUAGE.md's JSON wants them.

    >>> Counterexample(sizes={"n": 1}, expected_shape=(1,), claimed_shape=(2,)).is_shape_mismatch
    True
    """

    sizes: dict
    values: dict | None = None
    index: tuple | None = None
    expected: object = None
    claimed: object = None
    expected_shape: tuple | None = None
    claimed_shape: tuple | None = None
    expected_array: object = None
    claimed_array: object = None
    message: str = ""

    @property
    def is_shape_mismatch(self) -> bool:
        return self.expected_shape is not None

    def to_json(self) -> dict:
        """The JSON object of LANGUAGE.md."""
        out: dict = {"sizes": dict(self.sizes)}
        if self.is_shape_mismatch:
            out["expected_shape"] = list(self.expected_shape)
            out["claimed_shape"] = None if self.claimed_shape is None else list(self.claimed_shape)
            if self.message:
                out["message"] = self.message
            return out
        out["values"] = self.values
        out["index"] = list(self.index) if self.index is not None else []
        out["expected"] = self.expected
        out["claimed"] = self.claimed
        return out


@dataclass(frozen=True)
class Verdict:
    """The answer about one claim.

    >>> Verdict("proved", layer="linear", wrt="x", claim="w.T @ g").verdict
    'proved'
    """

    verdict: str
    layer: str = ""
    wrt: str = ""
    claim: str = ""
    assumptions: tuple[str, ...] = ()
    counterexample: Counterexample | None = None
    reason: str = ""
    #: what was proved, in words (for proved), or how a refutation was found
    detail: str = ""
    #: extra structured facts for reports (e.g. the claim's closed form LaTeX)
    extras: dict = field(default_factory=dict, compare=False)

    @property
    def proved(self) -> bool:
        return self.verdict == PROVED

    def to_json(self) -> dict:
        """The JSON object of LANGUAGE.md for ``--json``."""
        out = {"layer": self.layer, "wrt": self.wrt, "claim": self.claim, "verdict": self.verdict}
        if self.verdict == PROVED:
            out["assumptions"] = list(self.assumptions)
        elif self.verdict == REFUTED and self.counterexample is not None:
            out["counterexample"] = self.counterexample.to_json()
        elif self.verdict == UNKNOWN:
            out["reason"] = self.reason
        elif self.verdict == ERROR:
            out["error"] = self.reason
        return out

    def _repr_markdown_(self) -> str:
        """Jupyter: the same content as a report, in short (Markdown with $$ math)."""
        from ..render.report import verdict_markdown

        return verdict_markdown(self)


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
