"""Exact and floating-point evaluation of index expressions at concrete sizes.

This is symderive's second, independent check: no symbolic reasoning, just the
operator table's index definitions evaluated element by element.

``evaluate(tensor, sizes, values)`` gives a NumPy array; in ``exact`` mode the values
are SymPy numbers (or symbols) and so is the result, in ``float`` mode float64.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import sympy as sp

from ..core.ir import GSum, Iverson, Tensor, index_symbol

#: SymPy functions evaluated in floating point (each works on a number and on a NumPy array)
FLOAT_FUNCTIONS = {
    sp.exp: np.exp,
    sp.log: np.log,
    sp.sqrt: np.sqrt,
    sp.tanh: np.tanh,
    sp.sinh: np.sinh,
    sp.cosh: np.cosh,
    sp.sin: np.sin,
    sp.cos: np.cos,
    sp.Abs: abs,
    sp.sign: np.sign,
}


class EvaluationError(ValueError):
    """A concrete evaluation that cannot be carried out (undefined at these sizes)."""


class SymbolicCondition(EvaluationError):
    """A condition that depends on symbolic tensor values (exact mode keeps it symbolic)."""


def _as_int(v) -> int:
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    if isinstance(v, sp.Integer):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise EvaluationError(f"index value {v} is not an integer")


class Evaluator:
    """Evaluates scalar index expressions with bound symbols and tensor values.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> i = index_symbol("i")
    >>> float(Evaluator({n: 3}, {"x": np.array([1.0, 2.0, 3.0])}).value(GSum(sp.IndexedBase("x")[i], (i, 0, n - 1))))
    6.0
    """

    def __init__(self, env: dict, values: dict, exact: bool = False):
        self.env = dict(env)
        self.values = values
        self.exact = exact
        # A subexpression's value depends only on the bound symbols it contains (tensor
        # values are fixed for one evaluator), so it is memoised under those symbols' current
        # values: a layer norm's row mean is then summed once per row, not once per element.
        self._memo: dict = {}
        self._deps: dict = {}
        self._names: dict = {}
        self._guards_first: dict = {}

    # -- numbers -------------------------------------------------------------------
    def number(self, e):
        if e.is_Integer:
            return int(e)
        if e.is_Rational:
            return Fraction(int(e.p), int(e.q)) if not self.exact else e
        if self.exact:
            return e
        return float(e)

    def value(self, e):
        """The value of a scalar expression."""
        if e.is_Atom:
            return self._atom(e)
        deps = self._deps.get(e)
        if deps is None:
            deps = self._deps[e] = _bound_symbols(e)
        env = self.env
        key = (e, tuple(env.get(s, _UNBOUND) for s in deps))
        memo = self._memo
        if key in memo:
            return memo[key]
        v = memo[key] = self._compute(e)
        return v

    def _atom(self, e):
        if e.is_Number or e.is_NumberSymbol:
            return self.number(e)
        if isinstance(e, sp.Symbol):
            return self._symbol(e)
        return self._compute(e)

    def _compute(self, e):
        method = getattr(self, "_eval_" + type(e).__name__, None)
        if method is not None:
            return method(e)
        if e.is_Number or e.is_NumberSymbol:
            return self.number(e)
        if isinstance(e, sp.Symbol):
            return self._symbol(e)
        if isinstance(e, sp.Indexed):
            return self._read(e)
        if isinstance(e, GSum):
            return self._gsum(e)
        if isinstance(e, sp.Function):
            return self._function(e)
        raise EvaluationError(f"cannot evaluate {type(e).__name__}: {e}")

    def _symbol(self, s):
        if s in self.env:
            return self.env[s]
        name = str(s)
        if name in self.values:
            return self.values[name][()]
        raise EvaluationError(f"no value for symbol {s}")

    def _read(self, e):
        base = e.base
        name = self._names.get(base)
        if name is None:
            # sstr on every read was most of an evaluation's time
            name = self._names[base] = str(base.label)
        arr = self.values.get(name)
        if arr is None:
            raise EvaluationError(f"no value for tensor {name}")
        idx = tuple(_as_int(self.value(i)) for i in e.indices)
        if len(idx) != arr.ndim:
            raise EvaluationError(f"{name} has rank {arr.ndim}, read with {len(idx)} indices")
        if any(k < 0 or k >= n for k, n in zip(idx, arr.shape, strict=False)):
            return 0
        return arr[idx]

    def _gsum(self, e):
        return self._sum_limits(e.function, list(e.limits))

    def _sum_limits(self, body, limits):
        if not limits:
            return self.value(body)
        var, lo, hi = limits[-1]
        lo, hi = _as_int(self.value(lo)), _as_int(self.value(hi))
        total = 0
        saved = self.env.get(var)
        for v in range(lo, hi + 1):
            self.env[var] = v
            total = total + self._sum_limits(body, limits[:-1])
        if saved is None:
            self.env.pop(var, None)
        else:
            self.env[var] = saved
        return total

    def _function(self, e):
        args = [self.value(a) for a in e.args]
        if self.exact:
            return e.func(
                *[
                    sp.sympify(a) if not isinstance(a, Fraction) else sp.Rational(a.numerator, a.denominator)
                    for a in args
                ]
            )
        fn = FLOAT_FUNCTIONS.get(e.func)
        if fn is None:
            try:
                return float(e.func(*[sp.Float(float(a), 30) for a in args]).evalf(30))
            except (TypeError, ValueError) as exc:
                raise EvaluationError(f"cannot evaluate {e.func} numerically") from exc
        with np.errstate(all="ignore"):
            return fn(*[float(a) for a in args])

    # -- structure -----------------------------------------------------------------
    def _eval_Add(self, e):
        total = 0
        for a in e.args:
            total = total + self.value(a)
        return total

    def _eval_Mul(self, e):
        # index guards first: where one is 0 the term is absent (a read outside a shape, a
        # padded border) and its factors are not computed at all
        order = self._guards_first.get(e)
        if order is None:
            guard = [is_index_guard(a) for a in e.args]
            first = [a for a, g in zip(e.args, guard, strict=True) if g]
            rest = [a for a, g in zip(e.args, guard, strict=True) if not g]
            order = self._guards_first[e] = (first + rest, len(first))
        args, guards = order
        prod, zero = 1, False
        for k, a in enumerate(args):
            v = self.value(a)
            if isinstance(v, int | Fraction) and v == 0:
                if k < guards:
                    return 0
                # a value that is 0 does not stop NumPy computing the rest: 0 * nan is nan
                zero = True
                continue
            prod = prod * v
        if not zero:
            return prod
        return self._undefined() if _is_undefined_number(prod) else 0

    def _undefined(self):
        return sp.nan if self.exact else float("nan")

    def _eval_Pow(self, e):
        base = self.value(e.base)
        exp = self.value(e.exp)
        if self.exact:
            return sp.Pow(_to_sympy(base), _to_sympy(exp))
        if isinstance(base, int | Fraction) and isinstance(exp, int) and exp >= 0:
            return base**exp
        with np.errstate(all="ignore"):
            return float(np.power(float(base), float(exp)))

    def _eval_Iverson(self, e):
        c = self.condition(e.args[0])
        if isinstance(c, bool):
            return 1 if c else 0
        return sp.Piecewise((sp.S.One, c), (sp.S.Zero, True))

    def _eval_KroneckerDelta(self, e):
        a, b = (self.value(x) for x in e.args[:2])
        return 1 if a == b else 0

    def _eval_Piecewise(self, e):
        pending = []  # branches whose condition depends on symbolic tensor values (exact mode)
        for expr, cond in e.args:
            c = self.condition(cond)
            if c is True:
                if not pending:
                    return self.value(expr)
                return sp.Piecewise(*pending, (_to_sympy(self.value(expr)), True))
            if c is not False:
                pending.append((_to_sympy(self.value(expr)), c))
        if pending:
            return sp.Piecewise(*pending)
        raise EvaluationError(f"no branch of {e} applies")

    def _eval_Defined(self, e):
        c = self.condition(e.args[1])
        if c is True:
            return self.value(e.args[0])
        if c is False:
            return sp.nan if self.exact else float("nan")
        return sp.Piecewise((_to_sympy(self.value(e.args[0])), c), (sp.nan, True))

    def condition(self, c):
        """A condition's truth value, or (exact mode) a SymPy condition on symbolic tensor values."""
        try:
            return self.truth(c)
        except SymbolicCondition:
            return self._symbolic_condition(c)

    def _symbolic_condition(self, c):
        if isinstance(c, sp.And | sp.Or):
            parts = [self.condition(a) for a in c.args]
            return c.func(*[sp.true if p is True else sp.false if p is False else p for p in parts])
        if isinstance(c, sp.Not):
            inner = self.condition(c.args[0])
            return (not inner) if isinstance(inner, bool) else sp.Not(inner)
        if isinstance(c, sp.Rel):
            return c.func(_to_sympy(self.value(c.lhs)), _to_sympy(self.value(c.rhs)))
        raise EvaluationError(f"cannot decide condition {c}")

    def _eval_floor(self, e):
        return math.floor(self._rational(e.args[0]))

    def _eval_ceiling(self, e):
        return math.ceil(self._rational(e.args[0]))

    def _eval_Mod(self, e):
        a, b = (self._rational(x) for x in e.args)
        return a % b

    def _eval_ReduceMax(self, e):
        return self._pick_limits(e.function, list(e.limits), e.pick)

    _eval_ReduceMin = _eval_ReduceMax

    def _pick_limits(self, body, limits, pick):
        # max/min of body over every point of the (non-empty) ranges
        ranges = [(var, _as_int(self.value(lo)), _as_int(self.value(hi))) for var, lo, hi in limits]
        saved = {var: self.env.get(var) for var, _, _ in ranges}
        values = []
        for point in itertools.product(*(range(lo, hi + 1) for _, lo, hi in ranges)):
            for (var, _, _), v in zip(ranges, point, strict=True):
                self.env[var] = v
            values.append(self.value(body))
        for var, old in saved.items():
            if old is None:
                self.env.pop(var, None)
            else:
                self.env[var] = old
        if not values:
            raise EvaluationError("max/min over an empty range")
        return pick(values)

    def _eval_Max(self, e):
        return max(self.value(a) for a in e.args)

    def _eval_Min(self, e):
        return min(self.value(a) for a in e.args)

    def _rational(self, e):
        v = self.value(e)
        if isinstance(v, sp.Rational):
            return Fraction(int(v.p), int(v.q))
        return v

    def truth(self, c) -> bool:
        """The truth value of a condition."""
        if c is sp.true or c == sp.true:
            return True
        if c is sp.false or c == sp.false:
            return False
        if isinstance(c, sp.And):
            return all(self.truth(a) for a in c.args)
        if isinstance(c, sp.Or):
            return any(self.truth(a) for a in c.args)
        if isinstance(c, sp.ITE):
            cond, then, other = c.args
            return self.truth(then) if self.truth(cond) else self.truth(other)
        if isinstance(c, sp.Not):
            return not self.truth(c.args[0])
        if isinstance(c, sp.Rel):
            lhs, rhs = self.value(c.lhs), self.value(c.rhs)
            if self.exact:
                lhs, rhs = _to_sympy(lhs), _to_sympy(rhs)
                diff = sp.nsimplify(lhs - rhs) if not (lhs - rhs).is_Number else lhs - rhs
                if not diff.is_number:
                    raise SymbolicCondition(f"condition {c} depends on symbols")
                return bool(_compare(c.rel_op, diff))
            return bool(_compare(c.rel_op, lhs - rhs))
        raise EvaluationError(f"cannot decide condition {c}")


