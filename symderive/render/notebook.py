r"""How results show themselves in Jupyter: LaTeX (SymPy's ``$$...$$`` form), HTML (MathML) and Markdown.

``symderive/__init__.py`` registers these in :mod:`symderive.display` for
:class:`~symderive.decide.verdict.Verdict`, the derivation of ``derive``, ``solve``'s result
and the audit, whose ``_repr_latex_``/``_repr_html_``/``_repr_markdown_`` look them up
there (they cannot import this layer). Verdicts and derivations show their Markdown through
the report renderer (:mod:`.report`); the rest is here. A claim is typeset through the
operator table when its layer can be loaded, else shown as code; every user string is
escaped for its format.

>>> import symderive as sd
>>> verdict_latex(sd.prove("linear", "x", "w.T @ g"))
'$$\\frac{\\partial L}{\\partial x} = w^{\\top} g \\qquad \\checkmark\\ \\text{proved}$$'
"""

from __future__ import annotations

import html
import re

from ..escape import markdown_text
from .audit import (
    array_latex,
    audit_html_body,
    audit_markdown,
    entry_math,
    html_runs,
    markdown_math,
    name_latex,
    number_latex,
)
from .mathml import MathError, math_element
from .page import html_fragment, mark

#: a verdict's word -> its mark in MathJax/LaTeX (amssymb)
LATEX_MARK = {
    "proved": r"\checkmark",
    "follows": r"\checkmark",
    "refuted": r"\times",
    "does not follow": r"\times",
    "unknown": "?",
    "not checked": "?",
    "error": "?",
    "definition": r"\equiv",
}
_TEXT_SPECIAL = re.compile(r"[\\{}$&#%_^~]")


def text_latex(text: object) -> str:
    r"""Plain text for ``\text{...}`` in MathJax or LaTeX: braces, ``$ & # % _`` escaped, ``\ ^ ~`` dropped.

    >>> text_latex("a_b {c} 100% \\x")
    'a\\_b \\{c\\} 100\\%  x'
    """
    keep = {"{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#", "%": r"\%", "_": r"\_"}
    return _TEXT_SPECIAL.sub(lambda m: keep.get(m.group(), " "), re.sub(r"\s+", " ", str(text)))


def _math_html(latex: str, display: bool) -> str:
    """MathML of LaTeX the printer made; as code should the converter not know a macro."""
    try:
        return math_element(latex, display=display)
    except MathError:
        return f"<code>{html.escape(latex)}</code>"


# -- claims -------------------------------------------------------------------------------------


def gradient_latex(wrt: str) -> str:
    r"""The gradient's symbol ``\frac{\partial L}{\partial x}`` (a name that is not plain: as text).

    >>> gradient_latex("x")
    '\\frac{\\partial L}{\\partial x}'
    """
    name = name_latex(wrt) or r"\text{" + text_latex(wrt) + "}"
    return r"\frac{\partial L}{\partial " + name + "}"


def claim_latex(layer: str, wrt: str, claim: str) -> str | None:
    """A claim in the operator table's notation, or None when its layer or text cannot be read here."""
    if not layer or not claim:
        return None
    try:
        from ..core.parse import parse_claim
        from ..core.tree import to_latex
        from ..model.layer import load_layer

        loaded = load_layer(layer)
        parsed = parse_claim(claim, loaded, wrt)
        latex = to_latex(getattr(parsed, "tree", parsed))
        math_element(latex, display=False)  # the converter must know every macro the table wrote
        return latex
    except Exception:  # a claim that cannot be typeset here is shown as the text it is
        return None


# -- verdicts -----------------------------------------------------------------------------------


def _cex_groups(cex) -> list[list[tuple[str, str]]]:
    """A verdict's counterexample as phrases of (kind, content) runs: ``math`` LaTeX or ``text``."""
    sizes = [(name_latex(k), number_latex(v)) for k, v in cex.sizes.items()]
    if all(a and b for a, b in sizes):
        groups = [[("text", "sizes "), ("math", r",\ ".join(f"{a} = {b}" for a, b in sizes))]]
    else:
        groups = [[("text", "sizes " + ", ".join(f"{k}={v}" for k, v in cex.sizes.items()))]]
    if cex.is_shape_mismatch:
        claimed = "undefined" if cex.claimed_shape is None else str(tuple(cex.claimed_shape))
        groups.append([("text", f"the true gradient has shape {tuple(cex.expected_shape)}, the claim {claimed}")])
        return groups
    values: list[tuple[str, str]] = []
    for name, value in (cex.values or {}).items():
        name_tex, array = name_latex(name), array_latex(value)
        values += [("text", ", ")] if values else [("text", "values ")]
        values.append(("math", f"{name_tex} = {array}") if name_tex and array else ("text", f"{name} = {value}"))
    if values:
        groups.append(values)
    where = f"at index {tuple(cex.index)}: " if cex.index else ""
    true, claimed = number_latex(cex.expected), number_latex(cex.claimed)
    if true is not None and claimed is not None:
        groups.append([("text", f"{where}true gradient "), ("math", true), ("text", ", claim "), ("math", claimed)])
    else:
        groups.append([("text", f"{where}true gradient {cex.expected}, claim {cex.claimed}")])
    return groups


