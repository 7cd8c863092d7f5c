"""symderive audit: the verdict on every entry of small derivation documents, in the styles
people write (subscripts, brackets, parentheses, bounded and unbounded sums, chains, align
rows, LaTeX files), with the typical mistakes (a dropped term, W for W^T, a sign, a missing
flip, an off-by-one shift, a sum bound one too far). Every `does not follow` is confirmed
here by evaluating both sides with hand-written NumPy at the counterexample's sizes and
values; hostile documents end in clear errors or `not checked`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive import cli
from symderive.audit.check import audit
from symderive.errors import InputError

EXAMPLES_LAYERS = Path(__file__).resolve().parents[2] / "symderive" / "layers"
LINEAR = "```toml symderive\nlayer = 'linear'\n```\n"
CONV = "```toml symderive\nlayer = 'conv2d'\n[sizes]\nk_1 = 'kh'\nk_2 = 'kw'\n```\n"
SOFTMAX_CE = "```toml symderive\nlayer = 'softmax_cross_entropy'\n```\n"


def read0(a: np.ndarray, *idx: int) -> float:
    """``a`` at ``idx``, 0 outside its shape (the documents' reading of an out-of-range read)."""
    if any(i < 0 or i >= n for i, n in zip(idx, a.shape, strict=True)):
        return 0.0
    return float(a[idx])


def number(value) -> float:
    """A counterexample's number (an int, a float, or SymPy's printing of an exact value)."""
    return float(sp.N(sp.sympify(value))) if isinstance(value, str) else float(value)


def arrays(cex) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=float) for k, v in cex.values.items()}


def verdicts(result) -> list[tuple[int, str]]:
    return [(e.line, e.verdict) for e in result.entries]


def confirm(entry, left_of, right_of) -> None:
    """The entry's counterexample, checked by NumPy: both sides there are what it says, and differ."""
    cex = entry.counterexample
    assert cex is not None, entry
    values, index = arrays(cex), tuple(cex.index)
    left, right = left_of(values, cex.sizes, *index), right_of(values, cex.sizes, *index)
    assert left == pytest.approx(number(cex.expected)) and right == pytest.approx(number(cex.claimed))
    assert left != pytest.approx(right)


# ---------------------------------------------------------------------------------------
# a fully connected layer: subscripts, a dropped term, W for W^T, a sign

FC = (
    LINEAR
    + r"""
$$y_j = \sum_i w_{ji} x_i + b_j$$

$$y_j = \sum_i w_{ji} x_i$$

$$\frac{\partial L}{\partial x_i} = \sum_j \frac{\partial L}{\partial y_j} w_{ji}$$

$$\frac{\partial L}{\partial x_i} = \sum_j \frac{\partial L}{\partial y_j} w_{ij}$$

$$\frac{\partial L}{\partial w_{ji}} = -\frac{\partial L}{\partial y_j} x_i$$

$$\frac{\partial L}{\partial w_{ji}} = \frac{\partial L}{\partial y_j} x_i$$
"""
)


def test_a_fully_connected_derivation_with_its_typical_mistakes():
    result = audit(FC)
    assert verdicts(result) == [
        (5, "follows"),
        (7, "does not follow"),  # the bias dropped
        (9, "follows"),
        (11, "does not follow"),  # w for w^T
        (13, "does not follow"),  # a sign
        (15, "follows"),
    ]
    assert result.first_wrong == 7
    e = {x.line: x for x in result.entries}
    # y_j = sum_i w_ji x_i + b_j, read at j
    confirm(e[7], lambda v, s, j: read0(v["w"] @ v["x"] + v["b"], j), lambda v, s, j: read0(v["w"] @ v["x"], j))
    # dL/dx = w^T g; the document's sum_j g_j w_ij
    confirm(
        e[11],
        lambda v, s, i: read0(v["w"].T @ v["g"], i),
        lambda v, s, i: sum(read0(v["g"], j) * read0(v["w"], i, j) for j in range(-5, 6)),
    )
    confirm(
        e[13],
        lambda v, s, j, i: read0(np.outer(v["g"], v["x"]), j, i),
        lambda v, s, j, i: -read0(v["g"], j) * read0(v["x"], i),
    )
    fc_variants_hold(e)


