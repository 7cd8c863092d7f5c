"""Abstract elementwise functions in the core: their SymPy classes, the tree node that applies
them to arrays, and the parser reading them only where a layer declares them."""

from __future__ import annotations

import pytest
import sympy as sp

from symderive.core.functions import MAX_ORDER, abstract_names, function_class, is_abstract, spellings
from symderive.core.ir import index_symbol, leaf, read, size_symbol
from symderive.core.parse import parse_identity, parse_tree
from symderive.core.tree import Apply, Ref, build, to_latex, to_numpy
from symderive.errors import InputError

N = size_symbol("n")
U = sp.Symbol("u", real=True)


def test_each_derivative_is_the_next_class_and_the_last_has_no_rule():
    f = function_class("f")
    assert sp.diff(f(U**2), U) == 2 * U * function_class("f", 1)(U**2)
    assert sp.diff(f(U), U, MAX_ORDER) == function_class("f", MAX_ORDER)(U)
    assert sp.diff(f(U), U, MAX_ORDER + 1).has(sp.Derivative)  # no name: kept unevaluated
    with pytest.raises(ValueError, match="no derivative of order 3"):
        function_class("f", MAX_ORDER + 1)


def test_f_is_opaque_real_and_one_class_per_name():
    f, h = function_class("f"), function_class("h")
    assert f(U) - f(U) == 0 and f(U) != h(U) and f(U) != function_class("f", 1)(U)
    assert f(U).is_real and f(U).is_positive is None and f(sp.Integer(0)) != 0
    assert sp.simplify(f(U) ** 2 - f(U) * f(U)) == 0
    assert is_abstract(f(U)) and not is_abstract(sp.tanh(U))
    assert abstract_names(sp.exp(function_class("f", 2)(U))) == {"f_prime_prime"}
    assert spellings(["f"])["f_prime"] == ("f", 1)


def test_the_tree_node_builds_elementwise_and_has_latex_but_no_numpy_code():
    node = Apply("f", 1, Ref("x"))
    tensor = build(node, {"x": leaf("x", (N,))})
    i = index_symbol("i")
    assert tensor.shape == (N,) and tensor.element((i,)) == function_class("f", 1)(read("x", (i,)))
    assert tensor.at((N,)) == 0  # outside the shape, as every read: not f(0)
    assert to_latex(node) == r"f'\left(x\right)"
    with pytest.raises(NotImplementedError, match="f_prime has no NumPy code"):
        to_numpy(node)


def test_the_parser_reads_f_only_where_it_is_declared():
    assert parse_tree("f(x) + f_prime(x)", {"x": (N,)}, [N], functions=["f"]).op == "add"
    with pytest.raises(InputError, match="unknown function 'f'"):
        parse_tree("f(x)", {"x": (N,)}, [N])
    ident = parse_identity("f(x[i]) == f(x[i])", {"x": (N,)}, [N], functions=["f"])
    assert ident.free == (index_symbol("i"),) and ident.left == ident.right


def test_a_bare_sum_whose_reads_give_one_range_has_no_guard_inside_f():
    from symderive.core.ir import Iverson
    from symderive.core.parse import parse_claim
    from symderive.layer import load_layer

    layer = load_layer("linear")
    body = parse_identity(
        "f(Sum(w[i, k] * x[k], k)) == 0 * b[i]", layer.scope(), list(layer.sizes), functions=["f"]
    ).left
    (inner,) = [a for a in sp.preorder_traversal(body) if is_abstract(a)]
    assert not inner.has(Iverson)
    # two reads of different ranges keep theirs: the sum runs where one of them is in range
    claim = parse_claim("dx[p] == Sum(x[k] * b[k], k)", layer, "x")
    assert claim.body.has(Iverson)
