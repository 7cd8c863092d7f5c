"""Time to a verdict for every seed claim (issue 20 item 5's speed targets), beside a numeric check.

Prints, for every claim of ``benchmarks/batch_seeds.json`` (the seed table's claims in
both forms and the usual mistakes), the CPU time of its first proof in this process (the
layer already loaded by the claims before it) and the warm time (best of ``--repeat``
after that); then the cold CPU time of one ``symderive prove conv2d --wrt x ...`` process,
of the cold batch (``--jobs 1`` and ``--jobs 2``), and of ``torch.autograd.gradcheck`` of
the same conv2d layer at one size. Targets: warm median <= 0.1 s and none over 0.3 s;
one cold claim <= 1.0 s CPU; the cold batch <= 4 s. CPU time is what is compared: on a
shared machine wall time also measures the neighbours' load (it is printed beside it).
The cold processes run with bytecode written, as an installed package has it (without
``PYTHONDONTWRITEBYTECODE``, which would make every cold process compile symderive anew,
about 0.5 s more). ``--jobs 2`` is judged on its wall time (the processes share the work),
``--jobs 1`` on its CPU time.

    python benchmarks/prove.py            # table and totals
    python benchmarks/prove.py --repeat 1 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = HERE / "batch_seeds.json"
WARM_MEDIAN_TARGET = 0.1
WARM_MAX_TARGET = 0.3
COLD_CLAIM_TARGET = 1.0
COLD_BATCH_TARGET = 4.0
COLD_CLAIM = ["conv2d", "--wrt", "x", 'convolve(g, w, "full")']
#: the size gradcheck checks the conv2d layer at
GRADCHECK_SIZES = {"H": 8, "W": 8, "kh": 3, "kw": 3}


def load_batch(path: Path = BATCH) -> list[dict]:
    """The batch file's entries (LANGUAGE.md's ``--batch`` format).

    >>> all("claim" in e for e in load_batch())
    True
    """
    return json.loads(path.read_text())


def time_claim(entry: dict, repeat: int) -> tuple[str, float, float, float]:
    """(verdict, CPU seconds of the first proof, best warm wall seconds, best warm CPU seconds) of one entry."""
    from symderive.prove import prove

    def once():
        w0, c0 = time.perf_counter(), time.process_time()
        v = prove(entry["layer"], entry["wrt"], entry["claim"], assume=entry.get("assume", []))
        return v.verdict, time.perf_counter() - w0, time.process_time() - c0

    verdict, _, first = once()
    runs = [once() for _ in range(repeat)]
    if any(r[0] != verdict for r in runs):
        raise SystemExit(f"non-deterministic verdict for {entry}: {[r[0] for r in runs]}")
    return verdict, first, min(r[1] for r in runs), min(r[2] for r in runs)


def _command(args: list[str]) -> list[str]:
    exe = shutil.which("symderive") or str(Path(sys.executable).with_name("symderive"))
    if Path(exe).exists():
        return [exe, *args]
    return [sys.executable, "-m", "symderive", *args]


def run_cold(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the process and its children, the finished process) of one cold command."""
    # as installed: the bytecode is written once and read after (the first run writes it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(_command(args), capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode not in (0, 1, 3):
        raise SystemExit(f"{' '.join(args)} failed with exit status {out.returncode}: {out.stderr.strip()}")
    return wall, cpu, out


