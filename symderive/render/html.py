# ruff: noqa: UP031  (percent formatting: LaTeX braces would all double in str.format/f-strings)
"""A report as one self-contained HTML file: MathML math, a stylesheet, pictures as inline SVG.

The blocks of :mod:`symderive.render.blocks` laid out in :func:`symderive.render.page.html_page`
(no script, nothing fetched). Math goes through :func:`symderive.render.mathml.math_element`,
which raises on an unknown macro instead of showing ``\\foo`` as a letter; every piece of
text, user text included, through :func:`symderive.escape.html_text`.

>>> from symderive.render import blocks as B
>>> "&lt;script&gt;" in html_runs((B.Text("<script>"),))
True
"""

from __future__ import annotations

import re

from ..escape import html_text
from . import blocks as B
from .mathml import math_element
from .page import html_page, mark

#: the report's own rules, besides the page's stylesheet
REPORT_STYLE = """
.display { display: flex; align-items: center; gap: 1rem; margin: 0.5rem 0; }
.display > math { flex: 1 1 auto; min-width: 0; margin: 0.2rem 0; }
.display .eqno { flex: none; color: var(--muted); }
.display.boxed > math { border: 1px solid var(--ink); padding: 0.3rem 0.6rem; }
.where { margin: 0.2rem 0 0.2rem 1rem; }
.claim-verdict { margin-top: 0.2rem; }
.title-code { font-size: 0.95em; }
figure svg text { font-family: "Latin Modern Roman", Georgia, serif; font-size: 15px; }
menclose[notation="box"] { border: 1.5px solid currentColor; padding: 0.15em 0.25em; }
"""


def mathml_ready(latex: str) -> str:
    r"""The report's LaTeX as the MathML converter reads it faithfully: ``\mathbin{A}`` as ``A``
    between medium spaces (the converter would nest markup inside an ``<mo>``, which a browser
    flattens), ``\operatorname{f}`` as ``\mathrm{f}`` (no operator spacing around a name).

    >>> print(mathml_ready(r"x \mathbin{\star_{\mathrm{full}}} \operatorname{flip}\left(w\right)"))
    x \:\star_{\mathrm{full}}\: \mathrm{flip}\left(w\right)
    """
    out, k = [], 0
    while True:
        start = latex.find(r"\mathbin{", k)
        if start < 0:
            out.append(latex[k:])
            break
        depth, end = 0, start + len(r"\mathbin")
        for end in range(start + len(r"\mathbin"), len(latex)):
            depth += {"{": 1, "}": -1}.get(latex[end], 0) if latex[end - 1] != "\\" else 0
            if depth == 0:
                break
        out.append(latex[k:start] + r"\:" + latex[start + len(r"\mathbin{") : end] + r"\:")
        k = end + 1
    return re.sub(r"\\operatorname\{", r"\\mathrm{", "".join(out))


def _math(latex: str, display: bool) -> str:
    return math_element(mathml_ready(latex), display=display)


def html_runs(runs) -> str:
    """Inline runs as HTML: text escaped, math as inline MathML, marks as the page's marks."""
    out = []
    for run in runs:
        if isinstance(run, B.Text):
            out.append(html_text(run.text))
        elif isinstance(run, B.Strong):
            out.append(f"<strong>{html_text(run.text)}</strong>")
        elif isinstance(run, B.Emph):
            out.append(f"<em>{html_text(run.text)}</em>")
        elif isinstance(run, B.Code):
            out.append(f"<code>{html_text(run.text)}</code>")
        elif isinstance(run, B.Math):
            out.append(_math(run.latex, display=False))
        elif isinstance(run, B.Mark):
            out.append(mark(run.verdict if run.verdict in ("proved", "refuted") else "unknown"))
        elif isinstance(run, B.Note):
            n = int(run.number)
            out.append(f'<sup class="note"><a href="#note-{n}">{n}</a></sup>')
        else:
            raise TypeError(f"not an inline run: {run!r}")
    return "".join(out)


def display_html(display: B.Display) -> str:
    """Display math as a block ``<math>`` with its number beside it."""
    math = _math(r"\begin{aligned}%s\end{aligned}" % display.body, display=True)
    number = f'<span class="eqno">({int(display.number)})</span>' if display.number else ""
    classes = "display boxed" if display.boxed else "display"
    out = f'<div class="{classes}">{math}{number}</div>'
    if display.where:
        where = _math(r"\begin{aligned}%s\end{aligned}" % r" \\ ".join(display.where), display=True)
        out += f'<p class="where">where</p><div class="display">{where}</div>'
    return out


CELL = 28


def _svg_label(latex: str) -> str:
    """A picture's LaTeX name or entry as SVG text: subscripts as lowered spans."""
    text = re.sub(r"\\tilde\{([^{}]*)\}", "\\1\u0303", latex)
    match = re.fullmatch(r"([^_]*)_\{([^{}]*)\}", text)
    if match:
        base, sub = match.groups()
        return f'{html_text(_bare(base))}<tspan baseline-shift="sub" font-size="70%">{html_text(_bare(sub))}</tspan>'
    return html_text(_bare(text))


def _bare(latex: str) -> str:
    return re.sub(r"\\[A-Za-z]+|[{}]", "", latex)


