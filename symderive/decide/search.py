"""Concrete refutation: search small sizes and small values for a point where two sides differ.

The search works on a :class:`~symderive.decide.problem.Problem`. For a gradient claim it
is deliberately independent of the symbolic deriver: the left side is the problem's
reference, which evaluates the layer's forward pass at concrete sizes with SymPy symbols
for the input being differentiated, forms the loss (``sum(g * y)``, or ``L``), and calls
``sympy.diff``. The right side is evaluated at the same sizes through the operator table.

A counterexample is minimal in LANGUAGE.md's sense: the smallest sum of sizes (ties: the
sizes in the layer's declaration order, smallest first), then values in {-1, 0, 1, 2}
with as few nonzero as possible. Two values are called different only when that is
certain (exactly, or by a 50-digit evaluation with a wide margin): a refutation must never
rest on rounding. Nothing here ever answers ``proved``.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import time
from collections.abc import Iterator, Sequence

import mpmath
import numpy as np
import sympy as sp
from mpmath.ctx_iv import MPIntervalContext
from sympy.printing.str import StrPrinter

from .concrete import EvaluationError, Evaluator, concrete_shape, evaluate, is_valid_at
from .problem import _exact, concrete_shapes, symbol_array
from .verdict import Counterexample

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
    enclosed = _enclosed_nonzero(value)
    if enclosed is not None:
        return enclosed
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


def _interval_context(bits: int) -> MPIntervalContext:
    """mpmath's interval arithmetic (rounded outward) at ``bits`` bits, apart from mpmath's shared ``iv``."""
    ctx = MPIntervalContext()
    ctx._mp, ctx._iv, ctx.prec = mpmath.mp, ctx, bits
    return ctx


#: intervals of 300 bits (about 90 digits); set once here, never changed
_IV = _interval_context(300)


class _NoEnclosure(Exception):
    """A value the interval evaluation does not cover (it is decided by ``evalf`` then)."""


def _enclosed_nonzero(value) -> bool | None:
    """Whether a real number is beyond :data:`CERTAIN_MARGIN` (True) or within it (False), shown
    by an interval that encloses it; None where no interval settles it (it straddles the margin,
    or holds something not enclosed here: a complex value, a function without an interval form).

    A hundred times quicker than ``evalf(50)`` on a difference that cancels to 0, which ``evalf``
    chases to its largest precision; the cross-check of every proof asks this of each element.

    >>> _enclosed_nonzero(sp.exp(1) - sp.Rational(27, 10)), _enclosed_nonzero(sp.exp(2) / (1 + sp.exp(2)) - 1 / (1 + sp.exp(-2)))
    (True, False)
    """
    try:
        x = _enclosure(value)
        lo, hi = (mpmath.mpf(end) for end in x._mpi_)
    except (_NoEnclosure, ZeroDivisionError, ValueError, TypeError, OverflowError):
        return None
    margin = mpmath.mpf(CERTAIN_MARGIN._mpf_)
    if not (mpmath.isfinite(lo) and mpmath.isfinite(hi)):
        return None
    if lo > margin or hi < -margin:
        return True
    if lo >= -margin and hi <= margin:
        return False
    return None


def _enclosure(e):
    """An interval holding the real number ``e`` (integers, rationals, e, pi, +, *, powers, exp, log)."""
    if e.is_Integer:
        return _IV.mpf(int(e))
    if e.is_Rational:
        return _IV.mpf(int(e.p)) / int(e.q)
    if e is sp.E:
        return _IV.e
    if e is sp.pi:
        return _IV.pi
    if isinstance(e, sp.Add):
        total = _IV.mpf(0)
        for a in e.args:
            total += _enclosure(a)
        return total
    if isinstance(e, sp.Mul):
        product = _IV.mpf(1)
        for a in e.args:
            product *= _enclosure(a)
        return product
    if isinstance(e, sp.exp):
        return _IV.exp(_enclosure(e.args[0]))
    if isinstance(e, sp.log):
        return _IV.log(_positive(_enclosure(e.args[0])))
    if isinstance(e, sp.Pow):
        base, exp = _enclosure(e.base), e.exp
        if exp.is_Integer:
            if exp < 0:
                return 1 / _nonzero(base) ** int(-exp)
            return base ** int(exp)
        return _IV.exp(_enclosure(exp) * _IV.log(_positive(base)))
    raise _NoEnclosure(type(e).__name__)


def _positive(x):
    if not x.a > 0:
        raise _NoEnclosure("an interval that may not be positive")
    return x


def _nonzero(x):
    if not (x.a > 0 or x.b < 0):
        raise _NoEnclosure("an interval that may hold 0")
    return x


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


def size_candidates(sizes: tuple, conds, max_size: int = MAX_SIZE) -> Iterator[dict]:
    """Size assignments satisfying ``conds``, in LANGUAGE.md's minimal order.

    Smallest sum of sizes first; ties by the sizes in declaration order, smallest first.
    Each size is at most ``max_size``. Yields ``{size symbol: int}``.

    >>> from ..core.ir import size_symbol
    >>> n, m = size_symbol("n"), size_symbol("m")
    >>> [tuple(c.values()) for c in itertools.islice(size_candidates((n, m), [sp.Ge(m, n)]), 4)]
    [(1, 1), (1, 2), (1, 3), (2, 2)]
    """
    syms = tuple(sizes)
    for total in range(len(syms), len(syms) * max_size + 1):
        for combo in _compositions(total, len(syms), max_size):
            env = dict(zip(syms, combo, strict=True))
            if all(_holds(c, env) for c in conds):
                yield env
        if not syms:
            return


# -- tensor assumptions ----------------------------------------------------------------
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


def _bounds_a_tensor(a) -> bool:
    from ..core.tree import Num, Ref

    return a.kind == "sign" and isinstance(a.lhs, Ref) and isinstance(a.rhs, Num)


class _Assumptions:
    """A problem's tensor assumptions at concrete sizes, checkable on value assignments."""

    def __init__(self, problem, env: dict):
        from ..core.tree import build

        scope, assumptions = problem.scope, [a for a in problem.assumptions if a.kind in ("equal", "sign")]
        self.env = env
        self.pairs = [(a, build(a.lhs, scope), build(a.rhs, scope)) for a in assumptions]
        # a bound on a whole tensor (``eps > 0``) is kept by drawing values from domain()
        self.to_check = [p for p in self.pairs if not _bounds_a_tensor(p[0])]
        #: per assumption to check, both sides with a symbol for each value (None: evaluated anew)
        self._symbolic: list | None = None

    def hold(self, values: dict) -> bool:
        if self._symbolic is None:
            self._symbolic = [self._sides(lhs_t, rhs_t, _symbols_like(values)) for _, lhs_t, rhs_t in self.to_check]
        point = None
        for (a, lhs_t, rhs_t), symbolic in zip(self.to_check, self._symbolic, strict=True):
            try:
                if symbolic is not None:
                    point = point if point is not None else _point(values)
                    lhs, rhs = (_substitute(side, point) for side in symbolic)
                else:
                    lhs, rhs = self._sides(lhs_t, rhs_t, values, strict=True)
            except (EvaluationError, ValueError, TypeError, ZeroDivisionError):
                return False
            rel = "==" if a.kind == "equal" else (a.rel or ">")
            if not all(_relation_holds(rel, lv, rv) for lv, rv in zip(lhs.flat, rhs.flat, strict=True)):
                return False
        return True

    def _sides(self, lhs_t, rhs_t, values: dict, strict: bool = False):
        """Both sides of an assumption at ``values``, broadcast; with ``strict`` False, None where
        they cannot be evaluated (with symbols: a condition on values is not decided then)."""
        try:
            lhs = evaluate(lhs_t, self.env, values, exact=True)
            rhs = evaluate(rhs_t, self.env, values, exact=True)
            return np.broadcast_arrays(lhs, rhs)
        except (EvaluationError, ValueError, TypeError, ZeroDivisionError):
            if strict:
                raise
            return None

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
    """A problem's two sides at one size assignment, for many value assignments."""

    def __init__(self, problem, env: dict, shapes: dict):
        self.problem, self.claim, self.env, self.shapes = problem, problem.right, env, shapes
        self.names = list(shapes)
        self.symbols = {n: symbol_array(f"_{n}", shapes[n]) for n in self.names}
        self.flat_symbols = [s for n in self.names for s in self.symbols[n].flat]
        self.grad = self.claimed = None
        self._screen = None
        try:
            # everything symbolic: one expansion, then cheap substitutions per assignment
            self.grad = problem.left_values(self._sizes(), self.symbols, symbolic=True)
            self.claimed = evaluate(self.claim, env, self.symbols, exact=True)
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
            expected = self.problem.left_values(self._sizes(), values, symbolic=False)
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


