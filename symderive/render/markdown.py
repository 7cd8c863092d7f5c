# ruff: noqa: UP031  (percent formatting: LaTeX braces would all double in str.format/f-strings)
"""A report as GitHub/Jupyter Markdown: ``$`` and ``$$`` math (``aligned``, ``cases``), footnotes.

The blocks of :mod:`symderive.render.blocks` laid out as Markdown. User text goes through
:func:`symderive.escape.markdown_text` (every punctuation character escaped, so no emphasis,
link, HTML tag or math can start), code through a code span or a fence longer than any
run of backticks in it; math comes from symderive's printer and operator table only.

>>> from symderive.render import blocks as B
>>> markdown_document(B.Document((B.Text("T"),), "s", (B.Paragraph((B.Text("<b>"), B.Math("x"))),)))
'# T\\n\\n*s*\\n\\n\\\\<b\\\\>$x$\\n'
"""

from __future__ import annotations

import re

from ..escape import markdown_text
from . import blocks as B

#: a verdict mark as a character
MARKS = {"proved": "\u2713", "refuted": "\u2717", "unknown": "?"}


def markdown_runs(runs) -> str:
    """Inline runs as Markdown.

    >>> markdown_runs((B.Strong("a*b"), B.Text(" "), B.Math(r"\\alpha"), B.Note(1)))
    '**a\\\\*b** $\\\\alpha$[^1]'
    """
    out = []
    for run in runs:
        if isinstance(run, B.Text):
            out.append(markdown_text(run.text))
        elif isinstance(run, B.Strong):
            out.append(_wrapped("**", run.text))
        elif isinstance(run, B.Emph):
            out.append(_wrapped("*", run.text))
        elif isinstance(run, B.Code):
            out.append(markdown_text(run.text, code=True))
        elif isinstance(run, B.Math):
            out.append("$%s$" % _one_line(run.latex))
        elif isinstance(run, B.Mark):
            out.append(MARKS.get(run.verdict, "?"))
        elif isinstance(run, B.Note):
            out.append(f"[^{run.number}]")
        else:
            raise TypeError(f"not an inline run: {run!r}")
    return "".join(out)


def _wrapped(marker: str, text: str) -> str:
    # emphasis may not start or end with a space: the spaces stay outside the markers
    inner = text.strip()
    if not inner:
        return markdown_text(text)
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return f"{lead}{marker}{markdown_text(inner)}{marker}{trail}"


def _one_line(latex: str) -> str:
    return " ".join(latex.split())


def display_markdown(display: B.Display) -> str:
    """Display math as a ``$$`` block: an ``aligned`` block, its number as ``\\tag``.

    >>> print(display_markdown(B.Display(("y &= 1",), number=3)))
    $$
    \\begin{aligned}y &= 1\\end{aligned} \\tag{3}
    $$
    """
    body = r"\begin{aligned}%s\end{aligned}" % _one_line(display.body)
    if display.boxed:
        body = r"\boxed{%s}" % body
    if display.number:
        body += r" \tag{%d}" % display.number
    out = "$$\n%s\n$$" % body
    if display.where:
        out += "\n\nwhere\n\n$$\n\\begin{aligned}%s\\end{aligned}\n$$" % _one_line(r" \\ ".join(display.where))
    return out


def picture_markdown(picture: B.Picture) -> str:
    """A picture: the kernel flip as two matrices in math, the reach as a grid of characters."""
    data = picture.data
    caption = markdown_runs(picture.caption)
    if picture.kind == "flip":
        left = r" \\ ".join(" & ".join(row) for row in data.cells)
        right = r" \\ ".join(" & ".join(row) for row in data.flipped_cells)
        math = r"%s = \begin{bmatrix}%s\end{bmatrix} \quad\overset{\text{flip}}{\longrightarrow}\quad %s = \begin{bmatrix}%s\end{bmatrix}"
        return "$$\n%s\n$$\n\n%s" % (math % (data.kernel, left, data.flipped, right), caption)
    return "%s\n\n%s" % (caption, reach_grid(data))


def reach_grid(reach) -> str:
    """The reach picture as two grids of characters in a code block (``#`` the element, ``*`` reached).

    >>> from types import SimpleNamespace as N
    >>> print(reach_grid(N(input_shape=(1, 2), output_shape=(1, 1), element=(0, 1), reached=((0, 0),),
    ...     input_name="x", output_name="y", padding=0)))
    ```text
    x      y
    . #    *
    ```
    """
    rows_in, rows_out = reach.input_shape[0], reach.output_shape[0]
    left = [
        " ".join("#" if (r, c) == tuple(reach.element) else "." for c in range(reach.input_shape[1]))
        for r in range(rows_in)
    ]
    reached = {tuple(p) for p in reach.reached}
    right = [" ".join("*" if (r, c) in reached else "." for c in range(reach.output_shape[1])) for r in range(rows_out)]
    width = max(len(line) for line in left) + 4
    head = _plain_name(reach.input_name).ljust(width) + _plain_name(reach.output_name)
    lines = [head]
    for k in range(max(rows_in, rows_out)):
        a = left[k] if k < rows_in else ""
        b = right[k] if k < rows_out else ""
        lines.append((a.ljust(width) + b).rstrip())
    return "```text\n" + "\n".join(lines) + "\n```"


def _plain_name(latex: str) -> str:
    """A picture's LaTeX name as plain text (``\\tilde{w}`` as ``w~``)."""
    text = re.sub(r"\\tilde\{([^{}]*)\}", r"\1~", latex)
    return re.sub(r"\\[A-Za-z]+|[{}]", "", text)


def code_markdown(code: str) -> str:
    """Source in a fence longer than any run of backticks inside it.

    >>> code_markdown("a = '```'")
    "````python\\na = '```'\\n````"
    """
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n{code.rstrip()}\n{fence}"


def markdown_document(document: B.Document) -> str:
    """A whole report as Markdown."""
    parts = [f"# {markdown_runs(document.title)}", f"*{markdown_text(document.subtitle)}*"]
    for block in document.blocks:
        parts.append(markdown_block(block))
    for number, text in document.notes.items():
        parts.append(f"[^{number}]: {markdown_text(text)}")
    return "\n\n".join(p for p in parts if p) + "\n"


def markdown_block(block) -> str:
    """One block as Markdown."""
    if isinstance(block, B.Heading):
        return "#" * (block.level + 1) + " " + markdown_runs(block.runs)
    if isinstance(block, B.Paragraph):
        return markdown_runs(block.runs)
    if isinstance(block, B.Items):
        return "\n".join("- " + markdown_runs(item) for item in block.items)
    if isinstance(block, B.Display):
        return display_markdown(block)
    if isinstance(block, B.Picture):
        return picture_markdown(block)
    if isinstance(block, B.CodeBlock):
        return code_markdown(block.code)
    raise TypeError(f"not a block: {block!r}")


__all__ = ["markdown_document", "markdown_runs"]
