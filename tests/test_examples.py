"""The command transcripts in the README files are what the commands print today.

Every ``$ symderive ...`` line in a fenced block of README.md and examples/*/README.md is
run (in that README's folder) and its output compared with the lines that follow it, up
to the next command, an ``(exit status N)`` line (compared too) or the end of the block.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from symderive.cli import main

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]


def transcripts(readme: Path) -> list[tuple[str, list[str], int | None, dict]]:
    """(command, expected output lines, exit status or None, files shown by ``$ cat``) per ``$ symderive`` line."""
    out, block, inside = [], [], False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if inside:
                out += _commands(block)
            inside, block = not inside, []
        elif inside:
            block.append(line)
    return out


def _commands(block: list[str]) -> list[tuple[str, list[str], int | None, dict]]:
    found, files = [], {}
    for k, line in enumerate(block):
        if line.startswith("$ cat "):
            # a file the transcript shows: the commands after it read it
            shown = []
            for rest in block[k + 1 :]:
                if rest.startswith("$ "):
                    break
                shown.append(rest)
            files[line[len("$ cat ") :].strip()] = "\n".join(shown) + "\n"
            continue
        if not line.startswith("$ symderive "):
            continue
        expected, status = [], None
        for rest in block[k + 1 :]:
            if rest.startswith("$ "):
                break
            m = re.fullmatch(r"\(exit status (\d+)\)", rest.strip())
            if m:
                status = int(m.group(1))
                break
            expected.append(rest)
        found.append((line[2:], expected, status, dict(files)))
    return found


CASES = [
    pytest.param(
        readme,
        command,
        expected,
        status,
        files,
        id=f"{readme.parent.name}:{command[10:60]}",
        # auditing a whole example document takes seconds per document
        marks=[pytest.mark.slow] if command.split()[1:2] == ["audit"] else [],
    )
    for readme in READMES
    for command, expected, status, files in transcripts(readme)
]


def test_the_readmes_have_transcripts():
    assert len(CASES) >= 10


@pytest.mark.parametrize(("readme", "command", "expected", "status", "files"), CASES)
def test_transcript_is_what_the_command_prints(readme, command, expected, status, files, capsys, monkeypatch, tmp_path):
    folder = tmp_path / readme.parent.name
    if readme.parent == ROOT:
        folder.mkdir()  # the top README's commands read only built-in layers (no copy of the repository)
    else:
        shutil.copytree(readme.parent, folder)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(folder)
    args = shlex.split(command)[1:]
    got_status = main(args, prog="symderive")
    captured = capsys.readouterr()
    # a transcript shows both streams: what the command prints, then its error line
    printed = (captured.out + captured.err).rstrip("\n").splitlines()
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in expected]
    if status is not None:
        assert got_status == status
