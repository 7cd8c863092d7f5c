"""Hostile text never runs (issue 13, requirement 1).

Every payload tries to create a marker file when it is run as Python (triple quotes, a
backslash before them, line breaks of every kind, NUL) or as TeX (``\\write18``,
``\\input``, ``\\catcode``, ``^^`` notation, an early ``\\end{lstlisting}``), or to be markup
(``<script>``, ``$$``). It goes into every text field of a layer file and into claims on the
command line, through ``codegen`` (the module, imported, and its tests file, run), ``report``
(.tex, one .pdf), Markdown and the pytest plugin; names that cannot be Python names are
refused when the layer file is loaded. Each test asserts the exit status, the one-line
message where there is one, and that the marker file was not created.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from symderive.cli import main
from symderive.layer import builtin_layer_names, load_layer

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: payload templates: {q} is the marker's path as a Python string literal, {p} the path itself
PAYLOADS = {
    "triple double quotes": '"""; open({q}, "w"); """',
    "triple single quotes": "'''; open({q}, 'w'); '''",
    "backslash before quotes": '\\"""; open({q}, "w") #',
    "backslashes": 'x\\\\"""; open({q}, "w"); """\\',
    "newline": '"""\nopen({q}, "w")\n"""',
    "crlf": '"""\r\nopen({q}, "w")\r\n"""',
    "carriage return": '"""\ropen({q}, "w")\r"""',
    "line separator": '"""\u2028open({q}, "w")\u2028"""',
    "paragraph separator": '"""\u2029open({q}, "w")\u2029"""',
    "next line": '"""\x85open({q}, "w")\x85"""',
    "vertical tab": '"""\x0bopen({q}, "w")\x0b"""',
    "form feed": '"""\x0copen({q}, "w")\x0c"""',
    "nul": 'a\x00"""; open({q}, "w"); """',
    "hash": '# """ ; open({q}, "w") #',
    "write18": "\\immediate\\write18{{touch {p}}} \\input{{/etc/passwd}} 100% #1 ~",
    "catcode": "\\catcode`\\^^M=13 ^^5cwrite18{{touch {p}}} ^^5c^^5c",
    "script": "<script>open({q})</script> $$x$$ }} {{",
    "end lstlisting": "}}\\end{{lstlisting}}\\immediate\\write18{{touch {p}}}\\begin{{lstlisting}}",
}

#: names that must never become Python names of emitted code
BAD_NAMES = [
    "lambda",
    "class",
    "None",
    "np",
    "len",
    "_sd_conv",
    "\uff4e\uff50",  # fullwidth n p: Python reads np
    "\ufb01",  # the fi ligature: Python reads fi
    'x"""',
    "a\nb",
    "print(1)",
    "__import__",
]

_COUNT = itertools.count()


def payload(name: str, marker: Path) -> str:
    return PAYLOADS[name].format(q=repr(str(marker)), p=str(marker))


