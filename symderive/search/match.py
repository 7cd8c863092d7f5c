"""Numeric agreement with the true gradient, up to a factor made of sizes and a small rational.

Only a filter: a candidate that agrees here is proved (or not) by the prover.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import sympy as sp

#: relative and absolute tolerance of numeric agreement (float evaluation of exact formulas)
RTOL, ATOL = 1e-7, 1e-9
#: the largest denominator of a factor's rational part (``2 / (N * D)``, ``1 / 4``)
MAX_DENOMINATOR = 16


def agrees(values, points) -> bool:
    """Whether a candidate's values equal the true gradient at every test point.

    >>> from types import SimpleNamespace as P
    >>> agrees([np.ones(2)], [P(gradient=np.ones(2))])
    True
    """
    first, want = values[0], points[0].gradient
    if first.shape != want.shape:
        return False
    if first.size and abs(float(first.flat[0]) - float(want.flat[0])) > ATOL + RTOL * abs(float(want.flat[0])):
        return False  # one element first: most candidates differ there
    return all(
        v.shape == p.gradient.shape and np.allclose(v, p.gradient, rtol=RTOL, atol=ATOL)
        for v, p in zip(values, points, strict=True)
    )


def point_ratios(values, points) -> list[float] | None:
    """The one number each test point's gradient is of the candidate's values, or None
    when no such number exists (not proportional, or zero)."""
    ratios = []
    for v, p in zip(values, points, strict=True):
        if v.shape != p.gradient.shape:
            return None
        big = np.abs(v) > 1e-6
        if not big.any() or np.any(np.abs(p.gradient[~big]) > ATOL):
            return None
        r = p.gradient[big] / v[big]
        if not np.allclose(r, r.flat[0], rtol=RTOL, atol=ATOL):
            return None
        ratios.append(float(r.flat[0]))
    return ratios


def _nice(x: float) -> Fraction | None:
    f = Fraction(x).limit_denominator(MAX_DENOMINATOR)
    return f if f != 0 and abs(float(f) - x) <= 1e-9 * max(1.0, abs(x)) else None


def size_factor(ratios: list[float], points, sizes) -> sp.Expr | None:
    """The simplest ``c * prod(size**e)`` (``c`` a small rational, ``e`` in -1..1, and
    +-1/2 for up to four sizes) equal to ``ratios`` at every test point, or None.

    >>> from types import SimpleNamespace as P
    >>> n, d = sp.symbols("N D", positive=True, integer=True)
    >>> size_factor([2 / 12, 2 / 10], [P(sizes={n: 3, d: 4}), P(sizes={n: 5, d: 2})], (n, d))
    2/(D*N)
    """
    if any(r == 0 for r in ratios):
        return None
    exponents = (-1, 0, 1) if len(sizes) > 4 else (-1, -0.5, 0, 0.5, 1)
    combos = sorted(
        itertools.product(exponents, repeat=len(sizes)), key=lambda e: (sum(x != 0 for x in e), sum(abs(x) for x in e))
    )
    logs = np.array([[np.log(p.sizes[s]) for s in sizes] for p in points]) if sizes else np.zeros((len(points), 0))
    for e in combos:
        c = np.array(ratios) / np.exp(logs @ np.array(e, dtype=float)) if sizes else np.array(ratios)
        if not np.allclose(c, c[0], rtol=1e-9, atol=0):
            continue
        nice = _nice(float(c[0]))
        if nice is None:
            continue
        factor = sp.Rational(nice.numerator, nice.denominator)
        for s, k in zip(sizes, e, strict=False):
            factor *= s ** sp.nsimplify(k)
        return factor
    return None


def scaled_text(text: str, prec: int, factor: sp.Expr, operand) -> str:
    """``text`` multiplied by ``factor``, spelled as a user would (``(x - t) / (N * D)``,
    ``-w.T @ g``, ``2 * (x - t) / N``).

    ``operand(prec)`` is the candidate's text as an operand of that precedence.
    """
    from .space import PRODUCT, UNARY

    if factor == 1:
        return text
    if factor == -1:
        return f"-{operand(UNARY + 1)}"
    num, den = sp.fraction(factor)
    sign = "-" if num.could_extract_minus_sign() else ""
    num = -num if sign else num
    body = operand(PRODUCT)
    if num != 1:
        body = f"{_factor_text(num)} * {body}"
    if den != 1:
        den_text = _factor_text(den)
        body = f"{body} / ({den_text})" if isinstance(den, sp.Mul) else f"{body} / {den_text}"
    return f"{sign}{body}" if not sign else f"-({body})" if " " in body else f"-{body}"


def _factor_text(e: sp.Expr) -> str:
    if isinstance(e, sp.Mul):
        return " * ".join(_factor_text(a) for a in sorted(e.args, key=lambda a: (not a.is_Number, str(a))))
    if isinstance(e, sp.Pow) and e.exp == sp.Rational(1, 2):
        return f"sqrt({e.base})"
    if isinstance(e, sp.Pow):
        return f"{e.base}**{e.exp}"
    return str(e)
