"""Abstract elementwise functions: an activation ``f`` a layer file leaves unspecified.

A layer file's ``functions = ["f"]`` (LANGUAGE.md, "Layers") lets the forward use ``f(...)``
and claims ``f(...)`` and ``f_prime(...)``. Each is a SymPy function class that no rule
evaluates: to SymPy ``f(u)`` is opaque, so an identity shown with it holds for every f.
Its derivative is ``f_prime`` (and that one's ``f_prime_prime``); beyond that there is no
rule, and differentiation says so.

>>> f = function_class("f")
>>> u = sp.Symbol("u", real=True)
>>> sp.diff(f(u) ** 2, u)
2*f(u)*f_prime(u)
>>> sp.diff(function_class("f", 1)(u), u)
f_prime_prime(u)
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.core.function import ArgumentIndexError

#: the highest derivative of an abstract function that has a name (f_prime_prime)
MAX_ORDER = 2
#: what each derivative's name adds to the function's name
PRIME = "_prime"


def derivative_name(name: str, order: int = 1) -> str:
    """The name of a derivative of ``name`` (``f_prime``, ``f_prime_prime``).

    >>> derivative_name("f"), derivative_name("f", 2), derivative_name("f", 0)
    ('f_prime', 'f_prime_prime', 'f')
    """
    return name + PRIME * order


def spellings(names) -> dict[str, tuple[str, int]]:
    """Every name a claim may call for the declared functions: name -> (function, order).

    >>> spellings(["f"])
    {'f': ('f', 0), 'f_prime': ('f', 1), 'f_prime_prime': ('f', 2)}
    """
    return {derivative_name(n, k): (n, k) for n in names for k in range(MAX_ORDER + 1)}


def function_class(name: str, order: int = 0) -> type[sp.Function]:
    """The SymPy function class of ``name``'s derivative of ``order`` (0: the function itself).

    Real-valued and finite on real finite arguments (an activation maps reals to reals);
    nothing else is known about it.

    >>> function_class("f", 1).__name__
    'f_prime'
    >>> function_class("f")(sp.Integer(2)).is_real
    True
    >>> print(sp.latex(function_class("f", 1)(sp.Symbol("u")) ** 2))
    \\left(f'{\\left(u\\right)}\\right)^{2}
    >>> function_class("f") is function_class("f", 0) is function_class(name="f", order=0)
    True
    """
    return _function_class(str(name), int(order))


# Cached: a pure function of its arguments (given positionally, both: one key per function). One
# class per (name, order), so that the f of a layer's forward and the f of a claim about it are the
# same SymPy function (SymPy compares applications by their class); the class holds no state.
@functools.lru_cache(maxsize=4096)
def _function_class(name: str, order: int) -> type[sp.Function]:
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"no derivative of order {order} of {name} (at most {MAX_ORDER})")

    def fdiff(self, argindex=1):
        if argindex != 1 or order >= MAX_ORDER:
            # no name for this derivative: SymPy keeps Derivative(...), which differentiation refuses
            raise ArgumentIndexError(self, argindex)
        return function_class(name, order + 1)(self.args[0])

    def latex(self, printer, exp=None):
        # f'(u), as derivations write it (SymPy would print f_prime as f_{prime})
        head = printer._print(sp.Symbol(name)) + "'" * order
        out = rf"{head}{{\left({printer._print(self.args[0])}\right)}}"
        return rf"\left({out}\right)^{{{exp}}}" if exp else out

    namespace = {
        "nargs": 1,
        "fdiff": fdiff,
        "_latex": latex,
        "_eval_is_extended_real": lambda self: self.args[0].is_extended_real,
        "_eval_is_finite": lambda self: self.args[0].is_finite,
        "__module__": __name__,
        #: which declared function this is, and which derivative of it
        "function_name": name,
        "order": order,
        "__doc__": f"the abstract elementwise function {derivative_name(name, order)} (no rule evaluates it)",
    }
    return type(derivative_name(name, order), (sp.Function,), namespace)


def is_abstract(expr) -> bool:
    """Whether an expression applies an abstract function (or one of its derivatives).

    >>> is_abstract(function_class("f")(sp.Integer(1))), is_abstract(sp.exp(sp.Integer(1)))
    (True, False)
    """
    return isinstance(expr, sp.Function) and type(expr).__module__ == __name__


def abstract_names(expr) -> set[str]:
    """The abstract functions an expression applies, by name (derivatives included).

    >>> u = sp.Symbol("u")
    >>> sorted(abstract_names(function_class("f")(u) + function_class("f", 1)(u)))
    ['f', 'f_prime']
    """
    return {type(e).__name__ for e in sp.preorder_traversal(sp.sympify(expr)) if is_abstract(e)}


__all__ = ["MAX_ORDER", "abstract_names", "derivative_name", "function_class", "is_abstract", "spellings"]
