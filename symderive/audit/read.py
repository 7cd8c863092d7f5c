r"""Reading a derivation document: each display entry becomes relations between claim texts.

``read_document`` splits the document (document.py), applies the notation in force
(notation.py) and reads each entry's LaTeX into a chain of :class:`Link`\ s whose sides are
claim language (LANGUAGE.md), ready for ``prove_identity``. What cannot be read is an
entry or link with status ``not checked``, the LaTeX fragment and the reason: never
guessed, never dropped. User text is parsed, never evaluated.

>>> doc = "```toml symderive\nlayer = 'linear'\n```\n$$y[j] = \\sum_i w[j, i] x[i] + b_j$$\n"
>>> [(link.left, link.right) for e in read_document(doc) for link in e.links]
[('y[j]', 'Sum(w[j, i] * x[i], i) + b[j]')]
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from symderive.core.functions import MAX_ORDER, derivative_name
from symderive.errors import InputError

from . import claims as C
from . import columns
from .document import Display, NotationText, Note, load_text, split_document
from .latex import Group, Item, StructureError, Tok, parse_structure, spell, spell_all, text_content
from .notation import Notation, hole_name, parse_claim_text, parse_notation, parse_notation_file
from .symbols import LayerSymbols, load_layer_symbols

# ---------------------------------------------------------------------------------------
# public data


@dataclass(frozen=True)
class Link:
    """One relation ``left == right`` of an entry (a chain ``A = B = C`` has two).

    ``status`` is ``relation`` (to be decided), ``definition`` or ``not checked`` (then
    ``reason`` says why and ``latex`` is the fragment). ``free_indices`` are the index
    variables free in either side; ``index_ranges`` holds ``(index, tensor, axis)`` for each
    free index standing alone in an index position of a read in the left side (``dx`` and
    ``g`` are named as written: their shapes are x's and y's).
    """

    line: int
    left: str
    right: str
    free_indices: tuple[str, ...] = ()
    index_ranges: tuple[tuple[str, str, int], ...] = ()
    status: str = "relation"
    reason: str = ""
    latex: str = ""


@dataclass(frozen=True)
class Entry:
    """One display entry: its file ``line``, verbatim ``latex``, ``status`` (``read``,
    ``definition``, ``not checked``, ``not an equation``), its links, the ``reason`` when
    not checked, what it ``defines``, and the notation in force (``layer``, ``assume``,
    ``notation_line``)."""

    line: int
    latex: str
    status: str
    links: tuple[Link, ...] = ()
    reason: str = ""
    defines: str = ""
    layer: str | None = None
    assume: tuple[str, ...] = ()
    notation_line: int = 0
    #: the folder a relative ``layer`` path is taken from (the notation's file's)
    base: Path | None = None
    #: the notation's ``[intermediates]`` (name, claim-language formula), added to the layer
    intermediates: tuple[tuple[str, str], ...] = ()
    #: the notation's ``[functions]`` (abstract elementwise functions, by claim name), added to the layer
    functions: tuple[str, ...] = ()


class NotRead(Exception):
    """A fragment that cannot be read; becomes ``not checked`` with this reason."""

    def __init__(self, reason: str, fragment: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.fragment = fragment


@dataclass(frozen=True)
class Formula:
    """An array given by an index formula (``body`` at ``indices``), read elementwise."""

    indices: tuple[str, ...]
    body: ast.expr

    def at(self, where: list[ast.expr]) -> ast.expr:
        """The element at ``where``.

        >>> C.text(Formula(("i",), C.sub(C.name("w"), C.neg(C.name("i")))).at([C.name("a")]))
        'w[-a]'
        """
        if len(where) != len(self.indices):
            raise NotRead(f"read with {len(where)} indices where its formula has {len(self.indices)}")
        return C.substitute(self.body, dict(zip(self.indices, where, strict=True)))


Value = ast.expr | Formula

# ---------------------------------------------------------------------------------------
# the notation in force

LOSS_SPELLINGS = ("L", "\\mathcal{L}", "\\ell", "E", "J")
GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma "
    "Upsilon Phi Psi Omega ell".split()
)
ACCENTS = frozenset(
    "hat widehat tilde widetilde bar overline vec dot ddot check breve mathbf boldsymbol bm mathcal "
    "mathbb mathit mathsf mathfrak".split()
)
CLAIM_FUNCTIONS = frozenset(
    "sum mean var max amax min amin exp log sqrt square tanh sinh cosh sin cos log1p expm1 abs sign "
    "clip maximum minimum where transpose flip rot90 outer dot einsum trace diag softmax log_softmax "
    "logsumexp expit sigmoid relu".split()
)
COMMAND_FUNCTIONS = {"exp": "exp", "log": "log", "ln": "log", "sqrt": "sqrt", "tanh": "tanh", "sinh": "sinh"}
COMMAND_FUNCTIONS |= {"cosh": "cosh", "sin": "sin", "cos": "cos"}
TRANSPARENT = frozenset(
    "displaystyle textstyle scriptstyle limits nolimits big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr "
    "Biggl Biggr quad qquad nonumber notag left right middle mathop".split()
)
DROPPED_WITH_ARGUMENT = frozenset("label tag textcircled color phantom hphantom vphantom".split())
SCHEMATIC = frozenset("dots cdots ldots vdots ddots dotsb dotsc dotsm dotsi".split())
INFIX_COMMANDS = frozenset(
    "otimes oplus ominus star ast circledast bullet diamond boxtimes boxplus oslash wedge vee cap cup "
    "circledcirc".split()
)
OTHER_RELATIONS = frozenset(
    "neq ne leq le geq ge approx equiv propto sim simeq cong lt gt ll gg in subset coloneqq mapsto".split()
)
ARROWS = frozenset(
    "rightarrow leftarrow Rightarrow Leftarrow to longrightarrow Longrightarrow implies iff gets".split()
)
ALIGN_ENVIRONMENTS = frozenset(
    "align align* aligned gather gather* gathered eqnarray eqnarray* multline multline* split alignat "
    "alignat* flalign flalign*".split()
)
SINGLE_ENVIRONMENTS = frozenset("equation equation* displaymath math".split())


@dataclass(frozen=True)
class _Pattern:
    """A [notation] pattern: ``items`` with holes; ``value`` in claim language; ``indices``
    when the pattern ends in an element read (an index formula); ``infix`` for ``#1 OP #2``."""

    key: str
    items: tuple[Item, ...]
    value: ast.expr
    indices: tuple[str, ...] | None
    infix: str | None
    holes: int


@dataclass
class _Meaning:
    """What spellings mean under one notation block (plus the document's own definitions)."""

    notation: Notation
    layer: LayerSymbols | None
    names: dict[str, str]
    sizes: dict[str, ast.expr]
    symbols: dict[str, ast.expr]
    decorations: list[_Pattern]
    infixes: dict[str, _Pattern]
    functions: dict[str, str]
    index_parameters: frozenset[str]


def _meaning(notation: Notation, layers: Callable[[str, Path | None], LayerSymbols]) -> _Meaning:
    where = f"{notation.source} line {notation.line}" if notation.source else f"line {notation.line}"
    layer = layers(notation.layer, notation.base) if notation.layer else None
    if layer is not None and notation.intermediates:
        layer = layer.with_intermediates({k: _intermediate_rank(v) for k, v in notation.intermediates})
    sizes = {s: C.name(s) for s in (layer.sizes if layer else ())}
    for key, value in notation.sizes:
        sizes[_canonical(key, where)] = parse_claim_text(value, where)
    symbols: dict[str, ast.expr] = {}
    decorations: list[_Pattern] = []
    infixes: dict[str, _Pattern] = {}
    for key, value in notation.patterns:
        pattern = _compile_pattern(key, parse_claim_text(value, where), where)
        if pattern.holes == 0 and pattern.indices is None:
            symbols[_canonical(key, where)] = pattern.value
        elif pattern.infix is not None:
            infixes[pattern.infix] = pattern
        else:
            decorations.append(pattern)
    return _Meaning(
        notation=notation,
        layer=layer,
        names={_canonical(k, where): v for k, v in notation.names},
        sizes=sizes,
        symbols=symbols,
        decorations=decorations,
        infixes=infixes,
        functions={_canonical(k, where): k.strip("\\") for k, _ in notation.functions},
        index_parameters=frozenset(k for k, _ in notation.indices),
    )


def _intermediate_rank(formula: str) -> int | None:
    head = formula.split("==")[0] if "==" in formula else ""
    return head.count(",") + 1 if "[" in head else None


def _canonical(spelling: str, where: str) -> str:
    try:
        return spell_all(parse_structure(spelling))
    except StructureError as err:
        raise InputError(f"cannot read {spelling!r}: {err}", where=where) from None


def _compile_pattern(key: str, value: ast.expr, where: str) -> _Pattern:
    try:
        items = _without_spaces(parse_structure(key))
    except StructureError as err:
        raise InputError(f"cannot read the pattern {key!r}: {err}", where=where) from None
    holes = sum(spell_all(items).count(f"#{k}") for k in range(1, 10))
    indices = None
    last = items[-1] if items else None
    if (
        holes
        and last is not None
        and len(items) > 1
        and isinstance(last.base, Group)
        and last.base.kind in ("bracket", "paren")
    ):
        indices = tuple(spell_all(part) for part in _split_top(last.base.items, "COMMA"))
        items = items[:-1]
    elif holes and last is not None and last.sub is not None and _is_paren_tuple(last.sub):
        indices = tuple(spell_all(part) for part in _split_top(last.sub[0].base.items, "COMMA"))
        items = (*items[:-1], Item(last.base, None, last.sup, last.primes))
    if indices is not None and not all(i.isidentifier() for i in indices):
        raise InputError(f"the pattern {key!r} must end in an element read at index names", where=where)
    inner = (
        items[0].base.items
        if len(items) == 1
        and isinstance(items[0].base, Group)
        and items[0].base.kind == "paren"
        and items[0].sub is None
        else items
    )
    infix = None
    if len(inner) == 3 and _is_hole(inner[0]) and _is_hole(inner[2]) and _infix_spelling(inner[1]) is not None:
        infix = _infix_spelling(inner[1])
    elif holes == 0 and not (len(items) >= 1):
        raise InputError(f"empty pattern {key!r}", where=where)
    return _Pattern(key, items, value, indices, infix, holes)


