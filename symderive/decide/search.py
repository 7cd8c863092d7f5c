"""Concrete refutation: search small sizes and small values for a point where a claim is wrong.

This path is deliberately independent of the symbolic deriver: the true gradient is
computed by evaluating the layer's forward pass at concrete sizes with SymPy symbols for
the input being differentiated, forming the loss (``sum(g * y)``, or ``L``), and calling
``sympy.diff``. The claim is evaluated at the same sizes through the operator table.

A counterexample is minimal in LANGUAGE.md's sense: the smallest sum of sizes (ties: the
sizes in the layer's declaration order, smallest first), then values in {-1, 0, 1, 2}
with as few nonzero as possible. Two values are called different only when that is
certain (exactly, or by a 50-digit evaluation with a wide margin): a refutation must never
rest on rounding. Nothing here ever answers ``proved``.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Iterator, Sequence

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..core.ir import Tensor
from ..errors import InputError
from ..model.layer import Assumption, Layer
from .concrete import EvaluationError, Evaluator, concrete_shape, evaluate, is_valid_at, normalise_sizes
from .verdict import REFUTED, UNKNOWN, Counterexample, Verdict

#: the values LANGUAGE.md's minimal counterexamples are drawn from, in the order tried
SMALL_VALUES = (0, 1, -1, 2)
#: the largest size tried, and how many size assignments at most
MAX_SIZE = 6
MAX_SIZE_CANDIDATES = 100
#: without a deadline, the search stops after this many seconds (it answers unknown then)
SEARCH_SECONDS = 20.0
#: size assignments with more scalar unknowns than this are skipped (too slow to expand),
#: except the smallest allowed one (a layer of fixed sizes has no other) up to the hard limit
MAX_UNKNOWNS = 64
HARD_MAX_UNKNOWNS = 1024
#: value assignments tried per size assignment: random probes, then the minimal search
RANDOM_PROBES = 16
MAX_ASSIGNMENTS = 3000
#: a 50-digit value smaller than this is not called nonzero
CERTAIN_MARGIN = sp.Float("1e-30", 50)
#: the relative difference the float screen calls "same", and after how many exact comparisons
#: at one size assignment it is compiled
SCREEN_SAME = 1e-12
SCREEN_AFTER = 24
#: after a difference where the claim is undefined (nan; NumPy may say -inf), how many more
#: value assignments with as many nonzero values are tried for one where both sides are
#: numbers, which a user can check in NumPy without meeting log(0)
FINITE_LOOKAHEAD = 200


# -- numbers as users see them ---------------------------------------------------------
class _ValuePrinter(StrPrinter):
    """SymPy's string printing, with Euler's number spelled ``exp(1)`` as LANGUAGE.md shows."""

    def _print_Exp1(self, expr):
        return "exp(1)"


def json_number(value):
    """A value as LANGUAGE.md's JSON wants it: a number where exact, else SymPy's printing.

    >>> json_number(sp.Integer(2)), json_number(sp.Rational(1, 3)), json_number(sp.E / (1 + sp.E))
    (2, '1/3', 'exp(1)/(1 + exp(1))')
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, sp.Integer):
        return int(value)
    if isinstance(value, sp.Float):
        return float(value)
    return _ValuePrinter().doprint(value)


def json_array(arr) -> object:
    """A (0-d or larger) array of values as nested lists of JSON numbers.

    >>> json_array(np.array([[sp.Integer(1), sp.Rational(1, 2)]], dtype=object))
    [[1, '1/2']]
    """
    arr = np.asarray(arr, dtype=object)
    if arr.ndim == 0:
        return json_number(arr[()])
    return [json_array(a) for a in arr]


def _tidy(value):
    """A value in its simplest exact spelling (``exp(1)/(1 + exp(1))`` rather than a long sum)."""
    value = sp.Integer(value) if isinstance(value, int) else value
    if value.is_Rational:
        return value
    try:
        return sp.simplify(value)
    except Exception:  # noqa: BLE001  (simplification is cosmetic; keep the value as it is)
        return value


