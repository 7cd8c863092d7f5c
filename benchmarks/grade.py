"""Benchmark: how long ``symderive grade`` takes on the conv2d class of examples/course/class.

Run ``python benchmarks/grade.py [JOBS]`` (default 2). It grades every submission of
``examples/course/class/conv2d`` (30 and more: correct ones in several styles and the usual
bugs, one of which hangs and one of which exhausts memory) with ``--timeout 2 --memory 300``,
``JOBS`` at a time, and prints the wall time of the whole grading (the layer loaded, the
sweep chosen, the expected gradients computed, every child started, loaded and called at
every size class) and the counts per status. Issue 19 asks for under 60 s with 2 jobs on
these machines.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from symderive.grade import grade

LIMIT_SECONDS = 60.0
CLASS = Path(__file__).parents[1] / "examples" / "course" / "class" / "conv2d"


def main(argv: list[str]) -> int:
    """Grade the class once; print the figure; 1 when it is over the limit."""
    jobs = int(argv[0]) if argv else 2
    start = time.perf_counter()
    result = grade("conv2d", "x", "conv2d_backward_x", [str(CLASS)], jobs=jobs, timeout=2.0, memory_mb=300)
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{n} {s}" for s, n in result.summary()["statuses"].items() if n)
    print(f"grade conv2d: {len(result.rows)} submissions, --jobs {jobs}: {seconds:.1f} s ({counts})")
    print(f"limit {LIMIT_SECONDS:g} s: {'ok' if seconds < LIMIT_SECONDS else 'OVER'}")
    return 0 if seconds < LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
