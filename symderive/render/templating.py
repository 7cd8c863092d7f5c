"""The Jinja2 environment the LaTeX templates (report, audit) are written for.

LaTeX-safe delimiters (``\\BLOCK{...}``, ``\\VAR{...}``), a sandbox, no autoescaping (every
value is escaped by the filter ``e``, which the caller gives), and undefined names as errors.

>>> env = latex_environment(str.upper)
>>> env.from_string(r"\\VAR{x|e}").render(x="a&b")
'A&B'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import jinja2.sandbox


def templates_dir() -> Path:
    """The templates: package data in ``symderive/templates``."""
    candidate = Path(__file__).resolve().parent.parent / "templates"
    if (candidate / "report.tex.j2").is_file():
        return candidate
    raise FileNotFoundError("symderive's report templates are missing from this installation")


def latex_environment(escape: Callable[[object], str]) -> jinja2.Environment:
    """A sandboxed environment over :func:`templates_dir` whose filters ``e`` and ``escape`` are ``escape``."""
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["e"] = escape
    env.filters["escape"] = escape
    return env
