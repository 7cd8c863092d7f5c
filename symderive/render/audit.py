r"""The annotated audit (``symderive audit DOC -o OUT``): the document's equations in order, a mark each.

An entry is shown as the mathematics its author wrote (the entry's own LaTeX, typeset), with
a mark (✓ follows, ✗ does not follow, ? unknown or not checked, ≡ definition), the
counterexample under a wrong step, the first wrong step highlighted, and the reason for what
was not checked. The same views are written as HTML (MathML, :mod:`.page`), Markdown
(``$$`` math), LaTeX and PDF.

The document is user text. Its LaTeX is typeset only when every macro is in
:data:`TEX_MACROS` (what amsmath, amssymb and MathML all know), no character could end the
math or start a comment (``$ % # ^^``) and the formula converts to MathML; anything else is
shown verbatim, escaped, with the reason. So ``\input``, ``\write18`` and ``\href`` never
reach LaTeX or a browser as commands. Every other string (the file name, reasons, layer
names) is escaped for its format.

This module reads an audit by its fields (``symderive.audit.check.Audit``: ``source``,
``entries``, ``layers``, ``first_wrong``, ``counts()``); it does not import the audit.

>>> entry_math(r"\frac{\partial L}{\partial x} = w^\top g").latex
'\\frac{\\partial L}{\\partial x} = w^\\top g'
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.sandbox

from ..atomic import write_atomic
from ..errors import InputError
from ..escape import html_text, latex_escape, markdown_text
from .mathml import MathError, math_element
from .page import html_page, mark
from .templating import latex_environment

#: the audit's verdict words -> mark kind (None: no mark, the block is not a claim)
MARK_KIND = {
    "follows": "ok",
    "does not follow": "wrong",
    "unknown": "unknown",
    "not checked": "unknown",
    "definition": "definition",
    "not an equation": None,
}
SUFFIXES = (".html", ".md", ".tex", ".pdf")

#: macros an entry may use to be typeset (known to amsmath/amssymb and to the MathML converter)
TEX_MACROS = frozenset(
    r"""
    \alpha \beta \gamma \delta \epsilon \varepsilon \zeta \eta \theta \vartheta \iota \kappa \lambda \mu
    \nu \xi \pi \varpi \rho \varrho \sigma \varsigma \tau \upsilon \phi \varphi \chi \psi \omega
    \Gamma \Delta \Theta \Lambda \Xi \Pi \Sigma \Upsilon \Phi \Psi \Omega
    \frac \dfrac \tfrac \partial \nabla \sum \prod \int \sqrt \log \ln \exp \sin \cos \tan \tanh \sinh
    \cosh \max \min \sup \inf \arg \argmax \argmin \det \lim \operatorname
    \cdot \times \odot \otimes \oplus \circ \ast \star \bullet \pm \mp \div \mid \setminus \cap \cup
    \left \right \big \Big \bigg \Bigg \bigl \bigr \Bigl \Bigr \biggl \biggr \Biggl \Biggr \middle
    \langle \rangle \lfloor \rfloor \lceil \rceil \lvert \rvert \lVert \rVert \vert \Vert
    \quad \qquad \text \textrm \textit \textbf \mathrm \mathbf \mathit \mathcal \mathbb \mathsf \mathtt
    \boldsymbol \hat \widehat \tilde \widetilde \bar \overline \underline \vec \dot \ddot
    \underbrace \overbrace \boxed \top \intercal \prime \infty \ell \hbar
    \neq \ne \leq \le \geq \ge \ll \gg \approx \equiv \sim \simeq \propto \in \notin \subset \subseteq
    \forall \exists \to \rightarrow \leftarrow \Rightarrow \Leftarrow \leftrightarrow \mapsto \iff
    \implies \longrightarrow \longleftarrow
    \dots \cdots \ldots \vdots \ddots \begin \end \tag \nonumber \notag \label \textcircled
    \displaystyle \textstyle \limits \nolimits \binom \not \overset \underset \stackrel
    """.split()
)
#: environments an entry may use, and what each becomes inside one display
TEX_ENVIRONMENTS = {
    "aligned": "aligned",
    "align": "aligned",
    "align*": "aligned",
    "eqnarray": "aligned",
    "eqnarray*": "aligned",
    "split": "aligned",
    "gathered": "gathered",
    "gather": "gathered",
    "gather*": "gathered",
    "multline": "gathered",
    "multline*": "gathered",
    "cases": "cases",
    "matrix": "matrix",
    "pmatrix": "pmatrix",
    "bmatrix": "bmatrix",
    "Bmatrix": "Bmatrix",
    "vmatrix": "vmatrix",
    "Vmatrix": "Vmatrix",
}
#: control symbols (a backslash and one non-letter) that are harmless in math
TEX_SYMBOLS = frozenset({"\\\\", "\\{", "\\}", "\\,", "\\;", "\\!", "\\:", "\\|", "\\ ", "\\_", "\\&", "\\#", "\\%"})
#: text-mode commands: their argument is text, where ^ _ & \\ are errors
TEXT_COMMANDS = frozenset(r"\text \textrm \textit \textbf".split())

_CONTROL = re.compile(r"\\([A-Za-z]+|.)", re.S)
_ENV = re.compile(r"\\(begin|end)\s*\{([^{}]*)\}")
_TEXT_ARG = re.compile(r"\\(?:text|textrm|textit|textbf)\s*\{([^{}]*)\}")
_TAG = re.compile(r"\\tag\*?\s*\{([^{}]*)\}")
_LABEL = re.compile(r"\\label\s*\{[^{}]*\}")
_CIRCLED = re.compile(r"\\textcircled\s*\{([^{}]*)\}")
_ESCAPED = re.compile(r"\\.", re.S)


# -- the math of an entry -------------------------------------------------------------------


@dataclass(frozen=True)
class EntryMath:
    """An entry's LaTeX ready to typeset (``latex``), or None and why not (``problem``)."""

    latex: str | None
    problem: str = ""


