"""Why a claim is wrong: the nearest true variants of a refuted claim.

Small edits of the claim's text (a flip added or removed, convolve and correlate
swapped, another mode or axis, a transpose added or removed, operands swapped, every free
index shifted by a size expression, a factor of sizes or a sign) and missing assumptions
(``sum(t) == 1``, ``x > 0``, built from the layer's tensors) are screened numerically at
the test points and then PROVED; only proved variants are returned, each with a short
explanation.
"""

from __future__ import annotations

import ast
import copy
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core.ops import OPERATORS
from ..core.parse import claim_tensor, parse_claim
from ..decide import concrete
from ..decide.verdict import Verdict
from ..model.layer import as_layer, size_text
from .match import agrees, point_ratios, scaled_text, size_factor
from .points import TestPoint, draw_sizes, point_values, test_points
from .space import ATOM

#: operators that are each other's swapped version (same operands, mirrored kernel or adjoint)
SWAPS = {
    "convolve": "correlate",
    "correlate": "convolve",
    "convolve2d": "correlate2d",
    "correlate2d": "convolve2d",
    "conv2d": "conv_transpose2d",
    "conv_transpose2d": "conv2d",
    "conv1d": "conv_transpose1d",
    "conv_transpose1d": "conv1d",
}
#: at most this many variants are returned
MAX_VARIANTS = 3
#: seconds :func:`with_variants` looks for variants by default (a quick look, not a long search)
VARIANT_SECONDS = 10.0


@dataclass(frozen=True)
class Variant:
    """A true variant of a claim: its text, what it changes in words, and its proof."""

    claim: str
    explanation: str
    assume: tuple[str, ...] = ()
    verdict: Verdict | None = field(default=None, repr=False)
    #: an index shift: what each free index is shifted by (size expressions as text), else ()
    shift: tuple[str, ...] = ()


# -- edits of the claim's text ------------------------------------------------------------
def _replaced(tree: ast.AST, target: ast.AST, new: ast.AST) -> str:
    """The text of ``tree`` with the node ``target`` replaced by ``new`` (the tree is
    changed for the unparse and restored)."""
    parent, field_name, index = _locate(tree, target)
    if parent is None:
        return ast.unparse(new)
    old = getattr(parent, field_name)
    if index is None:
        setattr(parent, field_name, new)
        text = ast.unparse(tree)
        setattr(parent, field_name, old)
    else:
        old[index] = new
        text = ast.unparse(tree)
        old[index] = target
    return text


def _locate(tree: ast.AST, target: ast.AST):
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is target:
                return parent, name, None
            if isinstance(value, list):
                for i, v in enumerate(value):
                    if v is target:
                        return parent, name, i
    return None, None, None


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    return None


#: edits whose explanation starts so are tried first: the usual mistakes before the rarer ones
_EDIT_ORDER = (
    "the sign",
    "no factor",
    "no division",
    "the kernel",
    "mode",
    "convolve",
    "correlate",
    "conv",
    "the operands",
    "the two",
)


def closed_edits(text: str, layer) -> list[tuple[str, str]]:
    """(variant text, explanation) for each one-place edit of a closed-form claim, the
    usual mistakes first (a flip, a mode, convolve for correlate).

    >>> from symderive.layer import load_layer
    >>> ("convolve(g, w, 'full')", "the kernel w is not flipped") in list(closed_edits("convolve(g, flip(w), 'full')", load_layer("conv2d")))
    True
    """
    edits = list(_closed_edits(text, layer))
    rank = {w: next((k for k, p in enumerate(_EDIT_ORDER) if w.startswith(p)), len(_EDIT_ORDER)) for _, w in edits}
    return sorted(edits, key=lambda e: rank[e[1]])


def _closed_edits(text: str, layer) -> Iterator[tuple[str, str]]:
    tree = ast.parse(text, mode="eval")
    ranks = {n: len(s) for n, s in layer.inputs.items()} | {"g": len(layer.forward.shape)}
    yield (f"{text}.T" if _is_call(text) else f"({text}).T"), "the result is transposed"
    yield from _dropped_factor(tree.body)
    for node in list(ast.walk(tree)):
        name = _call_name(node)
        if name == "flip" and node.args and isinstance(node.args[0], ast.Name):
            yield _replaced(tree, node, node.args[0]), f"the kernel {node.args[0].id} is not flipped"
        if name in SWAPS:
            new = copy.deepcopy(node)
            new.func = ast.Name(SWAPS[name])
            yield _replaced(tree, node, new), f"{SWAPS[name]}, not {name}"
        if name in OPERATORS and OPERATORS[name].algebra == "bilinear":
            yield from _call_edits(tree, node, name, ranks)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            yield (
                _replaced(tree, node, ast.BinOp(node.right, ast.MatMult(), node.left)),
                "the operands of @ are the other way round",
            )
        if isinstance(node, ast.Attribute) and node.attr == "T":
            yield _replaced(tree, node, node.value), f"{ast.unparse(node.value)} is not transposed"
        if name == "transpose" and node.args:
            yield _replaced(tree, node, node.args[0]), f"{ast.unparse(node.args[0])} is not transposed"
        if isinstance(node, ast.Name) and node.id in ranks:
            parent_name = _call_name(_parent(tree, node))
            if parent_name in SWAPS:
                yield (
                    _replaced(tree, node, ast.Call(ast.Name("flip"), [ast.Name(node.id)], [])),
                    f"the kernel {node.id} must be flipped",
                )
            if ranks[node.id] == 2 and not isinstance(_parent(tree, node), ast.Attribute):
                yield _replaced(tree, node, ast.Attribute(ast.Name(node.id), "T")), f"{node.id} must be transposed"
        for kw in getattr(node, "keywords", []):
            if kw.arg == "axis" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, int):
                for axis in (0, 1, 2, 3, -1):
                    if axis != kw.value.value:
                        new_kw = ast.keyword("axis", ast.Constant(axis))
                        yield (
                            _replaced(tree, kw, new_kw),
                            f"the reduction is over axis={axis}, not axis={kw.value.value}",
                        )
            if kw.arg == "keepdims":
                yield (
                    _replaced(tree, kw, ast.keyword("keepdims", ast.Constant(not kw.value.value))),
                    "keepdims is the other way",
                )


def _dropped_factor(body: ast.AST) -> Iterator[tuple[str, str]]:
    """The claim without its leading sign, or without a number or size it multiplies or
    divides by (a factor found wrong is then put right by matching, see ``_screened``)."""
    if isinstance(body, ast.UnaryOp) and isinstance(body.op, ast.USub):
        yield ast.unparse(body.operand), "the sign is the other way"
    if isinstance(body, ast.BinOp) and isinstance(body.op, ast.Mult | ast.Div):
        for keep, drop in ((body.left, body.right), (body.right, body.left)):
            if isinstance(drop, ast.Constant | ast.Name) and not (drop is body.left and isinstance(body.op, ast.Div)):
                division = isinstance(body.op, ast.Div)
                yield ast.unparse(keep), f"no {'division by' if division else 'factor'} {ast.unparse(drop)}"


