"""Derive: the gradient of a layer's loss with respect to one input element, step by step.

The loss is ``sum(g * y)`` for a non-final layer and the layer's own ``L`` for a loss
layer. Differentiation is symderive's own (reads give Kronecker deltas over the
integers); delta elimination solves affine index equations over the integers (a unit
coefficient substitutes, any other adds a divisibility guard), never over the rationals.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ..core.domains import settle_piecewise
from ..core.ir import GSum, Iverson, gsum, held_form, index_symbol, read, subs_free
from ..display import Displayed

WRT_NAMES = ("p", "q", "r", "u", "v", "z")
OUT_NAMES = ("i", "j", "l", "o", "c", "h")


@dataclass(frozen=True)
class Step:
    """One step of a derivation, as a reader would write it.

    ``kind`` names the rule: ``"loss"``, ``"chain rule"``, ``"forward"``,
    ``"partial derivative"``, ``"kronecker deltas"``, ``"delta elimination"``,
    ``"guards"``, ``"reindex"``, ``"kernel offsets"``, ``"result"``. ``lhs`` and ``rhs`` are SymPy
    expressions (the equation ``lhs = rhs``), ``text`` a sentence saying what was done,
    ``label`` the seed's equation name where one applies (``"Eq. E"``, ``"(2)"``).
    """

    kind: str
    text: str
    lhs: sp.Expr
    rhs: sp.Expr
    label: str = ""


@dataclass(frozen=True)
class Derivation(Displayed):
    """The derived gradient ``d<wrt>[index] = gradient`` and the steps to it.

    ``index`` are the free index symbols (empty for a 0-d input), ``gradient`` the
    scalar guarded index sum, valid for ``index`` inside the input's shape.
    """

    layer: str
    wrt: str
    index: tuple[sp.Symbol, ...]
    gradient: sp.Expr
    steps: tuple[Step, ...]

    def lhs(self) -> sp.Expr:
        """The left side ``dL/dwrt[index]`` as a SymPy derivative symbol."""
        return partial_symbol("L", self.wrt, self.index)


class NotDifferentiable(ValueError):
    """An expression symderive has no derivative rule for (the verdict is unknown)."""


# -- naming -----------------------------------------------------------------------------


def _pick_names(pool: tuple[str, ...], count: int, taken: set[str]) -> tuple[sp.Symbol, ...]:
    out = []
    for base in pool + tuple(f"{pool[0]}{k}" for k in range(1, 50)):
        if base not in taken and len(out) < count:
            out.append(index_symbol(base))
            taken.add(base)
    return tuple(out)


def taken_names(layer) -> set[str]:
    """Names an index variable must not take in this layer (sizes, tensors, g, output)."""
    names = {str(s) for s in layer.sizes} | set(layer.inputs) | {"g", layer.output}
    return names | set(getattr(layer, "intermediate_names", ()))


def partial_symbol(num: str, den: str, idx) -> sp.Expr:
    """``dL/dx[p, q]`` as a printable SymPy symbol (for steps).

    >>> partial_symbol("L", "x", (index_symbol("p"),))
    dL/dx[p]
    """
    if idx:
        return sp.Symbol(f"d{num}/d{den}[{', '.join(map(str, idx))}]")
    return sp.Symbol(f"d{num}/d{den}")


# -- differentiation ----------------------------------------------------------------------


def _is_read_of(e, name: str) -> bool:
    return isinstance(e, sp.Indexed) and str(e.base.label) == name


def diff_read(expr: sp.Expr, name: str, at: tuple) -> sp.Expr:
    """The derivative of a scalar index expression with respect to ``name[at]``.

    A read ``name[idx]`` gives ``prod KroneckerDelta(idx_k, at_k)``; sums differentiate
    termwise; other nodes by SymPy's chain rule with reads and sums held as symbols.

    >>> i, p = index_symbol("i"), index_symbol("p")
    >>> diff_read(read("x", (i,)) ** 2, "x", (p,))
    2*KroneckerDelta(i, p)*x[i]
    """
    if not expr.has(sp.IndexedBase(name, real=True)) and not (not at and expr.has(sp.Symbol(name, real=True))):
        return sp.S.Zero
    if not at and expr == sp.Symbol(name, real=True):
        return sp.S.One
    if _is_read_of(expr, name):
        return sp.Mul(*(sp.KroneckerDelta(i, a) for i, a in zip(expr.indices, at, strict=True)))
    if isinstance(expr, sp.Indexed):
        return sp.S.Zero
    if isinstance(expr, GSum):
        return gsum(diff_read(expr.function, name, at), *expr.limits)
    if isinstance(expr, sp.Add):
        return sp.Add(*(diff_read(a, name, at) for a in expr.args))
    if isinstance(expr, sp.Mul):
        terms = []
        for k, a in enumerate(expr.args):
            da = diff_read(a, name, at)
            if da != 0:
                terms.append(sp.Mul(*expr.args[:k], da, *expr.args[k + 1 :]))
        return sp.Add(*terms)
    if isinstance(expr, Iverson | sp.KroneckerDelta):
        return sp.S.Zero  # piecewise constant in tensor values: derivative 0 almost everywhere
    if isinstance(expr, sp.Piecewise):
        # PyTorch's convention: differentiate the branch that holds, conditions held fixed
        return sp.Piecewise(*((diff_read(e, name, at), c) for e, c in expr.args))
    return _chain_rule(expr, name, at)


def _chain_rule(expr: sp.Expr, name: str, at: tuple) -> sp.Expr:
    """SymPy's derivative of ``expr`` in its maximal read/sum subterms, times theirs."""
    held, holders = held_form(
        expr,
        lambda e: isinstance(e, sp.Indexed | GSum) or (isinstance(e, sp.Symbol) and e.is_real and not e.is_integer),
    )
    if any(isinstance(a, sp.Subs | sp.Derivative) for a in sp.preorder_traversal(held)):
        raise NotDifferentiable(f"no derivative rule for {expr}")
    total = []
    for sub, sym in holders.items():
        dsub = diff_read(sub, name, at)
        if dsub == 0:
            continue
        outer = sp.diff(held, sym)
        if outer.has(sp.Derivative, sp.Subs):
            raise NotDifferentiable(f"no derivative rule for {expr}")
        total.append(outer.xreplace({v: k for k, v in holders.items()}) * dsub)
    return sp.Add(*total)


