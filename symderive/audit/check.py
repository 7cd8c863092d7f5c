r"""Deciding a derivation document entry by entry (``symderive audit``, DERIVATIONS.md).

The reader (read.py) turns every display entry into links ``left == right`` in claim
language; each link is decided here by the prover over the layer of the notation in force:
``follows`` only on a proof, ``does not follow`` only with a counterexample the prover
confirmed by exact evaluation, and whatever it cannot parse or decide is ``unknown`` or
``not checked`` with the reason — never guessed.

>>> doc = "```toml symderive\nlayer = 'linear'\n```\n$$y[j] = \\sum_i w[j, i] x[i] + b_j$$\n"
>>> [e.verdict for e in audit(doc).entries]
['follows']
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from symderive.clock import ClaimTimeout
from symderive.decide.pose import Memo, checked_timeout, prove, prove_identity
from symderive.decide.verdict import PROVED, REFUTED, Counterexample, Verdict
from symderive.display import Displayed
from symderive.errors import InputError
from symderive.model.layer import Layer, as_layer, layer_from_dict, size_text
from symderive.search.variants import proved_step

from . import columns
from .document import load_text
from .read import Entry, Link, read_document
from .symbols import layer_path

DEFINITION, FOLLOWS, WRONG = "definition", "follows", "does not follow"
UNKNOWN, NOT_CHECKED, NOT_EQUATION = "unknown", "not checked", "not an equation"
#: an entry's verdict is the worst of its links' (DERIVATIONS.md), worst first
WORST_FIRST = (WRONG, UNKNOWN, NOT_CHECKED, FOLLOWS, DEFINITION)


@dataclass(frozen=True)
class StepVariant:
    r"""The nearest true variant of a step that does not follow, PROVED: the step with its
    side ``side`` edited (claim language), what the edit is (``why``: ``shifted by (1 - kh,
    1 - kw)``, ``the kernel w is not flipped``), or an assumption it is missing; ``latex``
    is the edited side as the document would write it, when the reader reads it back to
    ``side`` and the step then follows.

    >>> StepVariant("dx == w.T @ g", "w.T @ g", "w must be transposed").explanation
    'holds with `w.T @ g`: w must be transposed'
    """

    claim: str
    side: str
    why: str = ""
    assume: tuple[str, ...] = ()
    latex: str = ""
    #: an index shift: what each free index is shifted by (size expressions as text), else ()
    shift: tuple[str, ...] = ()

    @property
    def explanation(self) -> str:
        """The variant in words: ``holds with `SIDE`: WHY`` or ``holds if ASSUMPTION``."""
        if self.assume and not self.why:
            return "holds if " + " and ".join(self.assume)
        shown = self.latex or f"`{self.side}`"
        return f"holds with {shown}" + (f": {self.why}" if self.why else "")

    def to_json(self) -> dict:
        """The variant's JSON object: claim, explanation, latex (or null) and assume."""
        return {
            "claim": self.claim,
            "explanation": self.explanation,
            "latex": self.latex or None,
            "assume": list(self.assume),
        }


@dataclass(frozen=True)
class LinkVerdict:
    """The verdict on one link ``left == right`` of an entry (claim language on both sides).

    >>> LinkVerdict(3, "y", "w @ x + b", FOLLOWS).verdict
    'follows'
    """

    line: int
    left: str
    right: str
    verdict: str
    counterexample: Counterexample | None = None
    #: the free indices' values where the sides differ, in words (``i = 1, j = 0``)
    at: str = ""
    reason: str = ""
    seconds: float = 0.0
    #: for a link that does not follow, its nearest true variant when the search found one
    variant: StepVariant | None = None

    def to_json(self) -> dict:
        """The link's JSON object: line, left, right, verdict and counterexample or reason, and
        the nearest true variant of a link that does not follow when one was found."""
        out: dict = {"line": self.line, "left": self.left, "right": self.right, "verdict": self.verdict}
        if self.counterexample is not None:
            out["counterexample"] = counterexample_json(self.counterexample, self.at)
        if self.reason:
            out["reason"] = self.reason
        if self.variant is not None:
            out["variant"] = self.variant.to_json()
        return out


