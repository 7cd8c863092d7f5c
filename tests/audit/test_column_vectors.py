"""``column_vectors = true`` (DERIVATIONS.md): 1-D arrays are columns, their transposes rows.

The reader's reading of products and transposes is checked against an independent oracle:
the same expression in 2-D matrix algebra with NumPy (a column of length n is an (n, 1)
array, ``@`` and ``.T`` as on paper), at non-square sizes, 1 included. A product whose
dimensions do not match on paper (a column times a column) is `not checked` with the
reason, and the oracle refuses it too. Whole documents are audited and every verdict is
confirmed by the oracle (torch autograd for the true gradients); without the flag the
reading is NumPy's, as before.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.audit import columns
from symderive.audit.check import audit
from symderive.audit.read import read_document
from symderive.audit.symbols import LayerSymbols

SOFTMAX_LAYER = Path(__file__).parent / "documents" / "softmax.toml"
#: the oracle's sizes: non-square, and each size 1 somewhere
SIZES = [{"n": 3, "m": 2, "k": 4}, {"n": 1, "m": 3, "k": 2}, {"n": 2, "m": 1, "k": 1}, {"n": 4, "m": 4, "k": 1}]
RANKS = {"p": 1, "q": 1, "r": 1, "A": 2, "B": 2}
SHAPES = {"p": ("n",), "q": ("n",), "r": ("m",), "A": ("m", "n"), "B": ("n", "k")}


def _symbols(spec, base) -> LayerSymbols:
    return LayerSymbols("vectors", shapes=SHAPES, ranks=RANKS, sizes=frozenset("nmk"))


def _header(flag: bool) -> str:
    return f"```toml symderive\nlayer = 'vectors'\ncolumn_vectors = {'true' if flag else 'false'}\n[names]\n'\\sigma' = \"p\"\n```\n"


def _read(entries: list[str], flag: bool = True):
    # a notation block before each entry: each defines u afresh
    doc = "".join(f"{_header(flag)}\n$${e}$$\n\n" for e in entries)
    return read_document(doc, layers=_symbols)


def _draw(sizes: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=tuple(sizes[s] for s in shape)) for name, shape in SHAPES.items()}


def _columns(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The oracle's operands: vectors as (n, 1) columns, matrices as they are."""
    return {k: v.reshape(-1, 1) if v.ndim == 1 else v for k, v in values.items()}


def _evaluate(text: str, values: dict[str, np.ndarray]):
    """A reading (claim language, NumPy) evaluated on the test's arrays."""
    names = {"outer": np.outer, "dot": np.dot, "diag": np.diag, "ones": np.ones, "eye": np.eye, **values}
    return np.asarray(eval(compile(text, "<reading>", "eval"), {"__builtins__": {}}, names))  # noqa: S307


