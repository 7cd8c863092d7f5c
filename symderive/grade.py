"""Grade a whole class: many backward implementations, one table (issue 19).

``grade(layer, wrt, function, paths)`` finds the submissions (a file, a folder of files or a
folder of folders, one per student; the student is the file's or folder's name), checks
each with :func:`symderive.checking.check_many` in its own child process (time and memory
bounded, ``jobs`` at a time, sharing one :class:`~symderive.checking.CaseCache`), tries
every size class of the sweep plus a large one, and returns a :class:`ClassResult`: per
submission a status (``correct``, ``wrong``, ``raised``, ``timeout``, ``memory``,
``not loaded``, ``missing function``, ``wrong shape``), a score (the fraction of the
size classes passed), the smallest failing case and the wall time; for the class, the
counts per status and per named mistake. It renders as text, CSV, Markdown, JSON
(LANGUAGE.md) and Gradescope's ``results.json``.

``mistake`` names the wrong formula a submission computes when one of the candidate mistakes
(:mod:`symderive.checking.mistakes`) matches it at every size (``check`` says the same), else None.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from symderive.checking import CaseCache, SweepSize, check_many, sizes_allowed
from symderive.errors import InputError
from symderive.layer import Layer, load_layer

STATUSES = ("correct", "wrong", "raised", "timeout", "memory", "not loaded", "missing function", "wrong shape")
#: the large size class is the plan's "every size different" sizes times this (odd: parities kept)
LARGE_FACTOR = 3
LARGE_MAX_ELEMENTS = 20_000
#: a per-call time bound when none is given, and loading's bound (imports are forked, so quick)
DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 1024.0


@dataclass(frozen=True)
class Submission:
    """One student's submission: the name shown and the Python file (None: no file defines the function).

    >>> Submission("alice", "class/alice.py").spec("f")
    'class/alice.py:f'
    """

    student: str
    path: str
    file: str | None = None

    def spec(self, function: str) -> str:
        """``FILE.py:FUNCTION`` for the checker."""
        return f"{self.file or self.path}:{function}"


@dataclass(frozen=True)
class Row:
    """One submission's result (``counterexample`` None when correct).

    >>> Row("alice", "a.py", "correct", 1.0, None, None, 0.5).to_json()["status"]
    'correct'
    """

    student: str
    path: str
    status: str
    score: float
    mistake: str | None
    counterexample: dict | None
    seconds: float
    message: str = ""
    passed: tuple = ()

    def to_json(self) -> dict:
        """The JSON object of LANGUAGE.md (``student``, ``path``, ``status``, ``score``, ``mistake``, ``counterexample``, ``seconds``)."""
        return {
            "student": self.student,
            "path": self.path,
            "status": self.status,
            "score": self.score,
            "mistake": self.mistake,
            "counterexample": self.counterexample,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class ClassResult:
    """A graded class: the rows (in the submissions' order), the size classes (the rubric) and the settings."""

    layer: str
    wrt: str
    function: str
    rubric: tuple[SweepSize, ...]
    rows: tuple[Row, ...]
    seconds: float
    hidden: bool = False
    settings: dict = field(default_factory=dict)

    @property
    def all_correct(self) -> bool:
        """Whether every submission is correct (exit status 0)."""
        return all(r.status == "correct" for r in self.rows)

    def summary(self) -> dict:
        """Counts per status (every status listed) and per named mistake, and the rubric."""
        counts = Counter(r.status for r in self.rows)
        return {
            "layer": self.layer,
            "wrt": self.wrt,
            "function": self.function,
            "submissions": len(self.rows),
            "statuses": {s: counts.get(s, 0) for s in STATUSES},
            "mistakes": dict(Counter(r.mistake for r in self.rows if r.mistake)),
            "mean_score": round(sum(r.score for r in self.rows) / len(self.rows), 4) if self.rows else 0.0,
            "rubric": [rubric_line(k, s) for k, s in enumerate(self.rubric)],
            "seconds": round(self.seconds, 2),
        }

    def to_json(self) -> dict:
        """``{"summary": {...}, "submissions": [...]}`` (LANGUAGE.md)."""
        return {"summary": self.summary(), "submissions": [r.to_json() for r in self.rows]}


def rubric_line(k: int, size: SweepSize) -> str:
    """One size class of the rubric: its number, sizes and why it is there.

    >>> rubric_line(0, SweepSize({"n": 1}, ("the smallest allowed sizes",)))
    '1. n=1: the smallest allowed sizes'
    """
    return f"{k + 1}. {size.text()}"


# -- finding the submissions ----------------------------------------------------------------------
_GLOB = re.compile(r"[*?\[]")


def find_submissions(paths: Sequence[str], function: str, one: bool = False) -> list[Submission]:
    """The submissions PATHs name: a ``.py`` file, a folder of files and folders (one student each); globs expanded.

    A student's folder is graded by the first ``.py`` file in it (sorted, subfolders
    included) that defines ``function``. Hidden entries, ``__pycache__`` and
    ``__init__.py`` are skipped. With ``one`` (Gradescope: one submission), a single
    PATH is that submission, a file or the student's folder.

    >>> find_submissions(["no/such/folder"], "f")
    Traceback (most recent call last):
    symderive.errors.InputError: PATH: no file or folder no/such/folder
    """
    if not function.isidentifier():
        raise InputError(f"{function!r} is not a function name", where="--function")
    if one and len(paths) == 1 and Path(paths[0]).is_dir():
        folder = Path(paths[0])
        return [Submission(folder.resolve().name, str(folder), _defining_file(folder, function))]
    found: list[Submission] = []
    for arg in paths:
        matches = sorted(glob.glob(arg)) if _GLOB.search(arg) else [arg]
        if not matches:
            raise InputError(f"nothing matches {arg}", where="PATH")
        for match in matches:
            found.extend(_submissions_at(Path(match), function))
    if not found:
        raise InputError(f"no Python files in {', '.join(paths)}", where="PATH")
    return found


def _submissions_at(path: Path, function: str) -> list[Submission]:
    if path.is_file():
        if path.suffix != ".py":
            raise InputError(f"{path} is not a Python file (FILE.py or a folder expected)", where="PATH")
        return [Submission(path.stem, str(path), str(path))]
    if not path.is_dir():
        raise InputError(f"no file or folder {path}", where="PATH")
    out = []
    for entry in sorted(path.iterdir()):
        if _skipped(entry):
            continue
        if entry.is_file() and entry.suffix == ".py":
            out.append(Submission(entry.stem, str(entry), str(entry)))
        elif entry.is_dir():
            out.append(Submission(entry.name, str(entry), _defining_file(entry, function)))
    return out


def _skipped(entry: Path) -> bool:
    return entry.name.startswith((".", "_"))


def _defining_file(folder: Path, function: str) -> str | None:
    """The first ``.py`` file under ``folder`` (sorted) that defines ``function``, or None."""
    pattern = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(function)}\s*\(|^{re.escape(function)}\s*=", re.M)
    for file in sorted(folder.rglob("*.py")):
        if any(p.startswith((".", "_")) for p in file.relative_to(folder).parts):
            continue
        try:
            if pattern.search(file.read_text(encoding="utf-8", errors="replace")):
                return str(file)
        except OSError:
            continue
    return None


# -- grading ---------------------------------------------------------------------------------------
class _SharedCases(CaseCache):
    """The class's cases: the sweep plus a large size class, safe to use from several threads."""

    def __init__(self, layer, wrt: str, seed: int = 0):
        super().__init__(layer, wrt, seed)
        self._lock = threading.RLock()
        self._graded_plan: list[SweepSize] | None = None

    @property
    def plan(self) -> list[SweepSize]:
        with self._lock:
            if self._graded_plan is None:
                plan = list(super().plan)
                self._graded_plan = plan + _large_class(self.layer, plan)
            return self._graded_plan

    def case(self, sizes: dict):
        with self._lock:
            return super().case(sizes)


def _large_class(layer: Layer, plan: list[SweepSize]) -> list[SweepSize]:
    """A size class larger than the sweep's: its "every size different" sizes (or its last) times 3."""
    if not plan or not plan[-1].sizes:
        return []
    base = next((p for p in plan if "every size different" in p.reasons), plan[-1])
    for factor in (LARGE_FACTOR, 2):
        sizes = {k: v * factor for k, v in base.sizes.items()}
        if sizes_allowed(layer, sizes, LARGE_MAX_ELEMENTS):
            return [SweepSize(sizes, (f"large: the sizes {_sizes_text(base.sizes)} times {factor}",))]
    return []


def _sizes_text(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def grade(
    layer,
    wrt: str,
    function: str,
    paths: Sequence[str],
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: float = DEFAULT_MEMORY_MB,
    hidden: bool = False,
    seed: int = 0,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    progress: Callable[[int, int, int, float], None] | None = None,
    one: bool = False,
) -> ClassResult:
    """Grade every submission under ``paths``: one row each, ``jobs`` children at a time.

    ``timeout`` bounds each call (seconds), ``memory_mb`` each child's memory; ``progress``
    is called as ``progress(done, running, total, elapsed)`` as submissions finish; with
    ``one``, a folder PATH is one student's submission (:func:`find_submissions`).

    >>> # grade("conv2d", "x", "conv2d_backward_x", ["examples/course/class/conv2d"], jobs=2)
    """
    start = time.monotonic()
    layer = layer if isinstance(layer, Layer) else load_layer(layer)
    jobs = _jobs(jobs)
    submissions = find_submissions(paths, function, one)
    _warm_imports(submissions)
    cases = _SharedCases(layer, wrt, seed)
    for planned in cases.plan:  # computed once, before the children fork
        cases.case(planned.sizes)
    settings = {"rtol": rtol, "atol": atol, "seed": seed, "timeout": timeout, "memory_mb": memory_mb}
    state = {"done": 0, "running": 0}
    lock = threading.Lock()

    def one(sub: Submission) -> Row:
        with lock:
            state["running"] += 1
        try:
            return _grade_one(layer, wrt, function, sub, cases, settings, hidden)
        finally:
            with lock:
                state["running"] -= 1
                state["done"] += 1
                if progress is not None:
                    progress(state["done"], state["running"], len(submissions), time.monotonic() - start)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(one, submissions))
    return ClassResult(
        layer.name, wrt, function, tuple(cases.plan), tuple(rows), time.monotonic() - start, hidden, settings
    )


#: libraries a submission's imports may load into the grader first: every child forked after
#: inherits them, so none pays the import (seconds for SciPy or torch) or maps torch's
#: libraries against its memory bound; a student's own modules are never imported here
WARM_LIBRARIES = frozenset({"numpy", "scipy", "torch"})


def _warm_imports(submissions: Sequence[Submission]) -> list[str]:
    """Import in the grader the library modules (:data:`WARM_LIBRARIES`) the submissions import; their names."""
    import ast
    import importlib

    wanted: set[str] = set()
    for sub in submissions:
        try:
            tree = ast.parse(Path(sub.file).read_bytes()) if sub.file else None
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                wanted.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                wanted.add(node.module)
    warmed = []
    for name in sorted(n for n in wanted if n.split(".")[0] in WARM_LIBRARIES):
        try:
            importlib.import_module(name)
            warmed.append(name)
        except Exception:  # noqa: BLE001  (a name that is not a module: the child reports it)
            pass
    return warmed


def _jobs(jobs) -> int:
    if jobs is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"--jobs must be an integer >= 1, got {jobs!r}", where="--jobs")
    return jobs