def _symbols_like(values: dict) -> dict:
    """A symbol array (as :class:`_Comparison` names them) for each value array."""
    return {n: symbol_array(f"_{n}", np.shape(v)) for n, v in values.items()}


def _point(values: dict) -> dict:
    """The symbols of :func:`_symbols_like` mapped to their values."""
    symbols = _symbols_like(values)
    return {s: _exact(values[n][idx]) for n in values for idx, s in np.ndenumerate(symbols[n])}


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
                return values, found, chosen
            if undefined is None:
                undefined = (values, found, chosen)
        return undefined

    if comparison.identical():
        return None
    probe = search(_random_assignments(domains, RANDOM_PROBES, seed=len(slots)), RANDOM_PROBES)
    # without a difference among the probes, still try the sparse corner (kinks sit at 0)
    budget = MAX_ASSIGNMENTS if probe is not None else MAX_ASSIGNMENTS // 10
    # the minimal order over the values the differing elements read (the rest stay 0): the same
    # first hit as over all values, reached within the budget at large sizes
    hit = search(
        minimal_assignments(_relevant_domains(comparison, assumptions, slots, domains)), budget, FINITE_LOOKAHEAD
    )
    if hit is None and probe is not None:
        # the minimal order ran out of budget before the fewest nonzero values a difference
        # needs (large sizes): the random probe's difference, its values taken away one by one
        hit = _shrunk(probe, shapes, slots, domains, comparison, assumptions, deadline)
    if hit is None:
        return None
    values, (index, expected, claimed), _ = hit
    return Counterexample(
        sizes={str(k): int(v) for k, v in comparison.env.items()},
        values={n: json_array(values[n]) for n in shapes},
        index=tuple(index),
        expected=json_number(_tidy(expected[index])),
        claimed=json_number(_tidy(claimed[index])),
        expected_array=json_array(np.vectorize(_tidy, otypes=[object])(expected) if expected.size else expected),
        claimed_array=json_array(np.vectorize(_tidy, otypes=[object])(claimed) if claimed.size else claimed),
    )