def _orientation(text: str) -> str | None:
    scope = columns.Scope(lambda n: RANKS.get(n, 0))
    return columns.orientation(ast.parse(text, mode="eval").body, scope)


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A matrix product on paper: refused when the inner dimensions differ."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{a.shape} times {b.shape}")
    return a @ b


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A sum (or elementwise product's operands) on paper: the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{a.shape} plus {b.shape}")
    return a + b


def _times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An elementwise product on paper: the same shape."""
    return _add(a, 0 * b) * b


def _scalar(a: np.ndarray) -> float:
    """A 1 x 1 product (a row times a column) as the number it is."""
    assert a.shape == (1, 1)
    return float(a[0, 0])


# (LaTeX, the same on paper with (n, 1) columns P, Q, R and matrices A, B)
PRODUCTS = [
    ("p q^T", lambda o: _mm(o["p"], o["q"].T)),
    ("p^T q", lambda o: _scalar(_mm(o["p"].T, o["q"]))),
    ("\\sigma \\sigma^T", lambda o: _mm(o["p"], o["p"].T)),
    ("\\sigma^\\top \\sigma", lambda o: _scalar(_mm(o["p"].T, o["p"]))),
    ("A p", lambda o: _mm(o["A"], o["p"])),
    ("p^T A^T", lambda o: _mm(o["p"].T, o["A"].T)),
    ("r^T A", lambda o: _mm(o["r"].T, o["A"])),
    ("(r^T A)^T", lambda o: _mm(o["r"].T, o["A"]).T),
    ("A^T r", lambda o: _mm(o["A"].T, o["r"])),
    ("(p^T)^T", lambda o: o["p"]),
    ("((p^T)^T)^T", lambda o: o["p"].T),
    ("r r^T A", lambda o: _mm(_mm(o["r"], o["r"].T), o["A"])),
    ("A p q^T", lambda o: _mm(_mm(o["A"], o["p"]), o["q"].T)),
    ("p^T q r", lambda o: _scalar(_mm(o["p"].T, o["q"])) * o["r"]),
    ("(q^T p) p", lambda o: _scalar(_mm(o["q"].T, o["p"])) * o["p"]),
    ("r^T A p", lambda o: _scalar(_mm(_mm(o["r"].T, o["A"]), o["p"]))),
    ("A^T r p^T", lambda o: _mm(_mm(o["A"].T, o["r"]), o["p"].T)),
    ("p^T A^T A q", lambda o: _scalar(_mm(_mm(_mm(o["p"].T, o["A"].T), o["A"]), o["q"]))),
    ("2 p^T", lambda o: 2 * o["p"].T),
    ("p^T + q^T", lambda o: _add(o["p"].T, o["q"].T)),
    ("p^T - 3 q^T A^T A", lambda o: _add(o["p"].T, -3 * _mm(_mm(o["q"].T, o["A"].T), o["A"]))),
    ("A B", lambda o: _mm(o["A"], o["B"])),
    ("B^T p", lambda o: _mm(o["B"].T, o["p"])),
    ("p^T B", lambda o: _mm(o["p"].T, o["B"])),
    ("\\mathrm{diag}(p) - p p^T", lambda o: _add(np.diag(o["p"][:, 0]), -_mm(o["p"], o["p"].T))),
    ("p^T \\odot q^T", lambda o: _times(o["p"].T, o["q"].T)),
    ("p \\cdot q^T", lambda o: _mm(o["p"], o["q"].T)),
    ("(p q^T) p", lambda o: _mm(_mm(o["p"], o["q"].T), o["p"])),
    ("\\frac{p p^T}{p^T p}", lambda o: _mm(o["p"], o["p"].T) / _scalar(_mm(o["p"].T, o["p"]))),
]

# products, sums and elementwise products whose dimensions do not match on paper (n, m, k >= 2)
MISMATCHES = [
    ("p q", lambda o: _mm(o["p"], o["q"])),
    ("p^T q^T", lambda o: _mm(o["p"].T, o["q"].T)),
    ("\\sigma \\sigma", lambda o: _mm(o["p"], o["p"])),
    ("p A", lambda o: _mm(o["p"], o["A"])),
    ("A p^T", lambda o: _mm(o["A"], o["p"].T)),
    ("p + p^T", lambda o: _add(o["p"], o["p"].T)),
    ("A + r", lambda o: _add(o["A"], o["r"])),
    ("p \\odot q^T", lambda o: _times(o["p"], o["q"].T)),
    ("r^T A + p", lambda o: _add(_mm(o["r"].T, o["A"]), o["p"])),
]


def _agrees(reading: str, oracle, values: dict[str, np.ndarray]) -> bool:
    """The reading (NumPy, 1-D vectors) is the oracle's matrix: same shape on paper, same numbers."""
    value, kind = _evaluate(reading, values), _orientation(reading)
    truth = np.asarray(oracle(_columns(values)))
    if kind == columns.SCALAR:
        return value.ndim == 0 and truth.ndim == 0 and np.isclose(value, truth)
    if kind == columns.COLUMN:
        return value.ndim == 1 and truth.shape == (value.size, 1) and np.allclose(value, truth[:, 0])
    if kind == columns.ROW:
        return value.ndim == 1 and truth.shape == (1, value.size) and np.allclose(value, truth[0])
    return kind == columns.MATRIX and value.shape == truth.shape and np.allclose(value, truth)


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "n{n}m{m}k{k}".format(**s))
def test_each_product_is_read_as_on_paper(sizes):
    entries = _read([f"u = {latex}" for latex, _ in PRODUCTS])
    assert [e.status for e in entries] == ["definition"] * len(PRODUCTS), [(e.latex, e.reason) for e in entries]
    for seed in range(2):
        values = _draw(sizes, seed)
        for (latex, oracle), entry in zip(PRODUCTS, entries, strict=True):
            reading = entry.links[0].right
            assert _agrees(reading, oracle, values), (latex, reading, sizes)


