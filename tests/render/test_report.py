"""Reports: real PDFs compiled with latexmk for every built-in layer, read back with pdftotext."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sympy as sp

from symderive import report as rp
from symderive.core.ir import GSum, Iverson, index_symbol, size_symbol
from symderive.decide.verdict import Counterexample, Verdict
from symderive.derive import Derivation, Step, derive
from symderive.errors import InputError
from symderive.escape import markdown_text
from symderive.model.layer import builtin_layer_names, load_layer
from symderive.render.text import printed_value

HAVE_LATEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None


def needs_latex(test):
    """Marks a test that compiles LaTeX; the README's test command installs latexmk, so a
    missing LaTeX fails these tests (and test_latex_tools_are_installed) instead of skipping them."""
    return test


def test_latex_tools_are_installed():
    assert HAVE_LATEX, "latexmk and pdftotext are needed (the README's test command installs them)"


EVIL = r"\input{/etc/passwd} \write18{rm -rf ~} 100% $x$ a_b #1 & c^d"
#: a wrong claim whose refutation must show in the report (the missing flip of seed 004)
WRONG_CONV2D = 'convolve(g, flip(w), "full")'


def pdf_text(path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    return out.stdout


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def shown_name(name: str) -> str:
    """A name as the PDF's math shows it: ``gamma`` as its Greek letter, other names as written."""
    try:
        return unicodedata.lookup(f"GREEK SMALL LETTER {name.upper()}")
    except KeyError:
        return name


# -- escaping and printing ------------------------------------------------------------------


@pytest.mark.parametrize("char", list(rp.LATEX_SPECIALS))
def test_every_special_character_is_escaped(char):
    out = rp.latex_escape(f"a{char}b")
    assert out == "a" + rp.LATEX_SPECIALS[char] + "b"


def test_escape_leaves_no_command_of_the_user():
    out = rp.latex_escape(EVIL)
    assert r"\input" not in out and r"\write" not in out
    assert "{" not in out.replace(r"\{", "").replace(r"\textbackslash{}", "").replace(r"\textasciitilde{}", "").replace(
        r"\textasciicircum{}", ""
    )


def test_printer_escapes_names_that_are_not_identifiers():
    out = rp.math_latex(sp.IndexedBase(r"\input{/etc/passwd}")[index_symbol("i")])
    assert r"\input" not in out and r"\textbackslash{}input" in out


def test_printer_reads_guards_and_deltas_like_the_seeds():
    p, i = index_symbol("p"), index_symbol("i")
    k, H = size_symbol("kh"), size_symbol("H")
    guard = Iverson(sp.And(sp.Ge(p - i, 0), sp.Lt(p - i, k)))
    out = rp.math_latex(GSum(guard * sp.IndexedBase("w")[p - i], (i, 0, H - k)))
    assert out.startswith(r"\sum_{i=0}^{H - kh}")
    assert r"0 \leq - i + p \leq kh - 1" in out or r"0 \leq p - i \leq kh - 1" in out
    assert rp.math_latex(sp.KroneckerDelta(i, p)) == r"\delta_{i,\, p}"


def test_dummies_get_distinct_readable_names():
    m1, m2 = sp.Dummy("m", integer=True), sp.Dummy("m", integer=True)
    out = rp.math_latex(sp.IndexedBase("w")[m1, m2])
    assert out == "w[m, n]"


def test_long_sums_break_into_lines_within_the_budget():
    x = sp.IndexedBase("x")
    rhs = sp.Add(*(x[k] * sp.Symbol(f"alpha{k}") for k in range(30)))
    lines = rp.equation_lines(sp.Symbol("y"), rhs, budget=40)
    assert len(lines) > 3
    assert all(rp.visible_width(line) <= 40 + 12 for line in lines)
    assert "".join(lines).count("x[") == 30


def test_array_latex_boxes_the_differing_element():
    out = rp.array_latex([[1, 2, 3], [4, 5, 6]], mark=(1, 2))
    assert out.count(r"\boxed") == 1 and r"\boxed{6}" in out
    assert rp.array_latex([7, 8], mark=(0,)).count(r"\boxed{7}") == 1


