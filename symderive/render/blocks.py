"""A report as format-neutral blocks: written once, then laid out as LaTeX, Markdown or HTML.

The report's prose lives in one place (:func:`symderive.render.report.report_document`) as
these blocks; each writer (the LaTeX template, :mod:`symderive.render.markdown`,
:mod:`symderive.render.html`) escapes the plain text of :class:`Text` its own way and turns
the math of :class:`Math` and :class:`Display` (LaTeX from the printer or the operator
table, never user text) into its own math. User text is only ever a ``Text``, ``Code`` or
``Strong`` run, so it stays text in every format.

>>> Paragraph((Text("a "), Math("x^2"))).runs[1].latex
'x^2'
"""

from __future__ import annotations

from dataclasses import dataclass, field

# -- inline runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Plain text (user text included): escaped by every writer.

    >>> Text("a < b").text
    'a < b'
    """

    text: str


@dataclass(frozen=True)
class Strong:
    """Bold text (escaped like :class:`Text`)."""

    text: str


@dataclass(frozen=True)
class Emph:
    """Italic text (escaped like :class:`Text`)."""

    text: str


@dataclass(frozen=True)
class Code:
    """Text in a monospaced font (a layer file's spelling): escaped, never run."""

    text: str


@dataclass(frozen=True)
class Math:
    """Inline math: LaTeX made by symderive's printer or operator table."""

    latex: str


@dataclass(frozen=True)
class Mark:
    """A verdict mark: ``proved`` (a check mark), ``refuted`` (a cross) or ``unknown`` (?)."""

    verdict: str


@dataclass(frozen=True)
class Note:
    """A footnote mark ``number``; the note's text is given once, in :attr:`Document.notes`."""

    number: int


# -- blocks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """A section (level 1) or subsection (level 2) heading."""

    level: int
    runs: tuple


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of inline runs."""

    runs: tuple


@dataclass(frozen=True)
class Items:
    """A bulleted list; each item a tuple of inline runs."""

    items: tuple


@dataclass(frozen=True)
class Display:
    """Display math: the lines of an ``aligned`` block (``&`` marks the alignment point),
    numbered ``number`` (0: no number), and lines defining its abbreviations (``where``).

    ``boxed`` marks a display that states a result (drawn framed).
    """

    lines: tuple[str, ...]
    number: int = 0
    where: tuple[str, ...] = ()
    boxed: bool = False

    @property
    def body(self) -> str:
        return r" \\ ".join(self.lines)


@dataclass(frozen=True)
class Picture:
    """A figure: ``kind`` is ``"flip"`` (a :class:`~symderive.render.report.FlipPicture`) or
    ``"reach"`` (a :class:`~symderive.render.report.ReachPicture`); ``caption`` inline runs."""

    kind: str
    data: object
    caption: tuple = ()


@dataclass(frozen=True)
class CodeBlock:
    """Source code shown as is (the emitted NumPy module of the ``--code`` appendix)."""

    code: str


@dataclass(frozen=True)
class Document:
    """A whole report: its title runs, blocks, and the footnotes by number."""

    title: tuple
    subtitle: str
    blocks: tuple
    notes: dict = field(default_factory=dict)


def plain_text(runs) -> str:
    """The runs as plain text (math as its LaTeX), for titles and tests.

    >>> plain_text((Text("Gradients of "), Code("conv2d")))
    'Gradients of conv2d'
    """
    out = []
    for run in runs:
        if isinstance(run, Text | Strong | Emph | Code):
            out.append(run.text)
        elif isinstance(run, Math):
            out.append(run.latex)
    return "".join(out)


__all__ = [
    "Code",
    "CodeBlock",
    "Display",
    "Document",
    "Emph",
    "Heading",
    "Items",
    "Mark",
    "Math",
    "Note",
    "Paragraph",
    "Picture",
    "Strong",
    "Text",
    "plain_text",
]