def test_the_outer_and_dot_products_are_written_as_such():
    readings = [e.links[0].right for e in _read(["u = p q^T", "u = p^T q", "u = r^T A", "u = A p"])]
    assert readings[0].startswith("outer(") and readings[1].startswith("dot(")
    assert "@" in readings[2] and "@" in readings[3]


@pytest.mark.parametrize("latex, oracle", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_a_product_that_does_not_match_is_not_checked_with_the_reason(latex, oracle):
    (entry,) = _read([f"p = {latex}"])
    assert entry.status == "not checked"
    assert "do not match" in entry.reason, entry.reason
    # on paper too: the oracle refuses it at sizes 2 and more
    with pytest.raises(ValueError):
        oracle(_columns(_draw({"n": 2, "m": 3, "k": 4}, 0)))


def test_a_row_equated_to_a_column_keeps_its_shape():
    row_for_column, column_again, sum_of_rows = _read(["p = p^T", "p = (p^T)^T", "p = \\sum_i q_i p^T"])
    link = row_for_column.links[0]
    values = _draw({"n": 3, "m": 2, "k": 1}, 0)
    # a (3, 1) column against a (1, 3) row: the shapes differ as on paper
    assert _evaluate(link.left, values).shape == (3, 1)
    assert _evaluate(link.right, values).shape == (1, 3)
    assert (column_again.links[0].left, column_again.links[0].right) == ("p", "p.T.T")
    # a sum over an index of rows is a row
    assert sum_of_rows.links[0].left == "outer(p, ones(1))", sum_of_rows.links[0]


def test_without_the_flag_a_vector_transpose_is_the_vector_itself():
    """NumPy's rules, as before: ``p q^T`` is p @ q (a number), ``p q`` is read too."""
    latexes = ["p q^T", "p^T q", "p q", "A p", "p^T A^T", "\\sigma \\sigma^T", "r^T A p"]
    entries = _read([f"u = {latex}" for latex in latexes], flag=False)
    readings = [e.links[0].right for e in entries]
    assert not any("outer" in r or "dot" in r for r in readings)
    values = _draw({"n": 3, "m": 2, "k": 1}, 1)
    p, q, r, A = values["p"], values["q"], values["r"], values["A"]
    numpy = [np.matmul(p, q.T), np.matmul(p.T, q), np.matmul(p, q), A @ p, p.T @ A.T, p @ p.T, (r.T @ A) @ p]
    for latex, reading, truth in zip(latexes, readings, numpy, strict=True):
        assert np.allclose(_evaluate(reading, values), truth), (latex, reading)


# ---------------------------------------------------------------------------------------
# whole documents, audited; every verdict confirmed by the oracle

LINEAR = """```toml symderive
layer = "linear"
column_vectors = true
[names]
W = "w"
```

$$y = W x + b$$

$$\\frac{\\partial L}{\\partial x} = W^T \\frac{\\partial L}{\\partial y}$$

$$\\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial y}^T W$$

$$\\frac{\\partial L}{\\partial x} = \\left(\\frac{\\partial L}{\\partial y}^T W\\right)^T$$

$$\\frac{\\partial L}{\\partial W} = \\frac{\\partial L}{\\partial y} x^T$$

$$\\frac{\\partial L}{\\partial W} = x \\frac{\\partial L}{\\partial y}^T$$

$$\\frac{\\partial L}{\\partial W} = \\frac{\\partial L}{\\partial y}^T x$$

$$\\frac{\\partial L}{\\partial x} = W \\frac{\\partial L}{\\partial y}$$

$$\\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial y} W$$

$$y = x^T W^T + b^T$$

$$\\frac{\\partial L}{\\partial b} = \\frac{\\partial L}{\\partial y}$$
"""

SOFTMAX = f"""```toml symderive
layer = "{SOFTMAX_LAYER.as_posix()}"
column_vectors = true
[names]
'\\sigma' = "y"
```

$$\\frac{{\\partial \\sigma}}{{\\partial s}} = \\mathrm{{diag}}(\\sigma) - \\sigma \\sigma^T$$

$$\\frac{{\\partial \\sigma}}{{\\partial s}} = \\mathrm{{diag}}(\\sigma) - \\sigma^T \\sigma$$

$$\\frac{{\\partial \\sigma}}{{\\partial s}} = \\mathrm{{diag}}(\\sigma) + \\sigma \\sigma^T$$

$$\\frac{{\\partial L}}{{\\partial s}} = (\\mathrm{{diag}}(\\sigma) - \\sigma \\sigma^T) \\frac{{\\partial L}}{{\\partial \\sigma}}$$

$$\\frac{{\\partial L}}{{\\partial s}} = \\sigma \\odot \\left(\\frac{{\\partial L}}{{\\partial \\sigma}} - \\sigma^T \\frac{{\\partial L}}{{\\partial \\sigma}}\\right)$$

$$\\frac{{\\partial L}}{{\\partial s}} = \\frac{{\\partial L}}{{\\partial \\sigma}}^T (\\mathrm{{diag}}(\\sigma) - \\sigma \\sigma^T)$$

$$\\frac{{\\partial L}}{{\\partial s}} = \\sigma \\sigma^T \\frac{{\\partial L}}{{\\partial \\sigma}}$$

$$\\frac{{\\partial L}}{{\\partial s}} = \\sigma \\sigma \\frac{{\\partial L}}{{\\partial \\sigma}}$$
"""


def _linear_truth(v: dict) -> dict[str, np.ndarray]:
    """y and the gradients of L = sum(g * y) by torch autograd, vectors as (n, 1) columns."""
    x, w, b = (torch.tensor(v[k], dtype=torch.float64, requires_grad=True) for k in ("x", "w", "b"))
    y = w @ x + b
    dx, dw, db = torch.autograd.grad((torch.tensor(v["g"]) * y).sum(), (x, w, b))
    out = {"y": y.detach(), "dx": dx, "dw": dw, "db": db}
    return _columns({k: t.numpy() for k, t in out.items()} | v)


def _softmax_truth(v: dict) -> dict[str, np.ndarray]:
    s = torch.tensor(v["s"], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, 0), s).numpy()
    y = torch.softmax(s, 0).numpy()
    return _columns({"y": y, "jac": jac, "ds": jac.T @ v["g"]}) | {"s": v["s"], "g": v["g"].reshape(-1, 1)}