def cold_batch(path: Path, jobs: int) -> tuple[float, float, list[dict]]:
    """(wall seconds, CPU seconds, parsed JSON lines) of one cold ``prove --batch --json --jobs N``."""
    wall, cpu, out = run_cold(["prove", "--batch", str(path), "--json", "--jobs", str(jobs)])
    return wall, cpu, [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def gradcheck_conv2d(repeat: int) -> tuple[float, float, bool]:
    """(CPU seconds of the first call, best CPU seconds after it, passed) of torch.autograd.gradcheck
    of the conv2d layer (y = correlate(x, w, 'valid') + b) at :data:`GRADCHECK_SIZES`, in float64."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    h, w, kh, kw = (GRADCHECK_SIZES[k] for k in ("H", "W", "kh", "kw"))
    inputs = tuple(
        torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True) for shape in ((h, w), (kh, kw), ())
    )

    def layer(x, k, b):
        return F.conv2d(x[None, None], k[None, None])[0, 0] + b

    def once():
        c0 = time.process_time()
        ok = torch.autograd.gradcheck(layer, inputs)
        return time.process_time() - c0, ok

    first, ok = once()
    best = min(once()[0] for _ in range(repeat))
    return first, best, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per claim after the first (best kept)")
    parser.add_argument("--batch", type=Path, default=BATCH)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold subprocesses")
    args = parser.parse_args(argv)
    entries = load_batch(args.batch)

    cold = {}
    if not args.no_cold:  # cold first, so that nothing of this process is cached for it
        run_cold(["prove", *COLD_CLAIM])  # writes the bytecode, as installing does
        cold["claim"] = min((run_cold(["prove", *COLD_CLAIM]) for _ in range(3)), key=lambda r: r[1])[:2]
        for jobs in (1, 2):
            cold[jobs] = cold_batch(args.batch, jobs)
    rows = [(e, *time_claim(e, args.repeat)) for e in entries]

    width = max(len(f"{e['layer']}/{e['wrt']}  {e['claim']}") for e in entries)
    print(f"{'claim':<{width}}  {'verdict':<8} {'first':>7} {'warm s':>7} {'cpu s':>7}")
    for e, verdict, first, wall_s, cpu_s in rows:
        flag = "" if cpu_s <= WARM_MAX_TARGET else f"  > {WARM_MAX_TARGET} s"
        name = f"{e['layer']}/{e['wrt']}  {e['claim']}"
        print(f"{name:<{width}}  {verdict:<8} {first:7.3f} {wall_s:7.3f} {cpu_s:7.3f}{flag}")
    cpus = [r[4] for r in rows]
    firsts = [r[2] for r in rows]
    counts = {v: sum(1 for r in rows if r[1] == v) for v in sorted({r[1] for r in rows})}
    median, slowest = statistics.median(cpus), max(cpus)
    print()
    print(f"claims: {len(rows)}  verdicts: {counts}")
    print(
        f"warm CPU per claim: median {median:.3f} s (target {WARM_MEDIAN_TARGET} s: "
        f"{'met' if median <= WARM_MEDIAN_TARGET else 'missed'}), slowest {slowest:.3f} s (target "
        f"{WARM_MAX_TARGET} s: {'met' if slowest <= WARM_MAX_TARGET else 'missed'}); total {sum(cpus):.2f} s"
    )
    print(
        f"first proof of each claim in this process: median {statistics.median(firsts):.3f} s CPU, total {sum(firsts):.2f} s"
    )
    if cold:
        wall, cpu = cold["claim"]
        print(
            f"cold `symderive prove {' '.join(COLD_CLAIM[:3])} ...`: {cpu:.2f} s CPU, {wall:.2f} s wall (best of 3; "
            f"target {COLD_CLAIM_TARGET} s CPU: {'met' if cpu <= COLD_CLAIM_TARGET else 'missed'})"
        )
        for jobs in (1, 2):
            wall, cpu, lines = cold[jobs]
            agree = [ln.get("verdict") for ln in lines] == [r[1] for r in rows]
            judged, what = (cpu, "CPU") if jobs == 1 else (wall, "wall")
            print(
                f"cold batch --jobs {jobs}: {cpu:.2f} s CPU (all processes), {wall:.2f} s wall, {len(lines)} verdicts "
                f"({'same as warm' if agree else 'DIFFERENT from warm'}); target {COLD_BATCH_TARGET} s: "
                f"{'met' if judged <= COLD_BATCH_TARGET else 'missed'} ({what}; load {os.getloadavg()[0]:.1f})"
            )
    try:
        first, best, ok = gradcheck_conv2d(args.repeat)
    except ImportError:
        print("torch.autograd.gradcheck: torch is not installed")
    else:
        sizes = ", ".join(f"{k}={v}" for k, v in GRADCHECK_SIZES.items())
        print(
            f"torch.autograd.gradcheck of conv2d at one size ({sizes}; x, w and b at once): "
            f"{best:.3f} s CPU warm, {first:.3f} s the first call ({'passed' if ok else 'FAILED'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