def _call_edits(tree, node: ast.Call, name: str, ranks) -> Iterator[tuple[str, str]]:
    """Another mode of a call, and its two operands swapped."""
    mode = next((p for p in OPERATORS[name].params if p.kind == "str" and p.choices), None)
    if mode is not None:
        current = next((a for a in node.args[2:3] if isinstance(a, ast.Constant)), None)
        old = current.value if current is not None else mode.default
        for choice in mode.choices:
            if choice in (old, "same"):
                continue
            new = copy.deepcopy(node)
            new.args = [*new.args[:2], ast.Constant(choice), *new.args[3:]]
            yield _replaced(tree, node, new), f"mode {choice!r}, not {old!r}"
    if len(node.args) >= 2:
        new = copy.deepcopy(node)
        new.args = [new.args[1], new.args[0], *new.args[2:]]
        yield _replaced(tree, node, new), "the two operands are the other way round"


def _parent(tree, target):
    parent, _, _ = _locate(tree, target)
    return parent


def _shift_values(layer) -> list[sp.Expr]:
    sizes = layer.sizes
    out = [sp.Integer(1), sp.Integer(-1)]
    out += [s - 1 for s in sizes] + [1 - s for s in sizes]
    out += [a - b for a, b in itertools.permutations(sizes, 2)]
    return list(dict.fromkeys(out))


def index_edits(text: str, layer, wrt: str, points) -> Iterator[tuple[str, str]]:
    """Every free index of an index-form claim shifted, ``dx[p, q] == body(p + a, q + b)``
    for ``a``, ``b`` among 1, s - 1 and s1 - s2 over the sizes, screened at once: the body
    is evaluated once beyond the shape and each shift is a window of it (at most the last
    two axes are shifted)."""
    tree = ast.parse(text, mode="eval")
    body = tree.body
    if not (isinstance(body, ast.Compare) and isinstance(body.left, ast.Subscript)):
        return
    sl = body.left.slice
    free = [e.id for e in (sl.elts if isinstance(sl, ast.Tuple) else [sl]) if isinstance(e, ast.Name)]
    shifted_axes = list(range(len(free)))[-2:]
    margin = max(max(p.sizes.values()) for p in points)
    extended = [_extended(layer, wrt, text, p, shifted_axes, margin) for p in points]
    if any(e is None for e in extended):
        return
    shifts = _shift_values(layer)
    for deltas in itertools.product(shifts + [sp.Integer(0)], repeat=len(shifted_axes)):
        if all(d == 0 for d in deltas) or not _window_agrees(extended, points, shifted_axes, deltas, margin):
            continue
        mapping = {free[a]: d for a, d in zip(shifted_axes, deltas, strict=True) if d != 0}
        new_right = _shift_names(copy.deepcopy(body.comparators[0]), mapping)
        new = ast.Compare(body.left, [ast.Eq()], [new_right])
        full = [mapping.get(f, sp.Integer(0)) for f in free]
        yield ast.unparse(new), f"shifted by ({', '.join(size_text(d) for d in full)})"


def _extended(layer, wrt, text, point, axes, margin) -> np.ndarray | None:
    """The claim's body at every index of ``wrt``'s shape, ``margin`` beyond it on ``axes``."""
    try:
        claim = parse_claim(text, layer, wrt)
    except Exception:  # noqa: BLE001
        return None
    shape = point.gradient.shape
    ranges = [range(-margin, d + margin) if k in axes else range(d) for k, d in enumerate(shape)]
    ev = concrete.Evaluator(point.sizes, point.values)
    out = np.empty(tuple(len(r) for r in ranges))
    try:
        for pos, idx in zip(
            itertools.product(*(range(len(r)) for r in ranges)), itertools.product(*ranges), strict=True
        ):
            ev.env.update(dict(zip(claim.index, idx, strict=True)))
            out[pos] = float(ev.value(claim.body))
    except Exception:  # noqa: BLE001  (undefined beyond the shape: no shifted variant)
        return None
    return out


def _window_agrees(extended, points, axes, deltas, margin) -> bool:
    for ext, p in zip(extended, points, strict=True):
        window = [slice(None)] * ext.ndim
        for a, d in zip(axes, deltas, strict=True):
            k = int(d.xreplace(p.sizes))
            if abs(k) > margin:
                return False
            window[a] = slice(margin + k, margin + k + p.gradient.shape[a])
        if not np.allclose(ext[tuple(window)], p.gradient, rtol=1e-7, atol=1e-9):
            return False
    return True


def _shift_names(node: ast.AST, mapping: dict) -> ast.AST:
    """``node`` with each index name ``p`` read as ``p + shift``, every subscript simplified
    (``g[p - kh + 1 + m]``, not ``g[p + (1 - kh) + m]``)."""
    symbols = {name: sp.Symbol(name, integer=True) for name in mapping}

    class Shift(ast.NodeTransformer):
        def visit_Subscript(self, n):
            elts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            new = [_shifted_index(e, mapping, symbols) for e in elts]
            n.slice = ast.Tuple(new, ast.Load()) if isinstance(n.slice, ast.Tuple) else new[0]
            return n

    return ast.fix_missing_locations(Shift().visit(node))


def _shifted_index(elt: ast.AST, mapping: dict, symbols: dict) -> ast.AST:
    names = {n.id for n in ast.walk(elt) if isinstance(n, ast.Name)}
    if not names & set(mapping):
        return elt
    local = {n: sp.Symbol(n, integer=True) for n in names} | symbols
    expr = sp.sympify(ast.unparse(elt), locals=local)
    shifted = expr.xreplace(
        {
            symbols[k]: symbols[k] + v.xreplace({s: local.get(str(s), s) for s in v.free_symbols})
            for k, v in mapping.items()
        }
    )
    return ast.parse(size_text(sp.expand(shifted) if not shifted.has(sp.floor) else shifted), mode="eval").body


def candidate_assumptions(layer) -> list[str]:
    """Tensor assumptions a claim may be missing, built from the layer's tensors: every
    constant tensor summing to 1 (in all, or along one axis), every input positive.

    >>> candidate_assumptions("mse")[:2]
    ['sum(t) == 1', 'sum(t, axis=0) == 1']
    """
    layer = as_layer(layer)
    stated = {a.text for a in layer.assumptions}
    out = []
    for name in layer.constants:
        rank = len(layer.inputs[name])
        if rank:
            out.append(f"sum({name}) == 1")
            out += [f"sum({name}, axis={k}) == 1" for k in range(rank)] if rank > 1 else []
    out += [f"{n} > 0" for n in layer.differentiable if layer.inputs[n]]
    return [a for a in out if a not in stated]