# ---------------------------------------------------------------------------------------
# conv2d: brackets, bounded sums, a missing flip, an off-by-one shift


def conv_dx(v: dict, p: int, q: int) -> float:
    """dL/dx of y = correlate(x, w, 'valid') + b, by the chain rule over every output element."""
    g, w = v["g"], v["w"]
    return sum(g[i, j] * read0(w, p - i, q - j) for i in range(g.shape[0]) for j in range(g.shape[1]))


def conv_sum(v: dict, p: int, q: int, shift: tuple[int, int], sign: int) -> float:
    """sum_{m, n} g[p + sign*m + shift, ...] w[m, n] over w's shape (the documents' right sides)."""
    w, g = v["w"], v["g"]
    return sum(
        read0(g, p + sign * m + shift[0], q + sign * n + shift[1]) * w[m, n]
        for m in range(w.shape[0])
        for n in range(w.shape[1])
    )


CONV_DOC = (
    CONV
    + r"""
$$\frac{\partial L}{\partial x[p, q]} = \sum_{m=0}^{k_1-1} \sum_{n=0}^{k_2-1} \frac{\partial L}{\partial y[p-m, q-n]} w[m, n]$$

$$\frac{\partial L}{\partial x[p, q]} = \sum_{m=0}^{k_1-1} \sum_{n=0}^{k_2-1} \frac{\partial L}{\partial y[p+m, q+n]} w[m, n]$$

$$\frac{\partial L}{\partial x[p, q]} = \sum_{m=0}^{k_1-1} \sum_{n=0}^{k_2-1} \frac{\partial L}{\partial y[p-m+1, q-n]} w[m, n]$$
"""
)


def test_a_conv_input_gradient_with_a_missing_flip_and_a_shift():
    result = audit(CONV_DOC)
    assert verdicts(result) == [(8, "follows"), (10, "does not follow"), (12, "does not follow")]
    e = {x.line: x for x in result.entries}
    confirm(e[10], lambda v, s, p, q: conv_dx(v, p, q), lambda v, s, p, q: conv_sum(v, p, q, (0, 0), +1))
    confirm(e[12], lambda v, s, p, q: conv_dx(v, p, q), lambda v, s, p, q: conv_sum(v, p, q, (1, 0), -1))
    conv_variants_hold(e)


# ---------------------------------------------------------------------------------------
# softmax cross-entropy: a sum bound one too far, a sign


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max())
    return e / e.sum()


SCE = (
    SOFTMAX_CE
    + r"""
$$L = -\sum_i t_i s_i + \log \sum_{j=0}^{n-1} e^{s_j}$$

$$L = -\sum_i t_i s_i + \log \sum_{j=0}^{n} e^{s_j}$$

$$\frac{\partial L}{\partial s_k} = \frac{e^{s_k}}{\sum_j e^{s_j}} - t_k$$

$$\frac{\partial L}{\partial s_k} = \frac{e^{s_k}}{\sum_j e^{s_j}} + t_k$$
"""
)


def test_softmax_cross_entropy_with_a_bound_one_too_far_and_a_sign():
    result = audit(SCE)
    assert verdicts(result) == [(5, "follows"), (7, "does not follow"), (9, "follows"), (11, "does not follow")]
    e = {x.line: x for x in result.entries}

    def loss(v, s):
        return float(-np.sum(v["t"] * np.log(softmax(v["s"]))))

    def one_too_far(v, s):
        # s_n is read outside s: 0, so e^{s_n} = 1 is one term too many
        n = len(v["s"])
        return float(-v["t"] @ v["s"] + np.log(sum(np.exp(read0(v["s"], j)) for j in range(n + 1))))

    confirm(e[7], loss, one_too_far)
    confirm(
        e[11],
        lambda v, s, k: float(softmax(v["s"])[k] - v["t"][k]),
        lambda v, s, k: float(softmax(v["s"])[k] + v["t"][k]),
    )
    sce_variants_hold(e)


