"""Posing questions about a layer as problems, and answering them as verdicts.

The decider (:mod:`symderive.decide.symbolic`, :mod:`symderive.decide.search`) works on a
:class:`~symderive.decide.problem.Problem` and never sees a layer; this module builds one:
:func:`gradient_problem` (the gradient on the left, a claim on the right) and
:func:`identity_problem` (any two expressions over a layer's tensors), and turns the
decision into a :class:`~symderive.decide.verdict.Verdict` (:func:`prove`,
:func:`prove_identity`, :func:`prove_concrete`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import time
from collections.abc import Sequence

import sympy as sp

from ..calculus.derive import NotDifferentiable, derive
from ..calculus.elements import layer_calculus
from ..clock import MAX_SECONDS, ClaimTimeout, wall_clock
from ..core.assumptions import Assumption
from ..core.cache import Same
from ..core.ir import Tensor, from_scalar, index_symbol, substituted
from ..core.parse import claim_tensor, parse_assumption, parse_claim, parse_identity
from ..errors import InputError, InternalError
from ..model.layer import Layer, as_layer, check_extra_assumptions
from . import search
from .concrete import STAND_INS, stand_ins, tensor_with_stand_ins, with_stand_ins
from .problem import Differentiation, Problem, concrete_shapes
from .symbolic import PROOF_DETAIL, Decision, decide, symbolic_outcome
from .verdict import PROVED, REFUTED, UNKNOWN, Verdict


class Memo:
    """What proving claims about one layer object has found so far: derivations and final verdicts.

    Owned and passed explicitly by whoever proves many claims about one layer (a batch of
    the command line, a report); nothing is kept anywhere else.

    >>> memo = Memo()
    >>> prove("linear", "x", "w.T @ g", memo=memo).verdict, len(memo.verdicts)
    ('proved', 1)
    """

    def __init__(self):
        self.derivations: dict = {}
        self.verdicts: dict = {}


# -- assumptions -----------------------------------------------------------------------------------
def parse_assumptions(texts: Sequence[str], layer: Layer) -> list[Assumption]:
    """Extra assumption strings, parsed exactly like a layer file's ``assume`` entries.

    >>> [a.kind for a in parse_assumptions(["n >= 2"], as_layer("linear"))]
    ['size']
    """
    return [parse_assumption(t, dict(layer.inputs), list(layer.sizes), where=f"--assume {t!r}") for t in texts]


def extra_assumptions(layer, assume) -> tuple[str, ...]:
    """``assume`` as a tuple of assumption texts, each once, without those the layer states.

    One string is one assumption (not a sequence of characters); None is none.

    >>> extra_assumptions("softmax_cross_entropy", ["n >= 2", "sum(t) == 1", "n >= 2"])
    ('n >= 2',)
    >>> extra_assumptions("linear", "m == n")
    ('m == n',)
    """
    if assume is None:
        return ()
    if not isinstance(assume, str) and not hasattr(assume, "__iter__"):
        raise TypeError(f"assume is a list of assumption strings such as ['n >= 2'], got {type(assume).__name__}")
    texts = (assume,) if isinstance(assume, str) else tuple(assume)
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"an assumption is a string such as 'n >= 2', got {text!r}", where="assume")
    stated = {a.text for a in as_layer(layer).assumptions}
    return tuple(t for t in dict.fromkeys(texts) if t not in stated)


def _context(layer: Layer, extra) -> dict:
    """The Problem fields every question about ``layer`` shares (sizes, tensors, assumptions)."""
    tensors = dict(layer.inputs)
    if not layer.is_loss:
        tensors["g"] = tuple(layer.forward.shape)
    assumptions = tuple(layer.assumptions) + tuple(a for a in extra if isinstance(a, Assumption))
    size_conditions = [a.cond for a in assumptions if a.kind == "size"]
    size_conditions += [a for a in extra if not isinstance(a, Assumption)]
    return {
        "sizes": tuple(layer.sizes),
        "tensors": tensors,
        "scope": layer.scope(),
        "size_conditions": tuple(size_conditions),
        "assumptions": tuple(a for a in assumptions if a.kind in ("equal", "sign")),
        "texts": tuple(a.text for a in assumptions if isinstance(a, Assumption)),
    }


# -- the gradient as a problem ------------------------------------------------------------------
def derivation_of(layer: Layer, wrt: str, memo: Memo | None = None):
    """The prover's (lean) derivation of ``wrt``, remembered in ``memo`` when one is given."""
    if memo is None:
        return _derivation(Same(layer), wrt)
    if wrt not in memo.derivations:
        memo.derivations[wrt] = _derivation(Same(layer), wrt)
    return memo.derivations[wrt]