def entry_math(latex: str) -> EntryMath:
    r"""The entry's LaTeX as one display every format can typeset, or why it is shown as written.

    >>> entry_math(r"x = \input{/etc/passwd}").problem
    '\\input is not typeset (shown as written)'
    """
    text = " ".join(str(latex).split())
    problem = _tex_problem(text)
    if problem:
        return EntryMath(None, problem)
    prepared = _one_display(text)
    try:
        math_element(prepared, display=True)
    except MathError as err:
        return EntryMath(None, f"{err.message} (shown as written)")
    return EntryMath(prepared)


def _tex_problem(text: str) -> str:
    """Why ``text`` cannot be typeset safely as LaTeX math ('' when it can)."""
    if not text:
        return "empty"
    if any(not (" " <= c <= "~" or "\u00a0" <= c <= "\u00ff") for c in text):
        return "characters LaTeX cannot typeset (shown as written)"
    bare = _ESCAPED.sub("", text)
    for c, name in (("$", "a $"), ("%", "a %"), ("#", "a #"), ("^^", "^^")):
        if c in bare:
            return f"{name} in math is not typeset (shown as written)"
    for match in _CONTROL.finditer(text):
        word = "\\" + match.group(1)
        if len(match.group(1)) == 1 and not match.group(1).isalpha():
            if word not in TEX_SYMBOLS:
                return f"{word} is not typeset (shown as written)"
        elif word not in TEX_MACROS:
            return f"{word} is not typeset (shown as written)"
    for match in _ENV.finditer(text):
        if match.group(2).strip() not in TEX_ENVIRONMENTS:
            return f"the environment {match.group(2).strip()} is not typeset (shown as written)"
    for match in _TEXT_ARG.finditer(text):
        if re.search(r"[\^_&<>]|\\\\", match.group(1)):
            return "text with math characters is not typeset (shown as written)"
    return ""


def _outside_environments(text: str) -> str:
    """``text`` with every ``\\begin{..} ... \\end{..}`` (outermost) blanked out."""
    out, depth, pos = [], 0, 0
    for match in _ENV.finditer(text):
        if depth == 0:
            out.append(text[pos : match.start()])
        depth += 1 if match.group(1) == "begin" else -1
        pos = match.end()
    if depth == 0:
        out.append(text[pos:])
    return " ".join(out)