def _diag(c: np.ndarray) -> np.ndarray:
    return np.diag(c[:, 0])


# line -> (verdict, oracle: truth -> (left, right) on paper); a product refused on paper raises
LINEAR_STEPS = {
    8: ("follows", lambda t: (t["y"], _add(_mm(t["w"], t["x"]), t["b"]))),
    10: ("follows", lambda t: (t["dx"], _mm(t["w"].T, t["g"]))),
    12: ("does not follow", lambda t: (t["dx"], _mm(t["g"].T, t["w"]))),  # a row for a column
    14: ("follows", lambda t: (t["dx"], _mm(t["g"].T, t["w"]).T)),
    16: ("follows", lambda t: (t["dw"], _mm(t["g"], t["x"].T))),
    18: ("does not follow", lambda t: (t["dw"], _mm(t["x"], t["g"].T))),  # (n, m) for (m, n)
    20: ("does not follow", lambda t: (t["dw"], np.asarray(_scalar(_mm(t["g"].T, t["x"]))))),  # a number
    22: ("does not follow", lambda t: (t["dx"], _mm(t["w"], t["g"]))),  # W for W^T
    24: ("not checked", lambda t: (t["dx"], _mm(t["g"], t["w"]))),
    26: ("does not follow", lambda t: (t["y"], _add(_mm(t["x"].T, t["w"].T), t["b"].T))),
    28: ("follows", lambda t: (t["db"], t["g"])),
}

SOFTMAX_STEPS = {
    8: ("follows", lambda t: (t["jac"], _add(_diag(t["y"]), -_mm(t["y"], t["y"].T)))),
    10: ("does not follow", lambda t: (t["jac"], _diag(t["y"]) - _scalar(_mm(t["y"].T, t["y"])))),
    12: ("does not follow", lambda t: (t["jac"], _add(_diag(t["y"]), _mm(t["y"], t["y"].T)))),
    14: ("follows", lambda t: (t["ds"], _mm(_add(_diag(t["y"]), -_mm(t["y"], t["y"].T)), t["g"]))),
    16: ("follows", lambda t: (t["ds"], t["y"] * (t["g"] - _scalar(_mm(t["y"].T, t["g"]))))),
    18: ("does not follow", lambda t: (t["ds"], _mm(t["g"].T, _add(_diag(t["y"]), -_mm(t["y"], t["y"].T))))),
    20: ("does not follow", lambda t: (t["ds"], _mm(_mm(t["y"], t["y"].T), t["g"]))),
    22: ("not checked", lambda t: (t["ds"], _mm(_mm(t["y"], t["y"]), t["g"]))),
}