#: the value of a symbol that no binding names (it is then read from the tensor values)
_UNBOUND = object()


def _bound_symbols(e) -> tuple:
    """The symbols a subexpression's value can depend on through the evaluator's bindings.

    A summation variable is not among them (the sum binds it); a symbol too many only
    costs memo hits, one too few would reuse a wrong value.

    >>> from ..core.ir import size_symbol
    >>> i, j, n = index_symbol("i"), index_symbol("j"), size_symbol("n")
    >>> [str(s) for s in _bound_symbols(GSum(i * j, (j, 0, n - 1)))]
    ['i', 'n']
    """
    return tuple(sorted((s for s in e.free_symbols if isinstance(s, sp.Symbol)), key=sp.default_sort_key))


def is_index_guard(factor) -> bool:
    """Whether a factor is a 0/1 guard on indices and sizes only (not a comparison of values).

    >>> i = index_symbol("i")
    >>> x = sp.IndexedBase("x", real=True)
    >>> is_index_guard(Iverson(i < 3)), is_index_guard(Iverson(x[i] > 0)), is_index_guard(sp.KroneckerDelta(i, 2))
    (True, False, True)
    """
    if isinstance(factor, sp.KroneckerDelta):
        return True
    if not isinstance(factor, Iverson):
        return False
    cond = factor.args[0]
    return not cond.has(sp.Indexed) and all(s.is_integer for s in cond.free_symbols)