# -- delta elimination --------------------------------------------------------------------


def _affine_coeff(expr: sp.Expr, var: sp.Symbol):
    """The integer coefficient of ``var`` in an affine expression, or None."""
    poly = sp.expand(expr)
    c = poly.coeff(var)
    if c.has(var) or not (c.is_Integer):
        return None
    rest = sp.expand(poly - c * var)
    if rest.has(var):
        return None
    return int(c)


def _split_sum(expr: sp.Expr) -> list[tuple[sp.Expr, list]]:
    """``expr`` as a list of (product body, limits) with nested sums pulled out."""
    expr = sp.expand(expr, deep=False, mul=True, multinomial=False, power_exp=False, power_base=False, log=False)
    if isinstance(expr, sp.Add):
        return [t for a in expr.args for t in _split_sum(a)]
    if isinstance(expr, GSum):
        return [(b, lims + list(expr.limits)) for b, lims in _split_sum(expr.function)]
    if isinstance(expr, sp.Mul):
        parts = [[(sp.S.One, [])]]
        for a in expr.args:
            parts.append(_split_sum(a) if isinstance(a, GSum | sp.Add) else [(a, [])])
        out = [(sp.S.One, [])]
        for choices in parts[1:]:
            out = [_join(b1, l1, b2, l2) for b1, l1 in out for b2, l2 in choices]
        return out
    return [(expr, [])]


def _join(b1, l1, b2, l2):
    """The product of two pulled-out sums, their summation variables renamed apart."""
    clash = {v for v, _, _ in l1} & {v for v, _, _ in l2}
    if clash:
        ren = {v: sp.Dummy(v.name, integer=True) for v in clash}
        b2 = subs_free(b2, ren)
        l2 = [(ren.get(v, v), subs_free(lo, ren), subs_free(hi, ren)) for v, lo, hi in l2]
    return b1 * b2, l1 + l2