def _grade_one(layer, wrt, function, sub: Submission, cases, settings: dict, hidden: bool) -> Row:
    """One submission's row; anything it does costs only this row."""
    start = time.monotonic()
    plan_size = len(cases.plan)
    if sub.file is None:
        message = f"no .py file in {sub.path} defines {function!r}"
        return Row(sub.student, sub.path, "missing function", 0.0, None, None, 0.0, message, (False,) * plan_size)
    try:
        (report,) = check_many(
            layer,
            wrt,
            [sub.spec(function)],
            rtol=settings["rtol"],
            atol=settings["atol"],
            seed=settings["seed"],
            timeout=settings["timeout"],
            memory_mb=settings["memory_mb"],
            load_timeout=max(10.0, 2 * settings["timeout"]),
            cases=cases,
            every_size=True,
            missing_is_error=False,
            show_prints=False,
        )
    except InputError as exc:  # not Python text, unreadable: this submission's failure only
        seconds = round(time.monotonic() - start, 3)
        return Row(sub.student, sub.path, "not loaded", 0.0, None, None, seconds, str(exc), (False,) * plan_size)
    passed = tuple(report.plan_passed) or (report.ok,) * plan_size
    status = "correct" if report.ok else report.status
    score = round(sum(passed) / plan_size, 4) if plan_size else float(report.ok)
    counterexample = None if report.ok else _counterexample(report, hidden)
    seconds = round(time.monotonic() - start, 3)
    return Row(sub.student, sub.path, status, score, _mistake(report), counterexample, seconds, report.message, passed)