def _is_undefined_number(v) -> bool:
    """Whether a computed value is nan or infinite (NumPy's 0 * v is then nan)."""
    if isinstance(v, int | Fraction):
        return False
    if isinstance(v, float | np.floating):
        return not math.isfinite(v)
    return isinstance(v, sp.Basic) and v.is_number and bool(v.has(sp.nan, sp.zoo, sp.oo, -sp.oo))


def _compare(op: str, diff) -> bool:
    return {"==": diff == 0, "!=": diff != 0, "<": diff < 0, "<=": diff <= 0, ">": diff > 0, ">=": diff >= 0}[op]


def _to_sympy(v):
    if isinstance(v, Fraction):
        return sp.Rational(v.numerator, v.denominator)
    if isinstance(v, int | np.integer):
        return sp.Integer(int(v))
    return sp.sympify(v)


def concrete_int(expr, sizes: dict) -> int:
    """An integer size expression at concrete sizes.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> concrete_int(2 * n - 1, {n: 3})
    5
    """
    return _as_int(Evaluator(sizes, {}).value(sp.sympify(expr)))


def concrete_shape(tensor: Tensor, sizes: dict) -> tuple[int, ...]:
    """A tensor's shape at concrete sizes.

    >>> from ..core.ir import leaf
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> concrete_shape(leaf("x", (n, n + 1)), {n: 2})
    (2, 3)
    """
    return tuple(concrete_int(d, sizes) for d in tensor.shape)