@dataclass(frozen=True)
class AuditEntry:
    """One display entry with its verdict (the worst of its links').

    >>> AuditEntry(4, "y = w x + b", FOLLOWS).wrong
    False
    """

    line: int
    latex: str
    verdict: str
    links: tuple[LinkVerdict, ...] = ()
    reason: str = ""
    defines: str = ""
    layer: str | None = None
    seconds: float = 0.0

    @property
    def wrong(self) -> bool:
        return self.verdict == WRONG

    @property
    def counterexample(self) -> Counterexample | None:
        """The counterexample of the first link that does not follow."""
        return next((k.counterexample for k in self.links if k.verdict == WRONG), None)

    @property
    def wrong_link(self) -> LinkVerdict | None:
        return next((k for k in self.links if k.verdict == WRONG), None)

    @property
    def variant(self) -> StepVariant | None:
        """The nearest true variant of the first link that does not follow (None when none was found)."""
        wrong = self.wrong_link
        return None if wrong is None else wrong.variant

    def to_json(self) -> dict:
        """The entry's JSON object of DERIVATIONS.md: line, latex, verdict, links,
        counterexample, reason, defines, and ``variant`` (the nearest true variant of its
        first link that does not follow, null when there is none or none was found)."""
        wrong = self.wrong_link
        reason = self.reason or next((k.reason for k in self.links if k.verdict == self.verdict and k.reason), "")
        return {
            "line": self.line,
            "latex": self.latex,
            "verdict": self.verdict,
            "links": [k.to_json() for k in self.links],
            "counterexample": None if wrong is None else counterexample_json(wrong.counterexample, wrong.at),
            "reason": reason,
            "defines": self.defines,
            "variant": None if self.variant is None else self.variant.to_json(),
        }


@dataclass(frozen=True)
class Audit(Displayed):
    """The audit of a document: its entries in order, and the first wrong step.

    >>> Audit("notes.md", ()).first_wrong is None
    True
    """

    source: str
    entries: tuple[AuditEntry, ...]
    seconds: float = 0.0
    layers: tuple[tuple[int, str], ...] = field(default=())

    @property
    def first_wrong(self) -> int | None:
        """The line of the first entry that does not follow (None when none)."""
        return next((e.line for e in self.entries if e.wrong), None)

    def counts(self) -> dict[str, int]:
        """How many entries got each verdict."""
        out = dict.fromkeys((DEFINITION, FOLLOWS, WRONG, UNKNOWN, NOT_CHECKED, NOT_EQUATION), 0)
        for e in self.entries:
            out[e.verdict] += 1
        return out

    @property
    def exit_status(self) -> int:
        """0 every checked entry follows, 1 some does not follow, 3 some unknown/not checked."""
        counts = self.counts()
        if counts[WRONG]:
            return 1
        return 3 if counts[UNKNOWN] or counts[NOT_CHECKED] else 0


def audit(
    source: str | Path,
    notation: str | Path | None = None,
    timeout: float = 60.0,
    kind: str | None = None,
    variants: bool = True,
) -> Audit:
    r"""Read a derivation document (a path or its text) and decide every entry.

    ``notation`` is a ``--notation`` file; ``timeout`` bounds each link's proof (seconds);
    ``variants`` looks for the nearest true variant of each step that does not follow (a
    bounded search: :data:`symderive.search.variants.IDENTITY_CANDIDATES` edits per step).
    An input error (no such file, malformed notation, an unknown layer) raises InputError.

    >>> doc = "```toml symderive\nlayer = 'linear'\n```\n$$y[j] = \\sum_i w[i, j] x[i] + b_j$$\n"
    >>> a = audit(doc)
    >>> a.entries[0].verdict, a.first_wrong
    ('does not follow', 4)
    """
    timeout = checked_timeout(timeout)
    start = time.perf_counter()
    entries = read_document(source, kind=kind, notation=notation)
    layers = _LayerCache()
    decided = tuple(_decided_entry(e, layers, timeout, variants) for e in entries)
    if variants:
        decided = _written_variants(decided, entries, source, notation, kind, layers)
    name = str(source) if isinstance(source, Path) or not _looks_like_text(source) else "the document"
    return Audit(name, decided, time.perf_counter() - start, _layers_in_force(entries))


