"""The two example documents of examples/derivations: which entries are read and what each
becomes (the table is the LaTeX read by hand), and what is `not checked` and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from symderive.audit.read import read_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "derivations"
NOTES = EXAMPLES / "cnn_backprop_notes.md"
PA5 = EXAMPLES / "pa5_conv_fc_softmax.md"


def line_of(path: Path, fragment: str, occurrence: int = 1) -> int:
    hits = [n for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1) if fragment in line]
    return hits[occurrence - 1]


def table(entries) -> dict[int, list]:
    out: dict[int, list] = {}
    for e in entries:
        out.setdefault(e.line, []).append(
            (e.status, [(k.left, k.right) if k.status != "not checked" else ("not checked", k.reason) for k in e.links])
        )
    return out


CONV_DEF = "Sum(x[i - m, j - n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1))"
CORR = "Sum(x[i + m, j + n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1))"
DW_CHAIN = "Sum(g[i, j] * diff(y[i, j], w[m_prime, n_prime]), (i, 0, H - kh), (j, 0, W - kw))"
DW = "Sum(g[i, j] * x[i + m_prime, j + n_prime], (i, 0, H - kh), (j, 0, W - kw))"
DW_LOWER = "Sum(x[m_prime + i, n_prime + j] * g[i, j] * (j >= 0) * (i >= 0), i, j)"
DW_CORR = "Sum(x[m_prime + m, n_prime + n] * g[m, n], m, n)"
DW_FLIPPED = "Sum(x[m_prime - m, n_prime - n] * flip(g)[m, n], m, n)"
DY_DX = "diff(y[i_prime - m, j_prime - n], x[i_prime, j_prime])"
DX = "Sum(g[i_prime - m, j_prime - n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1))"


def test_the_spanish_cnn_notes_entry_by_entry():
    got = table(read_document(NOTES))
    at = lambda fragment, k=1: line_of(NOTES, fragment, k)  # noqa: E731
    expected = {
        at("$$I(H, W)$$"): [("not an equation", [])],
        at("$$(W * I)(i, j) = \\sum"): [("definition", [("(W*I)(i,j)", CONV_DEF)])],
        at("$$(W \\otimes I)(i, j) = \\sum"): [("definition", [("(W\\otimes I)(i,j)", CORR)])],
        # the false flip identity: both sides read, the decision side refutes it
        at("W_{\\text{flipped}}"): [
            ("read", [(CONV_DEF, "Sum(x[i + m, j + n] * flip(w)[m, n], (m, 0, kh - 1), (n, 0, kw - 1))")])
        ],
        at("$$\\hat{Y} = "): [("read", [("y[i, j]", CORR + " + b"), (CORR + " + b", CORR + " + b")])],
        at("$$L(Y, \\hat{Y})$$"): [("not an equation", [])],
        at("\\text{Xa pasar"): [("not an equation", [])],
        at("underbrace{\\frac{\\partial L}{\\partial Y(i, j)}"): [("read", [("dw[m_prime, n_prime]", DW_CHAIN)])],
        at("= \\frac{\\partial}{\\partial w(m', n')} \\left[I(i+m'"): [
            ("not checked", [("not checked", "a schematic expression (\\dots) is not checked: \\dots")])
        ],
        at("= I(i+m', j+n') \\quad"): [
            ("read", [("diff(y[i, j], w[m_prime, n_prime])", "x[i + m_prime, j + n_prime]")])
        ],
        at("\\cdot I(i+m', j+n')$$"): [("read", [("dw[m_prime, n_prime]", DW)])],
        at("\\sum_{i=0} \\sum_{j=0}"): [("read", [("dw[m_prime, n_prime]", DW_LOWER)])],
        at("\\otimes I(m', n') = "): [("read", [(DW_LOWER, DW_CORR), (DW_CORR, DW_FLIPPED)])],
        # the wrong boxed dL/dw
        at("\\boxed"): [("read", [("dw[m_prime, n_prime]", DW_FLIPPED)])],
        at("\\underbrace{\\frac{\\partial L}{\\partial \\hat{Y}}}_{\\text{conocido}}"): [
            (
                "not checked",
                [
                    (
                        "not checked",
                        "a product of whole-tensor derivatives (the chain rule with Jacobians) is not read: "
                        "write it with indices: \\underbrace{\\frac{\\partial L}{\\partial\\hat{Y}}}_{\\text{conocido}}"
                        "\\underbrace{\\frac{\\partial\\hat{Y}}{\\partial I}}_{\\text{a conocer}}",
                    )
                ],
            )
        ],
        at("$$I(i'-m+m, j'-n+n) = I(i', j')$$"): [
            ("read", [("x[i_prime - m + m, j_prime - n + n]", "x[i_prime, j_prime]")])
        ],
        # the schematic step is skipped: the next entry continues from the last side read
        at("$$= \\omega(m, n)"): [("read", [(DY_DX, "w[m, n]")])],
        at("\\cdot \\omega(m, n)$$"): [("read", [("dx[i_prime, j_prime]", DX)])],
        at("\\omega(i', j') *"): [("read", [("dx[i_prime, j_prime]", DX)])],
    }
    for line, entries in expected.items():
        assert got[line] == entries, line
    statuses = [e.status for e in read_document(NOTES)]
    assert statuses.count("not checked") == 3  # the two schematic steps and the product of Jacobians


ORIGIN = EXAMPLES / "pa5_origin_flip.toml"
CENTRE = EXAMPLES / "pa5_centre_flip.toml"
EQ_B = "Sum(w[e - a, f - b] * x[a, b], a, b)"


def test_the_pa5_write_up_under_the_origin_flip_reading():
    got = table(read_document(PA5, notation=ORIGIN))
    at = lambda fragment, k=1: line_of(PA5, fragment, k)  # noqa: E731
    expected = {
        at("\\text{Eq. 3}"): [("read", [("dx[a, b]", "Sum(g[e, f] * diff(y[e, f], x[a, b]), e, f)")])],
        at("\\text{Eq. A}"): [("read", [("dx[e, f]", "Sum(g[e - a, f - b] * w[-a, -b], a, b)")])],
        at("\\text{Eq. B}"): [("read", [("y[e, f]", EQ_B)])],
        at("\\text{Eq. C}"): [("read", [("y[e, f]", "Sum(w[a, b] * x[e - a, f - b], a, b)")])],
        at("\\text{Eq. D}"): [("read", [("diff(y[e, f], x[a, b])", "w[e - a, f - b]")])],
        at("\\text{Eq. E}"): [("read", [("dx[a, b]", "Sum(g[e, f] * w[e - a, f - b], e, f)")])],
        at("\\text{Eq. F}"): [("read", [("y[a, b]", "Sum(x[e, f] * w[a - e, b - f], e, f)")])],
        at("\\partial y} * \\tilde{w}$$"): [("read", [("dx[e, f]", "Sum(g[e - a, f - b] * w[-a, -b], a, b)")])],
        at("y = w * x \\quad"): [
            ("read", [("y[e, f]", EQ_B)]),
            ("read", [("y[e, f]", "Sum(x[e - a, f - b] * w[a, b], a, b)")]),
        ],
        at("\\text{Eq. H}"): [("read", [("diff(y[e, f], w[a, b])", "x[e - a, f - b]")])],
        at("\\text{Eq. J}"): [("read", [("dw[a, b]", "Sum(g[e, f] * x[e - a, f - b], e, f)")])],
        at("* \\tilde{x}"): [("read", [("dw[e, f]", "Sum(g[e - a, f - b] * x[-a, -b], a, b)")])],
        at("(2) \\quad"): [("read", [("y[j]", "Sum(w[j, i] * x[i], i)")])],
        at("(3) \\quad"): [("read", [("dx[i]", "Sum(g[j] * diff(y[j], x[i]), j)")])],
        at("\\leftarrow"): [("read", [("diff(y[j], x[i])", "w[j, i]")])],
        at("= w^T"): [("read", [("dx", "w.T @ g")])],
        at("$$L = -s_a"): [("read", [("L", "-s[a] + log(Sum(exp(s[j]), j))")])],
        at("= p - t$$"): [("read", [("ds", "softmax(s) - t")])],
    }
    for line, entries in expected.items():
        assert got[line] == entries, line
    cases = got[at("begin{cases} \\text{if } a=k")][0]
    softmax_k = "exp(s[k]) / Sum(exp(s[j]), j)"
    assert cases[1][0] == (
        "ds[k]",
        f"KroneckerDelta(a, k) * (-1 + {softmax_k}) + (1 - KroneckerDelta(a, k)) * (0 + {softmax_k})",
    )
    # the second cases block has no conditions: not guessed
    assert cases[1][1] == ("not checked", "a row of cases without a condition: p_{k}-1")
    everything = read_document(PA5, notation=ORIGIN)
    assert [e.status for e in everything].count("read") == len(everything)


def test_the_pa5_write_up_under_the_centre_flip_reading_reads_the_tilde_as_an_array_flip():
    got = table(read_document(PA5, notation=CENTRE))
    eq_a = line_of(PA5, "\\text{Eq. A}")
    assert got[eq_a] == [("read", [("dx[e, f]", "Sum(g[e - a, f - b] * flip(w)[a, b], a, b)")])]
    assert got[line_of(PA5, "* \\tilde{x}")] == [("read", [("dw[e, f]", "Sum(g[e - a, f - b] * flip(x)[a, b], a, b)")])]
    # everything without a tilde reads the same under both readings
    origin = table(read_document(PA5, notation=ORIGIN))
    tilde_lines = {line_of(PA5, "\\tilde{w}", k) for k in (1, 2)} | {line_of(PA5, "\\tilde{x}")}
    assert {k: v for k, v in got.items() if k not in tilde_lines} == {
        k: v for k, v in origin.items() if k not in tilde_lines
    }


def test_the_notation_in_force_follows_the_sections():
    layers = {e.line: e.layer for e in read_document(PA5, notation=ORIGIN)}
    assert layers[line_of(PA5, "\\text{Eq. B}")] == "convolution2d_full"
    assert layers[line_of(PA5, "(2) \\quad")] == "fully_connected.toml"
    assert layers[line_of(PA5, "$$L = -s_a")] == "softmax_cross_entropy"


@pytest.mark.slow
def test_the_committed_annotated_audits_are_what_make_writes_today():
    """examples/derivations/*.audit.{html,md} are generated (examples/derivations/make.py): the
    committed files must be what the audit and its renderers write now."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("derivations_make", EXAMPLES / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for document, notation, stem in make.AUDITS:
        for suffix, data in make.outputs(document, notation).items():
            committed = (EXAMPLES / f"{stem}{suffix}").read_bytes()
            assert data == committed, f"{stem}{suffix} is stale: run python examples/derivations/make.py"


def _notes_excerpt() -> str:
    """The CNN notes' notation block, the two definitions, the flip identity (line 50) and the
    boxed dL/dw (line 99), in the notes' order (a document of their own: a quicker audit)."""
    lines = NOTES.read_text(encoding="utf-8").split("\n")
    start = lines.index("```toml symderive")
    block = lines[start : lines.index("```", start + 1) + 1]
    wanted = ("$$(W * I)(i, j) = \\sum", "$$(W \\otimes I)(i, j) = \\sum", "W_{\\text{flipped}}", "\\boxed")
    displays = [next(line for line in lines if line.startswith("$$") and w in line) for w in wanted]
    return "\n".join(block) + "\n\n" + "\n\n".join(displays) + "\n"


@pytest.mark.slow
def test_the_notes_wrong_flip_identity_and_boxed_dw_get_their_shifted_variant():
    """The variants the audit finds for the notes' two mistakes, each checked here with SciPy
    (convolve2d / correlate2d) and torch autograd on random data at non-square sizes."""
    import numpy as np
    import scipy.signal as ss
    import torch
    import torch.nn.functional as F

    from symderive.audit.check import audit
    from symderive.render.audit import audit_markdown

    result = audit(_notes_excerpt())
    flip_identity, boxed = [e for e in result.entries if e.wrong]
    assert flip_identity.variant.shift == ("1 - kh", "1 - kw")
    assert flip_identity.variant.latex == "(W_{\\text{flipped}}\\otimes I)(i - k_1 + 1, j - k_2 + 1)"
    assert boxed.variant.shift == ("H - kh", "W - kw")
    assert "*I(m' + H - k_1, n' + W - k_2)" in boxed.variant.latex
    assert flip_identity.counterexample is not None and boxed.counterexample is not None
    for seed, (h, w_, kh, kw) in enumerate([(3, 5, 2, 3), (5, 4, 3, 2), (4, 7, 1, 3), (6, 3, 4, 2)]):
        rng = np.random.default_rng(seed)
        x, w = rng.normal(size=(h, w_)), rng.normal(size=(kh, kw))
        g = rng.normal(size=(h - kh + 1, w_ - kw + 1))
        # (W * I)(i, j) = (W_flipped ⊗ I)(i - kh + 1, j - kw + 1) at every (i, j) where either is not 0:
        # full correlation with the flipped kernel, read kh - 1 rows and kw - 1 columns on
        conv = ss.convolve2d(x, w, "full")
        corr_flipped = ss.correlate2d(x, w[::-1, ::-1], "full")
        assert np.allclose(conv, corr_flipped)
        # the unshifted identity fails: (W * I)(i, j) != (W_flipped ⊗ I)(i, j) read without the shift
        unshifted = np.pad(corr_flipped, ((0, kh - 1), (0, kw - 1)))[kh - 1 :, kw - 1 :]
        assert kh == kw == 1 or not np.allclose(conv, unshifted)
        # dL/dw(m', n') = ({dL/dY}_180 * I)(m' + H - kh, n' + W - kw), dL/dw by torch autograd
        xt, wt = (torch.tensor(a, requires_grad=True) for a in (x, w))
        F.conv2d(xt[None, None], wt[None, None])[0, 0].backward(torch.tensor(g))
        full = ss.convolve2d(x, g[::-1, ::-1], "full")
        assert np.allclose(wt.grad.numpy(), full[h - kh : h - kh + kh, w_ - kw : w_ - kw + kw])
    # the annotated audit typesets it under the counterexample
    markdown = audit_markdown(result)
    assert (
        "**Nearest true variant\\:** it holds with $(W_{\\text{flipped}}\\otimes I)(i - k_1 + 1, j - k_2 + 1)$"
        in markdown
    )
