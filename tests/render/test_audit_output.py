r"""``symderive audit DOC -o OUT.html|.md|.tex|.pdf``: the annotated audit (issue 17 item 5).

The HTML is opened in headless Chromium (tests/render/browser.py) and the PDF compiled with
latexmk and read back with pdftotext. The expected marks come from DERIVATIONS.md's table
(✓ follows, ✗ does not follow, ? unknown or not checked, ≡ definition) applied to verdicts
worked out by hand for the small document below; the example documents' verdicts are the
ones their README's transcripts show.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from browser import assert_math_rendered, page_text, render_page

import symderive as sd
from symderive import cli
from symderive.render import audit as ra

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "derivations"
MARK_OF = {
    "follows": "ok",
    "does not follow": "wrong",
    "unknown": "unknown",
    "not checked": "unknown",
    "definition": "definition",
}
SYMBOL_OF = {"ok": "✓", "wrong": "✗", "unknown": "?", "definition": "≡"}

# the linear layer y = w x + b (w of shape m x n): by hand, dL/dx[i] = sum_j w[j, i] g[j]
DOC = r"""# Linear layer, by hand

```toml symderive
layer = "linear"
```

The forward pass:

$$y[j] = \sum_i w[j, i] x[i] + b_j$$

A name for the row sums:

$$\sigma = \sum_j w[j, 0]$$

The input gradient, transposed by mistake (a wrong step):

$$\frac{\partial L}{\partial x[i]} = \sum_j w[i, j] \frac{\partial L}{\partial y[j]}$$

and right:

$$\frac{\partial L}{\partial x[i]} = \sum_j w[j, i] \frac{\partial L}{\partial y[j]}$$

Hostile lines <script>alert(1)</script>:

$$x = \input{/etc/passwd} \write18{touch pwned}$$

