"""The command line, in process (``main([...])`` with capsys) and once as the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symderive.cli import main, verdict_status
from symderive.model.layer import LAYERS_DIR

FLIP = 'convolve(g, flip(w), "full")'
RIGHT = 'convolve(g, w, "full")'


def run(capsys, *argv):
    status = main(list(argv), prog="symderive")
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, expected=2):
    assert status == expected
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- layers, show -------------------------------------------------------------------------
def test_layers_lists_the_builtin_layers(capsys):
    status, out, _ = run(capsys, "layers")
    assert status == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert {"conv2d", "convolution2d", "convolution2d_full", "linear", "softmax_cross_entropy"} <= set(names)


def test_show_prints_the_forward(capsys):
    status, out, _ = run(capsys, "show", "conv2d")
    assert status == 0
    assert "conv2d" in out and "kh" in out and "correlate" in out


def test_help_exits_zero(capsys):
    status, out, _ = run(capsys, "prove", "--help")
    assert status == 0 and "--batch" in out


# -- prove: verdicts and exit statuses ---------------------------------------------------------
def test_prove_refuted_human_readable(capsys):
    status, out, _ = run(capsys, "prove", "conv2d", "--wrt", "x", FLIP)
    assert status == 1
    assert "refuted" in out
    assert "H=1, W=2, kh=1, kw=2" in out
    assert "expected 1, claimed 0" in out


def test_prove_refuted_json(capsys):
    status, out, _ = run(capsys, "prove", "conv2d", "--wrt", "x", FLIP, "--json")
    assert status == 1
    (line,) = out.strip().splitlines()
    obj = json.loads(line)
    assert obj["layer"] == "conv2d" and obj["wrt"] == "x" and obj["claim"] == FLIP
    assert obj["verdict"] == "refuted"
    ce = obj["counterexample"]
    assert ce["sizes"] == {"H": 1, "W": 2, "kh": 1, "kw": 2}
    assert set(ce["values"]) == {"x", "w", "b", "g"}
    assert ce["index"] == [0, 0] and ce["expected"] == 1 and ce["claimed"] == 0


def test_prove_shape_mismatch_json(capsys):
    status, out, _ = run(capsys, "prove", "linear", "--wrt", "x", "w @ g", "--json")
    assert status == 1
    ce = json.loads(out)["counterexample"]
    assert ce["sizes"] == {"n": 1, "m": 2}
    assert ce["expected_shape"] == [1] and ce["claimed_shape"] is None


def test_prove_exit_status_agrees_with_the_library(capsys):
    from symderive.prove import prove

    expected = verdict_status(prove("conv2d", "x", RIGHT))
    status, out, _ = run(capsys, "prove", "conv2d", "--wrt", "x", RIGHT)
    assert status == expected
    assert out.splitlines()[1].split()[0].rstrip(":") == {0: "proved", 1: "refuted", 3: "unknown"}[expected]


def test_prove_timeout_gives_unknown(capsys):
    status, out, _ = run(capsys, "prove", "conv2d", "--wrt", "x", FLIP, "--timeout", "0.001", "--json")
    assert status == 3
    obj = json.loads(out)
    assert obj["verdict"] == "unknown" and "timeout" in obj["reason"]


@pytest.mark.parametrize(
    "claim",
    [pytest.param("-w.T@g", id="no-space"), pytest.param("-w.T @ g", id="with-space"), pytest.param("-g", id="short")],
)
def test_claim_starting_with_minus(capsys, claim):
    status, out, err = run(capsys, "prove", "linear", "--wrt", "x", claim, "--json")
    assert err == ""
    obj = json.loads(out)
    assert obj["claim"] == claim and obj["verdict"] == "refuted"
    assert status == 1


def test_claim_starting_with_minus_before_options(capsys):
    status, out, _ = run(capsys, "prove", "linear", "-w.T@g", "--wrt", "x", "--json")
    assert status == 1 and json.loads(out)["claim"] == "-w.T@g"


def test_an_assumption_given_again_is_listed_once(capsys):
    argv = ["prove", "softmax_cross_entropy", "--wrt", "s", "softmax(s) - t", "--json"]
    status, out, _ = run(capsys, *argv, "--assume", "sum(t) == 1", "--assume", "s > 0", "--assume", "s > 0")
    assert status == 0 and json.loads(out)["assumptions"] == ["sum(t) == 1", "s > 0"]


# -- prove --batch ----------------------------------------------------------------------------
def write_batch(folder: Path, entries) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "batch.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def test_batch_in_order_with_an_error_entry_and_a_relative_layer(capsys, tmp_path, monkeypatch):
    layers = tmp_path / "work" / "layers"
    layers.mkdir(parents=True)
    (layers / "mine.toml").write_text((LAYERS_DIR / "linear.toml").read_text(encoding="utf-8"), encoding="utf-8")
    entries = [
        {"layer": "conv2d", "wrt": "x", "claim": FLIP},
        {"layer": "conv2d", "wrt": "x", "claim": "frobnicate(g)"},
        {"layer": "layers/mine.toml", "wrt": "x", "claim": "w @ g"},
        {"layer": "linear", "wrt": "x", "claim": "-w.T @ g", "assume": ["m >= 2"]},
    ]
    batch = write_batch(tmp_path / "work", entries)
    monkeypatch.chdir(tmp_path)  # relative layer paths are relative to the batch file, not the cwd
    status, out, err = run(capsys, "prove", "--batch", str(batch), "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["claim"] for r in rows] == [e["claim"] for e in entries]
    assert [r["verdict"] for r in rows] == ["refuted", "error", "refuted", "refuted"]
    assert "frobnicate" in rows[1]["error"]
    assert rows[2]["layer"] == "layers/mine.toml" and rows[2]["counterexample"]["sizes"] == {"n": 1, "m": 2}
    assert rows[3]["counterexample"]["sizes"]["m"] >= 2
    assert status == 2  # an input error anywhere wins over refuted
    assert "entry 2" in err and "Traceback" not in err


def test_batch_bad_entries_are_error_lines_and_the_batch_goes_on(capsys, tmp_path):
    entries_text = """[
     {"layer": "linear", "wrt": "x", "claim": "-w.T @ g", "asume": ["m >= 2"]},
     {"layer": "linear", "wrt": "x", "claim": 5},
     {"layer": "linear", "wrt": "x", "claim": "w.T @ g", "claim": "w @ g"},
     {"layer": "linear", "wrt": "x"},
     "linear",
     {"layer": "linear", "wrt": "x", "claim": "w.T @ g", "assume": ["m >= 2"]}
    ]"""
    batch = tmp_path / "batch.json"
    batch.write_text(entries_text, encoding="utf-8")
    status, out, err = run(capsys, "prove", "--batch", str(batch), "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["verdict"] for r in rows] == ["error"] * 5 + ["proved"]
    # a typo'd key would drop the assumption (and -w.T @ g is refuted without it)
    assert "'asume'" in rows[0]["error"] and "assume" in rows[0]["error"].replace("'asume'", "")
    assert "claim" in rows[1]["error"] and rows[1]["claim"] == 5  # echoed as given, not as "5"
    assert "twice" in rows[2]["error"]
    assert "missing claim" in rows[3]["error"] and rows[3]["claim"] is None
    assert rows[4]["layer"] is None
    assert rows[5]["assumptions"] == ["m >= 2"]
    for number, row in enumerate(rows[:5], start=1):
        assert row["error"].startswith(f"{batch}, entry {number}: ")
    # exit 2 (an input error anywhere), one one-line message per bad entry, nothing else
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 5 and "Traceback" not in err
    assert [line.split(": ", 3)[2] for line in lines] == [f"{batch}, entry {n}" for n in range(1, 6)]


def test_a_batch_file_with_a_byte_order_mark_is_read(capsys, tmp_path):
    batch = tmp_path / "bom.json"
    batch.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"layer": "linear", "wrt": "x", "claim": "w @ g"}]).encode())
    status, out, err = run(capsys, "prove", "--batch", str(batch), "--json")
    assert status == 1 and err == "" and json.loads(out)["verdict"] == "refuted"


def test_batch_human_readable(capsys, tmp_path):
    batch = write_batch(tmp_path, [{"layer": "linear", "wrt": "x", "claim": "w @ g"}])
    status, out, _ = run(capsys, "prove", "--batch", str(batch))
    assert status == 1 and "refuted" in out and "n=1, m=2" in out


# -- input errors: exit 2, one line, no traceback ---------------------------------------------------
def bad_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[inputs\nx = ["n"]\n', encoding="utf-8")
    return str(path)


def bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"layer": "conv2d", "wrt": "x", "claim": ', encoding="utf-8")
    return str(path)


COURSE = Path(__file__).parents[1] / "examples" / "course"
CHECK_ALICE = ["check", "conv2d", "--wrt", "x", "--impl", f"{COURSE}/students/alice.py:conv2d_backward_x"]

INPUT_ERRORS = [
    pytest.param(lambda p: ["prove", "nosuchlayer", "--wrt", "x", RIGHT], "nosuchlayer", id="unknown-layer"),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "x", "frobnicate(g)"], "frobnicate", id="unknown-function"),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "x", 'convolve(g, w, "full"'], "claim", id="syntax-error"),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "x", '__import__("os").getcwd()'], "", id="hostile"),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "q", RIGHT], "q", id="wrong-wrt"),
    pytest.param(lambda p: ["prove", "conv2d", RIGHT], "--wrt", id="missing-wrt"),
    pytest.param(lambda p: ["prove", bad_toml(p), "--wrt", "x", "g"], "bad.toml", id="malformed-toml"),
    pytest.param(lambda p: ["prove", "--batch", bad_json(p)], "bad.json", id="malformed-batch"),
    pytest.param(lambda p: ["prove", "--batch", str(p / "missing.json")], "missing.json", id="missing-batch"),
    pytest.param(
        lambda p: ["prove", str(p / "missing.toml"), "--wrt", "x", "g"], "missing.toml", id="missing-layer-file"
    ),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "x", RIGHT, "--timeout", "zero"], "timeout", id="bad-timeout"),
    pytest.param(lambda p: ["prove", "conv2d", "--wrt", "x", RIGHT, "--frob"], "--frob", id="unknown-option"),
    pytest.param(lambda p: ["frob"], "frob", id="unknown-command"),
    pytest.param(lambda p: [], "COMMAND", id="no-command"),
    pytest.param(lambda p: ["show", "nosuchlayer"], "nosuchlayer", id="show-unknown-layer"),
    pytest.param(lambda p: [*CHECK_ALICE, "--rtol", "-1"], "--rtol", id="negative-rtol"),
    pytest.param(lambda p: [*CHECK_ALICE, "--rtol", "nan"], "--rtol", id="nan-rtol"),
    pytest.param(lambda p: [*CHECK_ALICE, "--atol", "-1", "--rtol", "0"], "--atol", id="negative-atol"),
    pytest.param(lambda p: [*CHECK_ALICE, "--atol", "inf"], "--atol", id="infinite-atol"),
    pytest.param(lambda p: [*CHECK_ALICE, "--seed", "-1"], "--seed", id="negative-seed"),
]


@pytest.mark.parametrize(("argv", "mentions"), INPUT_ERRORS)
def test_input_errors_exit_2_with_one_line(capsys, tmp_path, argv, mentions):
    status, _, err = run(capsys, *argv(tmp_path))
    line = assert_one_line_error(status, err)
    assert mentions in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["prove", "linear", "--wrt", "b", "g", "--jsn"], "prove: unknown option --jsn (did you mean --json?)"
        ),
        pytest.param(["prove", "linear", "--wrt", "b", "g", "--tim", "5"], "did you mean --timeout?", id="abbreviated"),
        pytest.param([*CHECK_ALICE, "--sed", "3"], "check: unknown option --sed (did you mean --seed?)", id="check"),
    ],
)
def test_a_misspelt_option_is_named_with_the_option_it_resembles(capsys, argv, expected):
    status, _, err = run(capsys, *argv)
    assert expected in assert_one_line_error(status, err)


def test_an_unrecognised_argument_is_quoted_as_typed(capsys):
    # a value that starts with "-" is marked internally so that argparse keeps it a value;
    # the mark (a NUL byte) must not reach the message
    status, _, err = run(capsys, "prove", "linear", "--wrt", "x", "w.T @ g", "-q")
    line = assert_one_line_error(status, err)
    assert "\x00" not in err and line.endswith("unrecognized arguments: -q")


def test_internal_error_exit_70(capsys, monkeypatch):
    import symderive.prove

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(symderive.prove, "prove", broken)
    status, _, err = run(capsys, "prove", "conv2d", "--wrt", "x", RIGHT)
    line = assert_one_line_error(status, err, expected=70)
    assert "bug" in line and "please report" in line and "boom" in line


def test_a_bug_on_one_batch_entry_keeps_the_others_and_exits_70(capsys, tmp_path, monkeypatch):
    import symderive.prove

    real = symderive.prove.prove

    def broken_on_one(layer, wrt, claim, **kwargs):
        if claim == "w @ g":
            raise RuntimeError("boom")
        return real(layer, wrt, claim, **kwargs)

    monkeypatch.setattr(symderive.prove, "prove", broken_on_one)
    entries = [
        {"layer": "linear", "wrt": "x", "claim": "w.T @ g"},
        {"layer": "linear", "wrt": "x", "claim": "w @ g"},
        {"layer": "linear", "wrt": "x", "claim": "frobnicate(g)"},
        {"layer": "linear", "wrt": "b", "claim": "-g"},
    ]
    batch = write_batch(tmp_path, entries)
    status, out, err = run(capsys, "prove", "--batch", str(batch), "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["claim"] for r in rows] == [e["claim"] for e in entries]
    assert [r["verdict"] for r in rows] == ["proved", "error", "error", "refuted"]
    assert "bug" in rows[1]["error"] and "boom" in rows[1]["error"] and "entry 2" in rows[1]["error"]
    assert status == 70  # the first of 70, 2, 1, 3
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert "internal error" in lines[0] and "please report it" in lines[0] and "error: " in lines[1]


# -- check -------------------------------------------------------------------------------------
def test_check_prints_the_counterexample_arrays_under_differs(capsys):
    bob = f"{COURSE}/students/bob.py:conv2d_backward_x"
    status, out, _ = run(capsys, *CHECK_ALICE, "--impl", bob)
    assert status == 1
    alice_part, bob_part = out.split(f"{bob}: DIFFERS\n")
    assert alice_part.startswith(f"{CHECK_ALICE[-1]}: agrees\n  ok: agrees at ")
    lines = bob_part.splitlines()
    assert lines[0].startswith("  wrong at sizes H=1, W=2, kh=1, kw=2: 2 of 2 elements differ")
    assert lines[1] == "  inputs:" and [x.split(" = ")[0] for x in lines[2:6]] == ["    x", "    w", "    b", "    g"]
    # the unflipped kernel returns the true gradient reversed: the two printed rows are mirror images
    expected = json.loads(lines[6].split(" = ", 1)[1].replace(" ", ""))
    returned = json.loads(lines[7].split(" = ", 1)[1].replace(" ", ""))
    assert lines[6].startswith("  expected = ") and lines[7].startswith("  returned = ")
    assert returned == [row[::-1] for row in expected]
    assert lines[8] == "  differing elements: [0, 0], [0, 1]"


def test_check_a_missing_function_is_an_input_error(capsys, tmp_path):
    (tmp_path / "impls.py").write_text("def dx(w, g):\n    return w.T @ g\n")
    status, out, err = run(
        capsys, "check", "linear", "--wrt", "x", "--impl", f"{tmp_path}/impls.py:dx", "--impl", "impls.py:nofunc"
    )
    line = assert_one_line_error(status, err)
    assert "nofunc" in line and "checking.py" not in line and out == ""


def test_check_an_impl_without_a_function_says_so_once(capsys):
    status, _, err = run(capsys, "check", "linear", "--wrt", "x", "--impl", "impls.py")
    line = assert_one_line_error(status, err)
    assert line == "symderive: error: --impl: FILE.py:FUNCTION expected, got 'impls.py'"


def test_check_json_one_object_per_implementation(capsys):
    bob = f"{COURSE}/students/bob.py:conv2d_backward_x"
    status, out, _ = run(capsys, *CHECK_ALICE, "--impl", bob, "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert status == 1 and [r["ok"] for r in rows] == [True, False]
    assert rows[1]["sizes"] == {"H": 1, "W": 2, "kh": 1, "kw": 2}


# -- report ------------------------------------------------------------------------------------
LINEAR_WITH_MISTAKES = """
[[claims]]
wrt = "x"
claim = "w @ g"
expect = "refuted"

