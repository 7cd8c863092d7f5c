"""Check a user's backward implementation against the derived gradient.

``check_implementation(layer, wrt, impl)`` runs ``impl`` (``"FILE.py:FUNCTION"`` or a
callable) over a sweep of sizes chosen from the layer itself (:func:`sweep_plan`: every
order of each tensor's dimensions, each size 1 next to larger ones, each assumption
tight, strides that do not divide), smallest first, with random float64 values
satisfying the layer's assumptions, and compares with the derived gradient evaluated
concretely. At the first failure the sweep stops; the smaller sizes not yet tried are
run in LANGUAGE.md's minimal order (smallest sum of sizes, ties in declaration order; at
most :data:`MAX_SHRINK_CASES`), and the smallest failing one is reported with its inputs,
the expected and returned arrays and the differing elements. Expected gradients are
computed once per size in a :class:`CaseCache`, shared by every implementation checked.

Each implementation runs in one child process (``fork`` where the platform has it) in its
own process group, ended as a whole (SIGKILL to the group) when its checking is done or a
call times out, so nothing it starts outlives the check. Answers come back on a private
pipe, each carrying a nonce and the call's number; a forked copy of the child cannot
answer. Loading the implementation (its imports) is bounded by ``load_timeout`` and not
counted as a call; each call is bounded by ``timeout``, all of them by
``CALL_BUDGET * timeout``; memory by ``RLIMIT_AS`` (``memory_mb`` more than the checker
already maps). Raising, a wrong shape or dtype, a huge array (only its shape comes back),
never returning or crashing the interpreter are reported, never fatal to the checker.

Calling convention (LANGUAGE.md): keyword arguments named after the layer's inputs and
``g``, float64 arrays (0-d for scalars); a function receives the ones its signature
names (``**kwargs`` receives all) and returns the gradient, an array of the input's shape.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import os
import secrets
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

#: the statuses of a report (``grade`` calls ``ok`` ``correct``): a crash of the interpreter while
#: running is ``raised``, a MemoryError ``memory``, a module that does not import ``not loaded``,
#: None, text, object and ragged results ``wrong shape`` (issue 19)
OK, WRONG, RAISED, TIMEOUT, MEMORY, NOT_LOADED, MISSING_FUNCTION, WRONG_SHAPE = (
    "ok",
    "wrong",
    "raised",
    "timeout",
    "memory",
    "not loaded",
    "missing function",
    "wrong shape",
)
#: the former names: a mismatch is ``wrong``, a crash ``raised``; no dtype is refused any more
MISMATCH, CRASHED, WRONG_DTYPE = WRONG, RAISED, WRONG_SHAPE
#: the largest number of scalars in one case, and the largest size the sweep gives a dimension
MAX_CASE_ELEMENTS = 400
SWEEP_MAX_SIZE = 8
#: arrays of more elements are summarised in ``details()``
MAX_SHOWN_ELEMENTS = 36
#: smaller sizes retried after a failure at most (in minimal order)
MAX_SHRINK_CASES = 60
#: further sizes of the sweep an implementation is called at before a mistake it matches is named
MISTAKE_EXTRA_SIZES = 4
#: the calls of one implementation take at most this many times the per-call timeout in all
CALL_BUDGET = 5
#: seconds to load an implementation (the child's imports: NumPy, SciPy, torch), not counted as a call
LOAD_TIMEOUT = 60.0
#: child processes started for one implementation at most (a timeout or a crash ends one)
MAX_STARTS = 4
#: implementations that stay loaded while the others are checked, at most
KEEP_LOADED = 4
#: a returned array of more elements than this (and 4 times the expected) is not sent back, only its shape
MAX_RETURNED_ELEMENTS = 100_000
#: the largest answer read from a child, and the most a child prints before the rest is dropped
MAX_MESSAGE_BYTES = 2**23
MAX_PRINTED_BYTES = 2**16


@dataclass(frozen=True)
class ImplementationReport:
    """What checking one implementation found.

    ``status`` is ``"ok"``, ``"wrong"``, ``"raised"``, ``"timeout"``, ``"memory"``,
    ``"not loaded"``, ``"missing function"`` or ``"wrong shape"``. For a failure, ``sizes``
    are the first failing sizes, ``inputs`` the arguments there (nested lists), ``expected``
    and ``returned`` the two arrays and ``differing`` the indices of the elements that
    differ. ``plan_passed`` says, for each size of the sweep in order, whether the
    implementation agreed there (filled when every size is tried: ``grade``'s score);
    ``dtype`` is the dtype it returned (a float32 result is compared at float32 tolerances).

    >>> ImplementationReport(ok=True, impl="f", status="ok").summary()
    'ok'
    """

    ok: bool
    impl: str
    status: str
    sizes: dict | None = None
    inputs: dict | None = None
    expected: object = None
    returned: object = None
    differing: list = field(default_factory=list)
    message: str = ""
    sizes_tried: list = field(default_factory=list)
    plan_passed: tuple = ()
    dtype: str | None = None
    #: the wrong formula it computes and why, when a candidate mistake matches it at every size tried
    mistake: str | None = None

    def summary(self) -> str:
        """One line: the status, where, and what (and the mistake it matches, if one does)."""
        where = f" at sizes {_fmt_sizes(self.sizes)}" if self.sizes else ""
        mistake = f"; {self.mistake}" if self.mistake else ""
        return f"{self.status}{where}" + (f": {self.message}" if self.message else "") + mistake

    def details(self, max_elements: int | None = MAX_SHOWN_ELEMENTS) -> str:
        """The summary, then the counterexample (inputs, expected, returned, differing elements).

        An array of more than ``max_elements`` elements is summarised (its shape, the
        corners and ``...``); ``None`` shows every element.

        >>> rep = ImplementationReport(ok=False, impl="f", status="wrong", sizes={"n": 1},
        ...                            expected=[1.0], returned=[2.0], differing=[(0,)])
        >>> print(rep.details())
        wrong at sizes n=1
        expected = [1]
        returned = [2]
        differing elements: [0]
        """
        lines = [self.summary()]
        if self.inputs:
            lines.append("inputs:")
            lines.extend(_named(f"  {n} = ", v, max_elements) for n, v in self.inputs.items())
        if self.expected is not None:
            lines.append(_named("expected = ", self.expected, max_elements))
        if self.returned is not None:
            lines.append(_named("returned = ", self.returned, max_elements))
        if self.differing:
            shown = ", ".join(f"[{', '.join(map(str, i))}]" for i in self.differing[:10])
            more = f" and {len(self.differing) - 10} more" if len(self.differing) > 10 else ""
            lines.append(f"differing elements: {shown}{more}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """One JSON object (for ``check --json``): every field, arrays as nested lists."""
        return {
            "impl": self.impl,
            "ok": self.ok,
            "status": self.status,
            "sizes": self.sizes,
            "inputs": self.inputs,
            "expected": self.expected,
            "returned": self.returned,
            "differing": [list(i) for i in self.differing],
            "message": self.message,
            "sizes_tried": self.sizes_tried,
            "mistake": self.mistake,
        }


def _named(prefix: str, value, max_elements: int | None) -> str:
    """``prefix`` then the array, continuation lines indented under its first bracket."""
    text = _format_value(value, max_elements)
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


def _format_value(value, max_elements: int | None) -> str:
    """An array as aligned rows; one of more than ``max_elements`` elements summarised by NumPy."""
    from ..render.text import format_array

    arr = np.asarray(value, dtype=object)
    if max_elements is None or arr.size <= max_elements or arr.ndim == 0:
        return format_array(_short(value))
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):  # complex or other values kept as text
        pass
    with np.printoptions(precision=6, threshold=max_elements, edgeitems=2, linewidth=100):
        text = np.array2string(arr, separator=", ")
    return f"{text}  (shape {_shape_text(arr.shape)})"


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _short(value):
    """Nested floats as 6-significant-digit strings, for reading (JSON keeps every digit)."""
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _fmt_sizes(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "(no sizes)"


def format_reports(reports: Sequence[ImplementationReport]) -> str:
    """One line per implementation: ``NAME: STATUS ...``.

    >>> print(format_reports([ImplementationReport(ok=True, impl="a.py:f", status="ok")]))
    a.py:f: ok
    """
    return "\n".join(f"{r.impl}: {r.summary()}" for r in reports)


# -- the cases ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One size assignment of the sweep: the arguments and the expected gradient."""

    sizes: dict
    inputs: dict
    expected: np.ndarray


def _as_layer(layer):
    from ..model.layer import Layer, load_layer, require_concrete

    # an abstract function (functions = ["f"]) has no value to run an implementation against
    return require_concrete(layer if isinstance(layer, Layer) else load_layer(layer), "checking an implementation")


def _check_wrt(layer, wrt: str) -> None:
    if wrt not in layer.inputs:
        raise InputError(f"{wrt!r} is not an input of layer {layer.name} (inputs: {', '.join(layer.inputs)})", "--wrt")
    if wrt in layer.constants:
        raise InputError(f"{wrt!r} is a constant of layer {layer.name}: it is not differentiated", "--wrt")


def _element_count(layer, env) -> int | None:
    from ..decide.concrete import EvaluationError, is_valid_at
    from ..decide.pose import input_shapes

    try:
        if not is_valid_at(layer.forward, env):
            return None
        shapes = input_shapes(layer, env)
    except (EvaluationError, TypeError, ValueError):
        return None
    if any(d < 1 for s in shapes.values() for d in s):
        return None
    return sum(math.prod(s) for s in shapes.values())


@dataclass(frozen=True)
class SweepSize:
    """One size assignment of the sweep and why it is there (``check --verbose`` prints them).

    >>> SweepSize({"n": 1, "m": 2}, ("the smallest allowed sizes",)).text()
    'n=1, m=2: the smallest allowed sizes'
    """

    sizes: dict
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        """``sizes: reason; reason``."""
        return f"{_fmt_sizes(self.sizes)}: {'; '.join(self.reasons)}"


def sweep_plan(layer, max_elements: int = MAX_CASE_ELEMENTS) -> list[SweepSize]:
    """The sizes ``check`` tries, smallest first (LANGUAGE.md's order), each with the reasons it was chosen.

    Chosen from the layer itself: for every tensor (inputs, output and the closed form's
    intermediate results) whose dimensions differ, all of them equal and each one the
    largest in turn (square, tall and wide for a matrix); each size 1 next to larger ones;
    each size assumption tight (a kernel as large as the input); where a shape divides
    (a stride or a pooling window) a size it does not divide and one it does; every size
    different; each size odd and even. Each goal gets the smallest sizes that the layer's
    assumptions allow for it (decided by z3), at most ``max_elements`` scalars in all;
    goals no sizes meet are left out.

    >>> [s.sizes for s in sweep_plan("linear")][:3]
    [{'n': 1, 'm': 1}, {'n': 1, 'm': 2}, {'n': 2, 'm': 1}]
    """
    layer = _as_layer(layer)
    names = [str(s) for s in layer.sizes]
    if not names:
        return [SweepSize({}, ("the layer has no sizes",))]
    finder = _SizeFinder(layer, max_elements)
    reasons: dict[tuple, list[str]] = {}
    for reason, goal, soft in _size_goals(layer):
        found = finder.smallest(goal, soft)
        if found is not None and reason not in reasons.setdefault(found, []):
            reasons[found].append(reason)
    for reason, goal, soft in _parity_goals(layer, list(reasons)):
        found = finder.smallest(goal, soft)
        if found is not None:
            reasons.setdefault(found, []).append(reason)
    if not reasons:
        raise InputError(f"no sizes up to {SWEEP_MAX_SIZE} satisfy the assumptions of layer {layer.name}")
    order = sorted(reasons, key=lambda k: (sum(k), k))
    return [SweepSize(dict(zip(names, k, strict=True)), tuple(reasons[k])) for k in order]


def sweep_sizes(layer, max_elements: int = MAX_CASE_ELEMENTS) -> list[dict]:
    """The sizes of :func:`sweep_plan`, smallest first; keys are size names.

    >>> from ..model.layer import load_layer
    >>> sweep_sizes(load_layer("linear"))[0]
    {'n': 1, 'm': 1}
    """
    return [s.sizes for s in sweep_plan(layer, max_elements)]


class _SizeFinder:
    """The smallest sizes (by their sum) meeting some conditions under the layer's assumptions, by z3.

    One incremental solver holds the layer's assumptions and the sweep's size range; each
    question pushes its conditions and pops them again.
    """

    def __init__(self, layer, max_elements: int):
        import z3

        from ..core.domains import NonLinear, Z3Context, new_solver

        self.layer, self.max_elements, self._z3, self._nonlinear = layer, max_elements, z3, NonLinear
        self.ctx = Z3Context()
        self.vars = [self.ctx.var(s) for s in layer.sizes]
        self.solver = new_solver()
        for v in self.vars:
            self.solver.add(v >= 1, v <= SWEEP_MAX_SIZE)
        for cond in layer.size_assumptions():
            try:
                self.solver.add(self.ctx.cond(cond))
            except NonLinear:  # not decidable here: size_candidates' filter below still applies it
                pass
        self.total = z3.Sum(self.vars)

    def smallest(self, goal: list, soft: list) -> tuple | None:
        """The sizes (in declaration order) meeting ``goal`` and, where possible, ``soft`` too; None if none fit."""
        for conds in ([*goal, *soft], goal) if soft else (goal,):
            found = self._smallest_sum(conds)
            if found is not None:
                env = dict(zip(self.layer.sizes, found, strict=True))
                count = _element_count(self.layer, env)
                if count is not None and count <= self.max_elements and _allowed(self.layer, env):
                    return found
        return None

    def _smallest_sum(self, conds: list) -> tuple | None:
        s, z3 = self.solver, self._z3
        s.push()
        try:
            try:
                for c in conds:
                    s.add(self.ctx.cond(c))
            except self._nonlinear:
                return None
            if s.check() != z3.sat:
                return None
            best = self._values(s.model())
            low, high = len(best), sum(best)
            while low < high:  # bisect the smallest sum
                mid = (low + high) // 2
                s.push()
                s.add(self.total <= mid)
                if s.check() == z3.sat:
                    best = self._values(s.model())
                    high = sum(best)
                else:
                    low = mid + 1
                s.pop()
            return self._first_in_order(best)
        finally:
            s.pop()

    def _first_in_order(self, best: tuple) -> tuple:
        """The first sizes in declaration order among those of ``best``'s sum (unique, whatever model z3 gave)."""
        s, z3 = self.solver, self._z3
        s.push()
        try:
            s.add(self.total == sum(best))
            for k, v in enumerate(self.vars):
                while best[k] > 1:
                    s.push()
                    s.add(v < best[k])
                    smaller = self._values(s.model()) if s.check() == z3.sat else None
                    s.pop()
                    if smaller is None:
                        break
                    best = smaller
                s.add(v == best[k])
            return best
        finally:
            s.pop()

    def _values(self, model) -> tuple:
        return tuple(model.eval(v, model_completion=True).as_long() for v in self.vars)


def _size_goals(layer):
    """``(reason, conditions, conditions wanted where possible)`` for the sweep, before the parities."""
    import sympy as sp

    from ..model.layer import size_text

    syms = list(layer.sizes)
    at_least_two = [sp.Ge(s, 2) for s in syms]
    yield "the smallest allowed sizes", [], []
    yield "every size at least 2", at_least_two, []
    for cond in layer.size_assumptions()[len(syms) :]:
        if isinstance(cond, sp.Rel) and cond.rel_op in ("<=", ">=", "<", ">"):
            tight = sp.Eq(cond.lhs, cond.rhs + {"<": -1, ">": 1}.get(cond.rel_op, 0), evaluate=False)
            yield f"assumption {size_text(cond)} tight", [tight], at_least_two
    for label, dims in _indexed_shapes(layer):
        bigger = [sp.Ge(d, 2) for d in dims]
        yield f"{label}: all dimensions equal", [sp.Eq(dims[0], d, evaluate=False) for d in dims[1:]], bigger
        for k, d in enumerate(dims):
            others = [sp.Gt(d, e, evaluate=False) for j, e in enumerate(dims) if j != k]
            yield f"{label}: {size_text(d)} largest", others, bigger
    for s in syms:
        yield f"{s} = 1, the other sizes at least 2", [sp.Eq(s, 1)], [c for c in at_least_two if c.lhs != s]
    for num, den in _divisions(layer):
        where = f"{den} {{}} {size_text(num)}"
        yield where.format("does not divide"), [sp.Ne(sp.Mod(num, den), 0, evaluate=False)], at_least_two
        yield where.format("divides"), [sp.Eq(sp.Mod(num, den), 0, evaluate=False)], at_least_two
    if len(syms) > 1:
        distinct = [sp.Ne(a, b) for a, b in itertools.combinations(syms, 2)]
        yield "every size different", distinct, []


def _parity_goals(layer, chosen: list[tuple]):
    """Each size odd (above 1) and even, where no size already chosen has that parity."""
    import sympy as sp

    for k, s in enumerate(layer.sizes):
        for parity, word in ((1, "odd"), (0, "even")):
            if not any(c[k] > 1 and c[k] % 2 == parity for c in chosen):
                goal = [sp.Ge(s, 2), sp.Eq(sp.Mod(s, 2), parity, evaluate=False)]
                yield f"{s} {word}", goal, [sp.Ge(t, 2) for t in layer.sizes if t != s]


def _indexed_shapes(layer) -> list[tuple[str, list]]:
    """``(label, dimensions)`` of every tensor with two or more distinct non-constant dimensions.

    The inputs, the output (and so ``g``) and the intermediate results of the output's
    closed form (``Q @ K.T`` in attention), each shape once.
    """
    import sympy as sp

    shapes = [(f"{n} {_dims_text(s)}", s) for n, s in layer.inputs.items()]
    shapes.append((f"the output {layer.output} {_dims_text(layer.forward.shape)}", layer.forward.shape))
    shapes += _intermediate_shapes(layer)
    out, seen = [], set()
    for label, dims in shapes:
        dims = list(dict.fromkeys(d for d in dims if not d.is_number))
        # a transpose orders the same dimensions; a Piecewise shape is an operator's internal case split
        if len(dims) >= 2 and frozenset(dims) not in seen and not any(d.has(sp.Piecewise) for d in dims):
            seen.add(frozenset(dims))
            out.append((label, dims))
    return out


def _intermediate_shapes(layer) -> list[tuple[str, tuple]]:
    from ..core.tree import Call, build, to_numpy

    found = []

    def walk(node):
        if not isinstance(node, Call):
            return
        for _, value in node.args:
            for child in value if isinstance(value, tuple) else (value,):
                walk(child)
        try:
            shape = build(node, layer.scope()).shape
            text = to_numpy(node)
        except Exception:  # noqa: BLE001  (a node that does not build alone: its shape is not needed)
            return
        found.append((f"{text} {_dims_text(shape)}", shape))

    walk(layer.forward_tree)
    return found[:-1]  # the last is the output itself


def _dims_text(dims) -> str:
    from ..model.layer import size_text

    return "[" + ", ".join(size_text(d) for d in dims) + "]"


def _divisions(layer) -> list[tuple]:
    """``(numerator, divisor)`` of each floor division or remainder by a constant in a shape (a stride, a window)."""
    import sympy as sp

    out = []
    shapes = [*layer.inputs.values(), layer.forward.shape]
    for dim in (d for shape in shapes for d in shape):
        for atom in sp.sympify(dim).atoms(sp.floor, sp.Mod):
            if isinstance(atom, sp.Mod):
                num, den = atom.args
            else:
                num, den = sp.fraction(sp.together(atom.args[0]))
            if den.is_Integer and int(den) > 1 and not num.is_number and (num, den) not in out:
                out.append((sp.expand(num), den))
    return out


def _allowed(layer, env: dict) -> bool:
    """Whether sizes satisfy every size assumption of the layer (evaluated, so also those z3 was not given)."""
    from ..decide.concrete import EvaluationError, Evaluator

    try:
        return all(bool(Evaluator(env, {}).truth(c)) for c in layer.size_assumptions())
    except (EvaluationError, TypeError, ZeroDivisionError):
        return False


def sizes_allowed(layer, sizes: dict, max_elements: int | None = None) -> bool:
    """Whether ``sizes`` (size name -> int) meet the layer's assumptions, every dimension >= 1 (at most ``max_elements`` scalars).

    >>> sizes_allowed("conv2d", {"H": 2, "W": 2, "kh": 3, "kw": 1})
    False
    """
    layer = _as_layer(layer)
    try:
        env = {s: int(sizes[str(s)]) for s in layer.sizes}
    except (KeyError, TypeError, ValueError):
        return False
    count = _element_count(layer, env)
    return count is not None and (max_elements is None or count <= max_elements) and _allowed(layer, env)


def expected_gradient(layer, wrt: str, sizes: dict, values: dict, derivation=None) -> np.ndarray:
    """The gradient of the loss w.r.t. ``wrt`` in float64: the derived index form, evaluated.

    Falls back to exact differentiation (:func:`symderive.counterexample.true_gradient`)
    where the deriver has no rule. ``derivation`` (``derive(layer, wrt)``) saves deriving again.

    >>> from ..model.layer import load_layer
    >>> lin = load_layer("linear")
    >>> v = {"x": np.ones(2), "w": np.array([[1.0, 2.0]]), "b": np.zeros(1), "g": np.array([3.0])}
    >>> expected_gradient(lin, "x", {"n": 2, "m": 1}, v)
    array([3., 6.])
    """
    from ..calculus.derive import NotDifferentiable
    from ..calculus.present import present as derive
    from ..core.ir import Tensor
    from ..decide.concrete import EvaluationError, evaluate
    from ..decide.pose import true_gradient

    try:
        d = derivation if derivation is not None else derive(layer, wrt)
        tensor = Tensor(
            shape=layer.inputs[wrt], element=lambda idx: d.gradient.xreplace(dict(zip(d.index, idx, strict=True)))
        )
        return evaluate(tensor, sizes, values)
    except (NotDifferentiable, EvaluationError, InputError, TypeError):
        exact = true_gradient(layer, wrt, sizes, {n: np.asarray(v).tolist() for n, v in values.items()})
        return np.vectorize(float, otypes=[np.float64])(exact) if exact.size else exact.astype(np.float64)


def _derivation(layer, wrt: str):
    """``derive(layer, wrt)``, or None where the deriver has no rule (the exact fallback then decides)."""
    from ..calculus.derive import NotDifferentiable
    from ..calculus.present import present as derive

    try:
        return derive(layer, wrt)
    except (NotDifferentiable, InputError, TypeError):
        return None


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"the seed must be an integer >= 0, got {seed!r}", where="--seed")


