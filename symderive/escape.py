"""User text into output formats: one escaping function per format, and the names emitted code may use.

Every piece of user text (a claim, a layer's name or description, an assumption, a label)
that reaches a file symderive writes goes through one of these, so that it is printed, never
run: :func:`python_literal` and :func:`python_docstring` (string literals of emitted Python,
escaped as ``repr`` escapes), :func:`python_comment` (the text of a ``#`` comment, on one
line), :func:`latex_escape` (LaTeX text), :func:`markdown_text` (Markdown, plain or in a code
span) and :func:`html_text` (HTML). :func:`identifier_problem` says why a layer's name cannot
be a name in emitted Python (a keyword, a built-in the emitted code calls, ``np``, ...).

This module imports nothing from symderive, so every other module may use it.
"""

from __future__ import annotations

import builtins
import html
import keyword
import re
import unicodedata

# -- Python --------------------------------------------------------------------------------

#: escapes of the characters that have a short one (the rest of the unprintable: \x, \u, \U)
_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped_char(c: str) -> str:
    """``c`` as it may stand inside a Python string literal or comment (``repr``'s policy:
    printable characters as they are, everything else, line separators included, escaped)."""
    if c in _SHORT:
        return _SHORT[c]
    if c.isprintable():
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def python_literal(text: object) -> str:
    r"""``text`` as a double-quoted Python string literal whose value is ``text`` (``repr``-style escapes).

    >>> python_literal('a"b\\c' + chr(10) + chr(0x2028))
    '"a\\"b\\\\c\\n\\u2028"'
    """
    body = "".join('\\"' if c == '"' else _escaped_char(c) for c in str(text))
    return f'"{body}"'


def python_docstring(text: object) -> str:
    r'''``text`` as a triple-quoted Python string literal whose value is ``text``: a docstring.

    Line feeds stay as they are (the docstring keeps its layout); everything else is escaped
    as in :func:`python_literal`, and a ``"`` only where it could end the literal.

    >>> print(python_docstring('one """ two' + chr(10) + "three\\"))
    """one \"\"" two
    three\\"""
    '''
    text = str(text)
    out = []
    for k, c in enumerate(text):
        if c == "\n":
            out.append(c)
        elif c == '"':
            # a quote followed by another, or last, could close the literal: escaped
            out.append('\\"' if k + 1 == len(text) or text[k + 1] == '"' else c)
        else:
            out.append(_escaped_char(c))
    return '"""' + "".join(out) + '"""'


def python_comment(text: object) -> str:
    r"""``text`` as the text of a one-line ``#`` comment: no character can end the line.

    >>> python_comment("a" + chr(13) + "import os" + chr(0x2029) + "b")
    'a\\rimport os\\u2029b'
    """
    return "".join(_escaped_char(c) for c in str(text))


#: names emitted code reads besides the layer's own: NumPy, and every Python built-in
#: (a function body calls some of them; a layer's name must not hide one)
EMITTED_NAMES = frozenset({"np", "numpy"} | set(dir(builtins)))


def identifier_problem(name: object, emitted: bool = True) -> str | None:
    """Why ``name`` cannot be a name in emitted Python code, or None when it can.

    It must be an identifier that Python reads as itself (its NFKC normal form: ``ﬁ`` is
    read as ``fi``) and not a keyword; with ``emitted`` (a name inside the emitted module)
    also not start with ``_`` (the emitted module's own helpers) and not hide what emitted
    code uses (``np``, a built-in such as ``len``).

    >>> identifier_problem("x1") is None
    True
    >>> identifier_problem("lambda"), identifier_problem("np")
    ('it is a Python keyword', 'it is a name the emitted code uses (np)')
    """
    if not isinstance(name, str) or not name.isidentifier():
        return "it is not a Python identifier"
    if unicodedata.normalize("NFKC", name) != name:
        return f"Python reads it as {unicodedata.normalize('NFKC', name)!r} (write that instead)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "it is a Python keyword"
    if not emitted:
        return None
    if name.startswith("_"):
        return "it starts with '_' (kept for the emitted module's own names)"
    if name in EMITTED_NAMES:
        what = "np" if name in ("np", "numpy") else f"the Python built-in {name}"
        return f"it is a name the emitted code uses ({what})"
    return None


# -- LaTeX -----------------------------------------------------------------------------------

#: the one table of characters that mean something to LaTeX, and their printed forms
LATEX_SPECIALS: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
}
_SPECIALS_RE = re.compile("|".join(re.escape(c) for c in LATEX_SPECIALS))


def _typesettable(c: str) -> bool:
    return c == "\t" or (" " <= c <= "~") or ("\u00a0" <= c <= "\u00ff")


def latex_escape(text: object) -> str:
    """``text`` as LaTeX that prints it literally.

    Every character special to TeX is printed (so ``\\write18``, ``\\input``,
    ``\\catcode``, ``^^`` notation, braces, ``%`` and ``#`` are inert); characters pdflatex
    cannot typeset (outside Latin-1, control characters, unicode line separators) become
    ``?``, and a line feed a space (as TeX reads one; two would end a paragraph, and a
    command's argument with an error), so that no user string can stop a compile.

    >>> latex_escape(r"\\input{/etc/passwd} 100% a_b")
    '\\\\textbackslash{}input\\\\{/etc/passwd\\\\} 100\\\\% a\\\\_b'
    """
    text = "".join(c if _typesettable(c) else " " if c == "\n" else "?" for c in str(text))
    return _SPECIALS_RE.sub(lambda m: LATEX_SPECIALS[m.group()], text)


def latex_listing(code: object) -> str:
    """Source code for a ``lstlisting`` environment (verbatim: nothing in it is a command)
    that cannot end the listing early or upset pdflatex.

    >>> latex_listing("x = 1  # é")
    'x = 1  # ?'
    >>> latex_listing(r"s = '\\end{lstlisting}'")
    "s = '\\\\end {lstlisting}'"
    """
    code = "".join(c if (" " <= c <= "~") or c == "\n" else "?" for c in str(code).replace("\t", "    "))
    return re.sub(r"\\end(\s*)\{lstlisting\}", r"\\end \1{lstlisting}", code)


# -- Markdown and HTML --------------------------------------------------------------------------

#: every ASCII punctuation character: CommonMark lets each be escaped with a backslash
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _one_line(text: str) -> str:
    # line breaks of any kind (a blank line ends a code span or a paragraph) and control characters
    return "".join(c if c.isprintable() else " " for c in text)


def markdown_text(text: object, code: bool = False) -> str:
    """``text`` as Markdown that shows it literally, on one line; with ``code``, as an inline code span.

    In plain text every ASCII punctuation character is backslash-escaped (no emphasis, link,
    HTML tag or ``$`` math can start); in a code span nothing is interpreted, and a backtick,
    which would end the span, becomes ``'``.

    >>> print(markdown_text("<b>*x*</b>"))
    \\<b\\>\\*x\\*\\<\\/b\\>
    >>> markdown_text("a`b", code=True)
    "`a'b`"
    """
    text = _one_line(str(text))
    if code:
        return "`" + text.replace("`", "'") + "`"
    return _MD_PUNCTUATION.sub(r"\\\1", text)


def html_text(text: object) -> str:
    """``text`` as HTML text (or a quoted attribute value) that shows it literally.

    >>> html_text('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    text = "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in str(text))
    return html.escape(text, quote=True)


__all__ = [
    "EMITTED_NAMES",
    "LATEX_SPECIALS",
    "html_text",
    "identifier_problem",
    "latex_escape",
    "latex_listing",
    "markdown_text",
    "python_comment",
    "python_docstring",
    "python_literal",
]