# Cached: derive is a pure function of a frozen layer and a name; a layer loaded by name or path
# is one object per file text (model.layer.layer_from_text), so its claims share one derivation.
@functools.lru_cache(maxsize=64)
def _derivation(key: Same, wrt: str):
    return derive(key.value, wrt)


def gradient_problem(layer, wrt: str, claim, extra=(), memo: Memo | None = None, symbolic: bool = True) -> Problem:
    """The problem "the gradient of ``layer``'s loss w.r.t. ``wrt`` equals ``claim``".

    ``claim`` is a claim's text or its tensor; ``extra`` parsed extra assumptions;
    ``symbolic=False`` leaves the derivation out (for the concrete search alone).

    >>> p = gradient_problem("linear", "x", "w.T @ g")
    >>> p.name, p.shape
    ("'w.T @ g' for linear/x", (n,))
    """
    layer = as_layer(layer)
    if isinstance(claim, str):
        text, tensor = claim, claim_tensor(parse_claim(claim, layer, wrt), layer)
    else:
        text, tensor = "the claim", claim
    shape = tuple(layer.inputs[wrt])
    reference = Differentiation(
        layer.forward, loss=layer.is_loss, wrt=wrt, sizes=tuple(layer.sizes), tensors=_context(layer, ())["tensors"]
    )
    free, element, reason = (), None, "the gradient was not derived"
    if symbolic:
        try:
            d = derivation_of(layer, wrt, memo)
            free, element, reason = d.index, d.gradient, ""
        except NotDifferentiable as exc:
            reason = str(exc)
    left = Tensor(shape=shape, element=_no_element, zero_outside=True)
    return Problem(
        name=f"{text!r} for {layer.name}/{wrt}",
        left=left,
        right=tensor,
        free=tuple(free),
        element=element,
        left_reason=reason,
        reference=reference,
        **_context(layer, extra),
    )


def _no_element(idx):
    # the gradient's values come from its reference (differentiation), never from this tensor
    raise NotImplementedError("the gradient side is computed by differentiation")


# -- identities as problems -------------------------------------------------------------------
def identity_problem(context, text: str, extra=()) -> Problem:
    """The problem "``LHS == RHS``" over the tensors, sizes and assumptions of a layer.

    The sides are closed forms (arrays of one shape, compared elementwise) or index-level
    scalars; an index variable used on a side but bound by no ``Sum`` is free, ranging over
    all integers (reads outside a tensor are zero, so both sides are defined everywhere).

    >>> identity_problem("linear", "transpose(transpose(w)) == w").shape
    (m, n)
    """
    layer = as_layer(context)
    parsed = parse_identity(
        text, layer.scope(), list(layer.sizes), calculus=layer_calculus(layer), functions=layer.functions
    )
    common = _used_only(_context(layer, extra), _names(text))
    name = f"{text!r} over {layer.name}"
    sides = dict(left_name="the left side", right_name="the right side")
    if parsed.free:
        # free index variables range over all integers; the concrete search looks at a window
        # wide enough for every read to be in range somewhere (its width only bounds where a
        # counterexample is looked for: a verdict never rests on it)
        everything = sum((d for shape in common["tensors"].values() for d in shape), sp.Integer(0))
        widths = tuple(support_width(f, (parsed.left, parsed.right), layer.scope(), everything) for f in parsed.free)
        window = tuple(2 * w + 1 for w in widths)

        def windowed(expr, valid):
            def element(idx):
                return substituted(expr, parsed.free, [j - w for j, w in zip(idx, widths, strict=True)])

            return Tensor(shape=window, element=element, zero_outside=True, valid=valid)

        return Problem(
            name=name,
            left=windowed(parsed.left, parsed.valid),
            right=windowed(parsed.right, parsed.valid),
            free=tuple(parsed.free),
            element=parsed.left,
            right_element=parsed.right,
            unbounded=True,
            origin=tuple(-w for w in widths),
            **sides,
            **common,
        )
    left, right = parsed.left, parsed.right
    if not isinstance(left, Tensor):
        left = from_scalar(left)
    if not isinstance(right, Tensor):
        right = from_scalar(right)
    free = tuple(index_symbol(f"_e{k}") for k in range(len(left.shape)))
    return Problem(name=name, left=left, right=right, free=free, **sides, **common)


