"""Reports (the README's ``symderive.report``): LaTeX and PDF of a layer's derivations and verdicts.

The renderer lives in :mod:`symderive.render`; this façade keeps the documented path, and
``sd.report(...)`` calls :func:`report`.
"""

from __future__ import annotations

from ._callable import make_callable
from .render.report import LatexError, compile_pdf, render_tex, report

__all__ = ["LatexError", "compile_pdf", "render_tex", "report"]

make_callable(__name__)
