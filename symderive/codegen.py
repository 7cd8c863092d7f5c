"""NumPy code (the README's ``symderive.codegen``): modules and tests from proved claims.

The lowering lives in :mod:`symderive.emit`; this façade keeps the documented path.

>>> "def grad_x" in emit_numpy("linear")
True
"""

from __future__ import annotations

from .emit.codegen import (
    ClaimNotProved,
    CodegenRefusal,
    NotVectorisable,
    emit_numpy,
    emit_tests,
    known_claims,
)

__all__ = ["ClaimNotProved", "CodegenRefusal", "NotVectorisable", "emit_numpy", "emit_tests", "known_claims"]
