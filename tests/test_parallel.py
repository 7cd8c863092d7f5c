"""Claims spread over processes: ``prove --batch FILE --jobs N`` and the pytest plugin under ``pytest -n N``.

The parallel run must say exactly what the serial one says, line for line in the file's
order; the verdicts themselves are checked against hand computation in tests/test_prove.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from symderive.cli import main

#: a small batch: proofs and refutations on two layers, an input error and an unknown input
#: in the middle (each stays at its place in the output)
BATCH = [
    {"layer": "linear", "wrt": "x", "claim": "w.T @ g"},
    {"layer": "linear", "wrt": "b", "claim": "2 * g"},
    {"layer": "linear", "wrt": "w", "claim": "outer(g, x)"},
    {"layer": "linear", "wrt": "q", "claim": "g"},
    {"layer": "nosuchlayer", "wrt": "x", "claim": "g"},
    {"layer": "linear", "wrt": "x", "claim": "w @ g", "assume": ["m == n"]},
    {"layer": "linear", "wrt": "b", "claim": "g"},
]


def _run(capsys, *args) -> tuple[int, list[str], str]:
    status = main(["prove", *args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_batch_with_two_jobs_prints_what_one_job_prints_in_the_files_order(tmp_path, capsys):
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(BATCH))
    serial = _run(capsys, "--batch", str(batch), "--json", "--jobs", "1")
    parallel = _run(capsys, "--batch", str(batch), "--json", "--jobs", "2")
    assert parallel == serial
    status, lines, err = parallel
    verdicts = [json.loads(line) for line in lines]
    assert [v["claim"] for v in verdicts] == [e["claim"] for e in BATCH]
    # by hand: dx = w.T g; db = g (so 2 g is wrong where g != 0); dw = g x^T; dx = w.T g != w g
    # for a square w that is not symmetric
    assert [v["verdict"] for v in verdicts] == ["proved", "refuted", "proved", "error", "error", "refuted", "proved"]
    assert status == 2 and len(err.splitlines()) == 2 and "entry 4" in err and "entry 5" in err


def test_the_text_output_is_the_same_too(tmp_path, capsys):
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(BATCH[:3]))
    assert _run(capsys, "--batch", str(batch), "--jobs", "3") == _run(capsys, "--batch", str(batch), "--jobs", "1")


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_jobs_is_a_positive_integer(tmp_path, capsys, value):
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(BATCH[:1]))
    status, lines, err = _run(capsys, "--batch", str(batch), "--jobs", value)
    assert status == 2 and lines == []
    assert len(err.splitlines()) == 1 and "--jobs" in err and "Traceback" not in err


LAYER = """
name = "lin"
[inputs]
x = ["n"]
w = ["m", "n"]
b = ["m"]
[output]
y = "w @ x + b"

[[claims]]
wrt = "x"
claim = "w.T @ g"

[[claims]]
wrt = "w"
claim = "outer(g, x)"

[[claims]]
wrt = "x"
claim = "w @ g"
expect = "refuted"

[[claims]]
wrt = "b"
claim = "2 * g"
"""


@pytest.mark.slow
def test_the_pytest_plugin_runs_under_xdist(tmp_path):
    # a project of its own, run by a real pytest with two worker processes
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "lin.symd.toml").write_text(textwrap.dedent(LAYER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-rf", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = proc.stdout
    assert "2 workers" in out, out
    # db = g, so the claim 2 * g fails with its counterexample; the three others pass
    assert proc.returncode == 1, out + proc.stderr
    assert "3 passed" in out and "1 failed" in out, out
    assert "FAILED lin.symd.toml::lin[db = 2 * g]" in out, out
    assert "expected proved, got refuted" in out and "counterexample at sizes" in out, out
    assert "Traceback" not in out
