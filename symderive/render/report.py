# ruff: noqa: UP031  (percent formatting: LaTeX braces would all double in str.format/f-strings)
"""Reports: a layer's derivations and verdicts as LaTeX (and PDF), like the hand derivations in examples/derivations/

The Python side turns a layer, its derivations and verdicts into plain data whose math
is already LaTeX (from :class:`ReportPrinter`, a SymPy ``LatexPrinter``, or the
operator table through :func:`symderive.tree.to_latex`); the Jinja2 templates in
``templates/`` only lay it out. Every user-supplied string reaches LaTeX through
:func:`latex_escape` (the template filter ``e``), and every user-supplied *name*
through :meth:`ReportPrinter._print_Symbol`, so a description such as
``\\input{/etc/passwd}`` is printed, never executed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import itertools
import operator
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.sandbox
import numpy as np
import sympy as sp
from sympy.logic.boolalg import Boolean
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import precedence

from ..atomic import write_atomic
from ..calculus.derive import range_facts, simplify_guards
from ..core.domains import settle_piecewise
from ..core.ir import Defined, GSum, Iverson, index_symbol
from ..core.ops import OPERATORS
from ..core.tree import decimal_text
from ..errors import InputError
from ..escape import LATEX_SPECIALS, latex_escape, latex_listing, markdown_text  # noqa: F401  (LATEX_SPECIALS: report's API)
from . import blocks as B
from .templating import latex_environment
from .text import long_value, printed_value

# -- escaping -----------------------------------------------------------------------------
# the one LaTeX escaping function and its table live in symderive.escape (with the other formats')

#: characters after which long code or text (a claim, a forward pass) may break its line
BREAK_AFTER = frozenset(",([.*/+-=@")


def latex_text(text: object) -> str:
    """``text`` escaped like :func:`latex_escape`, with line breaks allowed after punctuation.

    ``\\texttt`` breaks only at spaces, so a long claim would run into the margin.

    >>> latex_text("f(a,b)")
    'f(\\\\allowbreak{}a,\\\\allowbreak{}b)'
    """
    text = str(text)
    out = []
    for k, c in enumerate(text):
        out.append(latex_escape(c))
        after = text[k + 1] if k + 1 < len(text) else " "
        # never inside a number (0.05, 1e-3)
        if c in BREAK_AFTER and not after.isspace() and not (after.isdigit() and c in ".-+"):
            out.append(r"\allowbreak{}")
    return "".join(out)


def prose_text(text: object) -> str:
    """``text`` escaped like :func:`latex_escape`, with line breaks allowed after the ``/`` and ``_``
    of a path (a file name such as ``pa5_conv_fc_softmax.md`` is one long word otherwise).

    >>> print(prose_text("see a/b_c"))
    see a/\\allowbreak{}b\\_\\allowbreak{}c
    """
    return latex_escape(text).replace("/", r"/\allowbreak{}").replace(r"\_", r"\_\allowbreak{}")


# -- the math printer -------------------------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_']*\Z")
#: the deriver's names for partial derivatives, ``dL/dx[p, q]`` (index text: names, digits, + - *)
_PARTIAL_NAME = re.compile(r"d([A-Za-z]\w*)(?:\[([A-Za-z0-9 ,+*-]*)\])?/d([A-Za-z]\w*)(?:\[([A-Za-z0-9 ,+*-]*)\])?\Z")


class ReportPrinter(LatexPrinter):
    """SymPy's LaTeX printer in the report's notation: ``x[i, j]``, guarded sums,
    Iverson brackets as bound chains, Kronecker deltas and partial derivatives.

    >>> from symderive.core.ir import index_symbol, size_symbol
    >>> i, n = index_symbol("i"), size_symbol("n")
    >>> ReportPrinter().doprint(GSum(sp.IndexedBase("x")[i], (i, 0, n - 1)))
    '\\\\sum_{i=0}^{n - 1} x[i]'
    """

    def _print_Symbol(self, expr, style="plain"):
        if _PLAIN_NAME.match(expr.name):
            return super()._print_Symbol(expr, style=style)
        partial = _PARTIAL_NAME.match(expr.name)
        if partial:
            return r"\frac{\partial %s}{\partial %s}" % (
                self._print_read(*partial.group(1, 2)),
                self._print_read(*partial.group(3, 4)),
            )
        return r"\texttt{%s}" % latex_escape(expr.name)

    def _print_read(self, name: str, index: str | None) -> str:
        """``name[index]`` where ``index`` is the printed text of plain index expressions."""
        if not index:
            return self._print(sp.Symbol(name))
        parts = [p.strip() for p in index.split(",")]
        return "%s[%s]" % (self._print(sp.Symbol(name)), ", ".join(parts))

    def parenthesize(self, item, level, is_neg=False, strict=False):
        # Defined(value, cond) prints as its value: it needs the value's parentheses
        return super().parenthesize(_shown(item), level, is_neg, strict)

    def _needs_mul_brackets(self, expr, first=False, last=False) -> bool:
        return super()._needs_mul_brackets(_shown(expr), first=first, last=last)

    def _needs_brackets(self, expr) -> bool:
        return super()._needs_brackets(_shown(expr))

    def _print_Abbreviation(self, expr, exp=None):
        # the name is LaTeX made by abbreviate() from fixed letters; the indices are printed
        name, indices = expr.args[0].name, expr.args[1:]
        text = name if not indices else r"%s_{%s}" % (name, ", ".join(self._print(i) for i in indices))
        return text if exp is None else r"%s^{%s}" % (text, exp)

    def _print_Dummy(self, expr):
        return self._print_Symbol(sp.Symbol(expr.name))

    def _print_IndexedBase(self, expr):
        return self._print(expr.label)

    def _print_Indexed(self, expr):
        return "%s[%s]" % (self._print(expr.base), ", ".join(self._print(i) for i in expr.indices))

    #: print a sum whose bounds a claim's parser inferred (``Min``/``Max`` of the reads' ranges) as
    #: ``\sum_{i}``: the claim as its author wrote it, every index at which its reads are inside
    open_limits = False

    def _print_GSum(self, expr):
        parts, bare = [], []
        for lim in expr.limits:
            if self.open_limits and any(b.has(sp.Min, sp.Max) for b in lim[1:]):
                bare.append(self._print(lim[0]))
                continue
            if bare:
                parts.append(r"\sum_{%s} " % ", ".join(bare))
                bare = []
            parts.append(r"\sum_{%s=%s}^{%s} " % tuple(map(self._print, lim)))
        if bare:
            parts.append(r"\sum_{%s} " % ", ".join(bare))
        sums = "".join(parts)
        body = expr.function
        text = self._print(body)
        if isinstance(body, sp.Add) or text.startswith("-"):
            text = r"\left(%s\right)" % text
        return sums + text

    def _print_Pow(self, expr, **kwargs):
        # a power of a sum (or of anything printed with its own superscript) needs parentheses
        if isinstance(expr.base, sp.Sum | sp.exp) and not expr.exp.is_negative:
            return r"\left(%s\right)^{%s}" % (self._print(expr.base), self._print(expr.exp))
        return super()._print_Pow(expr, **kwargs)

    def _print_exp(self, expr, exp=None):
        # a long exponent (a sum, a fraction) is unreadable as a superscript: write exp(...)
        arg = expr.args[0]
        if not (arg.has(sp.Sum) or isinstance(arg, sp.Mul | sp.Add) and sp.count_ops(arg) > 2):
            return super()._print_ExpBase(expr, exp)
        inner = r"\exp\left(%s\right)" % self._print(arg)
        return inner if exp is None else r"%s^{%s}" % (inner, exp)

    def _print_Mul(self, expr):
        # SymPy folds a rational coefficient into a fraction: keep a decimal one in front instead
        coeff, rest = expr.as_coeff_Mul()
        decimal = decimal_text(abs(coeff)) if coeff.is_Rational and rest != 1 else None
        if decimal is None:
            return super()._print_Mul(expr)
        body = self.parenthesize(rest, precedence(sp.Mul(2, rest, evaluate=False)), strict=True)
        return "%s%s %s" % ("- " if coeff < 0 else "", decimal, body)

    def _print_Rational(self, expr):
        decimal = decimal_text(expr)
        return decimal if decimal is not None else super()._print_Rational(expr)

    def _print_Iverson(self, expr):
        return r"\left[%s\right]" % self._print(expr.args[0])

    def _print_And(self, expr):
        chains = _bound_chains(expr.args)
        if chains is None:
            return super()._print_And(expr)
        return r" \wedge ".join(self._print_chain(e, lo, hi) for e, lo, hi in chains)

    def _print_chain(self, e, lo, hi) -> str:
        out = self._print(e)
        if lo is not None:
            out = r"%s \leq %s" % (self._print(lo), out)
        if hi is not None:
            out = r"%s \leq %s" % (out, self._print(hi))
        return out

    def _print_KroneckerDelta(self, expr, exp=None):
        text = r"\delta_{%s,\, %s}" % (self._print(expr.args[0]), self._print(expr.args[1]))
        return text if exp is None else r"%s^{%s}" % (text, exp)

    def _print_Derivative(self, expr):
        variables = " ".join(r"\partial %s" % self._print(v) for v, _ in expr.variable_count)
        return r"\frac{\partial %s}{%s}" % (self._print(expr.expr), variables)


def _bound_chains(parts) -> list | None:
    """``[(e, lo, hi)]``: the integer bounds of each expression, or None if a part is not a bound."""
    bounds: dict = {}
    for rel in parts:
        found = _as_bound(rel)
        if found is None:
            return None
        e, side, value = found
        bounds.setdefault(e, [None, None])[0 if side == "lo" else 1] = value
    return [(e, lo, hi) for e, (lo, hi) in bounds.items()]


def _as_bound(rel):
    if not isinstance(rel, sp.Ge | sp.Gt | sp.Le | sp.Lt):
        return None
    a, b = rel.lhs, rel.rhs
    if a.is_number and not b.is_number:
        # 0 <= e reads as e >= 0: keep the expression on the left
        a, b = b, a
        rel = {sp.Ge: sp.Le, sp.Gt: sp.Lt, sp.Le: sp.Ge, sp.Lt: sp.Gt}[type(rel)](a, b, evaluate=False)
    if isinstance(rel, sp.Ge):
        return a, "lo", b
    if isinstance(rel, sp.Gt):
        return a, "lo", b + 1
    if isinstance(rel, sp.Le):
        return a, "hi", b
    return a, "hi", b - 1


def readable(expr: sp.Basic, taken: Iterable[str] = ()) -> sp.Basic:
    """``expr`` with its dummy summation variables renamed to plain, distinct names.

    >>> from symderive.core.ir import dummy_index
    >>> m = dummy_index("m")
    >>> readable(sp.IndexedBase("w")[m] * sp.IndexedBase("x")[sp.Symbol("m")])
    w[n]*x[m]
    """
    if not isinstance(expr, sp.Basic):
        return expr
    dummies = sorted(expr.atoms(sp.Dummy), key=lambda d: d.dummy_index)
    if not dummies:
        return expr
    used = {s.name for s in expr.free_symbols if not isinstance(s, sp.Dummy)} | set(taken)
    renames = {}
    for d in dummies:
        name = _free_name(d.name.lstrip("_") or "k", used)
        used.add(name)
        renames[d] = sp.Symbol(name, integer=True)
    return expr.xreplace(renames)


#: summation variable names to fall back on when a dummy's own name is taken
_NAME_POOL = ("m", "n", "u", "v", "r", "s", "a", "c", "e", "f")


def _free_name(name: str, used: set[str]) -> str:
    for candidate in (name, *_NAME_POOL):
        if candidate not in used:
            return candidate
    while name in used:
        name += "'"
    return name


def math_latex(expr, taken: Iterable[str] = ()) -> str:
    """The report's LaTeX for a SymPy expression.

    >>> math_latex(sp.KroneckerDelta(sp.Symbol("i"), sp.Symbol("p")))
    '\\\\delta_{i,\\\\, p}'
    """
    return ReportPrinter().doprint(readable(sp.sympify(expr), taken))


# -- equations that fit the page ------------------------------------------------------

#: visible characters of display math that fit one line of the report's text width
LINE_BUDGET = 62


def visible_width(latex: str) -> int:
    """A rough count of the characters a LaTeX math string shows.

    >>> visible_width(r"\\frac{\\partial L}{\\partial x[p]}")
    5
    """
    text = re.sub(r"\\(left|right|,|;|quad|qquad|!|mathrm|operatorname|texttt|cdot)\b", "", latex)
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: max(m.group(1), m.group(2), key=len), text)
    # binary operators and relations are set with space on both sides: about one more character
    spaced = len(
        re.findall(r"(?<![{(\[,^_])\s*[-+=<>]|\\(?:leq|geq|wedge|vee|cdot|odot|oslash|bmod|times|neq)\b", text)
    )
    text = re.sub(r"\\[A-Za-z]+", "x", text)
    return len(re.sub(r"[{}^_&\s]", "", text)) + spaced


@dataclass(frozen=True)
class Equation:
    """A numbered display equation: ``lines`` of an ``aligned`` block, ``tag`` the hand derivation's name."""

    lines: tuple[str, ...]
    key: str
    tag: str = ""
    #: lines of the ``aligned`` block under the equation that define its abbreviations
    where: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        return r" \\ ".join(self.lines)


