"""Activation functions: ``erf``, ``erfc``, ``softplus`` (``scipy.special``), ``logaddexp`` (NumPy),
and ``torch.nn.functional``'s ``gelu``, ``silu``, ``leaky_relu``, ``elu`` and ``F.softplus``.

Kinked functions take PyTorch's derivative at the kink: the branch ``x > 0`` is the identity and
the other branch is taken at 0 (``leaky_relu``'s derivative at 0 is ``negative_slope``, ``elu``'s is
``alpha``, as torch's autograd gives). ``F.softplus`` is torch's: ``x`` where ``beta * x >
threshold``, so it is registered under its prefixed name; bare ``softplus`` is SciPy's.
"""

from __future__ import annotations

import sympy as sp

from ...errors import InputError
from .elementwise import BRANCHES, PROPAGATE, broadcast_shapes, elementwise_tensor, option_latex
from .table import Operator, Param, numpy_helper, register


def _sd_erf(x):
    import scipy.special

    return scipy.special.erf(x)


def _sd_erfc(x):
    import scipy.special

    return scipy.special.erfc(x)


for _fn in (_sd_erf, _sd_erfc):
    numpy_helper(_fn.__name__, _fn)


def gelu_of(x, approximate: str = "none"):
    """torch's GELU of one element: ``x * (1 + erf(x / sqrt(2))) / 2``, or its tanh approximation.

    >>> gelu_of(sp.Integer(0)), gelu_of(sp.Symbol("x"), "tanh").has(sp.tanh)
    (0, True)
    """
    if approximate == "tanh":
        return x * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 1000000) * x**3))) / 2
    return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


def silu_of(x):
    """``x * sigmoid(x)``.

    >>> silu_of(sp.Integer(0))
    0
    """
    return x / (1 + sp.exp(-x))


def leaky_relu_of(x, negative_slope):
    """``x`` where ``x > 0``, else ``negative_slope * x`` (torch's derivative at 0: the slope).

    >>> leaky_relu_of(sp.Integer(-2), sp.Rational(1, 10))
    -1/5
    """
    return sp.Piecewise((x, x > 0), (negative_slope * x, True))