def _is_hole(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "HOLE" and item.sub is None and item.sup is None


def _infix_spelling(item: Item) -> str | None:
    base = item.base
    if not isinstance(base, Tok) or item.sub is not None or item.sup is not None:
        return None
    if base.kind == "OP" and base.text == "*":
        return "*"
    if base.kind == "CMD" and base.text[1:] in INFIX_COMMANDS | {"odot", "circ", "cdot", "times"}:
        return base.text
    return None


def _is_paren_tuple(items: tuple[Item, ...]) -> bool:
    return (
        len(items) == 1 and isinstance(items[0].base, Group) and items[0].base.kind == "paren" and items[0].sub is None
    )


# ---------------------------------------------------------------------------------------
# the document


def read_document(
    source: str | Path,
    kind: str | None = None,
    notation: str | Path | None = None,
    layers: Callable[[str, Path | None], LayerSymbols] | None = None,
) -> tuple[Entry, ...]:
    r"""The entries of a derivation document (a path or its text), read under its notation.

    ``kind`` is ``markdown`` or ``latex`` (default: from the file's suffix, else markdown);
    ``notation`` a ``--notation`` file (then the document must have no block of its own);
    ``layers`` resolves a notation's ``layer`` to its names (default: the layer's TOML).

    >>> notes = "```toml symderive\nlayer = 'linear'\n```\n$$y = w x + b \\quad \\text{or} \\quad y = w \\otimes x$$"
    >>> entries = read_document(notes)
    >>> [(e.line, e.status, [(k.left, k.right) for k in e.links]) for e in entries][0]
    (4, 'read', [('y', 'w @ x + b')])
    >>> entries[1].status, entries[1].reason
    ('not checked', '\\otimes is not defined: define it in the document or under [notation]: w\\otimes x')
    """
    text, kind, path = load_text(source, kind)
    pieces = split_document(text, kind)
    base = path.parent if path is not None else None
    name = str(path) if path is not None else "the document"
    blocks = _notation_schedule(pieces, text, notation, base, name)
    reader = _DocumentReader(layers or load_layer_symbols)
    entries: list[Entry] = []
    for piece in pieces:
        line = piece.line
        while blocks and blocks[0][0] <= line:
            reader.use(blocks.pop(0)[1])
        if isinstance(piece, Note):
            # with the notation in force, as every entry (the heading names its layer)
            entries.append(reader.note(piece))
        elif isinstance(piece, Display):
            entries.extend(reader.display(piece))
    return tuple(entries)


def _notation_schedule(pieces, text: str, notation, base: Path | None, name: str) -> list[tuple[int, Notation]]:
    """(first line in force, block) for every notation block, in order."""
    inline = [p for p in pieces if isinstance(p, NotationText)]
    if notation is not None:
        if inline:
            raise InputError(
                f"{name} line {inline[0].line - 1}: the document has a notation block and --notation was given too"
            )
        schedule = []
        lines = text.split("\n")
        for at, block in parse_notation_file(Path(notation)):
            if at is None:
                schedule.append((0, block))
                continue
            found = next((i + 1 for i, line in enumerate(lines) if at in line), None)
            if found is None:
                raise InputError(f"{notation}: section from {at!r}: no line of {name} contains it")
            schedule.append((found, block))
        return sorted(schedule, key=lambda pair: pair[0])
    return [(p.line, parse_notation(p.text, p.line, name, base)) for p in inline]


class _DocumentReader:
    """Reads displays in order, keeping the document's definitions and the last chain side."""

    def __init__(self, layers: Callable[[str, Path | None], LayerSymbols]):
        self.layers = layers
        self.meaning = _meaning(Notation(), layers)
        self.operators: dict[str, _Operator] = {}
        self.defined: dict[str, ast.expr] = {}
        self.last_side: ast.expr | Formula | None = None
        self.last_side_line = 0

    def use(self, notation: Notation) -> None:
        self.meaning = _meaning(notation, self.layers)
        self.defined = {}
        self.last_side = None

    def display(self, display: Display) -> list[Entry]:
        latex = display.latex
        for old, new in self.meaning.notation.rewrite:
            latex = latex.replace(old, new)
        try:
            items = parse_structure(latex)
        except StructureError as err:
            self.last_side = None
            return [self._entry(display.line, display.latex.strip(), "not checked", reason=str(err))]
        rows = _rows(_without_spaces(_unwrap_single(items)))
        entries = []
        for row in rows:
            for piece in _side_by_side(row):
                if not piece:
                    continue
                first_line = display.line + piece[0].line - 1
                verbatim = latex[piece[0].start : piece[-1].end].strip()
                entries.append(self._piece_or_too_deep(first_line, display.line, verbatim, piece))
        return entries

    def _piece_or_too_deep(self, line: int, display_line: int, latex: str, items: tuple[Item, ...]) -> Entry:
        # a sum of hundreds of terms is a nested tree to Python's ast: this one entry is not
        # checked, and the rest of the document still is
        try:
            return self._piece(line, display_line, latex, items)
        except RecursionError:
            self.last_side = None
            return self._entry(line, latex, "not checked", reason=_NESTED_TOO_DEEPLY)

    def note(self, piece: Note) -> Entry:
        """A piece of the document that is not read (a display never closed, \\input), not checked."""
        return self._entry(piece.line, piece.latex, "not checked", reason=piece.reason)

    def _entry(self, line: int, latex: str, status: str, **more) -> Entry:
        notation = self.meaning.notation
        return Entry(
            line,
            latex,
            status,
            layer=notation.layer,
            assume=notation.assume,
            notation_line=notation.line,
            base=notation.base,
            intermediates=notation.intermediates,
            functions=tuple(dict.fromkeys(k.strip("\\") for k, _ in notation.functions)),
            **more,
        )

    def _piece(self, line: int, display_line: int, latex: str, items: tuple[Item, ...]) -> Entry:
        try:
            items = _strip_labels(_strip_arrow_text(items))
            sides = _split_top(items, "REL")
            _refuse_other_relations(items)
        except NotRead as err:
            self.last_side = None
            return self._entry(line, latex, "not checked", reason=err.reason)
        if len(sides) == 1:
            self.last_side = None
            return self._entry(line, latex, "not an equation")
        if not sides[-1]:
            sides = sides[:-1]  # a dangling `=`: the next entry continues
        continues = not sides[0]
        reading = _EntryReader(self, display_line)
        links: list[Link] = []
        defines = ""
        values: list[tuple[Value | None, str, str, int]] = []  # value, latex, reason, line
        start = 0
        if continues:
            if self.last_side is None:
                reason = "continues an entry whose last side was not read"
                return self._entry(line, latex, "not checked", reason=reason, links=())
            values.append((self.last_side, "", "", line))
            start = 1
        else:
            definition = reading.definition(sides[0], sides[1] if len(sides) > 1 else ())
            if definition is not None:
                defines, value, link = definition
                links.append(link)
                values.append((value, spell_all(sides[1]), "", line))
                start = 2
        for side in sides[start:]:
            side_line = display_line + side[0].line - 1 if side else line
            try:
                values.append((reading.side(side), spell_all(side), "", side_line))
            except NotRead as err:
                values.append(
                    (None, spell_all(side), err.reason + (f": {err.fragment}" if err.fragment else ""), side_line)
                )
        links.extend(self._links(reading, values, line))
        last_read = next((v for v, *_ in reversed(values) if v is not None), None)
        self.last_side = last_read
        status = _entry_status(links)
        reason = next((k.reason for k in links if k.status == "not checked"), "")
        return self._entry(line, latex, status, links=tuple(links), reason=reason, defines=defines)

    def _links(self, reading: _EntryReader, values, line: int) -> list[Link]:
        """Links between consecutive read sides; an unread side is a `not checked` link and
        the chain goes on from the last side read (so the steps after it are still checked)."""
        links = []
        last_read: Value | None = None
        for k, (value, latex, reason, side_line) in enumerate(values):
            if value is None:
                links.append(Link(side_line, "", "", status="not checked", reason=reason, latex=latex))
            elif last_read is not None:
                links.append(reading.link(last_read, value, side_line if k > 0 else line, latex))
            if value is not None:
                last_read = value
        return links


def _entry_status(links: list[Link]) -> str:
    if not links:
        return "not checked"
    if all(k.status == "definition" for k in links):
        return "definition"
    if all(k.status == "not checked" for k in links):
        return "not checked"
    return "read"


# ---------------------------------------------------------------------------------------
# rows, side-by-side relations, labels


def _without_spaces(items: tuple[Item, ...]) -> tuple[Item, ...]:
    return tuple(
        i for i in items if not (isinstance(i.base, Tok) and i.base.kind == "SPACE" and i.sub is None and i.sup is None)
    )


def _unwrap_single(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """A display that is one ``equation`` environment is its content."""
    core = [i for i in items if not _is_space(i)]
    if (
        len(core) == 1
        and isinstance(core[0].base, Group)
        and core[0].base.kind == "env"
        and core[0].base.opening in SINGLE_ENVIRONMENTS
    ):
        return core[0].base.items
    return items


def _is_space(item: Item) -> bool:
    base = item.base
    return isinstance(base, Tok) and (
        base.kind == "SPACE" or (base.kind == "CMD" and base.text in ("\\quad", "\\qquad"))
    )


def _rows(items: tuple[Item, ...]) -> list[tuple[Item, ...]]:
    """The rows of an align-like display (one row otherwise), with continuation rows joined."""
    core = [i for i in items if not _is_space(i) and not _is_label_command(i)]
    env = next(
        (
            i
            for i in core
            if isinstance(i.base, Group) and i.base.kind == "env" and i.base.opening in ALIGN_ENVIRONMENTS
        ),
        None,
    )
    if env is None:
        return [items]
    rows: list[tuple[Item, ...]] = []
    for raw in _split_top(env.base.items, "NEWROW"):
        row = tuple(i for i in raw if not (isinstance(i.base, Tok) and i.base.kind == "AMP"))
        row = tuple(i for i in row if not _is_label_command(i))
        if not row:
            continue
        first = row[0].base
        if rows and isinstance(first, Tok) and first.kind == "OP" and first.text in "+-":
            rows[-1] = rows[-1] + row  # a long line broken before an operator
        else:
            rows.append(row)
    return rows


def _is_label_command(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "CMD" and item.base.text[1:] in ("nonumber", "notag")


def _split_top(items: tuple[Item, ...], kind: str) -> list[tuple[Item, ...]]:
    parts: list[list[Item]] = [[]]
    for item in items:
        if isinstance(item.base, Tok) and item.base.kind == kind and item.sub is None and item.sup is None:
            parts.append([])
        else:
            parts[-1].append(item)
    return [tuple(p) for p in parts]


def _is_separator(items: tuple[Item, ...], k: int) -> bool:
    item = items[k]
    base = item.base
    if not isinstance(base, Tok) or item.sub is not None or item.sup is not None:
        return False
    if base.kind == "CMD" and base.text in ("\\quad", "\\qquad"):
        return True
    if base.kind == "TEXT" and text_content(base) in ("or", "and", "o", "y", "ou", "et", "oder", "und"):
        return True
    if base.kind == "COMMA":
        return True
    if base.kind == "COLON":
        nxt = items[k + 1] if k + 1 < len(items) else None
        return not (nxt is not None and isinstance(nxt.base, Tok) and nxt.base.kind == "REL")
    return False


def _side_by_side(items: tuple[Item, ...]) -> list[tuple[Item, ...]]:
    """Several relations separated at the top level (``\\quad \\text{or} \\quad``, ``,``, ``:``)."""
    chunks: list[list[Item]] = [[]]
    for k, item in enumerate(items):
        if _is_separator(items, k):
            chunks.append([item])
        else:
            chunks[-1].append(item)
    pieces: list[list[Item]] = []
    carry: list[Item] = []
    for chunk in chunks:
        if _has_relation(chunk):
            pieces.append(carry + _drop_leading_separators(chunk))
            carry = []
        elif pieces:
            pieces[-1].extend(chunk)
        else:
            carry.extend(chunk)
    if carry:
        pieces.append(carry)
    return [tuple(p) for p in pieces]


def _drop_leading_separators(chunk: list[Item]) -> list[Item]:
    k = 0
    while k < len(chunk) and _is_separator(tuple(chunk), k):
        k += 1
    return chunk[k:]


def _has_relation(chunk: list[Item]) -> bool:
    return any(isinstance(i.base, Tok) and i.base.kind == "REL" for i in chunk)


def _strip_labels(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """Without leading/trailing labels (``(2)``, ``\\text{Eq. 3}``, ``\\textcircled{1}``,
    ``\\tag{}``) and trailing punctuation; ``\\boxed{...}`` around everything is opened."""
    items = list(items)
    changed = True
    while changed and items:
        changed = False
        if _is_label_paren(items[0]) or _is_space(items[0]) or _is_text(items[0]) or _is_text_colon(items):
            items.pop(0)
            changed = True
        elif _is_dropped_command(items, 0):
            del items[0:2]
            changed = True
        elif len(items) >= 2 and _is_dropped_command(items, len(items) - 2):
            del items[-2:]
            changed = True
        elif _is_space(items[-1]) or _is_text(items[-1]) or _is_punctuation(items[-1]):
            items.pop()
            changed = True
        elif _is_label_paren(items[-1]) and len(items) >= 2 and (_is_space(items[-2]) or _is_text(items[-2])):
            items.pop()
            changed = True
        elif len(items) == 2 and _is_command(items[0], "boxed") and isinstance(items[1].base, Group):
            items = list(_without_spaces(items[1].base.items))
            changed = True
    return tuple(items)


def _is_label_paren(item: Item) -> bool:
    base = item.base
    if not isinstance(base, Group) or base.kind != "paren" or item.sub is not None or item.sup is not None:
        return False
    inner = base.items
    return bool(inner) and isinstance(inner[0].base, Tok) and inner[0].base.kind == "NUMBER" and len(inner) <= 2


def _is_text(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "TEXT" and item.sub is None and item.sup is None


def _is_text_colon(items: list[Item]) -> bool:
    return len(items) >= 2 and _is_text(items[0]) and isinstance(items[1].base, Tok) and items[1].base.kind == "COLON"


def _is_punctuation(item: Item) -> bool:
    base = item.base
    return isinstance(base, Tok) and ((base.kind == "OP" and base.text in ".?;!") or base.kind in ("COMMA", "COLON"))


def _is_command(item: Item, command: str) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "CMD" and item.base.text == "\\" + command


def _is_dropped_command(items: list[Item], k: int) -> bool:
    return (
        k + 1 < len(items)
        and isinstance(items[k].base, Tok)
        and items[k].base.kind == "CMD"
        and items[k].base.text[1:] in ("tag", "textcircled", "label")
        and isinstance(items[k + 1].base, Group)
    )


def _strip_arrow_text(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """Without a ``\\rightarrow`` or ``\\leftarrow`` and the remark after it."""
    for k, item in enumerate(items):
        if isinstance(item.base, Tok) and item.base.kind == "CMD" and item.base.text[1:] in ARROWS:
            rest = items[k + 1 :]
            if not rest or (_has_text(rest) and not _has_relation(list(rest))):
                return items[:k]
            raise NotRead(f"{item.base.text} between relations is not read", spell_all(items[k:]))
    return items


def _has_text(items) -> bool:
    for item in items:
        base = item.base
        if isinstance(base, Tok) and base.kind == "TEXT":
            return True
        if isinstance(base, Group) and _has_text(base.items):
            return True
    return False


def _refuse_other_relations(items: tuple[Item, ...]) -> None:
    for item in items:
        base = item.base
        if isinstance(base, Tok) and (
            (base.kind == "CMD" and base.text[1:] in OTHER_RELATIONS) or (base.kind == "OP" and base.text in "<>")
        ):
            raise NotRead(f"only equalities are checked ({base.text})", spell_all(items))


# ---------------------------------------------------------------------------------------
# operators defined by the document


@dataclass(frozen=True)
class _Operator:
    """``A op B`` defined by the document at index variables: ``body`` holds the operands as
    holes and their sizes as ``__dim<h>_<axis>__`` names."""

    spelling: str
    indices: tuple[str, ...]
    body: ast.expr


# ---------------------------------------------------------------------------------------
# one entry


@dataclass
class _EntryReader:
    doc: _DocumentReader
    display_line: int
    index_names: set[str] = field(default_factory=set)
    value_letters: set[str] = field(default_factory=set)

    @property
    def meaning(self) -> _Meaning:
        return self.doc.meaning

    @property
    def layer(self) -> LayerSymbols | None:
        return self.doc.meaning.layer

    # -- definitions ------------------------------------------------------------------

    def definition(self, left: tuple[Item, ...], right: tuple[Item, ...]):
        """(defines, right value, link) when ``left = right`` defines something new, else None."""
        if not right:
            return None
        symbol = self._new_symbol(left)
        if symbol is not None:
            spelling, indices = symbol
            try:
                value = self.side(right)
            except NotRead:
                return None
            if isinstance(value, Formula):
                return None
            self.index_names.update(indices)
            self.doc.defined[spelling] = Formula(indices, value) if indices else value
            link = Link(self._line(left), spell_all(left), C.text(value), status="definition")
            return spelling, value, link
        operator = self._new_operator(left)
        if operator is None:
            return None
        spelling, operands, indices = operator
        try:
            value = self.side(right)
        except NotRead:
            return None
        if isinstance(value, Formula):
            return None
        body = self._generalised(value, operands)
        self.doc.operators[spelling] = _Operator(spelling, indices, body)
        shown = f"A {spelling} B"
        link = Link(self._line(left), spell_all(left), C.text(value), status="definition")
        return shown, value, link

    def _line(self, items: tuple[Item, ...]) -> int:
        return self.display_line + items[0].line - 1 if items else self.display_line

    def _new_symbol(self, left: tuple[Item, ...]) -> tuple[str, tuple[str, ...]] | None:
        """(spelling, index names) when ``left`` is a symbol nothing defines yet, possibly read
        at distinct index letters (``\\sigma_n``)."""
        if len(left) == 1:
            item = left[0]
            spelling = spell(item.bare())
        elif len(left) == 2 and _is_accent(left[0]) and isinstance(left[1].base, Group):
            item = left[1]
            spelling = spell(left[0]) + spell(item.bare())
        else:
            return None
        base = left[0].base
        if not isinstance(base, Tok) or base.kind not in ("SYMBOL", "CMD"):
            return None
        if base.kind == "CMD" and base.text[1:] not in GREEK | ACCENTS:
            return None
        if item.sup is not None or item.primes or self._known_spelling(spelling):
            return None
        if item.sub is not None and self._known_spelling(spelling + "_{" + spell_all(item.sub) + "}"):
            return None
        indices: tuple[str, ...] = ()
        if item.sub is not None:
            letters = _without_spaces(item.sub)
            parts = _split_top(letters, "COMMA")
            if len(parts) == 1 and all(_is_letter(i) for i in letters):
                parts = [(i,) for i in letters]
            if not all(len(p) == 1 and _is_letter(p[0]) for p in parts):
                return None
            indices = tuple(_prime_name(spell(p[0]).replace("\\", "")) for p in parts)
            if len(set(indices)) != len(indices):
                return None
        return spelling, indices

    def _known_spelling(self, spelling: str) -> bool:
        m = self.meaning
        if spelling in m.names or spelling in m.sizes or spelling in m.symbols or spelling in self.doc.defined:
            return True
        if spelling in LOSS_SPELLINGS or spelling in m.functions or spelling in m.index_parameters:
            return True
        if m.layer is None:
            return False
        return _identifier(spelling) in m.layer.ranks or _identifier(spelling) in m.layer.sizes

    def _new_operator(self, left: tuple[Item, ...]):
        """(operator spelling, operand claim names, index names) for ``(A op B)(i, j)``."""
        if not left or not isinstance(left[0].base, Group) or left[0].base.kind not in ("paren", "leftright"):
            return None
        inner = _without_spaces(left[0].base.items)
        if len(inner) != 3:
            return None
        spelling = _infix_spelling(inner[1])
        if spelling is None or spelling in self.meaning.infixes or spelling in self.doc.operators:
            return None
        if spelling in ("\\odot", "\\circ", "\\cdot", "\\times"):
            return None
        if left[0].sub is not None and _is_paren_tuple(left[0].sub) and len(left) == 1:
            index_items = left[0].sub[0].base.items
        elif len(left) == 2 and isinstance(left[1].base, Group) and left[1].base.kind in ("paren", "bracket"):
            index_items = left[1].base.items
        else:
            return None
        indices = [spell_all(p) for p in _split_top(index_items, "COMMA")]
        indices = [_prime_name(i) for i in indices]
        if len(set(indices)) != len(indices) or not all(i.isidentifier() for i in indices):
            return None
        operands = []
        for operand in (inner[0], inner[2]):
            try:
                value = self.value((operand,))
            except NotRead:
                return None
            if not isinstance(value, ast.Name) or (self.layer is not None and not self.layer.is_tensor(value.id)):
                return None
            operands.append(value.id)
        if operands[0] == operands[1]:
            return None
        return spelling, operands, tuple(indices)

    def _generalised(self, value: ast.expr, operands: list[str]) -> ast.expr:
        """The definition's right side over holes: its operand tensors and their sizes."""
        mapping: dict[str, ast.expr] = {op: C.name(hole_name(k + 1)) for k, op in enumerate(operands)}
        for k, op in enumerate(operands):
            shape = self.layer.shapes.get(op) if self.layer is not None else None
            for axis, size in enumerate(shape or ()):
                if size.isidentifier() and size not in mapping:
                    mapping[size] = C.name(f"__dim{k + 1}_{axis}__")
        return C.substitute(value, mapping)

    # -- relations ---------------------------------------------------------------------

    def side(self, items: tuple[Item, ...]) -> Value:
        """The claim value of one side of a relation."""
        if not items:
            raise NotRead("an empty side")
        return self.value(items)

    def link(self, left: Value, right: Value, line: int, latex: str) -> Link:
        """The relation ``left == right``, read elementwise where a side is an index formula."""
        try:
            left_tree, right_tree = self._elementwise(left, right)
            left_tree, right_tree = self._whole_left_at_free_indices(left_tree, right_tree)
            if self.meaning.notation.einstein:
                right_tree = self._einstein(right_tree, set(C.free_names(left_tree)))
            self._check_letters(left_tree, right_tree)
            if self.meaning.notation.column_vectors:
                left_tree, right_tree = self._oriented(left_tree, right_tree, latex)
        except NotRead as err:
            return Link(line, "", "", status="not checked", reason=err.reason, latex=err.fragment or latex)
        free = self._free_indices(left_tree, right_tree)
        return Link(
            line, C.text(left_tree), C.text(right_tree), tuple(free), tuple(self._ranges(left_tree, free)), latex=latex
        )

    def _elementwise(self, left: Value, right: Value) -> tuple[ast.expr, ast.expr]:
        formula = left if isinstance(left, Formula) else right if isinstance(right, Formula) else None
        if formula is None:
            return left, right
        taken = C.all_names(left.body if isinstance(left, Formula) else left) | C.all_names(
            right.body if isinstance(right, Formula) else right
        )
        names = []
        for index in formula.indices:
            names.append(index if index not in taken - set(formula.indices) else C.fresh(index, taken))
        where = [C.name(n) for n in names]
        self.index_names.update(names)

        def at(value: Value) -> ast.expr:
            if isinstance(value, Formula):
                return value.at(where)
            if self._is_array(value):
                return C.sub(value, *where)
            raise NotRead("an array given by an index formula equated to a scalar")

        return at(left), at(right)

    def _whole_left_at_free_indices(self, left: ast.expr, right: ast.expr) -> tuple[ast.expr, ast.expr]:
        """``\\hat{Y} = (W \\otimes I)_{(i, j)} + b`` means ``y[i, j] = ...``."""
        if not (isinstance(left, ast.Name) and self._is_array(left)):
            return left, right
        free = [n for n in self._free_indices(right, right)]
        if not free:
            return left, right
        rank = self._rank_of(left)
        if rank is not None and rank != len(free):
            raise NotRead(f"{left.id} has rank {rank} but the right side has free indices {', '.join(free)}")
        return C.sub(left, *(C.name(n) for n in free)), right

    def _einstein(self, tree: ast.expr, excluded: set[str]) -> ast.expr:
        terms = _terms(tree)
        out = None
        for sign, term in terms:
            counts: dict[str, int] = {}
            for read in _reads_outside_sums(term):
                for n in {n for index in C.indices_of(read) for n in C.free_names(index)}:
                    counts[n] = counts.get(n, 0) + 1
            repeated = [n for n, c in counts.items() if c >= 2 and n not in excluded and self._is_index_name(n)]
            if repeated:
                term = C.call("Sum", term, *(C.name(n) for n in repeated))
            piece = C.neg(term) if sign < 0 and out is None else term
            out = piece if out is None else C.binop(out, ast.Sub() if sign < 0 else ast.Add(), term)
        return out

    def _check_letters(self, left: ast.expr, right: ast.expr) -> None:
        if self.layer is None:
            return
        for letter in sorted(self.value_letters):
            if letter not in self.index_names:
                layer = self.meaning.notation.layer
                raise NotRead(
                    f"{letter} is not a name of layer {layer}: map it under [names] or define it in the document"
                )

    def _is_index_name(self, n: str) -> bool:
        return not self._is_named_quantity(n)

    def _is_named_quantity(self, n: str) -> bool:
        m = self.meaning
        if n in m.index_parameters:
            return True
        if n.startswith("__"):
            return True
        if m.layer is not None and (n in m.layer.ranks or n in m.layer.sizes or n in m.layer.constants):
            return True
        if n in {v.id for v in m.sizes.values() if isinstance(v, ast.Name)}:
            return True
        if n in m.names.values() or n == "g" or n == "L":
            return True
        if m.layer is not None and n.startswith("d") and n[1:] in m.layer.ranks:
            return True
        if m.layer is None and n in self._tensor_names_seen:
            return True
        return False

    @property
    def _tensor_names_seen(self) -> set[str]:
        return self.__dict__.setdefault("_seen", set())

    def _free_indices(self, left: ast.expr, right: ast.expr) -> list[str]:
        """The index variables free in either side (in an index position, or a letter read as
        an index value), sizes and index parameters excluded."""
        in_left = C.index_position_names(left)
        names = in_left + [n for n in C.index_position_names(right) if n not in in_left]
        letters = [n for n in C.free_names(left) + C.free_names(right) if n in self.value_letters]
        names += [n for n in letters if n not in names]
        return [n for n in names if not self._is_size_or_parameter(n)]

    def _is_size_or_parameter(self, n: str) -> bool:
        m = self.meaning
        sizes = {v.id for v in m.sizes.values() if isinstance(v, ast.Name)}
        return (
            n in m.index_parameters or n in sizes or n.startswith("__") or (m.layer is not None and n in m.layer.sizes)
        )

    def _ranges(self, left: ast.expr, free: list[str]):
        out = []
        for node in ast.walk(left):
            if isinstance(node, ast.Subscript):
                base = C.text(node.value)
                for axis, index in enumerate(C.indices_of(node)):
                    if isinstance(index, ast.Name) and index.id in free and (index.id, base, axis) not in out:
                        out.append((index.id, base, axis))
        return out

    # -- values ------------------------------------------------------------------------

    def value(self, items: tuple[Item, ...]) -> Value:
        """The claim value of a sequence of items (a sum of signed product terms)."""
        items = _without_spaces(tuple(i for i in items if not _is_space(i)))
        if not items:
            raise NotRead("an empty expression")
        terms: list[tuple[int, list[Item]]] = []
        sign = 1
        current: list[Item] = []
        for item in items:
            base = item.base
            if (
                isinstance(base, Tok)
                and base.kind == "OP"
                and base.text in "+-"
                and item.sub is None
                and item.sup is None
            ):
                if current:
                    terms.append((sign, current))
                    current = []
                    sign = 1
                sign = -sign if base.text == "-" else sign
            elif isinstance(base, Tok) and base.kind == "CMD" and base.text in ("\\pm", "\\mp"):
                raise NotRead(f"{base.text} is not read", spell_all(items))
            else:
                current.append(item)
        if not current:
            raise NotRead("an expression ending in an operator", spell_all(items))
        terms.append((sign, current))
        out: Value | None = None
        for sign, term in terms:
            value = self.product(tuple(term))
            if isinstance(value, Formula):
                if len(terms) != 1 or sign < 0:
                    raise NotRead("an array given by an index formula inside a sum is not read", spell_all(items))
                return value
            if out is None:
                out = C.neg(value) if sign < 0 else value
            else:
                out = C.binop(out, ast.Sub() if sign < 0 else ast.Add(), value)
        return out

    def product(self, items: tuple[Item, ...]) -> Value:
        """A product term: factors joined by juxtaposition, ``\\cdot``, ``/``, infix operators;
        a sum sign or ``\\frac{\\partial}{\\partial B}`` takes the rest of the term."""
        factors: list[Value] = []
        joins: list[str] = []
        pos = 0
        pending = "juxt"
        while pos < len(items):
            item = items[pos]
            base = item.base
            if isinstance(base, Tok) and base.kind == "CMD" and base.text in ("\\cdot", "\\times") and item.sub is None:
                pending = "cdot"
                pos += 1
                continue
            if isinstance(base, Tok) and base.kind == "CMD" and base.text in ("\\odot", "\\circ") and item.sub is None:
                pending = "elementwise"
                pos += 1
                continue
            if isinstance(base, Tok) and base.kind == "OP" and base.text == "/" and item.sub is None:
                pending = "div"
                pos += 1
                continue
            infix = _infix_spelling(item)
            if infix is not None and infix not in ("\\cdot", "\\times", "\\odot", "\\circ"):
                pending = "infix:" + infix
                pos += 1
                continue
            if _is_command(item, "sum"):
                factors.append(self._sum(items, pos))
                joins.append(pending)
                break
            if _is_command(item, "prod"):
                raise NotRead("products \\prod are not read", spell_all(items[pos:]))
            derivative = self._derivative_operator(items, pos)
            if derivative is not None:
                factors.append(derivative)
                joins.append(pending)
                break
            inline = self._inline_derivative(items, pos)
            if inline is not None:
                value, pos = inline
            else:
                value, pos = self.atom(items, pos)
            factors.append(value)
            joins.append(pending)
            pending = "juxt"
        if pending != "juxt":
            raise NotRead("an expression ending in an operator", spell_all(items))
        return self._combine(factors, joins, items)

    def _combine(self, factors: list[Value], joins: list[str], items) -> Value:
        # infix operators bind their neighbours first
        k = 1
        while k < len(factors):
            if joins[k].startswith("infix:"):
                factors[k - 1 : k + 1] = [self._apply_infix(joins[k][6:], factors[k - 1], factors[k], items)]
                del joins[k]
            else:
                k += 1
        out = factors[0]
        for join, factor in zip(joins[1:], factors[1:], strict=True):
            if isinstance(out, Formula) or isinstance(factor, Formula):
                raise NotRead("an array given by an index formula inside a product is not read", spell_all(items))
            if join == "div":
                out = C.binop(out, ast.Div(), factor)
            elif join == "elementwise":
                out = C.binop(out, ast.Mult(), factor)
            elif self._is_array(out) and self._is_array(factor):
                if _is_whole_derivative(out) or _is_whole_derivative(factor):
                    raise NotRead(
                        "a product of whole-tensor derivatives (the chain rule with Jacobians) is not read: write it with indices",
                        spell_all(items),
                    )
                out = self._array_product(out, factor, items)
            else:
                out = C.binop(out, ast.Mult(), factor)
        return out

    def _array_product(self, left: ast.expr, right: ast.expr, items) -> ast.expr:
        """Two arrays side by side (or joined by ``\\cdot``): NumPy's ``@``, or under column
        vectors what the orientations make of it (an outer product, a dot product, ...)."""
        if not self.meaning.notation.column_vectors:
            return C.binop(left, ast.MatMult(), right)
        try:
            return columns.product(left, right, self._columns_scope())
        except columns.OrientationError as err:
            raise NotRead(str(err), spell_all(items)) from None
        except RecursionError:
            raise NotRead(_TOO_DEEP, spell_all(items)) from None

    def _oriented(self, left: ast.expr, right: ast.expr, latex: str) -> tuple[ast.expr, ast.expr]:
        """The sides of a relation under column vectors: every sum and product of arrays
        matches, and a row equated to a column keeps its shape (1, n) against (n, 1)."""
        try:
            return columns.comparable(left, right, self._columns_scope())
        except columns.OrientationError as err:
            raise NotRead(str(err), latex) from None
        except RecursionError:
            raise NotRead(_TOO_DEEP, latex) from None

    def _columns_scope(self) -> columns.Scope:
        """Ranks of claim names (0 for scalars: sizes, indices, the loss; a closed-form output
        or intermediate's from its formula) and the declared elementwise functions, for
        reading under column vectors."""
        scope = self.__dict__.get("_columns")
        if scope is not None:
            return scope
        layer = self.layer
        declared = {*self.meaning.functions.values(), *(layer.functions if layer is not None else ())}
        functions = frozenset({derivative_name(f, k) for f in declared for k in range(1, MAX_ORDER + 1)} | declared)
        formulas = dict(layer.formulas if layer is not None else ()) | dict(self.meaning.notation.intermediates)
        inferred: dict[str, int | None] = {}

        def rank(name: str) -> int | None:
            value = C.name(name)
            known = self._rank_of(value)
            if known is not None:
                return known
            if not (self._is_array(value) or (layer is not None and layer.is_tensor(name))):
                return 0
            # g is the output's gradient and dX the gradient of X: each has its tensor's shape
            if layer is not None and name == "g":
                name = layer.output
            elif layer is not None and name.startswith("d") and layer.is_tensor(name[1:]):
                name = name[1:]
            if name not in inferred and name in formulas:
                inferred[name] = None  # a formula that names itself stays unknown
                inferred[name] = _formula_rank(formulas[name], scope)
            return inferred.get(name, self._rank_of(C.name(name)))

        scope = self.__dict__["_columns"] = columns.Scope(rank, functions)
        return scope

    def _apply_infix(self, spelling: str, left: Value, right: Value, items) -> Value:
        where = None
        if isinstance(left, ast.Subscript) and isinstance(right, ast.Subscript) and C.same(left.slice, right.slice):
            if self._is_array(left.value) and self._is_array(right.value):
                where = C.indices_of(left)
                left, right = left.value, right.value
        result = self._operate(spelling, [left, right], items)
        if where is not None:
            return self._read_at(result, where)
        return result

    def _operate(self, spelling: str, operands: list[Value], items) -> Value:
        pattern = self.meaning.infixes.get(spelling)
        if pattern is not None:
            return self._instantiate(pattern.value, pattern.indices, operands)
        operator = self.doc.operators.get(spelling)
        if operator is not None:
            body = self._with_dimensions(operator.body, operands)
            return self._instantiate(body, operator.indices, operands)
        raise NotRead(f"{spelling} is not defined: define it in the document or under [notation]", spell_all(items))

    def _instantiate(self, body: ast.expr, indices: tuple[str, ...] | None, operands: list[Value]) -> Value:
        value = _fill_holes(body, operands)
        if indices is None:
            if isinstance(value, Formula):
                raise NotRead("an index formula used where a closed form is needed")
            return value
        return Formula(indices, value)

    def _with_dimensions(self, body: ast.expr, operands: list[Value]) -> ast.expr:
        """The operator body with each operand's sizes; an unknown size leaves its sum's
        bound to where the operand's reads are in range."""
        dims = {n for n in C.all_names(body) if n.startswith("__dim")}
        mapping: dict[str, ast.expr] = {}
        for dim in sorted(dims):
            hole, axis = dim[5:-2].split("_")
            shape = self._shape_of(operands[int(hole) - 1])
            if shape is not None and int(axis) < len(shape):
                mapping[dim] = shape[int(axis)]
        body = C.substitute(body, mapping)
        remaining = {n for n in C.all_names(body) if n.startswith("__dim")}
        if remaining:
            body = _unbound_by_dimensions(body, remaining)
        return body

    def _shape_of(self, value: Value) -> list[ast.expr] | None:
        if self.layer is None or isinstance(value, Formula):
            return None
        if isinstance(value, ast.Name):
            n = value.id
            tensor = self.layer.output if n == "g" else n[1:] if n.startswith("d") and n[1:] in self.layer.ranks else n
            shape = self.layer.shapes.get(tensor)
            return [ast.parse(s, mode="eval").body for s in shape] if shape is not None else None
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "flip"
            and len(value.args) == 1
        ):
            return self._shape_of(value.args[0])
        return None

    def _read_at(self, value: Value, where: list[ast.expr]) -> ast.expr:
        if isinstance(value, Formula):
            return value.at(where)
        return C.sub(value, *where)

    # -- sums and derivatives -----------------------------------------------------------

    def _sum(self, items: tuple[Item, ...], pos: int) -> ast.expr:
        item = items[pos]
        rest = pos + 1
        sub, sup = item.sub, item.sup
        while (
            rest < len(items)
            and _is_command(items[rest], "limits")
            or (rest < len(items) and _is_command(items[rest], "nolimits"))
        ):
            sub, sup = items[rest].sub or sub, items[rest].sup or sup
            rest += 1
        if rest >= len(items):
            raise NotRead("a sum sign without a body", spell_all(items[pos:]))
        variables, guards = self._sum_range(sub, sup, items[pos:])
        body = self.product(items[rest:])
        if isinstance(body, Formula):
            raise NotRead("an array given by an index formula inside a sum is not read", spell_all(items[pos:]))
        inner: list[ast.expr] = []
        if C.is_sum(body):  # \sum_i \sum_j ... is one Sum over i and j
            body, inner = body.args[0], body.args[1:]
        for guard in guards:
            body = C.binop(body, ast.Mult(), guard)
        return C.call("Sum", body, *variables, *inner)

    def _sum_range(self, sub, sup, items) -> tuple[list[ast.expr], list[ast.expr]]:
        if sub is None:
            raise NotRead("a sum without its index", spell_all(items))
        parts = _split_top(_without_spaces(sub), "COMMA")
        neq = [k for k, i in enumerate(sub) if _is_command(i, "neq") or _is_command(i, "ne")]
        if neq:
            if len(parts) != 1 or sup is not None:
                raise NotRead("a sum with an exclusion and other bounds is not read", spell_all(items))
            var = self._index_variable(sub[: neq[0]])
            other = self.index_expr(sub[neq[0] + 1 :])
            return [C.name(var)], [C.binop(C.const(1), ast.Sub(), C.delta(C.name(var), other))]
        rels = [k for k, i in enumerate(parts[0]) if isinstance(i.base, Tok) and i.base.kind == "REL"]
        if rels:
            if len(parts) != 1:
                raise NotRead(
                    "a sum over several indices with bounds is not read: write one sum per index", spell_all(items)
                )
            var = self._index_variable(parts[0][: rels[0]])
            low = self.index_expr(parts[0][rels[0] + 1 :])
            if sup is None:
                guard = ast.Compare(C.name(var), [ast.GtE()], [low])
                return [C.name(var)], [guard]
            high = self.index_expr(sup)
            return [ast.Tuple([C.name(var), low, high], ast.Load())], []
        if sup is not None:
            raise NotRead("a sum with an upper bound and no lower bound", spell_all(items))
        variables = [C.name(self._index_variable(p)) for p in parts]
        if len(parts) == 1 and len(parts[0]) > 1 and all(_is_letter(i) for i in parts[0]):
            variables = [C.name(self._index_variable((i,))) for i in parts[0]]
        return variables, []

    def _index_variable(self, items) -> str:
        items = _without_spaces(tuple(items))
        if len(items) != 1 or not _is_letter(items[0]):
            raise NotRead("a summation index must be one letter", spell_all(items))
        var = _prime_name(spell(items[0]).replace("\\", ""))
        self.index_names.add(var)
        return var

    def _derivative_operator(self, items: tuple[Item, ...], pos: int) -> ast.expr | None:
        """``\\frac{\\partial}{\\partial B}`` applied to the rest of the product term."""
        item = items[pos]
        if not _is_fraction(item) or pos + 2 >= len(items):
            return None
        numerator, denominator = items[pos + 1], items[pos + 2]
        num = _group_items(numerator)
        if num is None or len(num) != 1 or not _is_differential(num[0]):
            return None
        if num[0].sup is not None:
            raise NotRead("higher derivatives are not read", spell_all(items[pos:]))
        wrt = self._wrt(_group_items(denominator) or (), items[pos:])
        rest = items[pos + 3 :]
        if not rest:
            raise NotRead("a derivative operator without an operand", spell_all(items[pos:]))
        operand = self.product(rest)
        return self._derivative(operand, wrt)

    def _inline_derivative(self, items: tuple[Item, ...], pos: int):
        """``\\partial A / \\partial B``."""
        if not _is_differential(items[pos]) or not _is_command(items[pos], "partial"):
            return None
        slash = next(
            (
                k
                for k in range(pos + 1, len(items))
                if isinstance(items[k].base, Tok) and items[k].base.kind == "OP" and items[k].base.text == "/"
            ),
            None,
        )
        if slash is None or slash + 2 > len(items) or not _is_command(items[slash + 1], "partial"):
            raise NotRead("a \\partial outside a derivative", spell_all(items[pos:]))
        of = self.value(items[pos + 1 : slash])
        end = slash + 3
        while (
            end < len(items)
            and isinstance(items[end].base, Group)
            and items[end].base.kind in ("paren", "bracket")
            and end == slash + 3
        ):
            end += 1
        wrt = self._wrt(items[slash + 1 : end], items[pos:end])
        return self._derivative(of, wrt), end

    def _wrt(self, items, context) -> ast.expr:
        items = _without_spaces(tuple(items))
        if not items or not _is_differential(items[0]):
            raise NotRead("a derivative's denominator must be \\partial B or dB", spell_all(context))
        if items[0].sup is not None:
            raise NotRead("higher derivatives are not read", spell_all(context))
        rest = items[1:]
        if not rest and isinstance(items[0].base, Tok) and items[0].base.kind == "SYMBOL" and items[0].sub is not None:
            raise NotRead("a derivative's denominator must be \\partial B or dB", spell_all(context))
        wrt = self.value(rest)
        target = wrt.value if isinstance(wrt, ast.Subscript) else wrt
        if not isinstance(target, ast.Name) or (self.layer is not None and not self.layer.is_tensor(target.id)):
            raise NotRead(
                "a derivative with respect to something that is not a tensor or intermediate of the layer",
                spell_all(context),
            )
        return wrt

    def _derivative(self, of: Value, wrt: ast.expr) -> ast.expr:
        if isinstance(of, Formula):
            raise NotRead("the derivative of an array given by an index formula is not read")
        target = wrt.value if isinstance(wrt, ast.Subscript) else wrt
        if isinstance(of, ast.Name) and of.id == "L":
            tensor = target.id
            if self.layer is not None and tensor == self.layer.output and not self.layer.is_loss:
                gradient = "g"
            elif self.layer is not None and tensor in self.layer.intermediates:
                return C.call("diff", of, wrt)
            else:
                gradient = "d" + tensor
            return C.sub(C.name(gradient), *C.indices_of(wrt)) if isinstance(wrt, ast.Subscript) else C.name(gradient)
        return C.call("diff", of, wrt)

    # -- atoms ----------------------------------------------------------------------------

    def atom(self, items: tuple[Item, ...], pos: int) -> tuple[Value, int]:
        """One factor starting at ``pos`` and the position after it."""
        decorated = self._decoration(items, pos)
        if decorated is not None:
            return decorated
        item = items[pos]
        base = item.base
        if isinstance(base, Group):
            return self._group_atom(items, pos)
        if base.kind == "NUMBER":
            number = float(base.text) if "." in base.text else int(base.text)
            return self._scripted(C.const(number), item, items), pos + 1
        if base.kind == "OP" and base.text == "." and pos + 1 < len(items) and _is_dot(items[pos + 1]):
            raise NotRead("a schematic expression (...) is not checked", spell_all(items))
        if base.kind == "HOLE":
            raise NotRead("#1 is only allowed in [notation] patterns")
        if base.kind == "CMD":
            return self._command_atom(items, pos)
        if base.kind in ("SYMBOL", "TEXT"):
            return self._name_atom(items, pos)
        raise NotRead(f"unexpected {base.text!r}", spell_all(items[pos:]))

    def _group_atom(self, items, pos) -> tuple[Value, int]:
        item = items[pos]
        group = item.base
        if group.kind == "env":
            return self._scripted(self._environment(group), item, items), pos + 1
        if group.kind == "leftright" and group.opening in ("|", "\\|", "\\lvert", "\\lVert"):
            raise NotRead("absolute values and norms are not read", spell(item))
        inner = self.value(group.items)
        pos += 1
        if item.sub is not None:
            if _is_paren_tuple(item.sub):
                inner = self._read_at(inner, self._index_list(item.sub[0].base.items, None))
                item = Item(item.base, None, item.sup, item.primes)
            else:  # (W^T g)_i, (g x^T)_{ij}: an element of the bracket's array
                rank = len(inner.indices) if isinstance(inner, Formula) else None
                inner = self._read_at(inner, self._index_list(item.sub, rank))
                item = Item(item.base, None, item.sup, item.primes)
        elif pos < len(items) and isinstance(items[pos].base, Group) and items[pos].base.kind in ("paren", "bracket"):
            if isinstance(inner, Formula) or self._is_array(inner):
                read = items[pos]
                inner = self._read_at(inner, self._index_list(read.base.items, None))
                pos += 1
                item = read
        if isinstance(inner, Formula):
            if item.sup is not None or item.primes:
                raise NotRead("a script on an array given by an index formula is not read", spell(item))
            return inner, pos
        return self._scripted(inner, item, items), pos

    def _command_atom(self, items, pos) -> tuple[Value, int]:
        item = items[pos]
        command = item.base.text[1:]
        if command in SCHEMATIC:
            raise NotRead("a schematic expression (\\dots) is not checked", spell_all(items))
        if command in TRANSPARENT:
            if pos + 1 >= len(items):
                raise NotRead(f"\\{command} without an operand")
            return self.atom(items, pos + 1)
        if command in DROPPED_WITH_ARGUMENT:
            raise NotRead(f"\\{command} inside an expression is not read", spell_all(items[pos:]))
        if command in ("boxed", "underbrace", "overbrace", "underline"):
            group = _group_items(items[pos + 1]) if pos + 1 < len(items) else None
            if group is None:
                raise NotRead(f"\\{command} without its argument")
            inner_item = items[pos + 1]
            value = self.value(group)
            if command == "boxed":
                return self._scripted(
                    value, Item(inner_item.base, None, inner_item.sup, inner_item.primes), items
                ), pos + 2
            return value, pos + 2
        if command in ("frac", "dfrac", "tfrac"):
            return self._fraction(items, pos)
        if command in COMMAND_FUNCTIONS:
            return self._function(COMMAND_FUNCTIONS[command], items, pos, pos + 1)
        if command == "delta" and "\\delta" not in self.meaning.names:
            return self._kronecker(item), pos + 1
        if command in ("mathbb", "mathbf") and pos + 1 < len(items):
            group = _group_items(items[pos + 1])
            if group is not None and spell_all(group) == "1":
                return self._indicator_or_ones(items, pos)
        if command in GREEK or command in ACCENTS:
            return self._name_atom(items, pos)
        if command == "partial":
            raise NotRead("a \\partial outside a derivative", spell_all(items[pos:]))
        if command in ("max", "min") and item.sub is not None and item.sup is None and pos + 1 < len(items):
            return self._extremum(command, items, pos)
        if command in ("max", "min", "arg", "argmax", "argmin", "lim", "int", "nabla"):
            raise NotRead(f"\\{command} is not read", spell_all(items[pos:]))
        raise NotRead(f"unknown macro \\{command}: give its meaning under [notation]", spell_all(items[pos:]))

    def _extremum(self, command: str, items, pos) -> tuple[Value, int]:
        """``\\max_j x[i, j]``: the largest (smallest) element of a tensor along the axis the
        index j reads (j in one index position, alone, and nowhere else): ``amax(x, axis=1)[i]``.
        Anything else under \\max is not read."""
        item = items[pos]
        fragment = spell_all(items[pos:])
        var = self._index_variable(item.sub)
        # like \\sum, \\max applies to the rest of its product term (\\max_i w_{ji} x_i is the
        # largest product, never amax(w) times x_i)
        value, end = self.product(items[pos + 1 :]), len(items)
        if not (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)):
            raise NotRead(f"\\{command} is read only over one index of one tensor read (\\max_j x_{{ij}})", fragment)
        indices = C.indices_of(value)
        at = [k for k, index in enumerate(indices) if isinstance(index, ast.Name) and index.id == var]
        others = [index for k, index in enumerate(indices) if k not in at]
        if len(at) != 1 or any(var in {n.id for n in ast.walk(i) if isinstance(n, ast.Name)} for i in others):
            raise NotRead(f"\\{command}_{var} needs {var} alone in exactly one index of the read", fragment)
        reduced = ast.Call(
            ast.Name("amax" if command == "max" else "amin", ast.Load()),
            [value.value],
            [ast.keyword("axis", C.const(at[0]))],
        )
        return (C.sub(reduced, *others) if others else reduced), end

    def _fraction(self, items, pos) -> tuple[Value, int]:
        if pos + 2 >= len(items):
            raise NotRead("\\frac without its two arguments", spell_all(items[pos:]))
        num, den = _group_items(items[pos + 1]), _group_items(items[pos + 2])
        if num is None or den is None:
            num = num or (items[pos + 1],)
            den = den or (items[pos + 2],)
        num, den = _without_spaces(num), _without_spaces(den)
        if num and _is_differential(num[0]) and (len(num) > 1 or num[0].sup is not None):
            if num[0].sup is not None:
                raise NotRead("higher derivatives are not read", spell_all(items[pos : pos + 3]))
            value = self._derivative(self.value(num[1:]), self._wrt(den, items[pos : pos + 3]))
        else:
            value = C.binop(self._paren(self.value(num)), ast.Div(), self._paren(self.value(den)))
        return self._scripted(value, items[pos + 2], items), pos + 3

    @staticmethod
    def _paren(value: Value) -> ast.expr:
        if isinstance(value, Formula):
            raise NotRead("an array given by an index formula inside a fraction is not read")
        return value

    def _function(self, function: str, items, pos, arg_pos) -> tuple[Value, int]:
        head = items[pos]
        primes = head.primes + (1 if head.sup is not None and _is_prime_sup(head.sup) else 0)
        if primes:
            # f' and f'' are the derivatives of a function declared under [functions]; any other
            # prime (\exp', f''' or a prime on a built-in) is said, never dropped
            layer = self.meaning.layer
            declared = {*self.meaning.functions.values(), *(layer.functions if layer is not None else ())}
            if primes > MAX_ORDER or function not in declared:
                raise NotRead(
                    f"a prime on a function is read at most {MAX_ORDER} times, on a function declared under [functions]",
                    spell_all(items[pos:]),
                )
            function = derivative_name(function, primes)
            head = Item(head.base, head.sub, None, 0, head.line, head.start, head.end)
        if head.sup is not None and function != "sqrt":
            raise NotRead(f"a power of \\{function} is not read", spell_all(items[pos:]))
        if arg_pos >= len(items):
            raise NotRead(f"{function} without an argument", spell_all(items[pos:]))
        arg_item = items[arg_pos]
        if function == "sqrt":
            if isinstance(arg_item.base, Group) and arg_item.base.kind == "bracket":
                raise NotRead("roots other than square roots are not read", spell_all(items[pos:]))
            group = _group_items(arg_item)
            argument = self.value(group) if group is not None else self.atom(items, arg_pos)[0]
            return self._scripted(
                C.call("sqrt", self._paren(argument)), Item(arg_item.base, None, arg_item.sup), items
            ), arg_pos + 1
        if isinstance(arg_item.base, Group) and arg_item.base.kind in ("paren", "bracket", "leftright", "group"):
            argument = self.value(arg_item.base.items)
            value = C.call(function, self._paren(argument))
            if arg_item.sub is not None:
                raise NotRead("a subscript after a function's argument is not read", spell(arg_item))
            return self._scripted(value, Item(arg_item.base, None, arg_item.sup, arg_item.primes), items), arg_pos + 1
        if _is_command(arg_item, "sum"):  # \log \sum_j ...: the sum is the argument
            return C.call(function, self._sum(items, arg_pos)), len(items)
        argument, end = self.atom(items, arg_pos)
        return C.call(function, self._paren(argument)), end

    def _kronecker(self, item: Item) -> ast.expr:
        if item.sub is not None and item.sup is not None:
            return C.delta(self.index_expr(item.sup), self.index_expr(item.sub))
        if item.sub is None:
            raise NotRead("\\delta without indices", spell(item))
        parts = _split_top(_without_spaces(item.sub), "COMMA")
        if len(parts) == 1 and len(parts[0]) == 2 and all(_is_letter(i) for i in parts[0]):
            parts = [(parts[0][0],), (parts[0][1],)]
        if len(parts) != 2:
            raise NotRead("a Kronecker delta needs two indices", spell(item))
        return C.delta(self.index_expr(parts[0]), self.index_expr(parts[1]))

    def _indicator_or_ones(self, items, pos) -> tuple[Value, int]:
        command = items[pos].base.text
        holder = items[pos + 1]
        if command == "\\mathbf" and holder.sub is None:
            raise NotRead("a ones vector \\mathbf{1} is not read: its length is not known here", spell_all(items[pos:]))
        if holder.sub is not None:
            return self.condition(holder.sub), pos + 2
        if (
            pos + 2 < len(items)
            and isinstance(items[pos + 2].base, Group)
            and items[pos + 2].base.kind in ("paren", "leftright", "bracket")
        ):
            return self.condition(items[pos + 2].base.items), pos + 3
        raise NotRead("an indicator \\mathbb{1} without its condition", spell_all(items[pos:]))

    def condition(self, items) -> ast.expr:
        """A 0/1 claim value for a condition (``a = k``, ``a \\neq k``, ``x > 0``)."""
        items = _without_spaces(tuple(items))
        for k, item in enumerate(items):
            base = item.base
            if not isinstance(base, Tok):
                continue
            left, right = items[:k], items[k + 1 :]
            if base.kind == "REL":
                try:
                    return C.delta(self.index_expr(left), self.index_expr(right))
                except NotRead:
                    if base.text != "=":
                        raise
                # an equality of values (x_{ij} = y_i, where the maximum sits): both <= and >=
                a, b = self._paren(self.value(left)), self._paren(self.value(right))
                return C.binop(
                    ast.Compare(a, [ast.GtE()], [b]),
                    ast.Mult(),
                    ast.Compare(copy.deepcopy(a), [ast.LtE()], [copy.deepcopy(b)]),
                )
            if base.kind == "CMD" and base.text in ("\\neq", "\\ne"):
                return C.binop(C.const(1), ast.Sub(), C.delta(self.index_expr(left), self.index_expr(right)))
            ops = {
                "<": ast.Lt(),
                ">": ast.Gt(),
                "\\leq": ast.LtE(),
                "\\le": ast.LtE(),
                "\\geq": ast.GtE(),
                "\\ge": ast.GtE(),
            }
            if base.text in ops and base.kind in ("OP", "CMD"):
                return ast.Compare(self._paren(self.value(left)), [ops[base.text]], [self._paren(self.value(right))])
        raise NotRead("a condition that is not a comparison", spell_all(items))

    def _environment(self, group: Group) -> ast.expr:
        if group.opening != "cases":
            raise NotRead(f"the environment {group.opening} is not read inside an expression", spell(group))
        rows = [r for r in _split_top(group.items, "NEWROW") if _without_spaces(r)]
        branches: list[tuple[ast.expr | None, ast.expr]] = []
        for row in rows:
            cells = [_without_spaces(c) for c in _split_top(_without_spaces(row), "AMP")]
            cells = [c for c in cells if c]
            cond_cell = next((c for c in cells if _starts_with_condition_word(c)), None)
            if cond_cell is None and len(cells) == 2:
                cond_cell = cells[1]
            if cond_cell is None:
                raise NotRead("a row of cases without a condition", spell_all(row))
            value_cells = [c for c in cells if c is not cond_cell]
            if len(value_cells) != 1:
                raise NotRead("a row of cases that is not a value and a condition", spell_all(row))
            branches.append((self._case_condition(cond_cell), self._paren(self.value(value_cells[0]))))
        out: ast.expr | None = None
        for cond, value in reversed(branches):
            if cond is None:
                if out is not None:
                    raise NotRead("an otherwise row that is not the last", spell(group))
                out = value
                continue
            rest = out if out is not None else C.const(0)
            out = C.binop(
                C.binop(cond, ast.Mult(), value),
                ast.Add(),
                C.binop(C.binop(C.const(1), ast.Sub(), cond), ast.Mult(), rest),
            )
            out = _simplified_cases(out, cond, value, rest)
        return out

    def _case_condition(self, cell) -> ast.expr | None:
        first = cell[0].base
        words = text_content(first).lower().rstrip(",") if isinstance(first, Tok) and first.kind == "TEXT" else ""
        if words in ("otherwise", "else", "en otro caso", "si no", "sinon", "sonst", "in other cases"):
            return None
        if words in ("if", "si", "when", "for", "wenn", "falls", "cuando"):
            cell = cell[1:]
        return self.condition(cell)

    # -- names, reads, scripts ------------------------------------------------------------

    def _decoration(self, items, pos) -> tuple[Value, int] | None:
        for pattern in self.meaning.decorations:
            n = len(pattern.items)
            bindings = _match(pattern.items, items[pos : pos + n])
            if bindings is None:
                continue
            operands = [self.value(bindings[k]) for k in sorted(bindings)]
            where = None
            if len(operands) == 1 and isinstance(operands[0], ast.Subscript) and self._is_array(operands[0].value):
                where = C.indices_of(operands[0])
                operands = [operands[0].value]
            result = self._instantiate(pattern.value, pattern.indices, operands)
            if where is not None:
                result = self._read_at(result, where)
            end = pos + n
            if (
                end < len(items)
                and isinstance(items[end].base, Group)
                and items[end].base.kind in ("paren", "bracket")
                and isinstance(result, Formula | ast.expr)
                and (isinstance(result, Formula) or self._is_array(result))
                and where is None
            ):
                result = self._read_at(result, self._index_list(items[end].base.items, None))
                end += 1
            return result, end
        return None

    def _name_atom(self, items, pos) -> tuple[Value, int]:
        item = items[pos]
        end = pos + 1
        if (
            _is_accent(item)
            and pos + 1 < len(items)
            and isinstance(items[pos + 1].base, Group)
            and items[pos + 1].base.kind == "group"
        ):
            holder = items[pos + 1]
            spelling = spell(item) + spell(holder.bare())
            item = Item(Tok("NAME", spelling), holder.sub, holder.sup, holder.primes, holder.line)
            end = pos + 2
        else:
            spelling = spell(item.bare())
        if isinstance(item.base, Tok) and item.base.kind == "TEXT":
            word = text_content(item.base)
            if word in ("d",):
                raise NotRead("a differential d outside a derivative", spell_all(items[pos:]))
            if word in CLAIM_FUNCTIONS:
                return self._function(word, items, pos, end)
            spelling = word if word.isidentifier() else spelling
        if spelling == "e" and item.sup is not None and "e" not in self.meaning.names and "e" not in self.doc.defined:
            exponent = self.value(item.sup)
            return C.call("exp", self._paren(exponent)), end
        full = spelling + ("_{" + spell_all(item.sub) + "}" if item.sub is not None else "")
        m = self.meaning
        if item.sub is not None and (
            full in m.symbols or full in self.doc.defined or full in m.names or full in m.sizes
        ):
            value, kind = self._named(full)
            item = Item(item.base, None, item.sup, item.primes)
        else:
            value, kind = self._named(spelling)
        if kind == "function":
            return self._function(value.id, items, pos, end)
        if kind in ("tensor", "symbol"):
            value, item, end = self._reads(value, item, items, end)
        elif item.sub is not None and kind == "index" and value.id in self.value_letters:
            layer = self.meaning.notation.layer
            raise NotRead(
                f"{spelling} is not a name of layer {layer}: map it under [names] or define it in the document",
                spell(item),
            )
        elif item.sub is not None:
            raise NotRead(f"a subscript on {spelling}, which is not a tensor", spell(item))
        return self._scripted(value, item, items), end

    def _named(self, spelling: str) -> tuple[ast.expr, str]:
        m = self.meaning
        layer = m.layer
        if spelling in self.doc.defined:
            return self.doc.defined[spelling], "symbol"
        if spelling in m.symbols:
            return m.symbols[spelling], "symbol"
        if spelling in m.names:
            target = m.names[spelling]
            if target in m.sizes and (layer is None or not layer.is_tensor(target)):
                return C.name(target), "size"
            return C.name(target), "tensor"
        if spelling in m.functions:
            return C.name(m.functions[spelling]), "function"
        identifier = _identifier(spelling)
        if layer is not None and identifier in layer.functions:
            return C.name(identifier), "function"
        if spelling in LOSS_SPELLINGS and (layer is None or layer.is_loss or not layer.is_tensor(identifier)):
            return C.name("L"), "scalar"
        if layer is not None:
            for candidate in (identifier, _accent_identifier(spelling)):
                if candidate and layer.is_tensor(candidate):
                    kind = "scalar" if layer.rank(candidate) == 0 else "tensor"
                    return C.name(candidate), kind
            if identifier in layer.constants:
                return C.name(identifier), "tensor"
        if spelling in m.sizes:
            return m.sizes[spelling], "size"
        if identifier in m.index_parameters:
            self.index_names.add(identifier)
            return C.name(identifier), "index"
        if layer is None and identifier:
            self._tensor_names_seen.add(identifier)
            return C.name(identifier), "tensor"
        if identifier and (len(spelling) == 1 or spelling[1:] in GREEK):
            self.value_letters.add(identifier)
            return C.name(identifier), "index"
        raise NotRead(f"unknown symbol {spelling}: map it under [names] or define it in the document", spelling)

    def _reads(self, value: ast.expr, item: Item, items, end) -> tuple[ast.expr, Item, int]:
        """An element read after a tensor: ``x_{a,b}``, ``x_{ab}``, ``x[a, b]``, ``x(a, b)``."""
        rank = len(value.indices) if isinstance(value, Formula) else self._rank_of(value)
        if item.sub is not None:
            if isinstance(value, ast.Name) and self.layer is None:
                self._tensor_names_seen.add(value.id)
            where = self._index_list(item.sub, rank)
            return self._read_at(value, where), Item(item.base, None, item.sup, item.primes), end
        if end < len(items) and item.sup is None and not item.primes:
            nxt = items[end]
            if (
                isinstance(nxt.base, Group)
                and nxt.base.kind in ("bracket", "paren")
                and rank != 0
                and self._is_array(value)
            ):
                where = self._index_list(nxt.base.items, rank)
                return self._read_at(value, where), nxt, end + 1
        return value, item, end

    def _index_list(self, items, rank: int | None) -> list[ast.expr]:
        items = _without_spaces(tuple(items))
        if _is_paren_tuple(items):
            items = items[0].base.items
        parts = [p for p in _split_top(items, "COMMA")]
        if any(not p for p in parts):
            raise NotRead("an empty index", spell_all(items))
        if len(parts) == 1 and len(parts[0]) > 1 and all(_is_letter(i) for i in parts[0]) and rank != 1:
            if rank is None or rank == len(parts[0]):
                parts = [(i,) for i in parts[0]]
            else:
                raise NotRead(f"{len(parts[0])} run-together indices for a tensor of rank {rank}", spell_all(items))
        where = [self.index_expr(p) for p in parts]
        if rank is not None and len(where) != rank:
            raise NotRead(f"read with {len(where)} indices, but the tensor has rank {rank}", spell_all(items))
        return where

    def index_expr(self, items) -> ast.expr:
        """An index expression: index letters, sizes, numbers, ``+ - \\cdot`` and products."""
        items = _without_spaces(tuple(i for i in items if not _is_space(i)))
        if not items:
            raise NotRead("an empty index")
        out: ast.expr | None = None
        sign = 1
        factors: list[ast.expr] = []

        def flush():
            nonlocal out, factors
            if not factors:
                raise NotRead("an index expression ending in an operator", spell_all(items))
            term = factors[0]
            for f in factors[1:]:
                term = C.binop(term, ast.Mult(), f)
            if out is None:
                out = C.neg(term) if sign < 0 else term
            else:
                out = C.binop(out, ast.Sub() if sign < 0 else ast.Add(), term)
            factors = []

        pos = 0
        while pos < len(items):
            item = items[pos]
            base = item.base
            if isinstance(base, Tok) and base.kind == "OP" and base.text in "+-" and item.sub is None:
                if factors:
                    flush()
                    sign = 1
                sign = -sign if base.text == "-" else sign
                pos += 1
                continue
            if isinstance(base, Tok) and base.kind == "CMD" and base.text in ("\\cdot", "\\times"):
                pos += 1
                continue
            factors.append(self._index_atom(items, pos))
            pos += 1
        flush()
        return out

    def _index_atom(self, items, pos) -> ast.expr:
        item = items[pos]
        base = item.base
        if item.sup is not None and not _is_prime_sup(item.sup):
            raise NotRead("a power inside an index is not read", spell(item))
        if isinstance(base, Tok) and base.kind == "NUMBER" and item.sub is None:
            return C.const(int(base.text)) if base.text.isdigit() else _not_index(item)
        if isinstance(base, Group) and base.kind in ("paren", "group"):
            return self.index_expr(base.items)
        if isinstance(base, Tok) and (base.kind == "SYMBOL" or (base.kind == "CMD" and base.text[1:] in GREEK)):
            spelling = spell(item.bare())
            full = spelling + ("_{" + spell_all(item.sub) + "}" if item.sub is not None else "")
            m = self.meaning
            if item.sub is not None:
                if full in m.sizes:
                    return m.sizes[full]
                raise NotRead(f"{full} inside an index is not a size: map it under [sizes]", full)
            primes = item.primes + (1 if item.sup is not None else 0)
            if not primes:
                if spelling in m.sizes:
                    return m.sizes[spelling]
                if self.layer is not None and spelling in self.layer.sizes:
                    return C.name(spelling)
            var = _prime_name(spelling.replace("\\", "") + "'" * primes)
            self.index_names.add(var)
            return C.name(var)
        raise NotRead("cannot read this inside an index", spell(item))

    def _scripted(self, value: Value, item: Item, items) -> Value:
        """``value`` with the item's superscript (power or transpose) and primes."""
        if item.primes:
            if isinstance(value, ast.Name):
                raise NotRead("a prime on a tensor is not read (f' is read only for declared functions)", spell(item))
            raise NotRead("a prime here is not read", spell(item))
        if item.sup is None:
            return value
        if isinstance(value, Formula):
            raise NotRead("a script on an array given by an index formula is not read", spell(item))
        sup = _without_spaces(item.sup)
        if len(sup) == 1 and spell(sup[0]) in ("T", "\\top", "\\intercal", "\\mathsf{T}", "\\mathrm{T}", "\\text{T}"):
            return ast.Attribute(value, "T", ast.Load())
        if len(sup) == 1 and _is_command(sup[0], "circ"):
            raise NotRead("degrees are not read outside a [notation] pattern", spell(item))
        exponent = self.value(sup)
        return C.binop(value, ast.Pow(), self._paren(exponent))

    # -- kinds ---------------------------------------------------------------------------

    def _rank_of(self, value: ast.expr) -> int | None:
        if isinstance(value, ast.Name) and self.layer is not None:
            n = value.id
            if n == "g":
                return self.layer.rank(self.layer.output)
            if n.startswith("d") and n[1:] in self.layer.ranks:
                return self.layer.rank(n[1:])
            return self.layer.rank(n)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "flip" and value.args:
            return self._rank_of(value.args[0])
        return None

    def _is_array(self, value: ast.expr) -> bool:
        if isinstance(value, ast.Name):
            n = value.id
            if n.startswith("__hole"):
                return True
            rank = self._rank_of(value)
            if rank is not None:
                return rank > 0
            if self.layer is None:
                return n in self._tensor_names_seen
            return n in self.layer.ranks or n == "g" or (n.startswith("d") and n[1:] in self.layer.ranks)
        if isinstance(value, ast.Subscript | ast.Constant | ast.Compare):
            return False
        if isinstance(value, ast.Attribute):
            return True
        if isinstance(value, ast.UnaryOp):
            return self._is_array(value.operand)
        if isinstance(value, ast.BinOp):
            return self._is_array(value.left) or self._is_array(value.right)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            f = value.func.id
            if f in ("Sum", "KroneckerDelta", "sum", "mean", "var", "dot", "trace", "logsumexp"):
                return False
            if f == "diff":
                return any(self._is_array(a) for a in value.args)
            return any(self._is_array(a) for a in value.args) or f in ("softmax", "log_softmax", "flip", "outer")
        return False


# ---------------------------------------------------------------------------------------
# helpers


_TOO_DEEP = "an expression nested too deeply to read its rows and columns (column_vectors = true)"
_NESTED_TOO_DEEPLY = "an expression nested too deeply to read (split the sum over several lines)"


def _formula_rank(formula: str, scope: columns.Scope) -> int | None:
    """The rank of a closed-form layer formula by NumPy's rules (``w @ x + b``: 1), None when
    not known (an index-form formula's rank is known from its left side already).

    >>> _formula_rank("softmax(s)", columns.Scope(lambda n: {"s": 1}.get(n)))
    1
    """
    try:
        tree = ast.parse(formula.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(tree, ast.Compare):
        return None
    return {columns.SCALAR: 0, columns.COLUMN: 1, columns.ROW: 1, columns.MATRIX: 2}.get(
        columns.orientation(tree, scope)
    )


def _fill_holes(body: ast.expr, operands: list[Value]) -> ast.expr:
    """``body`` with each ``__hole<k>__`` replaced by operand k (an index formula is read
    where the hole is read)."""

    class Fill(ast.NodeTransformer):
        def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
            node = self.generic_visit(node)
            if isinstance(node.value, Formula):
                return node.value.at(C.indices_of(node))
            return node

        def visit_Name(self, node: ast.Name):
            if node.id.startswith("__hole"):
                k = int(node.id[6:-2]) - 1
                if k >= len(operands):
                    raise NotRead(f"the pattern uses #{k + 1} but has only {len(operands)} operands")
                operand = operands[k]
                return operand if isinstance(operand, Formula) else C.substitute(operand, {})
            return node

    import copy

    filled = Fill().visit(copy.deepcopy(body))
    if isinstance(filled, Formula) or any(isinstance(getattr(n, "value", None), Formula) for n in ast.walk(filled)):
        raise NotRead("an array given by an index formula used where it is not read elementwise")
    return filled


def _unbound_by_dimensions(body: ast.expr, dims: set[str]) -> ast.expr:
    """Sum bounds ``(m, lo, D - 1)`` whose D is an unknown operand size become ``m`` with a
    guard ``m >= lo`` (the sum then runs where the operand's reads are in range)."""

    class Unbind(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call):
            node = self.generic_visit(node)
            if not C.is_sum(node):
                return node
            args = [node.args[0]]
            guards = []
            for arg in node.args[1:]:
                if isinstance(arg, ast.Tuple) and any(n in dims for n in C.all_names(arg.elts[2])):
                    var, low, _ = arg.elts
                    if any(n in dims for n in C.all_names(low)):
                        raise NotRead("an operator's sum bound depends on an operand size that is not known here")
                    args.append(var)
                    if not (
                        isinstance(low, ast.Constant) and low.value == 0 and _only_reads_operands(node.args[0], var.id)
                    ):
                        guards.append(ast.Compare(var, [ast.GtE()], [low]))
                else:
                    args.append(arg)
            body = args[0]
            for guard in guards:
                body = C.binop(body, ast.Mult(), guard)
            return C.call("Sum", body, *args[1:])

    out = Unbind().visit(body)
    if any(n in dims for n in C.all_names(out)):
        raise NotRead("an operator's definition uses an operand size that is not known here")
    return out


def _only_reads_operands(body: ast.expr, var: str) -> bool:
    """True when ``body`` is a product with a factor read at ``var`` alone in an index position
    (so the sum over ``var`` without bounds runs over that factor's range only)."""
    factors = [body]
    while any(isinstance(f, ast.BinOp) and isinstance(f.op, ast.Mult) for f in factors):
        f = next(f for f in factors if isinstance(f, ast.BinOp) and isinstance(f.op, ast.Mult))
        factors.remove(f)
        factors += [f.left, f.right]
    return any(
        isinstance(f, ast.Subscript) and any(isinstance(i, ast.Name) and i.id == var for i in C.indices_of(f))
        for f in factors
    )


def _terms(tree: ast.expr) -> list[tuple[int, ast.expr]]:
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Add | ast.Sub):
        right_sign = 1 if isinstance(tree.op, ast.Add) else -1
        return _terms(tree.left) + [(right_sign * s, t) for s, t in _terms(tree.right)]
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.USub):
        return [(-s, t) for s, t in _terms(tree.operand)]
    return [(1, tree)]


def _reads_outside_sums(tree: ast.AST) -> list[ast.Subscript]:
    out = []
    if isinstance(tree, ast.Subscript):
        return [tree]
    if C.is_sum(tree):
        return []
    for child in ast.iter_child_nodes(tree):
        out.extend(_reads_outside_sums(child))
    return out


def _match(pattern: tuple[Item, ...], actual: tuple[Item, ...]) -> dict[int, tuple[Item, ...]] | None:
    """Hole bindings when ``actual`` has the shape of ``pattern``, else None."""
    actual = _without_spaces(actual)
    if len(actual) != len(pattern):
        return None
    bindings: dict[int, tuple[Item, ...]] = {}
    for p, a in zip(pattern, actual, strict=True):
        if not _match_item(p, a, bindings):
            return None
    return bindings


def _match_item(p: Item, a: Item, bindings: dict) -> bool:
    if isinstance(p.base, Tok) and p.base.kind == "HOLE":
        if (p.sub is None) != (a.sub is None) or (p.sub is not None and spell_all(p.sub) != spell_all(a.sub)):
            return False
        if p.sup is not None and (a.sup is None or spell_all(p.sup) != spell_all(a.sup)):
            return False
        if p.sup is None and a.sup is not None:
            return False
        bindings[int(p.base.text[1:])] = (Item(a.base, None, None, a.primes, a.line, a.start, a.end),)
        return True
    for mine, theirs in ((p.sub, a.sub), (p.sup, a.sup)):
        if (mine is None) != (theirs is None):
            return False
        if mine is not None and spell_all(mine) != spell_all(theirs):
            return False
    if p.primes != a.primes:
        return False
    if isinstance(p.base, Tok) or isinstance(a.base, Tok):
        return isinstance(p.base, Tok) and isinstance(a.base, Tok) and spell(p.base) == spell(a.base)
    if (p.base.kind, p.base.opening, p.base.closing) != (a.base.kind, a.base.opening, a.base.closing):
        return False
    inner_p = _without_spaces(p.base.items)
    if len(inner_p) == 1 and _is_hole(inner_p[0]):
        bindings[int(inner_p[0].base.text[1:])] = a.base.items
        return True
    inner = _match(inner_p, a.base.items)
    if inner is None:
        return False
    bindings.update(inner)
    return True


def _group_items(item: Item) -> tuple[Item, ...] | None:
    if isinstance(item.base, Group) and item.base.kind == "group":
        return item.base.items
    return None


def _is_fraction(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "CMD" and item.base.text in ("\\frac", "\\dfrac", "\\tfrac")


def _is_differential(item: Item) -> bool:
    base = item.base
    if not isinstance(base, Tok):
        return False
    if base.kind == "CMD" and base.text == "\\partial":
        return True
    if base.kind == "SYMBOL" and base.text == "d" and item.sub is None:
        return True
    return base.kind == "TEXT" and text_content(base) == "d"


def _is_whole_derivative(value: ast.expr) -> bool:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "diff":
        return not isinstance(value.args[1], ast.Subscript)
    return False


def _is_letter(item: Item) -> bool:
    base = item.base
    if item.sub is not None or (item.sup is not None and not _is_prime_sup(item.sup)):
        return False
    return isinstance(base, Tok) and (base.kind == "SYMBOL" or (base.kind == "CMD" and base.text[1:] in GREEK))


def _is_prime_sup(sup: tuple[Item, ...]) -> bool:
    return all(_is_command(i, "prime") for i in _without_spaces(sup)) and bool(sup)


def _is_dot(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "OP" and item.base.text == "."


def _is_accent(item: Item) -> bool:
    return isinstance(item.base, Tok) and item.base.kind == "CMD" and item.base.text[1:] in ACCENTS


def _prime_name(spelling: str) -> str:
    """``m'`` -> ``m_prime``; ``m^{\\prime}`` -> ``m_prime``.

    >>> _prime_name("m'"), _prime_name("m^{\\\\prime}"), _prime_name("i")
    ('m_prime', 'm_prime', 'i')
    """
    spelling = spelling.replace("^{\\prime}", "'").replace("^\\prime", "'")
    base = spelling.rstrip("'")
    primes = len(spelling) - len(base)
    return base + "_prime" * primes


def _identifier(spelling: str) -> str:
    """A spelling as a claim identifier: ``x`` -> x, ``\\mu`` -> mu, else ''."""
    text = spelling[1:] if spelling.startswith("\\") else spelling
    return text if text.isidentifier() else ""


def _accent_identifier(spelling: str) -> str:
    """``\\hat{x}`` -> ``xhat`` (a layer's name for a decorated quantity), else ''."""
    if not spelling.startswith("\\") or "{" not in spelling:
        return ""
    accent, inner = spelling[1:].split("{", 1)
    inner = inner.rstrip("}")
    inner = inner[1:] if inner.startswith("\\") else inner
    short = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde", "widetilde": "tilde"}
    if accent in short and inner.isidentifier():
        return inner + short[accent]
    if accent in ("mathbf", "boldsymbol", "bm", "mathit", "mathsf", "vec") and inner.isidentifier():
        return inner
    return ""


def _starts_with_condition_word(cell) -> bool:
    first = cell[0].base
    if not isinstance(first, Tok) or first.kind != "TEXT":
        return False
    words = text_content(first).lower().rstrip(",")
    return words in (
        "if",
        "si",
        "when",
        "for",
        "otherwise",
        "else",
        "en otro caso",
        "si no",
        "sinon",
        "sonst",
        "wenn",
        "falls",
        "cuando",
    )


def _simplified_cases(out: ast.expr, cond: ast.expr, value: ast.expr, rest: ast.expr) -> ast.expr:
    if isinstance(rest, ast.Constant) and rest.value == 0:
        return C.binop(cond, ast.Mult(), value)
    return out


def _not_index(item: Item):
    raise NotRead("a non-integer number inside an index", spell(item))