class CaseCache:
    """The cases of one layer and input, built when first asked for and kept: pass it to every check.

    ``plan`` is the sweep (:func:`sweep_plan`); ``case(sizes)`` gives the random arguments
    (from ``seed`` and the sizes alone) and the expected gradient there, computed once. One
    cache serves every implementation checked against the same layer, input and seed
    (``check_many(..., cases=cache)``), so the expected gradients are not computed again.

    >>> cache = CaseCache("linear", "b")
    >>> cache.case({"n": 2, "m": 1}).expected.shape
    (1,)
    """

    def __init__(self, layer, wrt: str, seed: int = 0):
        _check_seed(seed)
        self.layer = _as_layer(layer)
        _check_wrt(self.layer, wrt)
        self.wrt, self.seed = wrt, int(seed)
        self._plan: list[SweepSize] | None = None
        self._cases: dict[tuple, Case] = {}
        self._derivation = None
        self._derived = False

    @property
    def plan(self) -> list[SweepSize]:
        """The sweep's sizes, smallest first, each with why it was chosen."""
        if self._plan is None:
            self._plan = sweep_plan(self.layer)
        return self._plan

    def case(self, sizes: dict) -> Case:
        """The case at ``sizes`` (size name -> int): arguments and expected gradient."""
        from ..emit.codegen import CodegenRefusal, random_values

        key = tuple(int(sizes[str(s)]) for s in self.layer.sizes)
        if key in self._cases:
            return self._cases[key]
        if not self._derived:
            self._derivation, self._derived = _derivation(self.layer, self.wrt), True
        env = dict(zip(self.layer.sizes, key, strict=True))
        rng = np.random.default_rng([self.seed, *key])
        try:
            values = random_values(self.layer, env, rng)
        except CodegenRefusal as exc:
            raise InputError(str(exc), where=self.layer.source or self.layer.name) from None
        values = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
        named = {str(s): v for s, v in env.items()}
        case = Case(named, values, expected_gradient(self.layer, self.wrt, named, values, self._derivation))
        self._cases[key] = case
        return case