def support_width(free: sp.Symbol, sides, scope: dict, fallback: sp.Expr) -> sp.Expr:
    """How far from 0 a free index can take a side's reads in range: a size expression.

    Per side, the dimensions of the axes read at an index that uses ``free`` or a summation
    variable read together with it (each distinct read position once, times its largest
    coefficient); the larger side's. ``fallback`` (the sum of every tensor's dimensions)
    where a side has a term that reads nothing at ``free`` or an index is not affine.

    >>> from ..core.ir import size_symbol
    >>> n, k, f, a = size_symbol("n"), size_symbol("k"), index_symbol("f"), index_symbol("a")
    >>> x, w = sp.IndexedBase("x", real=True), sp.IndexedBase("w", real=True)
    >>> support_width(f, (x[f - a] * w[a],), {"x": Tensor((n,), None), "w": Tensor((k,), None)}, 9 * n)
    k + n
    """
    best = sp.Integer(0)
    for side in sides:
        width = _side_width(free, sp.sympify(side), scope)
        if width is None:
            return fallback
        best = width if best == 0 else sp.Max(best, width)
    return best if best != 0 else fallback


def _side_width(free, side, scope) -> sp.Expr | None:
    reads = [r for r in side.atoms(sp.Indexed) if str(r.base.label) in scope]
    if not reads:
        return None
    shapes = {str(r.base.label): scope[str(r.base.label)].shape for r in reads}
    linked, grew = {free}, True
    while grew:
        grew = False
        for r in reads:
            for e in r.indices:
                symbols = {s for s in e.free_symbols if s.is_integer and not s.is_positive}
                if symbols & linked and not symbols <= linked:
                    linked |= symbols
                    grew = True
    width, seen = sp.Integer(0), set()
    for r in reads:
        for axis, e in enumerate(r.indices):
            if not (e.free_symbols & linked) or (r.base.label, axis, e) in seen:
                continue
            if e.has(sp.floor, sp.Mod, sp.ceiling):
                return None
            seen.add((r.base.label, axis, e))
            try:
                coefficients = [abs(int(sp.expand(e).coeff(s))) for s in e.free_symbols & linked]
            except TypeError:
                return None
            width += max([1, *coefficients]) * shapes[str(r.base.label)][axis]
    return width if width != 0 else None


def _names(text: str) -> set[str]:
    return {
        n.id
        for n in ast.walk(ast.parse(text.strip(), mode="eval" if "==" in text else "exec"))
        if isinstance(n, ast.Name)
    }