def _relevant_domains(comparison: _Comparison, assumptions: _Assumptions, slots: list, domains: list) -> list:
    """``domains`` with every value that cannot matter held at 0.

    A value matters when an element where the two sides are not the same expression reads
    it, or when a tensor assumption names its tensor (``sum(t) == 1`` may need it nonzero).
    Any difference stays a difference with the other values set to 0, with no more nonzero
    values: the fewest nonzero values a difference needs, and the first such assignment in
    the minimal order, are the same over these domains as over all of them.
    """
    if comparison.grad is None:
        return domains
    named: set = set()
    for a, _, _ in assumptions.to_check:
        for side in (a.lhs, a.rhs):
            names = _tree_names(side, comparison.shapes)
            if names is None:
                return domains  # nothing held at 0
            named |= names
    read: set = set()
    for a, b in zip(comparison.grad.flat, comparison.claimed.flat, strict=True):
        a, b = _exact(a), _exact(b)
        if a == b:
            continue
        if is_undefined(a) or is_undefined(b):
            read |= a.free_symbols | b.free_symbols
            continue
        # what the difference reads (terms the sides share cancel: ``w.T @ g + x`` reads x only)
        read |= sp.expand(a - b).free_symbols
    symbols = {s: k for k, s in enumerate(comparison.flat_symbols)}
    relevant = {symbols[s] for s in read if s in symbols}
    return [
        d if k in relevant or name in named or 0 not in d else (0,)
        for k, ((name, _), d) in enumerate(zip(slots, domains, strict=True))
    ]