$$y = \text{<script>alert(1)</script></math>} \href{javascript:alert(1)}{x}$$
"""
#: line -> verdict, worked out by hand (the two hostile lines cannot be read: not checked)
BY_HAND = {9: "follows", 13: "definition", 17: "does not follow", 21: "follows", 25: "not checked", 27: "not checked"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doc")
    doc = folder / "notes<b>.md"  # the file name is user text too
    doc.write_text(DOC, encoding="utf-8")
    return doc, sd.audit(str(doc))


def test_the_small_document_gets_the_verdicts_worked_out_by_hand(small):
    _, result = small
    assert {e.line: e.verdict for e in result.entries} == BY_HAND
    assert result.first_wrong == 17


def entry_marks(dom: str) -> dict[int, str]:
    """line -> mark class of every entry on a rendered page."""
    found = re.findall(r'id="line-(\d+)"><span class="line">\d+</span><span class="mark mark-(\w+)"', dom)
    return {int(line): kind for line, kind in found}


def test_html(small, tmp_path):
    _, result = small
    path = ra.write_audit(result, tmp_path / "notes.html")
    html = path.read_text(encoding="utf-8")
    page = render_page(path, screenshot=tmp_path / "notes.png", size=(1000, 1400), printed=True)
    text = assert_math_rendered(page.dom, min_maths=4)
    assert entry_marks(page.dom) == {line: MARK_OF[v] for line, v in BY_HAND.items()}
    # the first wrong step is highlighted, once, and linked from the top
    assert page.dom.count('class="entry first-wrong"') == 1 and 'id="line-17"' in page.dom
    assert 'href="#line-17"' in html
    # the counterexample under the wrong step: sizes, values, both sides
    wrong = html.split('id="line-17"', 1)[1].split('class="entry', 1)[0]
    assert "Counterexample" in wrong and "left side" in wrong and "right side" in wrong
    # user text stays text: no element, link or handler from the document
    assert not re.search(r"<script|<img|\son\w+=|href=\"javascript", html, re.I)
    assert "&lt;script&gt;" in "".join(text.verbatim).replace("<", "&lt;").replace(">", "&gt;")
    assert "notes&lt;b&gt;.md" in html
    printed = page.printed
    for symbol in "✓✗?≡":
        assert symbol in printed
    assert r"\input{/etc/passwd}" in printed and "root:" not in printed


def test_markdown(small, tmp_path):
    _, result = small
    md = ra.write_audit(result, tmp_path / "notes.md").read_text(encoding="utf-8")
    marks = dict(re.findall(r"^\*\*(\S) line (\d+)\*\*", md, re.M)[k][::-1] for k in range(len(BY_HAND)))
    assert {int(line): symbol for line, symbol in marks.items()} == {
        line: SYMBOL_OF[MARK_OF[v]] for line, v in BY_HAND.items()
    }
    assert md.count("$$\n") == 2 * 4  # the four typeset entries, each a $$ display
    assert "first wrong step" in md.split("line 17**", 1)[1].split("\n", 1)[0]
    # the hostile entries as written in fences, TeX of reasons in code spans: no markup outside them
    outside = re.sub(r"`[^`]*`", "", re.sub(r"~~~~.*?~~~~", "", md, flags=re.S))
    for raw in ("<script", "javascript:", "\\input", "\\write18", "</math>"):
        assert raw not in outside


def test_tex_escapes_the_document_and_pdf_compiles(small, tmp_path):
    _, result = small
    tex = ra.write_audit(result, tmp_path / "notes.tex").read_text(encoding="utf-8")
    assert r"\input{/etc" not in tex and r"\write18{" not in tex and "\\href" not in tex
    assert r"\textbackslash{}input" in tex
    pdf = ra.write_audit(result, tmp_path / "notes.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "FIRST WRONG STEP" in text and "Counterexample" in text
    assert r"\input{/etc/passwd}" in text and "root:" not in text
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    for line in BY_HAND:
        assert re.search(rf"^\s*{line}\s", text, re.M)


# -- the command ------------------------------------------------------------------------------


def test_the_command_writes_the_file_and_keeps_the_exit_status(small, tmp_path, capsys):
    doc, _ = small
    out = tmp_path / "audit.html"
    assert cli.main(["audit", str(doc), "-o", str(out)]) == 1  # a step does not follow
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1] == f"wrote {out}"
    assert "first wrong step: line 17" in printed
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_json_output_stays_json(small, tmp_path, capsys):
    doc, _ = small
    assert cli.main(["audit", str(doc), "--json", "-o", str(tmp_path / "a.md")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == list(BY_HAND.values())
    assert (tmp_path / "a.md").is_file()


@pytest.mark.parametrize("name", ["out.docx", "out", "out.HTML.bak"])
def test_an_unknown_suffix_is_exit_2(small, tmp_path, capsys, name):
    doc, _ = small
    assert cli.main(["audit", str(doc), "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OUT.html, OUT.md, OUT.tex or OUT.pdf" in err
    assert not (tmp_path / name).exists()


def test_the_document_is_never_the_output(tmp_path, capsys):
    doc = tmp_path / "doc.html"  # a document named .html is read as Markdown, and is still not overwritten
    doc.write_text(DOC, encoding="utf-8")
    link = tmp_path / "link.html"
    link.symlink_to(doc)
    for spelling in (str(doc), str(tmp_path / "." / "doc.html"), str(link)):
        assert cli.main(["audit", str(doc), "-o", spelling]) == 2
        assert "a file the audit reads" in capsys.readouterr().err
    assert doc.read_text(encoding="utf-8") == DOC


def test_the_notation_file_is_never_the_output(tmp_path, capsys):
    shutil.copy(EXAMPLES / "pa5_conv_fc_softmax.md", tmp_path / "w.md")
    notation = tmp_path / "n.md"
    notation.write_text((EXAMPLES / "pa5_origin_flip.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert cli.main(["audit", str(tmp_path / "w.md"), "--notation", str(notation), "-o", str(notation)]) == 2
    assert "a file the audit reads" in capsys.readouterr().err


def test_a_failed_write_leaves_the_old_file(small, tmp_path, monkeypatch):
    _, result = small
    out = tmp_path / "audit.pdf"
    out.write_bytes(b"old")

    def failing(tex, timeout=180.0):
        raise ra.LatexFailed("LaTeX failed: ! Emergency stop.", where="-o")

    monkeypatch.setattr(ra, "compile_pdf", failing)
    with pytest.raises(ra.LatexFailed):
        ra.write_audit(result, out)
    assert out.read_bytes() == b"old" and list(tmp_path.iterdir()) == [out]


def test_latex_failing_on_the_typeset_audit_falls_back_to_the_entries_as_written(small, monkeypatch):
    _, result = small
    seen = []

    def picky(tex, timeout=180.0):
        seen.append(tex)
        if len(seen) == 1:
            raise ra.LatexFailed("LaTeX failed", where="-o")
        return b"%PDF"

    monkeypatch.setattr(ra, "compile_pdf", picky)
    assert ra.audit_document(result, ".pdf") == b"%PDF"
    assert r"\entrymath{" in seen[0] and r"\entrymath{" not in seen[1]


@pytest.mark.parametrize(
    "latex, typeset",
    [
        (r"\frac{\partial L}{\partial x} = w^\top g", True),
        (r"y = \begin{cases} 1 & \text{if } x > 0 \\ 0 & \text{otherwise} \end{cases}", True),
        (r"a &= b \\ &= c", True),
        (r"x = \input{/etc/passwd}", False),
        (r"x = \write18{rm -rf /}", False),
        (r"x = \csname input\endcsname", False),
        (r"x = ^^5cinput{a}", False),
        (r"x = 1 % comment", False),
        (r"x = $y$", False),
        (r"x = \text{a_b}", False),
        (r"x = \begin{verbatim} a \end{verbatim}", False),
        (r"x = \foo", False),
        (r"x = \frac{a}", False),
    ],
)
def test_what_is_typeset(latex, typeset):
    assert (ra.entry_math(latex).latex is not None) is typeset


# -- the example documents (a real browser and a real LaTeX) ----------------------------------

EXAMPLE_DOCS = {
    "cnn_backprop_notes": ("cnn_backprop_notes.md", None, 50),
    "pa5_centre_flip": ("pa5_conv_fc_softmax.md", "pa5_centre_flip.toml", 13),
}


@pytest.fixture(scope="module")
def examples():
    out = {}
    for key, (doc, notation, _) in EXAMPLE_DOCS.items():
        out[key] = sd.audit(str(EXAMPLES / doc), notation=None if notation is None else str(EXAMPLES / notation))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("key", list(EXAMPLE_DOCS))
def test_example_html_in_chromium(examples, key, tmp_path):
    result = examples[key]
    path = ra.write_audit(result, tmp_path / f"{key}.html")
    page = render_page(path, screenshot=tmp_path / f"{key}.png", size=(1000, 4000), printed=True)
    # every entry typeset: one display formula each, no raw TeX, no MathML error
    assert_math_rendered(page.dom, min_maths=len(result.entries))
    assert len(re.findall(r'<math [^>]*display="block"', page.dom)) == len(result.entries)
    # one mark per entry, the one the verdict calls for; not-an-equation blocks carry none
    expected = {e.line: MARK_OF.get(e.verdict, "none") for e in result.entries}
    assert {e.verdict for e in result.entries if e.line in expected and expected[e.line] == "none"} <= {
        "not an equation"
    }
    assert entry_marks(page.dom) == expected
    first = EXAMPLE_DOCS[key][2]
    assert result.first_wrong == first and page.dom.count("entry first-wrong") == 1
    assert f'id="line-{first}"' in page.dom.split("entry first-wrong", 1)[1][:40]
    marks = page_text(page.dom).marks
    assert marks.count("mark-wrong") >= 1 + sum(e.verdict == "does not follow" for e in result.entries)
    printed = page.printed
    assert "✗" in printed and "✓" in printed and "Counterexample" in printed


@pytest.mark.slow
@pytest.mark.parametrize("key", list(EXAMPLE_DOCS))
def test_example_pdf_compiles(examples, key, tmp_path):
    result = examples[key]
    pdf = ra.write_audit(result, tmp_path / f"{key}.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert text.count("FIRST WRONG STEP") == 1 and "Counterexample" in text
    for entry in result.entries:
        assert re.search(rf"^\s*{entry.line}\s", text, re.M), entry.line
    # the typeset route was taken for every entry (the fallback shows each as written)
    assert "shown as written" not in text