def is_undefined(value) -> bool:
    """Whether an exact value is undefined (NumPy's nan or inf: ``nan``, ``zoo``, ``oo``).

    >>> is_undefined(sp.nan), is_undefined(sp.Integer(1))
    (True, False)
    """
    value = _exact(value) if not isinstance(value, sp.Basic) else value
    return bool(value.has(sp.nan, sp.zoo, sp.oo, -sp.oo))


def certainly_nonzero(value) -> bool:
    """Whether an exact SymPy number is certainly not zero.

    Undefined or non-real values (``zoo``, ``nan``) are never called nonzero.

    >>> certainly_nonzero(sp.exp(1) - sp.Rational(27, 10)), certainly_nonzero(sp.exp(0) - 1)
    (True, False)
    """
    value = sp.Integer(value) if isinstance(value, int) else value
    if value == 0:
        return False
    if value.is_Rational:
        return True
    if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return False
    try:
        approx = value.evalf(50)
    except Exception:  # noqa: BLE001  (an undecidable value is not a certain difference)
        return False
    if approx.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return False
    re, im = approx.as_real_imag()
    if not (re.is_Number and im.is_Number):
        return False
    return bool(abs(re) > CERTAIN_MARGIN or abs(im) > CERTAIN_MARGIN)


def _exact(v):
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, bool | int | np.integer):
        return sp.Integer(int(v))
    if isinstance(v, float | np.floating):
        return sp.Rational(float(v)) if float(v).is_integer() else sp.Float(float(v))
    raise TypeError(f"not a number: {v!r}")


def exact_array(values) -> np.ndarray:
    """An object array of SymPy numbers from numbers or (nested) lists.

    >>> exact_array([[1, 2]]).dtype
    dtype('O')
    """
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx in itertools.product(*(range(d) for d in arr.shape)):
        out[idx] = _exact(arr[idx])
    return out


