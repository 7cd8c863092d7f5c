"""NumPy code (the README's ``symderive.codegen``): modules and tests from proved claims.

The lowering lives in :mod:`symderive.emit`; this façade keeps the documented path and
proves claims through :func:`symderive.prove.prove` (looked up at each call).

>>> "def grad_x" in emit_numpy("linear")
True
"""

from __future__ import annotations

from collections.abc import Mapping

from . import prove as prove_api
from .decide.verdict import Verdict
from .emit import codegen as emitter
from .emit.codegen import ClaimNotProved, CodegenRefusal, NotVectorisable, known_claims

__all__ = [
    "ClaimNotProved",
    "CodegenRefusal",
    "NotVectorisable",
    "emit_numpy",
    "emit_tests",
    "known_claims",
]


def _prover(memo=None):
    """:func:`symderive.prove.prove` as it is at the call (tests replace it), sharing ``memo``."""

    def prove(*args, **kwargs) -> Verdict:
        if memo is not None:
            kwargs["memo"] = memo
        return prove_api.prove(*args, **kwargs)

    return prove


def emit_numpy(
    layer,
    claims: Mapping[str, str] | None = None,
    check: bool = True,
    verdicts: Mapping[str, Verdict] | None = None,
    memo=None,
) -> str:
    """The source of a standalone NumPy module for a layer's forward pass and gradients.

    See :func:`symderive.emit.codegen.emit_numpy`; ``memo`` (a :class:`symderive.prove.Memo`)
    shares proofs with the caller's other calls about this layer object.

    >>> "def grad_w" in emit_numpy("linear", claims={"w": "outer(g, x)"})
    True
    """
    return emitter.emit_numpy(layer, claims, check=check, verdicts=verdicts, prove=_prover(memo))


def emit_tests(
    layer, module_name: str, claims: Mapping[str, str] | None = None, sizes_count: int = 3, memo=None
) -> str:
    """Pytest tests for an emitted module (see :func:`symderive.emit.codegen.emit_tests`).

    >>> "def test_grad_x" in emit_tests("linear", "linear_grads")
    True
    """
    return emitter.emit_tests(layer, module_name, claims, sizes_count=sizes_count, prove=_prover(memo))


def __getattr__(name: str):
    # the emitter's functions, reachable under the documented module as before
    return getattr(emitter, name)