def elu_of(x, alpha):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (torch's derivative at 0: ``alpha``).

    >>> elu_of(sp.Integer(0), _ONE)
    0
    """
    return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))


def torch_softplus_of(x, beta, threshold):
    """torch's softplus: ``x`` where ``beta * x > threshold``, else ``log(1 + exp(beta * x)) / beta``.

    >>> torch_softplus_of(sp.Integer(30), _ONE, _THRESHOLD)
    30
    """
    return sp.Piecewise((x, beta * x > threshold), (sp.log(1 + sp.exp(beta * x)) / beta, True))


def _same_shape(x, *_, **__):
    return tuple(x), sp.true


def _number(op: str, name: str, value) -> sp.Expr:
    value = sp.sympify(value)
    if not value.is_number or value.is_real is False:
        raise InputError(f"{op}: {name}={value} must be a real constant")
    return value


def _float_code(value) -> str:
    # a Python float literal (a rational slope 1/100 as 0.01)
    return repr(float(value))


def _approximate(approximate) -> str:
    if approximate not in ("none", "tanh"):
        raise InputError(f"gelu: approximate={approximate!r} must be 'none' or 'tanh'")
    return approximate


def _elementwise(name, family, params, fn, numpy, latex, meaning, example, helpers=(), **facts):
    """Register an elementwise function whose options (after the tensor) are passed to ``fn``."""
    first = params[0].name
    domains = facts.pop("domains", PROPAGATE)

    def defined(**args):
        x = args.pop(first)
        return elementwise_tensor(lambda v: fn(v, **args), x, domains=domains)

    return register(
        Operator(
            name=name,
            family=family,
            params=params,
            definition=defined,
            shape_rule=_same_shape,
            to_numpy=numpy,
            to_latex=latex,
            numpy_helpers=helpers,
            algebra="elementwise",
            meaning=meaning,
            example=example,
            **facts,
        )
    )


#: torch's defaults (leaky_relu's negative_slope, elu's alpha and softplus's beta, softplus's threshold)
_SLOPE, _ONE, _THRESHOLD = sp.Rational(1, 100), sp.S.One, sp.Integer(20)
_X = (Param("x", "tensor", required=True),)
_INPUT = Param("input", "tensor", required=True)
_INPLACE = Param("inplace", "bool", default=False)

_elementwise(
    "erf",
    "scipy.special",
    _X,
    lambda v: sp.erf(v),
    lambda x: f"_sd_erf({x})",
    lambda x: rf"\operatorname{{erf}}\left({x}\right)",
    "the error function 2/sqrt(pi) * integral of exp(-t**2) from 0 to x",
    "erf(x / sqrt(2))",
    helpers=("_sd_erf",),
)
_elementwise(
    "erfc",
    "scipy.special",
    _X,
    lambda v: 1 - sp.erf(v),
    lambda x: f"_sd_erfc({x})",
    lambda x: rf"\operatorname{{erfc}}\left({x}\right)",
    "the complementary error function 1 - erf(x)",
    "erfc(x)",
    helpers=("_sd_erfc",),
)
_elementwise(
    "softplus",
    "scipy.special",
    _X,
    lambda v: sp.log(1 + sp.exp(v)),
    lambda x: f"np.logaddexp(0.0, {x})",
    lambda x: rf"\operatorname{{softplus}}\left({x}\right)",
    "log(1 + exp(x)); F.softplus is torch's (beta, threshold)",
    "softplus(x)",
)
register(
    Operator(
        name="logaddexp",
        family="numpy",
        params=(Param("x1", "tensor", required=True), Param("x2", "tensor", required=True)),
        definition=lambda x1, x2: elementwise_tensor(lambda a, b: sp.log(sp.exp(a) + sp.exp(b)), x1, x2),
        shape_rule=broadcast_shapes,
        to_numpy=lambda x1, x2: f"np.logaddexp({x1}, {x2})",
        to_latex=lambda x1, x2: rf"\log\left(e^{{{x1}}} + e^{{{x2}}}\right)",
        algebra="elementwise",
        ufunc=True,
        meaning="log(exp(x1) + exp(x2)), broadcast",
        example="logaddexp(x, 0)",
    )
)
_elementwise(
    "gelu",
    "torch",
    (_INPUT, Param("approximate", "str", default="none", choices=("none", "tanh"))),
    lambda v, approximate="none": gelu_of(v, _approximate(approximate)),
    lambda input, approximate="none": (
        f"(0.5 * {input} * (1.0 + np.tanh(0.7978845608028654 * ({input} + 0.044715 * {input} ** 3))))"
        if _approximate(approximate) == "tanh"
        else f"(0.5 * {input} * (1.0 + _sd_erf({input} * 0.7071067811865476)))"
    ),
    lambda input, approximate="none": (
        rf"\operatorname{{gelu}}{'_{tanh}' if approximate == 'tanh' else ''}\left({input}\right)"
    ),
    "x * (1 + erf(x / sqrt(2))) / 2; approximate='tanh': x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))) / 2",
    "gelu(x, approximate='tanh')",
    helpers=("_sd_erf",),
)
_elementwise(
    "silu",
    "torch",
    (_INPUT, _INPLACE),
    lambda v, inplace=False: silu_of(v),
    lambda input, inplace=False: f"({input} / (1.0 + np.exp(-{input})))",
    lambda input, inplace=False: rf"\operatorname{{silu}}\left({input}\right)",
    "x * sigmoid(x)",
    "silu(x)",
)
_elementwise(
    "leaky_relu",
    "torch",
    (_INPUT, Param("negative_slope", "number", default=_SLOPE), _INPLACE),
    lambda v, negative_slope=_SLOPE, inplace=False: leaky_relu_of(
        v, _number("leaky_relu", "negative_slope", negative_slope)
    ),
    lambda input, negative_slope=_SLOPE, inplace=False: (
        f"np.where({input} > 0, {input}, {_float_code(negative_slope)} * {input})"
    ),
    lambda input, negative_slope=_SLOPE, inplace=False: (
        rf"\operatorname{{leaky\_relu}}_{{{option_latex(negative_slope)}}}\left({input}\right)"
    ),
    "x where x > 0, else negative_slope * x (derivative at 0: negative_slope, as torch)",
    "leaky_relu(x, negative_slope=0.2)",
    domains=BRANCHES,
)
_elementwise(
    "elu",
    "torch",
    (_INPUT, Param("alpha", "number", default=_ONE), _INPLACE),
    lambda v, alpha=_ONE, inplace=False: elu_of(v, _number("elu", "alpha", alpha)),
    lambda input, alpha=_ONE, inplace=False: (
        f"np.where({input} > 0, {input}, {_float_code(alpha)} * np.expm1(np.minimum({input}, 0)))"
    ),
    lambda input, alpha=_ONE, inplace=False: rf"\operatorname{{elu}}_{{{option_latex(alpha)}}}\left({input}\right)",
    "x where x > 0, else alpha * (exp(x) - 1) (derivative at 0: alpha, as torch)",
    "elu(x, alpha=1.0)",
    domains=BRANCHES,
)
_elementwise(
    "F.softplus",
    "torch",
    (_INPUT, Param("beta", "number", default=_ONE), Param("threshold", "number", default=_THRESHOLD)),
    lambda v, beta=_ONE, threshold=_THRESHOLD: torch_softplus_of(
        v, _number("F.softplus", "beta", beta), _number("F.softplus", "threshold", threshold)
    ),
    lambda input, beta=_ONE, threshold=_THRESHOLD: (
        f"np.where({_float_code(beta)} * {input} > {_float_code(threshold)}, {input}, "
        f"np.logaddexp(0.0, {_float_code(beta)} * {input}) / {_float_code(beta)})"
    ),
    lambda input, beta=_ONE, threshold=_THRESHOLD: (
        rf"\operatorname{{softplus}}_{{{option_latex(beta)}, {option_latex(threshold)}}}\left({input}\right)"
    ),
    "x where beta * x > threshold, else log(1 + exp(beta * x)) / beta (torch's softplus)",
    "F.softplus(x, beta=2)",
    domains=BRANCHES,
)
