"""The claim text the reader writes means what the LaTeX means: for plain forward-pass
identities, the text is evaluated by a small interpreter written here and compared with
NumPy/SciPy computing the LaTeX's meaning directly, at random values."""

from __future__ import annotations

import ast
import itertools
import textwrap

import numpy as np
import pytest
import scipy.signal
import scipy.special

from symderive.audit.read import read_document

RNG = np.random.default_rng(7)


class Evaluator:
    """Claim text -> number: reads outside an array are 0; a Sum without bounds runs where one
    of its reads using the index is in range (LANGUAGE.md)."""

    def __init__(self, env: dict):
        self.env = env

    def __call__(self, text: str, **indices):
        return self.eval(ast.parse(text, mode="eval").body, dict(indices), set())

    def eval(self, node, scope, hits):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scope[node.id] if node.id in scope else self.env[node.id]
        if isinstance(node, ast.UnaryOp):
            return -self.eval(node.operand, scope, hits)
        if isinstance(node, ast.BinOp):
            a, b = self.eval(node.left, scope, hits), self.eval(node.right, scope, hits)
            ops = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
            ops |= {ast.Pow: np.power, ast.MatMult: np.matmul}
            return ops[type(node.op)](a, b)
        if isinstance(node, ast.Compare):
            return float(self.eval(node.left, scope, hits) >= self.eval(node.comparators[0], scope, hits))
        if isinstance(node, ast.Attribute):
            return self.eval(node.value, scope, hits).T
        if isinstance(node, ast.Subscript):
            array = np.asarray(self.eval(node.value, scope, hits))
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            where = tuple(int(self.eval(p, scope, hits)) for p in parts)
            inside = all(0 <= k < n for k, n in zip(where, array.shape, strict=True))
            if inside:
                hits.update(n.id for p in parts for n in ast.walk(p) if isinstance(n, ast.Name))
            return array[where] if inside else 0.0
        if isinstance(node, ast.Call):
            f = node.func.id
            if f == "Sum":
                return self.sum(node, scope, hits)
            args = [self.eval(a, scope, hits) for a in node.args]
            table = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "flip": np.flip, "softmax": scipy.special.softmax}
            if f == "KroneckerDelta":
                return float(args[0] == args[1])
            return table[f](*args)
        raise AssertionError(f"the test's evaluator does not know {ast.dump(node)}")

    def sum(self, node, scope, hits):
        body, *ranges = node.args
        total = 0.0
        names = [r.id if isinstance(r, ast.Name) else r.elts[0].id for r in ranges]
        spans = []
        for r in ranges:
            if isinstance(r, ast.Name):
                spans.append(range(-8, 9))
            else:
                low, high = (int(self.eval(e, scope, hits)) for e in r.elts[1:])
                spans.append(range(low, high + 1))
        for values in itertools.product(*spans):
            inner = dict(scope, **dict(zip(names, values, strict=True)))
            seen: set = set()
            term = self.eval(body, inner, seen)
            bare = [n for n, r in zip(names, ranges, strict=True) if isinstance(r, ast.Name)]
            if all(n in seen for n in bare):
                total += term
        return total


def only_link(doc: str, k: int = 0, link: int = 0):
    entries = read_document(textwrap.dedent(doc))
    return entries[k].links[link]


def test_conv_definition_is_scipy_full_convolution():
    x, w = RNG.normal(size=(4, 5)), RNG.normal(size=(2, 3))
    link = only_link(r"""
    ```toml symderive
    layer = "conv2d"
    [sizes]
    k_1 = "kh"
    k_2 = "kw"
    ```
    $$(w * x)(i, j) = \sum_{m=0}^{k_1-1} \sum_{n=0}^{k_2-1} x(i-m, j-n) w(m, n)$$
    """)
    evaluate = Evaluator({"x": x, "w": w, "kh": 2, "kw": 3})
    full = scipy.signal.convolve2d(x, w, mode="full")
    for i, j in itertools.product(range(full.shape[0]), range(full.shape[1])):
        assert evaluate(link.right, i=i, j=j) == pytest.approx(full[i, j])


def test_the_notes_forward_pass_is_scipy_valid_correlation_plus_bias():
    x, w, b = RNG.normal(size=(5, 4)), RNG.normal(size=(3, 2)), 0.7
    entries = read_document(
        textwrap.dedent(r"""
    ```toml symderive
    layer = "conv2d"
    [names]
    I = "x"
    W = "w"
    '\hat{Y}' = "y"
    [sizes]
    W = "W"
    k_1 = "kh"
    k_2 = "kw"
    ```
    $$(W \otimes I)(i, j) = \sum_{m=0}^{k_1-1} \sum_{n=0}^{k_2-1} I(i+m, j+n) W(m, n)$$

    $$\hat{Y} = (W \otimes I)_{(i, j)} + b$$
    """)
    )
    link = entries[1].links[0]
    assert link.left == "y[i, j]"
    evaluate = Evaluator({"x": x, "w": w, "b": b, "kh": 3, "kw": 2})
    valid = scipy.signal.correlate2d(x, w, mode="valid") + b
    for i, j in itertools.product(range(valid.shape[0]), range(valid.shape[1])):
        assert evaluate(link.right, i=i, j=j) == pytest.approx(valid[i, j])


def test_softmax_cross_entropy_sides_are_the_loss():
    s, t = RNG.normal(size=5), np.eye(5)[2]
    entries = read_document(
        textwrap.dedent(r"""
    ```toml symderive
    layer = "softmax_cross_entropy"
    ```
    $$L = -\sum_i t_i \log \left[\frac{e^{s_i}}{\sum_j e^{s_j}} \right] = -\sum_i t_i s_i + \log \sum_j e^{s_j}$$
    """)
    )
    loss = -np.sum(t * np.log(scipy.special.softmax(s)))
    evaluate = Evaluator({"s": s, "t": t})
    for link in entries[0].links:
        assert evaluate(link.right) == pytest.approx(loss)


def test_fc_row_and_matrix_forms_are_numpy_matmul():
    x, w, b = RNG.normal(size=3), RNG.normal(size=(4, 3)), RNG.normal(size=4)
    entries = read_document(
        textwrap.dedent(r"""
    ```toml symderive
    layer = "linear"
    ```
    $$y_j = \sum_i w_{ji} x_i + b_j \quad \text{and} \quad y = w x + b$$
    """)
    )
    evaluate = Evaluator({"x": x, "w": w, "b": b})
    expected = w @ x + b
    for j in range(4):
        assert evaluate(entries[0].links[0].right, j=j) == pytest.approx(expected[j])
    assert evaluate(entries[1].links[0].right) == pytest.approx(expected)


def test_cases_and_a_lower_bound_only_sum():
    s = RNG.normal(size=4)
    entries = read_document(
        textwrap.dedent(r"""
    ```toml symderive
    layer = "softmax_cross_entropy"
    [indices]
    a = "n"
    ```
    $$\frac{\partial L}{\partial s_k} = \begin{cases} \text{if } a=k & -1 + \frac{e^{s_k}}{\sum_j e^{s_j}} \\ \text{else} & \frac{e^{s_k}}{\sum_j e^{s_j}} \end{cases}$$

    $$L = \sum_{j=2} e^{s_j}$$
    """)
    )
    p = scipy.special.softmax(s)
    for a, k in itertools.product(range(4), range(4)):
        got = Evaluator({"s": s, "a": a})(entries[0].links[0].right, k=k)
        assert got == pytest.approx(p[k] - (a == k))
    assert Evaluator({"s": s})(entries[1].links[0].right) == pytest.approx(np.exp(s[2:]).sum())