def eliminate_deltas(expr: sp.Expr) -> sp.Expr:
    """Sum out Kronecker deltas over the integers, turning ranges into guards.

    >>> i, m, p, n, k = map(index_symbol, "impnk")
    >>> w = read("w", (m,))
    >>> eliminate_deltas(GSum(GSum(w * sp.KroneckerDelta(i + m, p), (m, 0, k - 1)), (i, 0, n - 1)))
    Sum(Iverson((-i + p >= 0) & (-i + p <= k - 1))*w[-i + p], (i, 0, n - 1))
    """
    terms = []
    for body, limits in _split_sum(expr):
        terms.append(_eliminate_term(body, limits))
    return sp.Add(*terms)


def _eliminate_term(body: sp.Expr, limits: list) -> sp.Expr:
    factors = list(sp.Mul.make_args(body))
    limits = list(limits)
    changed = True
    while changed:
        changed = False
        for k, f in enumerate(factors):
            if not isinstance(f, sp.KroneckerDelta):
                continue
            solved = _solve_delta(f, limits)
            if solved is None:
                continue
            var, value, guard = solved
            lim = next(lim for lim in limits if lim[0] == var)
            limits.remove(lim)
            _, lo, hi = lim
            rest = factors[:k] + factors[k + 1 :]
            factors = [subs_free(g, {var: value}) for g in rest]
            factors.append(Iverson(sp.And(sp.Ge(value, lo), sp.Le(value, hi), guard)))
            limits = [(v, subs_free(lo2, {var: value}), subs_free(hi2, {var: value})) for v, lo2, hi2 in limits]
            changed = True
            break
    new_body = sp.Mul(*factors)
    return gsum(new_body, *limits) if new_body != 0 else sp.S.Zero


def _solve_delta(delta: sp.KroneckerDelta, limits: list):
    """(var, value, extra guard) solving a delta for one summation variable, or None."""
    diff = sp.expand(delta.args[0] - delta.args[1])
    # innermost summation variables first: the forward's own sum indices go first
    for var, _, _ in limits:
        c = _affine_coeff(diff, var)
        if not c:
            continue
        rest = sp.expand(-(diff - c * var))
        if abs(c) == 1:
            return var, sp.expand(rest * c), sp.true
        return var, sp.floor(rest / c), sp.Eq(sp.Mod(rest, abs(c)), 0)
    return None


# -- the derivation -----------------------------------------------------------------------


def derive(layer, wrt: str) -> Derivation:
    """The gradient of ``layer``'s loss with respect to one element of ``wrt``: the prover's lean derivation.

    Its steps end with the delta elimination; :func:`symderive.calculus.present.present`
    is the reader's derivation (guards dropped, re-indexed, labelled).

    >>> from symderive.layer import load_layer
    >>> d = derive(load_layer("linear"), "x")
    >>> [s.kind for s in d.steps][:2], d.steps[-1].kind
    (['loss', 'forward'], 'delta elimination')
    """
    return derivation_steps(layer, wrt, tidy=None)[0]