# -- screening and proof -------------------------------------------------------------------
def claim_values(layer, wrt: str, text: str, points) -> list[np.ndarray] | None:
    """A claim's values at the test points (None when it does not evaluate there)."""
    try:
        claim = parse_claim(text, layer, wrt)
        tensor = claim_tensor(claim, layer)
        out = []
        for p in points:
            values = {k: v for k, v in p.values.items()}
            out.append(np.asarray(concrete.evaluate(tensor, p.sizes, values), dtype=float))
    except Exception:  # noqa: BLE001  (a variant that does not parse or evaluate is no variant)
        return None
    if not all(np.all(np.isfinite(v)) for v in out):
        return None
    return out


def _screened(layer, wrt, text: str, points) -> tuple[str, sp.Expr] | None:
    """(``text``, 1) when it agrees with the gradient at the points, (``text`` times a
    factor of sizes, the factor) when that agrees, else None."""
    values = claim_values(layer, wrt, text, points)
    if values is None:
        return None
    if agrees(values, points):
        return text, sp.Integer(1)
    ratios = point_ratios(values, points)
    factor = size_factor(ratios, points, layer.sizes) if ratios is not None else None
    if factor is None:
        return None
    if "==" in text:
        lhs, rhs = text.split("==", 1)
        return f"{lhs.strip()} == {_scaled(rhs.strip(), factor)}", factor
    return _scaled(text, factor), factor


def _scaled(text: str, factor) -> str:
    prec = ATOM if _is_call(text) else 1
    return scaled_text(text, prec, factor, lambda p: text if prec >= p else f"({text})")


def _is_call(text: str) -> bool:
    body = ast.parse(text, mode="eval").body
    return isinstance(body, ast.Call | ast.Name | ast.Attribute)


def _factor_words(factor) -> str:
    if factor == -1:
        return "the sign is the other way"
    return f"a factor {factor} is missing"


def nearest_variants(
    layer, wrt: str, claim: str, *, timeout: float = 10.0, assume=(), candidates: int | None = None
) -> tuple[Variant, ...]:
    """The nearest proved variants of a (refuted) claim, each with what it changes.

    ``candidates`` bounds the edits screened (None: all, within ``timeout``): a bound that
    gives the same answer on every machine.

    >>> [v.explanation for v in nearest_variants("conv2d", "x", "convolve(g, flip(w), 'full')")][:1]
    ["holds with `convolve(g, w, 'full')`: the kernel w is not flipped"]
    """
    from ..decide.pose import checked_timeout, prove

    deadline = time.monotonic() + checked_timeout(timeout)
    layer = as_layer(layer)
    layer.require_differentiable(wrt)
    if getattr(layer, "functions", ()):
        return ()  # edits are screened at numeric points: an abstract f (functions = ["f"]) has no value
    points = test_points(layer, wrt)
    parsed = parse_claim(claim, layer, wrt)
    edits = index_edits(claim, layer, wrt, points) if parsed.is_index_form else closed_edits(claim, layer)
    found: list[Variant] = []
    seen = {claim}
    kept: list = []  # values of the variants kept: one variant per value (axis=-1 is axis=1)
    edits = list(edits) if candidates is None else list(itertools.islice(edits, candidates))
    # a wrong sign or factor dropped first, then the claim up to a factor, then the other edits
    first = [e for e in edits if e[1].startswith(("the sign", "no factor", "no division"))]
    rest = [e for e in edits if e not in first]
    for text, why in itertools.chain(first, [(claim, "")], rest):
        if len(found) >= MAX_VARIANTS or time.monotonic() > deadline:
            break
        screened = _screened(layer, wrt, text, points)
        if screened is None or screened[0] in seen:
            continue
        variant, factor = screened
        if why.startswith(("the sign", "no factor", "no division")) and factor != 1:
            continue  # a dropped factor is the whole edit, or no edit
        seen.add(variant)
        values = claim_values(layer, wrt, variant, points)
        if values is None or any(all(np.allclose(a, b) for a, b in zip(values, k, strict=True)) for k in kept):
            continue
        words = [w for w in (why, "" if factor == 1 else _factor_words(factor)) if w]
        verdict = prove(layer, wrt, variant, assume=assume, timeout=max(0.5, deadline - time.monotonic()))
        if verdict.proved:
            kept.append(values)
            shift = _shift_of(why) if factor == 1 else ()
            found.append(Variant(variant, f"holds with `{variant}`: {'; '.join(words)}", (), verdict, shift))
    if not found:
        found += _missing_assumptions(layer, wrt, claim, deadline, assume)
    return tuple(found[:MAX_VARIANTS])


def _shift_of(why: str) -> tuple[str, ...]:
    """The shift of an index edit's words, one size expression per free index
    (``shifted by (H - kh, 0)``: ``("H - kh", "0")``), else ()."""
    if not why.startswith("shifted by ("):
        return ()
    return tuple(why[len("shifted by (") : -1].split(", "))


def _missing_assumptions(layer, wrt, claim, deadline, assume) -> list[Variant]:
    from ..decide.pose import parse_assumptions, prove

    out = []
    for text in candidate_assumptions(layer):
        if time.monotonic() > deadline:
            break
        try:
            extra = parse_assumptions([text], layer)
            points = test_points(layer, wrt, extra=tuple(extra))
        except Exception:  # noqa: BLE001  (an assumption the layer cannot take is no candidate)
            continue
        values = claim_values(layer, wrt, claim, points)
        if values is None or not agrees(values, points):
            continue
        verdict = prove(layer, wrt, claim, assume=[*assume, text], timeout=max(0.5, deadline - time.monotonic()))
        if verdict.proved:
            out.append(Variant(claim, f"holds if {text}", (text,), verdict))
    return out


def with_variants(verdict: Verdict, layer, *, timeout: float = VARIANT_SECONDS) -> Verdict:
    """``verdict`` carrying the nearest true variants of its claim (``verdict.variants``) when
    it is a refuted gradient claim and some are found within ``timeout`` seconds; any other
    verdict as it is.

    >>> from symderive.prove import prove
    >>> v = with_variants(prove("linear", "x", "w @ g"), "linear")
    >>> v.variants[0].claim
    'g @ w'
    """
    import dataclasses

    if verdict.verdict != "refuted" or not verdict.wrt or verdict.variants:
        return verdict
    found = nearest_variants(layer, verdict.wrt, verdict.claim, timeout=timeout, assume=verdict.assumptions)
    return dataclasses.replace(verdict, variants=found) if found else verdict


