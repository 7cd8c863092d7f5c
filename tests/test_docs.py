"""The user documentation in docs/ says what symderive does today.

Every example in ``docs/*.md`` is run, in a fresh folder holding a link to the project's
``examples/`` and the files the page has shown so far:

* a fenced ``console`` block: each ``$ symderive ...`` line runs in-process through
  ``symderive.cli.main``; what it prints (standard output, then standard error) must be
  the lines that follow, exactly, up to the next ``$`` line, an ``(exit status N)`` line
  (compared too) or the end of the block. ``$ cat FILE`` shows a file: the lines after it
  are written to FILE for the commands that follow. Any other ``$`` line is an error.
* a block right after ``<!-- file: NAME -->`` is written to NAME for the later examples.
* a block right after ``<!-- claims: LAYER --wrt NAME [--assume EXPR]... -->`` holds one
  claim per line followed by ``# VERDICT`` (and any comment); each is proved and its
  verdict must be the one written.
* every fenced ``toml`` block is a complete layer file: it must load, and each of its
  ``[[claims]]`` must get its ``expect`` verdict (``proved`` when it says none).

Besides, the function table of docs/claims.md names exactly the functions a claim may use,
and README.md points to docs/ instead of the project notes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from symderive.cli import main
from symderive.core.ops import OPERATORS
from symderive.layer import load_layer
from symderive.prove import prove

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
_MARK = re.compile(r"<!--\s*(file|claims):\s*(.*?)\s*-->")
_STATUS = re.compile(r"\(exit status (\d+)\)")
VERDICTS = ("proved", "refuted", "unknown")


@dataclass(frozen=True)
class Example:
    """One runnable example of a page: what kind, where, its content, and the files shown before it."""

    kind: str  # "command", "claim" or "layer"
    page: str
    line: int
    text: str
    expected: tuple[str, ...] = ()
    status: int | None = None
    args: tuple[str, ...] = ()
    files: dict = field(default_factory=dict, compare=False)


def fenced_blocks(text: str) -> list[tuple[int, str, str | None, list[str]]]:
    """(line number of its first line, info string, marker before it, lines) of every fenced block.

    >>> fenced_blocks("<!-- file: a.toml -->\\n```toml\\nx = 1\\n```\\n")
    [(3, 'toml', '<!-- file: a.toml -->', ['x = 1'])]
    """
    blocks, lines, k = [], text.splitlines(), 0
    while k < len(lines):
        if lines[k].startswith("```"):
            info, start, body = lines[k][3:].strip(), k + 1, []
            k += 1
            while k < len(lines) and not lines[k].startswith("```"):
                body.append(lines[k])
                k += 1
            before = next((ln for ln in reversed(lines[: start - 1]) if ln.strip()), "")
            blocks.append((start + 1, info, before if _MARK.fullmatch(before.strip()) else None, body))
        k += 1
    return blocks


def examples(page: Path) -> list[Example]:
    """The runnable examples of one page, in order, each with the files shown before it."""
    found, files = [], {}
    name = page.name
    for line, info, marker, body in fenced_blocks(page.read_text(encoding="utf-8")):
        kind, arg = _MARK.fullmatch(marker.strip()).groups() if marker else (None, "")
        if kind == "file":
            files[arg] = "\n".join(body) + "\n"
        if kind == "claims":
            found += _claims(name, line, arg, body, files)
        if info == "toml":
            found.append(Example("layer", name, line, "\n".join(body) + "\n", files=dict(files)))
        if info == "console":
            found += _commands(name, line, body, files)
    return found


def _claims(page: str, line: int, arg: str, body: list[str], files: dict) -> list[Example]:
    out = []
    for k, text in enumerate(body):
        if not text.strip():
            continue
        claim, _, comment = text.partition("#")
        verdict = comment.split()[0].rstrip(":,.") if comment.split() else ""
        assert verdict in VERDICTS, f"{page}:{line + k}: a claim line ends with '# proved|refuted|unknown'"
        out.append(
            Example("claim", page, line + k, claim.strip(), (verdict,), args=tuple(shlex.split(arg)), files=dict(files))
        )
    return out


def _commands(page: str, line: int, body: list[str], files: dict) -> list[Example]:
    out = []
    for k, text in enumerate(body):
        if not text.startswith("$ "):
            continue
        rest = []
        for after in body[k + 1 :]:
            if after.startswith("$ "):
                break
            rest.append(after)
        if text.startswith("$ cat "):
            files[text[len("$ cat ") :].strip()] = "\n".join(rest) + "\n"
            continue
        assert text.startswith("$ symderive "), f"{page}:{line + k}: only '$ symderive' and '$ cat' lines are run"
        expected, status = [], None
        for after in rest:
            m = _STATUS.fullmatch(after.strip())
            if m:
                status = int(m.group(1))
                break
            expected.append(after)
        out.append(Example("command", page, line + k, text[2:], tuple(expected), status, files=dict(files)))
    return out


ALL = [ex for page in PAGES for ex in examples(page)]


def _id(ex: Example) -> str:
    return f"{ex.page}:{ex.line}:{ex.text.splitlines()[0][:50]}"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh working folder with ``examples/`` linked in, made the current directory."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(folder: Path, files: dict) -> None:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def test_every_page_has_runnable_examples():
    names = {p.name for p in PAGES}
    assert {"README.md", "claims.md", "layer-files.md", "commands.md"} <= names
    for page in ("claims.md", "layer-files.md", "commands.md"):
        kinds = {ex.kind for ex in ALL if ex.page == page}
        assert "command" in kinds, page
    assert {ex.kind for ex in ALL} == {"command", "claim", "layer"}


@pytest.mark.parametrize("ex", [e for e in ALL if e.kind == "command"], ids=_id)
def test_transcript_is_what_the_command_prints(ex, folder, capsys):
    _write(folder, ex.files)
    status = main(shlex.split(ex.text)[1:], prog="symderive")
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).rstrip("\n").splitlines()
    assert [ln.rstrip() for ln in printed] == [ln.rstrip() for ln in ex.expected]
    if ex.status is not None:
        assert status == ex.status


@pytest.mark.parametrize("ex", [e for e in ALL if e.kind == "claim"], ids=_id)
def test_claim_gets_the_verdict_the_page_gives(ex, folder):
    _write(folder, ex.files)
    layer, wrt, assume = _claim_target(ex.args)
    assert prove(_loaded(layer, ex.files), wrt, ex.text, assume=assume).verdict == ex.expected[0]


_LAYERS: dict = {}


def _loaded(name_or_path: str, files: dict):
    """The layer, loaded once per name and file text (so the claims of a list share its setup)."""
    key = (name_or_path, files.get(name_or_path))
    if key not in _LAYERS:
        _LAYERS[key] = load_layer(name_or_path)
    return _LAYERS[key]


def _claim_target(args: tuple[str, ...]) -> tuple[str, str, list[str]]:
    """LAYER --wrt NAME [--assume EXPR]... of a claims marker."""
    layer, rest = args[0], list(args[1:])
    wrt, assume = None, []
    while rest:
        option, value = rest.pop(0), rest.pop(0)
        if option == "--wrt":
            wrt = value
        else:
            assert option == "--assume", option
            assume.append(value)
    return layer, wrt, assume


@pytest.mark.parametrize("ex", [e for e in ALL if e.kind == "layer"], ids=_id)
def test_layer_file_loads_and_its_claims_hold(ex, folder):
    _write(folder, ex.files)
    path = folder / "example_layer.toml"
    path.write_text(ex.text, encoding="utf-8")
    layer = load_layer(path)
    for c in layer.claims:
        assert prove(layer, c.wrt, c.claim, assume=c.assume).verdict == c.expect, c.claim


def test_function_table_names_every_function_a_claim_may_use():
    text = (DOCS / "claims.md").read_text(encoding="utf-8")
    table = text.split("<!-- function table -->")[1].split("<!-- end of function table -->")[0]
    # a row registered under its prefixed spelling (F.softplus) keeps its prefix
    spelled = re.findall(r"^\| `([\w.]+)\(", table, flags=re.M)
    documented = {s if s in OPERATORS else s.rpartition(".")[2] for s in spelled}
    usable = {name for name, op in OPERATORS.items() if op.by_name} | {"Sum", "KroneckerDelta"}
    assert documented == usable


def test_readme_points_to_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "LANGUAGE.md" not in readme
    for page in ("docs/README.md", "docs/claims.md", "docs/layer-files.md", "docs/commands.md"):
        assert f"({page}" in readme, page