def _one_display(text: str) -> str:
    r"""The formula as the body of one display: environments renamed to their inner forms,
    labels dropped, tags as ``(X)``, rows (``\\``, ``&``) inside ``aligned``."""
    text = _LABEL.sub(" ", text)
    text = _TAG.sub(lambda m: r"\qquad \text{(" + m.group(1) + ")}", text)
    text = _ENV.sub(lambda m: "\\" + m.group(1) + "{" + TEX_ENVIRONMENTS[m.group(2).strip()] + "}", text)
    outside = _outside_environments(text)
    if "&" in _ESCAPED.sub("", outside):
        return r"\begin{aligned} " + text + r" \end{aligned}"
    if "\\\\" in outside:
        return r"\begin{gathered} " + text + r" \end{gathered}"
    return text.strip()


def tex_math(prepared: str) -> str:
    r"""Prepared math for pdflatex: ``\textcircled`` is a text command.

    >>> tex_math(r"x \textcircled{1}")
    'x \\text{\\textcircled{1}}'
    """
    return _CIRCLED.sub(lambda m: r"\text{\textcircled{" + m.group(1) + "}}", prepared)


def markdown_math(prepared: str) -> str:
    r"""Prepared math for Markdown renderers (MathJax, KaTeX): ``<``/``>`` as ``\lt``/``\gt`` (no
    HTML sanitiser can read a tag), ``\textcircled`` (which they lack) as ``(1)``.

    >>> markdown_math(r"a < b \textcircled{2}")
    'a \\lt  b \\text{(2)}'
    """
    text = _CIRCLED.sub(lambda m: r"\text{(" + m.group(1) + ")}", prepared)
    return text.replace("<", r"\lt ").replace(">", r"\gt ")


# -- runs: text with math, for every format ---------------------------------------------------

#: one piece of a paragraph: (kind, content), kind "text", "math", "code" or "strong"
Run = tuple[str, str]
_NAME = re.compile(r"([A-Za-z][A-Za-z0-9]*?)((?:_prime)*)\Z")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?\Z")
_FRACTION = re.compile(r"(-?)(\d+)/(\d+)\Z")
_TEX_RUN = re.compile(r"(\S*\\\S*)")


def name_latex(name: str) -> str | None:
    r"""A tensor, size or index name as math (``m_prime`` is m′, ``kh`` upright italic); None when
    it is not a plain name.

    >>> name_latex("m_prime"), name_latex("kh"), name_latex("x"), name_latex("a b")
    ("m'", '\\mathit{kh}', 'x', None)
    """
    match = _NAME.match(str(name))
    if match is None:
        return None
    base, primes = match.group(1), match.group(2).count("_prime")
    head = (
        base
        if len(base) == 1
        else (base[0] + "_{" + base[1:] + "}" if base[1:].isdigit() else r"\mathit{" + base + "}")
    )
    return head + "'" * primes


