"""Reports as Markdown and HTML (opened in headless Chromium), the reader's steps, and user text.

The HTML reports of conv2d (with a refuted claim), linear, softmax cross-entropy and tanh
(whose layer file keeps refuted claims) are rendered by a real browser: every equation must
come out as MathML (no raw TeX on the page, no error node) and the verdict marks must be
shown. User text that looks like LaTeX, HTML or Markdown stays text in every format.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import sympy as sp
from browser import assert_math_rendered, page_text, printed_text, raw_tex, render_page

from symderive import cli
from symderive import report as rp
from symderive.calculus.present import present
from symderive.core.ir import GSum, Iverson, index_symbol, size_symbol
from symderive.escape import markdown_text
from symderive.model.layer import builtin_layer_names, load_layer
from symderive.render import blocks as B
from symderive.render.html import html_document, mathml_ready
from symderive.render.markdown import markdown_document
from symderive.render.mathml import MathError, math_element

#: the classic mistake: the kernel flipped once too often (the report shows its refutation)
WRONG_CONV2D = 'convolve(g, flip(w), "full")'
EVIL = (
    r"\input{/etc/passwd} \write18{rm -rf ~} <script>alert(1)</script> </math> "
    r'[a](javascript:alert(1)) <a href="javascript:alert(2)">b</a> $x$ **y** 100% #1'
)


def conv2d_claims(layer) -> dict:
    claims = {n: [c.claim for c in layer.claims if c.wrt == n] for n in layer.differentiable}
    claims["x"].append(WRONG_CONV2D)
    return claims


@pytest.fixture(scope="module")
def documents():
    """The reports shown in the browser, as blocks (conv2d with the nearest true variant)."""
    conv2d = load_layer("conv2d")
    with pytest.MonkeyPatch.context() as patch:
        # the variant search has seconds: a loaded test machine gets more, so it finds what the example shows
        patch.setattr(rp, "VARIANT_TIMEOUT", 60.0)
        shown = rp.report_document(conv2d, conv2d_claims(conv2d))
    return {
        "conv2d": shown,
        "linear": rp.report_document(load_layer("linear"), variants=False),
        "softmax_cross_entropy": rp.report_document(load_layer("softmax_cross_entropy"), variants=False),
        "tanh": rp.report_document(load_layer("tanh"), variants=False),
    }


def displays(document) -> list[B.Display]:
    return [b for b in document.blocks if isinstance(b, B.Display)]


# -- the reader's steps ------------------------------------------------------------------------


def _evaluated(expr, sizes: dict, arrays: dict):
    """``expr`` at concrete sizes, its sums done and each read replaced by its value (0 outside)."""
    expr = sp.sympify(expr).subs(sizes).doit()

    def value(read):
        data = arrays[str(read.base.label)]
        idx = tuple(int(i) for i in read.indices)
        inside = all(0 <= i < n for i, n in zip(idx, data.shape, strict=True))
        return sp.Integer(int(data[idx])) if inside else sp.S.Zero

    return expr.xreplace({r: value(r) for r in expr.atoms(sp.Indexed)})


def test_guards_that_only_say_a_read_is_inside_its_tensor_are_dropped_soundly():
    layer = load_layer("conv2d")
    derivation = present(layer, "x")
    shapes = rp.renderer._shapes(layer)
    dropped = rp.renderer.without_read_guards(derivation.gradient, shapes)
    assert derivation.gradient.atoms(Iverson) and not dropped.atoms(Iverson)
    # oracle: SciPy's full convolution of g with w, at every position of x
    rng = np.random.default_rng(3)
    H, W, kh, kw = 4, 5, 2, 3
    x, w, g = rng.integers(-3, 4, (H, W)), rng.integers(-3, 4, (kh, kw)), rng.integers(-3, 4, (H - kh + 1, W - kw + 1))
    sizes = {s: v for s, v in zip(layer.sizes, (H, W, kh, kw), strict=True)}
    expected = scipy.signal.convolve2d(g, w, "full")
    p, q = derivation.index
    for a, b in itertools.product(range(H), range(W)):
        at = _evaluated(dropped.subs({p: a, q: b}), sizes, {"x": x, "w": w, "g": g})
        assert at == expected[a, b], (a, b)


def test_a_guard_around_a_read_that_is_not_a_factor_stays():
    p, i, k = index_symbol("p"), index_symbol("i"), size_symbol("k")
    w = sp.IndexedBase("w")
    guard = Iverson(sp.And(p - i >= 0, p - i <= k - 1))
    # exp(w[p - i]) is 1, not 0, outside w: the guard still matters
    assert rp.renderer.without_read_guards(guard * sp.exp(w[p - i]), {"w": (k,)}).atoms(Iverson)
    assert not rp.renderer.without_read_guards(guard * w[p - i] ** 2, {"w": (k,)}).atoms(Iverson)


def test_the_softmax_derivation_uses_sum_t_equals_one_in_a_step_of_its_own():
    layer = load_layer("softmax_cross_entropy")
    derivation = present(layer, "s")
    steps = {kind: (lhs, rhs) for kind, _, lhs, rhs, _ in rp.renderer.reader_steps(layer, derivation)}
    assert "factor" in steps and "assumption" in steps
    n = 4
    rng = np.random.default_rng(5)
    s = rng.integers(-2, 3, n)
    t = rng.integers(1, 5, n)
    sizes = {layer.sizes[0]: n}
    (p,) = derivation.index

    def at(expr, values, k):
        return float(_evaluated(expr.subs(p, k), sizes, values))

    soft = np.exp(s) / np.exp(s).sum()
    # before the assumption (any t): softmax(s) * sum(t) - t, by hand
    for k in range(n):
        assert at(steps["factor"][1], {"s": s, "t": t}, k) == pytest.approx(soft[k] * t.sum() - t[k])
    # after it: softmax(s) - t, which is the gradient when sum(t) == 1
    for k in range(n):
        assert at(steps["assumption"][1], {"s": s, "t": t}, k) == pytest.approx(soft[k] - t[k])
    sums = [d for d in steps["assumption"][1].atoms(GSum) if "t" in str(d)]
    assert not sums


def test_repeated_equations_are_said_once(documents):
    doc = documents["conv2d"]
    bodies = [d.body for d in displays(doc) if d.number]
    assert len(bodies) == len(set(bodies))
    text = B.plain_text([r for b in doc.blocks if isinstance(b, B.Paragraph) for r in b.runs])
    # the loss and the forward pass of the w and b sections point back to their first showing
    assert text.count("This is (") >= 4
    numbers = [d.number for d in displays(doc) if d.number]
    assert numbers == list(range(1, len(numbers) + 1))


def test_the_code_appendix_is_there_only_when_asked():
    plain = markdown_document(rp.report_document("linear", variants=False))
    assert "```python" not in plain and "grad_x" not in plain
    coded = markdown_document(rp.report_document("linear", variants=False, code=True))
    assert "```python" in coded and "def grad_x" in coded


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"


def test_the_example_reports_are_what_the_report_writes(documents):
    # examples/reports/make.py writes conv2d (its claims and the missing flip) in every format
    assert EXAMPLES.joinpath("make.py").is_file()
    stale = "examples/reports is out of date: run python examples/reports/make.py"
    assert EXAMPLES.joinpath("conv2d.md").read_text(encoding="utf-8") == markdown_document(documents["conv2d"]), stale
    assert EXAMPLES.joinpath("conv2d.html").read_text(encoding="utf-8") == html_document(documents["conv2d"]), stale
    assert EXAMPLES.joinpath("conv2d.tex").read_text(encoding="utf-8") == rp.latex_document(documents["conv2d"]), stale


def test_a_refuted_claim_says_what_would_hold(documents):
    text = markdown_document(documents["conv2d"])
    assert "What would hold" in text and "the kernel w is not flipped" in text


# -- math that a browser can show ---------------------------------------------------------------


def test_an_unknown_macro_in_the_html_route_is_an_error():
    for latex in (r"\foo x", r"\begin{foo}x\end{foo}", r"\frac{a}"):
        doc = B.Document((B.Text("t"),), "", (B.Paragraph((B.Math(latex),)),))
        with pytest.raises(MathError):
            html_document(doc)
    with pytest.raises(MathError):
        html_document(B.Document((B.Text("t"),), "", (B.Display((r"y &= \nosuch{x}",), number=1),)))


@pytest.mark.parametrize("name", builtin_layer_names())
def test_every_built_in_forward_and_claim_converts_to_mathml(name):
    layer = load_layer(name)
    view = rp.renderer.layer_view(layer)
    formulas = [view["forward"].body] + ([view["closed"].body] if view["closed"] else [])
    for c in layer.claims:
        shown = rp.renderer.claim_math(layer, c.wrt, c.claim, type("V", (), {"wrt": c.wrt})())
        assert shown, c.claim
        formulas.append(shown)
    for latex in formulas:
        out = math_element(mathml_ready(r"\begin{aligned}" + latex + r"\end{aligned}"), display=True)
        assert "<math" in out and "merror" not in out


def test_markdown_math_is_well_formed(documents):
    md = markdown_document(documents["conv2d"])
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", md, flags=re.S | re.M)
    assert len(blocks) == md.count("$$") // 2 and len(blocks) >= 15
    # every display is an aligned block (a result framed), but the kernel-flip picture's matrices
    aligned = [b for b in blocks if r"\begin{bmatrix}" not in b[:20]]
    assert all(b.removeprefix(r"\boxed{").startswith(r"\begin{aligned}") for b in aligned)
    assert sum(r"\tag{" in b for b in blocks) >= 15
    inline = re.findall(r"(?<![$\\])\$([^$\n]+)\$(?!\$)", md)
    assert inline
    for latex in blocks + inline:
        math_element(mathml_ready(re.sub(r"\\tag\{\d+\}", "", latex)), display=True)
    assert re.search(r"^\[\^1\]: ", md, flags=re.M) and "[^1]" in md.split("[^1]: ")[0]
    for word in ("seed", "z3", "_sd_"):
        assert word not in md.lower()


def test_cli_writes_markdown_and_html_and_refuses_other_suffixes(tmp_path, capsys):
    md, html = tmp_path / "linear.md", tmp_path / "linear.html"
    assert cli.main(["report", "linear", "-o", str(md), "--code"]) == 0
    assert md.read_text().startswith("# Gradients of the layer `linear`") and "def grad_x" in md.read_text()
    assert cli.main(["report", "linear", "-o", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>") and "def grad_x" not in html.read_text()
    capsys.readouterr()
    assert cli.main(["report", "linear", "-o", str(tmp_path / "linear.docx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FILE.md or FILE.html" in err and "linear.docx" in err
    assert not (tmp_path / "linear.docx").exists()


# -- the HTML reports in a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(documents, tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    out = {}
    for name, doc in documents.items():
        path = folder / f"{name}.html"
        path.write_text(html_document(doc), encoding="utf-8")
        page = render_page(path, screenshot=folder / f"{name}.png", size=(1000, 2400))
        out[name] = (path, page, printed_text(path))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv2d", "linear", "softmax_cross_entropy", "tanh"])
def test_html_reports_render_every_equation_as_math(pages, documents, name):
    path, page, printed = pages[name]
    numbered = sum(1 for d in displays(documents[name]) if d.number)
    text = assert_math_rendered(page.dom, min_maths=numbered)
    wanted = {"conv2d": {"mark-ok", "mark-wrong"}, "tanh": {"mark-ok", "mark-wrong"}}.get(name, {"mark-ok"})
    assert wanted <= set(text.marks)
    # the marks survive layout (the page's fonts have the glyphs): Chromium prints them
    assert "\u2713" in printed and ("\u2717" in printed) == ("mark-wrong" in wanted)
    assert "Proved" in printed and f"Gradients of the layer {name}" in " ".join(printed.split())
    assert page.screenshot.stat().st_size > 20_000
    # one file, nothing fetched: no script, no external source or link
    source = path.read_text()
    assert "<script" not in source and not re.search(r"""(src|href)\s*=\s*["'](?!#)""", source)


