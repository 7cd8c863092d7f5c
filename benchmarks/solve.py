"""Time of ``symderive solve`` per built-in layer and input, and the candidates it built.

Run: ``.venv/bin/python benchmarks/solve.py [LAYER ...] [--timeout S]``. One line per
(layer, input): seconds, candidates built, distinct kept, and the simplest proved closed
form (or ``none``).
"""

from __future__ import annotations

import argparse

from symderive.layer import builtin_layer_names, load_layer
from symderive.search import solve


def main() -> None:
    """Print the table (a line per layer input, then the totals)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layers", nargs="*", help="built-in layer names (default: all)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    total, found, count = 0.0, 0, 0
    print(f"{'layer':24} {'wrt':6} {'seconds':>8} {'built':>7} {'distinct':>8}  simplest proved closed form")
    for name in args.layers or builtin_layer_names():
        layer = load_layer(name)
        for wrt in layer.differentiable:
            r = solve(layer, wrt, timeout=args.timeout)
            claim = r.claims[0].claim if r.found else "none"
            print(f"{name:24} {wrt:6} {r.seconds:8.2f} {r.candidates:7d} {r.distinct:8d}  {claim}", flush=True)
            total += r.seconds
            found += r.found
            count += 1
    print(f"{found} of {count} inputs solved in {total:.1f} s")


if __name__ == "__main__":
    main()
