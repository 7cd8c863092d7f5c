"""The structure of a LaTeX math fragment: tokens, balanced groups and scripts.

``parse_structure`` turns the text of one display into a flat tuple of :class:`Item`s (a
base token or group, with its subscript, superscript and primes). What the items *mean*
(products, sums, element reads) is decided by ``read.py``, where the notation is known.

>>> [spell(i) for i in parse_structure(r"y[e, f] = \\sum_a w_{a} x^{(l)}_{ij}'")]
['y', '[e,f]', '=', '\\\\sum_{a}', 'w_{a}', "x_{ij}^{(l)}'"]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import lark

MAX_LENGTH = 5_000  # characters of one display; longer is not a hand derivation
MAX_DEPTH = 40  # nesting of brackets and environments


class StructureError(ValueError):
    """The fragment cannot be read structurally; the message says why (becomes `not checked`)."""


@dataclass(frozen=True)
class Tok:
    """A token: ``kind`` is the grammar's terminal name (CMD, SYMBOL, NUMBER, OP, REL, TEXT ...)."""

    kind: str
    text: str


@dataclass(frozen=True)
class Group:
    """A balanced group: ``kind`` is group ``{}``, paren, bracket, brace ``\\{\\}``, leftright or env.

    ``opening``/``closing`` are the delimiters (for an environment, its name twice).
    """

    kind: str
    items: tuple[Item, ...]
    opening: str = ""
    closing: str = ""


@dataclass(frozen=True)
class Item:
    """A base (token or group) with its scripts; ``line`` counts from 1 in the parsed text."""

    base: Tok | Group
    sub: tuple[Item, ...] | None = None
    sup: tuple[Item, ...] | None = None
    primes: int = 0
    line: int = 1
    start: int = 0
    end: int = 0

    def bare(self) -> Item:
        """The item without its scripts.

        >>> spell(parse_structure("x_i^2")[0].bare())
        'x'
        """
        return Item(self.base, line=self.line, start=self.start, end=self.end)


@functools.cache
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def nesting_depth(text: str) -> int:
    """The deepest nesting of brackets, braces and environments in ``text``.

    >>> nesting_depth(r"\\frac{a}{(b + [c])}")
    3
    """
    depth = deepest = 0
    for i, ch in enumerate(text):
        if ch in "([{" or text.startswith("\\begin", i):
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}" or text.startswith("\\end", i):
            depth = max(depth - 1, 0)
    return deepest


def parse_structure(text: str) -> tuple[Item, ...]:
    """The items of a LaTeX math fragment, or :class:`StructureError` naming what is wrong.

    >>> try:
    ...     parse_structure("{a")
    ... except StructureError as err:
    ...     print(err)
    unbalanced braces or brackets
    """
    if len(text) > MAX_LENGTH:
        raise StructureError(f"the display is longer than {MAX_LENGTH} characters")
    if nesting_depth(text) > MAX_DEPTH:
        raise StructureError(f"brackets nested deeper than {MAX_DEPTH} levels")
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as err:
        raise StructureError(f"unexpected character {text[err.pos_in_stream]!r}") from None
    except lark.exceptions.UnexpectedInput:
        raise StructureError("unbalanced braces or brackets") from None
    return _seq(tree.children[0])


def _seq(tree: lark.Tree) -> tuple[Item, ...]:
    return tuple(_item(child) for child in tree.children)


def _item(tree: lark.Tree) -> Item:
    base, *scripts = tree.children
    sub = sup = None
    primes = 0
    for script in scripts:
        first = script.children[0]
        if first.type == "PRIME":
            primes += len(first)
            continue
        content = _script_content(script.children[1])
        if first.type == "SUB":
            if sub is not None:
                raise StructureError("double subscript")
            sub = content
        else:
            if sup is not None:
                raise StructureError("double superscript")
            sup = content
    meta = tree.meta
    return Item(_base(base), sub, sup, primes, meta.line, meta.start_pos, meta.end_pos)


def _script_content(node) -> tuple[Item, ...]:
    if isinstance(node, lark.Tree):
        return _seq(node.children[0])
    return (Item(Tok(node.type, str(node)), line=node.line, start=node.start_pos, end=node.end_pos),)


def _base(node) -> Tok | Group:
    if isinstance(node, lark.Token):
        return Tok(node.type, str(node))
    kind = node.data
    if kind in ("group", "paren", "bracket"):
        return Group(kind, _seq(node.children[0]), *_DELIMITERS[kind])
    opening, seq, closing = node.children
    if kind == "env":
        name, end = _env_name(opening), _env_name(closing)
        if name != end:
            raise StructureError(f"\\begin{{{name}}} ended by \\end{{{end}}}")
        return Group("env", _seq(seq), name, name)
    if kind == "leftright":
        return Group("leftright", _seq(seq), _delimiter(opening, "\\left"), _delimiter(closing, "\\right"))
    return Group(kind, _seq(seq), "\\{", "\\}")


_DELIMITERS = {"group": ("{", "}"), "paren": ("(", ")"), "bracket": ("[", "]")}


def _env_name(token: lark.Token) -> str:
    return str(token).split("{", 1)[1].rstrip("}").strip()


def _delimiter(token: lark.Token, command: str) -> str:
    text = str(token)[len(command) :].strip()
    return {"\\lbrace": "\\{", "\\rbrace": "\\}", "\\lbrack": "[", "\\rbrack": "]"}.get(text, text)


def spell(item: Item | Tok | Group) -> str:
    """Compact LaTeX of an item (no spaces, scripts in braces): how names are compared.

    >>> spell_all(parse_structure(r"\\hat{ Y }")), spell(parse_structure("k_1")[0])
    ('\\\\hat{Y}', 'k_{1}')
    """
    if isinstance(item, Tok):
        return item.text if item.kind != "TEXT" else _spell_text(item.text)
    if isinstance(item, Group):
        inner = spell_all(item.items)
        if item.kind == "env":
            return f"\\begin{{{item.opening}}}{inner}\\end{{{item.closing}}}"
        if item.kind == "leftright":
            return f"\\left{item.opening}{inner}\\right{item.closing}"
        return f"{item.opening}{inner}{item.closing}"
    text = spell(item.base)
    if item.sub is not None:
        text += "_{" + spell_all(item.sub) + "}"
    if item.sup is not None:
        text += "^{" + spell_all(item.sup) + "}"
    return text + "'" * item.primes


def spell_all(items: tuple[Item, ...]) -> str:
    """Compact LaTeX of a sequence of items.

    >>> spell_all(parse_structure(r"a \\cdot b"))
    'a\\\\cdot b'
    """
    out = ""
    for item in items:
        text = spell(item)
        if out and out[-1].isalpha() and text[:1].isalpha() and _ends_in_command(out):
            out += " "  # keep \cdot b from becoming \cdotb
        out += text
    return out


def _ends_in_command(text: str) -> bool:
    stripped = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return stripped.endswith("\\")


def _spell_text(text: str) -> str:
    command, content = text.split("{", 1)
    return command.strip() + "{" + content[:-1].strip() + "}"


def text_content(tok: Tok) -> str:
    """The words inside ``\\text{...}`` and its kin.

    >>> text_content(Tok("TEXT", r"\\text{ if }"))
    'if'
    """
    return tok.text.split("{", 1)[1][:-1].strip()
