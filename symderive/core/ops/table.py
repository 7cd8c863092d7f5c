"""The operator table: :class:`Operator`, :class:`Param` and the registries the rule modules fill.

See :mod:`symderive.core.ops` for the four rules every operator carries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
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


@dataclass(frozen=True, kw_only=True)
class Operator:
    """An operator with its four rules (see the module docstring), and the facts about it that
    the lowerings and the report read (which ops are ufuncs, count booleans as 0/1, convolve).

    >>> OPERATORS["exp"].family, OPERATORS["exp"].ufunc, OPERATORS["conv2d"].spatial_axes
    ('numpy', True, 2)
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
    #: its NumPy lowering is the ufunc ``np.<name>`` of its array operands (so ``out=`` may be given)
    ufunc: bool = False
    #: it compares: NumPy gives booleans where the claim language has 0/1 numbers
    comparison: bool = False
    #: NumPy computes it with a boolean operand exactly as with 0/1 (``True + True`` is True: not add)
    booleans_as_numbers: bool = False
    #: its NumPy lowering returns a new floating array of its argument's shape (emitted code may overwrite it)
    fresh_array: bool = False
    #: a convolution: the parameter that holds its kernel ("" for any other operator)
    kernel: str = ""
    #: a batched (torch) convolution: how many spatial axes follow its batch and channel axes
    spatial_axes: int = 0
    #: what it computes, for ``symderive functions`` ("" says: the library function of that name)
    meaning: str = ""
    #: a call a claim may contain ("" says: the function of its first parameter, ``exp(x)``)
    example: str = ""

    def signature(self) -> str:
        """The call with its parameters and their defaults, as the library spells it.

        >>> OPERATORS["sum"].signature()
        'sum(a, axis=None, dtype=None, out=None, keepdims=False)'
        """
        parts = [p.name if p.required else f"{p.name}={_default_text(p.default)}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"

    def library_meaning(self) -> str:
        """What the function computes: its ``meaning``, or the library function it is.

        >>> OPERATORS["exp"].library_meaning()
        'numpy.exp'
        """
        library = {"torch": "torch.nn.functional"}.get(self.family, self.family)
        return self.meaning or f"{library}.{self.name.rpartition('.')[2]}"

    def example_call(self) -> str:
        """A call a claim may contain: its ``example``, or the call with its required arguments.

        >>> OPERATORS["exp"].example_call(), OPERATORS["conv2d"].example_call()
        ('exp(x)', 'conv2d(input, weight)')
        """
        if self.example:
            return self.example
        args = [_EXAMPLE_ARGS.get(p.kind, p.name) for p in self.params if p.required or p.kind == "tensors"]
        return f"{self.name}({', '.join(args)})"


_EXAMPLE_ARGS = {"tensors": "a, b", "spec": "'ij,jk->ik'"}


def _default_text(value) -> str:
    # the default as a claim writes it: 'full', 1, (1, 1), None, 1/100 as 0.01
    if isinstance(value, sp.Rational) and not value.is_Integer:
        return repr(float(value))
    return repr(value) if isinstance(value, str) else str(value)


#: named constants a claim may use (``pi``, ``e``; ``np.pi``, ``np.e``), with NumPy's meaning
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E}

#: the one registry: name -> Operator
OPERATORS: dict[str, Operator] = {}


class HelperSources(Mapping):
    """Helper function name -> its source, read from the function when first asked for.

    Reading a function's source (``inspect.getsource``) takes a tokenizer pass over its
    module: done for every helper at import, it slowed every command's start, though only
    code generation reads them.

    >>> def _twice(a):
    ...     return 2 * a
    >>> sources = HelperSources()
    >>> sources.add("_twice", _twice); sources["_twice"].splitlines()[0]
    'def _twice(a):'
    """

    def __init__(self):
        self._found: dict = {}

    def add(self, name: str, source) -> None:
        """Register ``source`` (text, or the function whose source it is) under ``name``."""
        self._found[name] = source

    def __getitem__(self, name: str) -> str:
        source = self._found[name]
        if not isinstance(source, str):
            source = self._found[name] = inspect.getsource(source)
        return source

    def __iter__(self):
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


#: helper function name -> its source, for emitted NumPy modules
NUMPY_HELPERS = HelperSources()
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


def numpy_helper(name: str, source) -> str:
    """Register the source of a helper function that NumPy lowerings may call (its text, or the
    function itself: its source is read when first asked for).

    >>> numpy_helper("_identity_example", "def _identity_example(a):\\n    return a\\n")
    '_identity_example'
    """
    NUMPY_HELPERS.add(name, source)
    return name


def refuse(spelling: str, reason: str) -> None:
    """Refuse a prefixed spelling by name (``np.convolve`` is not scipy's convolve).

    >>> refuse("np.example_refused", "not ours"); REFUSED_SPELLINGS["np.example_refused"]
    'not ours'
    """
    REFUSED_SPELLINGS[spelling] = reason


def row_name(prefix: str, name: str) -> str:
    """The table's name for ``prefix.name``: a row registered under its prefixed spelling
    (``F.softplus``, torch's, beside SciPy's ``softplus``) or else the bare name.

    >>> row_name("F", "softplus"), row_name("np", "exp")
    ('F.softplus', 'exp')
    """
    for prefixes in FAMILY_PREFIXES.values():
        if prefix in prefixes and prefixes and f"{prefixes[0]}.{name}" in OPERATORS:
            return f"{prefixes[0]}.{name}"
    return name


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