def _groups_latex(groups) -> str:
    runs = [[r"\text{" + text_latex(c) + "}" if kind == "text" else c for kind, c in group] for group in groups]
    return r";\ ".join(" ".join(group) for group in runs)


def verdict_latex(verdict) -> str:
    """A verdict as one ``$$`` display (Jupyter's ``_repr_latex_``): the claim, the mark, the verdict."""
    claim = claim_latex(verdict.layer, verdict.wrt, verdict.claim)
    claim = claim if claim is not None else r"\texttt{" + text_latex(verdict.claim) + "}"
    lhs = gradient_latex(verdict.wrt) + " = " if verdict.wrt else ""
    head = f"{lhs}{claim} \\qquad {LATEX_MARK.get(verdict.verdict, '?')}\\ \\text{{{text_latex(verdict.verdict)}}}"
    if verdict.verdict == "refuted" and verdict.counterexample is not None:
        cex = _groups_latex(_cex_groups(verdict.counterexample))
        return "$$\\begin{gathered} " + head + r" \\ \text{counterexample: } " + cex + r" \end{gathered}$$"
    if verdict.verdict != "proved" and verdict.reason:
        return "$$\\begin{gathered} " + head + r" \\ \text{" + text_latex(verdict.reason) + r"} \end{gathered}$$"
    return "$$" + head + "$$"


def verdict_html(verdict) -> str:
    """A verdict as HTML (Jupyter's ``_repr_html_``): the claim typeset, its mark, and the evidence."""
    claim = claim_latex(verdict.layer, verdict.wrt, verdict.claim)
    shown = _math_html((gradient_latex(verdict.wrt) + " = " if verdict.wrt else "") + claim, True) if claim else ""
    of = f" of layer <code>{html.escape(verdict.layer)}</code>" if verdict.layer else ""
    wrt = f" for the gradient with respect to <code>{html.escape(verdict.wrt)}</code>" if verdict.wrt else ""
    body = [
        f"<p>{mark(verdict.verdict) if verdict.verdict in LATEX_MARK else ''} "
        f'<strong class="verdict-{_tone(verdict.verdict)}">{html.escape(verdict.verdict)}</strong>: '
        f"<code>{html.escape(verdict.claim)}</code>{wrt}{of}</p>",
        shown,
    ]
    if verdict.verdict == "proved":
        assumed = ", ".join(f"<code>{html.escape(a)}</code>" for a in verdict.assumptions) or "none beyond sizes ≥ 1"
        body.append(f'<p class="reason">Holds for every size and every value; assumptions: {assumed}.</p>')
    elif verdict.counterexample is not None:
        runs = [
            run
            for k, group in enumerate(_cex_groups(verdict.counterexample))
            for run in [("text", "; ")] * bool(k) + group
        ]
        body.append(f'<p class="counterexample"><strong>Counterexample:</strong> {html_runs(runs)}</p>')
    if verdict.verdict not in ("proved",) and verdict.reason:
        body.append(f'<p class="reason">{html.escape(verdict.reason)}</p>')
    for variant in getattr(verdict, "variants", ()) or ():
        text = getattr(variant, "explanation", "") or getattr(variant, "claim", "")
        body.append(f'<p class="reason">Nearest true variant: {html.escape(str(text))}</p>')
    return html_fragment("\n".join(b for b in body if b))


def _tone(verdict: str) -> str:
    return {"proved": "ok", "refuted": "wrong"}.get(verdict, "unknown")


# -- derivations ---------------------------------------------------------------------------------


def _step_latex(step) -> str | None:
    if step.rhs is None:
        return None
    from .report import math_latex

    return math_latex(step.lhs) + " = " + math_latex(step.rhs)