def symbol_array(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """An object array of real symbols standing for one tensor's elements.

    >>> symbol_array("x", (1, 2))[0, 1]
    x[0, 1]
    """
    out = np.empty(shape, dtype=object)
    for idx in itertools.product(*(range(d) for d in shape)):
        label = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        out[idx] = sp.Symbol(label, real=True)
    return out


# -- the true gradient -------------------------------------------------------------------
def _layer_sizes(layer: Layer, sizes: dict) -> dict:
    by_name = {str(k): int(v) for k, v in sizes.items()}
    missing = [str(s) for s in layer.sizes if str(s) not in by_name]
    if missing:
        raise ValueError(f"no value for size(s) {', '.join(missing)} of layer {layer.name}")
    return normalise_sizes({str(s): by_name[str(s)] for s in layer.sizes})


def input_shapes(layer: Layer, sizes: dict) -> dict[str, tuple[int, ...]]:
    """The concrete shape of every input (and of ``g`` for a non-final layer)."""
    env = _layer_sizes(layer, sizes)
    shapes = {n: concrete_shape(layer.input_tensor(n), env) for n in layer.inputs}
    if not layer.is_loss:
        shapes["g"] = concrete_shape(layer.forward, env)
    return shapes


def _loss(layer: Layer, env: dict, values: dict) -> sp.Expr:
    y = evaluate(layer.forward, env, values, exact=True)
    if layer.is_loss:
        return sp.Add(*y.flat) if y.ndim else y[()]
    return sp.Add(*(gv * yv for gv, yv in zip(values["g"].flat, y.flat, strict=True)))


def gradient_expressions(layer: Layer, wrt: str, sizes: dict, values: dict) -> np.ndarray:
    """The gradient of the loss w.r.t. every element of ``wrt``, as SymPy expressions.

    ``values`` maps inputs (and ``g``) to object arrays; ``values[wrt]`` must be
    symbols (:func:`symbol_array`), the others may be numbers or symbols too.
    """
    env = _layer_sizes(layer, sizes)
    syms = values[wrt]
    loss = _loss(layer, env, values)
    out = np.empty(syms.shape, dtype=object)
    for idx in itertools.product(*(range(d) for d in syms.shape)):
        out[idx] = sp.diff(loss, syms[idx])
    return out


def true_gradient(layer: Layer, wrt: str, sizes: dict, values: dict) -> np.ndarray:
    """The exact gradient of the layer's loss w.r.t. ``wrt`` at concrete sizes and values.

    ``values`` maps every input (and ``g`` for a non-final layer) to numbers or nested
    lists; the result is an object array of exact SymPy numbers of ``wrt``'s shape.

    >>> from ..core.ir import leaf, size_symbol, Tensor
    >>> n = size_symbol("n")
    >>> sq = Tensor((n,), lambda i: sp.IndexedBase("x")[i] ** 2, zero_outside=True)
    >>> lay = Layer("sq", "", (n,), {"x": (n,)}, "y", sq)
    >>> true_gradient(lay, "x", {"n": 2}, {"x": [1, 3], "g": [1, 2]}).tolist()
    [2, 12]
    """
    if wrt not in layer.inputs:
        raise InputError(f"layer {layer.name} has no input {wrt!r}", where="--wrt")
    shapes = input_shapes(layer, sizes)
    exact = {n: exact_array(values[n]) for n in shapes}
    for n, arr in exact.items():
        if arr.shape != shapes[n]:
            raise ValueError(f"value of {n} has shape {arr.shape}, expected {shapes[n]}")
    syms = symbol_array(f"_{wrt}", shapes[wrt])
    grad = gradient_expressions(layer, wrt, sizes, {**exact, wrt: syms})
    point = dict(zip(syms.flat, exact[wrt].flat, strict=True))
    out = np.empty(grad.shape, dtype=object)
    for idx in itertools.product(*(range(d) for d in grad.shape)):
        out[idx] = grad[idx].xreplace(point)
    return out


# -- sizes -------------------------------------------------------------------------------
def _compositions(total: int, parts: int, largest: int) -> Iterator[tuple[int, ...]]:
    """Tuples of ``parts`` integers in 1..largest summing to ``total``, lexicographically."""
    if parts == 0:
        if total == 0:
            yield ()
        return
    for first in range(1, min(largest, total - (parts - 1)) + 1):
        for rest in _compositions(total - first, parts - 1, largest):
            yield (first, *rest)


def _holds(cond, env) -> bool:
    try:
        return Evaluator(env, {}).truth(cond)
    except (EvaluationError, TypeError, ZeroDivisionError):
        return False


def size_candidates(layer: Layer, extra_assumptions=(), max_size: int = MAX_SIZE) -> Iterator[dict]:
    """Size assignments allowed by the assumptions, in LANGUAGE.md's minimal order.

    Smallest sum of sizes first; ties by the sizes in declaration order, smallest first.
    Each size is at most ``max_size``. Yields ``{size symbol: int}``.

    >>> from ..core.ir import leaf, size_symbol
    >>> n, m = size_symbol("n"), size_symbol("m")
    >>> lay = Layer("t", "", (n, m), {"x": (n,), "w": (m, n)}, "y", leaf("x", (n,)))
    >>> [tuple(c.values()) for c in itertools.islice(size_candidates(lay, [sp.Ge(m, n)]), 4)]
    [(1, 1), (1, 2), (1, 3), (2, 2)]
    """
    syms = tuple(layer.sizes)
    conds = layer.size_assumptions(extra_assumptions)
    for total in range(len(syms), len(syms) * max_size + 1):
        for combo in _compositions(total, len(syms), max_size):
            env = dict(zip(syms, combo, strict=True))
            if all(_holds(c, env) for c in conds):
                yield env
        if not syms:
            return


# -- tensor assumptions ----------------------------------------------------------------
def _tensor_assumptions(layer: Layer, extra) -> list[Assumption]:
    out = [a for a in layer.assumptions if a.kind in ("equal", "sign")]
    out += [a for a in extra if isinstance(a, Assumption) and a.kind in ("equal", "sign")]
    return out


_RELATIONS = {"==": sp.Eq, "!=": sp.Ne, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


def _relation_holds(rel: str, lhs, rhs) -> bool:
    diff = sp.Add(lhs, -rhs)
    if rel == "==":
        return not certainly_nonzero(diff) and (diff == 0 or diff.is_Rational or _is_zero(diff))
    try:
        return bool(_RELATIONS[rel](diff, 0))
    except TypeError:
        return False


def _is_zero(value) -> bool:
    try:
        return sp.simplify(value) == 0
    except Exception:  # noqa: BLE001
        return False


def _bounds_a_tensor(a: Assumption) -> bool:
    from ..core.tree import Num, Ref

    return a.kind == "sign" and isinstance(a.lhs, Ref) and isinstance(a.rhs, Num)


class _Assumptions:
    """The layer's tensor assumptions at concrete sizes, checkable on value assignments."""

    def __init__(self, layer: Layer, assumptions: list[Assumption], env: dict):
        from ..core.tree import build

        scope = layer.scope()
        self.env = env
        self.pairs = [(a, build(a.lhs, scope), build(a.rhs, scope)) for a in assumptions]
        # a bound on a whole tensor (``eps > 0``) is kept by drawing values from domain()
        self.to_check = [p for p in self.pairs if not _bounds_a_tensor(p[0])]

    def hold(self, values: dict) -> bool:
        for a, lhs_t, rhs_t in self.to_check:
            try:
                lhs = evaluate(lhs_t, self.env, values, exact=True)
                rhs = evaluate(rhs_t, self.env, values, exact=True)
                lhs, rhs = np.broadcast_arrays(lhs, rhs)
            except (EvaluationError, ValueError, TypeError, ZeroDivisionError):
                return False
            rel = "==" if a.kind == "equal" else (a.rel or ">")
            if not all(_relation_holds(rel, lv, rv) for lv, rv in zip(lhs.flat, rhs.flat, strict=True)):
                return False
        return True

    def domain(self, name: str) -> tuple:
        """The small values an element of ``name`` may take, from simple sign assumptions (``x > 0``)."""
        allowed = list(SMALL_VALUES)
        for a, _, _ in self.pairs:
            if not _bounds_a_tensor(a) or a.lhs.name != name:
                continue
            bound = a.rhs.value
            allowed = [v for v in allowed if _relation_holds(a.rel or ">", sp.Integer(v), bound)]
        return tuple(allowed)


# -- the search at one size assignment ----------------------------------------------------
class _Comparison:
    """The true gradient and the claim at one size assignment, for many value assignments."""

    def __init__(self, layer: Layer, wrt: str, claim: Tensor, env: dict, shapes: dict):
        self.layer, self.wrt, self.claim, self.env, self.shapes = layer, wrt, claim, env, shapes
        self.names = list(shapes)
        self.symbols = {n: symbol_array(f"_{n}", shapes[n]) for n in self.names}
        self.flat_symbols = [s for n in self.names for s in self.symbols[n].flat]
        self.grad = self.claimed = None
        self._screen = None
        try:
            # everything symbolic: one expansion, then cheap substitutions per assignment
            self.grad = gradient_expressions(layer, wrt, self._sizes(), self.symbols)
            self.claimed = evaluate(claim, env, self.symbols, exact=True)
        except (EvaluationError, TypeError, ValueError, ZeroDivisionError):
            self.grad = self.claimed = None
        # compiled only once a search runs long: most comparisons end within a few assignments
        self._exact_runs = 0

    def _sizes(self) -> dict:
        return {str(k): v for k, v in self.env.items()}

    def identical(self) -> bool:
        """Whether the two sides are the same expression for all values (so no search is needed)."""
        if self.grad is None:
            return False
        return all(_same_expression(a, b) for a, b in zip(self.grad.flat, self.claimed.flat, strict=True))

    def arrays(self, values: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """Both sides at one value assignment (None where they cannot be evaluated)."""
        try:
            if self.grad is not None:
                point = {s: values[n][idx] for n in self.names for idx, s in np.ndenumerate(self.symbols[n])}
                return _substitute(self.grad, point), _substitute(self.claimed, point)
            expected = true_gradient(self.layer, self.wrt, self._sizes(), values)
            claimed = evaluate(self.claim, self.env, values, exact=True)
            return expected, claimed
        except (EvaluationError, TypeError, ValueError, ZeroDivisionError):
            return None

    def first_difference(self, values: dict):
        """``(index, expected_array, claimed_array)`` where the sides certainly differ, else None."""
        if self._screen is None and self.grad is not None and self._exact_runs == SCREEN_AFTER:
            self._screen = _float_screen(self.flat_symbols, self.grad, self.claimed)
        if self._screen is not None and self._screen.agrees(
            [values[n][i] for n in self.names for i in _cells(values[n])]
        ):
            return None
        self._exact_runs += 1
        both = self.arrays(values)
        if both is None:
            return None
        expected, claimed = both
        first = None
        for idx in itertools.product(*(range(d) for d in expected.shape)):
            if certainly_nonzero(sp.Add(expected[idx], -claimed[idx])):
                # both sides numbers: the element a NumPy user can check best
                return idx, expected, claimed
            if first is None and is_undefined(claimed[idx]) and not is_undefined(expected[idx]):
                first = idx
        return None if first is None else (first, expected, claimed)


def _same_expression(expected, claimed) -> bool:
    """Whether two symbolic sides are equal for all values, nan included.

    Expansion cancels ``log(x) * (1 + x) - log(x) - x * log(x)`` to 0, but NumPy's value
    is nan where ``x <= 0``: a claimed side that may be undefined (a nan branch) is the
    same only as the very same expression.

    >>> x = sp.Symbol("x", real=True)
    >>> partial = sp.Piecewise((sp.log(x), x > 0), (sp.nan, True))
    >>> _same_expression(sp.Integer(0), partial * (1 + x) - partial - x * partial), _same_expression(x, x * 1)
    (False, True)
    """
    expected, claimed = _exact(expected), _exact(claimed)
    if claimed == expected:
        return True
    if is_undefined(claimed):
        return False
    return sp.expand(expected - claimed) == 0


def _cells(arr: np.ndarray) -> Iterator[tuple]:
    return itertools.product(*(range(d) for d in arr.shape))


class _FloatScreen:
    """Both sides compiled for float evaluation: a quick filter, never a verdict.

    Exact substitution into large symbolic gradients (batch or layer normalisation) costs
    tens of milliseconds per value assignment; most assignments show no difference, and
    this says so in microseconds. Only an assignment the screen cannot clear (a visible
    difference, an undefined or non-real value, an evaluation error) goes on to the exact
    comparison, so a refutation still rests on exact values alone. A difference below the
    screen's resolution is missed, which can only turn a refutation into ``unknown``.
    """

    def __init__(self, fn, count: int):
        self.fn, self.count = fn, count

    def agrees(self, values: list) -> bool:
        """Whether the two sides agree to twelve digits at ``values`` (exact numbers, flat)."""
        try:
            sides = self.fn(*(float(v) for v in values))
            return all(_same(a, b) for a, b in zip(sides[: self.count], sides[self.count :], strict=True))
        except Exception:  # noqa: BLE001  (anything the screen cannot settle goes to the exact comparison)
            return False


def _same(a, b) -> bool:
    if isinstance(a, complex) or isinstance(b, complex):
        return False
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= SCREEN_SAME * (1 + abs(a) + abs(b))


def _float_screen(symbols: list, grad: np.ndarray, claimed: np.ndarray) -> _FloatScreen | None:
    """Both sides compiled by ``lambdify`` to Python's math module, or None where they cannot be."""
    if grad.shape != claimed.shape:
        return None
    sides = [_exact(v) for v in grad.flat] + [_exact(v) for v in claimed.flat]
    try:
        # dummify: the compiled source names only generated arguments, never a tensor's name
        fn = sp.lambdify(symbols, sides, modules="math", dummify=True, cse=True)
    except Exception:  # noqa: BLE001  (no screen: every assignment takes the exact path)
        return None
    return _FloatScreen(fn, grad.size)


def _substitute(arr: np.ndarray, point: dict) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    for idx in itertools.product(*(range(d) for d in arr.shape)):
        out[idx] = _exact(arr[idx]).xreplace(point)
    return out


def _slots(shapes: dict) -> list[tuple[str, tuple]]:
    return [(n, idx) for n, shape in shapes.items() for idx in itertools.product(*(range(d) for d in shape))]


def _values_from(shapes: dict, slots: list, chosen: dict) -> dict:
    values = {n: np.full(shape, sp.Integer(0), dtype=object) for n, shape in shapes.items()}
    for (n, idx), v in zip(slots, (chosen.get(k, 0) for k in range(len(slots))), strict=True):
        values[n][idx] = sp.Integer(v)
    return values


def minimal_assignments(domains: Sequence[tuple]) -> Iterator[dict]:
    """Value assignments (slot -> value) with as few nonzero values as possible first.

    Slots whose domain excludes 0 are always nonzero; the others are switched on in
    increasing number, earlier slots first, values in the domain's order.

    >>> list(minimal_assignments([(0, 1), (0, 1)]))
    [{}, {0: 1}, {1: 1}, {0: 1, 1: 1}]
    """
    forced = [k for k, d in enumerate(domains) if 0 not in d]
    optional = [k for k, d in enumerate(domains) if 0 in d and len(d) > 1]
    for count in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, count):
            slots = sorted(forced + list(chosen))
            choices = [tuple(v for v in domains[k] if v != 0) for k in slots]
            for vals in itertools.product(*choices):
                yield dict(zip(slots, vals, strict=True))


def _random_assignments(domains: Sequence[tuple], count: int, seed: int) -> Iterator[dict]:
    rng = random.Random(seed)
    for _ in range(count):
        yield {k: rng.choice(d) for k, d in enumerate(domains) if d}


def _counterexample_at(comparison: _Comparison, assumptions: _Assumptions, deadline) -> Counterexample | None:
    shapes = comparison.shapes
    slots = _slots(shapes)
    domains = [assumptions.domain(n) for n, _ in slots]
    if any(not d for d in domains):
        return None

    def search(assignments, budget, lookahead=0):
        # a difference where the claim is undefined is kept while up to ``lookahead`` more
        # assignments with as many nonzero values look for one where both sides are numbers
        undefined, left = None, lookahead
        for chosen in itertools.islice(assignments, budget):
            if undefined is not None:
                if len(chosen) != len(undefined[2]) or left == 0:
                    break
                left -= 1
            if deadline is not None and time.monotonic() > deadline:
                break
            values = _values_from(shapes, slots, chosen)
            if not assumptions.hold(values):
                continue
            found = comparison.first_difference(values)
            if found is None:
                continue
            if lookahead == 0 or _both_numbers(found):
                return values, found
            if undefined is None:
                undefined = (values, found, chosen)
        return undefined[:2] if undefined is not None else None

    if comparison.identical():
        return None
    probe = search(_random_assignments(domains, RANDOM_PROBES, seed=len(slots)), RANDOM_PROBES)
    # without a difference among the probes, still try the sparse corner (kinks sit at 0)
    budget = MAX_ASSIGNMENTS if probe is not None else MAX_ASSIGNMENTS // 10
    hit = search(minimal_assignments(domains), budget, lookahead=FINITE_LOOKAHEAD)
    hit = hit or probe
    if hit is None:
        return None
    values, (index, expected, claimed) = hit
    return Counterexample(
        sizes={str(k): int(v) for k, v in comparison.env.items()},
        values={n: json_array(values[n]) for n in shapes},
        index=tuple(index),
        expected=json_number(_tidy(expected[index])),
        claimed=json_number(_tidy(claimed[index])),
        expected_array=json_array(np.vectorize(_tidy, otypes=[object])(expected) if expected.size else expected),
        claimed_array=json_array(np.vectorize(_tidy, otypes=[object])(claimed) if claimed.size else claimed),
    )


def _both_numbers(found) -> bool:
    """Whether a difference ``(index, expected, claimed)`` has a number on both sides."""
    index, expected, claimed = found
    return not is_undefined(expected[index]) and not is_undefined(claimed[index])


def _shape_mismatch(layer: Layer, wrt: str, claim: Tensor, env: dict) -> Counterexample | None:
    expected = concrete_shape(layer.input_tensor(wrt), env)
    sizes = {str(k): int(v) for k, v in env.items()}
    try:
        defined = is_valid_at(claim, env)
        claimed = concrete_shape(claim, env) if defined else None
    except (EvaluationError, TypeError, ValueError, ZeroDivisionError) as exc:
        return Counterexample(
            sizes=sizes, expected_shape=expected, claimed_shape=None, message=f"the claim is not defined here: {exc}"
        )
    if claimed is None:
        return Counterexample(
            sizes=sizes, expected_shape=expected, claimed_shape=None, message="the claim is not defined at these sizes"
        )
    if claimed != expected:
        return Counterexample(
            sizes=sizes,
            expected_shape=expected,
            claimed_shape=claimed,
            message=f"the claim has shape {claimed}, the gradient {expected}",
        )
    return None


def _given_sizes(layer: Layer, assumptions, sizes: dict) -> list[dict]:
    by_name = {str(k): v for k, v in sizes.items()}
    try:
        env = {s: int(by_name[str(s)]) for s in layer.sizes}
    except (KeyError, TypeError, ValueError):
        return []
    if any(v < 1 for v in env.values()):
        return []
    return [env] if all(_holds(c, env) for c in layer.size_assumptions(assumptions)) else []


class SearchSummary:
    """What a search covered, for the ``unknown`` reason."""

    def __init__(self):
        self.tried: list[dict] = []
        self.too_large: list[dict] = []
        self.timed_out = False

    def describe(self) -> str:
        """The sizes searched, and those left out as too large.

        >>> summary = SearchSummary()
        >>> summary.tried.append({"n": 2}); summary.too_large.append({"n": 40})
        >>> summary.describe()
        'sizes up to n=2 (1 size assignments tried; sizes with more than 64 scalar values, such as n=40, are beyond the concrete search)'
        """
        notes = []
        if self.tried:
            largest = max(self.tried, key=lambda env: (sum(env.values()), tuple(env.values())))
            text = "sizes up to " + _sizes_text(largest)
            notes.append(f"{len(self.tried)} size assignments tried")
        else:
            text = "no sizes"
        if self.too_large:
            limit = MAX_UNKNOWNS if self.tried else HARD_MAX_UNKNOWNS
            notes.append(
                f"sizes with more than {limit} scalar values, such as {_sizes_text(self.too_large[0])},"
                " are beyond the concrete search"
            )
        return text + (f" ({'; '.join(notes)})" if notes else "")


def _sizes_text(env: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items()) or "the layer's fixed sizes"


def find_counterexample(
    layer: Layer,
    wrt: str,
    claim_tensor: Tensor,
    assumptions=(),
    deadline: float | None = None,
    summary: SearchSummary | None = None,
    max_candidates: int = MAX_SIZE_CANDIDATES,
    at_sizes: dict | None = None,
) -> Counterexample | None:
    """The minimal concrete point where ``claim_tensor`` is not the gradient, or None.

    ``assumptions`` are extra :class:`Assumption` s (or SymPy size conditions) added to
    the layer's; ``deadline`` a ``time.monotonic()`` instant after which the search stops.
    A shape mismatch (or a claim undefined at allowed sizes) is a counterexample too.
    ``max_candidates`` bounds how many size assignments are tried (in minimal order);
    ``at_sizes`` ({size: int}, e.g. a solver's model) tries that one assignment only,
    provided it satisfies the assumptions.
    """
    summary = summary if summary is not None else SearchSummary()
    if deadline is None:
        deadline = time.monotonic() + SEARCH_SECONDS
    tensor_assumptions = _tensor_assumptions(layer, assumptions)
    # max_candidates: the prover's cross-check looks at the first few sizes only;
    # at_sizes: the one size assignment a solver model points at
    candidates = size_candidates(layer, assumptions)
    if at_sizes is not None:
        candidates = iter(_given_sizes(layer, assumptions, at_sizes))
    for env in itertools.islice(candidates, max_candidates or MAX_SIZE_CANDIDATES):
        if deadline is not None and time.monotonic() > deadline:
            summary.timed_out = True
            return None
        mismatch = _shape_mismatch(layer, wrt, claim_tensor, env)
        if mismatch is not None:
            return mismatch
        shapes = input_shapes(layer, env)
        unknowns = sum(int(np.prod(s)) for s in shapes.values())
        if unknowns > (MAX_UNKNOWNS if summary.tried else HARD_MAX_UNKNOWNS):
            summary.too_large.append({str(k): int(v) for k, v in env.items()})
            continue
        summary.tried.append({str(k): int(v) for k, v in env.items()})
        try:
            checker = _Assumptions(layer, tensor_assumptions, env)
        except (EvaluationError, KeyError, TypeError, ValueError):
            continue
        found = _counterexample_at(_Comparison(layer, wrt, claim_tensor, env, shapes), checker, deadline)
        if found is not None:
            return found
    return None


def _first_and_all_two(candidates: Iterator[dict], count: int, look: int = 200) -> list[dict]:
    """The first ``count`` size assignments, and the first with every size at least 2 (a 1 hides
    flips, transposes and off-by-ones)."""
    seen = list(itertools.islice(candidates, look))
    chosen = seen[:count]
    wide = next((env for env in seen if all(int(v) >= 2 for v in env.values())), None)
    return chosen + [wide] if wide is not None and wide not in chosen else chosen


def disagreement_sizes(
    layer: Layer, wrt: str, claim_tensor: Tensor, assumptions=(), candidates: int = 3, probes: int = 6
):
    """The first of the smallest allowed sizes where the claim and the exact gradient differ, else None.

    A quick second opinion on a proof: at each of the first ``candidates`` size
    assignments and the first with every size at least 2, the two sides compared symbolically where they expand to the same
    thing, else at ``probes`` random small values satisfying the tensor assumptions.

    >>> from symderive.language import claim_tensor as tensor_of, parse_claim
    >>> from symderive.layer import load_layer
    >>> lay = load_layer("linear")
    >>> disagreement_sizes(lay, "x", tensor_of(parse_claim("w.T @ g", lay, "x"), lay)) is None
    True
    """
    tensor_assumptions = _tensor_assumptions(layer, assumptions)
    for env in _first_and_all_two(size_candidates(layer, assumptions), candidates):
        shapes = input_shapes(layer, env)
        if sum(max(1, int(np.prod(s))) for s in shapes.values()) > MAX_UNKNOWNS:
            continue
        comparison = _Comparison(layer, wrt, claim_tensor, env, shapes)
        if comparison.grad is not None and comparison.identical():
            continue
        checker = _Assumptions(layer, tensor_assumptions, env)
        slots = _slots(shapes)
        domains = [checker.domain(n) for n, _ in slots]
        tried = 0
        for chosen in _random_assignments(domains, 20 * probes, seed=len(slots)):
            values = _values_from(shapes, slots, chosen)
            if not checker.hold(values):
                continue
            if comparison.first_difference(values) is not None:
                return {str(k): v for k, v in env.items()}
            tried += 1
            if tried >= probes:
                break
    return None


# -- the verdict -------------------------------------------------------------------------
def parse_assumptions(texts: Sequence[str], layer: Layer) -> list[Assumption]:
    """Extra assumption strings, parsed exactly like a layer file's ``assume`` entries."""
    from ..core.parse import parse_assumption

    return [parse_assumption(t, dict(layer.inputs), list(layer.sizes), where=f"--assume {t!r}") for t in texts]


def prove_concrete(layer, wrt: str, claim_text: str, assume=(), deadline: float | None = None) -> Verdict:
    """Refute a claim by a concrete counterexample, or say ``unknown`` -- never ``proved``.

    >>> # sd.prove_concrete("linear", "x", "w @ g").verdict  ->  'refuted'
    """
    from ..core.parse import claim_tensor, parse_claim

    if not isinstance(layer, Layer):
        from ..model.layer import load_layer

        layer = load_layer(layer)
    if wrt not in layer.inputs:
        raise InputError(f"layer {layer.name} has no input {wrt!r} (inputs: {', '.join(layer.inputs)})", where="--wrt")
    extra = parse_assumptions(list(assume), layer)
    tensor = claim_tensor(parse_claim(claim_text, layer, wrt), layer)
    texts = tuple(a.text for a in layer.assumptions) + tuple(a.text for a in extra)
    summary = SearchSummary()
    found = find_counterexample(layer, wrt, tensor, extra, deadline=deadline, summary=summary)
    common = {"layer": layer.name, "wrt": wrt, "claim": claim_text, "assumptions": texts}
    if found is not None:
        return Verdict(REFUTED, counterexample=found, detail="found by concrete search at small sizes", **common)
    if summary.timed_out:
        return Verdict(UNKNOWN, reason=f"timeout: no counterexample at {summary.describe()}", **common)
    return Verdict(UNKNOWN, reason=f"no counterexample at {summary.describe()}; no all-sizes proof", **common)
