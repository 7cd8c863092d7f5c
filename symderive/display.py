"""Notebook display, registered from above: data types ask here how to show themselves.

A :class:`~symderive.decide.verdict.Verdict`, a derivation, a ``solve`` result or an audit
cannot import the renderer (it sits above them, or beside them); the package registers, once
at import, the functions that render them as Markdown, LaTeX and HTML, and their
``_repr_markdown_``/``_repr_latex_``/``_repr_html_`` (the :class:`Displayed` mixin) look the
function up here. The tables are filled only by ``symderive/__init__.py`` and read-only
afterwards.

>>> markdown_of(object()) is None
True
"""

from __future__ import annotations

from collections.abc import Callable

#: class name -> function rendering an instance as Markdown (filled by the package at import)
MARKDOWN: dict[str, Callable[[object], str]] = {}
#: the same for LaTeX (SymPy's form: a ``$$...$$`` string) and for HTML (MathML math)
LATEX: dict[str, Callable[[object], str]] = {}
HTML: dict[str, Callable[[object], str]] = {}
TABLES = {"markdown": MARKDOWN, "latex": LATEX, "html": HTML}


def register_markdown(class_name: str, render: Callable[[object], str]) -> None:
    """Show instances of ``class_name`` in notebooks through ``render``.

    >>> register_markdown("_Example", lambda obj: "**example**")
    >>> class _Example: pass
    >>> markdown_of(_Example())
    '**example**'
    """
    MARKDOWN[class_name] = render


def register(class_name: str, kind: str, render: Callable[[object], str]) -> None:
    """Show instances of ``class_name`` in notebooks as ``kind`` (markdown, latex, html) through ``render``.

    >>> register("_Shown", "latex", lambda obj: "$$x$$")
    >>> class _Shown(Displayed): pass
    >>> _Shown()._repr_latex_(), _Shown()._repr_html_() is None
    ('$$x$$', True)
    """
    TABLES[kind][class_name] = render


def shown(obj, kind: str) -> str | None:
    """``obj`` rendered as ``kind`` (None: nothing registered, and Jupyter tries the next form).

    >>> shown(3, "html") is None
    True
    """
    render = TABLES[kind].get(type(obj).__name__)
    return None if render is None else render(obj)


class Displayed:
    """Mixin: Jupyter's rich display (Markdown, LaTeX, HTML) through the registered renderers."""

    __slots__ = ()

    def _repr_markdown_(self) -> str | None:
        return shown(self, "markdown")

    def _repr_latex_(self) -> str | None:
        return shown(self, "latex")

    def _repr_html_(self) -> str | None:
        return shown(self, "html")


def markdown_of(obj) -> str | None:
    """The Markdown of ``obj`` (None: nothing registered, and Jupyter shows its text).

    >>> markdown_of(3) is None
    True
    """
    render = MARKDOWN.get(type(obj).__name__)
    return None if render is None else render(obj)