def derivation_steps(layer, wrt: str, tidy=None) -> tuple[Derivation, tuple, tuple]:
    """(the derivation up to the delta elimination, the gradient's free indices, the output's indices).

    ``tidy(expr, facts)``, when given, rewrites the forward element and the summed deltas
    for the reader (the presentation drops guards that the ranges imply) before they are
    differentiated further; None keeps every expression as derived.
    """
    from ..model.layer import as_layer

    layer = as_layer(layer)
    layer.require_differentiable(wrt)
    taken = taken_names(layer)
    at = _pick_names(WRT_NAMES, len(layer.inputs[wrt]), taken)
    out_idx = _pick_names(OUT_NAMES, len(layer.forward.shape), taken)
    steps: list[Step] = []
    lhs = partial_symbol("L", wrt, at)
    y_elem = settle_piecewise(layer.forward.element(out_idx), layer.size_assumptions())
    if layer.is_loss:
        loss = y_elem
        steps.append(Step("loss", "The loss is the layer's output.", sp.Symbol("L"), loss))
        raw = diff_read(loss, wrt, at)
        steps.append(Step("partial derivative", f"Differentiate the loss with respect to {wrt}.", lhs, raw))
    else:
        y_sym = read(layer.output, out_idx) if out_idx else sp.Symbol(layer.output, real=True)
        g_read = read("g", out_idx)
        out_shape = [settle_piecewise(n, layer.size_assumptions()) for n in layer.forward.shape]
        limits = [(i, 0, n - 1) for i, n in zip(out_idx, out_shape, strict=True)]
        steps.append(
            Step(
                "loss", "The loss of a non-final layer, with g = dL/dy.", sp.Symbol("L"), gsum(g_read * y_sym, *limits)
            )
        )
        if tidy is not None:
            # y is read only inside the loss's sum over its shape: guards that the output ranges imply
            # (a keepdims reduction's [0 <= i <= N - 1], even in a denominator) are 1 there
            y_elem = tidy(y_elem, list(layer.size_assumptions()) + range_facts(out_idx, out_shape))
        steps.append(Step("forward", "The forward pass, element by element.", y_sym, y_elem))
        dy = diff_read(y_elem, wrt, at)
        dy_sym = sp.Symbol(f"d{layer.output}[{', '.join(map(str, out_idx))}]/d{wrt}[{', '.join(map(str, at))}]")
        chain = gsum(
            g_read * sp.Symbol(f"d{layer.output}[{', '.join(map(str, out_idx))}]/d{wrt}[{', '.join(map(str, at))}]"),
            *limits,
        )
        steps.append(Step("chain rule", "Chain rule over the outputs.", lhs, chain))
        steps.append(
            Step(
                "partial derivative",
                f"Partial derivative of the forward sum: each read of {wrt} gives Kronecker deltas.",
                dy_sym,
                dy,
            )
        )
        if dy.has(sp.KroneckerDelta):
            ranges = range_facts(out_idx, out_shape) + range_facts(at, layer.inputs[wrt])
            dy_summed = eliminate_deltas(piecewise_to_iverson(dy))
            if tidy is not None:
                dy_summed = tidy(dy_summed, list(layer.size_assumptions()) + ranges)
            if dy_summed != dy:
                steps.append(
                    Step(
                        "partial derivative, deltas summed",
                        "Only the terms whose read hits this element survive: sum out the deltas of the forward sum.",
                        dy_sym,
                        dy_summed,
                    )
                )
        raw = gsum(g_read * dy, *limits)
        steps.append(Step("kronecker deltas", "Substitute into the chain rule.", lhs, raw))
    eliminated = eliminate_deltas(piecewise_to_iverson(raw))
    steps.append(
        Step(
            "delta elimination",
            "Sum out the Kronecker deltas over the integers; the eliminated ranges become guards.",
            lhs,
            eliminated,
        )
    )
    derivation = Derivation(layer=layer.name, wrt=wrt, index=at, gradient=eliminated, steps=tuple(steps))
    return derivation, tuple(at), tuple(out_idx)


def piecewise_to_iverson(expr: sp.Expr) -> sp.Expr:
    """Piecewise branches as Iverson-guarded terms (so deltas inside them can be summed out).

    >>> x = read("x", (index_symbol("i"),))
    >>> piecewise_to_iverson(sp.Piecewise((x, x > 0), (0, True)))
    Iverson(x[i] > 0)*x[i]
    """
    if isinstance(expr, sp.Piecewise) and any(c.has(sp.Indexed) for _, c in expr.args):
        terms, previous = [], []
        for value, cond in expr.args:
            guard = sp.And(cond, *[sp.Not(c) for c in previous])
            previous.append(cond)
            terms.append(Iverson(guard) * piecewise_to_iverson(value))
        return sp.Add(*terms)
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, Iverson):
        return expr
    return expr.func(*(piecewise_to_iverson(a) for a in expr.args))


def range_facts(index, shape) -> list:
    """``0 <= i <= n - 1`` for each index and its dimension, as facts for guard simplification.

    >>> i, n = sp.Symbol("i", integer=True), sp.Symbol("n", integer=True, positive=True)
    >>> range_facts((i,), (n,))
    [i >= 0, i <= n - 1]
    """
    return [c for i, n in zip(index, shape, strict=True) for c in (sp.Ge(i, 0), sp.Le(i, n - 1))]


# Cached: a pure function of a sum's limits (SymPy, hashable); every claim about a gradient walks
# the same sums. Built unevaluated: they are only premises for z3 (a relation SymPy would fold to
# True is then one more true premise), and evaluating each asked SymPy's assumptions, which a
# claim's fresh summation variables made a cache miss every time.
@functools.lru_cache(maxsize=1024)
def _limit_facts(limits: tuple) -> tuple:
    return tuple(c for v, lo, hi in limits for c in (sp.Ge(v, lo, evaluate=False), sp.Le(v, hi, evaluate=False)))