def _written_variants(decided, entries, source, notation, kind, layers: _LayerCache):
    """The entries with each shifted variant also written as the document would write it: the
    wrong side's LaTeX with its index tuple shifted (``(i - k_1 + 1, j - k_2 + 1)``), kept only
    when the reader reads it back (inserted before the entry, under the same notation) and
    the step then follows."""
    targets = []
    for n, e in enumerate(decided):
        shifted = [m for m, k in enumerate(e.links) if k.variant is not None and k.variant.shift]
        if shifted and entries[n].links[shifted[0]].latex:
            targets.append((n, shifted[0]))
    if not targets:
        return decided
    try:
        text, kind, path = load_text(source, kind)
        spellings = _size_spellings(text, kind, path, notation)
    except InputError:
        return decided
    written = {}
    for n, m in targets:
        entry, link = entries[n], entries[n].links[m]
        latex = shifted_latex(
            link.latex, decided[n].links[m].variant.shift, link.free_indices, spellings.get(_spelling_key(entry), {})
        )
        if latex is not None:
            written[(n, m)] = latex
    if not written:
        return decided
    try:
        read_back = _read_back(text, kind, path, notation, entries, written)
    except Exception:  # noqa: BLE001  (the variant is then shown in claim language only)
        return decided
    out = list(decided)
    for (n, m), latex in written.items():
        right = read_back.get((n, m))
        link = entries[n].links[m]
        if right is None:
            continue
        layer, _ = layers.get(entries[n])
        # the variant itself was proved and checked by exact evaluation: this proves its spelling
        spelled = proved_step(layer, link.left, right, _in_range(link, layer), entries[n].assume, cross_check=False)
        if spelled is None:
            continue
        links = list(out[n].links)
        links[m] = replace(links[m], variant=replace(links[m].variant, latex=latex))
        out[n] = replace(out[n], links=tuple(links))
    return tuple(out)


def _spelling_key(entry: Entry) -> tuple:
    return (entry.notation_line, entry.layer)


def _size_spellings(text: str, kind: str, path, notation) -> dict[tuple, dict[str, str]]:
    """For each notation block (by its line and layer): the layer's size names -> the
    document's spelling (``kh`` -> ``k_1``), from its ``[sizes]``."""
    from .document import NotationText, split_document
    from .notation import parse_notation, parse_notation_file

    if notation is not None:
        blocks = [block for _, block in parse_notation_file(Path(notation))]
    else:
        base = path.parent if path is not None else None
        pieces = split_document(text, kind)
        blocks = [parse_notation(p.text, p.line, "the document", base) for p in pieces if isinstance(p, NotationText)]
    out: dict[tuple, dict[str, str]] = {}
    for block in blocks:
        reverse: dict[str, str] = {}
        for spelled, size in block.sizes:
            reverse.setdefault(size, spelled)
        out.setdefault((block.line, block.layer), reverse)
    return out


_INDEX_TUPLE = re.compile(r"(?<=[)\]}A-Za-z0-9'])\s*(\(|\[)([^()\[\]{}]*)(\)|\])|_\{\(([^()]*)\)\}")


def shifted_latex(latex: str, shift: tuple[str, ...], free: tuple[str, ...], sizes: dict[str, str]) -> str | None:
    r"""A side's LaTeX with every index tuple of its free indices shifted (the document's
    spelling of the sizes, ``sizes``: the layer's size -> the document's), or None when it has
    no such tuple or a size has no spelling.

    >>> shifted_latex(r"(W_{f}\otimes I)(i,j)", ("1 - kh", "1 - kw"), ("i", "j"), {"kh": "k_1", "kw": "k_2"})
    '(W_{f}\\otimes I)(i - k_1 + 1, j - k_2 + 1)'
    """
    if len(shift) != len(free):
        return None
    terms = [_shift_terms(d, sizes) for d in shift]
    if any(t is None for t in terms):
        return None
    found = False

    def shifted(match: re.Match) -> str:
        nonlocal found
        inner = match.group(2) if match.group(2) is not None else match.group(4)
        parts = [p.strip() for p in inner.split(",")]
        if len(parts) != len(free) or [_index_name(p) for p in parts] != list(free):
            return match.group(0)
        found = True
        body = ", ".join(p + t for p, t in zip(parts, terms, strict=True))
        if match.group(2) is None:
            return "_{(" + body + ")}"
        return match.group(0)[: match.start(1) - match.start(0)] + match.group(1) + body + match.group(3)

    out = _INDEX_TUPLE.sub(shifted, latex)
    return out if found else None


def _index_name(spelled: str) -> str:
    r"""A LaTeX index as the reader names it: ``m'`` and ``m^{\prime}`` are ``m_prime``."""
    text = re.sub(r"\s+", "", spelled)
    text = re.sub(r"\^\{?\\prime\}?", "'", text)
    return text.replace("'", "_prime").replace("{", "").replace("}", "")