def _used_only(common: dict, used: set[str]) -> dict:
    """The context narrowed to the tensors an identity reads (and the assumptions about them only).

    The search then varies only values that matter; a defined name (the layer's output)
    reads every input, so the context stays whole when the identity uses one.
    """
    tensors = common["tensors"]
    if any(name in common["scope"] and name not in tensors for name in used):
        return common
    keep = {n: s for n, s in tensors.items() if n in used}
    assumptions = tuple(a for a in common["assumptions"] if _names(a.text) & set(tensors) <= set(keep))
    return {**common, "tensors": keep, "assumptions": assumptions}


# -- verdicts ---------------------------------------------------------------------------------
def prove(
    layer, wrt: str, claim: str, assume=(), timeout: float = 60.0, cross_check: bool = True, memo: Memo | None = None
) -> Verdict:
    """Decide whether ``claim`` is the gradient of ``layer``'s loss with respect to ``wrt``.

    ``layer`` is a Layer or a built-in name / path; ``assume`` extra assumption strings;
    ``memo`` keeps derivations and final verdicts for the next claims about this layer
    object. Never ``proved`` on anything less than a proof.

    >>> prove("linear", "x", "w.T @ g").verdict
    'proved'
    """
    if not isinstance(claim, str):
        raise TypeError(f"the claim is a string such as 'w.T @ g', got {type(claim).__name__} {claim!r:.60}")
    timeout = checked_timeout(timeout)
    try:
        # the whole proof is bounded (loading a layer file too), not just the concrete search
        with wall_clock(timeout):
            return _remembered_verdict(layer, wrt, claim, assume, timeout, cross_check, memo)
    except ClaimTimeout:
        name = layer.name if isinstance(layer, Layer) else str(layer)
        return Verdict(UNKNOWN, layer=name, wrt=wrt, claim=claim, reason=timeout_reason(timeout))


def _remembered_verdict(layer, wrt: str, claim: str, assume, timeout: float, cross_check: bool, memo) -> Verdict:
    layer = as_layer(layer)
    layer.require_differentiable(wrt)
    assume = extra_assumptions(layer, assume)
    key = (wrt, claim, tuple(assume), cross_check)
    if memo is not None and key in memo.verdicts:
        return memo.verdicts[key]
    extra = tuple(parse_assumptions(list(assume), layer))
    # under assumptions that cannot hold every claim would be "proved"
    check_extra_assumptions(layer, extra)
    problem = gradient_problem(layer, wrt, claim, extra, memo)
    decision = decided(problem, layer.functions, timeout, cross_check)
    verdict = _verdict(problem, decision, layer=layer.name, wrt=wrt, claim=claim)
    if memo is not None and verdict.verdict in (PROVED, REFUTED):
        memo.verdicts[key] = verdict
    return verdict


def prove_identity(context, identity: str, assume=(), timeout: float = 60.0, cross_check: bool = True) -> Verdict:
    """Prove or refute ``"LHS == RHS"`` over a layer's tensors, sizes and assumptions.

    Same verdicts as :func:`prove`: ``proved`` for all sizes and values, ``refuted`` with a
    minimal counterexample (``expected`` is the left side, ``claimed`` the right), or
    ``unknown`` with the reason.

    >>> prove_identity("conv2d", "correlate2d(x, w, 'valid') == correlate(x, w, 'valid')").verdict
    'proved'
    >>> prove_identity("conv2d", "correlate2d(x, w, 'valid') == convolve2d(x, w, 'valid')").verdict
    'refuted'
    """
    if not isinstance(identity, str):
        raise TypeError(f"the identity is a string such as 'flip(flip(x)) == x', got {type(identity).__name__}")
    if not identity.strip():
        raise InputError("the identity is empty", where="--identity")
    timeout = checked_timeout(timeout)
    try:
        with wall_clock(timeout):
            layer = as_layer(context)
            extra = tuple(parse_assumptions(list(extra_assumptions(layer, assume)), layer))
            check_extra_assumptions(layer, extra)
            problem = identity_problem(layer, identity, extra)
            decision = decided(problem, layer.functions, timeout, cross_check)
            return _verdict(problem, decision, layer=layer.name, wrt="", claim=identity)
    except ClaimTimeout:
        name = context.name if isinstance(context, Layer) else str(context)
        return Verdict(UNKNOWN, layer=name, wrt="", claim=identity, reason=timeout_reason(timeout))


