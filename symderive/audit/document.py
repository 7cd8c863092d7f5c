"""Splitting a derivation document into its displays and notation blocks, with file lines.

Markdown: ``$$ ... $$`` on lines of their own, ``\\[ ... \\]``, fenced ```` ```math ````
blocks and bare display environments; ```` ```toml symderive ```` fences are notation.
LaTeX: ``\\[ \\]``, ``$$ $$`` and the display environments (starred too); notation between
``% symderive`` and ``% end symderive``. Everything else is prose and is not read.

>>> pieces = split_document("Text $$a$$ inline.\\n\\n$$y = x$$\\n", "markdown")
>>> [(type(p).__name__, p.line, p.latex) for p in pieces]
[('Display', 3, 'y = x')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from symderive.errors import InputError

MAX_BYTES = 1_000_000  # a derivation document; anything larger is refused with one line
DISPLAY_ENVIRONMENTS = ("equation", "align", "gather", "multline", "eqnarray", "alignat", "flalign")
_ENV_OPEN = re.compile(r"\\begin\s*\{(" + "|".join(DISPLAY_ENVIRONMENTS) + r")(\*?)\}")
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*(.*)$")
_UNSAFE_LATEX = re.compile(
    r"\\(input|include|def|edef|gdef|xdef|let|newcommand|renewcommand|providecommand|DeclareRobustCommand"
    r"|NewDocumentCommand|RenewDocumentCommand|write18|immediate|DeclareMathOperator|catcode|makeatletter)\b"
)


@dataclass(frozen=True)
class Display:
    """A display of math: ``latex`` is its text; its first character is on file line ``line``."""

    line: int
    latex: str


@dataclass(frozen=True)
class NotationText:
    """The TOML text of a notation block whose first line is file line ``line``."""

    line: int
    text: str


@dataclass(frozen=True)
class Note:
    """Something in the prose that is deliberately not followed (``\\input``, ``\\def``)."""

    line: int
    latex: str
    reason: str


Piece = Display | NotationText | Note


def load_text(source: str | Path, kind: str | None = None) -> tuple[str, str, Path | None]:
    """The document's text, its kind (markdown or latex) and its path (None for text).

    A ``Path``, or a one-line string naming an existing file, is read from disk; any other
    string is the document itself.

    >>> load_text("$$y = x$$")[:2]
    ('$$y = x$$', 'markdown')
    """
    path = _as_path(source)
    if path is None:
        data = str(source).encode("utf-8", errors="surrogatepass")
    else:
        try:
            if path.stat().st_size > MAX_BYTES:
                raise InputError(f"{path}: the document is larger than {MAX_BYTES // 1_000_000} MB")
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"no such file: {path}") from None
        except IsADirectoryError:
            raise InputError(f"{path} is a directory, not a document") from None
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror}") from None
    name = str(path) if path else "the document"
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: the document is larger than {MAX_BYTES // 1_000_000} MB")
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(f"{name}: a NUL byte at offset {nul}: not a text document")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not UTF-8 text (byte {err.start})") from None
    if kind is None:
        kind = "latex" if path is not None and path.suffix.lower() in (".tex", ".ltx") else "markdown"
    if kind not in ("markdown", "latex"):
        raise InputError(f"unknown document kind {kind!r} (markdown or latex)")
    return text.lstrip("\ufeff"), kind, path


def _as_path(source: str | Path) -> Path | None:
    if isinstance(source, Path):
        return source
    if "\n" in source or len(source) > 4096:
        return None
    if source.endswith((".md", ".markdown", ".tex", ".ltx", ".txt")) or Path(source).is_file():
        return Path(source)
    return None


def split_document(text: str, kind: str) -> tuple[Piece, ...]:
    """The displays, notation blocks and notes of a document, in order.

    >>> [type(p).__name__ for p in split_document("% symderive\\n% layer = 'linear'\\n% end symderive\\n\\\\[ y = x \\\\]", "latex")]
    ['NotationText', 'Display']
    """
    return tuple(_split_markdown(text) if kind == "markdown" else _split_latex(text))


def _split_markdown(text: str):
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            i = yield from _fenced(lines, i, fence.group(1), fence.group(2).strip())
            continue
        opening = _markdown_opening(stripped)
        if opening is None:
            i += 1
            continue
        closing, keep_env = opening
        i = yield from _delimited(lines, i, line, closing, keep_env)


def _markdown_opening(stripped: str) -> tuple[str, bool] | None:
    """The closing delimiter of a display opening at the start of this line, and whether the
    delimiters are part of the display (an environment); None for prose."""
    if stripped.startswith("$$"):
        rest = stripped[2:]
        if "$$" in rest and not rest.rstrip().endswith("$$"):
            return None  # $$ ... $$ with prose after it: inline
        if rest.rstrip().endswith("$$") and "$$" in rest[:-2]:
            return None  # two inline formulas on one line
        return "$$", False
    if stripped.startswith("\\["):
        return "\\]", False
    match = _ENV_OPEN.match(stripped)
    if match:
        return f"\\end{{{match.group(1)}{match.group(2)}}}", True
    return None


def _delimited(lines: list[str], i: int, line: str, closing: str, keep_env: bool):
    """Yield the display opening on line ``i``; return the index of the line after it."""
    start_col = len(line) - len(line.lstrip())
    collected = [line[start_col if keep_env else start_col + 2 :]]
    j = i
    while (at := collected[-1].find(closing)) < 0:
        j += 1
        if j >= len(lines):
            yield Note(i + 1, line.strip(), f"display opened here is never closed ({closing} missing)")
            return j
        collected.append(lines[j])
    collected[-1] = collected[-1][: at + (len(closing) if keep_env else 0)]
    yield Display(i + 1, "\n".join(collected))
    return j + 1


def _fenced(lines: list[str], i: int, marker: str, info: str):
    """Yield a ```math display or a ```toml symderive block; skip any other fence."""
    j = i + 1
    while j < len(lines) and not lines[j].strip().startswith(marker):
        j += 1
    body = "\n".join(lines[i + 1 : j])
    words = info.split()
    if words[:1] == ["math"]:
        yield Display(i + 2, body)
    elif words[:1] == ["toml"] and "symderive" in words[1:]:
        yield NotationText(i + 2, body)
    return j + 1


_LATEX_OPENINGS = re.compile(r"\\\[|\$\$|" + _ENV_OPEN.pattern)


def _split_latex(text: str):
    text, notes = _latex_notation(text)
    yield from notes
    uncommented = _strip_comments(text)
    pos = 0
    while True:
        match = _LATEX_OPENINGS.search(uncommented, pos)
        prose_end = match.start() if match else len(uncommented)
        yield from _unsafe_notes(uncommented, pos, prose_end)
        if match is None:
            return
        token = match.group(0)
        if token == "\\[":
            closing, body_start, keep = "\\]", match.end(), False
        elif token == "$$":
            closing, body_start, keep = "$$", match.end(), False
        else:
            closing, body_start, keep = f"\\end{{{match.group(1)}{match.group(2)}}}", match.start(), True
        end = uncommented.find(closing, match.end())
        line = uncommented.count("\n", 0, body_start) + 1
        if end < 0:
            yield Note(line, token, f"display opened here is never closed ({closing} missing)")
            return
        yield Display(line, uncommented[body_start : end + (len(closing) if keep else 0)])
        pos = end + len(closing)


def _latex_notation(text: str) -> tuple[str, list]:
    """Notation blocks out of a LaTeX document (their lines blanked, so lines keep their numbers)."""
    lines = text.split("\n")
    pieces: list = []
    i = 0
    while i < len(lines):
        if re.fullmatch(r"\s*%\s*symderive\s*", lines[i]):
            j = i + 1
            while j < len(lines) and not re.fullmatch(r"\s*%\s*end\s+symderive\s*", lines[j]):
                j += 1
            if j == len(lines):
                raise InputError(f"line {i + 1}: '% symderive' without '% end symderive'")
            body = [re.sub(r"^\s*% ?", "", line) for line in lines[i + 1 : j]]
            pieces.append(NotationText(i + 2, "\n".join(body)))
            for k in range(i, j + 1):
                lines[k] = ""
            i = j
        i += 1
    return "\n".join(lines), pieces


def _strip_comments(text: str) -> str:
    """LaTeX without its % comments (a \\% stays), lines kept."""
    return re.sub(r"(?<!\\)%[^\n]*", "", text)


def _unsafe_notes(text: str, start: int, end: int):
    for match in _UNSAFE_LATEX.finditer(text, start, end):
        line = text.count("\n", 0, match.start()) + 1
        command = match.group(0)
        if command in ("\\input", "\\include"):
            reason = f"{command} is not followed: the audit reads this file only"
        elif command in ("\\catcode", "\\makeatletter"):
            reason = f"{command} is not applied: the audit reads the document with LaTeX's usual character codes"
        else:
            reason = f"{command} is not applied: give the meaning of a macro under [notation]"
        yield Note(line, command, reason)