def _counterexample(report, hidden: bool) -> dict:
    """The smallest failing case: sizes, inputs, expected (not when hidden) and returned, the differing elements."""
    out = {
        "sizes": report.sizes,
        "inputs": report.inputs,
        "expected": report.expected,
        "returned": report.returned,
        "differing": [list(i) for i in report.differing],
        "dtype": report.dtype,
        "message": report.message,
    }
    if hidden:
        del out["expected"]
    return out


def _mistake(report) -> str | None:
    """The mistake the implementation matches, as ``check`` names it (:mod:`symderive.checking.mistakes`), or None.

    >>> from symderive.checking.check import ImplementationReport
    >>> _mistake(ImplementationReport(ok=False, impl="f", status="wrong", mistake="your function computes w @ g: w must be transposed"))
    'your function computes w @ g: w must be transposed'
    """
    return report.mistake


# -- rendering -------------------------------------------------------------------------------------
def _where(row: Row) -> str:
    cx = row.counterexample
    if not cx or not cx.get("sizes"):
        return row.message
    return f"at {_sizes_text(cx['sizes'])}: {row.message}"


def format_text(result: ClassResult) -> str:
    """The table for people: one line per submission, then the rubric and the class summary.

    Wall times are in the CSV, Markdown and JSON outputs, not here: the same class prints
    the same table on every run.
    """
    width = max([len(r.student) for r in result.rows] + [7])
    lines = [f"{'student'.ljust(width)}  {'status':16}  score  first failing case"]
    for r in result.rows:
        where = _where(r) if r.status != "correct" else ""
        lines.append(f"{r.student.ljust(width)}  {r.status:16}  {r.score:5.2f}  {where}".rstrip())
    lines.append("")
    lines.append(f"score: the fraction of these {len(result.rubric)} size classes passed")
    lines.extend(f"  {rubric_line(k, s)}" for k, s in enumerate(result.rubric))
    summary = result.summary()
    counts = ", ".join(f"{n} {s}" for s, n in summary["statuses"].items() if n)
    lines.append("")
    lines.append(f"{summary['submissions']} submissions: {counts}; mean score {summary['mean_score']:.2f}")
    if summary["mistakes"]:
        lines.append("mistakes: " + ", ".join(f"{n} {m}" for m, n in summary["mistakes"].items()))
    return "\n".join(lines)


