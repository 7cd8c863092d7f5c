"""Notation blocks: what a derivation document's symbols mean (DERIVATIONS.md "Notation").

A block is a TOML table, checked here for its shape only; its LaTeX patterns are compiled
by the reader. Malformed notation is an :class:`InputError` naming the file line.

>>> n = parse_notation('layer = "linear"\\n[names]\\nW = "w"\\n', line=3, source="notes.md")
>>> n.layer, n.names, n.line
('linear', (('W', 'w'),), 3)
>>> try:
...     parse_notation('layer = "linear"\\n[nmaes]\\n', line=3, source="notes.md")
... except InputError as err:
...     print(err)
notes.md line 4: unknown notation table [nmaes] (known: names, sizes, notation, intermediates, indices, functions, rewrite)
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from symderive.errors import InputError

_TABLES = ("names", "sizes", "notation", "intermediates", "indices", "functions", "rewrite")
_SCALARS = ("layer", "assume", "einstein", "column_vectors")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")
_HOLE = re.compile(r"#([1-9])")


@dataclass(frozen=True)
class Notation:
    """One notation block, in force from ``line`` of ``source`` to the next block.

    Tables are kept as tuples of (key, value) pairs in the block's order.
    """

    line: int = 0
    source: str = ""
    base: Path | None = None
    layer: str | None = None
    assume: tuple[str, ...] = ()
    names: tuple[tuple[str, str], ...] = ()
    sizes: tuple[tuple[str, str], ...] = ()
    patterns: tuple[tuple[str, str], ...] = ()
    intermediates: tuple[tuple[str, str], ...] = ()
    indices: tuple[tuple[str, str], ...] = ()
    functions: tuple[tuple[str, str], ...] = ()
    rewrite: tuple[tuple[str, str], ...] = ()
    einstein: bool = False
    column_vectors: bool = False


def hole_name(number: int | str) -> str:
    """The identifier standing for ``#n`` in a parsed claim-language value.

    >>> hole_name(1)
    '__hole1__'
    """
    return f"__hole{number}__"


def parse_claim_text(text: str, where: str) -> ast.expr:
    """A claim-language value (``#1`` allowed) as a Python expression tree, never evaluated.

    >>> ast.unparse(parse_claim_text("flip(#1)", "here"))
    'flip(__hole1__)'
    """
    try:
        return ast.parse(_HOLE.sub(lambda m: hole_name(m.group(1)), text.strip()), mode="eval").body
    except SyntaxError:
        raise InputError(f"cannot read {text!r} as claim language", where=where) from None


def parse_notation(text: str, line: int = 1, source: str = "", base: Path | None = None) -> Notation:
    """The notation block ``text`` whose first line is ``line`` of ``source``.

    >>> parse_notation("einstein = true", source="a.md").einstein
    True
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(
            f"malformed notation: {_toml_message(err)}", where=_where(source, line, _toml_line(err))
        ) from None
    return notation_from_table(data, text, line, source, base)


def notation_from_table(data: dict, text: str, line: int, source: str, base: Path | None) -> Notation:
    """A :class:`Notation` from an already parsed TOML table (``text`` locates keys for messages).

    >>> notation_from_table({"layer": "linear"}, 'layer = "linear"', 1, "f.toml", None).layer
    'linear'
    """
    for key, value in data.items():
        where = _where(source, line, _line_of(text, key))
        if key in _TABLES:
            if not isinstance(value, dict):
                raise InputError(f"[{key}] must be a table", where=where)
        elif key not in _SCALARS:
            known = ", ".join(_TABLES)
            kind = f"table [{key}]" if isinstance(value, dict) else f"key {key!r}"
            raise InputError(f"unknown notation {kind} (known: {known})", where=where)
    fields = {name: _pairs(data, name, text, line, source) for name in _TABLES}
    for key, value in fields["names"]:
        if not _IDENTIFIER.match(value):
            raise InputError(
                f"[names] {key!r} must map to a tensor name, not {value!r}",
                where=_where(source, line, _line_of(text, key)),
            )
    for table in ("notation", "intermediates", "sizes", "indices"):
        for key, value in fields[table]:
            parse_claim_text(value, _where(source, line, _line_of(text, key)))
    layer = data.get("layer")
    if layer is not None and not isinstance(layer, str):
        raise InputError(
            "layer must be a string (a built-in name or a layer file)",
            where=_where(source, line, _line_of(text, "layer")),
        )
    assume = data.get("assume", [])
    if not isinstance(assume, list) or not all(isinstance(a, str) for a in assume):
        raise InputError("assume must be a list of strings", where=_where(source, line, _line_of(text, "assume")))
    flags = {}
    for flag in ("einstein", "column_vectors"):
        flags[flag] = data.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise InputError(f"{flag} must be true or false", where=_where(source, line, _line_of(text, flag)))
    return Notation(
        line=line,
        source=source,
        base=base,
        layer=layer,
        assume=tuple(assume),
        names=fields["names"],
        sizes=fields["sizes"],
        patterns=fields["notation"],
        intermediates=fields["intermediates"],
        indices=fields["indices"],
        functions=fields["functions"],
        rewrite=fields["rewrite"],
        **flags,
    )


def parse_notation_file(path: Path) -> tuple[tuple[str | None, Notation], ...]:
    """The blocks of a ``--notation`` file: the top-level table, in force from the start, and
    each ``[[section]]`` table, in force from the first document line containing its ``from``
    text (a heading), each replacing the one before.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "n.toml"
    ...     _ = p.write_text('layer = "conv2d"\\n[[section]]\\nfrom = "B"\\nlayer = "linear"\\n')
    ...     [(at, n.layer) for at, n in parse_notation_file(p)]
    [(None, 'conv2d'), ('B', 'linear')]
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such notation file: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read notation file {path}: {err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(
            f"malformed notation: {_toml_message(err)}", where=_where(source, 1, _toml_line(err))
        ) from None
    sections = data.pop("section", [])
    if not isinstance(sections, list) or not all(isinstance(s, dict) for s in sections):
        raise InputError(
            "section must be an array of tables ([[section]])", where=_where(source, 1, _line_of(text, "section"))
        )
    blocks: list[tuple[str | None, Notation]] = [(None, notation_from_table(data, text, 1, source, path.parent))]
    for section in sections:
        at = section.pop("from", None)
        if not isinstance(at, str) or not at.strip():
            raise InputError(
                'each [[section]] needs from = "a heading of the document"',
                where=_where(source, 1, _line_of(text, "[[section]]")),
            )
        blocks.append((at.strip(), notation_from_table(section, text, 1, source, path.parent)))
    return tuple(blocks)


def _pairs(data: dict, name: str, text: str, line: int, source: str) -> tuple[tuple[str, str], ...]:
    table = data.get(name, {})
    pairs = []
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            where = _where(source, line, _line_of(text, key))
            raise InputError(f"[{name}] {key!r} must map to a string", where=where)
        pairs.append((key, str(value)))
    return tuple(pairs)


def _where(source: str, first_line: int, offset: int) -> str:
    line = first_line + max(offset, 1) - 1
    return f"{source} line {line}" if source else f"line {line}"


def _line_of(text: str, key: str) -> int:
    """The line (from 1) of the block on which ``key`` first appears, 1 when not found."""
    for number, line in enumerate(text.splitlines(), start=1):
        if key in line:
            return number
    return 1


def _toml_line(err: tomllib.TOMLDecodeError) -> int:
    match = re.search(r"line (\d+)", str(err))
    return int(match.group(1)) if match else 1


def _toml_message(err: tomllib.TOMLDecodeError) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err)) or "not TOML"