def _tree_names(node, inputs) -> set | None:
    """The input names an assumption's side reads, or None where that cannot be told (an
    intermediate, the output, an index-form value)."""
    from ..core.tree import Call, Element, Node, Num, Ref

    if isinstance(node, Ref):
        return {node.name} if node.name in inputs else None
    if isinstance(node, Num):
        return set()
    if isinstance(node, Element):
        return _tree_names(node.node, inputs)
    if not isinstance(node, Call):
        return None
    out: set = set()
    for _, value in node.args:
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(part, Node):
                names = _tree_names(part, inputs)
                if names is None:
                    return None
                out |= names
    return out


def _shrunk(hit, shapes, slots, domains, comparison, assumptions, deadline):
    """A difference ``(values, found, chosen)`` with as few nonzero values as taking them away
    one at a time leaves (each value zeroed where the sides still differ, with numbers on
    both sides when the first had them), then each remaining value the first of
    ``SMALL_VALUES`` that keeps a difference. Every step is an exact comparison."""
    numbers = _both_numbers(hit[1])
    hit = (hit[0], hit[1], {k: v for k, v in hit[2].items() if v != 0})

    def differs(chosen):
        values = _values_from(shapes, slots, chosen)
        if not assumptions.hold(values):
            return None
        found = comparison.first_difference(values)
        if found is None or (numbers and not _both_numbers(found)):
            return None
        return values, found, chosen

    # halves, then quarters, ... taken away at once: a few comparisons where most values do not matter
    width = max(1, len(hit[2]) // 2)
    while True:
        removable = [k for k in sorted(hit[2]) if 0 in domains[k]]
        for start in range(0, len(removable), width):
            if deadline is not None and time.monotonic() > deadline:
                return hit
            group = set(removable[start : start + width])
            hit = differs({k: v for k, v in hit[2].items() if k not in group}) or hit
        if width == 1:
            break
        width = max(1, width // 2)
    for slot in sorted(hit[2]):
        for value in domains[slot]:
            if value == 0 or value == hit[2][slot]:
                continue
            if SMALL_VALUES.index(value) > SMALL_VALUES.index(hit[2][slot]):
                break
            if deadline is not None and time.monotonic() > deadline:
                return hit
            smaller = differs({**hit[2], slot: value})
            if smaller is not None:
                hit = smaller
                break
    return hit


def _both_numbers(found) -> bool:
    """Whether a difference ``(index, expected, claimed)`` has a number on both sides."""
    index, expected, claimed = found
    return not is_undefined(expected[index]) and not is_undefined(claimed[index])


def _shape_mismatch(problem, env: dict) -> Counterexample | None:
    claim, what, other = problem.right, problem.right_name, problem.left_name
    expected = concrete_shape(problem.left, env)
    sizes = {str(k): int(v) for k, v in env.items()}
    try:
        defined = is_valid_at(claim, env)
        claimed = concrete_shape(claim, env) if defined else None
    except (EvaluationError, TypeError, ValueError, ZeroDivisionError) as exc:
        return Counterexample(
            sizes=sizes, expected_shape=expected, claimed_shape=None, message=f"{what} is not defined here: {exc}"
        )
    if claimed is None:
        return Counterexample(
            sizes=sizes, expected_shape=expected, claimed_shape=None, message=f"{what} is not defined at these sizes"
        )
    if claimed != expected:
        return Counterexample(
            sizes=sizes,
            expected_shape=expected,
            claimed_shape=claimed,
            message=f"{what} has shape {claimed}, {other} {expected}",
        )
    return None


def _given_sizes(problem, sizes: dict) -> list[dict]:
    by_name = {str(k): v for k, v in sizes.items()}
    try:
        env = {s: int(by_name[str(s)]) for s in problem.sizes}
    except (KeyError, TypeError, ValueError):
        return []
    if any(v < 1 for v in env.values()):
        return []
    return [env] if all(_holds(c, env) for c in problem.size_assumptions()) else []


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
    problem,
    deadline: float | None = None,
    summary: SearchSummary | None = None,
    max_candidates: int = MAX_SIZE_CANDIDATES,
    at_sizes: dict | None = None,
) -> Counterexample | None:
    """The minimal concrete point where a :class:`~symderive.decide.problem.Problem`'s two sides differ, or None.

    ``deadline`` is a ``time.monotonic()`` instant after which the search stops. A shape
    mismatch (or a right side undefined at allowed sizes) is a counterexample too.
    ``max_candidates`` bounds how many size assignments are tried (in minimal order);
    ``at_sizes`` ({size: int}, e.g. a solver's model) tries that one assignment only,
    provided it satisfies the assumptions.
    """
    summary = summary if summary is not None else SearchSummary()
    if deadline is None:
        deadline = time.monotonic() + SEARCH_SECONDS
    # max_candidates: the prover's cross-check looks at the first few sizes only;
    # at_sizes: the one size assignment a solver model points at
    candidates = size_candidates(problem.sizes, problem.size_assumptions())
    if at_sizes is not None:
        candidates = iter(_given_sizes(problem, at_sizes))
    for env in itertools.islice(candidates, max_candidates or MAX_SIZE_CANDIDATES):
        if deadline is not None and time.monotonic() > deadline:
            summary.timed_out = True
            return None
        mismatch = _shape_mismatch(problem, env)
        if mismatch is not None:
            return mismatch
        shapes = concrete_shapes(problem.tensors, env)
        unknowns = sum(int(np.prod(s)) for s in shapes.values())
        if unknowns > (MAX_UNKNOWNS if summary.tried else HARD_MAX_UNKNOWNS):
            summary.too_large.append({str(k): int(v) for k, v in env.items()})
            continue
        summary.tried.append({str(k): int(v) for k, v in env.items()})
        try:
            checker = _Assumptions(problem, env)
        except (EvaluationError, KeyError, TypeError, ValueError):
            continue
        found = _counterexample_at(_Comparison(problem, env, shapes), checker, deadline)
        if found is not None:
            return found
    return None


def _first_and_all_two(candidates: Iterator[dict], count: int, look: int = 200) -> list[dict]:
    """The first ``count`` size assignments, and the first with every size at least 2 (a 1 hides
    flips, transposes and off-by-ones)."""
    chosen, wide = [], None
    # stops as soon as both are found: each candidate costs an evaluation of the size conditions
    for env in itertools.islice(candidates, look):
        if len(chosen) < count:
            chosen.append(env)
        if wide is None and all(int(v) >= 2 for v in env.values()):
            wide = env
        if wide is not None and len(chosen) == count:
            break
    return chosen + [wide] if wide is not None and wide not in chosen else chosen


def _cross_check_sizes(sizes: tuple, conds: tuple, count: int) -> list[dict]:
    try:
        return [dict(env) for env in _cross_check_size_items(sizes, conds, count)]
    except TypeError:  # a condition without a hash
        return _first_and_all_two(size_candidates(sizes, conds), count)


# Cached: a pure function of SymPy sizes and conditions (hashable); every claim about one layer
# is cross-checked at the same sizes, and finding them evaluates the conditions at many candidates.
@functools.lru_cache(maxsize=256)
def _cross_check_size_items(sizes: tuple, conds: tuple, count: int) -> tuple:
    return tuple(tuple(env.items()) for env in _first_and_all_two(size_candidates(sizes, conds), count))


def disagreement_sizes(problem, candidates: int = 3, probes: int = 6):
    """The first of the smallest allowed sizes where a problem's two sides differ, else None.

    A quick second opinion on a proof: at each of the first ``candidates`` size
    assignments and the first with every size at least 2, the two sides compared symbolically where they expand to the same
    thing, else at ``probes`` random small values satisfying the tensor assumptions.

    >>> from symderive.decide.pose import gradient_problem
    >>> disagreement_sizes(gradient_problem("linear", "x", "w.T @ g")) is None
    True
    """
    for env in _cross_check_sizes(tuple(problem.sizes), tuple(problem.size_assumptions()), candidates):
        shapes = concrete_shapes(problem.tensors, env)
        if sum(max(1, int(np.prod(s))) for s in shapes.values()) > MAX_UNKNOWNS:
            continue
        comparison = _Comparison(problem, env, shapes)
        if comparison.grad is not None and comparison.identical():
            continue
        checker = _Assumptions(problem, env)
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