def number_latex(value) -> str | None:
    r"""A number of a counterexample as math, or None when it is not a plain number.

    >>> number_latex(-3), number_latex("1/2"), number_latex(0.25), number_latex("sqrt(2)")
    ('-3', '\\frac{1}{2}', '0.25', None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value).strip()
    if _NUMBER.match(text):
        return text
    fraction = _FRACTION.match(text)
    if fraction:
        return f"{fraction.group(1)}\\frac{{{fraction.group(2)}}}{{{fraction.group(3)}}}"
    return None


def array_latex(values) -> str | None:
    r"""Nested lists of numbers as a matrix (a vector as one row), or None when not all are numbers
    or the array has more than two axes.

    >>> array_latex([[1, 0], [0, 2]])
    '\\begin{bmatrix} 1 & 0 \\\\ 0 & 2 \\end{bmatrix}'
    """
    if not isinstance(values, list | tuple):
        return number_latex(values)
    rows = [values] if not values or not isinstance(values[0], list | tuple) else values
    cells = [[number_latex(v) for v in row] if isinstance(row, list | tuple) else [None] for row in rows]
    if any(c is None for row in cells for c in row) or not cells or not all(cells):
        return None
    return r"\begin{bmatrix} " + r" \\ ".join(" & ".join(row) for row in cells) + r" \end{bmatrix}"


def reason_runs(reason: str) -> list[Run]:
    r"""A reason in words, its TeX fragments (``\dots``, a formula up to its closing brace) as code.

    >>> reason_runs(r"write it with indices: \text{a b} here")
    [('text', 'write it with indices: '), ('code', '\\text{a b}'), ('text', ' here')]
    """
    out: list[Run] = []
    words = re.split(r"(\s+)", reason)
    k = 0
    while k < len(words):
        if "\\" not in words[k]:
            out.append(("text", words[k]))
            k += 1
            continue
        # a fragment runs on over spaces while its braces are open
        end, depth = k, 0
        while end < len(words):
            depth += _brace_depth(words[end])
            end += 1
            if depth <= 0:
                break
        fragment = "".join(words[k:end])
        tail = re.search(r"[:;,.]*\Z", fragment).group(0) if depth <= 0 else ""
        out.append(("code", fragment[: len(fragment) - len(tail)]))
        if tail:
            out.append(("text", tail))
        k = end
    return _merged(out)


def _brace_depth(word: str) -> int:
    bare = _ESCAPED.sub("", word)
    return bare.count("{") - bare.count("}")


def _merged(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    for kind, content in runs:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + content)
        else:
            out.append((kind, content))
    return out


def _at_runs(at: str) -> list[Run]:
    """``i = 0, j = -1`` (the audit's words) as math when every part is a name and an integer."""
    parts = [p.strip() for p in at.split(",")]
    shown = []
    for part in parts:
        name, _, value = part.partition("=")
        name_tex, value_tex = name_latex(name.strip()), number_latex(value.strip())
        if name_tex is None or value_tex is None:
            return [("text", at)]
        shown.append(f"{name_tex} = {value_tex}")
    return [("math", r",\ ".join(shown))]


def counterexample_runs(link, number: int | None) -> list[list[Run]]:
    """The paragraphs under a wrong step: where it fails (sizes, values) and both sides there."""
    cex = link.counterexample
    head: list[Run] = [("strong", "Counterexample" + (f" (link {number})" if number else "") + ": ")]
    sizes = [(name_latex(k), number_latex(v)) for k, v in cex.sizes.items()]
    if sizes and all(a and b for a, b in sizes):
        head += [("text", "sizes "), ("math", r",\ ".join(f"{a} = {b}" for a, b in sizes))]
    else:
        head.append(("text", "sizes " + ", ".join(f"{k}={v}" for k, v in cex.sizes.items())))
    if cex.is_shape_mismatch:
        left = tuple(cex.expected_shape)
        right = "undefined" if cex.claimed_shape is None else str(tuple(cex.claimed_shape))
        return [head, [("text", f"the left side has shape {left}, the right side {right}. {cex.message}".strip())]]
    values = []
    for name, value in (cex.values or {}).items():
        name_tex, array = name_latex(name), array_latex(value)
        values.append([("math", f"{name_tex} = {array}")] if name_tex and array else [("code", f"{name} = {value}")])
    # the concrete function an abstract one ([functions]) stood for
    values += [[("code", f"{name}(u) = {text}")] for name, text in (getattr(cex, "functions", None) or {}).items()]
    if values:
        head.append(("text", ", with "))
        for k, piece in enumerate(values):
            head += ([("text", ", ")] if k else []) + piece
    where: list[Run] = []
    if link.at:
        where += [("text", "at ")] + _at_runs(link.at) + [("text", ": ")]
    left, right = number_latex(cex.expected), number_latex(cex.claimed)
    if left is not None and right is not None:
        where += [
            ("text", "the left side is "),
            ("math", left),
            ("text", ", the right side "),
            ("math", right),
            ("text", "."),
        ]
    else:
        where += [("text", f"the left side is {cex.expected}, the right side {cex.claimed}.")]
    return [head, where]


def variant_runs(variant) -> list[Run]:
    r"""The paragraph under a wrong step saying its nearest true variant (``variant`` has
    ``side``, ``why``, ``assume`` and ``latex``, the side as the document would write it, typeset
    when every macro in it may be).

    >>> from types import SimpleNamespace as V
    >>> variant_runs(V(side="w.T @ g", why="w must be transposed", assume=(), latex=""))
    [('strong', 'Nearest true variant: '), ('text', 'it holds with '), ('code', 'w.T @ g'), ('text', ': w must be transposed.')]
    """
    head: list[Run] = [("strong", "Nearest true variant: ")]
    assume = tuple(getattr(variant, "assume", ()) or ())
    why = str(getattr(variant, "why", "") or "")
    if assume and not why:
        return head + [("text", "it holds if "), ("code", " and ".join(assume)), ("text", ".")]
    latex = str(getattr(variant, "latex", "") or "")
    shown = entry_math(latex).latex if latex else None
    side: Run = ("math", shown) if shown is not None else ("code", str(variant.side))
    return head + [("text", "it holds with "), side, ("text", f": {why}." if why else ".")]


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    """One entry as shown: its line, mark, verdict in words, math (or verbatim) and notes."""

    line: int
    verdict: str
    mark: str | None
    words: list[Run]
    math: EntryMath
    verbatim: str
    first_wrong: bool
    links: list[tuple[int, str]]
    notes: list[list[Run]]


def _verdict_runs(entry) -> list[Run]:
    if entry.verdict == "definition" and entry.defines:
        defined = entry_math(entry.defines)
        if defined.latex is not None:
            return [("text", "definition of "), ("math", defined.latex)]
        return [("text", "definition of "), ("code", entry.defines)]
    return [("text", entry.verdict)]


def _notes(entry) -> list[list[Run]]:
    """The reasons and counterexamples under an entry, link by link where it has several."""
    several = len(entry.links) > 1
    notes: list[list[Run]] = []
    if entry.reason and not several:
        notes.append(reason_runs(entry.reason))
    for number, link in enumerate(entry.links, start=1):
        if link.verdict == "does not follow" and link.counterexample is not None:
            notes += counterexample_runs(link, number if several else None)
            if getattr(link, "variant", None) is not None:
                notes.append(variant_runs(link.variant))
        elif link.verdict in ("unknown", "not checked") and link.reason and (several or not entry.reason):
            label = [("strong", f"Link {number}, {link.verdict}: ")] if several else []
            notes.append(label + reason_runs(link.reason))
    return notes


def entry_views(result, typeset: bool = True) -> list[EntryView]:
    """Every entry of an audit, in order, ready for any format (``typeset=False``: every entry as written)."""
    first = result.first_wrong
    out = []
    for entry in result.entries:
        math = (
            entry_math(entry.latex)
            if typeset
            else EntryMath(None, "LaTeX failed on the typeset audit: every entry is shown as written")
        )
        out.append(
            EntryView(
                line=entry.line,
                verdict=entry.verdict,
                mark=MARK_KIND.get(entry.verdict),
                words=_verdict_runs(entry),
                math=math,
                verbatim=str(entry.latex),
                first_wrong=entry.verdict == "does not follow" and entry.line == first,
                links=[(n, MARK_KIND[k.verdict] or "unknown") for n, k in enumerate(entry.links, 1)]
                if len(entry.links) > 1
                else [],
                notes=_notes(entry),
            )
        )
    return out


def _first_wrong_index(views: list[EntryView]) -> int | None:
    return next((k for k, v in enumerate(views) if v.first_wrong), None)


def title_of(result) -> str:
    """The page's title: the audited file's name."""
    return f"Audit of {Path(str(result.source)).name}"


def layer_runs(result) -> list[Run]:
    """Which layer each notation block puts in force, in words."""
    if not result.layers:
        return [("text", "No layer in force.")]
    parts = [f"layer {name} (notation block at line {line})" for line, name in result.layers]
    return [("text", "Read with " + "; ".join(parts) + ".")]


def summary_text(result) -> str:
    """How many entries got each verdict, in words."""
    words = {
        "definition": ("definition", "definitions"),
        "follows": ("follows", "follow"),
        "does not follow": ("does not follow", "do not follow"),
        "unknown": ("unknown", "unknown"),
        "not checked": ("not checked", "not checked"),
        "not an equation": ("not an equation", "not equations"),
    }
    counts = result.counts()
    n = len(result.entries)
    parts = [f"{c} {words[v][0] if c == 1 else words[v][1]}" for v, c in counts.items() if c and v in words]
    return f"{n} {'entry' if n == 1 else 'entries'}: " + ", ".join(parts) + "."


LEGEND = (
    ("ok", "follows"),
    ("wrong", "does not follow"),
    ("unknown", "unknown or not checked"),
    ("definition", "definition"),
)


# -- HTML -------------------------------------------------------------------------------------


def html_runs(runs: list[Run]) -> str:
    """Runs as HTML: text escaped, math as inline MathML (as code when it cannot be converted)."""
    out = []
    for kind, content in runs:
        if kind == "math":
            try:
                out.append(math_element(content, display=False))
            except MathError:
                out.append(f"<code>{html_text(content)}</code>")
        elif kind == "code":
            out.append(f"<code>{html_text(content)}</code>")
        elif kind == "strong":
            out.append(f"<strong>{html_text(content)}</strong>")
        else:
            out.append(html_text(content))
    return "".join(out)


def _html_entry(view: EntryView, anchor: str) -> str:
    classes = "entry" + (" first-wrong" if view.first_wrong else "") + (" no-claim" if view.mark is None else "")
    symbol = mark(view.mark) if view.mark else '<span class="mark mark-none"></span>'
    tone = f" verdict-{view.mark}" if view.mark else ""
    label = '<span class="first-wrong-label">first wrong step</span> · ' if view.first_wrong else ""
    links = ""
    if view.links:
        links = " · links " + " ".join(f"{n}&#8239;{mark(kind)}" for n, kind in view.links)
    if view.math.latex is not None:
        shown = math_element(view.math.latex, display=True)
    else:
        shown = f'<pre class="verbatim">{html_text(view.verbatim)}</pre>'
    notes = "".join(f'<p class="{_note_class(n)}">{html_runs(n)}</p>' for n in view.notes)
    if view.math.latex is None:
        notes += f'<p class="reason">{html_runs(reason_runs(view.math.problem))}</p>'
    return (
        f'<div class="{classes}" id="{anchor}">'
        f'<span class="line">{view.line}</span>{symbol}<div class="body">'
        f'<div class="verdict{tone}">{label}{html_runs(view.words)}{links}</div>'
        f"{shown}{notes}</div></div>"
    )


def _note_class(runs: list[Run]) -> str:
    return "counterexample" if runs and runs[0][1].startswith("Counterexample") else "reason"


def audit_html_body(result) -> str:
    """The annotated audit as HTML (the body of a page, or a notebook cell's output)."""
    views = entry_views(result)
    first = _first_wrong_index(views)
    legend = " &nbsp; ".join(f"{mark(kind)} {html_text(words)}" for kind, words in LEGEND)
    head = [
        f"<h1>{html_text(title_of(result))}</h1>",
        f'<p class="subtitle">{html_runs(layer_runs(result))} {html_text(summary_text(result))}</p>',
    ]
    if first is not None:
        head.append(
            f'<p>The first wrong step is on <a href="#line-{views[first].line}">line {views[first].line}</a>.</p>'
        )
    head.append(f'<p class="legend">{legend}</p>')
    return "\n".join(head + [_html_entry(v, a) for v, a in zip(views, _anchors(views), strict=True)])


def _anchors(views: list[EntryView]) -> list[str]:
    """``line-N`` for each entry; a second entry on one line (two relations side by side) ``line-N-2``."""
    seen: dict[int, int] = {}
    out = []
    for view in views:
        seen[view.line] = seen.get(view.line, 0) + 1
        out.append(f"line-{view.line}" + (f"-{seen[view.line]}" if seen[view.line] > 1 else ""))
    return out


def audit_html(result) -> str:
    """The annotated audit as one self-contained HTML page (MathML math, no scripts, no network)."""
    return html_page(title_of(result), audit_html_body(result))


# -- Markdown ---------------------------------------------------------------------------------


def markdown_runs(runs: list[Run]) -> str:
    """Runs as Markdown: text escaped, math between ``$``, code in code spans."""
    out = []
    for kind, content in runs:
        if kind == "math":
            out.append("$" + markdown_math(content) + "$")
        elif kind == "code":
            out.append(markdown_text(content, code=True))
        elif kind == "strong":
            out.append("**" + markdown_text(content.strip()) + "** ")
        else:
            out.append(markdown_text(content))
    return "".join(out)


SYMBOLS = {"ok": "✓", "wrong": "✗", "unknown": "?", "definition": "≡"}


def _md_entry(view: EntryView) -> list[str]:
    symbol = SYMBOLS.get(view.mark, "·")
    flag = " — **first wrong step**" if view.first_wrong else ""
    links = " (links " + ", ".join(f"{n} {SYMBOLS[k]}" for n, k in view.links) + ")" if view.links else ""
    out = [f"**{symbol} line {view.line}**: {markdown_runs(view.words)}{links}{flag}", ""]
    if view.math.latex is not None:
        out += ["$$", markdown_math(view.math.latex), "$$", ""]
    else:
        fence = "~~~~" + "~" * max((len(m) for m in re.findall(r"~{4,}", view.verbatim)), default=0)
        out += [fence, view.verbatim.replace("\r", ""), fence, "", markdown_runs(reason_runs(view.math.problem)), ""]
    if view.notes:
        # one quote under the entry, a paragraph per note
        out += ["\n>\n".join("> " + markdown_runs(note) for note in view.notes), ""]
    return out


def audit_markdown(result) -> str:
    """The annotated audit as Markdown (GitHub and Jupyter: ``$$`` display math, ``$`` inline)."""
    views = entry_views(result)
    out = [
        f"# {markdown_text(title_of(result))}",
        "",
        markdown_runs(layer_runs(result)) + " " + markdown_text(summary_text(result)),
        "",
    ]
    first = _first_wrong_index(views)
    if first is not None:
        out += [f"The first wrong step is on line {views[first].line}.", ""]
    out += [" · ".join(f"{SYMBOLS[kind]} {words}" for kind, words in LEGEND), ""]
    for view in views:
        out += _md_entry(view)
    return "\n".join(out)


# -- LaTeX and PDF ----------------------------------------------------------------------------


def tex_runs(runs: list[Run]) -> str:
    """Runs as LaTeX: text escaped, math between ``$``, code in ``\\texttt`` with room to break."""
    out = []
    for kind, content in runs:
        if kind == "math":
            out.append("$" + tex_math(content) + "$")
        elif kind == "code":
            # a long formula in a reason may break after a brace or before a backslash
            code = (
                latex_escape(content)
                .replace("\\}", "\\}\\allowbreak{}")
                .replace("\\textbackslash{}", "\\allowbreak{}\\textbackslash{}")
            )
            out.append(r"\texttt{" + code + "}")
        elif kind == "strong":
            out.append(r"\textbf{" + latex_escape(content) + "}")
        else:
            out.append(latex_escape(content))
    return "".join(out)


def _tex_entry(view: EntryView) -> dict:
    return {
        "line": view.line,
        "mark": view.mark or "none",
        "words": tex_runs(view.words),
        "links": [(n, kind) for n, kind in view.links],
        "math": None if view.math.latex is None else tex_math(view.math.latex),
        "verbatim": latex_escape(view.verbatim),
        "problem": tex_runs(reason_runs(view.math.problem)),
        "first_wrong": view.first_wrong,
        "notes": [tex_runs(n) for n in view.notes],
    }


def _environment() -> jinja2.Environment:
    return latex_environment(latex_escape)


def audit_tex(result, typeset: bool = True) -> str:
    """The annotated audit as a LaTeX document (pdflatex; every user string escaped; ``typeset=False``:
    every entry as written, the fallback when LaTeX fails on the typeset one)."""
    views = entry_views(result, typeset)
    first = _first_wrong_index(views)
    return (
        _environment()
        .get_template("audit.tex.j2")
        .render(
            title=title_of(result),
            layers=tex_runs(layer_runs(result)),
            summary=summary_text(result),
            first_wrong=None if first is None else views[first].line,
            legend=LEGEND,
            entries=[_tex_entry(v) for v in views],
        )
    )


class LatexFailed(InputError):
    """LaTeX failed on the annotated audit; the message holds the log's error lines."""


def compile_pdf(tex: str, timeout: float = 180.0) -> bytes:
    """PDF bytes of LaTeX source: latexmk in a temporary folder, shell escape off, TeX reading and
    writing only inside that folder."""
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise InputError(
            "writing a PDF needs LaTeX (latexmk and pdflatex), which is not installed: write OUT.tex or OUT.html",
            where="-o",
        )
    with tempfile.TemporaryDirectory(prefix="symderive-audit-") as tmp:
        (Path(tmp) / "audit.tex").write_text(tex, encoding="utf-8")
        cmd = ["latexmk", "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "audit.tex"]
        env = dict(os.environ, openin_any="p", openout_any="p", shell_escape="f")
        try:
            run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise LatexFailed(f"LaTeX did not finish within {timeout:.0f} s", where="-o") from err
        pdf, log = Path(tmp) / "audit.pdf", Path(tmp) / "audit.log"
        if run.returncode != 0 or not pdf.is_file():
            text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else run.stdout + run.stderr
            errors = [line for line in text.splitlines() if line.startswith("!")][:3]
            raise LatexFailed("LaTeX failed: " + ("; ".join(errors) or "see the log"), where="-o")
        return pdf.read_bytes()


# -- writing ----------------------------------------------------------------------------------


def check_audit_output(output: str | os.PathLike) -> Path:
    """``output`` as a Path after the checks that fail before the (slow) audit: a known suffix, a
    folder that exists and can be written, not a folder itself.

    >>> check_audit_output("notes.audit.docx")
    Traceback (most recent call last):
    ...
    symderive.errors.InputError: -o: the annotated audit is written as OUT.html, OUT.md, OUT.tex or OUT.pdf, not 'notes.audit.docx'
    """
    path = Path(output)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(
            f"the annotated audit is written as OUT.html, OUT.md, OUT.tex or OUT.pdf, not {path.name!r}", where="-o"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: the folder {folder} does not exist", where="-o")
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder", where="-o")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied", where="-o")
    return path


def audit_document(result, suffix: str) -> bytes:
    """The annotated audit in the format of ``suffix`` (``.html``, ``.md``, ``.tex``, ``.pdf``)."""
    suffix = suffix.lower()
    if suffix == ".html":
        return audit_html(result).encode("utf-8")
    if suffix == ".md":
        return audit_markdown(result).encode("utf-8")
    tex = audit_tex(result)
    if suffix == ".tex":
        return tex.encode("utf-8")
    try:
        return compile_pdf(tex)
    except LatexFailed:
        # entry_math admits only macros the preamble defines; should LaTeX still fail on one, the
        # audit is written with every entry as written (escaped) rather than not at all
        return compile_pdf(audit_tex(result, typeset=False))


def write_audit(result, output: str | os.PathLike) -> Path:
    """Write the annotated audit to ``output`` whole or not at all (the format from its suffix).

    >>> # write_audit(sd.audit("notes.md"), "notes.audit.html")
    """
    path = check_audit_output(output)
    data = audit_document(result, path.suffix)
    try:
        return write_atomic(path, data)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}", where="-o") from err


__all__ = [
    "EntryMath",
    "Run",
    "array_latex",
    "html_runs",
    "markdown_runs",
    "name_latex",
    "number_latex",
    "reason_runs",
    "tex_runs",
    "variant_runs",
    "audit_document",
    "audit_html",
    "audit_html_body",
    "audit_markdown",
    "audit_tex",
    "check_audit_output",
    "entry_math",
    "write_audit",
]