def equation_lines(lhs, rhs, taken: Iterable[str] = (), budget: int = LINE_BUDGET) -> tuple[str, ...]:
    """``lhs = rhs`` as lines of an ``aligned`` block, broken at top-level ``+`` terms.

    >>> x = sp.IndexedBase("x")
    >>> equation_lines(sp.Symbol("y"), x[1] + x[2])
    ('y &= x[1] + x[2]',)
    """
    taken = set(taken)
    head = "" if lhs is None else math_latex(lhs, taken) + " "
    return _packed_lines(head + "&= ", _rhs_pieces(readable(sp.sympify(rhs), taken), budget), budget)


def _packed_lines(head: str, pieces: list[str], budget: int) -> tuple[str, ...]:
    # pieces joined into lines of at most budget visible characters; a continuation line
    # starts with \quad, and a piece marked TIMES (a factor) with \cdot there
    lines, current = [], head + pieces[0].lstrip(TIMES)
    for piece in pieces[1:]:
        if visible_width(current + piece) > budget:
            lines.append(current)
            current = r"&\quad " + (r"\cdot " + piece[1:] if piece.startswith(TIMES) else piece)
        else:
            current += " " + piece.lstrip(TIMES)
    lines.append(current)
    return tuple(lines)


def latex_equation_lines(lhs: str, rhs: str, budget: int = LINE_BUDGET) -> tuple[str, ...]:
    """``lhs = rhs`` for LaTeX already written (the operator table's), as ``aligned`` lines.

    A long right side breaks at its top-level operators, or else inside its outermost
    parentheses (which become ``\\Bigl( ... \\Bigr)``) at their operators and commas.

    >>> latex_equation_lines("y", r"f\\left(a, b\\right) + c", budget=8)
    ('y &= f\\\\left(a, b\\\\right)', '&\\\\quad + c')
    """
    return _packed_lines(lhs + " &= ", _latex_pieces(rhs, budget), budget)


#: where printed LaTeX may break: before a binary operator, after a comma (at the top level)
_LATEX_BREAKS = re.compile(r" (?=[-+] |\\odot\b|\\oslash\b|\\cdot\b|\\times\b)|(?<=,) ")


def _latex_pieces(text: str, budget: int) -> list[str]:
    text = text.strip()
    if visible_width(text) <= budget:
        return [text]
    parts = _split_top_level(text)
    if len(parts) > 1:
        return [q for part in parts for q in _latex_pieces(part, budget)]
    group = _outer_group(text)
    if group is None:
        return [text]
    head, inner, tail = group
    pieces = _latex_pieces(inner, budget)
    if len(pieces) == 1:
        return [text]
    return [head + r"\Bigl(" + pieces[0]] + pieces[1:-1] + [pieces[-1] + r"\Bigr)" + tail]


def _depths(text: str) -> list[int]:
    """The nesting depth (braces and ``\\left``/``\\right``) at each character of ``text``."""
    out, depth, k = [], 0, 0
    while k < len(text):
        step = 1
        if text.startswith(r"\left", k) and not text[k + 5 : k + 6].isalpha():
            depth += 1
            step = 5
        elif text.startswith(r"\right", k) and not text[k + 6 : k + 7].isalpha():
            depth -= 1
            step = 6
        elif text[k] == "\\":
            step = 2
        elif text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
        out += [depth] * step
        k += step
    return out[: len(text)]


def _split_top_level(text: str) -> list[str]:
    depths = _depths(text)
    cuts = [m.start() for m in _LATEX_BREAKS.finditer(text) if depths[m.start()] == 0 and m.start() > 0]
    bounds = [0] + cuts + [len(text)]
    return [text[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False) if text[a:b].strip()]


def _outer_group(text: str):
    """(head, inner, tail) of the widest top-level ``\\left( ... \\right)`` of ``text``, or None."""
    depths = _depths(text)
    best = None
    for m in re.finditer(r"\\left\(", text):
        start = m.start()
        if (depths[start - 1] if start else 0) != 0:
            continue
        close = next(
            (k for k in range(m.end(), len(text)) if depths[k] == 0 and text.startswith(r"\right)", k - 5)), None
        )
        if close is None:
            continue
        end = close - 5
        if best is None or end - m.end() > best[2] - best[1]:
            best = (start, m.end(), end)
    if best is None:
        return None
    start, inner_start, end = best
    return text[:start], text[inner_start:end], text[end + len(r"\right)") :]


def abbreviated_equation(lhs, rhs, key: str, tag: str = "", taken: Iterable[str] = ()) -> Equation:
    r"""``lhs = rhs`` as a numbered equation, large repeated subexpressions of ``rhs`` named in ``where``.

    >>> x, j = sp.IndexedBase("x"), index_symbol("j")
    >>> root = sp.sqrt(1 + x[j] ** 2 + x[j + 1] ** 2)
    >>> eq = abbreviated_equation(sp.Symbol("y"), x[j] / root + 1 / root, key="eq:y")
    >>> eq.lines, eq.where
    (('y &= \\frac{x[j]}{\\sigma_{j}} + \\frac{1}{\\sigma_{j}}',), ('\\sigma_{j} &= \\sqrt{x[j + 1]^{2} + x[j]^{2} + 1}',))
    """
    taken = set(taken)
    short, defs = abbreviate(readable(sp.sympify(rhs), taken), taken)
    lines = equation_lines(lhs, short, taken)
    where = tuple(line for d in defs for line in equation_lines(d.name, d.value, taken))
    return Equation(lines, key=key, tag=tag, where=where)


#: marks a piece that continues a product: nothing on the same line, ``\cdot`` at a line's start
TIMES = "\x00"


def _rhs_pieces(expr, budget: int = LINE_BUDGET) -> list[str]:
    """Pieces a long right side may break between, from its expression tree.

    Sums break at their terms, also inside a sum's body and inside a factor of a product
    (in ``\\Bigl( ... \\Bigr)``, which may span lines); a guarded sum's guards stand apart
    from its body; a fraction too wide is written ``\\frac{1}{d}`` times its numerator.
    Joined with spaces (``TIMES`` dropped), the pieces print the expression.

    >>> x = sp.IndexedBase("x")
    >>> _rhs_pieces(x[1] + x[2])
    ['x[1] + x[2]']
    >>> _rhs_pieces(x[1] - x[2], budget=3)
    ['x[1]', '- x[2]']
    """
    return _pieces(expr, ReportPrinter(), budget)


def _pieces(expr, printer, budget: int) -> list[str]:
    text = printer.doprint(expr)
    if visible_width(text) <= budget:
        return [text]
    if isinstance(expr, Defined):
        return _pieces(_shown(expr), printer, budget)
    if isinstance(expr, sp.Add):
        out = []
        for k, term in enumerate(expr.as_ordered_terms()):
            out += _signed(_pieces(term, printer, budget), first=k == 0)
        return out
    if isinstance(expr, GSum):
        return _sum_pieces(expr, printer, budget)
    if isinstance(expr, sp.Mul):
        return _product_pieces(expr, printer, budget)
    return [text]


def _shown(expr):
    """``expr`` as printed: a Defined value's condition is not shown."""
    while isinstance(expr, Defined):
        expr = expr.args[0]
    return expr


def _signed(pieces: list[str], first: bool) -> list[str]:
    """A term's pieces with its sign written as the operator before it (none for the first term)."""
    head = pieces[0].lstrip(TIMES)
    if first:
        return [head] + pieces[1:]
    if head.startswith("-"):
        return ["- " + head[1:].lstrip()] + pieces[1:]
    return ["+ " + head] + pieces[1:]


def _wrapped(pieces: list[str]) -> list[str]:
    """Pieces in parentheses that may span lines."""
    if len(pieces) == 1:
        return [r"\left(%s\right)" % pieces[0]]
    return [r"\Bigl(" + pieces[0]] + pieces[1:-1] + [pieces[-1] + r"\Bigr)"]


def _sum_pieces(expr, printer, budget: int) -> list[str]:
    sums = printer.doprint(GSum(sp.Integer(1), *expr.limits))[: -len("1")]
    body = expr.function
    if isinstance(body, sp.Mul):
        guards = [f for f in body.args if isinstance(f, Iverson)]
        rest = [f for f in body.args if not isinstance(f, Iverson)]
        if guards and rest:
            inner = _pieces(sp.Mul(*rest), printer, budget)
            if inner[0].startswith("-"):
                inner = _wrapped(inner)
            first, *more = [printer.doprint(gd) for gd in guards]
            return [sums + first] + [TIMES + gd for gd in more] + [TIMES + inner[0]] + inner[1:]
    inner = _pieces(body, printer, budget)
    if isinstance(body, sp.Add):
        inner = _wrapped(inner)
    return [sums + inner[0].lstrip(TIMES)] + inner[1:]


def _product_pieces(expr, printer, budget: int) -> list[str]:
    """A product: its simple factors first, then each long factor broken in its own pieces."""
    expr = sp.Mul(*[_shown(f) for f in expr.args])
    if not isinstance(expr, sp.Mul):
        return _pieces(expr, printer, budget)
    if expr.could_extract_minus_sign():
        inner = _pieces(-expr, printer, budget)
        return ["- " + inner[0].lstrip(TIMES)] + inner[1:]
    num, den = expr.as_numer_denom()
    # a denominator from a layer's float constants (2s and 5s) stays as decimals in the factors
    if den != 1 and not (den.is_Integer and decimal_text(sp.Rational(1, den)) is not None):
        lead = r"\frac{1}{%s}" % printer.doprint(den)
        return [lead] + [TIMES + p if k == 0 else p for k, p in enumerate(_pieces(num, printer, budget))]
    coeff, factors = expr.as_coeff_mul()
    factors = [_shown(f) for f in factors]
    simple = [f for f in factors if not isinstance(f, sp.Add | GSum | sp.Mul)]
    long_ = [f for f in factors if isinstance(f, sp.Add | GSum | sp.Mul)]
    lead = "-" if coeff == -1 else "" if coeff == 1 else printer.doprint(coeff) + " "
    out = []
    for k, f in enumerate(simple):
        piece = printer.doprint(f)
        out.append((lead + piece) if k == 0 else TIMES + piece)
    for f in long_:
        inner = _pieces(f, printer, budget)
        if isinstance(f, sp.Add) or inner[0].lstrip(TIMES).startswith("-"):
            inner = _wrapped(inner)
        inner = [TIMES + inner[0].lstrip(TIMES)] + inner[1:]
        out += inner
    if not simple and out:
        out[0] = lead + out[0].lstrip(TIMES)
    return out


# -- abbreviations for repeated subexpressions ------------------------------------------


class Abbreviation(sp.Function):
    r"""A name for a repeated subexpression read at some indices: ``Abbreviation(name, *indices)``.

    ``name`` is a symbol whose name is the LaTeX of the name; the indices are arguments, so
    they stay free symbols of the expression (a sum over ``i`` still binds ``A_{i}``).

    >>> ReportPrinter().doprint(Abbreviation(sp.Symbol(r"\sigma"), index_symbol("q")) ** 2)
    '\\sigma_{q}^{2}'
    """


@dataclass(frozen=True)
class Definition:
    """``name = value``: one abbreviation of a step, ``value`` already abbreviated itself."""

    name: Abbreviation
    value: sp.Basic


#: the placeholders that stand for an abbreviation's free indices and bound variables in its key
_PARAMS = tuple(sp.Dummy(f"p{k}", integer=True) for k in range(12))
_BOUND = tuple(sp.Dummy(f"b{k}", integer=True) for k in range(24))
#: repeated subexpressions narrower than this (visible characters) stay written out
ABBREVIATE_WIDTH = 10


def abbreviate(expr, taken: Iterable[str] = (), min_width: int = ABBREVIATE_WIDTH) -> tuple[sp.Basic, list[Definition]]:
    r"""``expr`` with each large subexpression that occurs more than once replaced by a name.

    Only subexpressions worth a name are named: ones with a sum, a root, an exponential or
    a logarithm inside. The names say what the subexpression is where that is clear
    (``\sigma`` a square root, ``\mu`` a mean, ``Z`` a sum of exponentials), else ``A``,
    ``B``, ...; they carry the free indices as subscripts, so ``\sigma_{j}`` and
    ``\sigma_{q}`` are one definition read at two indices. Names in ``taken`` are never
    used. Returns the abbreviated expression and the definitions, outermost first (a
    definition may use the names defined after it).

    >>> x, j = sp.IndexedBase("x"), index_symbol("j")
    >>> root = sp.sqrt(1 + x[j] ** 2 + x[j + 1] ** 2)
    >>> short, defs = abbreviate(x[j] / root + 1 / root)
    >>> ReportPrinter().doprint(short), ReportPrinter().doprint(defs[0].name)
    ('\\frac{x[j]}{\\sigma_{j}} + \\frac{1}{\\sigma_{j}}', '\\sigma_{j}')
    """
    taken = set(taken)
    defs: list[Definition] = []
    bases: set[str] = set()
    exps: set = set()  # the names of exponentials: a sum of them is a normaliser Z
    keys: dict = {}
    widths: dict = {}
    eligible: dict = {}
    for _ in range(len(_LETTERS)):
        parts = [expr] + [d.value for d in defs]
        found = _largest_repeated(parts, min_width, keys, widths, eligible)
        if found is None:
            break
        key, example = found
        base = sp.Symbol(_abbreviation_base(example, taken | bases, exps))
        if isinstance(example, sp.exp):
            exps.add(base)
        bases.add(base.name)
        parts = [_replace_keyed(e, key, base, keys, eligible) for e in parts]
        expr = parts[0]
        defs = [Definition(d.name, v) for d, v in zip(defs, parts[1:], strict=True)]
        defs.append(Definition(Abbreviation(base, *_index_params(example)), example))
    return _without_needless(expr, defs)