def build_cases(layer, wrt: str, seed: int = 0, sizes_list: Sequence[dict] | None = None) -> list[Case]:
    """Cases for ``sizes_list`` (default: the sweep): random float64 arguments (assumptions applied), expected gradient.

    Each case's values depend only on ``seed`` and its sizes, so a size retried after a
    failure gets the same values whichever sizes come before it.

    >>> [c.sizes for c in build_cases("linear", "b", sizes_list=[{"n": 2, "m": 3}])]
    [{'n': 2, 'm': 3}]
    """
    cache = CaseCache(layer, wrt, seed)
    return [cache.case(s) for s in ([p.sizes for p in cache.plan] if sizes_list is None else sizes_list)]


def smaller_sizes(layer, failing: dict, skip: Sequence[dict] = (), limit: int = 0) -> list[dict]:
    """The size assignments before ``failing`` in LANGUAGE.md's minimal order, smallest first.

    Smallest sum of sizes first, ties by the sizes in declaration order; assignments in
    ``skip`` and those over :data:`MAX_CASE_ELEMENTS` scalars are left out; at most
    ``limit`` of them (default :data:`MAX_SHRINK_CASES`).

    >>> smaller_sizes("linear", {"n": 2, "m": 2}, skip=[{"n": 1, "m": 1}])
    [{'n': 1, 'm': 2}, {'n': 2, 'm': 1}, {'n': 1, 'm': 3}]
    """
    from ..decide.pose import size_candidates

    layer = _as_layer(layer)
    target = tuple(int(failing[str(s)]) for s in layer.sizes)
    out: list[dict] = []
    for env in itertools.islice(size_candidates(layer, max_size=max(sum(target), 1)), 20000):
        key = tuple(int(v) for v in env.values())
        if (sum(key), key) >= (sum(target), target) or len(out) >= (limit or MAX_SHRINK_CASES):
            break
        sizes = {str(k): int(v) for k, v in env.items()}
        n = _element_count(layer, env)
        if sizes not in skip and n is not None and n <= MAX_CASE_ELEMENTS:
            out.append(sizes)
    return out