def test_latex_log_errors_keep_the_error_lines():
    log = "This is pdfTeX\n(./report.tex\n! Undefined control sequence.\nl.7 \\foo\n\nmore\nlast"
    assert rp.latex_log_errors(log).startswith("! Undefined control sequence.\nl.7 \\foo")


# -- .tex without LaTeX, errors ---------------------------------------------------------------


def test_tex_needs_no_latex(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = rp.report(load_layer("linear"), output=tmp_path / "linear.tex")
    tex = out.read_text()
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    # the equations are numbered once, in order, by the report itself (the same numbers in every format)
    tags = [int(n) for n in re.findall(r"\\tag\{(\d+)\}", tex)]
    assert tags == list(range(1, len(tags) + 1)) and len(tags) >= 5


def test_missing_latex_says_to_write_tex(tmp_path, monkeypatch):
    monkeypatch.setattr(rp.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match=r"linear\.tex"):
        rp.report(load_layer("linear"), output=tmp_path / "linear.pdf")
    assert not (tmp_path / "linear.pdf").exists()


def test_other_suffixes_and_names_are_input_errors(tmp_path):
    layer = load_layer("linear")
    with pytest.raises(InputError, match=r"\.pdf, \.tex, \.md or \.html, not 'r\.docx'"):
        rp.report(layer, output=tmp_path / "r.docx")
    with pytest.raises(InputError, match="no input named 'q'"):
        rp.report(layer, {"q": "g"}, output=tmp_path / "r.tex")
    with pytest.raises(InputError, match="constant"):
        rp.report(load_layer("softmax_cross_entropy"), wrt="t", output=tmp_path / "r.tex")


@pytest.mark.parametrize("suffix", [".tex", ".pdf"])
def test_missing_folder_is_an_input_error_before_any_work(tmp_path, suffix, monkeypatch):
    # nothing may be proved or compiled for a report that cannot be written
    monkeypatch.setattr(rp, "render_tex", lambda *a, **k: pytest.fail("rendered a report it cannot write"))
    target = tmp_path / "no" / "such" / f"x{suffix}"
    with pytest.raises(InputError, match=r"cannot write .*does not exist"):
        rp.report(load_layer("linear"), output=target)
    (tmp_path / f"dir{suffix}").mkdir()
    with pytest.raises(InputError, match="cannot write .*folder"):
        rp.report(load_layer("linear"), output=tmp_path / f"dir{suffix}")


def test_a_failing_write_is_an_input_error(tmp_path, monkeypatch):
    import symderive.atomic

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    # the report is written to a temporary file that then replaces x.tex: the replace fails
    monkeypatch.setattr(symderive.atomic.os, "replace", refuse)
    with pytest.raises(InputError, match=r"cannot write .*x\.tex: Permission denied"):
        rp.report(load_layer("linear"), output=tmp_path / "x.tex")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_claim_out_of_time_shows_as_unknown_with_the_reason():
    # a fresh layer object: verdicts proved earlier in the session are remembered on it
    layer = load_layer("batch_norm")
    found = rp.evidence(layer, wrt="x", timeout=0.05, code=False)
    verdicts = [v for _, _, entries in found.sections for _, _, v in entries]
    assert verdicts and all(v.verdict == "unknown" and "timeout" in v.reason for v in verdicts)
    tex = rp.latex_document(rp.renderer.report_document(layer, found))
    assert tex.count("Not decided}: timeout (after 0.05 s).") == len(verdicts)


@needs_latex
def test_latex_failure_shows_the_log_lines():
    with pytest.raises(rp.LatexError, match="Undefined control sequence"):
        rp.compile_pdf("\\documentclass{article}\n\\begin{document}\n\\nosuchmacro\n\\end{document}\n")


# -- real PDFs for every built-in layer ---------------------------------------------------------


SEED_LAYERS = ["conv2d", "convolution2d", "convolution2d_full", "linear", "softmax_cross_entropy"]
#: the layers whose reports are compiled here: the layers of examples/derivations, and one of each
#: other kind (abbreviated statistics and Greek names; a torch convolution with stride, padding and
#: index-form claims; a 1-D one; an elementwise layer with refuted known claims; a loss whose rows
#: sum to 1). Compiling all 23 would take minutes; every built-in layer's forward pass and claims
#: are typeset and converted to MathML in test_report_formats.py.
REPORTED_LAYERS = [*SEED_LAYERS, "batch_norm", "conv2d_nchw_s2p1", "conv1d_ncl_s2", "tanh", "log_softmax_nll"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each reported layer's report (its known claims; conv2d also the missing flip), compiled once."""
    folder = tmp_path_factory.mktemp("reports")
    sources = {}
    for name in REPORTED_LAYERS:
        layer = load_layer(name)
        claims = None
        if name == "conv2d":
            claims = {n: [c.claim for c in layer.claims if c.wrt == n] for n in layer.differentiable}
            claims["x"].append(WRONG_CONV2D)
        sources[name] = (layer, rp.render_tex(layer, claims, variants=False))
    # latexmk runs in its own process: compile the reports side by side
    with ThreadPoolExecutor(max_workers=4) as pool:
        compiled = dict(zip(sources, pool.map(rp.compile_latex, [tex for _, tex in sources.values()]), strict=True))
    out = {}
    for name, (layer, tex) in sources.items():
        path = folder / f"{name}.pdf"
        path.write_bytes(compiled[name][0])
        out[name] = (layer, pdf_text(path), tex, path)
        LOGS[name] = compiled[name][1]
    return out


#: LaTeX's log of each compiled report (filled by ``built``)
LOGS: dict[str, str] = {}


def test_seed_layers_are_built_in():
    assert set(SEED_LAYERS) <= set(builtin_layer_names())


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize("name", REPORTED_LAYERS)
def test_pdf_shows_every_step_and_verdict(built, name):
    layer, text, tex, _ = built[name]
    flat = squash(text)
    assert squash(f"Gradients of the layer {name}") in flat
    for wrt in layer.differentiable:
        # the input's name is set as math: a Greek name (gamma) shows as its letter
        shown = squash(shown_name(wrt))
        assert squash("The gradient with respect to ") + shown in flat
        # the derivation starts from the loss (its equation, or a reference to it) and ends in the result
        assert "Loss." in text and squash("Result. The gradient with respect to ") + shown in flat
    # each known claim shows the verdict its layer file expects, in words
    wanted = Counter(c.expect for c in layer.claims)
    words = {"proved": "Proved: it holds for every size", "refuted": "Refuted: it does not hold."}
    for verdict, times in wanted.items():
        assert flat.count(squash(words[verdict])) == times, f"{verdict} is not shown {times} time(s)"
    shown_claims = len(layer.claims) + (1 if name == "conv2d" else 0)  # conv2d: also the missing flip
    assert flat.count(squash("The gradient is claimed to be")) == shown_claims
    numbers = [int(n) for n in re.findall(r"\((\d+)\)", text)]
    assert numbers and max(numbers) >= len(layer.differentiable) * 2


#: how far (pt) a line may stick out of the margin: TeX's own slack for a tight line
OVERFULL_SLACK_PT = 3.0


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize("name", REPORTED_LAYERS)
def test_no_line_runs_into_the_margin(built, name):
    # long claims, descriptions and equations break into lines; nothing overflows
    assert name in LOGS
    wide = [w for w in rp.overfull_boxes(LOGS[name]) if w > OVERFULL_SLACK_PT]
    assert not wide, f"{name}: lines {wide} pt too wide"


#: the smallest scale a display may be shrunk to (issue 6: "readable, not shrunk")
MIN_SCALE = 0.7


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize("name", REPORTED_LAYERS)
def test_no_display_is_shrunk_below_the_bound(built, name):
    needed = [float(v) for v in re.findall(r"symderive-fitmath: scale=[0-9.]+ needed=([0-9.]+)", LOGS[name])]
    assert all(v >= MIN_SCALE for v in needed), f"{name}: displays need scales {sorted(needed)[:5]}"


@pytest.mark.slow
def test_fitmath_logs_every_shrink_and_stops_at_the_bound():
    assert HAVE_LATEX, "latexmk is needed (the README's test command installs it)"
    from symderive.render.blocks import Document, Text

    preamble = rp.latex_document(Document((Text("t"),), "", ())).split(r"\begin{document}")[0]
    wide = " + ".join(f"x_{{{k}}}" for k in range(60))
    tex = preamble + "\\begin{document}\n\\[\\fitmath{y = x}\\]\n\\[\\fitmath{" + wide + "}\\]\n\\end{document}\n"
    _, log = rp.compile_latex(tex)
    shrinks = re.findall(r"symderive-fitmath: scale=([0-9.]+) needed=([0-9.]+)", log)
    assert len(shrinks) == 1
    scale, needed = map(float, shrinks[0])
    assert needed < MIN_SCALE and scale == max(needed, float(re.search(r"fitminscale\}\{([0-9.]+)\}", tex)[1]))


def _expanded(expr, defs, sizes):
    """``expr`` with every abbreviation written out, at concrete sizes (sums done)."""
    by_name = {d.name.args[0]: d for d in defs}

    def written_out(node):
        d = by_name[node.args[0]]
        return d.value.xreplace(dict(zip(d.name.args[1:], node.args[1:], strict=True))).subs(sizes).doit()

    expr = expr.subs(sizes).doit()
    for _ in range(len(defs) + 1):
        expr = expr.replace(lambda n: isinstance(n, rp.Abbreviation), written_out)
    assert not expr.atoms(rp.Abbreviation)
    return expr


@pytest.mark.slow
def test_abbreviations_are_notation_only():
    # batch_norm's partial derivative: roots, means and sums repeated many times
    layer = load_layer("batch_norm")
    derivation = derive(layer, "x")
    rng = np.random.default_rng(7)
    sizes = {s: v for s, v in zip(layer.sizes, (3, 2), strict=False)}
    # the first steps with abbreviations (the later ones repeat them: time)
    for step in [s for s in derivation.steps if s.kind in ("forward", "partial derivative", "result")]:
        rhs = rp.readable(step.rhs)
        short, defs = rp.abbreviate(rhs)
        if not defs:
            continue
        values = {}
        for name, shape in layer.inputs.items():
            dims = [int(sp.sympify(d).subs(sizes)) for d in shape]
            values[name] = rng.uniform(0.5, 2.0, size=dims)
        values["g"] = rng.uniform(-1.0, 1.0, size=values["x"].shape)
        assert short != rhs and sp.count_ops(short) < sp.count_ops(rhs)
        full = rhs.subs(sizes).doit()
        back = _expanded(short, defs, sizes)
        indices = sorted((s for s in full.free_symbols | back.free_symbols if s.is_integer), key=str)
        point = {s: (k + 1) % 2 for k, s in enumerate(indices)}
        a, b = full.subs(point), back.subs(point)
        reads = {
            r: values[str(r.base)][tuple(int(i) for i in r.indices)]
            for r in (a.atoms(sp.Indexed) | b.atoms(sp.Indexed))
        }
        scalars = {s: 0.1 for s in (a.free_symbols | b.free_symbols) if not s.is_integer}
        assert abs(float(a.xreplace(reads).subs(scalars)) - float(b.xreplace(reads).subs(scalars))) < 1e-9, step.kind


def test_overfull_boxes_reads_a_real_overfull_line():
    tex = "\\documentclass{article}\n\\begin{document}\n\\texttt{%s}\n\\end{document}\n" % ("a" * 120)
    assert HAVE_LATEX, "latexmk is needed (the README's test command installs it)"
    _, log = rp.compile_latex(tex)
    assert rp.overfull_boxes(log) and max(rp.overfull_boxes(log)) > 100


@pytest.mark.slow
@needs_latex
def test_refuted_claim_shows_its_counterexample(built):
    layer, text, tex, _ = built["conv2d"]
    from symderive.prove import prove

    verdict = prove(layer, "x", WRONG_CONV2D)
    assert verdict.verdict == "refuted"
    cex = verdict.counterexample
    assert "Refuted" in text and "counterexample" in text
    for size, value in cex.sizes.items():
        assert squash(f"{size} = {value}") in squash(text) or f"{size} = {value}" in tex
    for name, values in (cex.values or {}).items():
        assert rp.array_latex(values) in tex, name
    assert r"\boxed" in tex


@pytest.mark.slow
@needs_latex
def test_convolution_reports_draw_the_flip_and_the_reach(built):
    for name in ("conv2d", "convolution2d", "convolution2d_full"):
        _, text, tex, _ = built[name]
        assert r"\begin{tikzpicture}" in tex and "flip" in text
        assert "Which outputs one element reaches" in text
    _, _, tex, _ = built["linear"]
    assert "kernel flip" not in tex
    # the flip is drawn on a 3 x 3 kernel (its centre stays, the rest moves), the kernel's own
    # picture shows what one of its elements multiplies, not the whole output it reaches
    _, text, tex, _ = built["conv2d"]
    assert "w_{22}" in tex and "What one kernel element meets" in text
    assert squash("kh = 3, kw = 3") in squash(text)


@pytest.mark.slow
@needs_latex
def test_conv2d_report_fits_in_five_pages(built):
    pages = subprocess.run(["pdfinfo", str(built["conv2d"][3])], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", pages)[1]) <= 5


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize("name", SEED_LAYERS)
def test_reports_speak_math_not_code_or_jargon(built, name):
    _, text, tex, _ = built[name]
    lowered = text.lower()
    for word in ("seed", "z3", "_sd_", "sympy", "np.", "lstlisting"):
        assert word not in lowered, word
    # every claim is typeset: no claim of the layer file that reads as code (a call, a product,
    # an index) appears as written (a claim that is one name, "g", reads the same as math)
    layer = built[name][0]
    for c in [c for c in layer.claims if re.search(r"[(@.\[*]", c.claim)]:
        assert squash(c.claim) not in squash(text), c.claim


@pytest.mark.slow
@needs_latex
def test_the_numpy_code_is_an_appendix_only_when_asked(built):
    _, text, tex, _ = built["linear"]
    assert r"\begin{lstlisting}" not in tex and "def grad_x" not in text and "numpy" not in text.lower()
    with_code = rp.render_tex(load_layer("linear"), code=True)
    appendix = with_code.split(r"\section{Appendix: the emitted NumPy module}")[1]
    assert r"\begin{lstlisting}" in appendix and "def grad_x" in appendix and "import numpy as np" in appendix


@needs_latex
def test_user_text_is_printed_not_executed(tmp_path):
    layer = dataclasses.replace(load_layer("linear"), description=EVIL, name="lin_{#1}%")
    pdf = rp.report(layer, wrt="b", output=tmp_path / "evil.pdf")
    text = pdf_text(pdf)
    assert "root:" not in text  # /etc/passwd was not read
    assert squash(EVIL).replace("~", "") in squash(text).replace("~", "").replace("˜", "")
    assert "lin_{#1}%" in text


# -- notebooks ------------------------------------------------------------------------------


def _hand_verdict() -> Verdict:
    cex = Counterexample(
        sizes={"H": 2, "W": 2},
        values={"w": [[1, 0], [0, 2]]},
        index=(0, 1),
        expected=1,
        claimed=0,
        expected_array=np.array([[0, 1], [2, 0]], dtype=object),
        claimed_array=np.array([[0, 0], [2, 0]], dtype=object),
    )
    return Verdict("refuted", layer="conv2d", wrt="x", claim=WRONG_CONV2D, counterexample=cex)


def test_verdict_markdown_shows_the_counterexample():
    md = rp.verdict_markdown(_hand_verdict())
    assert md.startswith("**refuted**") and "$$" in md and r"\boxed{1}" in md and r"\boxed{0}" in md
    proved = Verdict("proved", layer="linear", wrt="x", claim="w.T @ g", assumptions=("n >= 1",))
    assert "`n >= 1`" in rp.verdict_markdown(proved)


def test_derivation_markdown_has_every_step_as_math():
    p = index_symbol("p")
    steps = (
        Step("chain rule", "Chain rule.", sp.Symbol("dL/dx[p]"), sp.IndexedBase("g")[p], label="Eq. E"),
        Step("result", "The gradient.", sp.Symbol("dL/dx[p]"), sp.IndexedBase("g")[p]),
    )
    md = rp.derivation_markdown(Derivation("lin", "x", (p,), sp.IndexedBase("g")[p], steps))
    assert (
        md.count("$$") == 4
        and r"\frac{\partial L}{\partial x[p]}" in md
        and "[" + markdown_text("Eq. E of the hand derivation") + "]" in md
        and "((" not in md
    )


def test_real_derivation_renders_in_notebooks():
    md = rp.derivation_markdown(derive(load_layer("linear"), "x"))
    assert md.count("$$") >= 4 and "**Gradient of `linear`" in md


def test_notebook_reprs_are_attached():
    layer = load_layer("linear")
    assert derive(layer, "x")._repr_markdown_().startswith("**Gradient of `linear`")
    assert _hand_verdict()._repr_markdown_().startswith("**refuted**")


# -- counterexamples of user layers: wide tensors and long exact values ---------------------------

CUSTOM = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "custom_layers"
#: wrong claims whose counterexamples were too wide for the page: six slices of a gradient side by
#: side (a grouped convolution's weight), and an exact value SymPy prints with 21-digit rationals
WIDE_COUNTEREXAMPLES = {
    "grouped_conv1d": ("w", "dw[o, c, m] == Sum(g[n, o, i] * x[n, c, i + m], n, i)"),
    "gelu_tanh": (
        "x",
        "g * (0.5 * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))"
        " + 0.5 * x * (1 - tanh(0.7978845608028654 * (x + 0.044715 * x**3))**2))",
    ),
}


@pytest.fixture(scope="module")
def wide_reports():
    sources = {}
    for name, (wrt, claim) in WIDE_COUNTEREXAMPLES.items():
        layer = load_layer(str(CUSTOM / f"{name}.toml"))
        sources[name] = rp.render_tex(layer, {wrt: [claim]}, wrt=wrt)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(sources, pool.map(rp.compile_latex, sources.values()), strict=True))


@pytest.mark.slow
@needs_latex
@pytest.mark.parametrize("name", list(WIDE_COUNTEREXAMPLES))
def test_a_wide_counterexample_stays_inside_the_margin(wide_reports, name):
    _, log = wide_reports[name]
    wide = [w for w in rp.overfull_boxes(log) if w > OVERFULL_SLACK_PT]
    assert not wide, f"{name}: lines {wide} pt too wide"
    needed = [float(v) for v in re.findall(r"symderive-fitmath: scale=[0-9.]+ needed=([0-9.]+)", log)]
    assert all(v >= MIN_SCALE for v in needed), f"{name}: displays need scales {sorted(needed)[:5]}"


def test_slices_of_a_counterexample_are_stacked_in_lines_that_fit():
    expected = np.zeros((6, 2, 1), dtype=object)
    claimed = expected.copy()
    claimed[3, 0, 0] = 1
    cex = Counterexample(
        sizes={"N": 1, "L": 1, "k": 1},
        values={"g": np.arange(6).reshape(1, 6, 1).tolist()},
        index=(3, 0, 0),
        expected=0,
        claimed=1,
        expected_array=expected,
        claimed_array=claimed,
    )
    view = rp.counterexample_view(cex, load_layer(str(CUSTOM / "grouped_conv1d.toml")), "w")
    for side in (view.expected, view.claimed):
        lines = side.removeprefix(r"\begin{gathered}").removesuffix(r"\end{gathered}").split(r" \\ ")
        assert side.startswith(r"\begin{gathered}") and len(lines) >= 2
        # every slice shown once, and each line within the line budget
        assert sum(line.count("[") for line in lines) >= 6
        assert all(rp.visible_width(line) <= rp.LINE_BUDGET for line in lines)
    assert view.claimed.count(r"\boxed{1}") == 1 and view.expected.count(r"\boxed{0}") == 1


def test_a_long_exact_value_is_shown_by_its_digits():
    # GELU-tanh's refuted derivative at x = 1 (c = sqrt(2/pi) as written in the layer file)
    printed = (
        "-904916785211765779083*tanh(833561968939165526361/1000000000000000000000)**2/2000000000000000000000"
        " + tanh(833561968939165526361/1000000000000000000000)/2 + 1904916785211765779083/2000000000000000000000"
    )
    c, a = 0.7978845608028654, 0.044715
    t = np.tanh(c * (1 + a))
    oracle = 0.5 * (1 + t) + 0.5 * (1 - t * t) * c * (1 + 3 * a)
    shown = rp.number_latex(printed)
    assert shown.startswith(r"\approx ") and float(shown.removeprefix(r"\approx ")) == pytest.approx(oracle, rel=1e-5)
    # short exact values stay exact, as math (with their digits when not a fraction); what is not a
    # number stays text
    assert rp.number_latex("1/3") == r"\frac{1}{3}"
    shown = rp.number_latex("cosh(1)**(-2)")
    assert shown.startswith(r"\frac{1}{\cosh^{2}") and "texttt" not in shown
    assert float(shown.split(r"\approx ")[1]) == pytest.approx(1 / np.cosh(1) ** 2, rel=1e-5)
    assert rp.number_latex("2**10**10**10").startswith(r"\texttt")
    # (the reading of SymPy's printing lives in symderive.verdict, shared with the command line)
    assert printed_value("exp(1)/(1 + exp(1))") == pytest.approx(1 / (1 + np.exp(-1)))
    for not_a_value in ("x + 1", "__import__('os').system('true')", "open('f')", "2**10**10**10"):
        assert printed_value(not_a_value) is None


def test_rounded_sides_of_a_counterexample_never_look_equal():
    assert rp.distinguishing_digits(1.0000001, 1.0000002) == 8
    a, b = "exp(1)/(1 + exp(1)) + 1/10**30", "exp(1)/(1 + exp(1)) + 1/10**9"
    digits = rp.distinguishing_digits(a, b)
    assert rp.number_latex(a, digits) != rp.number_latex(b, digits)


def test_a_float_constant_of_a_layer_file_is_shown_as_its_decimal():
    from decimal import Decimal

    for text in ("0.7978845608028654", "0.044715", "-0.00015", "964.5061640625", "0.035677408136300126361"):
        value = sp.Rational(text)
        assert rp.decimal_text(value) == str(Decimal(text).normalize()).replace("E", "e"), text
    # a short or non-terminating fraction stays a fraction
    assert rp.decimal_text(sp.Rational(1, 2)) is None and rp.decimal_text(sp.Rational(1, 3000)) is None
    x = sp.IndexedBase("x")[index_symbol("i")]
    gelu = sp.tanh(sp.Rational("0.7978845608028654") * (x + sp.Rational("0.044715") * x**3))
    shown = rp.math_latex(gelu * sp.IndexedBase("g")[index_symbol("i")] * sp.Rational("0.5"))
    assert "0.7978845608028654" in shown and "0.035677408136300126" in shown and shown.endswith("{2}")
    assert "200000" not in shown and "5000000000000000" not in shown
    pieces = rp.equation_lines(sp.Symbol("y"), sp.Rational(107032224408900379083, 2 * 10**21) * x**2 * gelu, budget=30)
    assert not any("1000000000000000000000" in p for p in pieces), pieces


def test_the_layers_forward_shows_no_guard_its_ranges_imply():
    view = rp.layer_view(load_layer(str(CUSTOM / "rms_norm.toml")))
    assert r"\left[" not in view["forward"].body and r"\sqrt" in view["forward"].body