def _shift_terms(shift: str, sizes: dict[str, str]) -> str | None:
    """`` - k_1 + 1`` for the shift ``1 - kh`` (sizes first, then the number), '' for 0."""
    import sympy as sp

    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", shift))
    try:
        expr = sp.sympify(shift, locals={n: sp.Symbol(n) for n in names})
    except (sp.SympifyError, SyntaxError, TypeError):
        return None
    if (
        not expr.is_polynomial()
        or sp.Poly(expr, *sorted(expr.free_symbols, key=str) or [sp.Symbol("_")]).total_degree() > 1
    ):
        return None
    out = ""
    for name in sorted(names, key=shift.index):
        c = expr.coeff(sp.Symbol(name))
        spelled = sizes.get(name, name if len(name) == 1 else None)
        if spelled is None or not c.is_integer:
            return None
        out += (" + " if c > 0 else " - ") + (f"{abs(c)} " if abs(c) != 1 else "") + spelled
    number = expr.subs({sp.Symbol(n): 0 for n in names})
    if number != 0:
        out += (" + " if number > 0 else " - ") + str(abs(number))
    return out


def _read_back(text: str, kind: str, path, notation, entries, written: dict) -> dict:
    """The claim-language reading of each written variant: the document read again with
    ``WRONG SIDE = VARIANT`` inserted as a display of its own just before the entry (the
    same notation and definitions in force); (entry, link) -> the variant's reading, kept
    only where the wrong side is read back as it was."""
    lines = text.split("\n")
    at = {key: entries[key[0]].line - 1 for key in written if 0 <= entries[key[0]].line - 1 < len(lines)}
    for key in sorted(at, key=lambda k: -at[k]):  # from the end: the lines above keep their numbers
        side = entries[key[0]].links[key[1]].latex
        lines.insert(
            at[key], f"$$ {side} = {written[key]} $$" if kind == "markdown" else f"\\[ {side} = {written[key]} \\]"
        )
    # a display's line once every insertion is made: the ones above it moved it down
    starts = {key: a + 1 + sum(1 for b in at.values() if b < a) for key, a in at.items()}
    try:
        again = read_document("\n".join(lines), kind=kind, notation=notation)
    except InputError:
        return {}
    out = {}
    for key, line in starts.items():
        n, m = key
        hit = next((e for e in again if e.line == line and len(e.links) == 1), None)
        if hit is None or hit.links[0].status != "relation" or hit.links[0].left != entries[n].links[m].right:
            continue
        out[key] = hit.links[0].right
    return out


def _looks_like_text(source: str) -> bool:
    return "\n" in source or "$" in source


def _layers_in_force(entries) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    for e in entries:
        if e.layer and (not out or out[-1][1] != e.layer):
            out.append((e.notation_line, e.layer))
    return tuple(out)


class _LayerCache:
    """Layers loaded once per audit, each with its Memo (derivations are reused)."""

    def __init__(self):
        self.layers: dict[str, tuple[Layer, Memo]] = {}
        #: links already decided in this audit: a document restates equations (Eq. B again)
        self.decided: dict[tuple, LinkVerdict] = {}

    def key(self, entry: Entry) -> str:
        """The layer's built-in name or its file's path, and the notation's intermediates."""
        spec = entry.layer or ""
        key = str(layer_path(spec, entry.base)) if ("/" in spec or spec.endswith(".toml")) else spec
        functions = "".join(f"; function {name}" for name in entry.functions)
        return key + "".join(f"; {name} = {formula}" for name, formula in entry.intermediates) + functions

    def get(self, entry: Entry) -> tuple[Layer, Memo]:
        key = self.key(entry)
        if key not in self.layers:
            extended = entry.intermediates or entry.functions
            layer = as_layer(key.split(";")[0]) if not extended else _with_intermediates(entry)
            self.layers[key] = (layer, Memo())
        return self.layers[key]


def _with_intermediates(entry: Entry) -> Layer:
    """The layer of the notation in force with the notation's ``[intermediates]`` after its own
    (DERIVATIONS.md): the layer file's table, extended, loaded as a layer file is."""
    path = layer_path(entry.layer or "", entry.base)
    as_layer(str(path))  # the layer itself loads (its own errors first)
    data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    own = data.get("intermediates", {})
    clash = sorted(set(own) & {name for name, _ in entry.intermediates})
    if clash:
        raise InputError(
            f"line {entry.notation_line}: [intermediates] names {', '.join(clash)}, already an intermediate of the layer"
        )
    data["intermediates"] = {**own, **dict(entry.intermediates)}
    # the notation's [functions] too (abstract elementwise functions, proved for every f)
    data["functions"] = list(dict.fromkeys([*data.get("functions", []), *entry.functions]))
    data.pop("claims", None)
    try:
        return layer_from_dict(data, source=f"{path} with the notation's [intermediates] (line {entry.notation_line})")
    except RecursionError:
        raise InputError(f"line {entry.notation_line}: [intermediates]: a value is nested too deeply") from None


