"""Time to a verdict for every seed claim (issue 4's speed targets).

Prints, for every claim of ``benchmarks/batch_seeds.json`` (the seed table's claims in
both forms and the usual mistakes), the warm in-process time to a verdict (best of 3
after one warm-up) and the cold time of one ``symderive prove --batch ... --json``
subprocess over all of them. Targets: each claim under 1 s warm, the batch under 15 s
cold. CPU time is printed next to wall time: on a shared 2-core machine wall time also
measures the neighbours' load.

    python benchmarks/prove.py            # table and totals
    python benchmarks/prove.py --repeat 1 # quicker, best of 1
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = HERE / "batch_seeds.json"
WARM_TARGET = 1.0
COLD_TARGET = 15.0


def load_batch(path: Path = BATCH) -> list[dict]:
    """The batch file's entries (LANGUAGE.md's ``--batch`` format).

    >>> all("claim" in e for e in load_batch())
    True
    """
    return json.loads(path.read_text())


def time_claim(entry: dict, repeat: int) -> tuple[str, float, float]:
    """(verdict, best wall seconds, best CPU seconds) of ``prove`` on one entry, after one warm-up."""
    from symderive.prove import prove

    def once():
        w0, c0 = time.perf_counter(), time.process_time()
        v = prove(entry["layer"], entry["wrt"], entry["claim"], assume=entry.get("assume", []))
        return v.verdict, time.perf_counter() - w0, time.process_time() - c0

    verdict, _, _ = once()
    runs = [once() for _ in range(repeat)]
    if any(r[0] != verdict for r in runs):
        raise SystemExit(f"non-deterministic verdict for {entry}: {[r[0] for r in runs]}")
    return verdict, min(r[1] for r in runs), min(r[2] for r in runs)


def cold_batch(path: Path = BATCH) -> tuple[str, float, float, list[dict]]:
    """(how it was run, wall seconds, child CPU seconds, parsed JSON lines) of one cold batch run."""
    exe = shutil.which("symderive")
    if exe:
        cmd, how = [exe, "prove", "--batch", str(path), "--json"], "symderive prove --batch --json"
    else:  # no CLI installed: the same work through the API in a fresh interpreter
        code = (
            "import json,sys; from symderive.prove import prove\n"
            "for e in json.load(open(sys.argv[1])):\n"
            "    v = prove(e['layer'], e['wrt'], e['claim'], assume=e.get('assume', []))\n"
            "    print(json.dumps(v.to_json()))\n"
        )
        cmd, how = [sys.executable, "-c", code, str(path)], "python -c (API; the CLI is not installed)"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode not in (0, 1, 3):
        raise SystemExit(f"batch failed with exit status {out.returncode}: {out.stderr.strip()}")
    return how, wall, cpu, [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per claim after the warm-up (best kept)")
    parser.add_argument("--batch", type=Path, default=BATCH)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold batch subprocess")
    args = parser.parse_args(argv)
    entries = load_batch(args.batch)

    rows = []
    if not args.no_cold:  # cold first, so that nothing of this process is cached for it
        how, wall, cpu, lines = cold_batch(args.batch)
    for e in entries:
        rows.append((e, *time_claim(e, args.repeat)))

    width = max(len(f"{e['layer']}/{e['wrt']}  {e['claim']}") for e in entries)
    print(f"{'claim':<{width}}  {'verdict':<8} {'warm s':>7} {'cpu s':>7}")
    for e, verdict, wall_s, cpu_s in rows:
        flag = "" if wall_s < WARM_TARGET else "  > 1 s"
        print(
            f"{e['layer'] + '/' + e['wrt'] + '  ' + e['claim']:<{width}}  {verdict:<8} {wall_s:7.3f} {cpu_s:7.3f}{flag}"
        )
    total_w = sum(r[2] for r in rows)
    total_c = sum(r[3] for r in rows)
    slow = [r for r in rows if r[2] >= WARM_TARGET]
    counts = {v: sum(1 for r in rows if r[1] == v) for v in sorted({r[1] for r in rows})}
    print()
    print(f"claims: {len(rows)}  verdicts: {counts}")
    print(
        f"warm total: {total_w:.2f} s wall, {total_c:.2f} s cpu; slowest {max(r[2] for r in rows):.3f} s; "
        f"{len(slow)} claim(s) at or over the {WARM_TARGET:.0f} s target"
    )
    if not args.no_cold:
        agree = [ln.get("verdict") for ln in lines] == [r[1] for r in rows]
        print(
            f"cold batch ({how}): {wall:.2f} s wall, {cpu:.2f} s cpu, {len(lines)} verdicts "
            f"({'same as warm' if agree else 'DIFFERENT from warm'}); target {COLD_TARGET:.0f} s: "
            f"{'met' if wall < COLD_TARGET else 'missed'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