def _grid(x0: float, y0: float, rows: int, cols: int, fills: dict, labels=None) -> list[str]:
    out = []
    for r in range(rows):
        for c in range(cols):
            fill = fills.get((r, c), "#ffffff")
            x, y = x0 + c * CELL, y0 + r * CELL
            out.append(f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="#888"/>')
            if labels:
                out.append(
                    f'<text x="{x + CELL / 2}" y="{y + CELL / 2 + 5}" text-anchor="middle">{_svg_label(labels[r][c])}</text>'
                )
    return out


def _svg(width: float, height: float, parts: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img"><title>{html_text(title)}</title>{"".join(parts)}</svg>'
    )


def flip_svg(flip) -> str:
    """The kernel and its flip as two grids of entries, the moved corners coloured."""
    colours = {"red": "#f4c7c3", "blue": "#c6d4f5"}
    rows, cols = len(flip.cells), len(flip.cells[0])
    fills = {
        (r, c): colours.get(flip.marks.get(flip.cells[r][c], ""), "#ffffff") for r in range(rows) for c in range(cols)
    }
    flipped = {
        (r, c): colours.get(flip.marks.get(flip.flipped_cells[r][c], ""), "#ffffff")
        for r in range(rows)
        for c in range(cols)
    }
    gap = 90
    width, top = 2 * cols * CELL + gap + 20, 26
    parts = [f'<text x="{10 + cols * CELL / 2}" y="18" text-anchor="middle">{_svg_label(flip.kernel)}</text>']
    parts += _grid(10, top, rows, cols, fills, flip.cells)
    right = 10 + cols * CELL + gap
    parts.append(f'<text x="{right + cols * CELL / 2}" y="18" text-anchor="middle">{_svg_label(flip.flipped)}</text>')
    parts += _grid(right, top, rows, cols, flipped, flip.flipped_cells)
    mid = top + rows * CELL / 2
    parts.append(
        f'<line x1="{10 + cols * CELL + 10}" y1="{mid}" x2="{right - 12}" y2="{mid}" stroke="#333" stroke-width="1.5"/>'
        f'<polygon points="{right - 12},{mid - 5} {right - 2},{mid} {right - 12},{mid + 5}" fill="#333"/>'
        f'<text x="{(10 + cols * CELL + right) / 2}" y="{mid - 8}" text-anchor="middle">flip</text>'
    )
    return _svg(width, top + rows * CELL + 10, parts, "a kernel and its flip")


def reach_svg(reach) -> str:
    """The input grid (the element red) and the output grid (the reached cells blue)."""
    pad = int(reach.padding or 0)
    rows_in, cols_in = reach.input_shape
    rows_out, cols_out = reach.output_shape
    top, left = 26, 10 + pad * CELL
    parts = [f'<text x="{left + cols_in * CELL / 2}" y="18" text-anchor="middle">{_svg_label(reach.input_name)}</text>']
    if pad:
        parts += [
            f'<rect x="{left - pad * CELL}" y="{top}" width="{(cols_in + 2 * pad) * CELL}" '
            f'height="{(rows_in + 2 * pad) * CELL}" fill="none" stroke="#aaa" stroke-dasharray="4 3"/>'
        ]
    parts += _grid(left, top + pad * CELL, rows_in, cols_in, {tuple(reach.element): "#e57373"})
    right = left + (cols_in + pad) * CELL + 3 * CELL
    parts.append(
        f'<text x="{right + cols_out * CELL / 2}" y="18" text-anchor="middle">{_svg_label(reach.output_name)}</text>'
    )
    parts += _grid(right, top, rows_out, cols_out, {tuple(p): "#90a8e0" for p in reach.reached})
    height = top + max(rows_in + 2 * pad, rows_out) * CELL + 10
    return _svg(right + cols_out * CELL + 10, height, parts, "which elements one element reaches")


def picture_html(picture: B.Picture) -> str:
    """A picture as a figure with inline SVG and its caption."""
    svg = flip_svg(picture.data) if picture.kind == "flip" else reach_svg(picture.data)
    caption = html_runs(picture.caption)
    if picture.kind == "flip":
        return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"
    return f"<p>{caption}</p><figure>{svg}</figure>"


def html_block(block) -> str:
    """One block as HTML."""
    if isinstance(block, B.Heading):
        tag = "h2" if block.level == 1 else "h3"
        return f"<{tag}>{html_runs(block.runs)}</{tag}>"
    if isinstance(block, B.Paragraph):
        return f"<p>{html_runs(block.runs)}</p>"
    if isinstance(block, B.Items):
        return "<ul>" + "".join(f"<li>{html_runs(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, B.Display):
        return display_html(block)
    if isinstance(block, B.Picture):
        return picture_html(block)
    if isinstance(block, B.CodeBlock):
        return f"<pre><code>{html_text(block.code)}</code></pre>"
    raise TypeError(f"not a block: {block!r}")


def html_document(document: B.Document) -> str:
    """A whole report as one HTML file (every equation MathML; raises on math it cannot show).

    >>> page = html_document(B.Document((B.Text("T"),), "s", (B.Paragraph((B.Math("x^2"),)),)))
    >>> "<msup>" in page and "<script" not in page
    True
    """
    body = [
        f"<style>{REPORT_STYLE}</style>",
        f"<h1>{html_runs(document.title)}</h1>",
        f'<p class="subtitle">{html_text(document.subtitle)}</p>',
    ]
    body += [html_block(b) for b in document.blocks]
    if document.notes:
        items = "".join(
            f'<li id="note-{int(n)}" value="{int(n)}">{html_text(text)}</li>' for n, text in document.notes.items()
        )
        body.append(f'<section class="footnotes"><ol>{items}</ol></section>')
    return html_page(B.plain_text(document.title), "\n".join(body))


__all__ = ["html_document", "html_runs"]
