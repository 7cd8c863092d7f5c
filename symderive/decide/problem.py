"""The decision's input: two sides over a context, never a layer.

A :class:`Problem` asks whether ``left == right`` at every allowed point: every size
assignment satisfying ``size_conditions``, every index inside ``shape`` and every value
of the declared ``tensors`` satisfying the tensor ``assumptions``. "The gradient equals
the claim" is one such problem (built by :mod:`symderive.decide.pose`); any identity
between two expressions over declared tensors is another.

>>> from ..core.ir import index_symbol, leaf, size_symbol
>>> n, i = size_symbol("n"), index_symbol("i")
>>> x = leaf("x", (n,))
>>> p = Problem("twice", sizes=(n,), tensors={"x": (n,)}, scope={"x": x}, left=x, right=x, free=(i,))
>>> p.left_element
x[i]
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core.assumptions import Assumption
from ..core.cache import Same
from ..core.ir import Tensor, in_range, leaf
from .concrete import concrete_shape, evaluate, normalise_sizes


@dataclass(frozen=True)
class Differentiation:
    """A left side computed independently at concrete sizes: SymPy's derivative of a finite
    forward pass (the loss, or ``sum(g * y)`` for a non-final output) w.r.t. one tensor.

    >>> from ..core.ir import size_symbol
    >>> n = size_symbol("n")
    >>> sq = Tensor((n,), lambda i: sp.IndexedBase("x")[i] ** 2, zero_outside=True)
    >>> d = Differentiation(sq, loss=False, wrt="x", sizes=(n,), tensors={"x": (n,), "g": (n,)})
    >>> d.exact({"n": 2}, {"x": [1, 3], "g": [1, 2]}).tolist()
    [2, 12]
    """

    forward: Tensor
    loss: bool
    wrt: str
    sizes: tuple
    #: every tensor the forward pass reads (and ``g`` when it is not a loss), with its shape
    tensors: dict = field(compare=False)

    def symbolic(self, sizes: dict, values: dict) -> np.ndarray:
        """The derivative at every element of ``wrt``, ``values[wrt]`` being symbols (a read-only array)."""
        env = self._env(sizes)
        try:
            key = tuple((n, v.shape, tuple(v.flat)) for n, v in sorted(values.items()))
            hash(key)
        except (AttributeError, TypeError):  # values that are no arrays of hashable entries
            return _derivative(self, tuple(env.items()), values)
        return _cached_derivative(Same(self.forward), self, tuple(env.items()), key)

    def exact(self, sizes: dict, values: dict) -> np.ndarray:
        """The derivative at concrete values (numbers or nested lists), as exact SymPy numbers."""
        shapes = concrete_shapes(self.tensors, self._env(sizes))
        exact = {n: exact_array(values[n]) for n in shapes}
        for n, arr in exact.items():
            if arr.shape != shapes[n]:
                raise ValueError(f"value of {n} has shape {arr.shape}, expected {shapes[n]}")
        syms = symbol_array(f"_{self.wrt}", shapes[self.wrt])
        grad = self.symbolic(sizes, {**exact, self.wrt: syms})
        point = dict(zip(syms.flat, exact[self.wrt].flat, strict=True))
        out = np.empty(grad.shape, dtype=object)
        for idx in itertools.product(*(range(d) for d in grad.shape)):
            out[idx] = grad[idx].xreplace(point)
        return out

    def _env(self, sizes: dict) -> dict:
        by_name = {str(k): int(v) for k, v in sizes.items()}
        missing = [str(s) for s in self.sizes if str(s) not in by_name]
        if missing:
            raise ValueError(f"no value for size(s) {', '.join(missing)}")
        return normalise_sizes({str(s): by_name[str(s)] for s in self.sizes})

    def _loss(self, env: dict, values: dict) -> sp.Expr:
        y = evaluate(self.forward, env, values, exact=True)
        if self.loss:
            return sp.Add(*y.flat) if y.ndim else y[()]
        return sp.Add(*(gv * yv for gv, yv in zip(values["g"].flat, y.flat, strict=True)))


def _derivative(d: Differentiation, env: tuple, values: dict) -> np.ndarray:
    syms = values[d.wrt]
    loss = d._loss(dict(env), values)
    out = np.empty(syms.shape, dtype=object)
    for idx in itertools.product(*(range(k) for k in syms.shape)):
        out[idx] = sp.diff(loss, syms[idx])
    out.flags.writeable = False  # shared by the cache below
    return out


# Cached: a pure function of the forward pass (by identity: a Tensor compares by shape only),
# the sizes and the values (both hashable here); every claim about one gradient is cross-checked
# at the same small sizes with the same symbols, so the finite derivative is taken once.
@functools.lru_cache(maxsize=256)
def _cached_derivative(forward: Same, d: Differentiation, env: tuple, values: tuple) -> np.ndarray:
    return _derivative(d, env, {n: np.array(flat, dtype=object).reshape(shape) for n, shape, flat in values})


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


def concrete_shapes(tensors: dict, env: dict) -> dict[str, tuple[int, ...]]:
    """The concrete shape of every declared tensor at sizes ``env``.

    >>> from ..core.ir import size_symbol
    >>> n = size_symbol("n")
    >>> concrete_shapes({"x": (n, n + 1)}, {n: 2})
    {'x': (2, 3)}
    """
    return {name: concrete_shape(leaf(name, shape), env) for name, shape in tensors.items()}


@dataclass(frozen=True)
class Problem:
    """Is ``left == right`` for all sizes, indices and values the context allows?

    ``sizes`` are the size symbols, ``size_conditions`` what they satisfy besides
    ``>= 1``; ``tensors`` the declared tensors (name -> symbolic shape) whose values are
    searched over, ``scope`` the names an assumption may use (as tensors), ``assumptions``
    the tensor assumptions (``"equal"`` and ``"sign"``) and ``texts`` every assumption's
    spelling. ``left`` and ``right`` are the two sides as tensors; ``free`` the index
    symbols the symbolic decision reads ``left_element`` and ``right_element`` at (the
    left one None, with ``left_reason``, when the left side has no index-level form;
    ``unbounded``: the free indices range over all integers, ``left`` and ``right`` then
    being the sides over a window of them), and ``reference`` an independent
    computation of the left side at concrete points (a gradient's :class:`Differentiation`)
    used by the concrete search and the cross-check instead of evaluating ``left``.
    ``left_name``/``right_name`` say what the sides are in messages.
    """

    name: str
    sizes: tuple
    tensors: dict = field(compare=False)
    scope: dict = field(compare=False)
    left: Tensor = field(compare=False)
    right: Tensor = field(compare=False)
    free: tuple = ()
    size_conditions: tuple = ()
    assumptions: tuple[Assumption, ...] = ()
    texts: tuple[str, ...] = ()
    element: sp.Expr | None = None
    right_element: sp.Expr | None = None
    #: the free indices range over all integers (the tensors' shapes are a window for the search,
    #: whose first position is the free indices' value ``origin``)
    unbounded: bool = False
    origin: tuple = ()
    left_reason: str = ""
    reference: Differentiation | None = None
    left_name: str = "the gradient"
    right_name: str = "the claim"

    @property
    def shape(self) -> tuple:
        """The ranges of the free indices: the left side's shape."""
        return tuple(self.left.shape)

    @property
    def left_element(self) -> sp.Expr | None:
        """The left side at the free indices (for the symbolic decision)."""
        if self.element is not None:
            return self.element
        return None if self.left_reason else self.left.at(self.free)

    @property
    def right_at_free(self) -> sp.Expr:
        """The right side at the free indices (for the symbolic decision)."""
        return self.right_element if self.right_element is not None else self.right.at(self.free)

    @property
    def free_range(self) -> sp.Boolean:
        """The condition on the free indices: inside the shape, or nothing for unbounded ones."""
        return in_range(self.free, self.shape) if self.free and not self.unbounded else sp.true

    def size_assumptions(self) -> list:
        """Every size >= 1 (True for a size symbol, which SymPy knows positive) and the conditions on sizes.

        >>> from ..core.ir import size_symbol
        >>> n = size_symbol("n")
        >>> x = leaf("x", (n,))
        >>> Problem("p", (n,), {"x": (n,)}, {"x": x}, x, x, size_conditions=(sp.Ge(n, 2),)).size_assumptions()
        [True, n >= 2]
        """
        return [sp.Ge(s, 1) for s in self.sizes] + list(self.size_conditions)

    def left_values(self, sizes: dict, values: dict, symbolic: bool) -> np.ndarray:
        """The left side at concrete sizes: symbolic ``values`` (symbol arrays) or numbers."""
        if self.reference is not None:
            return self.reference.symbolic(sizes, values) if symbolic else self.reference.exact(sizes, values)
        return evaluate(self.left, normalise_sizes(sizes), values, exact=True)
