r"""LaTeX math to MathML for HTML pages and notebooks, through latex2mathml, failing loudly.

latex2mathml turns what it does not know into text that looks like math: an unknown macro
``\foo`` becomes ``<mi>\foo</mi>``, an unknown environment is dropped, a ``&`` outside an
alignment becomes ``<mi>&</mi>``, ``\frac{a}`` a fraction with one part, and its output
un-escapes ``\text{<script>}`` into markup. :func:`math_element` converts through
latex2mathml's element tree, refuses every one of those with :class:`MathError`, and
serialises the tree itself, escaping all text and keeping only MathML attributes.

>>> math_element(r"\frac{a}{b}", display=False).count("<mfrac>")
1
"""

from __future__ import annotations

import html
import re
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from latex2mathml.converter import Converter

from symderive.errors import InputError

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

#: environments latex2mathml lacks, as the one it has that shows them alike
ENVIRONMENT_ALIASES = {
    "aligned": "align*",
    "align": "align*",
    "alignat": "align*",
    "alignat*": "align*",
    "alignedat": "align*",
    "flalign": "align*",
    "flalign*": "align*",
    "eqnarray": "align*",
    "eqnarray*": "align*",
    "gather": "displaylines",
    "gather*": "displaylines",
    "gathered": "displaylines",
    "multline": "displaylines",
    "multline*": "displaylines",
}
#: environments latex2mathml converts (after the aliases above)
KNOWN_ENVIRONMENTS = frozenset(
    "matrix matrix* pmatrix pmatrix* bmatrix bmatrix* Bmatrix Bmatrix* vmatrix vmatrix* Vmatrix "
    "Vmatrix* array smallmatrix subarray cases displaylines split align* align".split()
)
#: environments that only wrap a formula (their content is the formula)
WRAPPING_ENVIRONMENTS = frozenset("equation equation* displaymath math".split())
#: macros refused outright: links (``javascript:`` URLs) and definitions (expansion bombs)
REFUSED_MACROS = frozenset(
    r"\href \url \def \gdef \edef \newcommand \renewcommand \providecommand \newenvironment".split()
)
#: the attributes latex2mathml writes that MathML Core or a browser's stylesheet reads
ATTRIBUTES = frozenset(
    "xmlns display accent columnalign columnlines columnspacing displaystyle fence form height "
    "largeop linebreak linethickness lspace mathcolor mathsize mathvariant maxsize minsize "
    "movablelimits notation rowlines rowspacing rspace scriptlevel separator stretchy voffset width".split()
)
#: how many children an element must have (a missing argument leaves one out)
ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "munder": 2, "mover": 2, "munderover": 3, "mroot": 2}

_ENVIRONMENT = re.compile(r"\\(begin|end)\s*\{([^{}]*)\}")
_LABEL = re.compile(r"\\label\s*\{[^{}]*\}")
_CIRCLED = re.compile(r"\\textcircled\s*\{([^{}]*)\}")
_MACRO = re.compile(r"\\[A-Za-z]+")
_BRACE = re.compile(r"\\.|[{}]", re.S)  # an escaped character is skipped whole (\\{ and \\\\)
_TEXT_ENTITY = re.compile(r"&#x?[0-9A-Fa-f]+;")


class MathError(InputError):
    """LaTeX that cannot be shown as MathML: an unknown macro or environment, a missing part.

    >>> str(MathError("unknown macro \\\\foo", where="math"))
    'math: unknown macro \\\\foo'
    """


def _circled(match: re.Match) -> str:
    label = match.group(1).strip()
    if label.isdigit() and 1 <= int(label) <= 20:
        return "\\text{" + chr(0x245F + int(label)) + "}"
    return "\\text{(" + label + ")}"


def _environment(match: re.Match) -> str:
    kind, name = match.group(1), match.group(2).strip()
    if name in WRAPPING_ENVIRONMENTS:
        return " "
    name = ENVIRONMENT_ALIASES.get(name, name)
    if name not in KNOWN_ENVIRONMENTS:
        raise MathError(f"unknown environment {match.group(2)!r}", where="math")
    return "\\" + kind + "{" + name + "}"


def normalised(latex: str) -> str:
    r"""``latex`` in the subset latex2mathml reads: environments by their aliases, labels dropped,
    ``\textcircled`` as a circled number; a refused macro or unknown environment raises.

    >>> normalised(r"\begin{aligned} a &= b \end{aligned}")
    '\\begin{align*} a &= b \\end{align*}'
    """
    for macro in _MACRO.findall(latex):
        if macro in REFUSED_MACROS:
            raise MathError(f"{macro} is not allowed in math shown on a page", where="math")
    _require_balanced_braces(latex)
    latex = _LABEL.sub(" ", latex)
    latex = _CIRCLED.sub(_circled, latex)
    return _ENVIRONMENT.sub(_environment, latex)