def simplify_guards(expr: sp.Expr, facts: list) -> sp.Expr:
    """Drop the conjuncts of Iverson guards that the facts (and enclosing ranges) imply.

    >>> p, k = index_symbol("p"), sp.Symbol("k", integer=True, positive=True)
    >>> simplify_guards(Iverson(sp.And(p >= 0, p <= k - 1)) * read("w", (p,)), [p >= 0, p <= k - 1])
    w[p]
    """
    from ..core.domains import implies

    def visit(e, known):
        if isinstance(e, GSum):
            inner = known + list(_limit_facts(e.limits))
            return GSum(visit(e.function, inner), *e.limits)
        if isinstance(e, Iverson):
            cond = e.args[0]
            if cond.has(sp.Indexed):
                return e
            kept = [c for c in sp.And.make_args(cond) if implies(known, c) is not True]
            return Iverson(sp.And(*kept))
        if isinstance(e, sp.Mul):
            # guards of a product constrain its other factors too
            guards = [a.args[0] for a in e.args if isinstance(a, Iverson) and not a.args[0].has(sp.Indexed)]
            out = []
            for a in e.args:
                mine = a.args[0] if isinstance(a, Iverson) else None
                out.append(visit(a, known + [g for g in guards if g is not mine]))
            return sp.Mul(*out)
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(visit(a, known) for a in e.args))

    return visit(expr, list(facts))


def reindexed(expr: sp.Expr, sizes) -> tuple[sp.Expr, str] | None:
    """A presentation step: shift summation variables by size offsets (``e = i + kh - 1``).

    Returns the shifted expression and a sentence, or None when no read is shifted by a size.

    >>> i, p = index_symbol("i"), index_symbol("p")
    >>> k, n = sp.symbols("k n", integer=True, positive=True)
    >>> reindexed(GSum(read("w", (i + k - 1 - p,)), (i, 0, n - k)), {k, n})[0]
    Sum(w[e - p], (e, k - 1, n - 1))
    """
    if not isinstance(expr, GSum):
        return None
    sizes = set(sizes)
    body, limits, said = expr.function, list(expr.limits), []
    fresh = iter(index_symbol(n) for n in ("e", "f", "e1", "f1", "e2", "f2"))
    for pos, (var, lo, hi) in enumerate(list(limits)):
        offset = _size_offset(body, var, sizes)
        if offset is None:
            continue
        new = next(fresh)
        body = sp.expand(subs_free(body, {var: new - offset}))
        limits[pos] = (new, lo + offset, hi + offset)
        said.append(f"{new} = {var} + {sp.sstr(offset)}")
    if not said:
        return None
    text = (
        f"Re-index by the position in the full-size output ({', '.join(said)}), "
        "so that the reads line up with the textbook form."
    )
    return GSum(body, *limits), text


def by_kernel_offsets(expr: sp.Expr, at, sizes) -> tuple[sp.Expr, str] | None:
    """A presentation step: sum over the kernel offsets ``m = p - i`` instead of the outputs ``i``.

    Applies to a summation variable ``i`` read as ``p - i`` (``p`` one of ``at``) whose
    guards bound ``p - i`` by sizes alone: the guard becomes the new range and the old
    range becomes the guard (seed 004 writes ``sum_m g[p - m] w[m]`` this way).
    Returns the new expression and a sentence, or None where no variable qualifies.

    >>> i, p = index_symbol("i"), index_symbol("p")
    >>> k, n = sp.symbols("k n", integer=True, positive=True)
    >>> body = Iverson(sp.And(p - i >= 0, p - i <= k - 1)) * read("g", (i,)) * read("w", (p - i,))
    >>> by_kernel_offsets(GSum(body, (i, 0, n - k)), [p], {k, n})[0]
    Sum(Iverson((-m + p >= 0) & (-m + p <= -k + n))*g[-m + p]*w[m], (m, 0, k - 1))
    """
    if not isinstance(expr, GSum):
        return None
    sizes, at = set(sizes), list(at)
    body, limits, said = expr.function, list(expr.limits), []
    fresh = iter(index_symbol(n) for n in ("m", "n", "m1", "n1", "m2", "n2"))
    taken = {str(s) for s in expr.free_symbols} | {str(v) for v, _, _ in limits}
    for pos, (var, lo, hi) in enumerate(list(limits)):
        origin = _read_as_offset(body, var, at)
        if origin is None:
            continue
        new = next((f for f in fresh if str(f) not in taken), None)
        if new is None:
            break
        moved = sp.expand(subs_free(body, {var: origin - new}))
        bounds = _size_bounds(moved, new, sizes)
        if bounds is None:
            continue
        guard, new_lo, new_hi = bounds
        old_range = Iverson(sp.And(origin - new >= lo, origin - new <= hi))
        body = (moved / guard) * old_range
        limits[pos] = (new, new_lo, new_hi)
        said.append(f"{new} = {origin} - {var}")
    if not said:
        return None
    text = (
        f"Sum over the kernel offsets instead of the outputs ({', '.join(said)}): "
        "the outputs an element reaches become the guard."
    )
    return GSum(body, *limits), text