# -- running an implementation in a child process ----------------------------------------------
def _impl_name(impl) -> str:
    if isinstance(impl, str):
        return impl
    return getattr(impl, "__qualname__", None) or getattr(impl, "__name__", None) or repr(impl)


def _split_spec(spec: str) -> tuple[Path, str]:
    if ":" not in spec:
        raise InputError(f"FILE.py:FUNCTION expected, got {spec!r}", where="--impl")
    path, name = spec.rsplit(":", 1)
    _require_python_file(Path(path), f"--impl {spec}")
    if not name.isidentifier():
        raise InputError(f"{name!r} is not a function name", where=f"--impl {spec}")
    return Path(path), name


#: a larger implementation file is refused before it is read
MAX_SOURCE_BYTES = 2**24


def _require_python_file(path: Path, where: str) -> None:
    """InputError unless ``path`` is a readable ``.py`` file of Python text (a syntax error is the implementation's own failure).

    >>> _require_python_file(Path("no/such.py"), "--impl")
    Traceback (most recent call last):
    symderive.errors.InputError: --impl: no file no/such.py
    """
    import tokenize

    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not a Python file", where=where)
        if not path.is_file():
            raise InputError(f"no file {path}", where=where)
        if path.suffix != ".py":
            raise InputError(f"{path} is not a Python file (FILE.py expected)", where=where)
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise InputError(f"{path} is larger than {MAX_SOURCE_BYTES // 2**20} MB: not a Python file", where=where)
        with open(path, "rb") as f:
            data = f.read()
            f.seek(0)
            encoding, _ = tokenize.detect_encoding(f.readline)
        if b"\0" in data:
            raise UnicodeError("a NUL byte")
        data.decode(encoding)
    except (UnicodeError, SyntaxError, LookupError):
        raise InputError(f"{path} is not Python source (not text in its encoding)", where=where) from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", where=where) from None