def derivation_latex(derivation) -> str:
    """A derivation as one ``$$`` display: its steps as aligned equations, each with its rule."""
    rows = []
    for step in derivation.steps:
        latex = _step_latex(step)
        if latex is not None:
            left, _, right = latex.partition(" = ")
            rows.append(f"{left} &= {right} && \\text{{{text_latex(step.kind)}}}")
    return "$$\\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}$$"


def derivation_html(derivation) -> str:
    """A derivation as HTML: each step's rule and sentence, and its equation as MathML."""
    items = []
    for step in derivation.steps:
        latex = _step_latex(step)
        shown = _math_html(latex, True) if latex is not None else ""
        items.append(f"<li><em>{html.escape(step.kind)}</em>: {html.escape(step.text)}{shown}</li>")
    head = (
        f"<p><strong>Gradient of <code>{html.escape(derivation.layer)}</code> with respect to "
        f"<code>{html.escape(derivation.wrt)}</code></strong>, step by step</p>"
    )
    return html_fragment(head + "<ol>" + "".join(items) + "</ol>")


# -- solve ---------------------------------------------------------------------------------------


def _found_latex(result, found) -> str:
    claim = claim_latex(result.layer, result.wrt, found.claim)
    return claim if claim is not None else r"\texttt{" + text_latex(found.claim) + "}"


def solve_markdown(result) -> str:
    """``solve``'s result as Markdown: the proved closed forms, simplest first, or the index form."""
    head = f"**solve** {markdown_text(result.layer, code=True)}, gradient with respect to {markdown_text(result.wrt, code=True)}: "
    if not result.claims:
        return head + "no closed form proved; the index form:\n\n" + markdown_text(result.index_form, code=True)
    out = [
        head + f"{len(result.claims)} closed form{'s' if len(result.claims) != 1 else ''} proved, simplest first",
        "",
    ]
    for found in result.claims:
        shown = markdown_math(gradient_latex(result.wrt) + " = " + _found_latex(result, found))
        out.append(f"- ✓ ${shown}$ ({markdown_text(found.claim, code=True)})")
    return "\n".join(out)


def solve_latex(result) -> str:
    """``solve``'s result as one ``$$`` display: each proved closed form with its mark."""
    if not result.claims:
        return "$$" + gradient_latex(result.wrt) + r" \qquad \text{no closed form proved}$$"
    rows = [f"{gradient_latex(result.wrt)} &= {_found_latex(result, f)} && \\checkmark" for f in result.claims]
    return "$$\\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}$$"


def solve_html(result) -> str:
    """``solve``'s result as HTML: each proved closed form typeset, with its mark."""
    head = (
        f"<p><strong>solve</strong> <code>{html.escape(result.layer)}</code>, gradient with respect to "
        f"<code>{html.escape(result.wrt)}</code>: "
    )
    if not result.claims:
        return html_fragment(
            head + f"no closed form proved; the index form:</p><pre>{html.escape(result.index_form)}</pre>"
        )
    items = []
    for found in result.claims:
        shown = _math_html(gradient_latex(result.wrt) + " = " + _found_latex(result, found), False)
        items.append(
            f'<li>{mark("proved")} {shown} <span class="muted">(<code>{html.escape(found.claim)}</code>)</span></li>'
        )
    return html_fragment(head + f"{len(result.claims)} proved, simplest first</p><ul>" + "".join(items) + "</ul>")


# -- audits --------------------------------------------------------------------------------------


def audit_latex(result) -> str:
    """An audit as one ``$$`` display: a row per entry, its line, mark and equation."""
    rows = []
    for entry in result.entries:
        symbol = LATEX_MARK.get(entry.verdict, r"\cdot")
        math = entry_math(entry.latex).latex
        shown = markdown_math(math) if math is not None else r"\text{(shown as written in the HTML view)}"
        rows.append(f"\\text{{{entry.line}}} & {symbol} & {shown} & \\text{{{text_latex(entry.verdict)}}}")
    return "$$\\begin{array}{rcll} " + r" \\ ".join(rows) + r" \end{array}$$"


def audit_html(result) -> str:
    """An audit as a notebook cell's HTML (the annotated audit's body, its stylesheet scoped)."""
    return html_fragment(audit_html_body(result))


__all__ = [
    "audit_html",
    "audit_latex",
    "audit_markdown",
    "claim_latex",
    "derivation_html",
    "derivation_latex",
    "solve_html",
    "solve_latex",
    "solve_markdown",
    "verdict_html",
    "verdict_latex",
]
