"""No silent loss (issue 13, requirement 5): output files are written whole or not at all,
and never over each other or over the layer file.

Every file symderive writes goes through :func:`symderive.atomic.write_atomic` (a temporary
file in the same folder, then ``os.replace``): a run that fails leaves an existing file as it
was and no temporary file behind.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import symderive.atomic
from symderive.atomic import same_file, write_atomic
from symderive.cli import main

OLD = "# the user's own file, which must survive\n"
TINY = """\
name = "tiny"
[inputs]
x = ["n"]
[output]
y = "2 * x"
"""


def run(capsys, *argv):
    status = main([str(a) for a in argv], prog="symderive")
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY, encoding="utf-8")
    return tmp_path


# -- -o and --tests name one file ---------------------------------------------------------------


def _spellings(folder: Path) -> dict[str, tuple[str, str]]:
    (folder / "sub").mkdir()
    os.symlink(folder / "m.py", folder / "link.py")
    return {
        "same": ("m.py", "m.py"),
        "dot": ("m.py", "./m.py"),
        "dotdot": ("m.py", "sub/../m.py"),
        "absolute": ("m.py", str(folder / "m.py")),
        "symlink": ("m.py", "link.py"),
        "doubled slash": ("m.py", ".//m.py"),
    }


@pytest.mark.parametrize("spelling", ["same", "dot", "dotdot", "absolute", "symlink", "doubled slash", "hard link"])
def test_tests_over_the_module_is_an_input_error(spelling, folder, capsys):
    (folder / "m.py").write_text(OLD, encoding="utf-8")
    if spelling == "hard link":
        os.link(folder / "m.py", folder / "hard.py")
        output, tests = "m.py", "hard.py"
    else:
        output, tests = _spellings(folder)[spelling]
    status, out, err = run(capsys, "codegen", "tiny.toml", "-o", output, "--tests", tests)
    assert status == 2 and out == ""
    assert "--tests" in one_line(err)
    assert (folder / "m.py").read_text(encoding="utf-8") == OLD
    assert leftovers(folder) == []


@pytest.mark.parametrize("option", ["-o", "--tests"])
def test_an_output_over_the_layer_file_is_an_input_error(option, folder, capsys):
    other = "m.py" if option == "--tests" else "test_m.py"
    argv = ["-o", "./tiny.toml", "--tests", other] if option == "-o" else ["-o", other, "--tests", "./tiny.toml"]
    status, _, err = run(capsys, "codegen", "tiny.toml", *argv)
    assert status == 2
    assert "layer file" in one_line(err)
    assert (folder / "tiny.toml").read_text(encoding="utf-8") == TINY


@pytest.mark.parametrize("stem", ["class", "my-module", "a;import os", "None", "1st"])
def test_tests_need_a_module_name_they_can_import(stem, folder, capsys):
    status, _, err = run(capsys, "codegen", "tiny.toml", "-o", f"{stem}.py", "--tests", "test_m.py")
    assert status == 2
    assert repr(stem) in one_line(err)
    assert not (folder / f"{stem}.py").exists() and not (folder / "test_m.py").exists()


def test_without_tests_any_module_file_name_is_fine(folder, capsys):
    status, _, err = run(capsys, "codegen", "tiny.toml", "-o", "my-module.py")
    assert status == 0, err
    assert "def forward" in (folder / "my-module.py").read_text(encoding="utf-8")


# -- a failed run leaves the old files ----------------------------------------------------------


def test_a_refuted_claim_leaves_the_old_module_and_tests(folder, capsys):
    for name in ("m.py", "test_m.py"):
        (folder / name).write_text(OLD, encoding="utf-8")
    status, _, err = run(capsys, "codegen", "tiny.toml", "--claim", "x", "3 * g", "-o", "m.py", "--tests", "test_m.py")
    assert status == 1
    assert "refuted" in one_line(err)
    assert (folder / "m.py").read_text(encoding="utf-8") == OLD
    assert (folder / "test_m.py").read_text(encoding="utf-8") == OLD
    assert leftovers(folder) == []


def test_a_failure_while_making_the_tests_leaves_the_old_module(folder, capsys, monkeypatch):
    import symderive.codegen
    from symderive.errors import InputError

    def fail(*args, **kwargs):
        raise InputError("no tests today", where="--tests")

    monkeypatch.setattr(symderive.codegen, "emit_tests", fail)
    (folder / "m.py").write_text(OLD, encoding="utf-8")
    status, _, err = run(capsys, "codegen", "tiny.toml", "-o", "m.py", "--tests", "test_m.py")
    assert status == 2
    assert "no tests today" in one_line(err)
    assert (folder / "m.py").read_text(encoding="utf-8") == OLD
    assert not (folder / "test_m.py").exists()


@pytest.mark.parametrize("command", ["codegen", "report"])
def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(command, folder, capsys, monkeypatch):
    target = folder / ("m.py" if command == "codegen" else "r.tex")
    target.write_text(OLD, encoding="utf-8")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(symderive.atomic.os, "replace", disk_full)
    status, _, err = run(capsys, command, "tiny.toml", "-o", target.name)
    assert status == 2
    assert "No space left on device" in one_line(err)
    assert target.read_text(encoding="utf-8") == OLD
    assert leftovers(folder) == []


def test_a_report_whose_latex_fails_leaves_the_old_pdf(folder, capsys, monkeypatch):
    import symderive.report

    # a LaTeX source that pdflatex refuses: the compile fails for real
    monkeypatch.setattr(
        symderive.report.renderer,
        "latex_document",
        lambda *a, **k: "\\documentclass{article}\\begin{document}\\nosuchcommand",
    )
    (folder / "r.pdf").write_bytes(b"%PDF-old")
    status, _, err = run(capsys, "report", "tiny.toml", "-o", "r.pdf")
    assert status == 2, err
    assert "LaTeX" in err and "Traceback" not in err
    assert (folder / "r.pdf").read_bytes() == b"%PDF-old"
    assert leftovers(folder) == []


def test_a_successful_run_replaces_the_old_file(folder, capsys):
    (folder / "m.py").write_text(OLD, encoding="utf-8")
    status, _, err = run(capsys, "codegen", "tiny.toml", "-o", "m.py")
    assert status == 0, err
    assert "def forward" in (folder / "m.py").read_text(encoding="utf-8")
    assert leftovers(folder) == []


# -- write_atomic itself ------------------------------------------------------------------------


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "m.py"
    target.write_text(OLD, encoding="utf-8")

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(symderive.atomic.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == OLD
    assert leftovers(tmp_path) == []


def test_an_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "m.py"
    target.write_text(OLD, encoding="utf-8")
    target.chmod(0o640)
    write_atomic(target, "new\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text(encoding="utf-8") == "new\n"


def test_a_new_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "m.py", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.py").stat().st_mode) == 0o640


def test_a_link_is_written_through(tmp_path):
    (tmp_path / "real.py").write_text(OLD, encoding="utf-8")
    os.symlink(tmp_path / "real.py", tmp_path / "link.py")
    write_atomic(tmp_path / "link.py", "new\n")
    assert (tmp_path / "link.py").is_symlink()
    assert (tmp_path / "real.py").read_text(encoding="utf-8") == "new\n"


def test_same_file_sees_through_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("", encoding="utf-8")
    os.symlink(tmp_path / "a.py", tmp_path / "b.py")
    assert same_file("a.py", "./a.py") and same_file("a.py", "b.py") and same_file("a.py", str(tmp_path / "a.py"))
    assert not same_file("a.py", "c.py")
