"""Hostile implementations under ``check``: each is reported with its status and a one-line message,
no process it starts outlives the check, nothing it does reaches the checker's memory or output.

The layer is ``linear`` (y = w @ x + b), whose true dL/dx is ``w.T @ g`` (by hand).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from symderive.checking import CaseCache, check_implementation, check_many
from symderive.cli import main
from symderive.errors import InputError

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def cases():
    """The linear layer's cases, built once for the whole module (as check reuses them across --impl)."""
    return CaseCache("linear", "x")


def check(impl, cases, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    return check_implementation("linear", "x", impl, cases=cases, **kwargs)


def one_line(report) -> str:
    line = report.summary()
    assert "\n" not in line and "Traceback" not in line, line
    return line


def gone(pid: int, wait: float = 3.0) -> bool:
    """Whether process ``pid`` has ended (a zombie, dead but not yet reaped by init, counts as ended)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        except (OSError, IndexError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# -- processes ----------------------------------------------------------------------------------
def test_a_sleeping_grandchild_is_ended_with_the_check(tmp_path, cases):
    pidfile = tmp_path / "pids"

    def forks(w, g):
        if os.fork() == 0:
            with open(pidfile, "a") as f:
                f.write(f"{os.getpid()}\n")
            time.sleep(120)
            os._exit(0)
        return w.T @ g

    report = check(forks, cases)
    assert report.ok, report.details()
    pids = pids_in(pidfile)
    assert pids, "the grandchildren wrote their pids"
    assert all(gone(p) for p in pids), pids


def test_a_grandchild_returning_into_the_loop_cannot_answer(cases):
    # the forked copy returns a wrong gradient into symderive's loop; only the real child answers
    def forks_and_lies(w, g):
        if os.fork() == 0:
            return -(w.T @ g) + 1.0
        time.sleep(0.05)  # let the copy answer first, if it could
        return w.T @ g

    report = check(forks_and_lies, cases)
    assert report.ok, report.details()
    assert len(report.sizes_tried) == len(cases.plan)


def test_a_bounded_fork_bomb_leaves_nothing_behind(tmp_path, cases):
    pidfile = tmp_path / "pids"

    def bomb(w, g):
        for _ in range(3):  # 2**3 processes per call, each sleeping
            os.fork()
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(120)

    # long enough for the child to start and fork on a loaded machine (at 0.5 s it sometimes had not)
    report = check(bomb, cases, timeout=3.0)
    assert report.status == "timeout" and report.sizes == {"n": 1, "m": 1}, report.details()
    assert one_line(report).endswith("no result within 3 s")
    time.sleep(0.2)
    pids = pids_in(pidfile)
    assert len(pids) >= 8 and all(gone(p) for p in pids), pids


def test_os_exit_is_a_crash(cases):
    report = check(lambda w, g: os._exit(3), cases)
    assert report.status == "raised" and report.sizes == {"n": 1, "m": 1}
    assert one_line(report).endswith("the process exited with status 3 without returning")


def test_sys_exit_is_raised(cases):
    report = check(lambda w, g: sys.exit(4), cases)
    assert report.status == "raised" and report.message.startswith("SystemExit: 4"), report.message


def test_killing_itself_is_a_crash(cases):
    report = check(lambda w, g: os.kill(os.getpid(), signal.SIGKILL), cases)
    assert report.status == "raised" and report.message == "the process was killed by SIGKILL"


def test_segfault_is_a_crash(cases):
    report = check(lambda w, g: os.kill(os.getpid(), signal.SIGSEGV), cases)
    assert report.status == "raised" and report.message == "the process was killed by SIGSEGV"


def test_an_infinite_loop_times_out_at_the_smallest_size(cases):
    def forever(w, g):
        while True:
            pass

    start = time.monotonic()
    report = check(forever, cases, timeout=0.5)
    assert report.status == "timeout" and report.sizes == {"n": 1, "m": 1}
    assert one_line(report).endswith("no result within 0.5 s")
    assert time.monotonic() - start < 5


def test_slow_calls_are_bounded_in_all(cases):
    # each call under the per-call bound, all of them over 5 times it: the whole run is bounded
    def slow(w, g):
        time.sleep(0.45)
        return w.T @ g

    start = time.monotonic()
    report = check(slow, cases, timeout=0.5)
    elapsed = time.monotonic() - start
    assert report.status == "timeout", report.details()
    assert "took more than 2.5 s in all" in report.message or "no result within 0.5 s" in report.message
    assert elapsed < 2.5 + 3, elapsed


def test_a_raising_implementation_is_reported_without_waiting_for_timeouts(cases):
    # hangs at the larger sizes, raises from n = 2 on: the smallest raising size is n=2, m=1
    def raises_then_hangs(w, g):
        if w.shape[1] >= 2:
            raise ValueError("n >= 2")
        return w.T @ g

    start = time.monotonic()
    report = check(raises_then_hangs, cases, timeout=30)
    assert report.status == "raised" and report.sizes == {"n": 2, "m": 1}, report.details()
    assert time.monotonic() - start < 10


# -- what comes back -----------------------------------------------------------------------------
def test_a_huge_array_is_reported_by_its_size_only(cases):
    report = check(lambda w, g: np.broadcast_to(0.0, (10**9,)), cases)
    assert report.status == "wrong shape" and report.returned is None
    assert one_line(report).endswith(
        "returned an array of 1000000000 elements (shape (1000000000,)), expected shape (1,)"
    )


def test_a_huge_2d_array(cases):
    report = check(lambda w, g: np.broadcast_to(np.float32(1), (10**5, 10**5)), cases)
    assert report.status == "wrong shape" and "10000000000 elements" in report.message


def test_megabytes_printed_are_dropped_and_said(cases, capfd):
    def chatty(w, g):
        print("x" * 5_000_000)
        return w.T @ g

    report = check(chatty, cases)
    assert report.ok and "output after the first 65536 was dropped" in one_line(report), report.message
    _, err = capfd.readouterr()
    assert len(err) < 2 * 65536 * len(cases.plan)


def test_prints_do_not_reach_the_json_output(tmp_path, capsys):
    (tmp_path / "noisy.py").write_text("def dx(w, g):\n    print('{not json')\n    return w.T @ g\n")
    status = main(["check", "linear", "--wrt", "x", "--impl", f"{tmp_path}/noisy.py:dx", "--json"])
    out = capsys.readouterr().out
    assert status == 0
    assert [json.loads(line)["ok"] for line in out.splitlines()] == [True]


@pytest.mark.parametrize(
    ("returns", "status", "end"),
    [
        (lambda w, g: None, "wrong shape", "returned a NoneType of dtype object, expected a float64 array"),
        (lambda w, g: "w.T @ g", "wrong shape", "returned a str of dtype <U7, expected a float64 array"),
        (
            lambda w, g: np.array([object()] * w.shape[1]),
            "wrong shape",
            "returned a ndarray of dtype object, expected a float64 array",
        ),
        (
            lambda w, g: [[1.0], [1.0, 2.0]],
            "wrong shape",
            "returned a list (ValueError converting it to an array), expected a float64 array",
        ),
        (lambda w, g: (w.T @ g + 0.5).astype(np.int64), "wrong", "(returned int64)"),
        (lambda w, g: (w.T @ g) * (1 + 1j), "wrong", "(returned complex128)"),
        (lambda w, g: np.float64(1.0), "wrong shape", "returned shape (), expected (1,)"),
    ],
    ids=["None", "str", "object array", "ragged list", "int64", "complex", "scalar"],
)
def test_what_is_not_a_float64_gradient(returns, status, end, cases):
    report = check(returns, cases)
    assert report.status == status and report.sizes == {"n": 1, "m": 1}, report.details()
    assert one_line(report).endswith(end), report.message


def test_a_list_of_the_right_numbers_is_accepted(cases):
    assert check(lambda w, g: (w.T @ g).tolist(), cases).ok


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_float32_and_complex_results_are_compared_as_numpy_converts_them(dtype, cases):
    report = check(lambda w, g: (w.T @ g).astype(dtype), cases)
    assert report.ok and report.dtype == np.dtype(dtype).name, report.details()
    assert f"returned {np.dtype(dtype).name}" in report.message


def test_a_float32_result_is_compared_at_float32_tolerances_not_looser(cases):
    # off by 1e-3 relative: within no float32 tolerance
    report = check(lambda w, g: (w.T @ g * 1.001).astype(np.float32), cases)
    assert report.status == "wrong" and "(returned float32)" in report.message, report.details()


def test_modifying_the_inputs_changes_nothing_for_the_next_case(cases):
    def scribbles(w, g):
        out = w.T @ g
        w[...] = np.nan
        g[...] = 1e300
        return out

    report = check(scribbles, cases)
    assert report.ok, report.details()


def test_reading_stdin_gets_end_of_file(cases):
    report = check(lambda w, g: input(), cases)
    assert report.status == "raised" and report.message.startswith("EOFError"), report.message


def test_keyboard_interrupt_inside_is_the_implementations_exception(cases):
    def interrupts(w, g):
        raise KeyboardInterrupt

    report = check(interrupts, cases)
    assert report.status == "raised" and report.message.startswith("KeyboardInterrupt"), report.message


def test_memory_beyond_the_bound_is_a_memory_error(cases):
    def greedy(w, g):
        return np.ones(2**28)[: w.shape[1]] * 0 + w.T @ g

    report = check(greedy, cases, memory_mb=200)
    assert report.status == "memory" and report.message.startswith("MemoryError")
    assert one_line(report).endswith("(the memory bound is 200 MB)")


def test_closing_its_own_stdout_and_stderr(cases):
    def closes(w, g):
        for fd in (1, 2):
            try:
                os.close(fd)
            except OSError:  # closed at an earlier size
                pass
        print("after closing")
        return w.T @ g

    report = check(closes, cases)
    assert report.ok, report.details()


# -- files --------------------------------------------------------------------------------------
def impl_file(tmp_path: Path, source: str) -> str:
    path = tmp_path / "impl.py"
    path.write_text(textwrap.dedent(source))
    return f"{path}:dx"


def test_a_slow_import_does_not_count_against_the_call_timeout(tmp_path, cases):
    # as a module importing SciPy or torch on a busy machine: 1.5 s to load, each call fast
    spec = impl_file(tmp_path, "import time\ntime.sleep(1.5)\n\ndef dx(w, g):\n    return w.T @ g\n")
    report = check(spec, cases, timeout=0.5)
    assert report.ok, report.details()


def test_a_module_that_never_finishes_loading(tmp_path, cases):
    spec = impl_file(tmp_path, "while True:\n    pass\n")
    report = check(spec, cases, load_timeout=1.0)
    assert report.status == "timeout" and one_line(report) == "timeout: loading it took longer than 1 s"


@pytest.mark.parametrize(
    ("source", "status", "message"),
    [
        ("import sys\nsys.exit(5)\n", "not loaded", "could not be loaded: SystemExit: 5 (at impl.py, line 2)"),
        (
            "import os\nos._exit(0)\n",
            "not loaded",
            "the process exited with status 0 without returning while loading it",
        ),
        (
            "def dx(w, g)\n    return w.T @ g\n",
            "not loaded",
            "could not be loaded: SyntaxError: expected ':' (at impl.py, line 1)",
        ),
    ],
    ids=["sys.exit", "os._exit", "syntax error"],
)
def test_a_module_that_fails_while_loading(tmp_path, cases, source, status, message):
    report = check(impl_file(tmp_path, source), cases)
    assert report.status == status and report.message == message, report.message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir() or f"{p}:dx", "is a folder, not a Python file"),
        (lambda p: f"{p}.py:dx", "no file"),
        (
            lambda p: p.with_suffix(".txt").write_text("def dx(w, g): pass\n") and f"{p.with_suffix('.txt')}:dx",
            "is not a Python file (FILE.py expected)",
        ),
        (
            lambda p: p.with_suffix(".py").write_bytes(b"\x00\xff\xfe garbage") and f"{p.with_suffix('.py')}:dx",
            "is not Python source",
        ),
    ],
    ids=["folder", "missing", "txt", "binary"],
)
def test_a_path_that_is_not_a_python_file_is_an_input_error(tmp_path, capsys, make, message):
    spec = make(tmp_path / "impl")
    with pytest.raises(InputError, match=re.escape(message)):
        check_many("linear", "x", [spec])
    assert main(["check", "linear", "--wrt", "x", "--impl", spec]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_ctrl_c_ends_check_at_once_with_130_and_kills_the_children(tmp_path):
    pidfile = tmp_path / "pid"
    slow = tmp_path / "slow.py"
    slow.write_text(
        f"import os, time\n\ndef dx(w, g):\n    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n    time.sleep(100)\n"
    )
    fast = tmp_path / "fast.py"
    fast.write_text("def dx(w, g):\n    return w.T @ g\n")
    args = ["check", "linear", "--wrt", "x", "--impl", f"{fast}:dx", "--impl", f"{slow}:dx", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from symderive.cli import entrypoint; entrypoint()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 5
    assert b"Traceback" not in err and err.decode().strip() == "symderive: interrupted"
    for line in out.decode().splitlines():
        json.loads(line)
    assert gone(int(pidfile.read_text()))


@pytest.mark.slow  # a batch of 264 claims started: about 10 s
def test_ctrl_c_ends_a_prove_batch_with_130_and_valid_lines(tmp_path):
    # the seed batch six times over: long enough that the signal lands inside it on a fast machine
    seeds = json.loads((Path(__file__).parents[2] / "benchmarks" / "batch_seeds.json").read_text())
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(seeds * 6))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from symderive.cli import entrypoint; entrypoint()",
            "prove",
            "--batch",
            str(batch),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()  # the first verdict is out: inside the batch, symderive and z3 at work
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    out = first + out
    assert first
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 5
    assert b"Traceback" not in err
    for line in out.decode().splitlines():
        assert json.loads(line)["verdict"]
