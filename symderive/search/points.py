"""Test points: small non-square sizes, random values and the true gradient there.

The search compares candidates by their values at a few test points (observational
equivalence). Sizes are drawn from the layer's allowed sizes with fixed seeds, values
are non-symmetric and non-normalised; the layer's tensor assumptions (``sum(t) == 1``,
``x > 0``) are made to hold, so that a closed form true only under them is found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core.ir import Tensor
from ..core.tree import Call, Num, Ref
from ..decide import concrete
from ..model.layer import Assumption, Layer

#: the sizes of a test point are drawn from this range (small: the true gradient is exact
#: index-level evaluation)
SIZE_RANGE = (2, 5)
#: the inputs and output of a test point hold at most this many numbers together (the true
#: gradient is evaluated element by element), where the assumptions allow it
MAX_ELEMENTS = 320
#: attempts at drawing sizes that satisfy the layer's size assumptions
SIZE_ATTEMPTS = 400


@dataclass(frozen=True)
class TestPoint:
    """Concrete sizes, values of every name a claim may use, and the true gradient.

    ``sizes`` maps size symbols to ints, ``values`` maps inputs, ``g`` and the output to
    float arrays, ``gradient`` is the gradient of the loss with respect to the input.
    """

    __test__ = False  # not a pytest class

    sizes: dict
    values: dict
    gradient: np.ndarray = field(repr=False)

    def size_values(self) -> dict:
        """The sizes keyed by name: ``{"n": 3}``."""
        return {str(k): v for k, v in self.sizes.items()}


def _holds(cond, sizes: dict) -> bool:
    value = sp.sympify(cond).xreplace(sizes)
    return bool(value) if value in (sp.true, sp.false) else bool(sp.simplify(value))


def draw_sizes(layer: Layer, count: int, seed: int = 0, extra=()) -> list[dict]:
    """``count`` size assignments allowed by the layer's assumptions, as unlike one another
    and as far from square as the assumptions allow (fixed seed).

    >>> from symderive.layer import load_layer
    >>> [sorted(s.values()) != [3, 3] for s in draw_sizes(load_layer("linear"), 2)]
    [True, True]
    """
    conds = layer.size_assumptions(extra)
    rng = np.random.default_rng(seed)
    found: list[dict] = []
    for attempt in range(SIZE_ATTEMPTS):
        if len(found) == count:
            break
        draw = rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1, size=len(layer.sizes))
        sizes = dict(zip(layer.sizes, (int(v) for v in draw), strict=True))
        # all sizes distinct where the range allows it (at most 4 of them), tried first
        if attempt < SIZE_ATTEMPTS // 2 and len(sizes) <= 4 and len(set(sizes.values())) < len(sizes):
            continue
        if attempt < SIZE_ATTEMPTS // 2 and _elements(layer, sizes) > MAX_ELEMENTS:
            continue
        if sizes in found or not all(_holds(c, sizes) for c in conds):
            continue
        found.append(sizes)
    if len(found) < count:
        # the assumptions need larger or smaller sizes than the range: take the smallest allowed
        found += [s for s in _small_sizes(layer, conds, count) if s not in found][: count - len(found)]
    return found


def _elements(layer: Layer, sizes: dict) -> int:
    shapes = [*layer.inputs.values(), layer.forward.shape]
    return sum(int(np.prod(_shape_at(shape, sizes))) for shape in shapes)


def _small_sizes(layer: Layer, conds, count: int) -> list[dict]:
    from ..decide.pose import size_candidates

    out = []
    for sizes in size_candidates(layer):
        keyed = {s: int(sizes[str(s)] if str(s) in sizes else sizes[s]) for s in layer.sizes}
        if all(_holds(c, keyed) for c in conds):
            out.append(keyed)
        if len(out) >= count * 4:
            break
    return out[-count:]


def _shape_at(shape, sizes: dict) -> tuple[int, ...]:
    return tuple(int(sp.sympify(d).xreplace(sizes)) for d in shape)


def _random_values(shape: tuple[int, ...], rng) -> np.ndarray:
    # magnitudes in [0.3, 1.7] with random signs: no zeros, no symmetry, no normalisation
    return rng.uniform(0.3, 1.7, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _reduction_target(a: Assumption):
    """(tensor name, axis, constant) of ``sum(t, axis=..) == c`` / ``mean(..) == c``, else None."""
    lhs, rhs = a.lhs, a.rhs
    if isinstance(rhs, Call) and isinstance(lhs, Num):
        lhs, rhs = rhs, lhs
    if not (isinstance(lhs, Call) and lhs.op in ("sum", "mean") and isinstance(rhs, Num)):
        return None
    args = dict(lhs.args)
    if not isinstance(args.get("a"), Ref):
        return None
    return args["a"].name, args.get("axis"), lhs.op, float(rhs.value)


def impose(assumptions, values: dict) -> dict:
    """Values changed so that tensor assumptions of the forms ``sum(t, axis=..) == c``,
    ``mean(t) == c`` and ``x > 0`` (``>=``, ``<``, ``<=`` against 0) hold.

    >>> from symderive.layer import load_layer
    >>> v = impose(load_layer("softmax_cross_entropy").assumptions, {"t": np.array([1.0, 3.0])})
    >>> float(v["t"].sum())
    1.0
    """
    out = dict(values)
    for a in assumptions:
        if a.kind == "equal" and (target := _reduction_target(a)) is not None:
            name, axis, op, c = target
            t = np.abs(out[name])
            total = np.sum(t, axis=axis, keepdims=True)
            if op == "mean":
                total = np.mean(t, axis=axis, keepdims=True)
            out[name] = t / total * c
        elif a.kind == "sign" and isinstance(a.lhs, Ref) and isinstance(a.rhs, Num) and a.rhs.value == 0:
            t = np.abs(out[a.lhs.name]) + 0.1
            out[a.lhs.name] = t if a.rel in (">", ">=") else -t
    return out


def gradient_tensor(layer: Layer, wrt: str) -> Tensor:
    """The derived gradient of ``wrt`` as a tensor (the prover's derivation).

    >>> from symderive.layer import load_layer
    >>> gradient_tensor(load_layer("linear"), "x").shape
    (n,)
    """
    from ..decide.pose import derivation_of

    d = derivation_of(layer, wrt)

    def element(idx):
        return d.gradient.xreplace(dict(zip(d.index, idx, strict=True)))

    return Tensor(shape=tuple(layer.inputs[wrt]), element=element)


def closed_value(tree, sizes: dict, values: dict) -> np.ndarray | None:
    """A closed-form tree evaluated by NumPy (the operator table's lowering) at concrete sizes
    and values, or None (no tree, or NumPy refuses it).

    >>> from symderive.core.tree import Call, Ref
    >>> closed_value(Call("exp", (("x", Ref("s")),)), {}, {"s": np.zeros(2)}).tolist()
    [1.0, 1.0]
    """
    from ..core.ops import NUMPY_HELPERS, OPERATORS
    from ..core.tree import to_numpy
    from .space import _calls

    if tree is None:
        return None
    namespace: dict = {"np": np}
    for call in _calls(tree):
        for helper in OPERATORS[call.op].numpy_helpers:
            exec(NUMPY_HELPERS[helper], namespace)  # noqa: S102  (the table's own helper sources)
    try:
        with np.errstate(all="ignore"):
            value = eval(to_numpy(tree), namespace, {**{str(k): v for k, v in sizes.items()}, **values})  # noqa: S307  (lowered by the operator table)
    except Exception:  # noqa: BLE001  (NumPy refusing it: the index-level evaluation instead)
        return None
    value = np.asarray(value, dtype=float)
    return value if np.all(np.isfinite(value)) else None


def point_values(layer: Layer, sizes: dict, rng: np.random.Generator, extra=()) -> dict:
    """Random values of the layer's inputs (and ``g``) at ``sizes`` where the assumptions and
    ``extra`` hold, with the named intermediates and the output they give.

    >>> from symderive.layer import load_layer
    >>> layer = load_layer("linear")
    >>> v = point_values(layer, draw_sizes(layer, 1)[0], np.random.default_rng(0))
    >>> sorted(v), v["y"].shape == v["b"].shape
    (['b', 'g', 'w', 'x', 'y'], True)
    """
    values = {n: _random_values(_shape_at(shape, sizes), rng) for n, shape in layer.inputs.items()}
    if not layer.is_loss:
        values["g"] = _random_values(_shape_at(layer.forward.shape, sizes), rng)
    values = impose(tuple(layer.assumptions) + tuple(extra), values)
    # the named intermediates and the output, by NumPy where closed (index-level evaluation
    # of a normalisation takes seconds)
    trees = {i.name: i.tree for i in getattr(layer, "intermediates", ())} | {layer.output: layer.forward_tree}
    scope = layer.scope()
    for name in [*trees, *scope]:
        if name not in values:
            value = closed_value(trees.get(name), sizes, values)
            values[name] = concrete.evaluate(scope[name], sizes, values) if value is None else value
    return values


def test_points(layer: Layer, wrt: str, count: int = 3, seed: int = 0, extra=()) -> tuple[TestPoint, ...]:
    """``count`` test points of the layer for the gradient of ``wrt`` (fixed seeds).

    ``extra`` are further assumptions (parsed) that the points satisfy.

    >>> from symderive.layer import load_layer
    >>> p = test_points(load_layer("linear"), "x", count=1)[0]
    >>> p.gradient.shape == p.values["x"].shape
    True
    """
    grad = gradient_tensor(layer, wrt)
    points = []
    for k, sizes in enumerate(draw_sizes(layer, count, seed, extra)):
        values = point_values(layer, sizes, np.random.default_rng(seed * 1000 + k + 1), extra)
        gradient = concrete.evaluate(grad, sizes, values)
        points.append(TestPoint(sizes, values, gradient))
    return tuple(points)