def _without_needless(expr, defs: list[Definition]) -> tuple[sp.Basic, list[Definition]]:
    """Drop definitions no longer read; write out again those read once at their own indices."""
    while True:
        uses = {d.name.args[0]: [] for d in defs}
        for part in [expr] + [d.value for d in defs]:
            for node in sp.preorder_traversal(part):
                if isinstance(node, Abbreviation) and node.args[0] in uses:
                    uses[node.args[0]].append(node)
        spare = next((d for d in defs if len(uses[d.name.args[0]]) == 0), None)
        if spare is None:
            spare = next((d for d in defs if uses[d.name.args[0]] == [d.name]), None)
        if spare is None:
            return expr, defs
        defs = [d for d in defs if d is not spare]
        back = {spare.name: spare.value}
        expr = expr.xreplace(back)
        defs = [Definition(d.name, d.value.xreplace(back)) for d in defs]


def _index_params(expr) -> list:
    """The free index symbols of ``expr`` (integer, not sizes), in the order they are read."""
    return list(_index_params_of(expr))


# abbreviate() asks these of the same subexpressions again and again, across the steps of a
# derivation too (a batch norm's steps repeat their means and roots): they are remembered
@functools.lru_cache(maxsize=50_000)
def _index_params_of(expr) -> tuple:
    free = expr.free_symbols
    out = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Symbol) and node in free and node.is_integer and not node.is_positive:
            if node not in out:
                out.append(node)
    return tuple(out)


@functools.lru_cache(maxsize=50_000)
def abbreviation_key(expr) -> sp.Basic:
    """``expr`` with its free indices and bound variables renamed to placeholders by reading order.

    Two subexpressions with one key are the same function of their free indices.

    >>> x, i, j = sp.IndexedBase("x"), index_symbol("i"), index_symbol("j")
    >>> abbreviation_key(x[i] + 1) == abbreviation_key(x[j] + 1)
    True
    """
    params = _index_params(expr)
    out = expr.xreplace(dict(zip(params, _PARAMS, strict=False)))
    bound = []
    for node in sp.preorder_traversal(out):
        if isinstance(node, sp.Sum):
            bound += [lim[0] for lim in node.limits if lim[0] not in bound]
    return out.xreplace(dict(zip(bound, _BOUND, strict=False)))


def _keyed(node, keys: dict):
    key = keys.get(node)
    if key is None:
        key = keys[node] = abbreviation_key(node)
    return key


def _eligible_in(node, eligible: dict) -> bool:
    # every pass of abbreviate asks again about nodes no name has changed
    answer = eligible.get(node)
    if answer is None:
        answer = eligible[node] = _eligible(node)
    return answer


@functools.lru_cache(maxsize=50_000)
def _eligible(node) -> bool:
    """Whether ``node`` is worth a name: it has a sum, root, exponential or logarithm inside."""
    if not isinstance(node, sp.Basic) or node.is_Atom or not node.free_symbols:
        return False
    if isinstance(node, sp.Indexed | Iverson | sp.KroneckerDelta | Boolean | sp.Tuple | Abbreviation):
        return False
    if isinstance(node, sp.Pow) and node.exp.is_Integer:
        # a power is read as its base, raised: the base is the thing to name
        return False
    if len(_index_params(node)) > len(_PARAMS):
        return False
    return bool(node.atoms(sp.Sum, sp.exp, sp.log)) or _is_root(node)


def _is_root(node) -> bool:
    return isinstance(node, sp.Pow) and node.exp.is_Rational and node.exp.q == 2


def _largest_repeated(parts, min_width: int, keys: dict, widths: dict, eligible: dict):
    """(key, first occurrence) of the repeated subexpression whose name saves most, or None."""
    counts: dict = {}
    first: dict = {}
    for part in parts:
        for node in sp.preorder_traversal(part):
            for candidate in _candidates(node, eligible):
                key = _keyed(candidate, keys)
                counts[key] = counts.get(key, 0) + 1
                first.setdefault(key, candidate)
    best, best_rank = None, (False, 0)
    for key, n in counts.items():
        if n < 2:
            continue
        width = widths.get(key)
        if width is None:
            width = widths[key] = visible_width(ReportPrinter().doprint(first[key]))
        # a repeated root is named first (sigma holds its radicand); then the characters a
        # name saves: every occurrence but the definition's
        rank = (_is_root(first[key]), (n - 1) * width)
        if width >= min_width and rank > best_rank:
            best, best_rank = key, rank
    return None if best is None else (best, first[best])


def _candidates(node, eligible: dict) -> list:
    """The subexpressions ``node`` offers for abbreviation: itself, or the root inside ``b**(-1/2)``."""
    if not _eligible_in(node, eligible):
        return []
    root = _hidden_root(node)
    # b**(-1/2) is read as 1/sqrt(b): the root is the thing to name
    return [node] if root is None else [root]


def _hidden_root(node):
    """``sqrt(b)`` for ``b**(p/2)`` with ``p != 1`` (the square root a reader sees in it), else None."""
    if _is_root(node) and node.exp.p != 1:
        return sp.sqrt(node.base)
    return None


def _replace_keyed(expr, key, base: sp.Symbol, keys: dict, eligible: dict):
    """``expr`` with every subexpression of this key replaced by its name at its own indices."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Tuple):
        return expr
    if _eligible_in(expr, eligible):
        root = _hidden_root(expr)
        if root is None and _keyed(expr, keys) == key:
            return Abbreviation(base, *_index_params(expr))
        if root is not None and _keyed(root, keys) == key:
            # b**(p/2) = sqrt(b)**p
            return Abbreviation(base, *_index_params(root)) ** expr.exp.p
    args = [_replace_keyed(a, key, base, keys, eligible) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args, strict=True)):
        return expr
    return expr.func(*args)


#: names for abbreviations whose kind is not recognised, in order
_LETTERS = tuple("ABDFGHJKMPQRTUV")


def _abbreviation_base(expr, taken: set[str], exps=frozenset()) -> str:
    """The LaTeX name of an abbreviation: by its kind where recognised, else the next free letter."""
    wanted = _kind_name(expr, exps)
    if wanted is not None:
        latex, plain = wanted
        if latex not in taken and plain not in taken:
            return latex
    for letter in _LETTERS:
        if letter not in taken:
            return letter
    return "A_{%d}" % len(taken)


def _kind_name(expr, exps=frozenset()) -> tuple[str, str] | None:
    """(LaTeX, the plain name it would clash with) for a square root, a mean, an exponential or a
    sum of exponentials (``exps``: the names already given to exponentials)."""
    if isinstance(expr, sp.exp):
        return "E", "E"
    if isinstance(expr, sp.Sum) and any(a.args[0] in exps for a in expr.function.atoms(Abbreviation)):
        return "Z", "Z"
    if isinstance(expr, sp.Pow) and expr.exp == sp.Rational(1, 2):
        return r"\sigma", "sigma"
    if isinstance(expr, sp.Mul):
        sums = [a for a in expr.args if isinstance(a, sp.Sum)]
        rest = [a for a in expr.args if not isinstance(a, sp.Sum)]
        if len(sums) == 1 and rest and all(isinstance(a, sp.Pow) and a.exp == -1 and a.base.is_positive for a in rest):
            return r"\mu", "mu"
    if isinstance(expr, sp.Sum) and expr.function.has(sp.exp):
        return "Z", "Z"
    if isinstance(expr, sp.Sum) and isinstance(expr.function, sp.Indexed):
        return "S", "S"
    return None


# -- pictures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlipPicture:
    """A kernel and its flip as two small matrices of entries (LaTeX), with their notation."""

    kernel: str
    flipped: str
    cells: tuple[tuple[str, ...], ...]
    flipped_cells: tuple[tuple[str, ...], ...]
    marks: dict
    definition: Equation
    axes: str = "every axis"


@dataclass(frozen=True)
class ReachPicture:
    """Which output elements one input element reaches, at small concrete sizes."""

    input_name: str
    output_name: str
    input_shape: tuple[int, int]
    output_shape: tuple[int, int]
    element: tuple[int, int]
    reached: tuple[tuple[int, int], ...]
    element_latex: str
    sizes_latex: str
    note: str = ""
    padding: int = 0


def signal_calls(node) -> list:
    """The convolution-like calls in a closed-form tree (``Call`` nodes), outermost first."""
    from ..core.tree import Call, Element

    out = []
    if isinstance(node, Call):
        if OPERATORS[node.op].kernel:
            out.append(node)
        for _, value in node.args:
            for child in value if isinstance(value, tuple) else (value,):
                out += signal_calls(child)
    elif isinstance(node, Element):
        out += signal_calls(node.node)
    return out


def _first_ref(call, names: tuple[str, ...]):
    from ..core.tree import Ref

    for name in names:
        value = dict(call.args).get(name)
        if isinstance(value, Ref):
            return value.name
    return None


def flip_picture(layer) -> FlipPicture | None:
    """The kernel of a convolution layer and its flip, drawn as in examples/derivations/cnn_backprop_notes.md
    (None elsewhere)."""
    calls = signal_calls(layer.forward_tree) if layer.forward_tree is not None else []
    kernels = [(_first_ref(c, (OPERATORS[c.op].kernel,)), OPERATORS[c.op].spatial_axes) for c in calls]
    kernels = [(k, n) for k, n in kernels if k in layer.inputs and 1 <= len(layer.inputs[k]) - n <= 2]
    if not kernels:
        return None
    name, spatial = kernels[0]
    if spatial:
        return _spatial_flip_picture(layer, name, spatial)
    rank = len(layer.inputs[name])
    rows, flipped, marks = _flip_grid(name, rank)
    base = sp.IndexedBase(name)
    vars_ = [index_symbol(v) for v in ("m", "n")[:rank]]
    shape = layer.inputs[name]
    lhs_flip = _flip_latex(name, layer)
    lhs = r"%s[%s]" % (lhs_flip, ", ".join(math_latex(v) for v in vars_))
    rhs = math_latex(base[tuple(d - 1 - v for d, v in zip(shape, vars_, strict=True))])
    eq = Equation((lhs + " &= " + rhs,), key="eq:flip")
    return FlipPicture(math_latex(sp.Symbol(name)), lhs_flip, rows, flipped, marks, eq)


def _spatial_flip_picture(layer, name: str, spatial: int) -> FlipPicture:
    """A torch kernel ``w[o, c, ...]``: the flip of its spatial axes, drawn on one slice ``w[0, 0]``."""
    rows, flipped, marks = _flip_grid(name, spatial)
    shape = layer.inputs[name]
    lead = [index_symbol(v) for v in ("o", "c")]
    vars_ = [index_symbol(v) for v in ("m", "n")[:spatial]]
    base = sp.IndexedBase(name)
    lhs = r"\tilde{%s}[%s]" % (math_latex(sp.Symbol(name)), ", ".join(math_latex(v) for v in lead + vars_))
    spatial_dims = shape[len(shape) - spatial :]
    rhs = math_latex(base[tuple(lead) + tuple(d - 1 - v for d, v in zip(spatial_dims, vars_, strict=True))])
    eq = Equation((lhs + " &= " + rhs,), key="eq:flip")
    slice_ = r"%s[0, 0, %s]" % (math_latex(sp.Symbol(name)), ", ".join([":"] * spatial))
    flipped_name = r"\tilde{%s}[0, 0, %s]" % (math_latex(sp.Symbol(name)), ", ".join([":"] * spatial))
    return FlipPicture(slice_, flipped_name, rows, flipped, marks, eq, axes="every spatial axis")


def _flip_grid(name: str, rank: int):
    """(rows, flipped rows, colour marks) of a small example kernel of rank 1 (four taps) or 2 (2 x 3)."""
    # a 3 x 3 kernel: its centre stays, every other entry moves (a smaller one shows little)
    dims = (4,) if rank == 1 else (3, 3)
    idx = list(itertools.product(*(range(d) for d in dims)))
    compact = {p: _compact_entry(name, p) for p in idx}
    rows = _as_rows(dims, [compact[p] for p in idx])
    flipped = _as_rows(dims, [compact[tuple(d - 1 - k for d, k in zip(dims, p, strict=True))] for p in idx])
    return rows, flipped, {compact[idx[0]]: "red", compact[idx[1]]: "blue"}


def _compact_entry(name: str, point: tuple[int, ...]) -> str:
    return "%s_{%s}" % (math_latex(sp.Symbol(name)), "".join(str(k) for k in point))


def _as_rows(dims, entries) -> tuple[tuple[str, ...], ...]:
    cols = dims[-1]
    return tuple(tuple(entries[r * cols : (r + 1) * cols]) for r in range(len(entries) // cols))


def _flip_latex(name: str, layer) -> str:
    from ..core.tree import Call, Ref, to_latex

    try:
        return to_latex(Call("flip", (("m", Ref(name)),)), names=safe_names(layer))
    except Exception:  # the table without flip still gets a picture
        return r"\operatorname{flip}\left(%s\right)" % math_latex(sp.Symbol(name))


def safe_names(layer) -> dict[str, str]:
    """The LaTeX of every name a layer's trees may mention, printed safely."""
    names = list(layer.inputs) + [layer.output, "g"]
    return {n: math_latex(sp.Symbol(n)) for n in names}