def toml_str(text: str) -> str:
    """``text`` as a TOML basic string (every unprintable character as a \\u escape)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def layer_text(free: str, parsed: str | None = None) -> str:
    """A small layer file: ``free`` in its name, description and label; ``parsed`` (if any) as a
    comment of its output, assumption and claim."""
    note = "" if parsed is None else "  # " + parsed
    text = textwrap.dedent(
        f"""\
        name = {toml_str(free)}
        description = {toml_str(free)}
        assume = [{toml_str("n >= 1" + note)}]
        [inputs]
        x = ["n"]
        [output]
        y = {toml_str("2 * x" + note)}
        [[claims]]
        wrt = "x"
        claim = {toml_str("2 * g" + note)}
        [labels.x]
        "chain rule" = {toml_str(free)}
        """
    )
    tomllib.loads(text)  # the file itself is valid TOML
    return text


def run(capsys, *argv):
    status = main([str(a) for a in argv], prog="symderive")
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def import_and_run(folder: Path, module: str, tests: str | None = None) -> None:
    """Import an emitted module (and its tests module, running every test in it), then forget them."""
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        importlib.import_module(module)
        if tests:
            tmod = importlib.import_module(tests)
            names = [n for n in dir(tmod) if n.startswith("test_")]
            assert names
            for n in names:
                getattr(tmod, n)()
    finally:
        sys.path.remove(str(folder))
        for name in (module, tests):
            sys.modules.pop(name, None)


def codegen_and_import(capsys, folder: Path, layer: str, *more) -> int:
    """``codegen`` into a fresh module and tests file; when written, both are imported and the tests run."""
    k = next(_COUNT)
    module, tests = f"emitted_{k}", f"test_emitted_{k}"
    status, _, err = run(
        capsys, "codegen", layer, *more, "-o", folder / f"{module}.py", "--tests", folder / f"{tests}.py"
    )
    if status == 0:
        import_and_run(folder, module, tests)
    else:
        assert status == 2, err
        one_line(err)
        assert not (folder / f"{module}.py").exists()
    return status


def outside_listings(tex: str) -> str:
    """The LaTeX source less the bodies of its ``lstlisting`` environments (verbatim text)."""
    return re.sub(r"\\begin\{lstlisting\}.*?\\end\{lstlisting\}", "", tex, flags=re.S)


def assert_inert_tex(tex: str) -> None:
    rest = outside_listings(tex)
    for command in ("\\write18", "\\immediate", "\\input{/etc", "\\catcode", "^^"):
        assert command not in rest, command
    # a listing ends only where the template ends it: one \end{lstlisting} per listing it opens
    # (the reports here are written with --code: the emitted module is a listing)
    opened = re.findall(r"^\\begin\{lstlisting\}$", tex, flags=re.M)
    assert opened and tex.count("\\end{lstlisting}") == len(opened)


# -- layer files: text fields ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_text_in_every_field_of_a_layer_file_never_runs(kind, tmp_path, capsys):
    marker = tmp_path / "ran"
    text = payload(kind, marker)
    # everywhere at once: the parsed fields (output, assumption, claim) may refuse it (a line
    # break ends the comment it is in), never run it
    everywhere = tmp_path / "everywhere.toml"
    everywhere.write_text(layer_text(text, parsed=text), encoding="utf-8")
    codegen_and_import(capsys, tmp_path, everywhere)
    assert not marker.exists()
    # in the free-text fields (name, description, label): always accepted, printed, never run
    free = tmp_path / "free.toml"
    free.write_text(layer_text(text), encoding="utf-8")
    assert codegen_and_import(capsys, tmp_path, free) == 0
    status, _, err = run(capsys, "report", free, "--code", "-o", tmp_path / "r.tex")
    assert status == 0, err
    assert_inert_tex((tmp_path / "r.tex").read_text(encoding="utf-8"))
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["triple double quotes", "hash", "script", "write18"])
def test_a_comment_in_the_parsed_fields_is_printed(kind, tmp_path, capsys):
    # one-line payloads are accepted as comments: the emitted docstrings and the report print them
    marker = tmp_path / "ran"
    text = payload(kind, marker)
    path = tmp_path / "layer.toml"
    path.write_text(layer_text("plain", parsed=text), encoding="utf-8")
    assert codegen_and_import(capsys, tmp_path, path) == 0
    status, _, err = run(capsys, "report", path, "--code", "-o", tmp_path / "r.tex")
    assert status == 0, err
    assert_inert_tex((tmp_path / "r.tex").read_text(encoding="utf-8"))
    assert not marker.exists()


# -- layer files: names ------------------------------------------------------------------------


def _named_layer(field: str, name: str) -> tuple[str, str]:
    """A layer file with ``name`` in one name field, and the field as the error names it."""
    n = toml_str(name)
    inputs, output, extra, label = '{ x = ["n"] }', '{ y = "2 * x" }', "", ""
    where = {
        "inputs": f"inputs.{name}",
        "output": f"output.{name}",
        "size": "inputs.x[0]",
        "constants": "constants",
        "wrt": "wrt",
        "labels": f"labels.{name}",
    }[field]
    if field == "inputs":
        inputs, output = f'{{ {n} = ["n"] }}', f"{{ y = {toml_str(name + ' * 2')} }}"
    elif field == "output":
        output = f'{{ {n} = "2 * x" }}'
    elif field == "size":
        inputs = f"{{ x = [{n}] }}"
    elif field == "constants":
        extra = f"constants = [{n}]\n"
    elif field == "wrt":
        label = f'[[claims]]\nwrt = {n}\nclaim = "2 * g"\n'
    elif field == "labels":
        label = f'[labels.{n}]\n"chain rule" = "Eq. 1"\n'
    text = f'name = "t"\n{extra}inputs = {inputs}\noutput = {output}\n{label}'
    tomllib.loads(text)
    return text, where


#: a size is read from a shape string by Python's own parser, which reads the fi ligature as fi
#: (as it does in every claim): that size is fi, consistently (test below), not a refusal
NAME_CASES = [
    (field, name)
    for field in ("inputs", "output", "size", "constants", "wrt", "labels")
    for name in BAD_NAMES
    if (field, name) != ("size", "\ufb01")
]


@pytest.mark.parametrize(("field", "name"), NAME_CASES)
def test_a_name_that_cannot_be_a_python_name_is_refused_at_load(field, name, tmp_path, capsys):
    text, where = _named_layer(field, name)
    path = tmp_path / "named.toml"
    path.write_text(text, encoding="utf-8")
    status, out, err = run(capsys, "show", path)
    assert status == 2 and out == ""
    line = one_line(err)
    assert str(path) in line
    assert " ".join(where.split()) in line
    if field != "size" or name in ("np", "len", "_sd_conv"):
        assert repr(name) in line or name in line


def test_a_size_in_a_shape_is_read_as_python_reads_it(tmp_path):
    text, _ = _named_layer("size", "\ufb01")
    path = tmp_path / "ligature.toml"
    path.write_text(text, encoding="utf-8")
    assert [str(s) for s in load_layer(path).sizes] == ["fi"]


def _layer_files() -> list[Path]:
    folders = ("custom_layers", "user_layers", "course")
    return sorted(p for f in folders for p in (EXAMPLES / f).rglob("*.toml"))


@pytest.mark.parametrize("layer", builtin_layer_names() + [str(p) for p in _layer_files()])
def test_no_builtin_or_example_layer_is_refused(layer):
    assert load_layer(layer).inputs


# -- claims on the command line --------------------------------------------------------------


def _tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(layer_text("tiny"), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_a_claim_given_to_codegen_never_runs(kind, tmp_path, capsys):
    marker = tmp_path / "ran"
    codegen_and_import(capsys, tmp_path, _tiny(tmp_path), "--claim", "x", "2 * g  #" + payload(kind, marker))
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["triple double quotes", "backslashes", "line separator", "end lstlisting", "catcode"])
def test_a_claim_given_to_report_never_runs(kind, tmp_path, capsys):
    marker = tmp_path / "ran"
    claim = "2 * g  #" + payload(kind, marker)
    status, _, err = run(capsys, "report", _tiny(tmp_path), "--claim", "x", claim, "--code", "-o", tmp_path / "r.tex")
    if status == 0:
        assert_inert_tex((tmp_path / "r.tex").read_text(encoding="utf-8"))
    else:
        assert status == 2
        one_line(err)
    assert not marker.exists()


def test_the_issue_s_own_example_writes_a_module_that_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    claim = f'g  #""";__import__("os").system("touch {marker}");"""'
    assert codegen_and_import(capsys, tmp_path, "linear", "--claim", "b", claim) == 0
    assert not marker.exists()


def test_a_pdf_report_prints_tex_commands_and_runs_none(tmp_path, capsys):
    import shutil
    import subprocess

    marker = tmp_path / "ran"
    text = " ".join(payload(k, marker) for k in ("write18", "catcode", "end lstlisting", "script"))
    path = tmp_path / "tex.toml"
    path.write_text(layer_text(text, parsed=payload("write18", marker)), encoding="utf-8")
    status, _, err = run(capsys, "report", path, "-o", tmp_path / "r.pdf")
    assert status == 0, err
    assert not marker.exists()
    if shutil.which("pdftotext"):
        shown = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
        assert "write18" in shown and "lstlisting" in shown


# -- Markdown ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["script", "newline", "end lstlisting"])
def test_markdown_of_a_verdict_has_no_markup_of_the_user(kind, tmp_path):
    from symderive.prove import prove

    layer = load_layer(_tiny(tmp_path))
    claim = "2 * g  #" + payload(kind, tmp_path / "ran")
    try:
        verdict = prove(layer, "x", claim)
    except ValueError:
        return  # refused (a line break ends the comment): nothing to show
    md = verdict._repr_markdown_()
    # the claim is in a code span, which shows it literally; outside the spans no tag, no math of the user
    for line in md.splitlines():
        assert line.count("`") % 2 == 0, line
        outside = re.sub(r"`[^`]*`", "", line)
        assert "<" not in outside.replace("\\<", "") and "$$x" not in outside


# -- the pytest plugin ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _symderive_imported():
    """Import what a proof uses before pytester snapshots ``sys.modules`` (NumPy loads once)."""
    from symderive.prove import prove

    prove("linear", "b", "2 * g")


@pytest.mark.parametrize("kind", ["triple double quotes", "line separator", "script", "end lstlisting"])
def test_the_pytest_plugin_prints_hostile_text_and_runs_none(kind, pytester, _symderive_imported):
    marker = pytester.path / "ran"
    text = payload(kind, marker)
    one_line_text = "\n" not in text and "\r" not in text and "\u2028" not in text
    layer = layer_text(text, parsed=text if one_line_text else None)
    pytester.makefile(".symd.toml", hostile=layer)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert not marker.exists()


def test_the_pytest_plugin_refuses_a_name_that_is_no_python_name(pytester, _symderive_imported):
    text, _ = _named_layer("inputs", "lambda")
    pytester.makefile(".symd.toml", named=text)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert "'lambda' is not a valid tensor name" in result.stdout.str()