def _decided_entry(entry: Entry, layers: _LayerCache, timeout: float, variants: bool = True) -> AuditEntry:
    start = time.perf_counter()
    base = dict(line=entry.line, latex=entry.latex, defines=entry.defines, layer=entry.layer)
    if entry.status == NOT_EQUATION:
        return AuditEntry(verdict=NOT_EQUATION, **base)
    if entry.status == DEFINITION:
        links = tuple(_link_verdict(k, DEFINITION) for k in entry.links)
        return AuditEntry(verdict=DEFINITION, links=links, **base)
    if entry.status == NOT_CHECKED:
        links = tuple(_link_verdict(k, NOT_CHECKED, k.reason or entry.reason) for k in entry.links)
        return AuditEntry(verdict=NOT_CHECKED, links=links, reason=entry.reason or _first_reason(links), **base)
    if not entry.layer:
        reason = "no layer is in force: give one in a notation block (layer = ...) or with --notation"
        links = tuple(_link_verdict(k, NOT_CHECKED, reason) for k in entry.links)
        return AuditEntry(verdict=NOT_CHECKED, links=links, reason=reason, **base)
    links = _decided_links(entry, layers, timeout, variants)
    verdict = worst(k.verdict for k in links) if links else NOT_CHECKED
    reason = "" if verdict in (FOLLOWS, WRONG) else _first_reason(links, verdict)
    return AuditEntry(verdict=verdict, links=links, reason=reason, seconds=time.perf_counter() - start, **base)


def _decided_links(entry: Entry, layers: _LayerCache, timeout: float, variants: bool = True) -> tuple[LinkVerdict, ...]:
    """Every link decided; a link whose two sides are the same text as a side the prover has
    already read in this entry (``A = B = B``, a chain restating its last side) follows
    without asking it again, and a link asked before in this audit (same layer, assumptions,
    sides and ranges) gets the same answer."""
    layer, memo = layers.get(entry)
    read: set[str] = set()
    out = []
    for k in entry.links:
        if k.status == "relation" and k.left.strip() == k.right.strip() and k.left.strip() in read:
            out.append(_link_verdict(k, FOLLOWS))
            continue
        key = (layers.key(entry), entry.assume, k.left, k.right, k.index_ranges, k.status, k.reason)
        if key in layers.decided:
            verdict = replace(layers.decided[key], line=k.line, seconds=0.0)
        else:
            verdict = layers.decided[key] = decide_link(k, layer, entry.assume, timeout, memo, variants)
        if verdict.verdict in (FOLLOWS, WRONG):
            read |= {k.left.strip(), k.right.strip()}
        out.append(verdict)
    return tuple(out)


def _first_reason(links, verdict: str | None = None) -> str:
    return next((k.reason for k in links if k.reason and (verdict is None or k.verdict == verdict)), "")


def _link_verdict(link: Link, verdict: str, reason: str = "") -> LinkVerdict:
    return LinkVerdict(link.line, link.left, link.right, verdict, reason=reason)


def worst(verdicts) -> str:
    """The worst of some link verdicts (does not follow, unknown, not checked, follows).

    >>> worst(["follows", "unknown", "follows"])
    'unknown'
    """
    seen = set(verdicts)
    return next(v for v in WORST_FIRST if v in seen)


# ---------------------------------------------------------------------------------------
# one link

_GRADIENT = re.compile(r"^d([A-Za-z_][A-Za-z_0-9]*)(\[[^\[\]]*\])?$")


def decide_link(
    link: Link, layer: Layer, assume=(), timeout: float = 60.0, memo: Memo | None = None, variants: bool = False
) -> LinkVerdict:
    """The verdict on one read link over ``layer`` (a relation, a definition or not checked);
    ``variants``: a link that does not follow carries its nearest true variant when found.

    >>> from symderive.audit.read import Link
    >>> decide_link(Link(1, "flip(flip(w))", "w"), as_layer("conv2d")).verdict
    'follows'
    """
    if link.status == DEFINITION:
        return _link_verdict(link, DEFINITION)
    if link.status != "relation":
        return _link_verdict(link, NOT_CHECKED, link.reason)
    start = time.perf_counter()
    try:
        verdict, swapped = _decision(link, layer, tuple(assume), timeout, memo)
    except InputError as err:
        if assume and str(err).startswith("--assume"):
            return _without_assumptions(link, layer, tuple(assume), timeout, memo, err)
        return _link_verdict(link, NOT_CHECKED, f"the prover cannot read this step: {err}")
    except ClaimTimeout:
        return _link_verdict(link, UNKNOWN, f"timeout (after {timeout:g} s)")
    except (NotImplementedError, RecursionError, ValueError, TypeError, ArithmeticError) as err:
        # a limitation of the prover met on this step: said, never guessed
        return _link_verdict(link, UNKNOWN, f"the prover could not decide this step ({type(err).__name__}: {err})")
    if isinstance(verdict, str):
        return _link_verdict(link, UNKNOWN, verdict)
    result = _from_verdict(link, verdict, swapped, time.perf_counter() - start)
    if variants and result.verdict == WRONG:
        variant = nearest_variant(link, layer, tuple(assume), swapped)
        result = replace(result, variant=variant, seconds=time.perf_counter() - start)
    return result


