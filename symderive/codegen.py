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
    "emit_module_and_tests",
    "emit_numpy",
    "emit_tests",
    "known_claims",
]


def _prove(*args, **kwargs) -> Verdict:
    return prove_api.prove(*args, **kwargs)


def emit_numpy(
    layer, claims: Mapping[str, str] | None = None, check: bool = True, verdicts: Mapping[str, Verdict] | None = None
) -> str:
    """The source of a standalone NumPy module for a layer's forward pass and gradients.

    See :func:`symderive.emit.codegen.emit_numpy`.

    >>> "def grad_w" in emit_numpy("linear", claims={"w": "outer(g, x)"})
    True
    """
    return emitter.emit_numpy(layer, claims, check=check, verdicts=verdicts, prove=_prove)


def emit_tests(layer, module_name: str, claims: Mapping[str, str] | None = None, sizes_count: int = 3) -> str:
    """Pytest tests for an emitted module (see :func:`symderive.emit.codegen.emit_tests`).

    >>> "def test_grad_x" in emit_tests("linear", "linear_grads")
    True
    """
    return emitter.emit_tests(layer, module_name, claims, sizes_count=sizes_count, prove=_prove)


def emit_module_and_tests(
    layer, module_name: str, claims: Mapping[str, str] | None = None, verdicts: Mapping[str, Verdict] | None = None
) -> tuple[str, str]:
    """(module, its tests), each claim proved once (see :func:`emit_numpy`, :func:`emit_tests`).

    >>> src, tests = emit_module_and_tests("linear", "linear_grads")
    >>> "def grad_b" in src and "def test_grad_b" in tests
    True
    """
    return emitter.emit_module_and_tests(layer, module_name, claims, verdicts=verdicts, prove=_prove)


def __getattr__(name: str):
    # the emitter's functions, reachable under the documented module as before
    return getattr(emitter, name)
