"""Elementwise operators with NumPy broadcasting: arithmetic, comparisons, functions.

The shared pieces here (:func:`broadcast_shapes`, :func:`broadcast_index`,
:func:`elementwise_tensor`) are used by every operator that broadcasts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sympy as sp

from ...errors import InputError
from ..ir import (
    Iverson,
    Shape,
    Tensor,
    defined,
    divide_value,
    domain_condition,
    keep_domains,
    log_value,
    power_value,
    sqrt_value,
    strip_domains,
)

#: ``elementwise_tensor(domains=...)``: nan propagates (NumPy's arithmetic and functions)
PROPAGATE = "propagate"
#: ``elementwise_tensor(domains=...)``: nan propagates through a function that branches on
#: its arguments (``maximum``, ``abs``): the branch conditions are written on the defined values
BRANCHES = "branches"
#: ``elementwise_tensor(domains=...)``: the operator chooses (``where`` reads one branch)
CHOOSE = "choose"


def broadcast_pair(a: sp.Expr, b: sp.Expr) -> tuple[sp.Expr, sp.Boolean]:
    """The broadcast of two dimensions and the condition under which NumPy accepts it.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> broadcast_pair(n, sp.Integer(1))
    (n, True)
    """
    a, b = sp.sympify(a), sp.sympify(b)
    if a == b:
        return a, sp.true
    if a == 1:
        return b, sp.true
    if b == 1:
        return a, sp.true
    if a.is_Integer and b.is_Integer:
        return sp.Max(a, b), sp.false
    return sp.Max(a, b), sp.Or(sp.Eq(a, b), sp.Eq(a, 1), sp.Eq(b, 1))


def broadcast_shapes(*shapes: Shape) -> tuple[Shape, sp.Boolean]:
    """NumPy's broadcast of several symbolic shapes, with its validity condition.

    >>> n, m = sp.symbols("n m", integer=True, positive=True)
    >>> broadcast_shapes((n, 1), (m,))
    ((n, m), True)
    """
    rank = max((len(s) for s in shapes), default=0)
    out: list[sp.Expr] = [sp.S.One] * rank
    valid: list[sp.Boolean] = []
    for s in shapes:
        padded = (sp.S.One,) * (rank - len(s)) + tuple(sp.sympify(d) for d in s)
        for k, d in enumerate(padded):
            out[k], ok = broadcast_pair(out[k], d)
            valid.append(ok)
    return tuple(out), sp.And(*valid)


def broadcast_index(idx: tuple, shape_in: Shape, shape_out: Shape) -> tuple:
    """The index into an operand of shape ``shape_in`` for output index ``idx``.

    >>> i, j = sp.symbols("i j", integer=True)
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> broadcast_index((i, j), (1, n), (n, n))
    (0, j)
    """
    lead = len(shape_out) - len(shape_in)
    out = []
    for d_in, d_out, i in zip(shape_in, shape_out[lead:], idx[lead:], strict=True):
        d_in = sp.sympify(d_in)
        if d_in == 1:
            out.append(sp.S.Zero)
        elif d_in == d_out:
            out.append(i)
        else:
            out.append(sp.Piecewise((sp.S.Zero, sp.Eq(d_in, 1)), (i, True)))
    return tuple(out)


def elementwise_tensor(
    fn: Callable[..., sp.Expr], *args: Tensor, zero_preserving: bool = False, domains=PROPAGATE
) -> Tensor:
    """The tensor ``fn(a[idx], b[idx], ...)`` over the broadcast of the arguments.

    ``zero_preserving`` says that ``fn`` is 0 whenever every argument is (so the
    result needs no range guard when its arguments need none). ``domains`` says what
    an undefined (nan) argument gives: :data:`PROPAGATE` and :data:`BRANCHES` nan, a
    number that number (a comparison with nan is False), :data:`CHOOSE` whatever ``fn``
    says (``where``). A domain SymPy drops while building ``fn`` (``0 * log(x)`` is 0)
    is kept.

    >>> from ..ir import leaf
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> i = sp.Symbol("i", integer=True)
    >>> elementwise_tensor(sp.exp, leaf("x", (n,))).element((i,))
    exp(x[i])
    """
    shape, valid = broadcast_shapes(*(a.shape for a in args))

    def operand(a, idx):
        # inside the output's shape an operand of the same shape is in range: no guard
        return a.element(idx) if a.shape == shape else a.at(broadcast_index(idx, a.shape, shape))

    def element(idx):
        values = [operand(a, idx) for a in args]
        if domains == PROPAGATE and any(v is sp.nan for v in values):
            # undefined everywhere (x / 0): nan propagates, and a function that compares (relu) cannot
            return sp.nan
        if domains == PROPAGATE:
            return keep_domains(fn(*values), *values)
        if domains == CHOOSE:
            return fn(*values)
        return branched_value(fn, values, None if domains == BRANCHES else sp.sympify(domains))

    same_shapes = all(a.shape == shape for a in args)
    zero_outside = zero_preserving and same_shapes and all(a.zero_outside for a in args)
    return Tensor(
        shape=shape, element=element, zero_outside=zero_outside, valid=sp.And(valid, *(a.valid for a in args))
    )


def branched_value(fn: Callable[..., sp.Expr], values: list, otherwise: sp.Expr | None) -> sp.Expr:
    """``fn`` of ``values`` where all are defined, else nan (or ``otherwise``).

    ``fn`` branches on its arguments; a branch condition on an undefined value would be
    decided by SymPy (``d >= d`` is True) where NumPy's nan makes every comparison False.

    >>> from ..ir import log_value
    >>> x = sp.Symbol("x", real=True)
    >>> branched_value(lambda a, b: Iverson(a >= b), [log_value(x), log_value(x)], sp.S.Zero).args[1]
    (0, True)
    """
    stripped = [strip_domains(v) for v in values]
    if any(v is sp.nan for v in stripped):
        # undefined everywhere (x / 0): SymPy refuses to compare nan, NumPy's comparison is False
        return sp.nan if otherwise is None else otherwise
    cond = sp.And(*(domain_condition(v) for v in values))
    result = fn(*stripped)
    if cond == sp.true:
        return result
    return defined(result, cond) if otherwise is None else sp.Piecewise((result, cond), (otherwise, True))


# -- the table ------------------------------------------------------------------------
from .table import Operator, Param, register  # noqa: E402


def _unary_shape(x):
    return tuple(x), sp.true


def unary(
    name: str,
    fn: Callable[[sp.Expr], sp.Expr],
    numpy: str,
    latex: str,
    zero_preserving: bool,
    family: str = "numpy",
    by_name: bool = True,
    domains=PROPAGATE,
    **facts,
) -> Operator:
    """Register an elementwise function of one array (``exp``, ``tanh`` ...).

    ``numpy`` is the NumPy function's dotted name, ``latex`` a format with ``{x}``;
    ``domains`` as in :func:`elementwise_tensor`; ``facts`` further :class:`Operator` fields.

    >>> OPERATORS_EXAMPLE = unary.__name__
    """
    return register(
        Operator(
            name=name,
            family=family,
            params=(Param("x", "tensor", required=True),),
            definition=lambda x: elementwise_tensor(fn, x, zero_preserving=zero_preserving, domains=domains),
            shape_rule=_unary_shape,
            to_numpy=lambda x: f"{numpy}({x})",
            to_latex=lambda x: latex.format(x=x),
            algebra="elementwise",
            by_name=by_name,
            **facts,
        )
    )


unary("exp", sp.exp, "np.exp", r"\exp\left({x}\right)", zero_preserving=False, ufunc=True)


# -- shared helpers of the NumPy families -----------------------------------------------
def option_code(value) -> str:
    """NumPy source for an option value (an int, a size expression, a tuple, None ...).

    >>> option_code((0, -1)), option_code(sp.Symbol("n") - 1), option_code(None)
    ('(0, -1)', 'n - 1', 'None')
    """
    if isinstance(value, tuple | list):
        inner = ", ".join(option_code(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, sp.Basic):
        if value.is_Integer:
            return str(int(value))
        return sp.pycode(value)
    return repr(value)


def option_latex(value) -> str:
    """LaTeX for an option value.

    >>> option_latex((0, 1))
    '\\\\left(0, 1\\\\right)'
    """
    if isinstance(value, tuple | list):
        return r"\left({}\right)".format(", ".join(option_latex(v) for v in value))
    if isinstance(value, str):
        return rf"\text{{{value}}}"
    return sp.latex(sp.sympify(value))


def paren(latex: str) -> str:
    r"""``latex`` wrapped in parentheses unless it is a single symbol, a function applied to its
    bracketed arguments (``\exp\left(s\right)``) or one bracketed group as a whole.

    >>> print(paren("x"), paren("a + b"), paren(r"\mathrm{softmax}\left(s\right)"))
    x \left(a + b\right) \mathrm{softmax}\left(s\right)
    """
    if re.fullmatch(r"[A-Za-z0-9]|\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?", latex) or _applied(latex):
        return latex
    return rf"\left({latex}\right)"


def factor_paren(latex: str) -> str:
    r""":func:`paren` for a factor of a product written side by side (``W^\top g``): a symbol with
    a superscript needs no parentheses there (under a superscript of its own it would).

    >>> print(factor_paren(r"w^{\top}"), factor_paren("a + b"))
    w^{\top} \left(a + b\right)
    """
    if re.fullmatch(r"\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?\^\{[^{}]*\}", latex):
        return latex
    return paren(latex)


#: a function's name (``\exp``, ``\mathrm{softmax}``, ``\operatorname{flip}_{...}``) before its arguments
_FUNCTION_HEAD = re.compile(r"(\\[A-Za-z]+(\{[A-Za-z ]*\})?(_\{[^{}]*\})?)?\\left\(")


def _applied(latex: str) -> bool:
    r"""Whether ``latex`` is one ``\left( ... \right)`` group, maybe after a function's name."""
    head = _FUNCTION_HEAD.match(latex)
    if head is None or not latex.endswith(r"\right)"):
        return False
    depth, k = 0, head.end() - len(r"\left(")
    while k < len(latex):
        if latex.startswith(r"\left", k) and not latex[k + 5 : k + 6].isalpha():
            depth, k = depth + 1, k + 5
        elif latex.startswith(r"\right", k) and not latex[k + 6 : k + 7].isalpha():
            depth, k = depth - 1, k + 6
            if depth == 0:
                # the group opened first must close at the very end
                return k + 1 == len(latex)
        else:
            k += 1
    return False