def _require_balanced_braces(latex: str) -> None:
    depth = 0
    for brace in _BRACE.findall(latex):
        if brace.startswith("\\"):
            continue
        depth += 1 if brace == "{" else -1
        if depth < 0:
            raise MathError("a closing brace } without its opening {", where="math")
    if depth:
        raise MathError("an opening brace { is never closed", where="math")


def _checked(element: Element) -> None:
    """Raise on the marks latex2mathml leaves where it did not understand its input."""
    for node in element.iter():
        text = node.text or ""
        if "\\" in _TEXT_ENTITY.sub("", text):
            raise MathError(f"unknown macro {text.strip()!r}", where="math")
        if node.tag in ("mi", "mo", "mn") and _TEXT_ENTITY.sub("", text).strip() == "&":
            raise MathError("an alignment & outside an aligned environment", where="math")
        if node.tag == "merror":
            raise MathError("the converter reported an error", where="math")
        if node.tag in ARITY and len(node) != ARITY[node.tag]:
            raise MathError(
                f"{node.tag[1:]} with {len(node)} parts instead of {ARITY[node.tag]} (a missing argument?)",
                where="math",
            )
        for name in node.attrib:
            if name not in ATTRIBUTES:
                raise MathError(f"attribute {name!r} is not shown", where="math")


#: token elements: text only in MathML (a browser shows an element inside one as its bare text)
TOKENS = frozenset({"mi", "mo", "mn", "mtext", "ms"})


def _serialised(element: Element) -> str:
    """The element as MathML markup: every text escaped, every attribute quoted."""
    if element.tag in TOKENS and len(element):
        return _token_with_children(element)
    attrs = "".join(f" {k}={quoteattr(html.unescape(v))}" for k, v in element.attrib.items())
    inner = escape(html.unescape(element.text or "")) + "".join(_serialised(child) for child in element)
    tail = escape(html.unescape(element.tail or ""))
    if not inner and element.tag in ("mspace", "mi", "mo", "none"):
        return f"<{element.tag}{attrs}/>{tail}" if element.tag != "mi" else f"<mi{attrs}></mi>{tail}"
    return f"<{element.tag}{attrs}>{inner}</{element.tag}>{tail}"


def _token_with_children(element: Element) -> str:
    """``\\mathbin{X}``/``\\mathrel{X}``: latex2mathml puts X's elements inside an ``<mo>``, which a
    browser shows as bare text (a subscript lost); written as a row of X with the operator's spacing."""
    space = [element.attrib.get(side) for side in ("lspace", "rspace")]
    pad = [f"<mspace width={quoteattr(html.unescape(w))}/>" if w else "" for w in space]
    text = (element.text or "").strip()
    head = f"<{element.tag}>{escape(html.unescape(text))}</{element.tag}>" if text else ""
    inner = head + "".join(_serialised(child) for child in element)
    return f"<mrow>{pad[0]}{inner}{pad[1]}</mrow>" + escape(html.unescape(element.tail or ""))


def math_element(latex: str, display: bool) -> str:
    r"""The MathML ``<math>`` element of a LaTeX formula (``display``: a block of its own).

    Raises :class:`MathError` (an :class:`~symderive.errors.InputError`) on anything it cannot
    show faithfully: an unknown macro or environment, a missing argument, unbalanced braces.

    >>> math_element("x^2", display=True)
    '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><mrow><msup><mi>x</mi><mn>2</mn></msup></mrow></math>'
    """
    if not isinstance(latex, str):
        raise TypeError(f"math_element wants a LaTeX string, not {type(latex).__name__}")
    source = normalised(latex)
    converter = Converter(xmlns=MATHML_NS, display="block" if display else "inline")
    try:
        element = converter.convert_to_element(source)
    except MathError:
        raise
    except Exception as err:  # latex2mathml raises bare exceptions of its own for malformed input
        name = type(err).__name__.removesuffix("Error")
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower() or "malformed"
        raise MathError(
            f"cannot read the formula ({words}{': ' + str(err) if str(err) else ''})", where="math"
        ) from None
    _checked(element)
    return _serialised(element)


__all__ = ["MathError", "math_element", "normalised"]
