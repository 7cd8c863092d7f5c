"""Splitting documents, notation blocks and their errors, and hostile documents: each ends in
`not checked` entries or one InputError line, never a traceback, in bounded time."""

from __future__ import annotations

import textwrap
import time

import pytest

from symderive.audit.document import Display, Note, split_document
from symderive.audit.read import read_document
from symderive.errors import InputError


def pieces(text: str, kind: str = "markdown"):
    return [
        (type(p).__name__, p.line, p.latex if isinstance(p, Display | Note) else p.text)
        for p in split_document(textwrap.dedent(text), kind)
    ]


def test_markdown_displays_and_what_stays_prose():
    doc = """\
    Prose with $x$ and inline $$y = 1$$ kramdown math.
    $$a = b$$
    $$
    c = d
    $$
    ```python
    $$not = math$$
    ```
    ```math
    e = f
    ```
    \\[ g = h \\]
    \\begin{align*}
    i &= j
    \\end{align*}
    """
    assert pieces(doc) == [
        ("Display", 2, "a = b"),
        ("Display", 3, "\nc = d\n"),
        ("Display", 10, "e = f"),
        ("Display", 12, " g = h "),
        ("Display", 13, "\\begin{align*}\ni &= j\n\\end{align*}"),
    ]


def test_latex_displays_comments_and_notation_lines():
    doc = r"""
    \section{FC}
    % symderive
    % layer = "linear"
    % end symderive
    Inline $y = wx$ is prose. % a comment with $$z = 1$$
    \begin{equation}
    y = w x
    \end{equation}
    $$ a = b $$ and \[ c = d \]
    """
    assert pieces(doc, "latex") == [
        ("NotationText", 4, 'layer = "linear"'),
        ("Display", 7, "\\begin{equation}\ny = w x\n\\end{equation}"),
        ("Display", 10, " a = b "),
        ("Display", 10, " c = d "),
    ]


def test_malformed_notation_is_one_input_error_naming_the_line():
    doc = "# notes\n\n```toml symderive\nlayer = 'linear'\n[names]\nW = 3 = 4\n```\n"
    with pytest.raises(InputError, match=r"line 6: malformed notation"):
        read_document(doc)
    with pytest.raises(InputError, match=r"line 5: unknown notation table \[nmaes\]"):
        read_document("# notes\n\n```toml symderive\nlayer = 'linear'\n[nmaes]\nW = 'w'\n```\n")
    with pytest.raises(InputError, match=r"line 4: cannot read 'flip\(#1' as claim language"):
        read_document("```toml symderive\nlayer = 'conv2d'\n[notation]\n'#1_{f}' = 'flip(#1'\n```\n")
    with pytest.raises(InputError, match="unknown layer 'nosuch'"):
        read_document("```toml symderive\nlayer = 'nosuch'\n```\n$$y = x$$\n")


def test_notation_in_the_document_and_a_notation_file_is_an_input_error(tmp_path):
    notation = tmp_path / "n.toml"
    notation.write_text('layer = "linear"\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2: the document has a notation block and --notation was given too"):
        read_document("# notes\n```toml symderive\nlayer = 'linear'\n```\n", notation=notation)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"$$y = x$$\n\0\n", "NUL byte"),
        (b"$$y = x$$\n\xff\xfe\n", "not UTF-8"),
        (b"$$y = x$$\n" * 200_000, "larger than 1 MB"),
    ],
    ids=["nul", "latin1", "huge"],
)
def test_unreadable_files_are_one_input_error(tmp_path, data, message):
    path = tmp_path / "doc.md"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message) as err:
        read_document(path)
    assert "\n" not in str(err.value)


def test_missing_file_is_an_input_error():
    with pytest.raises(InputError, match="no such file: nowhere.md"):
        read_document("nowhere.md")


@pytest.mark.parametrize(
    "latex, reason",
    [
        ("(" * 200 + "x" + ")" * 200, "nested deeper"),
        ("{" * 50_000, "longer than"),
        ("y = {x", "unbalanced"),
        ("y = \\frac{1}{2", "unbalanced"),
        ("\\input{/etc/passwd} = 1", "unknown macro \\input"),
        ("\\def\\x{1} y = x", "unknown macro \\def"),
        ("\\immediate\\write18{rm -rf /} = 0", "unknown macro \\immediate"),
        ("y = x ¿", "unexpected character"),
        ("y = \\begin{cases} 1 \\end{array}", "ended by"),
    ],
    ids=["deep", "long", "brace", "frac", "input", "def", "write18", "char", "env"],
)
def test_hostile_displays_are_not_checked_with_a_reason(latex, reason):
    doc = "```toml symderive\nlayer = 'linear'\n```\n$$" + latex + "$$\n"
    start = time.perf_counter()
    [entry] = read_document(doc)
    assert time.perf_counter() - start < 5
    assert entry.status == "not checked"
    assert reason in entry.reason


def test_hostile_latex_prose_commands_are_not_followed_and_said_so(tmp_path):
    tex = tmp_path / "doc.tex"
    tex.write_text("\\input{other}\n\\newcommand{\\R}{x}\n\\[ y = x \\]\n", encoding="utf-8")
    entries = read_document(tex)
    assert [(e.line, e.status, e.reason) for e in entries[:2]] == [
        (1, "not checked", "\\input is not followed: the audit reads this file only"),
        (2, "not checked", "\\newcommand is not applied: give the meaning of a macro under [notation]"),
    ]


def test_many_entries_stay_fast():
    doc = "```toml symderive\nlayer = 'linear'\n```\n" + "$$y_j = \\sum_i w_{ji} x_i + b_j$$\n\n" * 300
    start = time.perf_counter()
    entries = read_document(doc)
    assert len(entries) == 300 and all(e.status == "read" for e in entries)
    assert time.perf_counter() - start < 10


def test_a_display_never_closed_is_said_so():
    [entry] = read_document("text\n$$\ny = x\n")
    assert (entry.line, entry.status) == (2, "not checked")
    assert "never closed" in entry.reason