# -- abstract functions ----------------------------------------------------------------------------
def decided(problem: Problem, functions=(), timeout: float = 60.0, cross_check: bool = True) -> Decision:
    """The decision of a problem over a layer whose abstract functions are ``functions``.

    Without any, :func:`~symderive.decide.symbolic.decide`. With some, a proof is built with
    each function opaque (so it holds for every f) and cross-checked with a concrete stand-in;
    otherwise the concrete search looks for a counterexample with each stand-in in turn
    (:data:`~symderive.decide.concrete.STAND_INS`), which the counterexample names. A stand-in
    never proves anything.

    >>> p = gradient_problem("linear", "x", "w.T @ g")
    >>> decided(p).status
    'proved'
    """
    if not functions:
        return decide(problem, timeout, cross_check)
    outcome = symbolic_outcome(problem)  # every function opaque: a proof holds for every f
    if outcome.status == PROVED:
        if cross_check:
            _cross_check(problem, stand_ins(functions, 0))
        return Decision(PROVED)
    return _searched_with_stand_ins(problem, functions, outcome, timeout)


def _cross_check(problem: Problem, functions: dict) -> None:
    """The second check of a proof for every f: exact evaluation with one concrete f."""
    bad = search.disagreement_sizes(with_functions(problem, functions))
    if bad is not None:
        raise InternalError(
            f"the all-sizes proof of {problem.name} disagrees with exact evaluation at sizes {bad} "
            f"with {_named(functions)}"
        )


def _searched_with_stand_ins(problem: Problem, functions, outcome, timeout: float) -> Decision:
    """Refuted with the first stand-in that gives a counterexample, else unknown (never proved)."""
    end = time.monotonic() + min(float(timeout), search.SEARCH_SECONDS)
    summaries = []
    for choice in range(len(STAND_INS)):
        chosen = stand_ins(functions, choice)
        concrete = with_functions(problem, chosen)
        summary = search.SearchSummary()
        # each stand-in gets its share of what is left, so that the last one is tried too
        share = (end - time.monotonic()) / (len(STAND_INS) - choice)
        found = search.find_counterexample(concrete, deadline=time.monotonic() + max(share, 0.0), summary=summary)
        for hint in (outcome.sizes, outcome.wider) if found is None else ():
            if found is None and hint:
                found = search.find_counterexample(concrete, at_sizes=hint)
        if found is not None:
            return Decision(REFUTED, counterexample=_naming(found, chosen))
        summaries.append(
            f"{_named(chosen)}: {'timed out at' if summary.timed_out else 'searched'} {summary.describe()}"
        )
    searched = "; ".join(summaries)
    reason = (
        f"{outcome.reason}; no concrete counterexample ({searched})"
        if outcome.status == UNKNOWN
        else f"{outcome.reason}, but no concrete counterexample was found ({searched})"
    )
    return Decision(UNKNOWN, reason=f"not proved for every {', '.join(functions)}: {reason}")


def _naming(found, functions: dict):
    """A counterexample found with concrete ``functions``, naming them (a shape mismatch does not
    depend on them)."""
    if found is None or found.is_shape_mismatch or not functions:
        return found
    return dataclasses.replace(found, functions={n: str(f) for n, f in functions.items()})


def _named(functions: dict) -> str:
    return ", ".join(f"{n}(u) = {f}" for n, f in functions.items())


