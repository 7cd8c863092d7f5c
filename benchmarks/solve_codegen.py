"""Benchmark: the gradient codegen emits for a custom conv layer with no claims (issue 16, requirement 3).

``emit_numpy`` on a copy of conv2d's forward without its ``[[claims]]`` uses the closed forms
``solve`` proves; this prints, at 512x512 with a 5x5 kernel (and 64x64, 3x3), the best-of-N
time of its ``grad_x`` and of its whole backward pass (every gradient) beside the module
emitted from conv2d's hand-written claims and beside SciPy, with the ratio solved / hand
(issue 16's target: within 1.5x), and how long the search took. Run
``python benchmarks/solve_codegen.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

sys.path.insert(0, str(Path(__file__).parent))
from codegen import CLAIMS, best_times  # noqa: E402 -- the timing of benchmarks/codegen.py

from symderive.codegen import emit_numpy  # noqa: E402
from symderive.layer import load_layer  # noqa: E402

#: conv2d's forward without its claims: what a user writes for a layer of their own
CUSTOM_CONV = """
name = "my_conv"
description = "A custom single-channel 2-D cross-correlation with a bias and no claims."
assume = ["kh <= H", "kw <= W"]

[inputs]
x = ["H", "W"]
w = ["kh", "kw"]
b = []

[output]
y = "correlate(x, w, 'valid') + b"
"""


def namespace_of(source: str, name: str) -> dict:
    """The functions of an emitted module."""
    namespace: dict = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 -- our generated code
    return namespace


def solved_module() -> tuple[dict, float]:
    """The module emitted for the custom layer (closed forms from solve) and the seconds emission took."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "my_conv.toml"
        path.write_text(CUSTOM_CONV)
        start = time.perf_counter()
        source = emit_numpy(str(path))
        seconds = time.perf_counter() - start
    if "_gather" in source:
        raise SystemExit("codegen fell back to gather code for the custom conv layer")
    return namespace_of(source, "emitted_my_conv"), seconds


def passes(solved: dict, hand: dict, x, w, g) -> dict:
    """pass name -> implementation name -> callable: grad_x alone and the whole backward pass."""

    def backward(m):
        return lambda: (m["grad_x"](w=w, g=g), m["grad_w"](x=x, g=g), m["grad_b"](g=g))

    return {
        "grad_x": {
            "solved": lambda: solved["grad_x"](w=w, g=g),
            "hand": lambda: hand["grad_x"](w=w, g=g),
            "scipy": lambda: scipy.signal.convolve(g, w, "full"),
        },
        "backward": {
            "solved": backward(solved),
            "hand": backward(hand),
            "scipy": lambda: (scipy.signal.convolve(g, w, "full"), scipy.signal.correlate(x, g, "valid"), g.sum()),
        },
    }


def main() -> None:
    solved, seconds = solved_module()
    hand = namespace_of(emit_numpy(load_layer("conv2d"), claims=CLAIMS["conv2d"]), "emitted_conv2d")
    print(f"emit_numpy of the custom conv layer (solve included): {seconds:.1f} s")
    print(f"{'case':<16}{'pass':<10}{'solved ms':>11}{'hand ms':>10}{'scipy ms':>10}{'solved/hand':>13}")
    for H, k in ((512, 5), (64, 3)):
        rng = np.random.default_rng(1)
        x, w = rng.standard_normal((H, H)), rng.standard_normal((k, k))
        g = rng.standard_normal((H - k + 1, H - k + 1))
        for name, fns in passes(solved, hand, x, w, g).items():
            t = best_times(fns)
            print(
                f"{f'{H}x{H} ({k}x{k})':<16}{name:<10}{t['solved'] * 1e3:>11.3f}{t['hand'] * 1e3:>10.3f}"
                f"{t['scipy'] * 1e3:>10.3f}{t['solved'] / t['hand']:>12.2f}x"
            )


if __name__ == "__main__":
    main()
