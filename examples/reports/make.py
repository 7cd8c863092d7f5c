"""Regenerate the example reports of the seed layers: ``python examples/reports/make.py``.

Each layer gets ``<layer>.tex`` and ``<layer>.pdf`` next to this file, with the layer's
known claims; conv2d also carries the classic mistake (the flipped kernel of seed 004),
so that one refutation with its counterexample is on show.
"""

from __future__ import annotations

import sys
from pathlib import Path

from symderive.layer import load_layer
from symderive.report import compile_pdf, render_tex

SEED_LAYERS = ("conv2d", "convolution2d", "convolution2d_full", "linear", "softmax_cross_entropy")
EXTRA_CLAIMS = {"conv2d": {"x": ['convolve(g, flip(w), "full")']}}


def claims_for(layer, extra: dict) -> dict | None:
    """The layer's known claims plus the extra ones (None: known claims only)."""
    if not extra:
        return None
    claims = {n: [c.claim for c in layer.claims if c.wrt == n] for n in layer.differentiable}
    for name, more in extra.items():
        claims[name] += more
    return claims


HERE = Path(__file__).resolve().parent


def main(names=SEED_LAYERS, folder: Path = HERE) -> None:
    for name in names:
        layer = load_layer(name)
        tex = render_tex(layer, claims_for(layer, EXTRA_CLAIMS.get(name, {})))
        (folder / f"{name}.tex").write_text(tex, encoding="utf-8")
        (folder / f"{name}.pdf").write_bytes(compile_pdf(tex))
        print(f"wrote {name}.tex and {name}.pdf")


if __name__ == "__main__":
    main(sys.argv[1:] or SEED_LAYERS)