# -- identities: the steps of a derivation document (``symderive audit``) ----------------------
#: edited right sides the search for an identity's variant screens (a count, not seconds: the
#: same variants on every machine); each is screened with every index shift at once
IDENTITY_CANDIDATES = 24
#: proofs that search asks at most (a screened candidate that is not proved is not shown)
IDENTITY_PROOFS = 2
#: seconds each of those proofs may take: a bound for a proof that will not come, far above what
#: a variant's proof takes (under 1.5 s), so that a loaded machine shows the same variants
IDENTITY_PROOF_SECONDS = 6.0
#: test points an identity's candidates are screened at
IDENTITY_POINTS = 2


def identity_points(layer, count: int = IDENTITY_POINTS, seed: int = 0, extra=()) -> tuple[TestPoint, ...]:
    """``count`` points (sizes and values of every name an identity may read: the inputs, ``g``,
    the intermediates and the output) where the layer's assumptions and ``extra`` hold.

    >>> p = identity_points(as_layer("linear"), count=1)[0]
    >>> sorted(p.values)
    ['b', 'g', 'w', 'x', 'y']
    """
    layer = as_layer(layer)
    points = []
    for k, sizes in enumerate(_telling_sizes(layer, draw_sizes(layer, 4 * count, seed, extra), count)):
        values = point_values(layer, sizes, np.random.default_rng(seed * 1000 + k + 1), extra)
        points.append(TestPoint(sizes, values, np.zeros(0)))
    return tuple(points)


def _telling_sizes(layer, drawn: list[dict], count: int) -> list[dict]:
    """``count`` of the drawn sizes at which the index shifts take the most distinct values
    together (``H - kh`` and ``W - kw`` equal at every point would not be told apart)."""
    shifts = _shift_values(layer)
    # a size of 1 makes points where everything is 0 (a softmax of one score is 1): not chosen
    # when there are enough others
    drawn = (
        [s for s in drawn if min(s.values(), default=2) >= 2]
        if sum(min(s.values(), default=2) >= 2 for s in drawn) >= count
        else drawn
    )
    if len(drawn) <= count or not shifts:
        return drawn[:count]

    def told(group) -> int:
        return len({tuple(int(d.xreplace(s)) for s in group) for d in shifts})

    groups = list(itertools.combinations(drawn, count))
    # most shifts told apart, then the smallest sizes (the grids are evaluated element by element)
    return list(max(groups, key=lambda group: (told(group), -sum(sum(s.values()) for s in group))))


def _wrapped(condition: str, side: str) -> str:
    return f"{condition} * ({side})" if condition else side


@dataclass(frozen=True)
class _Grid:
    """Where an identity's free indices are looked at, per point: from ``low`` for ``count``
    values each, and ``margin`` more on both sides for the shifted right sides."""

    low: tuple[int, ...]
    count: tuple[int, ...]
    margin: int


def _free_guards(left, free: set) -> sp.Expr:
    """The 0/1 factors of the (parsed) left side on its free indices and the sizes alone: the
    ranges of the free indices and the link's condition. A shifted right side is compared
    where they are 1, at the unshifted indices (a guard of the left's own only makes the
    screen looser: the proof decides).

    >>> from symderive.core.ir import Iverson, index_symbol
    >>> i = index_symbol("i")
    >>> _free_guards(Iverson(i >= 0) * sp.IndexedBase("x")[i], {i})
    Iverson(i >= 0)
    """
    from ..core.ir import Iverson

    out = sp.Integer(1)
    for factor in sp.Mul.make_args(left):
        base, exp = factor.as_base_exp()
        if isinstance(base, Iverson) and exp.is_positive and not base.has(sp.Indexed):
            symbols = base.free_symbols
            if all(s in free or s.is_positive for s in symbols):
                out *= base
    return out


def _cropped(grid: _Grid, mask: np.ndarray | None) -> _Grid:
    """The grid narrowed to the box where the mask is not 0 (one point when it is 0 everywhere)."""
    if mask is None:
        return grid
    hit = np.argwhere(mask != 0)
    if not len(hit):
        return _Grid(grid.low, tuple(1 for _ in grid.count), grid.margin)
    first, last = hit.min(axis=0), hit.max(axis=0)
    low = tuple(int(lo + f) for lo, f in zip(grid.low, first, strict=True))
    return _Grid(low, tuple(int(b - a + 1) for a, b in zip(first, last, strict=True)), grid.margin)


