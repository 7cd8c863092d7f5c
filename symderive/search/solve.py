"""``solve``: the simplest proved closed forms of a layer's gradient.

Bottom-up enumeration over the operator table, typed by symbolic shapes (only
shape-correct candidates are built) and pruned by observational equivalence (one
candidate per fingerprint of values at the test points); candidates that agree with the
true gradient numerically, up to a factor of sizes, are then proved with
:func:`symderive.prove.prove`. Only proved claims are returned.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..decide.verdict import Verdict
from ..display import Displayed
from ..errors import InputError
from ..model.layer import as_layer
from .match import ATOL, RTOL, agrees, point_ratios, scaled_text, size_factor
from .points import test_points
from .space import ATOM, PRODUCT, SUM, Candidate, Space, operator_count

#: the search stops building candidates after this many (the proofs follow)
MAX_CANDIDATES = 60000
#: deepest level of the enumeration (operators applied to leaves)
MAX_LEVEL = 5
#: spellings kept per fingerprint besides the first: tried when the first fails to prove
ALTERNATIVES = 8
#: the structural first pass stops at this level and this many candidates
STRUCTURAL_LEVEL, STRUCTURAL_CANDIDATES = 4, 20000


@dataclass(frozen=True)
class Found:
    """One proved closed form: the claim text, its operator count and its verdict."""

    claim: str
    operators: int
    verdict: Verdict = field(repr=False)


@dataclass(frozen=True)
class SolveResult(Displayed):
    """What ``solve`` found: proved claims simplest first (fewest operators), or none and
    the derived index form; ``candidates`` built, ``distinct`` kept, ``seconds`` spent.

    >>> SolveResult("linear", "b", (), "dL/db[p] = g[p]", 3, 2, 0.1).found
    False
    """

    layer: str
    wrt: str
    claims: tuple[Found, ...]
    index_form: str
    candidates: int
    distinct: int
    seconds: float
    #: claims that agreed numerically but were not proved (not offered; for diagnostics)
    unproved: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """Whether at least one closed form was proved."""
        return bool(self.claims)

    def to_json(self) -> list[dict]:
        """One object per closed form (LANGUAGE.md, ``solve --json``), or one with ``"none"``."""
        if not self.claims:
            return [{"layer": self.layer, "wrt": self.wrt, "verdict": "none", "index_form": self.index_form}]
        return [
            {
                "layer": self.layer,
                "wrt": self.wrt,
                "claim": f.claim,
                "verdict": "proved",
                "assumptions": list(f.verdict.assumptions),
            }
            for f in self.claims
        ]


def fingerprint(values) -> bytes:
    """A key equal for candidates with equal values (to 7 decimals) at every test point.

    >>> fingerprint([np.array([1.0, -0.0])]) == fingerprint([np.array([1.00000001, 0.0])])
    True
    """
    parts = [repr(v.shape).encode() + (np.round(v, 7) + 0.0).tobytes() for v in values]
    return b"|".join(parts)


@dataclass(frozen=True)
class Goal:
    """Values that a candidate C must have for ``spell(C)`` to be the gradient."""

    values: tuple
    spell: object


def _times(leaf: Candidate):
    return lambda c: f"{leaf.operand(PRODUCT)} * {c.operand(PRODUCT + 1)}"


def _plus(leaf: Candidate):
    return lambda c: f"{c.operand(SUM)} + {leaf.operand(SUM + 1)}"


def _minus(leaf: Candidate):
    return lambda c: f"{c.operand(SUM)} - {leaf.operand(SUM + 1)}"


def _transposed(perm: tuple):
    if len(perm) == 2:
        return lambda c: f"{c.operand(ATOM)}.T"
    return lambda c: f"transpose({c.text}, {perm})"


def _elementwise_ops() -> frozenset:
    from ..core.ops import OPERATORS

    return frozenset(n for n, op in OPERATORS.items() if op.algebra == "elementwise")


ELEMENTWISE = _elementwise_ops()


def _mentions_g(cand: Candidate) -> bool:
    return re.search(r"\bg\b", cand.text) is not None


def _fits(op: str, a: Candidate, b: Candidate, structural: bool, linear_in_g: bool = False) -> bool:
    """Whether two operands are worth combining by ``op``: ``outer`` of vectors only; in
    the structural pass no product with a number (a factor, found by matching); and where
    the gradient is linear in ``g`` (a non-final layer), no product of two terms with ``g``,
    and in the structural pass no product of two terms without it."""
    if linear_in_g and (op == "multiply" or op not in ELEMENTWISE):
        with_g = _mentions_g(a) + _mentions_g(b)
        if with_g == 2 or (structural and with_g == 0):
            return False
    if op == "outer":
        return len(a.shape) == 1 and len(b.shape) == 1
    if structural and op not in ELEMENTWISE:
        return a.shape != () and b.shape != ()
    # a number times or plus a tensor is a factor or offset that matching finds; only 1
    # (``1 - y``) and the layer's 0-d inputs (``var + eps``) are combined
    return all(c.shape != () or c.kind == "" or c.text == "1" for c in (a, b))


class Search:
    """The enumeration state: candidates by cost, one per fingerprint, and the matches."""

    def __init__(self, space: Space, deadline: float, max_candidates: int = MAX_CANDIDATES, structural: bool = False):
        self.space = space
        #: only operators that move or combine elements (transposes, reductions, products,
        #: convolutions), not elementwise functions: a cheap first pass that reaches deep
        self.structural = structural
        self.deadline = deadline
        self.max_candidates = max_candidates
        self.by_cost: dict[int, list[Candidate]] = {}
        self.seen: dict[bytes, list[str]] = {}
        self.built = 0
        self.matches: list[tuple[int, str]] = []
        self.matched: set[bytes] = set()
        self.goals: list[Goal] = []

    def out_of_budget(self) -> bool:
        """Whether the time or the candidate budget is spent."""
        return self.built >= self.max_candidates or time.monotonic() > self.deadline

    def add(self, cand: Candidate | None) -> None:
        """Keep ``cand`` unless an equal candidate is kept already (then remember its spelling)."""
        if cand is None:
            return
        self.built += 1
        if self.structural and cand.shape == () and cand.cost > 0 and self.space.target_shape != ():
            return  # a number built from tensors moves no elements
        key = fingerprint(cand.values)
        if key in self.seen:
            # another spelling of a match: kept, in case the first one fails to prove
            if key in self.matched and len(self.seen[key]) <= ALTERNATIVES:
                self.seen[key].append(cand.text)
                self._matches(cand)
            return
        self.seen[key] = [cand.text]
        self.by_cost.setdefault(cand.cost, []).append(cand)
        if self._matches(cand):
            self.matched.add(key)

    def _matches(self, cand: Candidate) -> bool:
        points = self.space.points
        if len(cand.shape) != len(self.space.target_shape) and cand.shape != ():
            return False
        if agrees(cand.values, points):
            self.matches.append((cand.cost, cand.text))
            return True
        for goal in self.goals:
            if all(
                v.shape == g.shape and np.allclose(v, g, rtol=RTOL, atol=ATOL)
                for v, g in zip(cand.values, goal.values, strict=True)
            ):
                self.matches.append((cand.cost + 1, goal.spell(cand)))
                return True
        ratios = point_ratios(cand.values, points)
        if ratios is None:
            return False
        factor = size_factor(ratios, points, self.space.layer.sizes)
        if factor is None:
            return False
        self.matches.append((cand.cost + 1, scaled_text(cand.text, cand.prec, factor, cand.operand)))
        return True

    def set_goals(self, leaves: list[Candidate]) -> None:
        """Goals one operator away from the gradient: the gradient divided by a leaf, or
        minus / plus one (``g * <goal>``, ``<goal> + t``), for leaves of a shape that
        broadcasts to the gradient's."""
        self.goals = []
        for leaf in leaves:
            if leaf.shape == () or not self._broadcasts(leaf):
                continue
            grads = [p.gradient for p in self.space.points]
            if all(np.all(np.abs(v) > 1e-6) for v in leaf.values):
                self.goals.append(Goal(tuple(g / v for g, v in zip(grads, leaf.values, strict=True)), _times(leaf)))
            self.goals.append(Goal(tuple(g - v for g, v in zip(grads, leaf.values, strict=True)), _plus(leaf)))
            self.goals.append(Goal(tuple(g + v for g, v in zip(grads, leaf.values, strict=True)), _minus(leaf)))
        rank = len(self.space.target_shape)
        for i, j in itertools.combinations(range(rank), 2):
            perm = list(range(rank))
            perm[i], perm[j] = perm[j], perm[i]
            values = tuple(np.transpose(p.gradient, perm) for p in self.space.points)
            self.goals.append(Goal(values, _transposed(tuple(perm))))

    def _broadcasts(self, leaf: Candidate) -> bool:
        try:
            return all(
                np.broadcast_shapes(v.shape, p.gradient.shape) == p.gradient.shape
                for v, p in zip(leaf.values, self.space.points, strict=True)
            )
        except ValueError:
            return False

    def level(self, cost: int) -> None:
        """Build every candidate of ``cost`` operators from the cheaper ones."""
        for cand in list(self.by_cost.get(cost - 1, [])):
            if cand.shape == ():
                continue  # functions of constants are factors (see _matches)
            for spec in self.space.unary_specs(cand.shape):
                if self.structural and (spec.op in ELEMENTWISE or spec.op == "mean"):
                    continue  # a mean is a sum times a factor of sizes, which matching finds
                if self.out_of_budget():
                    return
                self.add(self.space.apply(spec, (cand,), cost))
        # operators whose operands are rarely shape-compatible first (a convolution of two
        # transposes is reached before the elementwise combinations use up the budget)
        specs = sorted(
            self.space.binary_specs_cached(), key=lambda s: s.op in ("add", "subtract", "multiply", "divide")
        )
        for spec in specs:
            if self.structural and spec.op in ELEMENTWISE:
                continue
            for left_cost in range(cost):
                right_cost = cost - 1 - left_cost
                lefts, rights = self.by_cost.get(left_cost, []), self.by_cost.get(right_cost, [])
                for a in lefts:
                    for b in rights:
                        if self.out_of_budget():
                            return
                        if (
                            a.shape == ()
                            and b.shape == ()
                            or not _fits(spec.op, a, b, self.structural, not self.space.layer.is_loss)
                        ):
                            continue
                        if spec.op in ("add", "multiply") and left_cost == right_cost and a.text > b.text:
                            continue  # commutative: one order
                        self.add(self.space.apply(spec, (a, b), cost))
                        self.add(self.space.fitted(spec, (a, b), cost))