def nearest_variant(link: Link, layer: Layer, assume: tuple = (), swapped: bool = False) -> StepVariant | None:
    """The nearest proved variant of a link that does not follow, or None: its right side
    edited (its left side when ``swapped``: the gradient the prover was asked about is on
    the right) within a bounded count of candidates, the same answer on every machine
    (:func:`symderive.search.variants.identity_variants`).

    >>> from symderive.audit.read import Link
    >>> nearest_variant(Link(1, "dx[i]", "Sum(g[j] * w[i, j], j)", ("i",), (("i", "dx", 0),)), as_layer("linear")).side
    'Sum(g[j] * w[j, i], j)'
    """
    from symderive.search.variants import identity_variants

    fixed, edited = (link.right, link.left) if swapped else (link.left, link.right)
    try:
        found = identity_variants(layer, fixed, edited, condition=_in_range(link, layer), assume=assume)
    except Exception:  # noqa: BLE001  (no variant is shown rather than no audit)
        return None
    if not found:
        return None
    v = found[0]
    side = v.claim.split("==", 1)[1].strip()
    claim = f"{side} == {fixed}" if swapped else v.claim
    why = v.explanation.split("`: ", 1)[1] if "`: " in v.explanation else ""
    side, why = _transposed(edited, side, why)
    return StepVariant(claim, side, why, tuple(v.assume), shift=() if swapped else tuple(v.shift))


def _transposed(edited: str, side: str, why: str) -> tuple[str, str]:
    """A variant that turns a row into a column (or back) as the vector transposed, in words
    a reader of column vectors uses, not as the (1, n) and (n, 1) matrices the comparison uses.

    >>> _transposed("outer(ones(1), g.T @ w)", "outer(g.T @ w, ones(1))", "the two operands are the other way round")
    ('(g.T @ w).T', 'a row vector where a column belongs: its transpose holds')
    >>> _transposed("outer(x, ones(1))", "outer(ones(1), x)", "")[1]
    'a column vector where a row belongs: its transpose holds'
    >>> _transposed("w.T @ g", "w @ g", "w must be transposed")
    ('w @ g', 'w must be transposed')
    """
    before, after = columns.as_vector(edited), columns.as_vector(side)
    if before is None or after is None or before[1] != after[1] or before[0] == after[0]:
        return side, why
    return f"({after[1]}).T", f"{columns.describe(before[0])} where a {after[0]} belongs: its transpose holds"


def _without_assumptions(link: Link, layer: Layer, assume: tuple, timeout: float, memo, err: InputError) -> LinkVerdict:
    """The link decided without the notation's assumptions when the prover cannot read one
    (an index-form assumption such as a one-hot target): a proof without them holds with
    them too, so ``follows`` stays sound; anything else is ``unknown``, since a
    counterexample found without them may break them."""
    start = time.perf_counter()
    why = f"the prover cannot use the assumptions {', '.join(assume)} ({err})"
    try:
        verdict, swapped = _decision(link, layer, (), timeout, memo)
    except (InputError, ClaimTimeout, NotImplementedError, ValueError, TypeError, ArithmeticError) as again:
        return _link_verdict(link, NOT_CHECKED, f"{why}; without them: {again}")
    if isinstance(verdict, str):
        return _link_verdict(link, UNKNOWN, verdict)
    if verdict.verdict == PROVED:
        return _from_verdict(link, verdict, swapped, time.perf_counter() - start)
    found = "it does not hold for every value" if verdict.verdict == REFUTED else verdict.reason
    return _link_verdict(link, UNKNOWN, f"{why}; without them {found}")


