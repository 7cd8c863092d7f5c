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
Modules ``signal``, ``linalg``, ``reduce``, ``elementwise``, ``special`` and ``nn`` fill
the table when this package is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from ..ir import Shape, Tensor

#: which user-visible prefixes a family accepts (``np.exp``, ``F.conv2d`` ...)
FAMILY_PREFIXES: dict[str, tuple[str, ...]] = {
    "numpy": ("np", "numpy"),
    "scipy.signal": ("scipy.signal",),
    "scipy.special": ("scipy.special",),
    "torch": ("F", "torch.nn.functional"),
    "sympy": (),
    "operator": (),
}

PARAM_KINDS = ("tensor", "tensors", "int", "ints", "axis", "str", "bool", "number", "spec")


@dataclass(frozen=True)
class Param:
    """One argument of an operator, as the library names it.

    ``kind`` is one of ``PARAM_KINDS``: ``tensor`` (an array, or a number made 0-d),
    ``tensors`` (the rest of the positional arguments, as in ``einsum``), ``int``
    (an integer expression over sizes), ``ints`` (an int or a tuple of them, expanded
    to ``n`` entries by the operator), ``axis`` (None, an int or a tuple of ints),
    ``str`` (one of ``choices``), ``bool``, ``number`` (a real constant), ``spec``
    (an einsum subscript string).

    >>> Param("mode", "str", default="full", choices=("full", "valid", "same")).name
    'mode'
    """

    name: str
    kind: str
    default: object = None
    required: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}")


@dataclass(frozen=True)
class Operator:
    """An operator with its four rules (see the module docstring).

    >>> OPERATORS["exp"].family
    'numpy'
    """

    name: str
    family: str
    params: tuple[Param, ...]
    definition: Callable[..., Tensor] = field(repr=False)
    shape_rule: Callable[..., tuple[Shape, sp.Boolean]] = field(repr=False)
    to_numpy: Callable[..., str] = field(repr=False)
    to_latex: Callable[..., str] = field(repr=False)
    numpy_helpers: tuple[str, ...] = ()
    #: algebraic structure the prover may rely on: "elementwise", "linear", "bilinear"
    algebra: str = ""
    #: False for operators reached only through Python syntax (``+``, ``@``, ``x[i]``)
    by_name: bool = True
    #: prefixed spellings refused because the library's meaning differs (np.convolve)
    doc: str = ""


#: the one registry: name -> Operator
OPERATORS: dict[str, Operator] = {}
#: helper function name -> its source, for emitted NumPy modules
NUMPY_HELPERS: dict[str, str] = {}
#: "prefix.name" spellings that name a different library's function, with the reason
REFUSED_SPELLINGS: dict[str, str] = {}


def register(op: Operator) -> Operator:
    """Add an operator to the table (once).

    >>> "exp" in OPERATORS
    True
    """
    if op.name in OPERATORS:
        raise ValueError(f"operator {op.name!r} registered twice")
    OPERATORS[op.name] = op
    return op


def numpy_helper(name: str, source: str) -> str:
    """Register the source of a helper function that NumPy lowerings may call.

    >>> numpy_helper("_identity_example", "def _identity_example(a):\\n    return a\\n")
    '_identity_example'
    """
    NUMPY_HELPERS[name] = source
    return name


def refuse(spelling: str, reason: str) -> None:
    """Refuse a prefixed spelling by name (``np.convolve`` is not scipy's convolve).

    >>> refuse("np.example_refused", "not ours"); REFUSED_SPELLINGS["np.example_refused"]
    'not ours'
    """
    REFUSED_SPELLINGS[spelling] = reason


def lookup(name: str) -> Operator:
    """The operator a user's function name means, or KeyError.

    >>> lookup("exp").name
    'exp'
    """
    return OPERATORS[name]


def all_valid(*conds) -> sp.Boolean:
    """The conjunction of validity conditions.

    >>> all_valid(sp.true, sp.true)
    True
    """
    return sp.And(*conds)


from . import elementwise, linalg, nn, reduce, signal, special  # noqa: E402,F401  (fills the table)