def _draw_linear(rng, sizes):
    n, m = sizes["n"], sizes["m"]
    return {"x": rng.normal(size=n), "w": rng.normal(size=(m, n)), "b": rng.normal(size=m), "g": rng.normal(size=m)}


def _draw_softmax(rng, sizes):
    return {"s": rng.normal(size=sizes["n"]), "g": rng.normal(size=sizes["n"])}


CASES = [
    ("linear", LINEAR, LINEAR_STEPS, _linear_truth, _draw_linear),
    ("softmax", SOFTMAX, SOFTMAX_STEPS, _softmax_truth, _draw_softmax),
]


def _holds(oracle, truth) -> bool:
    try:
        left, right = (np.asarray(a, dtype=float) for a in oracle(truth))
    except ValueError:
        return False
    return left.shape == right.shape and np.allclose(left, right)


def _number(value) -> float:
    return float(sp.N(sp.sympify(value))) if isinstance(value, str) else float(value)


def _at(a: np.ndarray, index) -> float:
    """An element of the oracle's matrix at a claim's index (a column or row read with one)."""
    a = np.asarray(a, dtype=float)
    return float((a.ravel() if a.ndim == 2 and len(index) == 1 else a)[tuple(index)])


@pytest.mark.slow
@pytest.mark.parametrize("name, doc, steps, truth, draw", CASES, ids=[c[0] for c in CASES])
def test_every_verdict_under_column_vectors_is_the_oracles(name, doc, steps, truth, draw, tmp_path):
    path = tmp_path / f"{name}.md"
    path.write_text(doc, encoding="utf-8")
    result = audit(path, timeout=30)
    assert {e.line: e.verdict for e in result.entries} == {line: s[0] for line, s in steps.items()}
    rng = np.random.default_rng(7)
    draws = [(sizes, draw(rng, sizes)) for sizes, _ in itertools.product(SIZES, range(2))]
    for e in result.entries:
        _, oracle = steps[e.line]
        held = [_holds(oracle, truth(values)) for _, values in draws]
        if e.verdict == "follows":
            assert all(held), (name, e.line)
            continue
        assert not all(held), (name, e.line, "the oracle finds this step true")
        if e.verdict == "not checked":
            assert "do not match" in e.reason, (e.line, e.reason)
            continue
        cex = e.counterexample
        if cex.is_shape_mismatch:
            values = cex.values or draw(rng, cex.sizes)
            try:
                left, right = oracle(truth({k: np.asarray(v, dtype=float) for k, v in values.items()}))
            except ValueError:
                assert cex.claimed_shape is None, e.line  # refused on paper, no value in NumPy
                continue
            assert tuple(cex.expected_shape) == np.shape(left), e.line
            assert tuple(cex.claimed_shape) == np.shape(right) != np.shape(left), e.line
            continue
        values = {k: np.vectorize(_number, otypes=[float])(np.array(v, dtype=object)) for k, v in cex.values.items()}
        left, right = oracle(truth(values))
        assert _at(left, cex.index) == pytest.approx(_number(cex.expected), abs=1e-9), e.line
        assert _at(right, cex.index) == pytest.approx(_number(cex.claimed), abs=1e-9), e.line
        assert _at(left, cex.index) != pytest.approx(_at(right, cex.index), abs=1e-9), e.line


def test_an_expression_too_deep_to_orient_is_not_checked_never_an_error():
    (entry,) = _read(["p = " + " + ".join(["q^T"] * 400)])
    assert entry.status == "not checked"
    assert "nested too deeply" in entry.reason, entry.reason