def _decision(link: Link, layer: Layer, assume: tuple, timeout: float, memo) -> tuple[Verdict | str, bool]:
    """The prover's verdict on the link (or the reason it is not asked), and whether the
    sides were swapped to put a gradient on the left."""
    left, right = link.left, link.right
    written_out = "diff(" in left or "diff(" in right
    for swapped, (a, b) in ((False, (left, right)), (True, (right, left))):
        wrt = _gradient_of(a, layer)
        if wrt is not None and not written_out and not _reads_a_gradient(b, layer):
            # a gradient alone on one side: the prover's own derivation (remembered per layer)
            return prove(layer, wrt, f"{a} == {b}", assume=assume, timeout=timeout, memo=memo), swapped
    # anything else (a derivative written out, gradients on both sides or inside a larger
    # expression) is an identity: prove_identity differentiates diff(...) and dx[...] itself
    condition = _in_range(link, layer)
    if condition:
        left, right = f"{condition} * ({left})", f"{condition} * ({right})"
    return prove_identity(layer, f"{left} == {right}", assume=assume, timeout=timeout), False


def _gradient_of(side: str, layer: Layer) -> str | None:
    """The tensor whose gradient ``side`` is, when it is a gradient (``dw[m, n]``, ``dx``)."""
    hit = _GRADIENT.match(side.strip())
    if hit and hit.group(1) in layer.inputs and f"d{hit.group(1)}" not in layer.scope():
        return hit.group(1)
    return None


def _reads_a_gradient(side: str, layer: Layer) -> bool:
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", side))
    return any(f"d{x}" in names and f"d{x}" not in layer.scope() for x in layer.inputs)


def _in_range(link: Link, layer: Layer) -> str:
    """The 0/1 condition that every free index with a range (DERIVATIONS.md, free indices)
    is inside it: the link holds where it is 1 (both sides are multiplied by it)."""
    scope = layer.scope()
    terms = []
    for index, tensor, axis in link.index_ranges:
        name = tensor[1:] if tensor.startswith("d") and tensor[1:] in layer.inputs else tensor
        if name == "g" and "g" not in scope:
            continue
        shape = scope[name].shape if name in scope else None
        if shape is None or axis >= len(shape):
            continue
        terms.append(f"({index} >= 0) * ({index} <= {size_text(shape[axis] - 1)})")
    return " * ".join(dict.fromkeys(terms))


def _from_verdict(link: Link, verdict: Verdict, swapped: bool, seconds: float) -> LinkVerdict:
    base = dict(line=link.line, left=link.left, right=link.right, seconds=seconds)
    if verdict.verdict == PROVED:
        return LinkVerdict(verdict=FOLLOWS, **base)
    if verdict.verdict == REFUTED and verdict.counterexample is not None:
        cex = verdict.counterexample
        if swapped:
            cex = _swapped(cex)
        return LinkVerdict(verdict=WRONG, counterexample=cex, at=_where(link, cex), **base)
    return LinkVerdict(verdict=UNKNOWN, reason=verdict.reason or "the prover could not decide this step", **base)


def _swapped(cex: Counterexample) -> Counterexample:
    return replace(
        cex,
        expected=cex.claimed,
        claimed=cex.expected,
        expected_shape=cex.claimed_shape,
        claimed_shape=cex.expected_shape,
        expected_array=cex.claimed_array,
        claimed_array=cex.expected_array,
    )


def _where(link: Link, cex: Counterexample) -> str:
    """The free indices' values at the counterexample, in words (``i = 1, j = 0``)."""
    if cex.is_shape_mismatch or cex.index is None:
        return ""
    named = cex.message.split(";")[0].strip() if cex.message else ""
    if named and "=" in named:
        return named
    hit = _GRADIENT.match(link.left.strip()) or _GRADIENT.match(link.right.strip())
    names = [n.strip() for n in hit.group(2)[1:-1].split(",")] if hit and hit.group(2) else []
    if len(names) == len(cex.index):
        return ", ".join(f"{n} = {v}" for n, v in zip(names, cex.index, strict=True))
    return f"index {tuple(cex.index)}"


def counterexample_json(cex: Counterexample, at: str = "") -> dict:
    """A counterexample as LANGUAGE.md's JSON, with ``left``/``right`` for the two sides.

    >>> counterexample_json(Counterexample(sizes={"n": 1}, values={}, index=(0,), expected=1, claimed=0))
    {'sizes': {'n': 1}, 'values': {}, 'index': [0], 'left': 1, 'right': 0}
    """
    raw = cex.to_json()
    out: dict = {"sizes": raw["sizes"]}
    if cex.is_shape_mismatch:
        out["left_shape"] = raw["expected_shape"]
        out["right_shape"] = raw["claimed_shape"]
        if raw.get("message"):
            out["message"] = raw["message"]
        return out
    out |= {"values": raw["values"], "index": raw["index"], "left": raw["expected"], "right": raw["claimed"]}
    if "functions" in raw:
        out["functions"] = raw["functions"]
    if at:
        out["at"] = at
    return out