[[claims]]
wrt = "x"
claim = "-w.T @ g"
assume = ["m >= 2"]
expect = "refuted"
"""


def test_report_without_claim_shows_every_known_claim_like_the_library(capsys, tmp_path):
    from symderive.report import report

    layer = tmp_path / "lin.toml"
    layer.write_text((LAYERS_DIR / "linear.toml").read_text(encoding="utf-8") + LINEAR_WITH_MISTAKES)
    status, out, _ = run(capsys, "report", str(layer), "-o", str(tmp_path / "cli.tex"))
    assert status == 0 and "wrote" in out
    report(str(layer), output=tmp_path / "api.tex")
    cli_tex = (tmp_path / "cli.tex").read_text(encoding="utf-8")
    assert cli_tex == (tmp_path / "api.tex").read_text(encoding="utf-8")
    # the known mistakes (one needing an assumption) are in it, not only one claim per input
    assert cli_tex.count(r"\textbf{ Refuted}") == 2 and cli_tex.count(r"\textbf{ Proved}") == 3


def test_report_passes_repeated_claims_and_the_timeout(capsys, tmp_path, monkeypatch):
    import symderive.report

    seen = {}

    def fake_report(layer, claims=None, output="report.pdf", wrt=None, timeout=None, code=False):
        seen.update(layer=layer.name, claims=claims, timeout=timeout, code=code)
        return output

    monkeypatch.setattr(symderive.report, "report", fake_report)
    argv = ["report", "conv2d", "-o", str(tmp_path / "r.tex"), "--claim", "x", RIGHT, "--claim", "w", "g"]
    status, _, _ = run(capsys, *argv, "--claim", "x", FLIP, "--timeout", "7.5")
    assert status == 0
    assert seen == {"layer": "conv2d", "claims": {"x": [RIGHT, FLIP], "w": ["g"]}, "timeout": 7.5, "code": False}
    status, _, _ = run(capsys, "report", "conv2d", "-o", str(tmp_path / "r.md"), "--code")
    assert status == 0 and seen["claims"] is None and seen["timeout"] == 60.0 and seen["code"] is True


@pytest.mark.parametrize("option", ["-o", "--tests"])
def test_codegen_names_a_missing_output_folder_before_proving(capsys, tmp_path, monkeypatch, option):
    import symderive.prove

    proved = []
    real = symderive.prove.prove
    monkeypatch.setattr(symderive.prove, "prove", lambda *a, **k: proved.append(a) or real(*a, **k))
    paths = {"-o": str(tmp_path / "m.py"), "--tests": str(tmp_path / "test_m.py")}
    paths[option] = str(tmp_path / "no" / "such" / "m.py")
    status, _, err = run(capsys, "codegen", "linear", "-o", paths["-o"], "--tests", paths["--tests"])
    line = assert_one_line_error(status, err)
    assert line.endswith(
        f"{option}: cannot write {paths[option]}: the folder {tmp_path / 'no' / 'such'} does not exist"
    )
    assert proved == [] and not (tmp_path / "m.py").exists()


def test_codegen_of_a_layer_without_claims_emits_the_derived_gradients(capsys, tmp_path):
    import importlib.util

    import numpy as np

    layer = tmp_path / "scale.toml"
    layer.write_text('name = "scale"\n[inputs]\nx = ["n"]\nw = ["n"]\n[output]\ny = "w * x ** 2"\n')
    status, out, err = run(capsys, "codegen", str(layer), "-o", str(tmp_path / "scale_grads.py"))
    assert status == 0 and err == "", err
    spec = importlib.util.spec_from_file_location("scale_grads", tmp_path / "scale_grads.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(3)
    x, w, g = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    # d/dx sum(g * w * x**2) = 2 g w x, d/dw = g x**2 (by hand, elementwise)
    np.testing.assert_allclose(module.grad_x(w=w, x=x, g=g), 2 * g * w * x, rtol=1e-12)
    np.testing.assert_allclose(module.grad_w(x=x, g=g), g * x**2, rtol=1e-12)


def test_codegen_proves_each_claim_once(capsys, tmp_path, monkeypatch):
    import symderive.prove

    calls = []
    real = symderive.prove.prove
    monkeypatch.setattr(symderive.prove, "prove", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    layer = tmp_path / "lin.toml"
    layer.write_text((LAYERS_DIR / "linear.toml").read_text(encoding="utf-8"), encoding="utf-8")
    status, _, _ = run(capsys, "codegen", str(layer), "-o", str(tmp_path / "m.py"), "--claim", "x", "g @ w")
    assert status == 0
    assert sorted(calls) == [("b", "g"), ("w", "outer(g, x)"), ("x", "g @ w")]


def test_codegen_refuses_two_claims_for_one_input_with_a_clear_message(capsys, tmp_path):
    argv = ["codegen", "conv2d", "-o", str(tmp_path / "m.py"), "--claim", "x", RIGHT, "--claim", "x", FLIP]
    status, _, err = run(capsys, *argv)
    line = assert_one_line_error(status, err)
    assert "two claims for 'x'" in line and "one gradient function per input" in line
    assert not (tmp_path / "m.py").exists()


# -- the installed console script -----------------------------------------------------------------
def test_console_script_runs(tmp_path):
    script = Path(sys.executable).with_name("symderive")
    script = script if script.exists() else shutil.which("symderive")
    assert script, "the symderive console script is not installed"
    done = subprocess.run(
        [str(script), "prove", "linear", "--wrt", "x", "w @ g", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verdict"] == "refuted"
    bad = subprocess.run(
        [str(script), "prove", "nosuchlayer", "--wrt", "x", "g"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_a_console_that_cannot_show_the_claim_gets_escapes_not_an_internal_error(tmp_path):
    script = Path(sys.executable).with_name("symderive")
    script = script if script.exists() else shutil.which("symderive")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [str(script), "prove", "linear", "--wrt", "x", "w.T @ g  # ü"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        encoding="ascii",
    )
    assert done.returncode == 0, done.stderr
    assert "w.T @ g  # \\xfc" in done.stdout and "proved" in done.stdout


def test_a_reader_that_goes_away_is_not_an_internal_error():
    # `symderive prove ... | head -1`: the pipe closes before the verdict is printed
    script = Path(sys.executable).with_name("symderive")
    script = script if script.exists() else shutil.which("symderive")
    run = subprocess.Popen(
        [str(script), "prove", "linear", "--wrt", "x", "w @ g"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run.stdout.close()
    err = run.stderr.read()
    status = run.wait(timeout=120)
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err, err
    assert status == 141


def test_a_claim_undefined_at_the_counterexample_sizes_is_said_once(capsys):
    status, out, _ = run(capsys, "prove", "linear", "--wrt", "x", "w @ g")
    assert status == 1
    assert out.count("not defined") == 1, out
    assert "the gradient has shape (1,)" in out


def test_a_batch_loads_each_layer_once(capsys, tmp_path, monkeypatch):
    import symderive.cli as cli

    calls = []
    real = cli.load
    monkeypatch.setattr(cli, "load", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    entries = [
        {"layer": "linear", "wrt": "x", "claim": "w.T @ g"},
        {"layer": "linear", "wrt": "w", "claim": "outer(g, x)"},
        {"layer": "relu", "wrt": "x", "claim": "g * (x > 0)"},
    ]
    batch = tmp_path / "b.json"
    batch.write_text(json.dumps(entries), encoding="utf-8")
    # one process (--jobs 1): the patched loader is this process's
    status, out, _ = run(capsys, "prove", "--batch", str(batch), "--json", "--jobs", "1")
    assert status == 0, out
    assert sorted(calls) == ["linear", "relu"]


GELU_CHAIN_RULE_STOPPED = (
    "g * (0.5 * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))"
    " + 0.5 * x * (1 - tanh(0.7978845608028654 * (x + 0.044715 * x**3))**2))"
)


@pytest.mark.slow
def test_a_long_exact_counterexample_value_is_printed_by_its_digits_and_kept_exact_in_json(capsys):
    import math

    import torch

    gelu = str(Path(__file__).parent.parent / "examples" / "custom_layers" / "gelu_tanh.toml")
    status, out, _ = run(capsys, "prove", gelu, "--wrt", "x", GELU_CHAIN_RULE_STOPPED)
    assert status == 1
    x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.gelu(x, approximate="tanh").backward()
    u = math.tanh(0.7978845608028654 * 1.044715)
    claimed = 0.5 * (1 + u) + 0.5 * (1 - u * u)
    assert f"expected \u2248{x.grad.item():.6g}, claimed \u2248{claimed:.6g}" in out
    assert "000000000" not in out
    status, out, _ = run(capsys, "prove", gelu, "--wrt", "x", GELU_CHAIN_RULE_STOPPED, "--json")
    assert "1000000000000000000000" in json.loads(out)["counterexample"]["expected"]