def with_functions(problem: Problem, functions: dict) -> Problem:
    """The problem with concrete functions (name -> expression in ``u``) in place of the abstract ones.

    >>> with_functions(gradient_problem("linear", "b", "g"), {}).name
    "'g' for linear/b"
    """
    if not functions:
        return problem
    reference = problem.reference
    if reference is not None:
        reference = dataclasses.replace(reference, forward=tensor_with_stand_ins(reference.forward, functions))
    element, right_element = problem.element, problem.right_element
    return dataclasses.replace(
        problem,
        left=tensor_with_stand_ins(problem.left, functions),
        right=tensor_with_stand_ins(problem.right, functions),
        scope={n: tensor_with_stand_ins(t, functions) for n, t in problem.scope.items()},
        element=None if element is None else with_stand_ins(element, functions),
        right_element=None if right_element is None else with_stand_ins(right_element, functions),
        reference=reference,
    )


def timeout_reason(timeout: float) -> str:
    """The reason of a verdict whose wall clock ran out.

    >>> timeout_reason(5)
    'timeout (after 5 s)'
    """
    return f"timeout (after {timeout:g} s)"


def checked_timeout(timeout) -> float:
    """``timeout`` as positive finite seconds; InputError otherwise.

    >>> checked_timeout(2)
    2.0
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout is a number of seconds, got {type(timeout).__name__} {timeout!r:.60}")
    if not (0 < timeout <= MAX_SECONDS):  # also refuses nan
        raise InputError(f"timeout must be positive seconds, at most {MAX_SECONDS:g}, got {timeout!r}", where="timeout")
    return float(timeout)


def _verdict(problem: Problem, decision, **base) -> Verdict:
    if decision.status == REFUTED and problem.origin and decision.counterexample.index:
        decision = dataclasses.replace(decision, counterexample=_at_free_indices(problem, decision.counterexample))
    if decision.status == PROVED:
        return Verdict(PROVED, assumptions=problem.texts, detail=PROOF_DETAIL, **base)
    if decision.status == REFUTED:
        return Verdict(REFUTED, assumptions=problem.texts, counterexample=decision.counterexample, **base)
    return Verdict(UNKNOWN, assumptions=problem.texts, reason=decision.reason, **base)


def _at_free_indices(problem: Problem, cex):
    """A counterexample of an identity with free indices, its index given as their values (not window positions)."""
    sizes = {s: int(cex.sizes[str(s)]) for s in problem.sizes}
    starts = [int(sp.sympify(o).xreplace(sizes)) for o in problem.origin]
    values = tuple(int(i) + s for i, s in zip(cex.index, starts, strict=True))
    where = ", ".join(f"{f} = {v}" for f, v in zip(problem.free, values, strict=True))
    window = ", ".join(f"{f} from {s} to {-s}" for f, s in zip(problem.free, starts, strict=True))
    return dataclasses.replace(cex, index=values, message=f"{where}; the arrays show both sides for {window}")


def prove_concrete(layer, wrt: str, claim_text: str, assume=(), deadline: float | None = None) -> Verdict:
    """Refute a claim by a concrete counterexample, or say ``unknown`` -- never ``proved``.

    >>> prove_concrete("linear", "x", "w @ g").verdict
    'refuted'
    """
    layer = as_layer(layer)
    if wrt not in layer.inputs:
        raise InputError(f"layer {layer.name} has no input {wrt!r} (inputs: {', '.join(layer.inputs)})", where="--wrt")
    extra = parse_assumptions(list(assume), layer)
    problem = gradient_problem(layer, wrt, claim_text, extra, symbolic=False)
    summary = search.SearchSummary()
    found = None
    # an abstract function is searched with each concrete stand-in in turn (one for a layer without)
    for choice in range(len(STAND_INS) if layer.functions else 1):
        chosen = stand_ins(layer.functions, choice)
        found = _naming(
            search.find_counterexample(with_functions(problem, chosen), deadline=deadline, summary=summary), chosen
        )
        if found is not None:
            break
    common = {"layer": layer.name, "wrt": wrt, "claim": claim_text, "assumptions": problem.texts}
    if found is not None:
        return Verdict(REFUTED, counterexample=found, detail="found by concrete search at small sizes", **common)
    if summary.timed_out:
        return Verdict(UNKNOWN, reason=f"timeout: no counterexample at {summary.describe()}", **common)
    return Verdict(UNKNOWN, reason=f"no counterexample at {summary.describe()}; no all-sizes proof", **common)


# -- the search and the true gradient, asked about a layer -------------------------------------------
def input_shapes(layer: Layer, sizes: dict) -> dict[str, tuple[int, ...]]:
    """The concrete shape of every input (and of ``g`` for a non-final layer).

    >>> input_shapes(as_layer("linear"), {"n": 2, "m": 3})
    {'x': (2,), 'w': (3, 2), 'b': (3,), 'g': (3,)}
    """
    ref = _reference(layer, next(iter(layer.inputs)))
    return concrete_shapes(ref.tensors, ref._env(sizes))


def true_gradient(layer: Layer, wrt: str, sizes: dict, values: dict):
    """The exact gradient of the layer's loss w.r.t. ``wrt`` at concrete sizes and values.

    ``values`` maps every input (and ``g`` for a non-final layer) to numbers or nested
    lists; the result is an object array of exact SymPy numbers of ``wrt``'s shape.

    >>> true_gradient(as_layer("linear"), "b", {"n": 1, "m": 2}, {"x": [1], "w": [[1], [2]], "b": [0, 0], "g": [3, 4]}).tolist()
    [3, 4]
    """
    if wrt not in layer.inputs:
        raise InputError(f"layer {layer.name} has no input {wrt!r}", where="--wrt")
    return _reference(layer, wrt).exact(sizes, values)


def gradient_expressions(layer: Layer, wrt: str, sizes: dict, values: dict):
    """The gradient w.r.t. every element of ``wrt`` as SymPy expressions (``values[wrt]`` symbols)."""
    return _reference(layer, wrt).symbolic(sizes, values).copy()  # a copy the caller may write to


def _reference(layer: Layer, wrt: str) -> Differentiation:
    tensors = _context(layer, ())["tensors"]
    return Differentiation(layer.forward, loss=layer.is_loss, wrt=wrt, sizes=tuple(layer.sizes), tensors=tensors)


def size_candidates(layer: Layer, extra_assumptions=(), max_size: int = search.MAX_SIZE):
    """A layer's size assignments allowed by its (and ``extra``) assumptions, in minimal order.

    >>> import itertools
    >>> [tuple(c.values()) for c in itertools.islice(size_candidates(as_layer("linear")), 3)]
    [(1, 1), (1, 2), (2, 1)]
    """
    return search.size_candidates(layer.sizes, layer.size_assumptions(extra_assumptions), max_size)


def find_counterexample(layer: Layer, wrt: str, claim: Tensor, assumptions=(), **options):
    """The minimal concrete point where ``claim`` is not the gradient, or None (see
    :func:`symderive.decide.search.find_counterexample` for ``options``; an abstract function
    stands as the first concrete stand-in, which the counterexample names)."""
    chosen = stand_ins(layer.functions, 0)
    problem = with_functions(gradient_problem(layer, wrt, claim, assumptions, symbolic=False), chosen)
    return _naming(search.find_counterexample(problem, **options), chosen)


def disagreement_sizes(layer: Layer, wrt: str, claim: Tensor, assumptions=(), candidates: int = 3, probes: int = 6):
    """The first of the smallest sizes where ``claim`` and the exact gradient differ, else None
    (an abstract function standing as the first concrete stand-in)."""
    problem = with_functions(
        gradient_problem(layer, wrt, claim, assumptions, symbolic=False), stand_ins(layer.functions, 0)
    )
    return search.disagreement_sizes(problem, candidates=candidates, probes=probes)


__all__ = [
    "Memo",
    "disagreement_sizes",
    "extra_assumptions",
    "find_counterexample",
    "gradient_problem",
    "identity_problem",
    "input_shapes",
    "parse_assumptions",
    "prove",
    "prove_concrete",
    "prove_identity",
    "size_candidates",
    "true_gradient",
]