def _load_function(impl) -> Callable:
    """The function named by ``FILE.py:FUNCTION`` (imported in the child), or ``impl`` itself."""
    if callable(impl):
        return impl
    import importlib.util

    path, name = _split_spec(impl)
    sys.path.insert(0, str(path.resolve().parent))
    spec = importlib.util.spec_from_file_location(f"_symderive_impl_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise MissingFunction(f"{path} has no function {name!r}")
    return getattr(module, name)


class MissingFunction(LookupError):
    """``FILE.py:FUNCTION`` names no function of the file (the user's mistake: an input error)."""


def _arguments(fn: Callable, names: Sequence[str]) -> list[str]:
    """The argument names ``fn`` receives: those its signature names, or all with ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return list(names)
    for p in params:
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            # the calling convention passes keyword arguments only (LANGUAGE.md)
            raise TypeError(
                f"its argument {p.name!r} is positional-only (before /), but it is called with keyword "
                f"arguments named after {', '.join(names)}{_definition_site(fn)}"
            )
        unknown = p.name not in names and p.default is p.empty
        if unknown and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(
                f"it takes an argument {p.name!r}, which is none of {', '.join(names)}{_definition_site(fn)}"
            )
    return [p.name for p in params if p.name in names and p.kind is not p.POSITIONAL_ONLY]


def _limit_memory(memory_mb: float) -> None:
    """Cap the address space at ``memory_mb`` MiB more than is mapped now (a forked child shares the checker's)."""
    try:
        import resource
    except ImportError:  # not on this platform: time bound only
        return
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        mapped = 0
    limit = mapped + int(memory_mb * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _definition_site(fn) -> str:
    """`` (at FILE, line N)`` where ``fn`` is defined, or "" when that is not known."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return ""
    return f" (at {Path(code.co_filename).name}, line {code.co_firstlineno})"


def _user_files(impl, fn) -> set[str]:
    """The files that are the user's: the one ``FILE.py:FUNCTION`` names, and where ``fn`` is defined."""
    files = set()
    if isinstance(impl, str) and ":" in impl:
        files.add(_resolved(impl.rsplit(":", 1)[0]))
    code = getattr(inspect.unwrap(fn), "__code__", None) if fn is not None else None
    if code is not None:
        files.add(_resolved(code.co_filename))
    return files


def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return filename


def _is_library_file(filename: str) -> bool:
    """Whether a frame is symderive's, or an installed package's or the standard library's (not the user's)."""
    import sysconfig

    here = str(Path(__file__).resolve().parent.parent)
    resolved = _resolved(filename)
    if resolved.startswith(here) or filename.startswith("<"):
        return True
    roots = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(root and resolved.startswith(_resolved(root)) for root in roots)


def _describe_exception(exc: BaseException, impl=None, fn=None) -> str:
    """``Type: message (at FILE, line N)``, where the line is the last one in the user's code.

    The user's file (the one ``impl`` names, or where ``fn`` is defined) wins; then any
    other file that is neither symderive's nor an installed library's; otherwise no place
    is named, since a line inside symderive or NumPy says nothing about the user's bug.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    mine = _user_files(impl, fn)
    frame = next((f for f in reversed(frames) if _resolved(f.filename) in mine), None)
    if frame is None:
        frame = next((f for f in reversed(frames) if not _is_library_file(f.filename)), None)
    where = f" (at {Path(frame.filename).name}, line {frame.lineno})" if frame else ""
    if isinstance(exc, SyntaxError) and exc.filename and frame is None:
        where = f" (at {Path(exc.filename).name}, line {exc.lineno})"
    # a SyntaxError's own text names the file and line again
    text = " ".join(str(exc.msg if isinstance(exc, SyntaxError) else exc).split())
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


class _BoundedText:
    """A text stream for the child's ``print``: the first :data:`MAX_PRINTED_BYTES` go to stderr, the rest is counted.

    An implementation that prints megabytes neither floods the terminal nor a grader's log.
    """

    def __init__(self, fd: int):
        self.fd, self.written, self.dropped = fd, 0, 0

    def write(self, text) -> int:
        data = str(text).encode("utf-8", "backslashreplace")
        room = max(0, MAX_PRINTED_BYTES - self.written)
        if data[:room]:
            try:
                os.write(self.fd, data[:room])
            except OSError:
                pass
        self.written += min(room, len(data))
        self.dropped += max(0, len(data) - room)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd


def _quiet_streams(silent: bool = False) -> _BoundedText:
    """In the child: stdin empty, the user's prints on stderr (never mixed with the checker's JSON), bounded.

    ``silent`` sends them nowhere (``grade``: a class's prints would bury the table).
    """
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        if silent:
            os.dup2(devnull, 2)
        os.close(devnull)
        os.dup2(2, 1)
    except OSError:
        pass
    sys.stdin = open(os.devnull)  # noqa: SIM115  (the child's stdin for its whole life)
    sys.stdout = sys.stderr = stream = _BoundedText(2)
    return stream


def _encoded(out, shape: tuple, limit: int) -> tuple[str, bytes, dict]:
    """What a call returned, for the pipe: ``(kind, float64 bytes, fields)``; a huge array is sent without its data."""
    try:
        arr = np.asarray(out)
    except Exception as exc:  # noqa: BLE001  (anything the user returns)
        return "other", b"", {"text": f"a {type(out).__name__} ({type(exc).__name__} converting it to an array)"}
    if arr.dtype.kind not in "biufc":
        return "other", b"", {"text": f"a {type(out).__name__} of dtype {arr.dtype}"}
    fields = {"shape": [int(d) for d in arr.shape], "dtype": str(arr.dtype)}
    if arr.size > limit and tuple(arr.shape) != tuple(shape):
        return "huge", b"", fields
    # converted as NumPy would: integers and smaller floats as float64, complex as complex128
    wire = np.complex128 if arr.dtype.kind == "c" else np.float64
    return "array", np.ascontiguousarray(arr, dtype=wire).tobytes(), fields


def _child_main(conn, impl, names: list[str], memory_mb: float, nonce: str, silent: bool = False) -> None:
    """Runs in the child, in its own process group: load, say so, then answer one call per request.

    A request is ``(k, arguments, expected shape)``; every answer carries ``nonce`` and
    ``k``. A process forked by the user's code that comes back here exits without
    answering, so no answer can come from anyone but this process.
    """
    me = os.getpid()
    _own_process_group()
    printed = _quiet_streams(silent)
    import faulthandler

    faulthandler.disable()  # a crash is reported as such; the checker's own dump handler says nothing more
    _single_threaded_torch()

    def send(kind: str, k: int, data: bytes = b"", **fields) -> None:
        if os.getpid() != me:
            os._exit(0)
        header = {"nonce": nonce, "k": k, "kind": kind, "dropped": printed.dropped, **fields}
        conn.send_bytes(json.dumps(header).encode() + b"\n" + data)

    try:
        _limit_memory(memory_mb)
        fn = None
        try:
            fn = _load_function(impl)
            used = _arguments(fn, names)
        except MissingFunction as exc:
            send("missing", -1, text=str(exc))
            return
        except BaseException as exc:  # noqa: BLE001  (a syntax error, SystemExit or MemoryError while loading)
            send("load", -1, text=_describe_exception(exc, impl, fn), stage="import" if fn is None else "signature")
            return
        send("loaded", -1)
        while True:
            try:
                k, arguments, shape = conn.recv()
            except (EOFError, OSError):
                return
            try:
                with np.errstate(all="ignore"):
                    out = fn(**{n: arguments[n].copy() for n in used})
                kind, data, fields = _encoded(out, shape, max(4 * math.prod(shape), MAX_RETURNED_ELEMENTS))
            except BaseException as exc:  # noqa: BLE001  (SystemExit and MemoryError are results too)
                send("raised", k, text=_describe_exception(exc, impl, fn))
                continue
            send(kind, k, data, **fields)
    except BaseException:  # noqa: BLE001  (the pipe is gone: the checker ended this run)
        pass
    finally:
        os._exit(0)


def _single_threaded_torch() -> None:
    """In a child forked from a process that has used torch: one intra-op thread.

    torch's OpenMP thread pool does not survive ``fork``; its next parallel operation in
    the child waits forever. With one thread no pool is used.
    """
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        try:
            torch.set_num_threads(1)
        except Exception:  # noqa: BLE001  (a partly imported or unusual torch: the call bound still holds)
            pass


def _own_process_group() -> None:
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass


def _context():
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class _Child:
    """One implementation's child process (its own process group) and the private pipe to it."""

    def __init__(self, impl, names: list[str], memory_mb: float, silent: bool = False):
        ctx = _context()
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.nonce = secrets.token_hex(8)
        args = (child_conn, impl, names, memory_mb, self.nonce, silent)
        self.proc = ctx.Process(target=_child_main, args=args, daemon=True)
        with warnings.catch_warnings():
            # fork in a threaded process: the child runs user code only
            warnings.simplefilter("ignore", DeprecationWarning)
            self.proc.start()
        child_conn.close()
        self.group = self._adopt_group(self.proc.pid)
        self.ended = False

    @staticmethod
    def _adopt_group(pid: int) -> int | None:
        """The child's process group id (the parent sets it too, so no grandchild starts outside it)."""
        if not hasattr(os, "killpg"):
            return None
        try:
            os.setpgid(pid, pid)
        except OSError:  # the child did it first, or has already ended
            pass
        return pid if pid != os.getpgrp() else None

    def ask(self, k: int, case: Case) -> bool:
        """Send the call ``k``; False when the child is gone."""
        try:
            self.conn.send((k, case.inputs, tuple(case.expected.shape)))
            return True
        except (OSError, ValueError):
            return False

    def receive(self, k: int, timeout: float) -> dict:
        """The answer to call ``k`` (or to loading, ``k = -1``): a dict with ``kind``; timeout and crash included."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not self.conn.poll(left):
                    return {"kind": "timeout"}
                raw = self.conn.recv_bytes(MAX_MESSAGE_BYTES)
            except EOFError:
                self.end()
                return {"kind": "crashed", "text": _exit_description(self.proc.exitcode)}
            except OSError:
                self.end()
                return {"kind": "crashed", "text": f"it sent more than {MAX_MESSAGE_BYTES // 2**20} MB back"}
            header, _, data = raw.partition(b"\n")
            try:
                msg = json.loads(header)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("nonce") == self.nonce and msg.get("k") == k:
                msg["data"] = data
                return msg

    def end(self) -> None:
        """Kill the child's whole process group (grandchildren included), then reap the child."""
        if self.ended:
            return
        self.ended = True
        if self.group is not None:
            try:
                os.killpg(self.group, signal.SIGKILL)
            except OSError:  # the group is already empty
                pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _exit_description(code) -> str:
    if code is None:
        return "the process ended without a result"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process was killed by {name}"
    return f"the process exited with status {code} without returning"


# -- comparing ----------------------------------------------------------------------------------
def _json_array(arr: np.ndarray):
    def num(v):
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, complex):
            return str(v)
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v

    arr = np.asarray(arr)
    if arr.ndim == 0:
        return num(arr[()])
    return [_json_array(a) for a in arr]


def _failure(impl: str, status: str, case: Case | None, message: str, tried: list, **extra) -> ImplementationReport:
    common = {}
    if case is not None:
        common = {
            "sizes": dict(case.sizes),
            "inputs": {n: _json_array(v) for n, v in case.inputs.items()},
            "expected": _json_array(case.expected),
        }
    return ImplementationReport(
        ok=False, impl=impl, status=status, message=message, sizes_tried=tried, **common, **extra
    )


def dtype_tolerances(dtype: str, rtol: float, atol: float) -> tuple[float, float]:
    """The tolerances a result of ``dtype`` is compared at: at least 100 of its epsilons for a float below float64.

    >>> dtype_tolerances("float32", 1e-7, 1e-9)
    (1.1920928955078125e-05, 1.1920928955078125e-05)
    >>> dtype_tolerances("float64", 1e-7, 1e-9), dtype_tolerances("int64", 1e-7, 1e-9)
    ((1e-07, 1e-09), (1e-07, 1e-09))
    """
    try:
        kind = np.dtype(dtype)
    except TypeError:
        return rtol, atol
    if kind.kind in "fc" and np.finfo(kind).eps > np.finfo(np.float64).eps:
        floor = 100 * float(np.finfo(kind).eps)
        return max(rtol, floor), max(atol, floor)
    return rtol, atol


def _compare(name: str, case: Case, value, shape: tuple, dtype: str, rtol: float, atol: float, tried: list):
    """The failure report for one returned array (``value`` None when it was not sent), or None when it agrees."""
    expected = case.expected
    shown = {} if value is None else {"returned": _json_array(value)}
    if shape != expected.shape:
        message = f"returned shape {shape}, expected {expected.shape}"
        return _failure(name, WRONG_SHAPE, case, message, tried, **shown)
    if value is None:
        return _failure(name, WRONG_SHAPE, case, f"returned an array of dtype {dtype} that did not come back", tried)
    rtol, atol = dtype_tolerances(dtype, rtol, atol)
    close = np.isclose(value, expected, rtol=rtol, atol=atol)
    if close.all():
        return None
    differing = [tuple(int(i) for i in idx) for idx in zip(*np.nonzero(~close), strict=True)] if value.ndim else [()]
    first = differing[0]
    want, got = _distinct_texts(expected[first], value[first])
    # a near miss (6 digits do not tell the two apart) also says by how much the bound is exceeded
    near = f"{expected[first]:.6g}" == f"{value[first]:.6g}"
    message = (
        f"{len(differing)} of {expected.size} elements differ; first at [{', '.join(map(str, first))}]: "
        f"expected {want}, returned {got}{_excess(expected[first], value[first], rtol, atol) if near else ''}"
        f"{_dtype_note(dtype)}"
    )
    return _failure(name, WRONG, case, message, tried, returned=_json_array(value), differing=differing, dtype=dtype)


def _dtype_note(dtype: str | None) -> str:
    """`` (returned DTYPE)`` for a result that is not float64, else ""."""
    return f" (returned {dtype})" if dtype and dtype != "float64" else ""


def _distinct_texts(a, b) -> tuple[str, str]:
    """Two numbers with as many significant digits (6 to 17) as it takes to tell them apart.

    >>> _distinct_texts(-0.0260238, -0.0260238 * (1 + 2e-7))
    ('-0.02602380', '-0.02602381')
    """
    for digits in range(6, 18):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            return _padded(left, digits), _padded(right, digits)
    return left, right


def _padded(text: str, digits: int) -> str:
    """``text`` with the trailing zeros ``g`` formatting drops, so both numbers show ``digits`` digits."""
    if digits == 6 or "e" in text or "n" in text:
        return text
    shown = len(text.lstrip("-").replace(".", "").lstrip("0"))
    if shown < digits:
        text += ("" if "." in text else ".") + "0" * (digits - shown)
    return text


def _excess(expected, returned, rtol: float, atol: float) -> str:
    """`` (difference d, allowed t)``: how far off a finite element is against NumPy's isclose bound."""
    if not (np.isfinite(expected) and np.isfinite(returned)):
        return ""
    allowed = atol + rtol * abs(expected)
    return f" (difference {abs(returned - expected):.2g}, allowed {allowed:.2g} = atol + rtol * |expected|)"


def _returned(name: str, case: Case, msg: dict, rtol: float, atol: float, tried: list):
    """The failure report for one answer of the child, or None when it agrees."""
    kind = msg["kind"]
    if kind == "other":
        return _failure(name, WRONG_SHAPE, case, f"returned {msg.get('text')}, expected a float64 array", tried)
    shape, dtype = tuple(msg.get("shape", ())), str(msg.get("dtype"))
    if kind == "huge":
        return _failure(
            name,
            WRONG_SHAPE,
            case,
            f"returned an array of {math.prod(shape)} elements (shape {_shape_text(shape)}), "
            f"expected shape {_shape_text(case.expected.shape)}",
            tried,
        )
    return _compare(name, case, _decoded(msg), shape, dtype, rtol, atol, tried)


def _decoded(msg: dict) -> np.ndarray | None:
    """The array a child's answer carries, or None when it carries none (not an array, too large)."""
    if msg.get("kind") in ("other", "huge") or "shape" not in msg:
        return None
    shape, dtype = tuple(msg.get("shape", ())), str(msg.get("dtype"))
    data = msg.get("data", b"")
    wire = np.dtype(np.complex128 if dtype.startswith("complex") else np.float64)
    sent = len(data) == wire.itemsize * math.prod(shape)
    return np.frombuffer(data, dtype=wire).reshape(shape) if sent else None


class _Run:
    """One implementation's run: its child process (started again after a timeout or crash) and its time budget.

    Loading the implementation (the interpreter's imports and the user's, such as SciPy
    or torch) is bounded by ``load_timeout`` and does not count against any call. Each
    call is bounded by ``timeout``, all the calls together by ``CALL_BUDGET * timeout``.
    """

    def __init__(self, impl, names: list[str], settings: dict):
        self.impl, self.name, self.names, self.s = impl, _impl_name(impl), names, settings
        self.child: _Child | None = None
        self.deadline: float | None = None
        self.starts = 0
        self.calls = 0
        self.dropped = 0
        self.dtype: str | None = None  # the dtype of the last array returned
        self.returns: list[tuple] = []  # (case, array returned or None, agreed) per call

    def load(self) -> ImplementationReport | None:
        """Start the child and load the implementation: None when loaded, else the failure (InputError: no such function)."""
        s = self.s
        bound = s["load_timeout"] if self.deadline is None else max(0.0, min(s["load_timeout"], self.left()))
        self.starts += 1
        self.child = _Child(self.impl, self.names, s["memory_mb"], s.get("silent", False))
        msg = self.child.receive(-1, bound)
        if msg["kind"] == "loaded":
            return None
        self.stop()
        if msg["kind"] == "missing":
            if s.get("missing_is_error", True):
                raise InputError(msg["text"], where=f"--impl {self.name}")
            return _failure(self.name, MISSING_FUNCTION, None, msg["text"], [])
        if msg["kind"] == "timeout":
            return _failure(self.name, TIMEOUT, None, f"loading it took longer than {bound:g} s", [])
        if msg["kind"] == "crashed":
            return _failure(self.name, NOT_LOADED, None, f"{msg['text']} while loading it", [])
        note = _memory_note(msg["text"], s["memory_mb"])
        # a signature the calling convention cannot call is raised by the function itself
        status = RAISED if msg.get("stage") == "signature" else _raised_status(msg["text"], NOT_LOADED)
        return _failure(self.name, status, None, f"could not be loaded: {msg['text']}{note}", [])

    def left(self) -> float:
        """Seconds left of the calls' budget."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        """Whether no further call can run: the budget spent, or the child restarted too often."""
        return self.left() <= 0 or (self.child is None and self.starts > MAX_STARTS)

    def call(self, case: Case, tried: list) -> ImplementationReport | None:
        """Run one case: the failure report, or None when the implementation agrees there."""
        s, name = self.s, self.name
        if self.child is None:
            failure = self.load()
            if failure is not None:
                return dataclasses.replace(
                    _failure(name, failure.status, case, failure.message, tried), message=failure.message
                )
        if self.deadline is None:  # the budget starts with the first call, not with loading
            self.deadline = time.monotonic() + CALL_BUDGET * s["timeout"]
        bound = min(s["timeout"], self.left())
        self.calls += 1
        if not self.child.ask(self.calls, case):
            self.stop()
            return _failure(name, CRASHED, case, "the process ended without a result", tried)
        msg = self.child.receive(self.calls, bound)
        self.dropped = max(self.dropped, int(msg.get("dropped", 0) or 0))
        if msg["kind"] == "timeout":
            self.stop()
            if bound < s["timeout"]:
                total = CALL_BUDGET * s["timeout"]
                return _failure(name, TIMEOUT, case, f"its calls took more than {total:g} s in all", tried)
            return _failure(name, TIMEOUT, case, f"no result within {s['timeout']:g} s", tried)
        if msg["kind"] == "crashed":
            self.stop()
            return _failure(name, RAISED, case, msg["text"], tried)
        if msg["kind"] == "raised":
            text = msg["text"] + _memory_note(msg["text"], s["memory_mb"])
            return _failure(name, _raised_status(msg["text"]), case, text, tried)
        self.dtype = msg.get("dtype") or self.dtype
        failure = _returned(name, case, msg, s["rtol"], s["atol"], tried)
        # what it returned, kept to name the mistake it makes (checking.mistakes)
        self.returns.append((case, _decoded(msg), failure is None))
        return failure

    def stop(self) -> None:
        """End the child's process group, if one runs."""
        if self.child is not None:
            self.child.end()
            self.child = None


def _check_one(run: _Run, cases: CaseCache, every_size: bool = False) -> ImplementationReport:
    """Run the sweep smallest first, stop at the first failure, then report the smallest failing size.

    The smaller sizes not yet tried are run in LANGUAGE.md's minimal order (at most
    :data:`MAX_SHRINK_CASES`, within the implementation's time budget); the first that
    fails is the smallest. With ``every_size`` the sweep goes on after a failure (but not
    after a timeout, each further call of which would cost the timeout too) and the
    report's ``plan_passed`` says which sizes agreed.
    """
    tried: list = []
    failure = None
    passed: list[bool] = []
    for planned in cases.plan:
        if failure is not None and (not every_size or failure.status == TIMEOUT or failure.sizes is None):
            break
        if failure is not None and run.out_of_time():
            break
        case = cases.case(planned.sizes)
        result = run.call(case, list(tried))
        passed.append(result is None)
        if result is None:
            tried.append(dict(case.sizes))
        elif failure is None:
            failure = result
    passed += [False] * (len(cases.plan) - len(passed)) if every_size else []
    plan_passed = tuple(passed) if every_size else ()
    if failure is None:
        sizes = "; ".join(_fmt_sizes(s) for s in tried)
        return ImplementationReport(
            ok=True,
            impl=run.name,
            status=OK,
            message=f"agrees at {len(tried)} sizes ({sizes}){_compared_note(run)}{_printed_note(run.dropped)}",
            sizes_tried=tried,
            plan_passed=plan_passed,
            dtype=run.dtype,
        )
    failure = dataclasses.replace(failure, plan_passed=plan_passed)
    if failure.sizes is None:  # it could not be loaded again
        return failure
    for sizes in smaller_sizes(cases.layer, failure.sizes, skip=tried):
        if run.out_of_time():
            break
        smaller = run.call(cases.case(sizes), list(tried))
        if smaller is not None:
            smaller = dataclasses.replace(smaller, sizes_tried=list(tried), plan_passed=plan_passed)
            return _with_note(_with_mistake(smaller, run, cases), run.dropped)
        tried.append(sizes)
    return _with_note(_with_mistake(dataclasses.replace(failure, sizes_tried=tried), run, cases), run.dropped)


def _with_mistake(report: ImplementationReport, run: _Run, cases: CaseCache) -> ImplementationReport:
    """A wrong result's report with the candidate mistake that matches every answer of the run, if one does.

    A function that raised at some sizes is asked too (``w @ g`` for ``w.T @ g`` raises unless
    the matrix is square), when it answered wrongly somewhere else.
    """
    from .mistakes import matching_mistake

    if report.status not in (WRONG, WRONG_SHAPE, RAISED):
        return report
    # the sweep stopped at the first failure: a few more of its sizes before a mistake is named
    # (small sizes tell few mistakes apart: a kernel of one row is its own flip along the rows)
    asked = {tuple(sorted(case.sizes.items())) for case, _, _ in run.returns} | {
        tuple(sorted(report.sizes.items())) if report.sizes else ()
    }
    extra = [p.sizes for p in cases.plan if tuple(sorted(p.sizes.items())) not in asked][:MISTAKE_EXTRA_SIZES]
    for sizes in extra:
        if run.out_of_time():
            break
        run.call(cases.case(sizes), [])
    evidence = _evidence(run)
    if all(agreed for _, _, agreed in run.returns):
        return report  # no wrong answer to explain
    found = matching_mistake(cases.layer, cases.wrt, evidence)
    return dataclasses.replace(report, mistake=found.text) if found is not None else report


def _evidence(run: _Run) -> list[tuple]:
    """(sizes, inputs, returned) per answer of the run, those that differ first (they rule out most
    candidates at once), the smaller first (quicker to evaluate); empty when an answer did not
    come back (it cannot be compared)."""
    answers = sorted(run.returns, key=lambda r: (r[2], -1 if r[1] is None else r[1].size))
    evidence = [(case.sizes, case.inputs, value) for case, value, _ in answers]
    return [] if any(value is None for _, _, value in evidence) else evidence


def _compared_note(run: _Run) -> str:
    """`` (returned DTYPE, compared at rtol=R, atol=A)`` for results that are not float64, else ""."""
    if not run.dtype or run.dtype == "float64":
        return ""
    rtol, atol = dtype_tolerances(run.dtype, run.s["rtol"], run.s["atol"])
    return f" (returned {run.dtype}, compared at rtol={rtol:.2g}, atol={atol:.2g})"


def _printed_note(dropped: int) -> str:
    return (
        f" (it printed {dropped + MAX_PRINTED_BYTES} bytes or more; the output after the first {MAX_PRINTED_BYTES} was dropped)"
        if dropped
        else ""
    )


def _with_note(report: ImplementationReport, dropped: int) -> ImplementationReport:
    return dataclasses.replace(report, message=report.message + _printed_note(dropped)) if dropped else report


def _raised_status(description: str, otherwise: str = RAISED) -> str:
    """``memory`` for a MemoryError, else ``otherwise``.

    >>> _raised_status("MemoryError (at a.py, line 3)"), _raised_status("ValueError: no")
    ('memory', 'raised')
    """
    return MEMORY if description.startswith("MemoryError") else otherwise


def _memory_note(description: str, memory_mb: float) -> str:
    return f" (the memory bound is {memory_mb:g} MB)" if description.startswith("MemoryError") else ""


def _argument_names(layer) -> list[str]:
    return list(layer.inputs) + ([] if layer.is_loss else ["g"])


def _check_tolerances(rtol, atol) -> None:
    """InputError unless both tolerances are finite numbers >= 0 (a negative or NaN one fails every comparison)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}", where=f"--{name}")


def _check_bounds(**bounds) -> None:
    for name, value in bounds.items():
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise InputError(f"{name} must be a finite number > 0, got {value!r}", where=f"--{name}")


def check_many(
    layer,
    wrt: str,
    impls: Sequence,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    seed: int = 0,
    timeout: float = 10.0,
    memory_mb: float = 2048,
    load_timeout: float = LOAD_TIMEOUT,
    cases: CaseCache | None = None,
    every_size: bool = False,
    missing_is_error: bool = True,
    show_prints: bool = True,
) -> list[ImplementationReport]:
    """Check several implementations on the same cases (a folder of submissions); one report each.

    ``timeout`` bounds each call, ``CALL_BUDGET * timeout`` all the calls of one
    implementation, ``load_timeout`` loading it (its imports); ``cases`` (a
    :class:`CaseCache` for the same layer, input and seed) reuses expected gradients
    computed before. ``every_size`` tries every size of the sweep even after a failure
    (``plan_passed`` in each report: ``grade``'s score); ``missing_is_error=False``
    reports a file without the function as ``missing function`` instead of raising
    InputError; ``show_prints=False`` drops what the implementations print.

    >>> # check_many("conv2d", "x", ["alice.py:conv2d_backward_x", "bob.py:conv2d_backward_x"])
    """
    __tracebackhide__ = True  # an input error in a user's test: its line, not symderive's frames
    try:
        modes = {"every_size": every_size, "missing_is_error": missing_is_error, "silent": not show_prints}
        return _check_many(layer, wrt, impls, rtol, atol, seed, timeout, memory_mb, load_timeout, cases, **modes)
    except InputError as exc:
        raise exc.with_traceback(None) from None


def _check_many(
    layer, wrt, impls, rtol, atol, seed, timeout, memory_mb, load_timeout, cases, every_size, missing_is_error, silent
):
    _check_tolerances(rtol, atol)
    _check_seed(seed)
    _check_bounds(timeout=timeout, memory_mb=memory_mb, load_timeout=load_timeout)
    if isinstance(impls, str) or not isinstance(impls, Sequence):
        raise TypeError(f"impls must be a list of FILE.py:FUNCTION strings or callables, got {impls!r}")
    layer = _as_layer(layer)
    _check_wrt(layer, wrt)
    for impl in impls:
        if isinstance(impl, str):
            _split_spec(impl)
        elif not callable(impl):
            raise InputError(f"an implementation is FILE.py:FUNCTION or a callable, got {impl!r}", where="--impl")
    if cases is None:
        cases = CaseCache(layer, wrt, seed)
    elif not isinstance(cases, CaseCache) or cases.wrt != wrt or cases.seed != seed or cases.layer != layer:
        raise TypeError("cases must be a CaseCache of the same layer, input and seed")
    settings = {"rtol": rtol, "atol": atol, "timeout": float(timeout), "memory_mb": memory_mb}
    settings["load_timeout"], settings["missing_is_error"] = float(load_timeout), bool(missing_is_error)
    settings["silent"] = bool(silent)
    names = _argument_names(layer)
    runs = [_Run(impl, names, settings) for impl in impls]
    try:
        # every implementation is loaded before any runs: a missing function is an input error first;
        # more than a few stay loaded no longer than that (each is a process)
        loading = []
        for run in runs:
            loading.append(run.load())
            if len(runs) > KEEP_LOADED:
                run.stop()
                run.starts = 0
        return [
            _without_plan(failure, cases, every_size) or _check_one(run, cases, every_size)
            for run, failure in zip(runs, loading, strict=True)
        ]
    finally:
        for run in runs:
            run.stop()


def _without_plan(failure, cases: CaseCache, every_size: bool):
    """A failure to load, with every size of the sweep failed when every size counts; None stays None."""
    if failure is None or not every_size:
        return failure
    return dataclasses.replace(failure, plan_passed=(False,) * len(cases.plan))


def check_implementation(
    layer,
    wrt: str,
    impl,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    seed: int = 0,
    timeout: float = 10.0,
    memory_mb: float = 2048,
    load_timeout: float = LOAD_TIMEOUT,
    cases: CaseCache | None = None,
) -> ImplementationReport:
    """Check one backward implementation (``"FILE.py:FUNCTION"`` or a callable) against the derived gradient.

    ``timeout`` bounds each call (seconds), ``CALL_BUDGET * timeout`` all its calls,
    ``load_timeout`` loading it; ``memory_mb`` is what the child may allocate.

    >>> import numpy as np
    >>> check_implementation("linear", "b", lambda g: np.array(g)).status
    'ok'
    """
    __tracebackhide__ = True
    bounds = {"timeout": timeout, "memory_mb": memory_mb, "load_timeout": load_timeout}
    return check_many(layer, wrt, [impl], rtol=rtol, atol=atol, seed=seed, cases=cases, **bounds)[0]