# ---------------------------------------------------------------------------------------
# a LaTeX file: align rows as a chain, a definition, parenthesis reads


def test_a_latex_chain_whose_second_link_drops_the_flip(tmp_path):
    doc = tmp_path / "chain.tex"
    doc.write_text(
        "\\documentclass{article}\n\\begin{document}\n"
        "% symderive\n% layer = 'conv2d'\n% [sizes]\n% k_1 = 'kh'\n% k_2 = 'kw'\n% end symderive\n"
        "\\begin{align}\n"
        "y(i, j) &= \\sum_{m=0}^{k_1-1} \\sum_{n=0}^{k_2-1} x(i+m, j+n) w(m, n) + b \\\\\n"
        "&= \\sum_{m=0}^{k_1-1} \\sum_{n=0}^{k_2-1} x(i-m, j-n) w(m, n) + b\n"
        "\\end{align}\n"
        "\\end{document}\n",
        encoding="utf-8",
    )
    result = audit(doc)
    links = [k.verdict for e in result.entries for k in e.links]
    assert links == ["follows", "does not follow"]
    wrong = next(e for e in result.entries if e.wrong)
    assert result.first_wrong == wrong.line == 11

    def corr(v, s, i, j):
        x, w = v["x"], v["w"]
        return sum(read0(x, i + m, j + n) * w[m, n] for m in range(w.shape[0]) for n in range(w.shape[1])) + v["b"]

    def conv(v, s, i, j):
        x, w = v["x"], v["w"]
        return sum(read0(x, i - m, j - n) * w[m, n] for m in range(w.shape[0]) for n in range(w.shape[1])) + v["b"]

    confirm(wrong, corr, conv)


# ---------------------------------------------------------------------------------------
# what is not decided is said, never guessed


def test_a_written_out_derivative_is_decided():
    # y = w x + b, so dy_j/dx_i = w[j, i] (by hand); w_{ij} is the transpose, wrong when w is not symmetric
    doc = (
        LINEAR
        + "\n$$\\frac{\\partial y_j}{\\partial x_i} = w_{ji}$$\n\n$$\\frac{\\partial y_j}{\\partial x_i} = w_{ij}$$\n"
    )
    right, wrong = audit(doc).entries
    assert right.verdict == "follows"
    assert wrong.verdict == "does not follow"
    cex = wrong.counterexample
    w = np.array(cex.values["w"], dtype=float)
    at = dict(part.split(" = ") for part in wrong.wrong_link.at.split(", "))
    i, j = int(at["i"]), int(at["j"])

    def read0(a, *idx):  # reads outside an array are 0 (LANGUAGE.md)
        inside = all(0 <= k < n for k, n in zip(idx, a.shape, strict=True))
        return a[idx] if inside else 0.0

    assert float(cex.expected) == read0(w, j, i) and float(cex.claimed) == read0(w, i, j) != read0(w, j, i)


def test_an_assumption_the_prover_cannot_use_leaves_only_proofs():
    doc = (
        "```toml symderive\nlayer = 'softmax_cross_entropy'\nassume = ['t[i] == KroneckerDelta(i, a)']\n"
        "[indices]\na = 'n'\n```\n"
        "$$L = -\\sum_i t_i s_i + \\log \\sum_j e^{s_j}$$\n\n$$L = -s_a + \\log \\sum_j e^{s_j}$$\n"
    )
    first, second = audit(doc).entries
    # proved without the one-hot assumption, so proved with it; the second needs it
    assert first.verdict == "follows"
    assert second.verdict in ("unknown", "not checked") and "cannot use the assumptions" in second.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("$$y_{j = \\sum_i w_{ji} x_i$$", "unbalanced"),
        ("$$\\def\\foo{x} y = w \\foo + b$$", "\\def"),
        ("$$y = " + "(" * 3000 + "x" + ")" * 3000 + "$$", "longer than"),
        ("$$y = " + "(" * 400 + "x" + ")" * 400 + "$$", ""),
        ("$$y = w \\otimes x$$", "\\otimes is not defined"),
        ("$$y_j = w_{j0} x_0 + \\dots + b_j$$", ""),
    ],
)
def test_hostile_displays_are_not_checked_with_a_reason(body, reason):
    (entry,) = audit(LINEAR + body + "\n", timeout=20).entries
    assert entry.verdict in ("not checked", "unknown", "does not follow", "follows")
    if reason:
        assert entry.verdict == "not checked" and reason in entry.reason