def is_valid_at(tensor: Tensor, sizes: dict) -> bool:
    """Whether a tensor expression is defined at concrete sizes."""
    return Evaluator(sizes, {}).truth(tensor.valid)


def normalise_sizes(sizes: dict) -> dict:
    """Sizes keyed by their integer symbols (names are accepted too)."""
    out = {}
    for k, v in sizes.items():
        key = k if isinstance(k, sp.Symbol) else sp.Symbol(str(k), integer=True, positive=True)
        out[key] = int(v)
    return out


def evaluate(tensor: Tensor, sizes: dict, values: dict, exact: bool = False) -> np.ndarray:
    """A tensor expression's value at concrete sizes and tensor values.

    ``values`` maps input names to arrays (float arrays, or object arrays of SymPy
    numbers or symbols with ``exact=True``).

    >>> from ..core.ir import leaf
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> evaluate(leaf("x", (n,)), {"n": 2}, {"x": np.array([1.0, 2.0])})
    array([1., 2.])
    """
    sizes = normalise_sizes(sizes)
    if not is_valid_at(tensor, sizes):
        raise EvaluationError(f"not defined at sizes {_fmt_sizes(sizes)}")
    shape = concrete_shape(tensor, sizes)
    if any(d < 0 for d in shape):
        raise EvaluationError(f"negative dimension in shape {shape} at sizes {_fmt_sizes(sizes)}")
    idx = tuple(index_symbol(f"_e{k}") for k in range(len(shape)))
    element = tensor.element(idx)
    ev = Evaluator(sizes, values, exact=exact)
    out = np.empty(shape, dtype=object if exact else np.float64)
    for point in itertools.product(*(range(d) for d in shape)):
        for sym, v in zip(idx, point, strict=False):
            ev.env[sym] = v
        v = ev.value(element)
        out[point] = _to_sympy(v) if exact else float(v)
    return out