# ---------------------------------------------------------------------------------------
# text


def format_text(result: Audit, show: Callable[[str], str] | None = None) -> str:
    r"""The audit as DERIVATIONS.md prints it: one line per entry, the counterexample under a
    wrong one, the first wrong step and a summary line.

    >>> doc = "```toml symderive\nlayer = 'linear'\n```\n$$y[j] = \\sum_i w[j, i] x[i] + b_j$$\n"
    >>> print(format_text(audit(doc)))  # doctest: +NORMALIZE_WHITESPACE
    the document: layer linear (notation: line 2)
      line 4    y[j] = \sum_i w[j, i] x[i] + b_j   follows
    1 entry: 1 follows
    """
    lines = [_heading(result)]
    width = min(max((len(_one_line(e.latex)) for e in result.entries), default=0), 60)
    for e in result.entries:
        latex = _one_line(e.latex)
        latex = latex if len(latex) <= 60 else latex[:57] + "..."
        lines.append(f"  line {e.line:<4} {latex:<{width}}   {_verdict_words(e)}")
        lines.extend(f"            {text}" for text in _details(e))
    if result.first_wrong is not None:
        lines.append(f"first wrong step: line {result.first_wrong}")
    lines.append(summary(result))
    return "\n".join(lines)


def _heading(result: Audit) -> str:
    if not result.layers:
        return f"{result.source}: no layer in force"
    parts = [f"layer {layer} (notation: line {line})" for line, layer in result.layers]
    return f"{result.source}: " + "; ".join(parts)


def _one_line(latex: str) -> str:
    return " ".join(latex.split())


def _verdict_words(e: AuditEntry) -> str:
    if e.verdict == DEFINITION and e.defines:
        return f"definition of {e.defines}"
    return e.verdict


def _details(e: AuditEntry) -> list[str]:
    """The lines under an entry: the counterexample of a wrong link, the reason otherwise."""
    several = len(e.links) > 1
    out: list[str] = []
    for number, k in enumerate(e.links, start=1):
        sides = f" ({k.left} = {k.right})" if k.left or k.right else ""
        label = f"link {number}{sides}: " if several else ""
        if k.verdict == WRONG and k.counterexample is not None:
            if several:
                out.append(f"link {number} does not follow: {k.left} = {k.right}")
            out.extend(_counterexample_lines(k))
            if k.variant is not None:
                out.append(k.variant.explanation)
        elif k.verdict in (UNKNOWN, NOT_CHECKED) and (several or not e.reason):
            out.append(f"{label}{k.verdict}: {k.reason}" if several else k.reason)
    if e.reason and not several:
        out.insert(0, e.reason)
    return out


def _counterexample_lines(k: LinkVerdict) -> list[str]:
    cex = k.counterexample
    sizes = ", ".join(f"{s}={v}" for s, v in cex.sizes.items())
    if cex.is_shape_mismatch:
        if cex.claimed_shape is None:  # the right side has no value at these sizes (matmul of mismatched shapes)
            why = f" ({cex.message})" if cex.message and "not defined" not in cex.message else ""
            return [
                f"at sizes {sizes}: left shape {cex.expected_shape}; the right side has no value at these sizes{why}"
            ]
        return [f"at sizes {sizes}: left shape {cex.expected_shape}, right shape {cex.claimed_shape}"]
    values = "; ".join(f"{n} = {v}" for n, v in (cex.values or {}).items())
    values += "".join(f"; {n}(u) = {f}" for n, f in (cex.functions or {}).items())
    first = f"at sizes {sizes}" + (f"; {values.lstrip('; ')}" if values else "")
    where = f"at {k.at}: " if k.at else ""
    return [first, f"{where}left {cex.expected}, right {cex.claimed}"]


def summary(result: Audit) -> str:
    """The summary line: how many entries, and how many of each verdict.

    >>> summary(Audit("d", (AuditEntry(1, "a = b", FOLLOWS),)))
    '1 entry: 1 follows'
    """
    counts = result.counts()
    n = len(result.entries)
    words = {
        DEFINITION: ("definition", "definitions"),
        FOLLOWS: ("follows", "follow"),
        WRONG: ("does not follow", "do not follow"),
        UNKNOWN: ("unknown", "unknown"),
        NOT_CHECKED: ("not checked", "not checked"),
        NOT_EQUATION: ("not an equation", "not equations"),
    }
    parts = [f"{c} {words[v][0] if c == 1 else words[v][1]}" for v, c in counts.items() if c]
    return f"{n} {'entry' if n == 1 else 'entries'}: " + ", ".join(parts)
