"""Regenerate the example reports: ``python examples/reports/make.py [LAYER]...``.

Each layer of the hand derivations in ``examples/derivations/`` gets ``<layer>.tex`` and
``<layer>.pdf`` next to this file, with the layer's known claims; conv2d also carries the
classic mistake (the kernel flipped once too often), so that one refutation with its
counterexample and the claim that would hold is on show, and is written as Markdown
(``conv2d.md``) and as one HTML file (``conv2d.html``) too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from symderive.layer import load_layer
from symderive.render.html import html_document
from symderive.render.markdown import markdown_document
from symderive.report import compile_pdf, latex_document, report_document

LAYERS = ("conv2d", "convolution2d", "convolution2d_full", "linear", "softmax_cross_entropy")
EXTRA_CLAIMS = {"conv2d": {"x": ['convolve(g, flip(w), "full")']}}
#: layers also written as Markdown and HTML
EVERY_FORMAT = ("conv2d",)


def claims_for(layer, extra: dict) -> dict | None:
    """The layer's known claims plus the extra ones (None: known claims only)."""
    if not extra:
        return None
    claims = {n: [c.claim for c in layer.claims if c.wrt == n] for n in layer.differentiable}
    for name, more in extra.items():
        claims[name] += more
    return claims


HERE = Path(__file__).resolve().parent


def main(names=LAYERS, folder: Path = HERE) -> None:
    for name in names:
        layer = load_layer(name)
        document = report_document(layer, claims_for(layer, EXTRA_CLAIMS.get(name, {})))
        tex = latex_document(document)
        (folder / f"{name}.tex").write_text(tex, encoding="utf-8")
        (folder / f"{name}.pdf").write_bytes(compile_pdf(tex))
        written = [f"{name}.tex", f"{name}.pdf"]
        if name in EVERY_FORMAT:
            (folder / f"{name}.md").write_text(markdown_document(document), encoding="utf-8")
            (folder / f"{name}.html").write_text(html_document(document), encoding="utf-8")
            written += [f"{name}.md", f"{name}.html"]
        print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main(sys.argv[1:] or LAYERS)