class _IdentityScreen:
    """The left side of an identity at the test points, and a candidate right side compared
    with it there: as it is, up to a factor of sizes, and shifted in its free indices."""

    def __init__(self, layer, left: str, right: str, condition: str, points, parses: dict | None = None):
        from ..calculus.elements import layer_calculus

        self.layer, self.points, self.condition = layer, points, condition
        # parsed texts, shared by the screens of one search (the points change, not the sides)
        self.parses = {} if parses is None else parses
        self.left_text = _wrapped(condition, left)
        self.calculus = layer_calculus(layer)
        whole = self._parse(f"{_wrapped(condition, left)} == {_wrapped(condition, right)}")
        self.free = whole.free
        self.names = tuple(str(f) for f in self.free)
        self.shifts = _shift_values(layer) if self.free else []
        self.axes = list(range(len(self.free)))[-2:]
        if self.free:
            # the left side and the mask (the free indices' ranges and the link's condition): the
            # mask is applied to a shifted right side at the unshifted indices
            mask = _free_guards(whole.left, set(self.free))
            grids = [self._grid(whole, p) for p in points]
            masks = [self._values(mask, p, g, 0) for p, g in zip(points, grids, strict=True)]
            # both sides are 0 outside the mask: only its box is compared
            self.grids = [_cropped(g, m) for g, m in zip(grids, masks, strict=True)]
            self.left = [self._values(whole.left, p, g, 0) for p, g in zip(points, self.grids, strict=True)]
            self.mask = [self._values(mask, p, g, 0) for p, g in zip(points, self.grids, strict=True)]
        else:
            self.left = [self._tensor_values(whole.left, p) for p in points]
        self.ready = all(v is not None for v in self.left)

    def _parse(self, text: str):
        from ..core.parse import parse_identity

        if text not in self.parses:
            self.parses[text] = parse_identity(text, self.layer.scope(), list(self.layer.sizes), calculus=self.calculus)
        return self.parses[text]

    def _grid(self, whole, point) -> _Grid:
        from ..decide.pose import support_width

        everything = sum((d for shape in self.layer.inputs.values() for d in shape), sp.Integer(0))
        widths = [
            int(
                sp.sympify(support_width(f, (whole.left, whole.right), self.layer.scope(), everything)).xreplace(
                    point.sizes
                )
            )
            for f in self.free
        ]
        margin = max((abs(int(d.xreplace(point.sizes))) for d in self.shifts), default=0)
        return _Grid(tuple(-w for w in widths), tuple(2 * w + 1 for w in widths), margin)

    def _values(self, expr, point, grid: _Grid, margin: int) -> np.ndarray | None:
        """``expr`` at every free index of the grid, ``margin`` beyond it on the shifted axes."""
        ranges = [
            range(lo - margin, lo + n + margin) if k in self.axes else range(lo, lo + n)
            for k, (lo, n) in enumerate(zip(grid.low, grid.count, strict=True))
        ]
        shape = tuple(len(r) for r in ranges)
        grid = np.meshgrid(*(np.arange(r.start, r.stop) for r in ranges), indexing="ij")
        try:
            with np.errstate(all="ignore"):
                value = _GridEvaluator(point.sizes, point.values, dict(zip(self.free, grid, strict=True))).value(expr)
            out = np.broadcast_to(np.asarray(value, dtype=float), shape).copy()
            return out if np.all(np.isfinite(out)) else None
        except _NotVectorised:
            pass
        except Exception:  # noqa: BLE001  (a side that does not evaluate here is no candidate)
            return None
        ev = concrete.Evaluator(point.sizes, point.values)
        out = np.empty(shape)
        try:
            for pos, idx in zip(
                itertools.product(*(range(len(r)) for r in ranges)), itertools.product(*ranges), strict=True
            ):
                ev.env.update(dict(zip(self.free, idx, strict=True)))
                out[pos] = float(ev.value(expr))
        except Exception:  # noqa: BLE001  (a side that does not evaluate here is no candidate)
            return None
        return out if np.all(np.isfinite(out)) else None

    @staticmethod
    def _tensor_values(tensor, point) -> np.ndarray | None:
        try:
            value = np.asarray(concrete.evaluate(tensor, point.sizes, point.values), dtype=float)
        except Exception:  # noqa: BLE001
            return None
        return value if np.all(np.isfinite(value)) else None

    def values(self, candidate: str) -> list[np.ndarray] | None:
        """``candidate`` at the points (beyond the grid on the shifted axes), or None when it
        does not evaluate or already differs from the left side at the first point at every
        shift and factor."""
        try:
            parsed = self._parse(f"1 == {candidate}") if self.free else self._parse(f"{self.left_text} == {candidate}")
        except Exception:  # noqa: BLE001  (an edit that does not parse is no candidate)
            return None
        if not self.free:
            values = [self._tensor_values(parsed.right, p) for p in self.points]
            return None if any(v is None for v in values) else values
        if not {str(f) for f in parsed.free} <= set(self.names):
            return None
        values = []
        for p, g in zip(self.points, self.grids, strict=True):
            v = self._values(parsed.right, p, g, g.margin)
            if v is None:
                return None
            values.append(v)
            if len(values) == 1 and not self._any_window(values, 1):
                return None  # most candidates already differ at the first point
        return values

    def exact(self, candidate: str, values) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(right side, what changed, ()) when ``candidate``'s values agree with the left side
        at the points as they are, or times a factor of sizes."""
        if values is None:
            return
        if not self.free:
            yield from self._scaled_matches(candidate, values, ())
            return
        yield from self._scaled_matches(candidate, self._window_values(values, tuple(0 for _ in self.axes)), ())

    def shifted(self, candidate: str, values) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(right side, ``shifted by (..)``, shift) for each shift of the free indices at which
        ``candidate``'s values agree with the left side at the points."""
        if values is None or not self.free:
            return
        for deltas in self._deltas():
            windows = self._window_values(values, deltas)
            if all(np.allclose(w, t, rtol=1e-7, atol=1e-9) for w, t in zip(windows, self.left, strict=True)):
                mapping = {self.names[a]: d for a, d in zip(self.axes, deltas, strict=True) if d != 0}
                shift = tuple(size_text(mapping.get(n, sp.Integer(0))) for n in self.names)
                yield _shifted_side(candidate, mapping), f"shifted by ({', '.join(shift)})", shift

    def matches(self, candidate: str) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(right side, what changed, shift) for each way ``candidate`` agrees with the left
        side at the points: as it is, times a factor of sizes, or shifted."""
        values = self.values(candidate)
        yield from self.exact(candidate, values)
        yield from self.shifted(candidate, values)

    def _deltas(self) -> list[tuple]:
        """Every shift of the shifted axes but none, fewest shifted axes first."""
        every = itertools.product([sp.Integer(0), *self.shifts], repeat=len(self.axes))
        return sorted((d for d in every if any(x != 0 for x in d)), key=lambda d: sum(x != 0 for x in d))

    def _window_values(self, values, deltas) -> list[np.ndarray] | None:
        out = []
        for v, p, g, mask in zip(values, self.points, self.grids, self.mask, strict=False):
            window = [slice(None)] * v.ndim
            for a, d in zip(self.axes, deltas, strict=True):
                k = int(sp.sympify(d).xreplace(p.sizes))
                window[a] = slice(g.margin + k, g.margin + k + g.count[a])
            out.append(v[tuple(window)] * mask)
        return out

    def _any_window(self, values, points: int) -> bool:
        """Whether the first ``points`` points' values agree with the left side, up to a factor,
        at no shift or at some shift: a quick rejection."""
        for deltas in [tuple(sp.Integer(0) for _ in self.axes), *self._deltas()]:
            windows = self._window_values(values[:points], deltas)
            if all(_proportional(w, t) for w, t in zip(windows, self.left[:points], strict=False)):
                return True
        return False

    def _scaled_matches(self, candidate: str, values, shift) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        if any(v is None for v in values):
            return
        targets = [_Target(p.sizes, t) for p, t in zip(self.points, self.left, strict=True)]
        if agrees(values, targets):
            yield candidate, "", shift
            return
        ratios = point_ratios(values, targets)
        factor = size_factor(ratios, targets, self.layer.sizes) if ratios is not None else None
        if factor is not None:
            yield _scaled(candidate, factor), _factor_words(factor), shift


class _NotVectorised(Exception):
    """An expression the grid evaluator does not know (the element-by-element one is used)."""


#: SymPy functions the grid evaluator computes with NumPy: the element evaluator's own table
_GRID_FUNCTIONS = concrete.FLOAT_FUNCTIONS


class _GridEvaluator:
    """An element expression at every free index of a grid at once (NumPy arrays for the free
    indices): a sum's bounds that depend on them become a 0/1 factor over the widest range.

    >>> i = sp.Symbol("i", integer=True)
    >>> _GridEvaluator({}, {"x": np.array([1.0, 2.0])}, {i: np.arange(-1, 3)}).value(sp.IndexedBase("x")[i]).tolist()
    [0.0, 1.0, 2.0, 0.0]
    """

    def __init__(self, sizes: dict, values: dict, free: dict):
        self.env = {**sizes, **free}
        self.fixed = set(self.env)
        self.values = values
        # a subexpression's value depends only on the summation variables in it: computed
        # once per their values (a guard on the free indices alone once in all)
        self._memo: dict = {}
        self._deps: dict = {}

    def value(self, e):
        if e.is_Atom:
            return self._value(e)
        deps = self._deps.get(e)
        if deps is None:
            deps = self._deps[e] = tuple(s for s in e.free_symbols if s not in self.fixed)
        key = (e, tuple(self.env.get(s) for s in deps))
        if key not in self._memo:
            self._memo[key] = self._value(e)
        return self._memo[key]

    def _value(self, e):
        from ..core.ir import Defined, GSum, Iverson

        if e.is_Integer:
            return int(e)
        if e.is_Number or e.is_NumberSymbol:
            return float(e)
        if isinstance(e, sp.Symbol):
            if e in self.env:
                return self.env[e]
            if str(e) in self.values:
                return float(self.values[str(e)][()])
            raise _NotVectorised(str(e))
        if isinstance(e, sp.Indexed):
            return self._read(e)
        if isinstance(e, GSum):
            return self._sum(e.function, list(e.limits))
        if isinstance(e, sp.Add):
            return sum((self.value(a) for a in e.args[1:]), self.value(e.args[0]))
        if isinstance(e, sp.Mul):
            return self._product(e, Iverson)
        if isinstance(e, sp.Pow):
            base, exp = self.value(e.base), self.value(e.exp)
            if isinstance(exp, int) and exp >= 0:
                return base**exp
            return np.power(np.asarray(base, dtype=float), exp)
        if isinstance(e, Iverson):
            return np.where(self.truth(e.args[0]), 1, 0)
        if isinstance(e, sp.KroneckerDelta):
            return np.where(np.equal(self.value(e.args[0]), self.value(e.args[1])), 1, 0)
        if isinstance(e, Defined):
            return np.where(self.truth(e.args[1]), self.value(e.args[0]), np.nan)
        if isinstance(e, sp.Min | sp.Max):
            pick = np.minimum if isinstance(e, sp.Min) else np.maximum
            out = self.value(e.args[0])
            for a in e.args[1:]:
                out = pick(out, self.value(a))
            return out
        if isinstance(e, sp.Piecewise):
            conditions = [np.asarray(self.truth(c)) for _, c in e.args]
            return np.select(conditions, [self.value(v) for v, _ in e.args], np.nan)
        if e.func in _GRID_FUNCTIONS:
            return _GRID_FUNCTIONS[e.func](*(np.asarray(self.value(a), dtype=float) for a in e.args))
        raise _NotVectorised(type(e).__name__)

    def _product(self, e, iverson):
        # a guard that is 0 makes the term 0 even where another factor is undefined (0 * nan)
        guards = [a for a in e.args if isinstance(a, iverson | sp.KroneckerDelta)]
        rest = [a for a in e.args if a not in guards]
        out = 1
        for a in rest:
            out = out * self.value(a)
        if not guards:
            return out
        keep = np.ones((), dtype=bool)
        for a in guards:
            keep = keep & (np.asarray(self.value(a)) != 0)
        return np.where(keep, out, 0)

    def _read(self, e):
        arr = self.values.get(str(e.base.label))
        if arr is None or len(e.indices) != arr.ndim:
            raise _NotVectorised(str(e))
        idx = np.broadcast_arrays(*(np.asarray(self.value(i)) for i in e.indices))
        if any(k.dtype.kind not in "iu" for k in idx):
            raise _NotVectorised(f"a non-integer index in {e}")
        inside = np.ones(idx[0].shape, dtype=bool)
        for k, n in zip(idx, arr.shape, strict=True):
            inside &= (k >= 0) & (k < n)
        clipped = tuple(np.clip(k, 0, max(n - 1, 0)) for k, n in zip(idx, arr.shape, strict=True))
        if arr.size == 0:
            return np.zeros(inside.shape)
        return np.where(inside, arr[clipped], 0.0)

    def _sum(self, body, limits):
        if not limits:
            return self.value(body)
        var, lo, hi = limits[-1]
        lo, hi = np.asarray(self.value(lo)), np.asarray(self.value(hi))
        if lo.size == 0 or lo.dtype.kind not in "iu" or hi.dtype.kind not in "iu":
            raise _NotVectorised("a sum's bounds")
        total = 0
        saved = self.env.get(var)
        first, last = self._read_range(body, var, int(lo.min()), int(hi.max()))
        for v in range(first, last + 1):
            self.env[var] = v
            term = self._sum(body, limits[:-1])
            total = total + (term if lo.ndim == 0 and hi.ndim == 0 else np.where((lo <= v) & (v <= hi), term, 0))
        if saved is None:
            self.env.pop(var, None)
        else:
            self.env[var] = saved
        return total

    def _read_range(self, body, var, first: int, last: int) -> tuple[int, int]:
        """``first``..``last`` narrowed to where every element read that is a factor of the
        body and reads ``var`` (as ``var + c`` or ``c - var``) is inside its array: elsewhere
        the term is 0."""
        for factor in sp.Mul.make_args(body):
            read, exp = factor.as_base_exp()
            if not (isinstance(read, sp.Indexed) and exp.is_positive and str(read.base.label) in self.values):
                continue  # (a read to a negative power is not 0 outside its array: it is undefined)
            shape = self.values[str(read.base.label)].shape
            for index, n in zip(read.indices, shape, strict=False):
                slope = index.coeff(var) if index.is_Add or index == var else 0
                if slope not in (1, -1) or (index - slope * var).has(var):
                    continue
                c = np.asarray(self.value(index - slope * var))
                if c.dtype.kind not in "iu" or c.size == 0:
                    continue
                if slope == 1:  # 0 <= var + c <= n - 1
                    first, last = max(first, -int(c.max())), min(last, n - 1 - int(c.min()))
                else:  # 0 <= c - var <= n - 1
                    first, last = max(first, int(c.min()) - n + 1), min(last, int(c.max()))
        return first, last

    def truth(self, c):
        if c is sp.true or c == sp.true:
            return np.ones((), dtype=bool)
        if c is sp.false or c == sp.false:
            return np.zeros((), dtype=bool)
        if isinstance(c, sp.And | sp.Or):
            parts = [self.truth(a) for a in c.args]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(c, sp.And) else (out | p)
            return out
        if isinstance(c, sp.Not):
            return ~np.asarray(self.truth(c.args[0]), dtype=bool)
        if isinstance(c, sp.Rel):
            ops = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
            ops |= {"==": np.equal, "!=": np.not_equal}
            return ops[c.rel_op](self.value(c.lhs), self.value(c.rhs))
        raise _NotVectorised(type(c).__name__)


@dataclass(frozen=True)
class _Target:
    """A test point's sizes and the left side's values there (what :func:`agrees` compares with)."""

    sizes: dict
    gradient: np.ndarray


def _proportional(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    big = np.abs(a) > 1e-6
    if not big.any():
        return not np.any(np.abs(b) > 1e-9)
    if np.any(np.abs(b[~big]) > 1e-9):
        return False
    r = b[big] / a[big]
    return bool(np.allclose(r, r.flat[0], rtol=1e-7, atol=1e-9)) and r.flat[0] != 0


def _shifted_side(text: str, mapping: dict) -> str:
    """``text`` with each free index ``p`` of ``mapping`` read as ``p + shift``, in element reads
    (simplified: ``x[i - kh + 1 + m]``) and anywhere else (``KroneckerDelta(i + 1, k)``)."""
    tree = ast.parse(text, mode="eval")
    symbols = {name: sp.Symbol(name, integer=True) for name in mapping}

    class Shift(ast.NodeTransformer):
        def visit_Subscript(self, n):
            n.value = self.visit(n.value)
            elts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            new = [_shifted_index(e, mapping, symbols) for e in elts]
            n.slice = ast.Tuple(new, ast.Load()) if isinstance(n.slice, ast.Tuple) else new[0]
            return n

        def visit_Call(self, n):
            n.args = [self.visit(a) for a in n.args]
            n.keywords = [self.visit(k) for k in n.keywords]
            return n

        def visit_Name(self, n):
            if n.id not in mapping:
                return n
            return _shifted_index(n, mapping, symbols)

    return ast.unparse(ast.fix_missing_locations(Shift().visit(tree)))


#: an identity's edits in this order (the start of their words): the usual mistakes first
_IDENTITY_EDIT_ORDER = (
    "the sign",
    "no factor",
    "no division",
    "the sum runs the other way",
    "not flipped about the origin",
    "is not flipped",
    "the indices of",
    "must be flipped",
    "mode",
    "convolve",
    "correlate",
    "conv",
    "the operands",
    "the two",
)


def identity_edits(text: str, layer, index_level: bool = True) -> list[tuple[str, str]]:
    """(right side, what it changes) for each one-place edit of an identity's right side, the
    usual mistakes first: a flip removed or added, an element read with its indices the
    other way round, convolve for correlate, another mode, a transpose (of whole arrays:
    ``index_level`` is False).

    >>> identity_edits("Sum(x[i + m, j + n] * flip(w)[m, n], m, n)", as_layer("conv2d"))[:2]
    [('Sum(x[i - m, j - n] * flip(w)[m, n], m, n)', 'x is read at [i - m, j - n]: the sum runs the other way'), ('Sum(x[i + m, j + n] * w[m, n], m, n)', 'the kernel w is not flipped')]
    """
    out = closed_edits(text, layer) + list(_read_edits(text, layer))
    if index_level:
        # an element is transposed by its indices (_read_edits), a number not at all
        out = [(t, w) for t, w in out if ".T[" not in t and w != "the result is transposed"]

    def rank(edit) -> int:
        return next((k for k, p in enumerate(_IDENTITY_EDIT_ORDER) if p in edit[1]), len(_IDENTITY_EDIT_ORDER))

    return sorted(dict.fromkeys(e for e in out if e[0] != text), key=rank)


def _read_edits(text: str, layer) -> Iterator[tuple[str, str]]:
    """Edits of the element reads and terms: ``g[p + m]`` read as ``g[p - m]`` (the summation
    variables the other way: a convolution for a correlation), ``w[m, n]`` as
    ``flip(w)[m, n]`` and as ``w[n, m]``, and one term's sign the other way."""
    tree = ast.parse(text, mode="eval")
    ranks = {n: len(s) for n, s in layer.inputs.items()} | {"g": len(layer.forward.shape)}
    summed = _summation_names(tree)
    indices = {id(n) for n in _index_positions(tree) for n in ast.walk(n)}
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub) and id(node) not in indices:
            op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            yield (
                _replaced(tree, node, ast.BinOp(node.left, op, node.right)),
                f"the sign of {ast.unparse(node.right)} is the other way",
            )
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ranks):
            continue
        name = node.value.id
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        negated = _negated_reads(elts, summed)
        if negated is not None:
            read = ast.Subscript(ast.Name(name), ast.Tuple(negated, ast.Load()), ast.Load())
            shown = ", ".join(ast.unparse(e) for e in negated)
            yield _replaced(tree, node, read), f"{name} is read at [{shown}]: the sum runs the other way"
        mirrored = _mirrored_reads(elts)
        if mirrored is not None:
            read = ast.Subscript(ast.Name(name), ast.Tuple(mirrored, ast.Load()), ast.Load())
            shown = ", ".join(ast.unparse(e) for e in mirrored)
            yield _replaced(tree, node, read), f"{name} is read at [{shown}]: not flipped about the origin"
        flipped = ast.Subscript(ast.Call(ast.Name("flip"), [ast.Name(name)], []), node.slice, ast.Load())
        yield _replaced(tree, node, flipped), f"{name} must be flipped"
        if len(elts) == 2 and ranks[name] == 2:
            swapped = ast.Subscript(ast.Name(name), ast.Tuple([elts[1], elts[0]], ast.Load()), ast.Load())
            yield _replaced(tree, node, swapped), f"the indices of {name} are the other way round ({name} transposed)"


