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

from ..decide.verdict import UNKNOWN, Verdict
from ..display import Displayed
from ..errors import InputError
from ..model.layer import as_layer, require_concrete
from .backprop import backprop_claim
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
#: seconds each proof of a numeric match may take in a search bounded by counts (``max_candidates``)
PROOF_SECONDS = 60.0
#: the level of the structural pass after which the reverse-mode candidate (search.backprop) is
#: proved: the deep ones (a normalisation's input, attention's queries) do not wait for levels
#: that cannot reach them; the second pass looks this deep for a simpler spelling after it
BACKPROP_LEVEL = 1
#: a proved reverse-mode form of at most this many operators plus one has the structural pass
#: go on to this level for a shorter spelling (``g.T @ x`` for ``(x.T @ g).T``); a longer one
#: stops there (level 3 of a convolution's weight builds thousands of shape rules for no gain)
SHORTER_LEVEL = 2


class SolveTimeout(RuntimeError):
    """A search bounded by candidate counts ran past its safety ``timeout`` (or a proof of a
    numeric match did): its answer would depend on the machine, so none is given."""


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

    def __init__(
        self,
        space: Space,
        deadline: float,
        max_candidates: int = MAX_CANDIDATES,
        structural: bool = False,
        strict: bool = False,
    ):
        self.space = space
        #: the deadline is a safety only: passing it raises SolveTimeout rather than cutting the search short
        self.strict = strict
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
        """Whether the time or the candidate budget is spent (strict: the candidate budget; time
        past the deadline raises :class:`SolveTimeout`)."""
        if self.built >= self.max_candidates:
            return True
        if time.monotonic() > self.deadline:
            if self.strict:
                raise SolveTimeout("the search ran past its safety timeout")
            return True
        return False

    def _duplicate(self, values) -> bool:
        """Whether values equal a kept candidate's and its spelling would not be kept either
        (then it counts as built, as :meth:`add` would count it)."""
        key = fingerprint(values)
        if key in self.seen and (key not in self.matched or len(self.seen[key]) > ALTERNATIVES):
            self.built += 1
            return True
        return False

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
        first = cand.values[0]
        probe = float(first.flat[0]) if first.size else 0.0
        for goal in self.goals:
            g0 = goal.values[0]
            # one element first: most candidates differ there (the full comparison is the cost)
            if g0.shape != first.shape or (
                first.size and abs(probe - float(g0.flat[0])) > ATOL + RTOL * abs(float(g0.flat[0]))
            ):
                continue
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
                self.add(self.space.apply(spec, (cand,), cost, self._duplicate))
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
                        self.add(self.space.apply(spec, (a, b), cost, self._duplicate))
                        self.add(self.space.fitted(spec, (a, b), cost, self._duplicate))


def index_form_text(layer, wrt: str) -> str:
    """The derived gradient of ``wrt`` as one element, as ``symderive derive`` ends.

    >>> index_form_text("linear", "b")
    'dL/db[p] = g[p]'
    """
    from ..calculus.present import present as derive
    from ..core.ir import plain

    step = derive(as_layer(layer), wrt).steps[-1]
    return f"{plain(step.lhs)} = {plain(step.rhs)}"


def _run_levels(
    search: Search, top: int, layer, wrt, deadline, max_results, found, unproved, tried, backprop=None
) -> None:
    """Enumerate level by level, proving the matches of each level, until one proves; the
    reverse-mode candidate ``backprop`` (a text) joins the matches after level BACKPROP_LEVEL."""
    level, before = 0, len(found)
    while True:
        matches = sorted(search.matches, key=lambda m: (operator_count(m[1]), len(m[1]), m[1]))
        if backprop is not None and level == BACKPROP_LEVEL and backprop not in tried:
            if _screened(search.space, backprop):
                matches.append((0, backprop))
            else:
                tried.add(backprop)
        _prove_matches(search, [text for _, text in matches], layer, wrt, deadline, max_results, found, unproved, tried)
        if backprop is not None and any(f.claim == backprop for f in found):
            # the reverse-mode form is proved: a short one, only the levels that may spell it with
            # fewer operators (``g.T @ x`` for ``(x.T @ g).T``); a deep one, none (they cannot)
            count = operator_count(backprop)
            top = min(top, count - 1) if count <= SHORTER_LEVEL + 1 else BACKPROP_LEVEL
        level += 1
        if any(f.claim != backprop for f in found[before:]) or level > top or search.out_of_budget():
            return
        search.level(level)


