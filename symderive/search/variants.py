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
from .points import test_points
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


def nearest_variants(layer, wrt: str, claim: str, *, timeout: float = 10.0, assume=()) -> tuple[Variant, ...]:
    """The nearest proved variants of a (refuted) claim, each with what it changes.

    >>> [v.explanation for v in nearest_variants("conv2d", "x", "convolve(g, flip(w), 'full')")][:1]
    ["holds with `convolve(g, w, 'full')`: the kernel w is not flipped"]
    """
    from ..decide.pose import checked_timeout, prove

    deadline = time.monotonic() + checked_timeout(timeout)
    layer = as_layer(layer)
    layer.require_differentiable(wrt)
    points = test_points(layer, wrt)
    parsed = parse_claim(claim, layer, wrt)
    edits = index_edits(claim, layer, wrt, points) if parsed.is_index_form else closed_edits(claim, layer)
    found: list[Variant] = []
    seen = {claim}
    kept: list = []  # values of the variants kept: one variant per value (axis=-1 is axis=1)
    edits = list(edits)
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
            found.append(Variant(variant, f"holds with `{variant}`: {'; '.join(words)}", (), verdict))
    if not found:
        found += _missing_assumptions(layer, wrt, claim, deadline, assume)
    return tuple(found[:MAX_VARIANTS])


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
