"""Benchmark: how long ``symderive audit`` takes on the example documents, entry by entry.

Run ``python benchmarks/audit.py``. Each audit runs in a fresh Python process (cold: the
package imported, the layers loaded and every derivation done from nothing), so the figure
is what a user waits for on ``symderive audit``. It prints, per document, the time of every
entry that was decided, the process's wall time and the audit's own time. Issue 15 asks for
under 10 s cold per document on these machines; the exit status is 1 when one is over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

LIMIT_SECONDS = 10.0
EXAMPLES = Path(__file__).parents[1] / "examples" / "derivations"
DOCUMENTS = [
    ("cnn_backprop_notes.md", None),
    ("pa5_conv_fc_softmax.md", "pa5_origin_flip.toml"),
    ("pa5_conv_fc_softmax.md", "pa5_centre_flip.toml"),
]
CHILD = """
import json, sys, time
start = time.perf_counter()
from symderive.audit.check import audit
result = audit(sys.argv[1], notation=sys.argv[2] or None)
rows = [(e.line, e.verdict, e.seconds) for e in result.entries]
print(json.dumps({"rows": rows, "audit": result.seconds, "in_process": time.perf_counter() - start}))
"""


def timed(document: str, notation: str | None) -> tuple[dict, float]:
    """The child's per-entry times and the wall time of the whole process (seconds)."""
    start = time.perf_counter()
    args = [sys.executable, "-c", CHILD, str(EXAMPLES / document), str(EXAMPLES / notation) if notation else ""]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout), time.perf_counter() - start


def main() -> int:
    """Audit each example cold; print per-entry times; 1 when one is over the limit."""
    over = False
    for document, notation in DOCUMENTS:
        figures, wall = timed(document, notation)
        print(f"{document}" + (f" --notation {notation}" if notation else ""))
        for line, verdict, seconds in figures["rows"]:
            if seconds > 0:
                print(f"  line {line:<4} {seconds:6.2f} s  {verdict}")
        print(f"  audit {figures['audit']:.1f} s, cold process {wall:.1f} s (limit {LIMIT_SECONDS:g} s)")
        over |= wall > LIMIT_SECONDS
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