@pytest.mark.slow  # an audit with its variant search: about 10 s
def test_a_row_where_a_column_belongs_gets_its_transpose_as_the_variant():
    # the variant is shown as the vector transposed, not as the (1, n) and (n, 1) matrices the comparison
    # uses; what it says is checked in 2-D matrix algebra against torch autograd of y = W x + b
    doc = (
        LINEAR.split("$$y = W x + b$$")[0]
        + "$$\\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial y}^T W$$\n"
    )
    (entry,) = audit(doc).entries
    assert entry.verdict == "does not follow"
    variant = entry.variant
    assert (variant.side, variant.why) == ("(g.T @ w).T", "a row vector where a column belongs: its transpose holds")
    rng = np.random.default_rng(3)
    for n, m in ((3, 2), (1, 4), (2, 1)):
        w, x, b, g = (rng.standard_normal(s) for s in ((m, n), (n,), (m,), (m,)))
        tw, tx = torch.tensor(w, requires_grad=True), torch.tensor(x, requires_grad=True)
        (dx,) = torch.autograd.grad(tw @ tx + torch.tensor(b), [tx], torch.tensor(g))
        on_paper = eval(variant.side, {"__builtins__": {}}, {"g": g.reshape(-1, 1), "w": w})  # noqa: S307
        assert on_paper.shape == (n, 1)
        np.testing.assert_allclose(on_paper[:, 0], dx.numpy(), rtol=1e-12, atol=1e-12)


BRACKET_STEPS = [
    "\\frac{\\partial L}{\\partial x_i} = (W^T g)_i",
    "\\frac{\\partial L}{\\partial x_i} = \\left(W^T g\\right)_{i}",
    "\\frac{\\partial L}{\\partial x_i} = (g^T W)_i",
    "\\frac{\\partial L}{\\partial W_{ij}} = (g x^T)_{ij}",
    "\\frac{\\partial L}{\\partial W_{ij}} = (x g^T)_{ji}",
    "\\frac{\\partial L}{\\partial W_{ij}} = (x g^T)_{ij}",
    "\\frac{\\partial L}{\\partial W_{ij}} = (g x^T)_{ji}",
    "\\frac{\\partial L}{\\partial x_i} = 2 (W^T g)_i",
]


@pytest.mark.parametrize("flag", [True, False])
def test_an_element_of_a_bracket_is_read_and_its_verdict_is_autograds(flag):
    # (W^T g)_i, (g x^T)_{ij}: the bracket's array read at the subscript. Each reading is evaluated by NumPy
    # (rows and columns as 2-D arrays under the flag) on non-square sizes and compared with torch autograd of
    # y = W x + b: a step follows exactly when the reading is the gradient at every size
    header = LINEAR.split("$$y = W x + b$$")[0].replace("[names]\n", '[names]\ng = "g"\n')
    if not flag:
        header = header.replace("column_vectors = true", "column_vectors = false")
    doc = header + "".join(f"$${step}$$\n\n" for step in BRACKET_STEPS)
    entries = audit(doc, variants=False).entries
    assert len(entries) == len(BRACKET_STEPS)
    rng = np.random.default_rng(11)
    for entry in entries:
        (link,) = entry.links
        if entry.verdict == "not checked":
            # without the flag g x^T is NumPy's g @ x, a number: its element is refused, never guessed
            assert not flag and ("x.T" in link.right or "g.T" in link.right), (entry.latex, link.reason)
            continue
        wrt = "x" if link.left.startswith("dx") else "w"
        agrees = []
        for n, m in ((3, 2), (2, 4), (1, 3)):
            w, x, b, g = (rng.standard_normal(s) for s in ((m, n), (n,), (m,), (m,)))
            tw, tx = torch.tensor(w, requires_grad=True), torch.tensor(x, requires_grad=True)
            grads = dict(
                zip("wx", torch.autograd.grad(tw @ tx + torch.tensor(b), [tw, tx], torch.tensor(g)), strict=True)
            )
            names = {"outer": np.outer, "dot": np.dot, "w": w, "x": x, "g": g}
            matrix = np.empty(grads[wrt].shape)
            try:
                for idx in np.ndindex(*matrix.shape):
                    names.update(dict(zip("ij", idx, strict=False)))
                    matrix[idx] = eval(link.right, {"__builtins__": {}}, names)  # noqa: S307
            except (IndexError, ValueError):  # a read outside the array: not the gradient at this size
                agrees.append(False)
                continue
            agrees.append(np.allclose(matrix, grads[wrt].numpy(), rtol=1e-12, atol=1e-12))
        expected = "follows" if all(agrees) else "does not follow"
        assert entry.verdict == expected, (entry.latex, link.right, agrees)