def _fmt_sizes(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


# -- abstract functions made concrete ------------------------------------------------------
#: the variable of a concrete stand-in for an abstract function
U = sp.Symbol("u", real=True)
#: concrete stand-ins for an abstract function ``f`` (LANGUAGE.md, ``functions``), tried in order
#: when a claim about every f is not proved: a false claim is refuted with one of them, named in
#: the counterexample. Polynomials first (exact integers at integer points: the smallest
#: counterexamples), then exp, which no finite difference of any order makes vanish; the first
#: one also cross-checks every proof. They are never a proof: a claim about f is proved only
#: with f opaque.
STAND_INS = (U**2 + 3 * U, U**3 - 2 * U + 1, sp.exp(U))


def stand_ins(names, choice: int) -> dict[str, sp.Expr]:
    """The concrete function (an expression in ``u``) standing for each abstract function in
    attempt ``choice``: the functions of a layer get different ones.

    >>> stand_ins(["f", "h"], 0)
    {'f': u**2 + 3*u, 'h': u**3 - 2*u + 1}
    """
    return {name: STAND_INS[(choice + k) % len(STAND_INS)] for k, name in enumerate(names)}


def stand_in_text(name: str, function: sp.Expr) -> str:
    """A stand-in as a counterexample names it.

    >>> stand_in_text("f", STAND_INS[0])
    'f(u) = u**2 + 3*u'
    """
    return f"{name}(u) = {sp.sstr(function)}"


def with_stand_ins(expr, functions: dict[str, sp.Expr]):
    """``expr`` with every abstract function (and derivative) replaced by its concrete stand-in.

    >>> from ..core.functions import function_class
    >>> x = sp.Symbol("x", real=True)
    >>> with_stand_ins(function_class("f")(x) + function_class("f", 1)(x), {"f": STAND_INS[0]})
    x**2 + 5*x + 3
    """
    from ..core.functions import is_abstract

    expr = sp.sympify(expr)
    if not functions or not any(is_abstract(e) for e in sp.preorder_traversal(expr)):
        return expr

    def concrete(e):
        function = functions[e.function_name]
        return sp.diff(function, U, e.order).xreplace({U: e.args[0]})

    return expr.replace(is_abstract, concrete)


def tensor_with_stand_ins(tensor: Tensor | None, functions: dict[str, sp.Expr]) -> Tensor | None:
    """A tensor whose elements have the stand-ins in place of the abstract functions.

    >>> from ..core.functions import function_class
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> t = Tensor((n,), lambda idx: function_class("f")(sp.IndexedBase("x", real=True)[idx]))
    >>> tensor_with_stand_ins(t, {"f": STAND_INS[0]}).element((0,))
    x[0]**2 + 3*x[0]
    """
    if tensor is None or not functions:
        return tensor
    element = tensor.element

    def concrete(idx):
        return with_stand_ins(element(idx), functions)

    return Tensor(
        shape=tensor.shape, element=concrete, zero_outside=tensor.zero_outside, valid=tensor.valid, latex=tensor.latex
    )