def test_a_huge_document_of_prose_is_read_quickly():
    doc = LINEAR + "Some prose about the layer.\n" * 20000 + "$$y = w x + b$$\n"
    (entry,) = audit(doc).entries
    assert entry.verdict == "follows" and entry.line == 20004


def test_input_errors_raise_and_exit_2(tmp_path, capsys):
    with pytest.raises(InputError):
        audit(tmp_path / "missing.md")
    with pytest.raises(InputError):
        audit("```toml symderive\nlayer = 'no_such_layer'\n```\n$$y = x$$\n")
    bad = tmp_path / "bad.md"
    bad.write_text("```toml symderive\nlayer = [unclosed\n```\n$$y = x$$\n", encoding="utf-8")
    latex_input = tmp_path / "input.tex"
    latex_input.write_text("\\input{/etc/passwd}\n\\[ y = x \\]\n", encoding="utf-8")
    for argv in (["audit", str(tmp_path / "missing.md")], ["audit", str(bad)], ["audit", str(bad), "-o", "x.pdf"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    status = cli.main(["audit", str(latex_input)])
    assert status in (2, 3)  # never read as a file, never a crash


# ---------------------------------------------------------------------------------------
# the command line


def test_the_command_prints_verdicts_counterexamples_and_the_first_wrong_step(tmp_path, capsys):
    doc = tmp_path / "fc.md"
    doc.write_text(LINEAR + "\n$$y_j = \\sum_i w_{ji} x_i + b_j$$\n\n$$y_j = \\sum_i w_{ji} x_i$$\n", encoding="utf-8")
    assert cli.main(["audit", str(doc)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == ["line", "5"] and out[1].endswith("follows")
    assert out[2].endswith("does not follow")
    assert out[3].strip().startswith("at sizes") and "left 1, right 0" in out[4]
    assert out[-2] == "first wrong step: line 7"
    assert out[-1] == "2 entries: 1 follows, 1 does not follow"
    assert cli.main(["audit", str(doc), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["verdict"] for r in rows] == ["follows", "does not follow"]
    assert set(rows[1]) == {"line", "latex", "verdict", "links", "counterexample", "reason", "defines", "variant"}
    assert rows[0]["variant"] is None and rows[1]["variant"] is None  # a dropped term has no small fix
    cex = rows[1]["counterexample"]
    w, x, b = (np.array(cex["values"][k], dtype=float) for k in ("w", "x", "b"))
    (j,) = cex["index"]
    assert cex["left"] == read0(w @ x + b, j) and cex["right"] == read0(w @ x, j)


def test_exit_0_when_everything_follows_and_3_when_something_is_not_checked(tmp_path):
    good = tmp_path / "good.md"
    good.write_text(LINEAR + "\n$$y = w x + b$$\n", encoding="utf-8")
    assert cli.main(["audit", str(good)]) == 0
    partial = tmp_path / "partial.md"
    partial.write_text(LINEAR + "\n$$y = w x + b$$\n\n$$y = w \\otimes x$$\n", encoding="utf-8")
    assert cli.main(["audit", str(partial)]) == 3


# ---------------------------------------------------------------------------------------
# several notation blocks: a batched linear layer (bounds past the end, a bound one short,
# W for W^T), then ReLU with indicators; Einstein sums, cases and an exclusion sum

BATCH_RELU = r"""```toml symderive
layer = "linear_batched"
```

$$\frac{\partial L}{\partial w_{oi}} = \sum_n \frac{\partial L}{\partial y_{no}} x_{ni}$$

$$\frac{\partial L}{\partial w_{oi}} = \sum_{n=0}^{N} \frac{\partial L}{\partial y_{no}} x_{ni}$$

$$\frac{\partial L}{\partial x_{ni}} = \sum_o \frac{\partial L}{\partial y_{no}} w_{io}$$

$$\frac{\partial L}{\partial b_o} = \sum_{n=1}^{N-1} \frac{\partial L}{\partial y_{no}}$$

```toml symderive
layer = "relu"
```

$$\frac{\partial L}{\partial x_{nd}} = \frac{\partial L}{\partial y_{nd}} \mathbb{1}(x_{nd} > 0)$$

$$\frac{\partial L}{\partial x_{nd}} = \frac{\partial L}{\partial y_{nd}} \mathbb{1}(x_{nd} \geq 0)$$
"""


@pytest.mark.slow
def test_several_notation_blocks_batched_linear_then_relu():
    result = audit(BATCH_RELU)
    # a bound past the end reads g outside its shape (0): the second entry still follows
    assert verdicts(result) == [
        (5, "follows"),
        (7, "follows"),
        (9, "does not follow"),
        (11, "does not follow"),
        (17, "follows"),
        (19, "does not follow"),
    ]
    e = {x.line: x for x in result.entries}
    confirm(
        e[9],
        lambda v, s, n, i: read0(v["g"] @ v["w"], n, i),
        lambda v, s, n, i: sum(read0(v["g"], n, o) * read0(v["w"], i, o) for o in range(-4, 5)),
    )
    confirm(
        e[11],
        lambda v, s, o: read0(v["g"].sum(axis=0), o),
        lambda v, s, o: sum(read0(v["g"], n, o) for n in range(1, s["N"])),
    )
    # torch.relu's derivative at 0 is 0; the document's indicator x >= 0 says 1
    confirm(
        e[19],
        lambda v, s, n, d: read0(v["g"] * (v["x"] > 0), n, d),
        lambda v, s, n, d: read0(v["g"] * (v["x"] >= 0), n, d),
    )
    batch_variants_hold(e)


SOFTMAX_CASES = r"""```toml symderive
layer = "linear"
einstein = true
```

$$y_j = w_{ji} x_i + b_j$$

```toml symderive
layer = "softmax_cross_entropy"
```

$$L = -\sum_i t_i s_i + \left(t_0 + \sum_{k \neq 0} t_k\right) \log \sum_{j} e^{s_j}$$

$$\frac{\partial L}{\partial s_k} = \begin{cases} \frac{e^{s_k}}{\sum_j e^{s_j}} - t_k & \text{if } k = 0 \\ \frac{e^{s_k}}{\sum_j e^{s_j}} + t_k & \text{otherwise} \end{cases}$$
"""


def test_einstein_sums_exclusion_sums_and_cases():
    result = audit(SOFTMAX_CASES)
    assert verdicts(result) == [(6, "follows"), (12, "follows"), (14, "does not follow")]
    (wrong,) = [e for e in result.entries if e.wrong]
    confirm(
        wrong,
        lambda v, s, k: float(softmax(v["s"])[k] - v["t"][k]),
        lambda v, s, k: float(softmax(v["s"])[k] + (-1 if k == 0 else 1) * v["t"][k]),
    )
    # the second case's sign: softmax - t in both cases (sce_variants_hold checks softmax - t by autograd)
    assert wrong.variant.why == "the sign of t[k] is the other way"
    assert wrong.variant.side.count("- t[k]") == 2 and "+ t[k]" not in wrong.variant.side


# ---------------------------------------------------------------------------------------
# the nearest true variant of a wrong step (issue 16 item 4): what the audit says would hold,
# checked here against hand-written NumPy/SciPy and torch autograd at several non-square sizes

SIZES_2D = [(3, 5, 2, 3), (5, 4, 3, 2), (4, 7, 1, 3), (6, 3, 4, 1)]  # H, W, kh, kw


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def torch_grads(forward, *arrays, upstream=None):
    """The gradients of sum(upstream * forward(*arrays)) (a scalar forward: its own) by torch autograd."""
    import torch

    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = forward(*ts)
    out.backward(None if upstream is None else torch.tensor(upstream, dtype=torch.float64))
    return [t.grad.numpy() for t in ts]


def conv_grads(x: np.ndarray, w: np.ndarray, g: np.ndarray):
    """dx and dw of y = correlate(x, w, 'valid') + b (torch's conv2d is a cross-correlation)."""
    import torch.nn.functional as F

    return torch_grads(lambda x, w: F.conv2d(x[None, None], w[None, None])[0, 0], x, w, upstream=g)


def fc_variants_hold(e: dict) -> None:
    """The FC document's wrong steps: W for W^T and a sign get their variant, a dropped term none."""
    assert e[7].variant is None and e[7].counterexample is not None  # the bias dropped: no small fix
    assert e[11].variant.side == "Sum(g[j] * w[j, i], j)" and "other way round" in e[11].variant.why
    assert e[13].variant.side == "g[j] * x[i]" and e[13].variant.why == "the sign is the other way"
    for seed, (n, m) in enumerate([(3, 2), (2, 5), (4, 1)]):
        rng = _rng(seed)
        w, x, b, g = rng.normal(size=(m, n)), rng.normal(size=n), rng.normal(size=m), rng.normal(size=m)
        dw, dx, _ = torch_grads(lambda w, x, b: w @ x + b, w, x, b, upstream=g)
        # the variants, written out by hand: sum_j g_j w_ji and g_j x_i
        assert np.allclose(dx, [sum(g[j] * w[j, i] for j in range(m)) for i in range(n)])
        assert np.allclose(dw, [[g[j] * x[i] for i in range(n)] for j in range(m)])


def conv_variants_hold(e: dict) -> None:
    """The conv document's missing flip and off-by-one shift get their variant."""
    flip, shift = e[10].variant, e[12].variant
    assert flip.side == "Sum(g[-m + p, -n + q] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1))"
    assert "the sum runs the other way" in flip.why
    assert shift.shift == ("-1", "0") and shift.why == "shifted by (-1, 0)"
    for seed, (h, w_, kh, kw) in enumerate(SIZES_2D):
        rng = _rng(seed)
        x, w, g = rng.normal(size=(h, w_)), rng.normal(size=(kh, kw)), rng.normal(size=(h - kh + 1, w_ - kw + 1))
        dx, _ = conv_grads(x, w, g)
        v = {"w": w, "g": g}
        for p in range(h):
            for q in range(w_):
                # the document's sum with g[p - m, q - n] (the missing flip put back) ...
                assert dx[p, q] == pytest.approx(conv_sum(v, p, q, (0, 0), -1))
                # ... and its off-by-one g[p - m + 1, q - n] read one row up
                assert dx[p, q] == pytest.approx(conv_sum(v, p - 1, q, (1, 0), -1))


def sce_variants_hold(sce: dict) -> None:
    """The softmax-CE document: a sign in a term gets its variant, a bound one too far none."""
    assert sce[7].variant is None  # a sum bound one too far: no small fix
    assert sce[11].variant.side == "exp(s[k]) / Sum(exp(s[j]), j) - t[k]"
    assert sce[11].variant.why == "the sign of t[k] is the other way"
    import torch

    for seed, n in enumerate((2, 3, 5)):
        rng = _rng(seed)
        s, t = rng.normal(size=n), rng.uniform(0.1, 1.0, size=n)
        t /= t.sum()
        (ds,) = torch_grads(lambda s, t=t: -(torch.tensor(t) * torch.log_softmax(s, 0)).sum(), s)
        assert np.allclose(ds, np.exp(s) / np.exp(s).sum() - t)


def batch_variants_hold(e: dict) -> None:
    """The batched linear layer: W for W^T gets its variant, a sum bound one short none."""
    assert e[9].variant.side == "Sum(g[n, o] * w[o, i], o)"
    assert e[11].variant is None and e[11].counterexample is not None
    for seed, (n, i, o) in enumerate([(2, 3, 4), (3, 1, 2)]):
        rng = _rng(seed)
        x, w, b, g = rng.normal(size=(n, i)), rng.normal(size=(o, i)), rng.normal(size=o), rng.normal(size=(n, o))
        dx, _, _ = torch_grads(lambda x, w, b: x @ w.T + b, x, w, b, upstream=g)
        assert np.allclose(dx, [[sum(g[a, c] * w[c, d] for c in range(o)) for d in range(i)] for a in range(n)])


def test_p_minus_t_without_sum_t_one_holds_if_sum_t_is_1(tmp_path):
    layer = (EXAMPLES_LAYERS / "softmax_cross_entropy.toml").read_text(encoding="utf-8")
    (tmp_path / "sce.toml").write_text(layer.replace('assume = ["sum(t) == 1"]\n', ""), encoding="utf-8")
    doc = tmp_path / "ce.md"
    doc.write_text("```toml symderive\nlayer = 'sce.toml'\n```\n\n$$\\frac{\\partial L}{\\partial s_k} = p_k - t_k$$\n")
    (entry,) = audit(doc).entries
    assert entry.verdict == "does not follow"
    assert entry.variant.assume == ("sum(t) == 1",) and entry.variant.explanation == "holds if sum(t) == 1"
    import torch

    rng = _rng(7)
    s, t = rng.normal(size=4), rng.uniform(0.1, 1.0, size=4)
    loss = lambda t: lambda s: -(torch.tensor(t) * torch.log_softmax(s, 0)).sum()  # noqa: E731
    p = np.exp(s) / np.exp(s).sum()
    assert not np.allclose(torch_grads(loss(t), s)[0], p - t)  # any target: p - t is wrong
    assert np.allclose(torch_grads(loss(t / t.sum()), s)[0], p - t / t.sum())  # a distribution: it holds


def test_no_variants_turns_the_search_off(tmp_path, capsys):
    doc = tmp_path / "fc.md"
    transposed = "$$\\frac{\\partial L}{\\partial x_i} = \\sum_j \\frac{\\partial L}{\\partial y_j} w_{ij}$$"
    doc.write_text(LINEAR + "\n$$y_j = \\sum_i w_{ji} x_i + b_j$$\n\n" + transposed + "\n", encoding="utf-8")
    assert cli.main(["audit", str(doc), "--json", "--no-variants"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["verdict"] for r in rows] == ["follows", "does not follow"]
    assert [r["variant"] for r in rows] == [None, None]
    assert cli.main(["audit", str(doc), "--json"]) == 1
    rows = {r["line"]: r for r in (json.loads(line) for line in capsys.readouterr().out.splitlines())}
    assert rows[5]["variant"] is None
    variant = rows[7]["variant"]
    assert variant == {
        "claim": "dx[i] == Sum(g[j] * w[j, i], j)",
        "explanation": variant["explanation"],
        "latex": None,
        "assume": [],
    }
    assert variant["explanation"].startswith("holds with `Sum(g[j] * w[j, i], j)`")
    assert rows[7]["links"][0]["variant"] == variant
    assert cli.main(["audit", str(doc)]) == 1
    assert "            holds with `Sum(g[j] * w[j, i], j)`: the indices of w" in capsys.readouterr().out


DOCUMENTS = Path(__file__).parent / "documents"


@pytest.mark.slow
def test_the_test_documents_typical_mistakes_get_their_variant():
    """A missing flip, an off-by-one shift (conv2d_chain.md), W for W^T (two_layers.md,
    fc_batch.tex) and a sign (softmax_ce.md): each variant, read by hand, checked by autograd."""
    import torch
    import torch.nn.functional as F

    def wrong(name: str) -> dict:
        return {e.line: e.variant for e in audit(DOCUMENTS / name).entries if e.wrong}

    conv, two, batch, sce = (wrong(n) for n in ("conv2d_chain.md", "two_layers.md", "fc_batch.tex", "softmax_ce.md"))
    assert conv[29].side == "Sum(g[-m + p, -n + q] * w[m, n], m, n)"
    assert conv[31].shift == ("-1", "0") and conv[31].side == "Sum(g[i, j] * x[i + m, j + n], i, j)"
    assert two[16].side == "Sum(g[j] * w[j, i], j)"
    assert batch[25].side == "g @ w"
    assert sce[23].side == "-(t[k] - p[k])" and sce[25] is None  # a dropped term: no small fix
    for seed, (h, w_, kh, kw) in enumerate(SIZES_2D):
        rng = _rng(seed)
        x, w, g = rng.normal(size=(h, w_)), rng.normal(size=(kh, kw)), rng.normal(size=(h - kh + 1, w_ - kw + 1))
        dx, dw = conv_grads(x, w, g)
        v = {"x": x, "w": w, "g": g}
        assert np.allclose(dx, [[conv_sum(v, p, q, (0, 0), -1) for q in range(w_)] for p in range(h)])
        by_hand = [[sum(g[i, j] * read0(x, i + m, j + n) for i in range(g.shape[0]) for j in range(g.shape[1]))
                    for n in range(kw)] for m in range(kh)]  # fmt: skip
        assert np.allclose(dw, by_hand)
        n_, i_, o_ = 2 + seed, 3, 4 - seed % 2
        xb, wb, bb, gb = (
            rng.normal(size=(n_, i_)),
            rng.normal(size=(o_, i_)),
            rng.normal(size=o_),
            rng.normal(size=(n_, o_)),
        )
        dxb, _, _ = torch_grads(lambda x, w, b: F.linear(x, w, b), xb, wb, bb, upstream=gb)
        assert np.allclose(dxb, gb @ wb)
        s, t = rng.normal(size=h), rng.uniform(0.1, 1.0, size=h)
        t /= t.sum()
        (ds,) = torch_grads(lambda s, t=t: -(torch.tensor(t) * torch.log_softmax(s, 0)).sum(), s)
        assert np.allclose(ds, -(t - np.exp(s) / np.exp(s).sum()))


@pytest.mark.slow
def test_a_latex_file_gets_its_shifted_variant_written_in_its_own_notation(tmp_path, capsys):
    doc = tmp_path / "notes.tex"
    doc.write_text(
        "\\documentclass{article}\n\\begin{document}\n% symderive\n% layer = 'conv2d'\n% [names]\n% I = 'x'\n"
        "% W = 'w'\n% [sizes]\n% k_1 = 'kh'\n% k_2 = 'kw'\n% [notation]\n% '#1_{\\text{flipped}}' = 'flip(#1)'\n"
        "% end symderive\n"
        "\\[ (W * I)(i, j) = \\sum_{m=0}^{k_1-1} \\sum_{n=0}^{k_2-1} I(i-m, j-n) W(m, n) \\]\n"
        "\\[ (W \\otimes I)(i, j) = \\sum_{m=0}^{k_1-1} \\sum_{n=0}^{k_2-1} I(i+m, j+n) W(m, n) \\]\n"
        "so\n\\[ (W * I)(i, j) = (W_{\\text{flipped}} \\otimes I)(i, j) \\]\n\\end{document}\n",
        encoding="utf-8",
    )
    assert cli.main(["audit", str(doc), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    variant = rows[-1]["variant"]
    assert variant["latex"] == "(W_{\\text{flipped}}\\otimes I)(i - k_1 + 1, j - k_2 + 1)"
    # by hand: (W * I)(i, j) = sum_m I(i - m) W(m); (W_flipped ⊗ I)(a) = sum_m I(a + m) W(kh - 1 - m),
    # which at a = i - kh + 1 is sum_m' I(i - m') W(m') with m' = kh - 1 - m
    rng = _rng(3)
    for h, w_, kh, kw in SIZES_2D:
        x, w = rng.normal(size=(h, w_)), rng.normal(size=(kh, kw))
        for i in range(-kh, h + kh):
            for j in range(-kw, w_ + kw):
                conv = sum(read0(x, i - m, j - n) * w[m, n] for m in range(kh) for n in range(kw))
                a, b = i - kh + 1, j - kw + 1
                shifted = sum(read0(x, a + m, b + n) * w[kh - 1 - m, kw - 1 - n] for m in range(kh) for n in range(kw))
                assert conv == pytest.approx(shifted)