# -- user text stays text --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evil_reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    layer = dataclasses.replace(load_layer("linear"), description=EVIL, name="lin_{#1}%<b>")
    return {
        suffix: rp.report(layer, wrt="b", output=folder / f"evil{suffix}", variants=False)
        for suffix in (".tex", ".md", ".html", ".pdf")
    }


def test_user_text_is_escaped_in_latex(evil_reports):
    tex = evil_reports[".tex"].read_text()
    assert r"\input{" not in tex and r"\write18{" not in tex
    text = subprocess.run(
        ["pdftotext", str(evil_reports[".pdf"]), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "root:" not in text
    flat = re.sub(r"\s+", "", text).replace("˜", "~")
    assert re.sub(r"\s+", "", EVIL) in flat and "lin_{#1}%<b>" in text


def test_latex_runs_without_shell_escape(monkeypatch):
    calls = []
    real = rp.renderer.subprocess.run

    def recorded(cmd, *args, **kwargs):
        calls.append((list(cmd), kwargs.get("env", {})))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(rp.renderer.subprocess, "run", recorded)
    rp.compile_latex("\\documentclass{article}\n\\begin{document}\nx\n\\end{document}\n")
    (cmd, env), *_ = calls
    assert cmd[0] == "latexmk" and "-no-shell-escape" in cmd
    assert env.get("shell_escape") == "f" and env.get("openin_any") == "p"


def test_user_text_is_inert_in_markdown(evil_reports):
    md = evil_reports[".md"].read_text()
    assert markdown_text(EVIL) in md
    # the layer's name is a code span (shown as written: no markup inside one)
    assert "`lin_{#1}%<b>`" in md
    prose = re.sub(r"`[^`\n]*`", "", md)
    # nothing of the user's text starts markup: each of these shows only escaped (after a backslash)
    for raw in ("<script>", "<a href", "](javascript", "$x$", "**y**", "\\input{", "<b>"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), prose), raw


@pytest.mark.slow
def test_user_text_is_html_escaped_in_html(evil_reports, tmp_path):
    page = render_page(evil_reports[".html"])
    assert "<script" not in page.dom.replace("&lt;script", "") and "javascript:" not in re.sub(
        r">[^<]*<", "><", page.dom
    )
    text = page_text(page.dom)
    prose = " ".join("".join(text.prose).split())
    assert " ".join(EVIL.split()) in prose
    # the user's </math> closes nothing: the page has as many formulas as a report without it
    clean = tmp_path / "clean.html"
    rp.report(load_layer("linear"), wrt="b", output=clean, variants=False)
    assert text.maths == page_text(render_page(clean).dom).maths
    # every formula is MathML; the only TeX-looking words on the page are the user's own, as text
    assert text.merrors == 0 and text.maths >= 5
    assert set(raw_tex(page.dom)) <= {r"\input", r"\write"}
