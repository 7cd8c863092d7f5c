"""What a wrong implementation computes: the candidate mistake that matches it at every size tried.

Candidate mistakes are built from the layer's correct closed forms (its known claims
that prove without an extra assumption, else the one :func:`symderive.search.solve`
proves) by the search's one-place edits (:func:`symderive.search.variants.closed_edits`:
a flip, a mode, convolve for correlate, a transpose...), by shifting the correct result by
one element along its last two axes (an off-by-one padding), and from the layer's claims
that hold only under an assumption (``softmax(s) - t`` needs ``sum(t) == 1``). Each is
evaluated on the check's own cases; one that equals the implementation's output at every
size it was called at is named (the first in that order).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import tree as T
from ..core.parse import parse_tree
from ..decide import concrete
from ..decide.verdict import PROVED
from ..search.variants import closed_edits

#: the comparison of a candidate's values with what the implementation returned
RTOL, ATOL = 1e-6, 1e-9
#: candidates the search may build finding a correct closed form when the layer knows none,
#: and the seconds past which it gives up (a safety: then no mistake is named)
SOLVE_CANDIDATES, SOLVE_TIMEOUT = 10000, 30.0


@dataclass(frozen=True)
class Mistake:
    """A wrong formula an implementation computes, and what is wrong with it.

    >>> Mistake("correlate(g, w, 'full')", "the kernel w must be flipped").text
    "your function computes correlate(g, w, 'full'): the kernel w must be flipped"
    """

    computes: str
    why: str

    @property
    def text(self) -> str:
        """The sentence ``check`` prints."""
        return f"your function computes {self.computes}: {self.why}"


#: the words for a swapped convolution, said as what the implementation gets wrong
_SWAP_WORDS = {
    "convolve, not correlate": "the kernel is not flipped (a correlation where the gradient is a convolution)",
    "correlate, not convolve": "the kernel is flipped once too often (a convolution where the gradient is a correlation)",
}


@dataclass(frozen=True)
class Candidate:
    """A candidate mistake: its formula, what is wrong with it, and how to get its values.

    ``base`` is the formula evaluated; ``shift`` moves its result by that many elements
    along its last axes (zeros come in), for the off-by-one paddings.
    """

    computes: str
    why: str
    base: str
    shift: tuple[int, ...] = ()


def correct_forms(layer, wrt: str) -> list[str]:
    """The closed forms of the gradient that hold under the layer's own assumptions.

    >>> correct_forms("conv2d", "x")
    ["convolve(g, w, 'full')"]
    """
    from ..emit.codegen import known_claims
    from ..model.layer import as_layer
    from ..search import SolveTimeout, solve

    layer = as_layer(layer)
    known = [c for c in known_claims(layer, wrt) if not _is_index_form(c)]
    if known:
        return known
    stated = {a.text for a in layer.assumptions}
    try:
        # bounded by counts: the mistakes named are the same on every machine
        result = solve(layer, wrt, max_results=1, timeout=SOLVE_TIMEOUT, max_candidates=SOLVE_CANDIDATES)
    except SolveTimeout:
        return []
    return [f.claim for f in result.claims if f.verdict.verdict == PROVED and set(f.verdict.assumptions) <= stated]


def _is_index_form(text: str) -> bool:
    return "==" in text


def candidate_mistakes(layer, wrt: str) -> list[Candidate]:
    """Candidate mistakes for ``wrt``'s gradient, the usual ones first.

    >>> [(c.computes, c.why) for c in candidate_mistakes("linear", "x")][0]
    ('w @ g', 'w must be transposed')
    """
    from ..model.layer import as_layer

    layer = as_layer(layer)
    out: list[Candidate] = []
    for right in correct_forms(layer, wrt):
        for wrong, _ in [*closed_edits(right, layer), *_same_mode(right)]:
            out.append(Candidate(wrong, _why(wrong, right, layer), wrong))
        # the sign: the search's edits take a leading minus away, here one is put in front
        out.append(Candidate(f"-({right})", "the sign is the other way", f"-({right})"))
        rank = len(layer.inputs[wrt])
        for shift in _shifts(rank):
            shown = ", ".join(map(str, shift))
            out.append(
                Candidate(
                    f"{right} shifted by ({shown}{',' if rank == 1 else ''})", "an off-by-one padding", right, shift
                )
            )
    for claim in layer.claims:
        if claim.wrt == wrt and claim.assume and not _is_index_form(claim.claim):
            out.append(Candidate(claim.claim, f"it holds only if {', '.join(claim.assume)}", claim.claim))
        if claim.wrt == wrt and claim.expect != PROVED and not claim.assume and not _is_index_form(claim.claim):
            out.append(Candidate(claim.claim, "a known mistake of this layer", claim.claim))
    seen: set[str] = set()
    unique = [c for c in out if not (c.computes in seen or seen.add(c.computes))]
    # the shortest formula first (of two that agree, the plainer is named), the usual mistakes first among equals
    return sorted(unique, key=lambda c: (c.shift != (), len(c.computes.replace(" ", "")), _usual_first(c)))


#: words of an explanation, the usual mistakes first: a flip, a mode, a transpose, then the rest
_USUAL = ("flip", "mode", "convolve", "correlate", "conv", "transposed", "holds only", "off-by-one")


def _usual_first(candidate: Candidate) -> int:
    return next((k for k, w in enumerate(_USUAL) if w in candidate.why), len(_USUAL))


def _why(wrong: str, right: str, layer) -> str:
    """What is wrong with ``wrong``: the edit of it that gives back ``right``, in words, the usual first."""
    back = [why for text, why in [*closed_edits(wrong, layer), *_full_mode(wrong)] if _same_text(text, right)]
    if back:
        # the edit back says how the gradient reads ("w is not transposed"): said as a must
        return _SWAP_WORDS.get(back[0], re.sub(r" is not (transposed|flipped)$", r" must not be \1", back[0]))
    return f"the gradient is {right}"


def _same_mode(right: str) -> list[tuple[str, str]]:
    """The 'same' mode for a 'full' one (the search's edits leave 'same' out: it is never a gradient)."""
    return [(right.replace("'full'", "'same'"), "mode 'same'")] if "'full'" in right else []


def _full_mode(wrong: str) -> list[tuple[str, str]]:
    return [(wrong.replace("'same'", "'full'"), "mode 'full', not 'same'")] if "'same'" in wrong else []


def _same_text(a: str, b: str) -> bool:
    """Whether two claims are the same text up to spacing and ``transpose(w)`` for ``w.T``."""
    import ast

    def norm(text: str) -> str:
        return re.sub(r"\btranspose\((\w+)\)", r"\1.T", ast.unparse(ast.parse(text, mode="eval")))

    return norm(a) == norm(b)


def _shifts(rank: int) -> list[tuple[int, ...]]:
    """One-element shifts of the last two axes (the others left alone), none the zero shift."""
    axes = min(rank, 2)
    if axes == 0:
        return []
    moves = [s for s in itertools.product((0, 1, -1), repeat=axes) if any(s)]
    return [(0,) * (rank - axes) + s for s in moves]


def candidate_values(layer, candidate: Candidate, sizes: dict, inputs: dict) -> np.ndarray | None:
    """The candidate's value at a case (size name -> int, argument name -> array), or None when it
    cannot be evaluated there (a shape its operands do not allow, a name the case lacks)."""
    try:
        tree = parse_tree(candidate.base, layer.scope(), list(layer.sizes))
        tensor = T.build(tree, layer.scope())
        value = np.asarray(concrete.evaluate(tensor, sizes, inputs), dtype=float)
    except Exception:  # noqa: BLE001  (a candidate that does not evaluate at a case is not what was computed)
        return None
    return _shifted(value, candidate.shift) if candidate.shift else value


def _shifted(value: np.ndarray, shift: tuple[int, ...]) -> np.ndarray:
    """``value`` moved by ``shift`` elements per axis (out[i] = value[i - shift]), zeros coming in.

    >>> _shifted(np.array([1.0, 2.0, 3.0]), (1,)).tolist()
    [0.0, 1.0, 2.0]
    """
    out = np.zeros_like(value)
    src, dst = [], []
    for s, n in zip(shift, value.shape, strict=True):
        src.append(slice(max(0, -s), n - max(0, s)))
        dst.append(slice(max(0, s), n - max(0, -s)))
    out[tuple(dst)] = value[tuple(src)]
    return out


def matching_mistake(layer, wrt: str, evidence: Sequence[tuple[dict, dict, np.ndarray]]) -> Mistake | None:
    """The first candidate mistake equal to what the implementation returned at every case of
    ``evidence`` ((sizes, inputs, returned array) triples), or None.

    Asked about an implementation that differs from the gradient at some case, so a match
    is a wrong formula, never the right one.

    >>> import numpy as np
    >>> w, g = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0])
    >>> matching_mistake("linear", "x", [({"m": 2, "n": 2}, {"w": w, "g": g}, w @ g)]).text
    'your function computes w @ g: w must be transposed'
    """
    from ..model.layer import as_layer

    layer = as_layer(layer)
    answers = [(s, i, np.asarray(r)) for s, i, r in evidence if r is not None]
    if not answers or any(np.iscomplexobj(r) and np.any(np.imag(r) != 0) for _, _, r in answers):
        # a complex answer matches no real formula: casting it to float would drop its
        # imaginary part and name a formula the function does not compute
        return None
    evidence = [(s, i, np.asarray(np.real(r), dtype=float)) for s, i, r in answers]
    for candidate in candidate_mistakes(layer, wrt):
        if _matches(layer, candidate, evidence):
            return Mistake(candidate.computes, candidate.why)
    return None


def _matches(layer, candidate: Candidate, evidence) -> bool:
    for sizes, inputs, returned in evidence:
        value = candidate_values(layer, candidate, sizes, inputs)
        if value is None or value.shape != returned.shape:
            return False
        if not np.allclose(value, returned, rtol=RTOL, atol=ATOL):
            return False
    return True
