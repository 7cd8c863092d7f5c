"""Benchmark: how long ``symderive check`` takes on a correct implementation of each built-in layer.

Run ``python benchmarks/check.py`` (or ``python benchmarks/check.py conv2d attention`` for the layers
whose name contains one of those words). The correct implementations are the module
:func:`symderive.codegen.emit_numpy` writes for the layer (its gradients proved), written to a
temporary folder and checked as ``FILE.py:grad_NAME``, as a user would. Emitting is not timed.

For each layer and input it prints the wall time of one ``check`` from nothing (the sweep's sizes
chosen, the expected gradients computed, the child process started, the implementation loaded
and called at every size), then the time of a second implementation on the same cases (the
expected gradients reused through a :class:`symderive.checking.CaseCache`), and the number of
sizes tried. Issue 21 asks for at most 10 s per implementation on these machines.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from symderive.checking import CaseCache, check_many
from symderive.codegen import emit_numpy
from symderive.layer import builtin_layer_names, load_layer

LIMIT_SECONDS = 10.0


def timed_checks(layer, wrt: str, spec: str) -> tuple[float, float, int, bool]:
    """Seconds for a first check (cases built) and for a second on the same cases; sizes tried; whether both agreed."""
    start = time.perf_counter()
    cases = CaseCache(layer, wrt)
    first = check_many(layer, wrt, [spec], cases=cases)[0]
    middle = time.perf_counter()
    second = check_many(layer, wrt, [spec], cases=cases)[0]
    end = time.perf_counter()
    if not (first.ok and second.ok):
        print(f"  {layer.name} {wrt}: {first.details()}", file=sys.stderr)
    return middle - start, end - middle, len(first.sizes_tried), first.ok and second.ok


def main(words: list[str]) -> int:
    names = [n for n in builtin_layer_names() if not words or any(w in n for w in words)]
    print(f"{'layer':24} {'input':6} {'first s':>8} {'again s':>8} {'sizes':>6}  ok")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            layer = load_layer(name)
            path = Path(folder) / f"{name}_grad.py"
            path.write_text(emit_numpy(layer), encoding="utf-8")
            for wrt in layer.differentiable:
                first, again, sizes, ok = timed_checks(layer, wrt, f"{path}:grad_{wrt}")
                worst = max(worst, first)
                flag = "" if first <= LIMIT_SECONDS else f"  over {LIMIT_SECONDS:g} s"
                print(
                    f"{name:24} {wrt:6} {first:8.2f} {again:8.2f} {sizes:6d}  {'yes' if ok else 'NO'}{flag}", flush=True
                )
    print(f"slowest first check: {worst:.2f} s (limit {LIMIT_SECONDS:g} s)")
    return 0 if worst <= LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