def index_form_text(layer, wrt: str) -> str:
    """The derived gradient of ``wrt`` as one element, as ``symderive derive`` ends.

    >>> index_form_text("linear", "b")
    'dL/db[p] = g[p]'
    """
    from ..calculus.present import present as derive
    from ..core.ir import plain

    step = derive(as_layer(layer), wrt).steps[-1]
    return f"{plain(step.lhs)} = {plain(step.rhs)}"


def _run_levels(search: Search, top: int, layer, wrt, deadline, max_results, found, unproved, tried) -> None:
    """Enumerate level by level, proving the matches of each level, until one proves."""
    from ..decide.pose import prove

    level = 0
    while True:
        for _, text in sorted(search.matches, key=lambda m: (operator_count(m[1]), len(m[1]), m[1])):
            if text in tried or len(found) >= max_results:
                continue
            tried.add(text)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            verdict = prove(layer, wrt, text, timeout=max(left, 0.5))
            if verdict.proved:
                found.append(Found(text, operator_count(text), verdict))
            else:
                unproved.append(text)
        level += 1
        if found or level > top or search.out_of_budget():
            return
        search.level(level)


def solve(layer, wrt: str, *, max_results: int = 5, timeout: float = 30.0) -> SolveResult:
    """The simplest proved closed forms of the gradient of ``layer``'s loss with respect to ``wrt``.

    Nothing unproved is offered: every claim returned has a ``proved`` Verdict.

    >>> [f.claim for f in solve("linear", "x").claims][:1]
    ['g @ w']
    """
    from ..decide.pose import checked_timeout

    start = time.monotonic()
    timeout = checked_timeout(timeout)
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InputError(f"max_results is a positive integer, got {max_results!r}", where="max_results")
    layer = as_layer(layer)
    layer.require_differentiable(wrt)
    deadline = start + timeout
    space = Space(layer, wrt, test_points(layer, wrt))
    leaves = space.leaves()
    found: list[Found] = []
    unproved: list[str] = []
    tried: set[str] = set()
    built = distinct = 0
    passes = (
        Search(space, deadline, STRUCTURAL_CANDIDATES, structural=True),
        Search(space, deadline, MAX_CANDIDATES),
    )
    for search, top in zip(passes, (STRUCTURAL_LEVEL, MAX_LEVEL), strict=True):
        search.set_goals(leaves)
        for leaf in leaves:
            search.add(leaf)
        _run_levels(search, top, layer, wrt, deadline, max_results, found, unproved, tried)
        built += search.built
        distinct = max(distinct, len(search.seen))
        if found:
            break
    found.sort(key=lambda f: (f.operators, len(f.claim), f.claim))
    return SolveResult(
        layer=layer.name,
        wrt=wrt,
        claims=tuple(found),
        index_form="" if found else index_form_text(layer, wrt),
        candidates=built,
        distinct=distinct,
        seconds=round(time.monotonic() - start, 3),
        unproved=tuple(unproved),
    )