def illustrative_sizes(layer, data: str | None = None, ones=frozenset()) -> dict | None:
    """Small sizes that satisfy the layer's assumptions, data dimensions larger than kernels.

    Sizes in the shape of ``data`` (the first input unless named) prefer 5, 6, ..., sizes
    in ``ones`` prefer 1, others 2, 3, ...; None when nothing up to 7 fits.
    """
    from ..decide.concrete import Evaluator

    data = data or next(iter(layer.inputs))
    big = {s for d in layer.inputs[data] for s in sp.sympify(d).free_symbols}
    prefs = []
    for k, s in enumerate(layer.sizes):
        # data 5 x 6, kernels 3 x 3: the smallest sizes at which a picture shows the pattern
        first = 1 if s in ones else 5 + k % 2 if s in big else 3
        prefs.append([first] + [v for v in (2, 4, 1, 5, 6, 7, 3) if v != first])
    conds = layer.size_assumptions() + [layer.forward.valid]
    for combo in itertools.islice(itertools.product(*prefs), 5000):
        env = dict(zip(layer.sizes, combo, strict=True))
        try:
            if all(Evaluator(env, {}).truth(c) for c in conds):
                return env
        except Exception:  # a condition the evaluator cannot decide: try the next sizes
            continue
    return None


def reach_picture(layer, wrt: str) -> ReachPicture | None:
    """For a convolution layer with 2-D (or 1-D) ``wrt`` and output: the outputs one element reaches."""
    from ..decide.concrete import concrete_shape, evaluate

    if layer.forward_tree is None or not signal_calls(layer.forward_tree):
        return None
    lead = _batch_axes(layer, wrt)
    rank = len(layer.inputs[wrt])
    if rank - lead not in (1, 2) or len(layer.forward.shape) != rank:
        return None
    # a torch convolution is drawn on its spatial slice: one batch element, one channel in and out
    ones = {s for shape in layer.inputs.values() for d in shape[:lead] for s in sp.sympify(d).free_symbols}
    spatial = {s for d in layer.inputs[wrt][lead:] for s in sp.sympify(d).free_symbols}
    sizes = illustrative_sizes(layer, wrt, ones=frozenset(ones - spatial))
    if sizes is None:
        return None
    values = {}
    for name, shape in layer.inputs.items():
        dims = tuple(int(sp.sympify(d).subs(sizes)) for d in shape)
        cells = np.empty(dims, dtype=object)
        for point in itertools.product(*(range(d) for d in dims)):
            cells[point] = sp.Symbol(f"v_{name}_" + "_".join(map(str, point)))
        values[name] = cells
    try:
        out = evaluate(layer.forward, sizes, values, exact=True)
        in_shape = concrete_shape(layer.input_tensor(wrt), sizes)
    except Exception:  # no picture rather than no report
        return None
    element = (0,) * lead + tuple(d // 2 for d in in_shape[lead:])
    target = values[wrt][element]
    reached = tuple(
        p for p in np.ndindex(out.shape) if p[:lead] == (0,) * lead and target in sp.sympify(out[p]).free_symbols
    )

    def as2d(t, fill=0):
        # a 1-D tensor is drawn as one row: position (0, k), shape (1, n)
        t = tuple(t)[lead:]
        return t if len(t) == 2 else (fill,) + t

    sizes_latex = r",\ ".join(math_latex(sp.Eq(s, v)) for s, v in sizes.items())
    call = signal_calls(layer.forward_tree)[0]
    return ReachPicture(
        input_name=_slice_name(wrt, lead, rank),
        output_name=_slice_name(layer.output, lead, rank),
        input_shape=as2d(in_shape, 1),
        output_shape=as2d(out.shape, 1),
        element=as2d(element),
        reached=tuple(as2d(p) for p in reached),
        element_latex=math_latex(sp.IndexedBase(wrt)[element]),
        sizes_latex=sizes_latex,
        note=_conv_note(call) if lead else "",
        padding=int(dict(call.args).get("padding", 0) or 0) if lead and _padding_is_int(call) else 0,
    )


def _batch_axes(layer, wrt: str) -> int:
    """2 when ``wrt`` is the data input of a torch convolution (batch and channel axes lead), else 0."""
    for call in signal_calls(layer.forward_tree):
        if OPERATORS[call.op].spatial_axes and _first_ref(call, ("input",)) == wrt:
            return 2
    return 0


def _slice_name(name: str, lead: int, rank: int) -> str:
    if not lead:
        return math_latex(sp.Symbol(name))
    return r"%s[0, 0, %s]" % (math_latex(sp.Symbol(name)), ", ".join([":"] * (rank - lead)))


def _padding_is_int(call) -> bool:
    return isinstance(dict(call.args).get("padding", 0), int)


def _conv_note(call) -> str:
    """The convolution's stride, padding and dilation, as the picture's caption says them."""
    args = dict(call.args)
    parts = [f"{key} {args[key]}" for key in ("stride", "padding", "dilation", "groups") if key in args]
    return ", ".join(parts)


# -- counterexamples ---------------------------------------------------------------------


def number_latex(value, digits: int = 6) -> str:
    """A counterexample number: exact where it is exact and short; strings (SymPy's printing) shown
    as text, or, when too long to read, as their value to ``digits`` significant digits.

    >>> number_latex(-1), number_latex(0.5), number_latex("1/3"), number_latex("exp(1)/(1 + exp(1)) + 1/10**30")
    ('-1', '0.5', '\\\\frac{1}{3}', '\\\\approx 0.731059')
    """
    if isinstance(value, str):
        approximate = long_value(value)
        if approximate is not None:
            return r"\approx %s" % _significant(approximate, digits)
        exact = printed_latex(value)
        if exact is None:
            number = printed_value(value)
            return (
                r"\texttt{%s}" % latex_escape(value) if number is None else r"\approx %s" % _significant(number, digits)
            )
        if re.fullmatch(r"-?\d+(/\d+)?", value.strip()):
            return exact
        # an exact value with a function or a power in it: its digits too, to compare the two sides
        return r"%s \approx %s" % (exact, _significant(printed_value(value), digits))
    if isinstance(value, bool | int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _significant(float(value), digits)
    if isinstance(value, sp.Basic):
        return math_latex(value)
    return r"\texttt{%s}" % latex_escape(value)


#: the functions SymPy's printing of a counterexample value may call, as SymPy functions
_PRINTED_FUNCTIONS = {
    name: getattr(sp, name) for name in ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "atan")
}


def printed_latex(text: str) -> str | None:
    """SymPy's printing of a real number (a counterexample's value) as math, read from its syntax
    tree (never run as code; a power with an exponent above 64 is not computed); None for anything else.

    >>> print(printed_latex("exp(1)/2"), printed_latex("x + 1"))
    \\frac{e}{2} None
    """
    if printed_value(text) is None:  # not a finite real number written with the allowed pieces
        return None
    try:
        return math_latex(_printed_expr(ast.parse(text, mode="eval").body))
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None


def _printed_expr(node) -> sp.Basic:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(repr(node.value))
    if isinstance(node, ast.Name) and node.id in ("E", "pi"):
        return sp.E if node.id == "E" else sp.pi
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _printed_expr(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Pow):
        a, b = _printed_expr(node.left), _printed_expr(node.right)
        ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
        if type(node.op) not in ops:
            raise ValueError("not a number")
        return ops[type(node.op)](a, b)
    if isinstance(node, ast.BinOp):
        a, b = _printed_expr(node.left), _printed_expr(node.right)
        # a large exponent is not computed (10**(-10**8) is a small float but a huge integer): such a
        # value is shown by its digits instead
        if not (b.is_number and b.is_real and abs(float(b)) <= 64):
            raise ValueError("an exponent too large to write out")
        return a**b
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _PRINTED_FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        return _PRINTED_FUNCTIONS[node.func.id](_printed_expr(node.args[0]))
    raise ValueError("not a number")


def _significant(value: float, digits: int) -> str:
    mantissa, _, exponent = ("%.*g" % (digits, value)).partition("e")
    return mantissa + (r" \cdot 10^{%d}" % int(exponent) if exponent else "")


def distinguishing_digits(expected, claimed, start: int = 6) -> int:
    """The fewest significant digits (from ``start``, at most 17) at which two counterexample
    values print differently, so that a rounded display never shows two equal-looking sides.

    >>> distinguishing_digits(1.0000001, 1.0000002), distinguishing_digits(1, 2)
    (8, 6)
    """
    for digits in range(start, 18):
        if number_latex(expected, digits) != number_latex(claimed, digits):
            return digits
    return 17


def array_latex(values, mark: tuple | None = None, name: str = "", digits: int = 6) -> str:
    """Nested lists (or an array) as a ``bmatrix``; the element at ``mark`` boxed in red.

    Vectors are rows; arrays of rank 3 and more are shown as their 2-D slices, each as
    ``name[0, 1, :, :] = ...`` (``name`` is LaTeX).

    >>> array_latex([[1, 2], [3, 4]], mark=(1, 0))
    '\\\\begin{bmatrix}1 & 2 \\\\\\\\ {\\\\color{red}\\\\boxed{3}} & 4\\\\end{bmatrix}'
    """
    return r",\quad ".join(array_pieces(values, mark, name, digits))


def array_pieces(values, mark: tuple | None = None, name: str = "", digits: int = 6) -> list[str]:
    """:func:`array_latex` as its pieces: one ``bmatrix``, or one ``name[...] = bmatrix`` per 2-D slice.

    >>> len(array_pieces(np.zeros((3, 1, 1)), name="w"))
    3
    """
    arr = np.array(values, dtype=object)
    mark = tuple(mark) if mark is not None else None
    if arr.ndim == 0:
        return [_entry(arr[()], mark == (), digits)]
    if arr.ndim <= 2:
        rows = arr.reshape(1, -1) if arr.ndim == 1 else arr
        at = None if mark is None else ((0,) + mark if arr.ndim == 1 else mark)
        body = r" \\ ".join(
            " & ".join(_entry(v, at == (r, c), digits) for c, v in enumerate(row)) for r, row in enumerate(rows)
        )
        return [r"\begin{bmatrix}%s\end{bmatrix}" % body]
    slices = []
    for lead in itertools.product(*(range(d) for d in arr.shape[:-2])):
        sub_mark = mark[-2:] if mark is not None and tuple(mark[:-2]) == lead else None
        where = "%s[%s, :, :]" % (name, ", ".join(map(str, lead)))
        slices.append("%s = %s" % (where, array_latex(arr[lead].tolist(), sub_mark, digits=digits)))
    return slices


def packed_lines(pieces: list[str], budget: int = LINE_BUDGET) -> str:
    """Pieces of a display, as many on a line as fit ``budget`` visible characters, lines stacked
    in a ``gathered`` block (a tensor's slices side by side would run far into the margin).

    >>> packed_lines(["a = 1", "b = 2", "c = 3"], budget=10)
    '\\\\begin{gathered}a = 1,\\\\quad b = 2 \\\\\\\\ c = 3\\\\end{gathered}'
    """
    lines: list[list[str]] = []
    for piece in pieces:
        if lines and visible_width(r",\quad ".join(lines[-1] + [piece])) <= budget:
            lines[-1].append(piece)
        else:
            lines.append([piece])
    body = r" \\ ".join(r",\quad ".join(line) for line in lines)
    return body if len(lines) <= 1 else r"\begin{gathered}%s\end{gathered}" % body


def _entry(value, marked: bool, digits: int = 6) -> str:
    text = number_latex(value, digits)
    return r"{\color{red}\boxed{%s}}" % text if marked else text


@dataclass
class CounterexampleView:
    """A counterexample ready for the template (math already LaTeX)."""

    sizes: str
    shape_mismatch: bool
    values: list = field(default_factory=list)
    expected: str = ""
    claimed: str = ""
    index: str = ""
    expected_shape: str = ""
    claimed_shape: str = ""
    message: str = ""


def counterexample_view(cex, layer, wrt: str) -> CounterexampleView:
    """Sizes, input values, and both sides with the differing element marked."""
    by_name = {s.name: s for s in layer.sizes}
    sizes = r",\quad ".join(
        math_latex(sp.Eq(by_name.get(str(k), sp.Symbol(str(k))), int(v), evaluate=False)) for k, v in cex.sizes.items()
    )
    if cex.is_shape_mismatch:
        claimed = "" if cex.claimed_shape is None else _shape_tuple(cex.claimed_shape)
        return CounterexampleView(
            sizes,
            True,
            expected_shape=_shape_tuple(cex.expected_shape),
            claimed_shape=claimed,
            message=_shape_message(cex),
        )
    values = [packed_lines(tensor_values_pieces(math_latex(sp.Symbol(n)), v)) for n, v in (cex.values or {}).items()]
    index = tuple(cex.index or ())
    digits = distinguishing_digits(cex.expected, cex.claimed)
    grad = gradient_symbol(layer, wrt)
    expected = packed_lines(_side_pieces(cex.expected_array, cex.expected, index, grad, digits))
    claimed = packed_lines(_side_pieces(cex.claimed_array, cex.claimed, index, r"\mathrm{claim}", digits))
    index_latex = math_latex(sp.IndexedBase(wrt)[index]) if index else math_latex(sp.Symbol(wrt))
    # the concrete function an abstract one (functions = ["f"]) stood for
    named = [f"Here {n}(u) = {f}." for n, f in (getattr(cex, "functions", None) or {}).items()]
    message = " ".join(m for m in (cex.message, *named) if m)
    return CounterexampleView(sizes, False, values, expected, claimed, index_latex, message=message)


def tensor_values_pieces(name: str, values) -> list[str]:
    """``name = matrix`` as one piece, or one piece ``name[0, :, :] = matrix`` per 2-D slice of a
    tensor of rank 3 or more.

    >>> tensor_values_pieces("x", [[[1]], [[2]]])
    ['x[0, :, :] = \\\\begin{bmatrix}1\\\\end{bmatrix}', 'x[1, :, :] = \\\\begin{bmatrix}2\\\\end{bmatrix}']
    """
    if np.ndim(np.array(values, dtype=object)) > 2:
        return array_pieces(values, name=name)
    return ["%s = %s" % (name, array_latex(values))]


def _side_pieces(array, number, index: tuple, name: str, digits: int) -> list[str]:
    if array is None:
        return [number_latex(number, digits)]
    return array_pieces(array, index, name=name, digits=digits)


def _shape_message(cex) -> str:
    """The search's note on a shape mismatch, without what the report's sentence already says."""
    message = str(cex.message or "")
    if cex.claimed_shape is None:
        if message.rstrip(". ") == "the claim is not defined at these sizes":
            return ""
        rest = message.removeprefix("the claim is not defined here: ")
        if rest != message:
            return "Reason: " + rest
    return message


def _shape_tuple(shape) -> str:
    return r"\left(%s\right)" % ", ".join(str(int(d)) for d in shape)


# -- the report's data -------------------------------------------------------------------


@dataclass
class ClaimView:
    """One claim and its verdict, ready for the template."""

    text: str
    verdict: str
    equation: Equation | None = None
    assumptions: list = field(default_factory=list)
    detail: str = ""
    reason: str = ""
    counterexample: CounterexampleView | None = None
    code: str = ""
    code_note: str = ""


@dataclass
class StepView:
    """One derivation step: its sentence and its numbered equation."""

    kind: str
    text: str
    equation: Equation | None


@dataclass
class SectionView:
    """The gradient with respect to one input."""

    wrt: str
    wrt_latex: str
    gradient_lhs: str
    steps: list
    claims: list
    reach: ReachPicture | None = None


def gradient_symbol(layer, wrt: str, index=()) -> str:
    """``\\frac{\\partial L}{\\partial x[p, q]}`` (or of the whole tensor without an index).

    >>> class _L: output = "L"
    >>> gradient_symbol(_L(), "s")
    '\\\\frac{\\\\partial L}{\\\\partial s}'
    """
    target = sp.IndexedBase(wrt)[tuple(index)] if index else sp.Symbol(wrt)
    return r"\frac{\partial %s}{\partial %s}" % (math_latex(sp.Symbol("L")), math_latex(target))


def _taken(layer) -> set[str]:
    return {s.name for s in layer.sizes} | set(layer.inputs) | {layer.output, "g", "L"}


def display_form(layer):
    """A function that reduces an expression's Piecewise branches under the layer's size assumptions."""
    facts, cache = layer.size_assumptions(), {}
    return lambda expr: settle_piecewise(expr, facts, cache)


def step_views(layer, derivation, section: int, show=None) -> list[StepView]:
    """The derivation's steps with numbered equations (the hand derivation's name as the tag)."""
    taken = _taken(layer) | {s.name for s in derivation.index}
    show = show or display_form(layer)
    out = []
    for k, step in enumerate(derivation.steps):
        eq = None
        if step.rhs is not None:
            eq = abbreviated_equation(show(step.lhs), show(step.rhs), f"eq:s{section}:{k}", step.label, taken)
        out.append(StepView(step.kind, step.text, eq))
    return out


def claim_latex(layer, claim: str, verdict) -> str:
    """The claim in the operator table's notation ('' when it cannot be read)."""
    try:
        from ..core import parse as language
        from ..core.tree import to_latex
    except ImportError:
        return ""
    parse = getattr(language, "parse_claim", None)
    if parse is None:
        return ""
    try:
        parsed = parse(claim, layer, verdict.wrt) if verdict.wrt else parse(claim, layer)
        tree = getattr(parsed, "tree", parsed)
        return to_latex(tree, names=safe_names(layer))
    except Exception:  # the report still shows the claim's text
        return ""


def claim_view(layer, wrt: str, claim: str, verdict, key: str) -> ClaimView:
    """A claim's verdict with its evidence: assumptions, counterexample, or reason."""
    view = ClaimView(text=claim, verdict=verdict.verdict, detail=verdict.detail, reason=verdict.reason)
    closed = claim_latex(layer, claim, verdict)
    if closed:
        view.equation = Equation(latex_equation_lines(gradient_symbol(layer, wrt), closed), key=key)
    view.assumptions = [_assumption_view(layer, text) for text in verdict.assumptions]
    if verdict.counterexample is not None:
        view.counterexample = counterexample_view(verdict.counterexample, layer, wrt)
    return view


def function_source(module: str, name: str) -> str:
    """The source of one top-level function of a (generated) module ('' if absent).

    >>> function_source("x = 1\\n\\ndef f(a):\\n    return a\\n", "f")
    'def f(a):\\n    return a'
    """
    tree = ast.parse(module)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(module, node) or ""
    return ""


def _assumption_view(layer, text: str) -> dict:
    for a in layer.assumptions:
        if a.text == text and a.kind == "size" and a.cond is not sp.true:
            return {"text": text, "latex": math_latex(a.cond)}
    return {"text": text, "latex": ""}


def layer_view(layer) -> dict:
    """The layer part of a report: description, inputs with shapes, assumptions, forward."""
    show = display_form(layer)
    out_idx = _output_indices(layer)
    out_sym = sp.IndexedBase(layer.output)[out_idx] if out_idx else sp.Symbol(layer.output)
    element = show(layer.forward_index if layer.forward_index is not None else layer.forward.element(out_idx))
    out_shape = tuple(show(d) for d in layer.forward.shape)
    # shown "for 0 <= i <= N - 1": guards those ranges imply (a keepdims reduction's) are 1 there
    in_range = range_facts(out_idx, out_shape)
    element = simplify_guards(element, list(layer.size_assumptions()) + in_range)
    forward = Equation(equation_lines(out_sym, element, _taken(layer) | {s.name for s in out_idx}), key="eq:forward")
    closed = ""
    if layer.forward_tree is not None:
        from ..core.tree import to_latex

        closed = latex_equation_lines(
            math_latex(sp.Symbol(layer.output)), to_latex(layer.forward_tree, names=safe_names(layer))
        )
    inputs = [
        {"name": n, "latex": math_latex(sp.Symbol(n)), "space": space_latex(s), "constant": n in layer.constants}
        for n, s in layer.inputs.items()
    ]
    output = {"latex": math_latex(sp.Symbol(layer.output)), "space": space_latex(out_shape)}
    ranges = [math_latex(sp.And(sp.Ge(i, 0), sp.Lt(i, d))) for i, d in zip(out_idx, out_shape, strict=True)]
    return {
        "name": layer.name,
        "description": layer.description,
        "forward_text": layer.forward_text,
        "inputs": inputs,
        "output": output,
        "is_loss": layer.is_loss,
        "assumptions": [_assumption_view(layer, a.text) for a in layer.assumptions],
        "forward": forward,
        "forward_ranges": r",\quad ".join(ranges),
        "closed": Equation(closed, key="eq:closed") if closed else None,
        "flip": flip_picture(layer),
    }


def _output_indices(layer) -> tuple:
    if layer.output_indices:
        return tuple(layer.output_indices)
    avoid = _taken(layer)
    letters = [c for c in "ijklabcdef" if c not in avoid]
    return tuple(index_symbol(c) for c in letters[: len(layer.forward.shape)])


def space_latex(shape) -> str:
    """``\\mathbb{R}^{H \\times W}`` for a shape (``\\mathbb{R}`` for a scalar).

    >>> space_latex((sp.Symbol("H"), sp.Symbol("W")))
    '\\\\mathbb{R}^{H \\\\times W}'
    """
    if not shape:
        return r"\mathbb{R}"
    # a dimension that is a sum is read as one factor of the product: (H - kh + 1) x (W - kw + 1)
    dims = [math_latex(d) if not isinstance(d, sp.Add) or len(shape) == 1 else r"(%s)" % math_latex(d) for d in shape]
    return r"\mathbb{R}^{%s}" % r" \times ".join(dims)


def claims_by_input(layer, claims: Mapping | None, wrt) -> dict[str, list[tuple[str, tuple]]]:
    """The inputs to report on, each with its (claim, extra assumptions) pairs.

    Without ``claims`` the layer's known claims are used, with their own assumptions.

    >>> class _L:
    ...     inputs = {"x": (), "t": ()}; constants = ("t",); differentiable = ("x",); claims = ()
    >>> claims_by_input(_L(), {"x": "g"}, None)
    {'x': [('g', ())]}
    """
    if isinstance(wrt, str):
        wrt = [wrt]
    names = list(wrt) if wrt else (list(claims) if claims else list(layer.differentiable))
    for name in names + list(claims or {}):
        if name not in layer.inputs:
            raise InputError(f"no input named {name!r} (inputs: {', '.join(layer.inputs)})", where="report")
        if name not in layer.differentiable:
            raise InputError(f"{name!r} is a constant of the layer; it has no gradient", where="report")
    out = {}
    for name in names:
        if claims is None:
            out[name] = [(c.claim, tuple(c.assume)) for c in layer.claims if c.wrt == name]
        else:
            given = claims.get(name, [])
            out[name] = [(text, ()) for text in ([given] if isinstance(given, str) else given)]
    return out


@dataclass(frozen=True)
class Evidence:
    """What a report shows about one layer, found beforehand (by :mod:`symderive.report`).

    ``sections`` holds, per input, its derivation and its claims as (text, extra
    assumptions, verdict); ``module`` the emitted NumPy module of the ``chosen`` claims
    ('' with ``note`` saying why there is none).
    """

    sections: tuple = ()
    chosen: dict = field(default_factory=dict)
    module: str = ""
    note: str = ""


def report_data(layer, evidence: Evidence) -> dict:
    """Everything a report shows, as template data, from derivations and verdicts found before."""
    sections, chosen, module, note = [], evidence.chosen, evidence.module, evidence.note
    for k, (name, derivation, entries) in enumerate(evidence.sections):
        views = [
            claim_view(layer, name, text, verdict, key=f"eq:c{k}:{j}") for j, (text, _, verdict) in enumerate(entries)
        ]
        sections.append(
            SectionView(
                wrt=name,
                wrt_latex=math_latex(sp.Symbol(name)),
                gradient_lhs=gradient_symbol(layer, name, derivation.index),
                steps=step_views(layer, derivation, k),
                claims=views,
                reach=reach_picture(layer, name),
            )
        )
    for section in sections:
        for view in section.claims:
            if view.verdict == "proved":
                emitted = chosen.get(section.wrt) == view.text and module
                view.code = latex_listing(function_source(module, f"grad_{section.wrt}")) if emitted else ""
                view.code_note = "" if view.code else (note or "(the module below emits another proved claim)")
    return {"layer": layer_view(layer), "sections": sections, "module": latex_listing(module) if module else ""}


# -- templates and output ----------------------------------------------------------------


def environment() -> jinja2.Environment:
    """The Jinja2 environment with LaTeX-safe delimiters and the escaping filter ``e``."""
    return latex_environment(latex_text)


def render_tex(layer, evidence: Evidence, code: bool = False) -> str:
    """The report's LaTeX source, from the evidence found before (``code``: with the emitted
    module as an appendix).

    >>> # render_tex(load_layer("conv2d"), evidence) -> '\\documentclass...'
    """
    return latex_document(report_document(layer, evidence, code))


def latex_document(document: B.Document) -> str:
    """A report's blocks as LaTeX source (the template ``report.tex.j2``).

    >>> doc = B.Document((B.Text("T"),), "s", (B.Paragraph((B.Text("50% of {x}"), B.Math("x^2"))),))
    >>> "50\\\\% of \\\\{x\\\\}$x^2$" in latex_document(doc)
    True
    """
    seen: set = set()

    def runs(items) -> str:
        return latex_runs(items, document.notes, seen)

    return (
        environment()
        .get_template("report.tex.j2")
        .render(
            title=document.title,
            subtitle=document.subtitle,
            blocks=document.blocks,
            runs=runs,
            kind=lambda b: type(b).__name__,
            listing=latex_listing,
        )
    )


#: a verdict mark in LaTeX (pifont's check mark and cross)
LATEX_MARKS = {
    "proved": r"\textcolor{proved}{\ding{51}}",
    "refuted": r"\textcolor{refuted}{\ding{55}}",
    "unknown": r"\textcolor{unknown}{\textbf{?}}",
}


def latex_runs(runs, notes: Mapping | None = None, seen: set | None = None) -> str:
    """Inline runs as LaTeX: text escaped, math in ``$...$``; a footnote's text at its first mark.

    >>> print(latex_runs((B.Strong("a_b"), B.Math("x^2"), B.Code("{x}"))))
    \\textbf{a\\_\\allowbreak{}b}$x^2$\\texttt{\\{x\\}}
    """
    notes, seen = notes or {}, seen if seen is not None else set()
    out = []
    for run in runs:
        # prose breaks at its spaces and inside a path; code (a claim as written) also after its punctuation
        if isinstance(run, B.Text):
            out.append(prose_text(run.text))
        elif isinstance(run, B.Strong):
            out.append(r"\textbf{%s}" % prose_text(run.text))
        elif isinstance(run, B.Emph):
            out.append(r"\textit{%s}" % prose_text(run.text))
        elif isinstance(run, B.Code):
            out.append(r"\texttt{%s}" % latex_text(run.text))
        elif isinstance(run, B.Math):
            out.append("$%s$" % run.latex)
        elif isinstance(run, B.Mark):
            out.append(LATEX_MARKS.get(run.verdict, LATEX_MARKS["unknown"]))
        elif isinstance(run, B.Note):
            if run.number in seen or run.number not in notes:
                out.append(r"\footnotemark[%d]" % run.number)
            else:
                seen.add(run.number)
                out.append(r"\footnote[%d]{%s}" % (run.number, latex_escape(notes[run.number])))
        else:
            raise TypeError(f"not an inline run: {run!r}")
    return "".join(out)


#: the report's formats, chosen by the output's suffix
REPORT_SUFFIXES = (".pdf", ".tex", ".md", ".html")


def check_output(output: str | Path) -> Path:
    """``output`` as a Path, after the checks that fail before any (slow) proof or compile."""
    if not isinstance(output, str | os.PathLike):
        raise TypeError(f"output is the path of the report (.pdf, .tex, .md or .html), got {type(output).__name__}")
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise InputError(
            f"the report's file name must end in .pdf, .tex, .md or .html, not {output.name!r}", where="report"
        )
    _require_writable_folder(output)
    if suffix == ".pdf":
        _require_latexmk(output)
    return output


def write_report(tex: str, output: Path) -> Path:
    """Write LaTeX source to ``output`` as itself (``.tex``) or compiled (``.pdf``); the text of
    another format (``.md``, ``.html``) as it is."""
    data = compile_pdf(tex) if output.suffix.lower() == ".pdf" else tex.encode("utf-8")
    try:
        # whole or not at all: a failed write leaves an earlier report as it was
        write_atomic(output, data)
    except OSError as err:
        raise InputError(f"cannot write {output}: {err.strerror or err}", where="report") from err
    return output


def _require_writable_folder(output: Path) -> None:
    """Fail before the (slow) proofs and compile when the report could not be written anyway."""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {output}: the folder {folder} does not exist", where="report")
    if not os.access(folder, os.W_OK | os.X_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise InputError(f"cannot write {output}: permission denied", where="report")
    if output.is_dir():
        raise InputError(f"cannot write {output}: it is a folder", where="report")


def _require_latexmk(output: Path) -> None:
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise InputError(
            f"writing {output.name} needs LaTeX (latexmk and pdflatex), which is not installed; "
            f"write the LaTeX source instead: -o {output.with_suffix('.tex').name}",
            where="report",
        )


class LatexError(InputError):
    """LaTeX failed on a report; the message holds the log's error lines."""


def compile_pdf(tex: str, timeout: float = 180.0) -> bytes:
    """Compile LaTeX source to PDF bytes with latexmk (shell escape off) in a temporary folder."""
    return compile_latex(tex, timeout)[0]


def compile_latex(tex: str, timeout: float = 180.0) -> tuple[bytes, str]:
    """(PDF bytes, LaTeX's log) of LaTeX source, compiled with latexmk (shell escape off)."""
    _require_latexmk(Path("report.pdf"))
    with tempfile.TemporaryDirectory(prefix="symderive-report-") as tmp:
        src = Path(tmp) / "report.tex"
        src.write_text(tex, encoding="utf-8")
        cmd = ["latexmk", "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "report.tex"]
        # paranoid file access: TeX may neither read nor write outside the folder
        env = dict(os.environ, openin_any="p", openout_any="p", shell_escape="f")
        try:
            run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise LatexError(f"LaTeX did not finish within {timeout:.0f} s", where="report") from err
        pdf, log = Path(tmp) / "report.pdf", Path(tmp) / "report.log"
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else run.stdout + run.stderr
        if run.returncode != 0 or not pdf.is_file():
            raise LatexError("LaTeX failed:\n" + latex_log_errors(text), where="report")
        return pdf.read_bytes(), text


def overfull_boxes(log: str) -> list[float]:
    r"""The widths (pt) by which lines stick out of the margin, from a LaTeX log.

    >>> overfull_boxes("Overfull \\hbox (74.2pt too wide) in paragraph at lines 5--9\nOverfull \\vbox (3.0pt too high)")
    [74.2]
    """
    return [float(w) for w in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]


def latex_log_errors(log: str, context: int = 4) -> str:
    """The lines of a LaTeX log that say what went wrong (``! ...`` and the lines after).

    >>> latex_log_errors("ok\\n! Undefined control sequence.\\nl.5 \\\\foo\\nmore")
    '! Undefined control sequence.\\nl.5 \\\\foo\\nmore'
    """
    lines = log.splitlines()
    picked: list[str] = []
    for k, line in enumerate(lines):
        if line.startswith("!"):
            picked += lines[k : k + context]
    return "\n".join(picked) if picked else "\n".join(lines[-20:])


# -- notebooks ---------------------------------------------------------------------------


def _md_code(text: str) -> str:
    return markdown_text(text, code=True)


def derivation_markdown(derivation) -> str:
    """A derivation in short, as Markdown with ``$$`` math (Jupyter's ``_repr_markdown_``)."""
    out = [f"**Gradient of {_md_code(derivation.layer)} with respect to {_md_code(derivation.wrt)}**", ""]
    layer = _builtin_layer(derivation.layer)
    for k, step in enumerate(derivation.steps, 1):
        tag = f" [{_md_plain(_label_words(step.label, layer))}]" if step.label else ""
        out.append(f"{k}. *{step.kind}*{tag}: {_md_plain(step.text)}")
        if step.rhs is not None:
            lines = equation_lines(step.lhs, step.rhs, budget=10**6)
            out.append("$$" + lines[0].replace("&=", "=") + "$$")
        out.append("")
    return "\n".join(out)


def _builtin_layer(name: str):
    """The built-in layer of this name (its description names the hand derivation), else None."""
    from ..model.layer import builtin_layer_names, load_layer

    try:
        return load_layer(name) if name in builtin_layer_names() else None
    except Exception:  # noqa: BLE001  (the label is then said without the document)
        return None


def _md_plain(text: str) -> str:
    return markdown_text(text)


def verdict_markdown(verdict) -> str:
    """A verdict in short, as Markdown with ``$$`` math (Jupyter's ``_repr_markdown_``)."""
    head = f"**{verdict.verdict}**: {_md_code(verdict.claim)}"
    if verdict.wrt:
        head += f" as the gradient with respect to {_md_code(verdict.wrt)}"
    if verdict.layer:
        head += f" of {_md_code(verdict.layer)}"
    out = [head, ""]
    if verdict.verdict == "proved":
        assumed = ", ".join(_md_code(a) for a in verdict.assumptions) or "none beyond sizes >= 1"
        out.append(f"Proved for all sizes and values under the assumptions: {assumed}.")
        if verdict.detail:
            out.append(_md_plain(verdict.detail))
    elif verdict.counterexample is not None:
        out += _cex_markdown(verdict.counterexample, verdict.wrt)
    elif verdict.reason:
        out.append("Reason: " + _md_plain(verdict.reason))
    return "\n".join(out)


def _cex_markdown(cex, wrt: str) -> list[str]:
    sizes = r",\ ".join(f"{math_latex(sp.Symbol(str(k)))} = {int(v)}" for k, v in cex.sizes.items())
    out = [f"Counterexample at $${sizes}$$"]
    if cex.is_shape_mismatch:
        claimed = "undefined" if cex.claimed_shape is None else str(tuple(cex.claimed_shape))
        out.append(f"expected shape {tuple(cex.expected_shape)}, claimed {claimed}. {_md_plain(cex.message)}")
        return out
    for name, v in (cex.values or {}).items():
        out.append(f"$${math_latex(sp.Symbol(name))} = {array_latex(v)}$$")
    index = tuple(cex.index or ())
    expected = array_latex(cex.expected_array, index) if cex.expected_array is not None else number_latex(cex.expected)
    claimed = array_latex(cex.claimed_array, index) if cex.claimed_array is not None else number_latex(cex.claimed)
    out.append(r"$$\text{true gradient } %s \quad\text{claim } %s$$" % (expected, claimed))
    return out


# -- the reader's presentation: guards the reads imply, the layer's equalities used ----------


def read_bounds(read, shapes: Mapping) -> list:
    """``0 <= index <= d - 1`` for each index of a read of a tensor whose shape is known.

    >>> n, p = sp.Symbol("n", integer=True, positive=True), index_symbol("p")
    >>> read_bounds(sp.IndexedBase("w")[p], {"w": (n,)})
    [p >= 0, p <= n - 1]
    """
    shape = shapes.get(str(read.base.label))
    if shape is None or len(shape) != len(read.indices):
        return []
    return [c for i, d in zip(read.indices, shape, strict=True) for c in (sp.Ge(i, 0), sp.Le(i, d - 1))]


def without_read_guards(expr, shapes: Mapping, facts: Iterable = ()) -> sp.Basic:
    """``expr`` without the guard conjuncts that only say a factor's read lies inside its tensor.

    A read outside its tensor's shape is zero (the report's convention, and the prover's),
    so a product with that read is zero whether the guard holds or not: dropping a conjunct
    the read's own bounds imply (proved by :func:`symderive.core.domains.implies`, never
    guessed) leaves the value unchanged. Only reads that are factors of the guarded product
    count (a read inside ``exp`` is not zero there).

    >>> k, i, p = sp.Symbol("k", integer=True, positive=True), index_symbol("i"), index_symbol("p")
    >>> w = sp.IndexedBase("w")
    >>> without_read_guards(Iverson(sp.And(p - i >= 0, p - i <= k - 1)) * w[p - i], {"w": (k,)})
    w[-i + p]
    """
    from ..core.domains import implies

    def visit(e, known):
        if isinstance(e, GSum):
            inner = known + [c for v, lo, hi in e.limits for c in (sp.Ge(v, lo), sp.Le(v, hi))]
            return GSum(visit(e.function, inner), *e.limits)
        if isinstance(e, sp.Mul):
            bounds = [c for r in _factor_reads(e) for c in read_bounds(r, shapes)]
            out = []
            for a in e.args:
                if isinstance(a, Iverson) and bounds and not a.args[0].has(sp.Indexed):
                    kept = [c for c in sp.And.make_args(a.args[0]) if implies(known + bounds, c) is not True]
                    out.append(Iverson(sp.And(*kept)))
                else:
                    out.append(visit(a, known))
            return sp.Mul(*out)
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(visit(a, known) for a in e.args))

    return visit(sp.sympify(expr), list(facts))


def _factor_reads(product) -> list:
    """The reads that are factors of a product (or positive integer powers of one)."""
    out = []
    for f in product.args:
        if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp > 0:
            f = f.base
        if isinstance(f, sp.Indexed):
            out.append(f)
    return out


def pulled_out(expr) -> sp.Basic:
    """``expr`` with the factors of each sum's body that do not depend on its variables taken out.

    >>> k, n, p = index_symbol("k"), sp.Symbol("n", integer=True, positive=True), index_symbol("p")
    >>> t, s = sp.IndexedBase("t"), sp.IndexedBase("s")
    >>> pulled_out(GSum(s[p] * t[k], (k, 0, n - 1)))
    Sum(t[k], (k, 0, n - 1))*s[p]
    """
    if not isinstance(expr, sp.Basic) or not expr.args or isinstance(expr, sp.Indexed | Iverson):
        return expr
    if isinstance(expr, GSum):
        body = pulled_out(expr.function)
        bound = {v for v, _, _ in expr.limits}
        outside = [f for f in sp.Mul.make_args(body) if not (f.free_symbols & bound)]
        inside = [f for f in sp.Mul.make_args(body) if f.free_symbols & bound]
        if not outside or not inside:
            return GSum(body, *expr.limits)
        return sp.Mul(*outside) * GSum(sp.Mul(*inside), *expr.limits)
    return expr.func(*(pulled_out(a) for a in expr.args))


def equalities(layer) -> list:
    """The layer's ``equal`` assumptions whose left side is a sum, as (sum, value, assumption).

    >>> from symderive.model.layer import load_layer
    >>> [a.text for _, _, a in equalities(load_layer("softmax_cross_entropy"))]
    ['sum(t) == 1']
    """
    from ..core.tree import build

    scope = {n: layer.input_tensor(n) for n in layer.inputs}
    out = []
    for a in layer.assumptions:
        if a.kind != "equal" or a.lhs is None or a.rhs is None:
            continue
        try:
            lhs, rhs = build(a.lhs, scope), build(a.rhs, scope)
        except Exception:  # an assumption the report cannot read as a scalar: not used here
            continue
        if lhs.shape == () and rhs.shape == ():
            left, right = lhs.element(()), rhs.element(())
            if isinstance(left, GSum) and not right.has(sp.Indexed):
                out.append((left, right, a))
    return out


def with_equalities(expr, found) -> tuple[sp.Basic, list]:
    """``expr`` with every sum that is the left side of one of ``found`` (from :func:`equalities`)
    replaced by its value, and the assumptions used.

    >>> k, n = index_symbol("k"), sp.Symbol("n", integer=True, positive=True)
    >>> total = GSum(sp.IndexedBase("t")[k], (k, 0, n - 1))
    >>> with_equalities(2 * total, [(total, sp.Integer(1), "a")])
    (2, ['a'])
    """
    keys = [(abbreviation_key(lhs), rhs, a) for lhs, rhs, a in found]
    used = []

    def swap(node):
        if isinstance(node, GSum):
            key = abbreviation_key(node)
            for k, rhs, a in keys:
                if key == k:
                    if a not in used:
                        used.append(a)
                    return rhs
        return None

    out = sp.sympify(expr).replace(lambda e: swap(e) is not None, swap)
    return out, used


# -- the report as blocks: the prose, written once for every format ----------------------------

#: footnote numbers: how a proof and how a refutation were found
PROOF_NOTE, SEARCH_NOTE = 1, 2
NOTES = {
    PROOF_NOTE: (
        "How it was checked: symderive compared the claim with the derived gradient symbolically, "
        "for all sizes at once (which positions each sum reaches was decided by integer arithmetic, "
        "the rest simplified exactly), then evaluated both exactly at the smallest sizes as a cross-check."
    ),
    SEARCH_NOTE: (
        "How it was found: symderive evaluated the claim and the derived gradient exactly, "
        "with small integer values at small sizes, until they differed."
    ),
}


@dataclass
class _Numbers:
    """Equation numbers, and which equations were already shown (said once, then referred to)."""

    count: int = 0
    shown: dict = field(default_factory=dict)

    def next(self) -> int:
        self.count += 1
        return self.count


def _equation_key(lhs, rhs) -> tuple:
    """Two equations with one key say the same thing (up to the names of summation variables)."""
    return math_latex(lhs), sp.srepr(_bound_renamed(sp.sympify(rhs)))


def _bound_renamed(expr):
    """``expr`` with its summation variables renamed to placeholders in reading order."""
    bound = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            bound += [lim[0] for lim in node.limits if lim[0] not in bound]
    return expr.xreplace(dict(zip(bound, _BOUND, strict=False)))


def _assumption_math(layer, text: str) -> str:
    """An assumption as math ('' when it cannot be shown as such)."""
    from ..core.parse import parse_assumption
    from ..core.tree import to_latex

    try:
        a = parse_assumption(text, dict(layer.inputs), list(layer.sizes))
    except Exception:  # shown as the layer file's text instead
        return ""
    if a.kind == "size":
        return math_latex(a.cond) if a.cond is not sp.true else ""
    rel = {"==": "=", ">=": r"\geq", "<=": r"\leq", ">": ">", "<": "<", "!=": r"\neq"}.get(a.rel, "")
    if not rel or a.lhs is None or a.rhs is None:
        return ""
    names = safe_names(layer)
    return "%s %s %s" % (to_latex(a.lhs, names=names), rel, to_latex(a.rhs, names=names))


def _assumption_runs(layer, texts) -> list:
    """Assumptions as inline runs, separated by commas: math where it can be, else the text."""
    out: list = []
    for k, text in enumerate(texts):
        if k:
            out.append(B.Text(" and " if k == len(texts) - 1 else ", "))
        shown = _assumption_math(layer, text)
        out.append(B.Math(shown) if shown else B.Code(text))
    return out


def _label_words(label: str, layer) -> str:
    """A step's equation name, with the document it is from when the layer's description names one.

    >>> class _L: description = "as in examples/derivations/notes.md"
    >>> _label_words("(2)", _L()), _label_words("Eq. E", type("L", (), {"description": ""})())
    ('Eq. (2) of examples/derivations/notes.md', 'Eq. E of the hand derivation')
    """
    label = str(label).strip()
    named = label if label.lower().startswith("eq") else "Eq. " + label
    doc = re.search(r"examples/derivations/[\w./-]+\.md", str(getattr(layer, "description", "") or ""))
    return f"{named} of {doc.group(0) if doc else 'the hand derivation'}"


def _display(equation: Equation, number: int = 0, boxed: bool = False) -> B.Display:
    return B.Display(tuple(equation.lines), number=number, where=tuple(equation.where), boxed=boxed)


def report_document(layer, evidence: Evidence, code: bool = False) -> B.Document:
    """The whole report as blocks (see :mod:`symderive.render.blocks`), from the evidence found
    before; ``code`` adds the emitted NumPy module as an appendix.

    >>> # report_document(load_layer("linear"), evidence).blocks[0]
    """
    numbers = _Numbers()
    blocks = _layer_blocks(layer, numbers)
    for k, (name, derivation, entries) in enumerate(evidence.sections):
        blocks += _section_blocks(layer, name, derivation, entries, numbers, k)
    if code:
        blocks += _code_blocks(evidence)
    used = {run.number for b in blocks for run in _runs_of(b) if isinstance(run, B.Note)}
    title = (B.Text("Gradients of the layer "), B.Code(layer.name))
    return B.Document(title, "written and checked by symderive", tuple(blocks), {n: NOTES[n] for n in sorted(used)})


def _runs_of(block) -> list:
    if isinstance(block, B.Paragraph | B.Heading):
        return list(block.runs)
    if isinstance(block, B.Items):
        return [r for item in block.items for r in item]
    if isinstance(block, B.Picture):
        return list(block.caption)
    return []


def _layer_blocks(layer, numbers: _Numbers) -> list:
    view = layer_view(layer)
    out: list = [B.Heading(1, (B.Text("The layer"),))]
    if layer.description:
        out.append(B.Paragraph((B.Text(layer.description),)))
    # the inputs in one sentence ("x in R^n, w in R^(m x n) and b in R^m"): a list would take a line each
    runs: list = [B.Strong("Inputs. ")]
    for k, x in enumerate(view["inputs"]):
        if k:
            runs.append(B.Text(" and " if k == len(view["inputs"]) - 1 else ", "))
        runs.append(B.Math(r"%s \in %s" % (x["latex"], x["space"])))
        if x["constant"]:
            runs.append(B.Text(" (a constant: data, not differentiated)"))
    out.append(B.Paragraph((*runs, B.Text("."))))
    y = view["output"]
    tail = (
        [B.Text(", the loss.")]
        if layer.is_loss
        else [
            B.Text("; the loss is "),
            B.Math(r"L = \sum g \odot %s" % y["latex"]),
            B.Text(" with the upstream gradient "),
            B.Math("g"),
            B.Text(" of the same shape."),
        ]
    )
    out.append(B.Paragraph((B.Strong("Output. "), B.Math(r"%s \in %s" % (y["latex"], y["space"])), *tail)))
    texts = [a.text for a in layer.assumptions]
    if texts:
        out.append(B.Paragraph((B.Strong("Assumptions. "), *_assumption_runs(layer, texts), B.Text("."))))
    else:
        out.append(B.Paragraph((B.Strong("Assumptions. "), B.Text("Every size is at least 1; nothing more."))))
    forward = view["forward"]
    if view["closed"]:
        out.append(B.Paragraph((B.Strong("Forward pass. "), B.Text("In closed form:"))))
        out.append(_display(view["closed"], numbers.next()))
        lead = [B.Text("Element by element")]
    else:
        lead = [B.Strong("Forward pass. "), B.Text("Element by element")]
    ranges = [B.Text(", for "), B.Math(view["forward_ranges"])] if view["forward_ranges"] else []
    out.append(B.Paragraph((*lead, *ranges, B.Text(" (a read outside a tensor's shape is zero):"))))
    number = numbers.next()
    out.append(_display(forward, number))
    numbers.shown[_forward_key(layer)] = number
    flip = view["flip"]
    if flip:
        out.append(
            B.Paragraph(
                (
                    B.Strong("The kernel flip. "),
                    B.Text(f"Convolution and correlation differ by a flip of the kernel in {flip.axes}:"),
                )
            )
        )
        out.append(_display(flip.definition, numbers.next()))
        out.append(B.Picture("flip", flip, (B.Text("The kernel (left) and its flip (right)."),)))
    return out


def _forward_key(layer) -> tuple:
    """The key of the forward pass's element equation (as the derivations' forward step writes it)."""
    out_idx = _output_indices(layer)
    out_sym = sp.IndexedBase(layer.output)[out_idx] if out_idx else sp.Symbol(layer.output)
    show = display_form(layer)
    element = show(layer.forward_index if layer.forward_index is not None else layer.forward.element(out_idx))
    out_shape = tuple(show(d) for d in layer.forward.shape)
    element = simplify_guards(element, list(layer.size_assumptions()) + range_facts(out_idx, out_shape))
    return _equation_key(out_sym, element)


def _shapes(layer) -> dict:
    """Each tensor a gradient reads, with its shape (``g``: the output's)."""
    show = display_form(layer)
    shapes = {n: tuple(show(d) for d in s) for n, s in layer.inputs.items()}
    if not layer.is_loss:
        shapes["g"] = tuple(show(d) for d in layer.forward.shape)
    return shapes


def reader_steps(layer, derivation) -> list[tuple]:
    """The derivation's steps as (kind, sentence runs, lhs, rhs, label) for a reader: guards that
    only say a read lies inside its tensor dropped (a read outside is zero), and the layer's
    equalities (``sum(t) == 1``) used, each in a step of its own."""
    shapes = _shapes(layer)
    facts = list(layer.size_assumptions()) + range_facts(derivation.index, shapes.get(derivation.wrt, ()))
    steps, out = list(derivation.steps), []
    said_guards = False
    for k, s in enumerate(steps):
        runs = step_runs(s.text)
        rhs = s.rhs
        if s.kind in ("partial derivative, deltas summed", "reindex", "kernel offsets", "result", "guards"):
            rhs = without_read_guards(rhs, shapes, facts)
        if s.kind == "guards":
            said_guards = True
            if rhs != s.rhs:
                runs = step_runs(s.text.rstrip(".") + ", and those that only say a read lies inside its tensor.")
        if s.kind == "result":
            rhs, more = _equality_steps(layer, s.lhs, rhs)
            out += more
        out.append((s.kind, runs, s.lhs, rhs, s.label))
        if s.kind == "delta elimination" and not any(t.kind == "guards" for t in steps[k + 1 :]):
            dropped = without_read_guards(s.rhs, shapes, facts)
            if dropped != s.rhs and not said_guards:
                words = "Drop the guards that only say a read lies inside its tensor (a read outside is zero)."
                out.append(("guards", [B.Text(words)], s.lhs, dropped, ""))
    return out


#: the names and formulas in the deriver's sentences, set as math: "with g = dL/dy", "(m = p - i,
#: n = q - j)", "every p, q inside the shape of w", "each read of gamma", "with respect to x"
_STEP_MATH = re.compile(
    r"(?P<upstream>\bg = dL/d(?P<out>[A-Za-z]\w*))"
    r"|\((?P<subst>[A-Za-z]\w* = [A-Za-z0-9_ +*-]+(?:, [A-Za-z]\w* = [A-Za-z0-9_ +*-]+)*)\)"
    r"|(?<=\bevery )(?P<indices>[A-Za-z]\w*(?:, [A-Za-z]\w*)*)(?= inside the shape of )"
    r"|(?<=\bthe shape of )(?P<shape>[A-Za-z]\w*)"
    r"|(?<=\bread of )(?P<read>[A-Za-z]\w*)"
    r"|(?<=\bwith respect to )(?P<wrt>[A-Za-z]\w*)"
)


def _names_latex(text: str) -> str:
    """Identifiers of ``text`` (a formula of names, integers and + - * =) printed as math names."""
    return re.sub(r"[A-Za-z]\w*", lambda m: math_latex(sp.Symbol(m.group(0))), text)


def step_runs(text: str) -> list:
    """A derivation step's sentence as runs, its names and formulas as math.

    >>> [type(r).__name__ for r in step_runs("The loss, with g = dL/dy.")]
    ['Text', 'Math', 'Text']
    >>> step_runs("Each read of gamma.")[1].latex
    '\\\\gamma'
    """
    out: list = []
    k = 0
    for m in _STEP_MATH.finditer(text):
        if m.start() > k:
            out.append(B.Text(text[k : m.start()]))
        if m.group("upstream"):
            y = math_latex(sp.Symbol(m.group("out")))
            out.append(B.Math(r"g = \partial L / \partial %s" % y))
        elif m.group("subst"):
            out += [B.Text("("), B.Math(_names_latex(m.group("subst")).replace(", ", r",\ ")), B.Text(")")]
        else:
            out.append(B.Math(_names_latex(m.group(0))))
        k = m.end()
    if k < len(text):
        out.append(B.Text(text[k:]))
    return out


def _equality_steps(layer, lhs, rhs) -> tuple[sp.Basic, list]:
    """(the gradient with the layer's equalities used, the steps that use them)."""
    found = equalities(layer)
    if not found:
        return rhs, []
    pulled = pulled_out(rhs)
    used_form, used = with_equalities(pulled, found)
    if not used:
        return rhs, []
    steps = []
    if pulled != rhs:
        steps.append(
            (
                "factor",
                [B.Text("Take out of each sum the factors that do not depend on its variable.")],
                lhs,
                pulled,
                "",
            )
        )
    runs: list = [B.Text("Use the layer's assumption ")]
    for k, a in enumerate(used):
        if k:
            runs.append(B.Text(" and "))
        shown = _assumption_math(layer, a.text)
        runs.append(B.Math(shown) if shown else B.Code(a.text))
    runs.append(B.Text(":"))
    for lhs_sum, value, a in found:
        if a in used:
            runs += [B.Text(" "), B.Math("%s = %s" % (math_latex(lhs_sum), math_latex(value)))]
    runs.append(B.Text("."))
    steps.append(("assumption", runs, lhs, used_form, ""))
    return used_form, steps


def _section_blocks(layer, name: str, derivation, entries, numbers: _Numbers, k: int) -> list:
    out: list = [B.Heading(1, (B.Text("The gradient with respect to "), B.Math(math_latex(sp.Symbol(name)))))]
    taken = _taken(layer) | {s.name for s in derivation.index}
    show = display_form(layer)
    previous = None
    for j, (kind, runs, lhs, rhs, label) in enumerate(reader_steps(layer, derivation)):
        lhs, rhs = show(lhs), show(rhs)
        key = _equation_key(lhs, rhs)
        head = [B.Emph(kind[:1].upper() + kind[1:] + ". ")]
        tag = [B.Text(" (" + _label_words(label, layer) + ")")] if label else []
        if key == previous and kind != "result":
            continue  # nothing changed in this step: it is not said
        if kind == "result":
            if key in numbers.shown:
                # the equation shown before (in this section) is the result: framed as one
                shown = numbers.shown[key]
                for at, block in enumerate(out):
                    if isinstance(block, B.Display) and block.number == shown:
                        out[at] = dataclasses.replace(block, boxed=True)
                out.append(B.Paragraph((B.Strong("Result. "), *_result_words(name, numbers.shown[key]))))
                continue
            head = [B.Strong("Result. ")]
        number = numbers.shown.get(key)
        if number is not None:
            out.append(B.Paragraph((*head, *runs, *tag, B.Text(f" This is ({number})."))))
            previous = key
            continue
        number = numbers.next()
        numbers.shown[key] = number
        out.append(B.Paragraph((*head, *runs, *tag)))
        eq = abbreviated_equation(lhs, rhs, key=f"eq:s{k}:{j}", taken=taken)
        out.append(_display(eq, number, boxed=kind == "result"))
        previous = key
    out += _picture_blocks(layer, name)
    if entries:
        out.append(B.Heading(2, (B.Text("Claims"),)))
    for j, (text, _, verdict) in enumerate(entries):
        out += _claim_blocks(layer, name, text, verdict, j + 1)
    return out


def _result_words(name: str, number: int) -> list:
    return [B.Text("The gradient with respect to "), B.Math(math_latex(sp.Symbol(name))), B.Text(f" is ({number}).")]


def _picture_blocks(layer, name: str) -> list:
    # a kernel element reaches every output: what it multiplies is the picture that says something
    meets = kernel_picture(layer, name)
    reach = reach_picture(layer, name) if meets is None else None
    if reach is not None:
        words = (
            B.Text("Which outputs one element reaches: at the small sizes "),
            B.Math(reach.sizes_latex),
            B.Text(", the input element "),
            B.Math(reach.element_latex),
            B.Text(" (left, red) enters the shaded outputs of "),
            B.Math(reach.output_name),
            B.Text(" (right, blue); its gradient collects "),
            B.Math("g"),
            B.Text(" over exactly these positions."),
            *(
                [B.Text(f" One batch element and one channel in and out are drawn ({reach.note}).")]
                if reach.note
                else []
            ),
        )
        return [B.Picture("reach", reach, words)]
    if meets is not None:
        words = (
            B.Text("What one kernel element meets: at the small sizes "),
            B.Math(meets.sizes_latex),
            B.Text(", the kernel element "),
            B.Math(meets.element_latex),
            B.Text(" (left, red) multiplies the shaded elements of "),
            B.Math(meets.output_name),
            B.Text(" (right, blue), one for each output; its gradient is their sum, each weighted by "),
            B.Math("g"),
            B.Text(" at that output."),
        )
        return [B.Picture("reach", meets, words)]
    return []


def claim_math(layer, wrt: str, claim: str, verdict) -> str:
    """``\\frac{\\partial L}{\\partial x} = <the claim>`` in the operator table's notation ('' if unreadable)."""
    indexed = _index_form_math(layer, wrt, claim)
    if indexed:
        return indexed
    closed = claim_latex(layer, claim, verdict)
    if not closed:
        return ""
    closed = _without_outer_parentheses(closed)
    return "%s = %s" % (gradient_symbol(layer, wrt), closed)


def _index_form_math(layer, wrt: str, claim: str) -> str:
    """An index-form claim (``dx[p] == ...``) as ``\\frac{\\partial L}{\\partial x[p]} = ...`` ('' for another)."""
    from ..core.parse import parse_claim

    try:
        parsed = parse_claim(claim, layer, wrt)
    except Exception:  # the report still shows the claim's text
        return ""
    if not getattr(parsed, "is_index_form", False):
        return ""
    index = tuple(parsed.index)
    # the guards the parser put around the reads say only that they lie inside their tensors
    # (proved so, then dropped); the sums it bounded are shown as written, without bounds
    body = without_read_guards(parsed.body, _shapes(layer), layer.size_assumptions())
    printer = ReportPrinter()
    printer.open_limits = True
    return "%s = %s" % (gradient_symbol(layer, wrt, index), printer.doprint(readable(body, {str(i) for i in index})))


def _without_outer_parentheses(latex: str) -> str:
    r"""``\left(a\right)`` as ``a`` when the parentheses span the whole formula.

    >>> _without_outer_parentheses(r"\left(g \ast w\right)"), _without_outer_parentheses(r"\left(a\right) + \left(b\right)")
    ('g \\ast w', '\\left(a\\right) + \\left(b\\right)')
    """
    text = latex.strip()
    if not (text.startswith(r"\left(") and text.endswith(r"\right)")):
        return text
    depths = _depths(text)
    # the group opened first closes only at the very end: no depth-0 point in between
    if any(d == 0 for d in depths[len(r"\left(") : len(text) - len(r"\right)")]):
        return text
    return text[len(r"\left(") : -len(r"\right)")].strip()


#: a sum printed without bounds (see ReportPrinter.open_limits), and what it means
OPEN_SUM = re.compile(r"\\sum_\{[^{}=]*\}")
OPEN_SUM_WORDS = "(A sum written without bounds runs over every index at which its reads lie inside their tensors.)"


def _claim_blocks(layer, wrt: str, text: str, verdict, number: int) -> list:
    shown = claim_math(layer, wrt, text, verdict)
    head = [B.Strong(f"Claim {number}. ")]
    out: list = []
    if shown:
        out.append(B.Paragraph((*head, B.Text("The gradient is claimed to be"))))
        out.append(B.Display(tuple(latex_equation_lines(*shown.split(" = ", 1)))))
        if OPEN_SUM.search(shown):
            out.append(B.Paragraph((B.Text(OPEN_SUM_WORDS),)))
    else:
        out.append(B.Paragraph((*head, B.Text("The gradient is claimed to be "), B.Code(text), B.Text("."))))
    out.append(B.Paragraph(tuple(_verdict_runs(layer, verdict))))
    if verdict.verdict == "refuted":
        out += _refutation_blocks(layer, wrt, verdict)
    return out


def _verdict_runs(layer, verdict) -> list:
    if verdict.verdict == "proved":
        sizes = [t for t in verdict.assumptions if _is_size_assumption(layer, t)]
        values = [t for t in verdict.assumptions if t not in sizes]
        runs: list = [B.Mark("proved"), B.Strong(" Proved"), B.Text(": it holds for every size")]
        if sizes:
            runs += [B.Text(" with "), *_assumption_runs(layer, sizes)]
        runs.append(B.Text(" and all values of the inputs"))
        if values:
            runs += [B.Text(" with "), *_assumption_runs(layer, values)]
        return [*runs, B.Text("."), B.Note(PROOF_NOTE)]
    if verdict.verdict == "refuted":
        return [B.Mark("refuted"), B.Strong(" Refuted"), B.Text(": it does not hold."), B.Note(SEARCH_NOTE)]
    reason = verdict.reason or "no reason given"
    return [B.Mark("unknown"), B.Strong(" Not decided"), B.Text(f": {reason}.".replace("..", "."))]


def _is_size_assumption(layer, text: str) -> bool:
    from ..core.parse import parse_assumption

    try:
        return parse_assumption(text, dict(layer.inputs), list(layer.sizes)).kind == "size"
    except Exception:  # shown with the values' assumptions
        return False


def _refutation_blocks(layer, wrt: str, verdict) -> list:
    out: list = []
    cex = verdict.counterexample
    if cex is None:
        if verdict.reason:
            out.append(B.Paragraph((B.Text(verdict.reason),)))
    else:
        view = counterexample_view(cex, layer, wrt)
        if view.shape_mismatch:
            claimed = (
                [B.Text("the claim has shape "), B.Math(view.claimed_shape), B.Text(".")]
                if view.claimed_shape
                else [B.Text("the claim is not defined at these sizes.")]
            )
            runs = [
                B.Text("A counterexample: at the sizes "),
                B.Math(view.sizes),
                B.Text(" the true gradient has shape "),
            ]
            out.append(B.Paragraph((*runs, B.Math(view.expected_shape), B.Text(", "), *claimed)))
            if view.message:
                out.append(B.Paragraph((B.Text(view.message),)))
        else:
            out.append(B.Paragraph((B.Text("A counterexample: at the sizes "), B.Math(view.sizes), B.Text(", with"))))
            out.append(B.Display((packed_lines(list(view.values)),)))
            runs = (B.Text("the true gradient and the claim differ at "), B.Math(view.index), B.Text(" (boxed):"))
            out.append(B.Paragraph(runs))
            out.append(B.Display((r"\text{true gradient: }\ %s" % view.expected,)))
            out.append(B.Display((r"\text{claim: }\ %s" % view.claimed,)))
            if view.message:
                out.append(B.Paragraph((B.Text(view.message),)))
    for variant in _variants_of(verdict):
        out.append(_variant_paragraph(layer, wrt, variant, verdict))
    return out


def _variants_of(verdict) -> tuple:
    """The nearest true variants a verdict carries (found by :mod:`symderive.search`), if any."""
    for name in ("variants", "nearest", "nearest_variants"):
        found = getattr(verdict, name, None)
        if found:
            return tuple(found)[:1]
    return ()


def _variant_paragraph(layer, wrt: str, variant, verdict) -> B.Paragraph:
    """The paragraph saying a nearest true variant: "the nearest claim that holds is <math>: <why>"."""
    claim = getattr(variant, "claim", "")
    explanation = str(getattr(variant, "explanation", "") or "")
    why = explanation.split("`: ", 1)[1] if "`: " in explanation else ""
    shown = claim_math(layer, wrt, claim, verdict) if claim else ""
    runs: list = [B.Strong("What would hold. ")]
    if shown:
        runs += [B.Text("The nearest claim that holds is "), B.Math(shown)]
    else:
        runs += [B.Text("The nearest claim that holds is "), B.Code(claim or explanation)]
    if why:
        runs.append(B.Text(": " + why))
    assume = tuple(getattr(variant, "assume", ()) or ())
    if assume:
        runs += [B.Text(", assuming "), *_assumption_runs(layer, list(assume))]
    runs.append(B.Text("."))
    return B.Paragraph(tuple(runs))


def _code_blocks(evidence: Evidence) -> list:
    out: list = [B.Heading(1, (B.Text("Appendix: the emitted NumPy module"),))]
    if evidence.module:
        words = (
            "The module symderive writes for the proved claims above (symderive codegen); it imports only "
            "NumPy and was checked against the derivation before it was written."
        )
        out += [B.Paragraph((B.Text(words),)), B.CodeBlock(evidence.module)]
    else:
        out.append(B.Paragraph((B.Text(evidence.note or "No claim was proved: there is no code to emit."),)))
    return out


def kernel_picture(layer, wrt: str) -> ReachPicture | None:
    """For the 2-D (or 1-D) kernel ``wrt`` of a convolution layer: the data elements one kernel
    element multiplies, at small sizes with a kernel of at least 3 x 3 (None elsewhere)."""
    from ..decide.concrete import concrete_shape, evaluate

    if layer.forward_tree is None:
        return None
    calls = [c for c in signal_calls(layer.forward_tree) if _first_ref(c, (OPERATORS[c.op].kernel,)) == wrt]
    if not calls or OPERATORS[calls[0].op].spatial_axes:
        return None
    data = next((r for r in _call_refs(calls[0]) if r != wrt and r in layer.inputs), None)
    if data is None or len(layer.inputs[wrt]) not in (1, 2) or len(layer.inputs[data]) != len(layer.inputs[wrt]):
        return None
    sizes = illustrative_sizes(layer, data)
    if sizes is None:
        return None
    values = _symbol_values(layer, sizes)
    try:
        out = evaluate(layer.forward, sizes, values, exact=True)
        kernel_shape = concrete_shape(layer.input_tensor(wrt), sizes)
        data_shape = concrete_shape(layer.input_tensor(data), sizes)
    except Exception:  # no picture rather than no report
        return None
    element = tuple(d // 2 for d in kernel_shape)
    target = values[wrt][element]
    met = set()
    for p in np.ndindex(out.shape):
        coefficient = sp.diff(sp.expand(sp.sympify(out[p])), target)
        met |= {s for s in coefficient.free_symbols if s.name.startswith(f"v_{data}_")}
    cells = tuple(sorted(tuple(int(k) for k in s.name.removeprefix(f"v_{data}_").split("_")) for s in met))

    def as2d(t, fill=0):
        t = tuple(t)
        return t if len(t) == 2 else (fill,) + t

    return ReachPicture(
        input_name=math_latex(sp.Symbol(wrt)),
        output_name=math_latex(sp.Symbol(data)),
        input_shape=as2d(kernel_shape, 1),
        output_shape=as2d(data_shape, 1),
        element=as2d(element),
        reached=tuple(as2d(c) for c in cells),
        element_latex=math_latex(sp.IndexedBase(wrt)[element]),
        sizes_latex=r",\ ".join(math_latex(sp.Eq(s, v)) for s, v in sizes.items()),
    )


def _call_refs(call) -> list[str]:
    from ..core.tree import Ref

    return [v.name for _, v in call.args if isinstance(v, Ref)]


def _symbol_values(layer, sizes) -> dict:
    """Every input at concrete sizes, each element a symbol ``v_<name>_<i>_<j>``."""
    values = {}
    for name, shape in layer.inputs.items():
        dims = tuple(int(sp.sympify(d).subs(sizes)) for d in shape)
        cells = np.empty(dims, dtype=object)
        for point in itertools.product(*(range(d) for d in dims)):
            cells[point] = sp.Symbol(f"v_{name}_" + "_".join(map(str, point)))
        values[name] = cells
    return values