def _index_positions(tree: ast.AST) -> list[ast.AST]:
    """The index expressions of ``tree``: element reads' subscripts and a sum's ranges."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            out.append(node.slice)
        if _call_name(node) in ("Sum", "KroneckerDelta"):
            out += node.args[1:] if _call_name(node) == "Sum" else node.args
    return out


def _summation_names(tree: ast.AST) -> set[str]:
    """The names a ``Sum(body, m, (n, lo, hi))`` anywhere in ``tree`` binds."""
    out = set()
    for node in ast.walk(tree):
        if _call_name(node) == "Sum":
            for arg in node.args[1:]:
                if isinstance(arg, ast.Name):
                    out.add(arg.id)
                elif isinstance(arg, ast.Tuple) and arg.elts and isinstance(arg.elts[0], ast.Name):
                    out.add(arg.elts[0].id)
    return out


def _mirrored_reads(elts: list) -> list | None:
    """The index expressions negated (``x[-m - a]`` read as ``x[m + a]``) when every one of them
    is written with a leading minus, else None."""
    out = []
    for e in elts:
        names = {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}
        try:
            expr = sp.sympify(ast.unparse(e), locals={n: sp.Symbol(n, integer=True) for n in names})
        except (sp.SympifyError, SyntaxError, TypeError):
            return None
        if expr == 0 or not expr.could_extract_minus_sign():
            return None
        out.append(ast.parse(size_text(sp.expand(-expr)), mode="eval").body)
    return out


def _negated_reads(elts: list, summed: set[str]) -> list | None:
    """The index expressions with every summation variable negated (``p + m`` as ``p - m``),
    or None when no index is affine in one."""
    out, changed = [], False
    for e in elts:
        names = {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}
        if not names & summed:
            out.append(e)
            continue
        local = {n: sp.Symbol(n, integer=True) for n in names}
        try:
            expr = sp.sympify(ast.unparse(e), locals=local)
        except (sp.SympifyError, SyntaxError, TypeError):
            return None
        new = sp.expand(expr.xreplace({local[n]: -local[n] for n in names & summed}))
        if new == expr:
            out.append(e)
            continue
        out.append(ast.parse(size_text(new), mode="eval").body)
        changed = True
    return out if changed else None


#: the words of an edit that drops a sign or a factor
_DROPPED = ("the sign is the other way", "no factor", "no division")


def identity_variants(
    layer,
    left: str,
    right: str,
    *,
    condition: str = "",
    assume=(),
    candidates: int = IDENTITY_CANDIDATES,
    proofs: int = IDENTITY_PROOFS,
    proof_seconds: float = IDENTITY_PROOF_SECONDS,
) -> tuple[Variant, ...]:
    """The nearest proved variant of a refuted identity ``left == right`` (its right side edited:
    shifted in its free indices, a flip, a transposed read, convolve for correlate, a mode, a
    sign or factor; or an assumption it is missing), or () when none is found within
    ``candidates`` edits and ``proofs`` proofs. ``condition`` multiplies both sides (the 0/1
    condition that the free indices are in range). Only a proved variant is returned.

    >>> conv = "Sum(x[i - m, j - n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1))"
    >>> v = identity_variants("conv2d", conv, "Sum(x[i + m, j + n] * flip(w)[m, n], (m, 0, kh - 1), (n, 0, kw - 1))")
    >>> v[0].explanation.split(": ")[-1]
    'shifted by (1 - kh, 1 - kw)'
    """
    from ..decide.pose import parse_assumptions

    layer = as_layer(layer)
    try:
        points = identity_points(layer, extra=tuple(parse_assumptions(list(assume), layer)))
        screen = _IdentityScreen(layer, left, right, condition, points)
    except Exception:  # noqa: BLE001  (a step the screen cannot evaluate gets no variant)
        return ()
    if not screen.ready:
        return ()
    budget = [proofs]
    edits = identity_edits(right, layer, bool(screen.free))
    # a sign or factor dropped (the whole edit: only as they are), the side as it is (up to a
    # factor, or shifted: an off-by-one), then every other edit as it is, then shifted
    first = [e for e in edits if e[1].startswith(_DROPPED)]
    rest = [e for e in edits if e not in first][: max(candidates - len(first), 0)]
    values: dict[str, list | None] = {}

    def tried(text: str, why: str, kinds) -> Variant | None:
        if text not in values:
            values[text] = screen.values(text)
        for kind in kinds:
            for variant, more, shift in kind(text, values[text]):
                if variant == right or budget[0] <= 0 or (why.startswith(_DROPPED) and (more or shift)):
                    continue
                found = _proved_identity(layer, left, variant, condition, assume, proof_seconds, budget)
                if found is not None:
                    words = "; ".join(w for w in (why, more) if w)
                    return Variant(f"{left} == {variant}", f"holds with `{variant}`: {words}", (), found, shift)
        return None

    passes = [(first, (screen.exact,)), ([(right, "")], (screen.exact, screen.shifted))]
    passes += [(rest, (screen.exact,)), (rest, (screen.shifted,))]
    for group, kinds in passes:
        for text, why in group:
            found = tried(text, why, kinds)
            if found is not None:
                return (found,)
            if budget[0] <= 0:
                return ()
    return _missing_identity_assumptions(layer, left, right, condition, assume, proof_seconds, budget, screen.parses)


def proved_step(
    layer,
    left: str,
    right: str,
    condition: str = "",
    assume=(),
    seconds: float = IDENTITY_PROOF_SECONDS,
    cross_check: bool = True,
):
    """The prover's verdict when it proves ``left == right`` (both sides times ``condition``),
    else None: the same decision as any step's, with its second check by exact evaluation at
    the smallest sizes (the screen's test points have no size of 1) unless ``cross_check`` is
    False (another spelling of a variant already proved and checked).

    >>> proved_step("linear", "dx", "w.T @ g") is not None, proved_step("linear", "dx", "w @ g")
    (True, None)
    """
    from ..decide.pose import prove_identity

    text = f"{_wrapped(condition, left)} == {_wrapped(condition, right)}"
    try:
        verdict = prove_identity(layer, text, assume=assume, timeout=seconds, cross_check=cross_check)
    except Exception:  # noqa: BLE001  (a variant the prover cannot read is not shown)
        return None
    return verdict if verdict.proved else None


def _proved_identity(layer, left, right, condition, assume, seconds, budget) -> Verdict | None:
    budget[0] -= 1
    return proved_step(layer, left, right, condition, assume, seconds)


def _missing_identity_assumptions(
    layer, left, right, condition, assume, seconds, budget, parses=None
) -> tuple[Variant, ...]:
    """``left == right`` proved under one more of the layer's candidate assumptions."""
    from ..decide.pose import parse_assumptions

    for text in candidate_assumptions(layer):
        if budget[0] <= 0 or text in assume:
            break
        try:
            extra = tuple(parse_assumptions([*assume, text], layer))
            screen = _IdentityScreen(layer, left, right, condition, identity_points(layer, extra=extra), parses)
        except Exception:  # noqa: BLE001  (an assumption the layer cannot take is no candidate)
            continue
        if not screen.ready or not any(not more and not shift for _, more, shift in screen.matches(right)):
            continue
        found = _proved_identity(layer, left, right, condition, (*assume, text), seconds, budget)
        if found is not None:
            return (Variant(f"{left} == {right}", f"holds if {text}", (text,), found),)
    return ()
