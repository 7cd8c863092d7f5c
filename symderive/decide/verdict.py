"""Verdicts: proved, refuted (with a counterexample) or unknown (with the reason)."""

from __future__ import annotations

from dataclasses import dataclass

from ..display import Displayed

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
    #: the concrete function each abstract function of the layer stood for ({"f": "u**2 + 3*u"})
    functions: dict | None = None

    @property
    def is_shape_mismatch(self) -> bool:
        return self.expected_shape is not None

    def to_json(self) -> dict:
        """The JSON object of LANGUAGE.md."""
        out: dict = {"sizes": dict(self.sizes)}
        if self.functions:
            out["functions"] = dict(self.functions)
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
class Verdict(Displayed):
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
    #: the nearest true variants of a refuted claim, nearest first, when they were looked for
    #: (``prove --why``, ``assert_gradient``; :func:`symderive.search.with_variants`): plain data,
    #: each with ``claim`` (the variant's text), ``explanation`` ("holds with `...`: why", one line)
    #: and ``assume`` (assumptions it needs); empty otherwise
    variants: tuple = ()

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