def _screened(space: Space, text: str) -> bool:
    """Whether a closed-form claim's values (by NumPy) equal the true gradient at the test points."""
    from ..core.parse import parse_tree

    try:
        node = parse_tree(text, space.scope, space.layer.sizes)
    except InputError:
        return False
    cand = space.tree_candidate(text, node)
    return cand is not None and agrees(cand.values, space.points)


def _prove_matches(search: Search, texts, layer, wrt, deadline, max_results, found, unproved, tried) -> None:
    """Prove each numeric match not tried before, until ``max_results`` are proved."""
    from ..decide.pose import prove

    for text in texts:
        if text in tried or len(found) >= max_results:
            continue
        tried.add(text)
        left = deadline - time.monotonic()
        if search.strict:
            # a fixed proof budget: whether a match is proved must not depend on the machine
            if left <= 0:
                raise SolveTimeout("the search ran past its safety timeout")
            verdict = prove(layer, wrt, text, timeout=PROOF_SECONDS)
            if verdict.verdict == UNKNOWN and ("timeout" in verdict.reason or "timed out" in verdict.reason):
                raise SolveTimeout(f"the proof of {text} timed out")
        elif left <= 0:
            return
        else:
            verdict = prove(layer, wrt, text, timeout=max(left, 0.5))
        if verdict.proved:
            found.append(Found(text, operator_count(text), verdict))
        else:
            unproved.append(text)


def solve(
    layer, wrt: str, *, max_results: int = 5, timeout: float = 30.0, max_candidates: int | None = None
) -> SolveResult:
    """The simplest proved closed forms of the gradient of ``layer``'s loss with respect to ``wrt``.

    Nothing unproved is offered: every claim returned has a ``proved`` Verdict. With
    ``max_candidates`` the search is bounded by counts alone (at most that many candidates
    per pass, each proof :data:`PROOF_SECONDS`): the same input gives the same answer on
    every machine, and ``timeout`` is only a safety, past which :class:`SolveTimeout` is
    raised (never a shorter search's answer).

    >>> [f.claim for f in solve("linear", "x").claims][:1]
    ['g @ w']
    """
    from ..decide.pose import checked_timeout

    start = time.monotonic()
    timeout = checked_timeout(timeout)
    for name, value in (("max_results", max_results), ("max_candidates", max_candidates)):
        if value is None and name == "max_candidates":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} is a positive integer, got {value!r}", where=name)
    strict = max_candidates is not None
    layer = require_concrete(as_layer(layer), "solve")  # candidates are tested at numeric points
    layer.require_differentiable(wrt)
    deadline = start + timeout
    space = Space(layer, wrt, test_points(layer, wrt))
    leaves = space.leaves()
    found: list[Found] = []
    unproved: list[str] = []
    tried: set[str] = set()
    built = distinct = 0
    passes = (
        Search(space, deadline, min(STRUCTURAL_CANDIDATES, max_candidates or MAX_CANDIDATES), True, strict),
        Search(space, deadline, min(MAX_CANDIDATES, max_candidates or MAX_CANDIDATES), strict=strict),
    )
    # the reverse-mode form, proved after the structural pass's first levels: the rest of the
    # enumeration then only looks for a spelling with fewer operators (the second pass's first levels)
    backprop = backprop_claim(layer, wrt)
    for search, top in zip(passes, (STRUCTURAL_LEVEL, MAX_LEVEL), strict=True):
        if any(f.claim != backprop for f in found):
            break
        if found:
            top = min(BACKPROP_LEVEL, operator_count(backprop) - 1)
        search.set_goals(leaves)
        for leaf in leaves:
            search.add(leaf)
        reverse = backprop if search.structural else None
        _run_levels(search, top, layer, wrt, deadline, max_results, found, unproved, tried, reverse)
        built += search.built
        distinct = max(distinct, len(search.seen))
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