def _read_as_offset(body, var, at):
    """The ``p`` of ``at`` where some read's index is exactly ``p - var``, else None."""
    for r in sorted(body.atoms(sp.Indexed), key=str):
        for ix in r.indices:
            for p in at:
                if sp.expand(ix - (p - var)) == 0:
                    return p
    return None


def _size_bounds(body, var, sizes):
    """``(guard, lo, hi)``: an Iverson factor of ``body`` saying ``lo <= var <= hi`` in sizes alone."""
    for factor in sp.Mul.make_args(body):
        if not isinstance(factor, Iverson):
            continue
        cond = factor.args[0]
        parts = sp.And.make_args(cond)
        lo = hi = None
        for rel in parts:
            if not isinstance(rel, sp.Rel) or rel.free_symbols - sizes != {var}:
                lo = hi = None
                break
            bound = _bound_of(rel, var)
            if bound is None:
                lo = hi = None
                break
            side, value = bound
            lo, hi = (value, hi) if side == "lo" else (lo, value)
        if lo is not None and hi is not None:
            return factor, lo, hi
    return None


def _bound_of(rel, var):
    """``("lo", a)`` for ``var >= a`` or ``("hi", b)`` for ``var <= b`` (integers, coefficient +-1), else None.

    >>> i, n = index_symbol("i"), sp.Symbol("n", integer=True)
    >>> _bound_of(n - i > 0, i), _bound_of(i + 1 >= 0, i)
    (('hi', n - 1), ('lo', -1))
    """
    if not isinstance(rel, (sp.Ge, sp.Gt, sp.Le, sp.Lt)):
        return None
    diff = sp.expand(rel.lhs - rel.rhs)
    c = diff.coeff(var)
    if c not in (1, -1):
        return None
    rest = sp.expand(diff - c * var)
    strict = 1 if isinstance(rel, (sp.Gt, sp.Lt)) else 0
    # diff >= 0 (or > 0): c = 1 bounds var from below, c = -1 from above; diff <= 0 the other way
    if isinstance(rel, (sp.Ge, sp.Gt)):
        return ("lo", -rest + strict) if c == 1 else ("hi", rest - strict)
    return ("hi", -rest - strict) if c == 1 else ("lo", rest + strict)


def _size_offset(body, var, sizes):
    for r in sorted(body.atoms(sp.Indexed), key=str):
        for ix in r.indices:
            ix = sp.expand(ix)
            if ix.coeff(var) != 1:
                continue
            offset = sp.Add(*[t for t in sp.Add.make_args(ix) if t.free_symbols <= sizes])
            if offset.free_symbols:
                return offset
    return None


def readable_names(steps, taken: set) -> dict:
    """Fresh summation variables (SymPy Dummies) renamed to readable, unused names."""
    dummies = []
    for s in steps:
        for e in (s.lhs, s.rhs):
            for d in sorted(e.atoms(sp.Dummy), key=lambda d: d.dummy_index):
                if d not in dummies:
                    dummies.append(d)
    out = {}
    used = set(taken)
    for d in dummies:
        base = d.name.lstrip("_") or "k"
        name = base
        k = 1
        while name in used:
            name = f"{base}{k}"
            k += 1
        used.add(name)
        out[d] = index_symbol(name)
    return out
