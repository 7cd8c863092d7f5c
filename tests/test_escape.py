"""symderive.escape: each format's one escaping function, checked against the format's own reader
(Python's parser, a LaTeX special-character scan, CommonMark's escapes, html.unescape)."""

from __future__ import annotations

import ast
import builtins
import html
import io
import re
import tokenize

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symderive.escape import (
    LATEX_SPECIALS,
    html_text,
    identifier_problem,
    latex_escape,
    latex_listing,
    markdown_text,
    python_comment,
    python_docstring,
    python_literal,
)

#: the characters that end a line somewhere (Python, str.splitlines, editors, JavaScript)
LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
HOSTILE = [
    '"""; import os; """',
    "'''; import os; '''",
    '\\"""; import os #',
    "ends in a backslash \\",
    '"',
    '""',
    "x\x00y",
    "\ud800 lone surrogate",
    "\u202e bidi override",
    "\\N{BULLET} \\x41 \\u0041",
    *[f'"""{b}import os{b}"""' for b in LINE_BREAKS],
]
#: any text at all, surrogates and line separators included
ANY_TEXT = st.text(alphabet=st.characters(), max_size=40) | st.sampled_from(HOSTILE)


def _only_a_string(source: str, value: str) -> None:
    """``source`` is one expression statement: a string constant equal to ``value``."""
    tree = ast.parse(source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), source
    assert isinstance(tree.body[0].value, ast.Constant) and tree.body[0].value.value == value


# -- Python ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_python_literal_is_one_string_equal_to_the_text(text):
    _only_a_string(python_literal(text), text)


@pytest.mark.parametrize("text", HOSTILE)
def test_python_docstring_is_one_string_equal_to_the_text(text):
    _only_a_string(python_docstring(text), text)
    # and as a function's docstring, the function's body is only that
    fn = ast.parse("def f():\n    " + python_docstring(text) + "\n    return 1\n").body[0]
    assert len(fn.body) == 2 and ast.get_docstring(fn, clean=False) == text


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_python_literals_round_trip_any_text(text):
    for literal in (python_literal(text), python_docstring(text)):
        assert ast.literal_eval(literal) == text
        # nothing a line-splitting tool sees can leave the literal: no line break but \n
        assert not any(b in literal for b in LINE_BREAKS if b != "\n")
    assert "\n" not in python_literal(text)


def test_python_docstring_keeps_the_layout_of_plain_text():
    text = 'dL/dx = convolve(g, w, "full"), proved\n\n    Shapes: x [n]'
    assert python_docstring(text) == '"""' + text + '"""'


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_a_comment_stays_one_comment(text):
    source = "x = 1  # " + python_comment(text) + "\ny = 2\n"
    assert len(source.splitlines()) == 2
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    assert [t.type for t in tokens].count(tokenize.COMMENT) == 1
    assert ast.dump(ast.parse(source)) == ast.dump(ast.parse("x = 1\ny = 2\n"))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("lambda", "keyword"),
        ("class", "keyword"),
        ("None", "keyword"),
        ("True", "keyword"),
        ("match", "keyword"),
        ("np", "np"),
        ("numpy", "np"),
        ("len", "built-in len"),
        ("range", "built-in range"),
        ("__import__", "starts with '_'"),
        ("_sd_conv", "starts with '_'"),
        ("_gather", "starts with '_'"),
        ("\uff4e\uff50", "reads it as 'np'"),  # fullwidth n p
        ("\ufb01", "reads it as 'fi'"),  # the fi ligature
        ("x\u2028", "not a Python identifier"),
        ("a-b", "not a Python identifier"),
        ("1x", "not a Python identifier"),
        ("", "not a Python identifier"),
        ('x"""', "not a Python identifier"),
    ],
)
def test_names_that_cannot_be_emitted_are_named_with_the_reason(name, reason):
    assert reason in identifier_problem(name)


@pytest.mark.parametrize("name", ["x", "w", "gamma", "x1", "Cg", "kh", "\u03b1", "input_"])
def test_plain_names_can_be_emitted(name):
    assert identifier_problem(name) is None


def test_every_builtin_is_refused_as_an_emitted_name_but_not_as_a_module_name():
    for name in dir(builtins):
        assert identifier_problem(name) is not None, name
    assert identifier_problem("np", emitted=False) is None
    assert identifier_problem("lambda", emitted=False) == "it is a Python keyword"


# -- LaTeX -------------------------------------------------------------------------------------

_ESCAPES = re.compile("|".join(re.escape(v) for v in sorted(LATEX_SPECIALS.values(), key=len, reverse=True)))


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_latex_escape_leaves_no_special_character_of_the_user(text):
    out = latex_escape(text)
    rest = _ESCAPES.sub("", out)
    # every TeX special character in the output is part of an escape the table wrote
    assert not any(c in rest for c in "\\{}%#$&_^~"), out
    # Latin-1 and no line feed: pdflatex with inputenc reads every character, and no blank line ends a paragraph
    assert all(" " <= c <= "~" or "\u00a0" <= c <= "\u00ff" or c == "\t" for c in out)


@pytest.mark.parametrize(
    "text",
    [r"\write18{touch x}", r"\input{/etc/passwd}", r"\catcode`\^^M=13", "^^5cwrite18", "$$x$$", "}", "{", "%", "#1"],
)
def test_tex_commands_are_printed(text):
    out = latex_escape(text)
    assert "\\write18" not in out and "\\input" not in out and "\\catcode" not in out and "^^" not in out
    assert _ESCAPES.sub("", out).count("\\") == 0


def test_a_blank_line_cannot_end_a_paragraph():
    assert latex_escape("a\n\nb") == "a  b"


def test_a_listing_cannot_be_ended_early():
    code = "s = '\\end{lstlisting}\\write18{x}' + '\\end  {lstlisting}' \u2028 \t"
    out = latex_listing(code)
    assert "\\end{lstlisting}" not in out
    assert all(" " <= c <= "~" or c == "\n" for c in out)


# -- Markdown and HTML -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_markdown_text_is_one_line_of_escaped_punctuation(text):
    out = markdown_text(text)
    assert len(out.splitlines()) <= 1 and "\n" not in out
    # CommonMark: a backslash before ASCII punctuation prints it; every punctuation char is so escaped
    assert re.fullmatch(r"(?:\\[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~])*", out), out


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_a_markdown_code_span_cannot_be_left(text):
    out = markdown_text(text, code=True)
    assert out.startswith("`") and out.endswith("`") and out.count("`") == 2
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "a\n\n<img src=x onerror=alert(1)>", "$$\\href$$"])
def test_markdown_has_no_tag_or_math_of_the_user(text):
    for out in (markdown_text(text), markdown_text(text, code=True)):
        assert "\n" not in out
    plain = markdown_text(text)
    assert "<" not in plain.replace("\\<", "") and "$" not in plain.replace("\\$", "")


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_html_text_has_no_markup_and_unescapes_to_the_text(text):
    out = html_text(text)
    assert not set("<>\"'") & set(out)
    printable = "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)
    assert html.unescape(out) == printable
