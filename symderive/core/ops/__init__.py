"""The operator table.

Each operator is registered once, with the four rules everything else reads:

* ``definition(*args, **options) -> Tensor`` -- its index-level SymPy definition over
  symbolic sizes (reads outside a shape are zero), built on ``shape_rule``;
* ``shape_rule(*shapes, **options) -> (shape, valid)`` -- the symbolic result shape and
  the condition on the sizes under which the library accepts the call;
* ``to_numpy(*codes, **options) -> str`` -- a NumPy expression computing it, given the
  argument expressions as code (helpers it calls are listed in ``numpy_helpers`` and
  their sources registered with :func:`numpy_helper`);
* ``to_latex(*latex, **options) -> str`` -- its notation.

Arguments are described by :class:`Param` in the library's own order and names, so a
claim may pass them positionally or by keyword exactly as in NumPy, SciPy or PyTorch.
Modules ``signal``, ``linalg``, ``reduce``, ``elementwise``, ``special``, ``nn`` and ``activation`` fill
the table when this package is imported.
"""

from __future__ import annotations

from . import activation, elementwise, linalg, losses, nn, reduce, signal, special  # noqa: F401  (fill the table)
from .table import (
    CONSTANTS,
    FAMILY_PREFIXES,
    NUMPY_HELPERS,
    OPERATORS,
    PARAM_KINDS,
    REFUSED_SPELLINGS,
    Operator,
    Param,
    all_valid,
    lookup,
    numpy_helper,
    refuse,
    register,
    row_name,
)

__all__ = [
    "CONSTANTS",
    "FAMILY_PREFIXES",
    "NUMPY_HELPERS",
    "OPERATORS",
    "PARAM_KINDS",
    "REFUSED_SPELLINGS",
    "Operator",
    "Param",
    "all_valid",
    "lookup",
    "numpy_helper",
    "refuse",
    "register",
    "row_name",
]