def constant_int(value, op: str, param: str) -> int:
    """An option that must be a constant integer (an axis, a diagonal offset).

    >>> constant_int(sp.Integer(-1), "sum", "axis")
    -1
    """
    value = sp.sympify(value)
    if not value.is_Integer:
        raise InputError(f"{op}: {param}={value} must be a constant integer")
    return int(value)


def normalize_axes(axis, ndim: int, op: str, param: str = "axis") -> tuple[int, ...]:
    """NumPy's axis argument as a sorted tuple of non-negative axes (None means all).

    >>> normalize_axes(-1, 3, "sum"), normalize_axes(None, 2, "sum"), normalize_axes((0, -1), 3, "sum")
    ((2,), (0, 1), (0, 2))
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple | list) else (axis,)
    out = [normalize_axis(a, ndim, op, param) for a in items]
    if len(set(out)) != len(out):
        raise InputError(f"{op}: repeated axis in {param}={axis}")
    return tuple(sorted(out))


def normalize_axis(axis, ndim: int, op: str, param: str = "axis") -> int:
    """One NumPy axis as a non-negative int, or InputError when out of bounds.

    >>> normalize_axis(-1, 2, "flip")
    1
    """
    a = constant_int(axis, op, param)
    if not -ndim <= a < ndim:
        raise InputError(f"{op}: {param}={a} is out of bounds for an array of dimension {ndim}")
    return a % ndim if ndim else a


# -- binary and unary operators ---------------------------------------------------------
def _binary_shape(x1, x2):
    return broadcast_shapes(x1, x2)


def binary(
    name: str,
    fn: Callable,
    numpy: str,
    latex: str | Callable[[str, str], str],
    zero_preserving: bool,
    by_name: bool = True,
    domains=PROPAGATE,
    **facts,
) -> Operator:
    """Register an elementwise function of two broadcast arrays (params ``x1``, ``x2``).

    ``numpy`` and ``latex`` are formats with ``{x1}`` and ``{x2}`` (the operands parenthesised
    by :func:`paren`), or ``latex`` a function of the two operands' LaTeX; ``domains`` as in
    :func:`elementwise_tensor`; ``facts`` further :class:`Operator` fields.

    >>> from .table import OPERATORS
    >>> OPERATORS["add"].params[0].name
    'x1'
    """
    return register(
        Operator(
            name=name,
            family="numpy",
            params=(Param("x1", "tensor", required=True), Param("x2", "tensor", required=True)),
            definition=lambda x1, x2: elementwise_tensor(fn, x1, x2, zero_preserving=zero_preserving, domains=domains),
            shape_rule=_binary_shape,
            to_numpy=lambda x1, x2: numpy.format(x1=x1, x2=x2),
            to_latex=latex if callable(latex) else lambda x1, x2: latex.format(x1=paren(x1), x2=paren(x2)),
            algebra="elementwise",
            by_name=by_name,
            **facts,
        )
    )


def power_kept(b, e):
    """``b ** e`` undefined where ``b`` or ``e`` is, except that, as in IEEE and NumPy,
    ``nan ** 0`` and ``1 ** nan`` are 1 (SymPy gives 1 there as well).

    >>> from ..ir import log_value
    >>> x = sp.Symbol("x", real=True)
    >>> power_kept(log_value(x), sp.S.Zero), power_kept(sp.S.One, log_value(x))
    (1, 1)
    """
    read = [v for v, ignored in ((b, e == 0), (e, b == 1)) if not ignored]
    return keep_domains(power_value(b, e), *read)


def iverson_of(relation: Callable[[sp.Expr, sp.Expr], sp.Boolean]) -> Callable[[sp.Expr, sp.Expr], sp.Expr]:
    """The 0/1 value of a comparison, as NumPy's boolean array read as numbers.

    >>> iverson_of(sp.Lt)(sp.Integer(1), sp.Integer(2))
    1
    """
    return lambda a, b: Iverson(relation(a, b))


def abs_kinked(x):
    """``|x|`` with derivative 0 at 0, as PyTorch's ``abs``.

    >>> sp.diff(abs_kinked(sp.Symbol("x", real=True)), sp.Symbol("x", real=True)).subs(sp.Symbol("x", real=True), 0)
    0
    """
    return sp.Piecewise((x, x > 0), (-x, x < 0), (sp.S.Zero, True))


def sign_of(x):
    """``sign(x)``: 1, -1 or 0.

    >>> sign_of(sp.Integer(-3))
    -1
    """
    return sp.Piecewise((sp.S.One, x > 0), (sp.S.NegativeOne, x < 0), (sp.S.Zero, True))


def maximum_of(a, b):
    """``max(a, b)``, splitting the derivative evenly at a tie (as ``torch.maximum``).

    >>> maximum_of(sp.Integer(1), sp.Integer(2))
    2
    """
    return sp.Piecewise((a, a > b), (b, a < b), ((a + b) / 2, True))


def minimum_of(a, b):
    """``min(a, b)``, splitting the derivative evenly at a tie (as ``torch.minimum``).

    >>> minimum_of(sp.Integer(1), sp.Integer(2))
    1
    """
    return sp.Piecewise((a, a < b), (b, a > b), ((a + b) / 2, True))


def clip_of(a, a_min, a_max):
    """NumPy's ``clip`` of one element; the derivative passes at the bounds (``torch.clamp``).

    ``a_min > a_max`` gives ``a_max`` everywhere, as ``np.minimum(np.maximum(a, a_min), a_max)``.

    >>> clip_of(sp.Integer(5), sp.Integer(0), sp.Integer(1))
    1
    """
    branches = []
    if a_min is not None and a_max is not None:
        branches.append((a_max, a_min > a_max))
    if a_min is not None:
        branches.append((a_min, a < a_min))
    if a_max is not None:
        branches.append((a_max, a > a_max))
    return sp.Piecewise(*branches, (a, True))


def where_of(condition, x, y):
    """``x`` where ``condition`` is nonzero, else ``y``.

    >>> where_of(sp.Integer(0), sp.Integer(1), sp.Integer(2))
    2
    """
    return sp.Piecewise((x, sp.Ne(condition, 0)), (y, True))


def additive_latex(sign: str) -> Callable[[str, str], str]:
    r"""The LaTeX of ``x1 + x2`` (``sign`` ``+``) or ``x1 - x2``: parentheses only where a sum reads
    differently without them (a negative right operand, a sum subtracted).

    >>> print(additive_latex("+")("w x", "b"), "|", additive_latex("-")("a", "b + c"))
    w x + b | a - \left(b + c\right)
    """

    def to_latex(x1: str, x2: str) -> str:
        right = x2.strip()
        if right.startswith("-") or (sign == "-" and _top_level_sum(right)):
            right = paren(right)
        return f"{x1} {sign} {right}"

    return to_latex


def _top_level_sum(latex: str) -> bool:
    r"""Whether ``latex`` has a ``+`` or ``-`` outside every brace and ``\left ... \right`` pair."""
    depth, k = 0, 0
    while k < len(latex):
        if latex.startswith(r"\left", k) and not latex[k + 5 : k + 6].isalpha():
            depth, k = depth + 1, k + 5
        elif latex.startswith(r"\right", k) and not latex[k + 6 : k + 7].isalpha():
            depth, k = depth - 1, k + 6
        else:
            c = latex[k]
            depth += {"{": 1, "}": -1}.get(c, 0)
            if depth == 0 and c in "+-" and k > 0:
                return True
            k += 2 if c == "\\" else 1
    return False


binary("add", sp.Add, "({x1} + {x2})", additive_latex("+"), zero_preserving=True, by_name=False, ufunc=True)
binary(
    "subtract",
    lambda a, b: a - b,
    "({x1} - {x2})",
    additive_latex("-"),
    zero_preserving=True,
    by_name=False,
    ufunc=True,
)
binary(
    "multiply",
    sp.Mul,
    "({x1} * {x2})",
    r"{x1} \odot {x2}",
    zero_preserving=True,
    by_name=False,
    ufunc=True,
    booleans_as_numbers=True,
)
binary(
    "divide",
    divide_value,
    "({x1} / {x2})",
    r"{x1} \oslash {x2}",
    zero_preserving=False,
    by_name=False,
    ufunc=True,
    booleans_as_numbers=True,
)
binary("power", power_kept, "({x1} ** {x2})", "{x1}^{{{x2}}}", zero_preserving=False, by_name=False, domains=CHOOSE)
# a comparison with nan is False (so != is True): SymPy decides x <= x before any value is known
_CMP = {"by_name": False, "domains": 0}
binary(
    "less",
    iverson_of(sp.Lt),
    "({x1} < {x2})",
    r"\left[{x1} < {x2}\right]",
    True,
    **_CMP,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "less_equal",
    iverson_of(sp.Le),
    "({x1} <= {x2})",
    r"\left[{x1} \le {x2}\right]",
    False,
    **_CMP,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "greater",
    iverson_of(sp.Gt),
    "({x1} > {x2})",
    r"\left[{x1} > {x2}\right]",
    True,
    **_CMP,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "greater_equal",
    iverson_of(sp.Ge),
    "({x1} >= {x2})",
    r"\left[{x1} \ge {x2}\right]",
    False,
    **_CMP,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "equal",
    iverson_of(sp.Eq),
    "({x1} == {x2})",
    r"\left[{x1} = {x2}\right]",
    False,
    **_CMP,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "not_equal",
    iverson_of(sp.Ne),
    "({x1} != {x2})",
    r"\left[{x1} \ne {x2}\right]",
    True,
    by_name=False,
    domains=1,
    comparison=True,
    booleans_as_numbers=True,
)
binary(
    "maximum",
    maximum_of,
    "np.maximum({x1}, {x2})",
    r"\max\left({x1}, {x2}\right)",
    True,
    domains=BRANCHES,
    booleans_as_numbers=True,
)
binary(
    "minimum",
    minimum_of,
    "np.minimum({x1}, {x2})",
    r"\min\left({x1}, {x2}\right)",
    True,
    domains=BRANCHES,
    booleans_as_numbers=True,
)

unary("negative", lambda x: -x, "np.negative", r"-{x}", zero_preserving=True, by_name=False, ufunc=True)
unary("positive", lambda x: x, "np.positive", r"+{x}", zero_preserving=True, by_name=False)
unary("log", log_value, "np.log", r"\log\left({x}\right)", zero_preserving=False, ufunc=True)
unary("sqrt", sqrt_value, "np.sqrt", r"\sqrt{{{x}}}", zero_preserving=True, ufunc=True)
unary("square", lambda x: x**2, "np.square", r"{x}^{{2}}", zero_preserving=True, ufunc=True, booleans_as_numbers=True)
unary("tanh", sp.tanh, "np.tanh", r"\tanh\left({x}\right)", zero_preserving=True, ufunc=True)
unary("sinh", sp.sinh, "np.sinh", r"\sinh\left({x}\right)", zero_preserving=True)
unary("cosh", sp.cosh, "np.cosh", r"\cosh\left({x}\right)", zero_preserving=False)
unary("sin", sp.sin, "np.sin", r"\sin\left({x}\right)", zero_preserving=True)
unary("cos", sp.cos, "np.cos", r"\cos\left({x}\right)", zero_preserving=False)
unary("log1p", lambda x: log_value(1 + x), "np.log1p", r"\log\left(1 + {x}\right)", zero_preserving=True, ufunc=True)
unary("expm1", lambda x: sp.exp(x) - 1, "np.expm1", r"\left(e^{{{x}}} - 1\right)", zero_preserving=True, ufunc=True)
unary(
    "abs", abs_kinked, "np.abs", r"\left|{x}\right|", zero_preserving=True, domains=BRANCHES, booleans_as_numbers=True
)
unary("sign", sign_of, "np.sign", r"\operatorname{{sign}}\left({x}\right)", zero_preserving=True, domains=BRANCHES)


def _where_shape(condition, x, y):
    return broadcast_shapes(condition, x, y)


register(
    Operator(
        name="where",
        booleans_as_numbers=True,
        family="numpy",
        params=(Param("condition", "tensor", required=True), Param("x", "tensor"), Param("y", "tensor")),
        definition=lambda condition, x=None, y=None: elementwise_tensor(
            where_of, condition, *_both("where", x, y), zero_preserving=True, domains=CHOOSE
        ),
        shape_rule=_where_shape,
        to_numpy=lambda condition, x=None, y=None: f"np.where({condition}, {x}, {y})",
        to_latex=lambda condition, x=None, y=None: (
            rf"\begin{{cases}} {x} & {condition} \ne 0 \\ {y} & \text{{otherwise}} \end{{cases}}"
        ),
        algebra="elementwise",
    )
)


def _both(op: str, x, y):
    if x is None or y is None:
        raise InputError(f"{op}: give both x and y (the one-argument form returns indices)")
    return x, y


def _clip_definition(a, a_min=None, a_max=None):
    if a_min is None and a_max is None:
        raise InputError("clip: one of a_min and a_max must be given")
    bounds = [t for t in (a_min, a_max) if t is not None]

    def fn(v, *rest):
        lo = rest[0] if a_min is not None else None
        hi = rest[-1] if a_max is not None else None
        return clip_of(v, lo, hi)

    return elementwise_tensor(fn, a, *bounds, domains=BRANCHES)


def _clip_shape(a, a_min=None, a_max=None):
    return broadcast_shapes(a, *(s for s in (a_min, a_max) if s is not None))


def _clip_latex(a, a_min=None, a_max=None):
    lo = a_min if a_min is not None else r"-\infty"
    hi = a_max if a_max is not None else r"\infty"
    return rf"\operatorname{{clip}}\left({a}, {lo}, {hi}\right)"


register(
    Operator(
        name="clip",
        family="numpy",
        params=(Param("a", "tensor", required=True), Param("a_min", "tensor"), Param("a_max", "tensor")),
        definition=_clip_definition,
        shape_rule=_clip_shape,
        to_numpy=lambda a, a_min=None, a_max=None: f"np.clip({a}, {a_min}, {a_max})",
        to_latex=_clip_latex,
        algebra="elementwise",
    )
)
