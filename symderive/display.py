"""Notebook display, registered from above: data types ask here how to show themselves.

A :class:`~symderive.decide.verdict.Verdict` or a derivation cannot import the renderer
(it sits above them); the package registers, once at import, the functions that render
them as Markdown, and their ``_repr_markdown_`` looks the function up here. The table is
filled only by ``symderive/__init__.py`` and read-only afterwards.

>>> markdown_of(object()) is None
True
"""

from __future__ import annotations

from collections.abc import Callable

#: class name -> function rendering an instance as Markdown (filled by the package at import)
MARKDOWN: dict[str, Callable[[object], str]] = {}


def register_markdown(class_name: str, render: Callable[[object], str]) -> None:
    """Show instances of ``class_name`` in notebooks through ``render``.

    >>> register_markdown("_Example", lambda obj: "**example**")
    >>> class _Example: pass
    >>> markdown_of(_Example())
    '**example**'
    """
    MARKDOWN[class_name] = render


def markdown_of(obj) -> str | None:
    """The Markdown of ``obj`` (None: nothing registered, and Jupyter shows its text).

    >>> markdown_of(3) is None
    True
    """
    render = MARKDOWN.get(type(obj).__name__)
    return None if render is None else render(obj)