CSV_COLUMNS = ("student", "path", "status", "score", "mistake", "seconds", "sizes", "differing", "message")


def format_csv(result: ClassResult) -> str:
    """One CSV row per submission (``CSV_COLUMNS``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in result.rows:
        cx = r.counterexample or {}
        differing = cx.get("differing") or []
        writer.writerow(
            [
                r.student,
                r.path,
                r.status,
                r.score,
                r.mistake or "",
                r.seconds,
                _sizes_text(cx["sizes"]) if cx.get("sizes") else "",
                json.dumps(differing[0]) if differing else "",
                r.message,
            ]
        )
    return buffer.getvalue()


def _md_cell(text) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def format_markdown(result: ClassResult) -> str:
    """A Markdown table, the rubric and the class summary."""
    s = result.summary()
    lines = [f"# {result.layer}, d/d{result.wrt}: {result.function}", ""]
    lines += ["| student | status | score | seconds | first failing case |", "|---|---|---|---|---|"]
    for r in result.rows:
        where = _where(r) if r.status != "correct" else ""
        lines.append(f"| {_md_cell(r.student)} | {r.status} | {r.score:.2f} | {r.seconds:.2f} | {_md_cell(where)} |")
    lines += ["", f"Score: the fraction of these {len(result.rubric)} size classes passed:", ""]
    lines += [_md_cell(rubric_line(k, p)) for k, p in enumerate(result.rubric)]
    lines += ["", "| status | submissions |", "|---|---|"]
    lines += [f"| {st} | {n} |" for st, n in s["statuses"].items()]
    if s["mistakes"]:
        lines += ["", "| mistake | submissions |", "|---|---|"]
        lines += [f"| {_md_cell(m)} | {n} |" for m, n in s["mistakes"].items()]
    return "\n".join(lines) + "\n"


def format_json(result: ClassResult) -> str:
    """``{"summary": ..., "submissions": [...]}`` (LANGUAGE.md), indented."""
    return json.dumps(result.to_json(), indent=1, default=str) + "\n"


def gradescope_results(result: ClassResult, row: Row) -> dict:
    """Gradescope's ``results.json`` for one submission: one test per size class (1 point each).

    Top level ``score``, ``execution_time`` (whole seconds), ``output``, ``tests``; each
    test ``name``, ``score``, ``max_score``, ``status`` (``passed``/``failed``), ``output``
    and ``visibility`` (``visible``). The first failing class carries the counterexample
    (without the expected array when ``hidden``).
    """
    tests = []
    first_failure = next((k for k, ok in enumerate(row.passed) if not ok), None)
    for k, planned in enumerate(result.rubric):
        ok = bool(row.passed[k]) if k < len(row.passed) else False
        if ok:
            output = "agrees"
        elif k == first_failure:
            output = f"{row.status}\n{_counterexample_text(row, result.wrt)}"
        else:
            output = f"{row.status} (the first failing size class shows the smallest failing case)"
        tests.append(
            {
                "name": f"{result.wrt} at {planned.text()}",
                "score": 1.0 if ok else 0.0,
                "max_score": 1.0,
                "status": "passed" if ok else "failed",
                "output": output,
                "visibility": "visible",
            }
        )
    rubric = "\n".join(rubric_line(k, p) for k, p in enumerate(result.rubric))
    output = (
        f"{result.layer}, gradient with respect to {result.wrt}, function {result.function}: {row.status}, "
        f"{sum(t['score'] for t in tests):g} of {len(tests)} size classes passed"
        + (f"\n{row.message}" if row.status != "correct" else "")
        + f"\n\nRubric: one point per size class\n{rubric}"
    )
    return {
        "score": float(sum(t["score"] for t in tests)),
        "execution_time": max(0, round(row.seconds)),
        "output": output,
        "tests": tests,
    }


def _counterexample_text(row: Row, wrt: str) -> str:
    cx = row.counterexample or {}
    lines = [row.message]
    if cx.get("sizes"):
        lines.append(f"sizes: {_sizes_text(cx['sizes'])}")
    for name, value in (cx.get("inputs") or {}).items():
        lines.append(f"{name} = {json.dumps(value)}")
    if "expected" in cx and cx["expected"] is not None:
        lines.append(f"expected d{wrt} = {json.dumps(cx['expected'])}")
    if cx.get("returned") is not None:
        lines.append(f"returned d{wrt} = {json.dumps(cx['returned'])}")
    if cx.get("differing"):
        lines.append(f"differing elements: {', '.join(json.dumps(i) for i in cx['differing'][:10])}")
    return "\n".join(lines)


class Progress:
    """A progress line on a terminal (redrawn in place); nothing on a file or pipe, so logs stay clean."""

    def __init__(self, stream):
        self.stream = stream
        try:
            self.active = bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.active = False

    def __call__(self, done: int, running: int, total: int, elapsed: float) -> None:
        """Redraw: done/total, running, elapsed and estimated remaining seconds."""
        if not self.active:
            return
        left = elapsed / done * (total - done) if done else 0.0
        bar = "#" * (20 * done // max(total, 1))
        text = f"\r[{bar:20}] {done}/{total} done, {running} running, {elapsed:.0f} s elapsed, ~{left:.0f} s left"
        self.stream.write(text)
        if done == total:
            self.stream.write("\n")
        self.stream.flush()
