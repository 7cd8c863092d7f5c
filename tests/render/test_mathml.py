r"""LaTeX to MathML (render/mathml.py), the HTML page (render/page.py) and the browser helper.

The MathML is read back with an XML parser (well-formed, no markup from the input) and the
page is opened in headless Chromium: the helper must see raw TeX and MathML errors when a page
has them, or the browser tests of reports and audits could pass on a broken page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from browser import assert_math_rendered, page_text, raw_tex, render_page

from symderive.errors import InputError
from symderive.render.mathml import MathError, math_element
from symderive.render.page import html_page, mark

NS = "{http://www.w3.org/1998/Math/MathML}"


def parsed(latex: str, display: bool = True) -> ET.Element:
    return ET.fromstring(math_element(latex, display))


def tags(latex: str) -> list[str]:
    return [e.tag.removeprefix(NS) for e in parsed(latex).iter()]


@pytest.mark.parametrize(
    "latex",
    [
        r"\frac{\partial L}{\partial x_{ij}} = \sum_{k=0}^{n-1} w_{ki} g_k",
        r"\hat{Y}(i, j) = \sum_{m=0}^{k_1-1} I(i+m, j+n) W(m, n) + b",
        r"\mathrm{softmax}(s) - t \quad \text{or} \quad W^\top g",
        r"\left\{ \delta \right\}_{180^\circ} \otimes I",
        r"\boxed{\frac{dL}{dw}} \odot \mathbb{1}_{x > 0} \cdot e^{x} \log \sqrt{x}",
        r"\underbrace{\frac{\partial L}{\partial \hat{Y}}}_{\text{known}} \leftarrow \textcircled{1}",
    ],
    ids=["gradient", "conv", "text", "braces", "misc", "underbrace"],
)
def test_known_macros_convert(latex):
    root = parsed(latex)
    assert root.tag == NS + "math" and root.get("display") == "block"
    text = "".join(root.itertext())
    assert "\\" not in text


def test_frac_is_a_fraction_of_two_parts():
    (frac,) = parsed(r"\frac{a}{b}").iter(NS + "mfrac")
    assert ["".join(part.itertext()) for part in frac] == ["a", "b"]


def test_an_operator_built_from_parts_keeps_its_parts():
    # \mathbin{\star_{full}}: latex2mathml nests the subscript inside an <mo>, which a browser shows as bare text
    root = parsed(r"g \mathbin{\star_{\mathrm{full}}} w")
    for token in ("mi", "mo", "mn", "mtext"):
        for e in root.iter(NS + token):
            assert len(e) == 0, f"<{token}> with child elements"
    (sub,) = root.iter(NS + "msub")
    assert [e.text for e in sub.iter(NS + "mo")] == ["⋆"] and "".join(sub.itertext()) == "⋆full"


def test_inline_and_display():
    assert parsed("x", display=False).get("display") == "inline"
    assert parsed("x", display=True).get("display") == "block"


@pytest.mark.parametrize(
    "latex",
    [
        r"\foo",
        r"x + \foo{y}",
        r"\textbf{\foo}",
        r"\begin{foo} a \end{foo}",
        r"\frac{a}",
        r"{a",
        r"a}",
        r"x & y",
        r"\left( x",
        r"\href{javascript:alert(1)}{x}",
        r"f\'(x)",
    ],
    ids=[
        "macro",
        "macro-arg",
        "nested",
        "environment",
        "missing-arg",
        "open-brace",
        "close-brace",
        "stray-&",
        "left",
        "href",
        "accent",
    ],
)
def test_what_cannot_be_shown_raises(latex):
    with pytest.raises(MathError) as err:
        math_element(latex, display=True)
    assert isinstance(err.value, InputError)


def test_an_unknown_macro_is_named():
    with pytest.raises(MathError, match=r"\\foo"):
        math_element(r"a + \foo b", display=False)


def test_aligned_is_a_table_of_rows_and_columns():
    root = parsed(r"\begin{aligned} a &= b + c \\ &= d \end{aligned}")
    rows = list(root.iter(NS + "mtr"))
    assert len(rows) == 2
    assert ["".join(cell.itertext()).strip() for cell in rows[0]] == ["a", "=b+c"]
    assert ["".join(cell.itertext()).strip() for cell in rows[1]] == ["", "=d"]


def test_cases_is_a_brace_and_a_table():
    root = parsed(r"f = \begin{cases} 1 & \text{if } x > 0 \\ 0 & \text{otherwise} \end{cases}")
    assert [e.text for e in root.iter(NS + "mo")][:2] == ["=", "{"]
    rows = list(root.iter(NS + "mtr"))
    assert len(rows) == 2 and "".join(rows[1].itertext()) == "0otherwise"


@pytest.mark.parametrize("env", ["align", "align*", "gather", "gathered", "eqnarray", "multline", "split", "pmatrix"])
def test_display_environments(env):
    latex = "\\begin{" + env + "} a &= b \\\\ c &= d \\end{" + env + "}"
    assert tags(latex).count("mtr") == 2


@pytest.mark.parametrize(
    "latex, shown",
    [
        (r"\text{<script>alert(1)</script>}", "<script>alert(1)</script>"),
        (r"\text{</math><img src=x onerror=alert(1)>}", "</math><img src=x onerror=alert(1)>"),
        (r'\text{a & b "q"}', 'a & b "q"'),
        (r"\mathrm{javascript:alert(1)}", "javascript:alert(1)"),
    ],
    ids=["script", "close-math", "ampersand", "javascript"],
)
def test_text_stays_text(latex, shown):
    markup = math_element(latex, display=True)
    assert "<script" not in markup and "<img" not in markup and "</math>" not in markup[:-7]
    # an XML parser sees one math element whose text is the user's text, character for character
    root = ET.fromstring(markup)
    assert [e.tag.removeprefix(NS) for e in root.iter()].count("math") == 1
    assert "".join(root.itertext()).replace("\u00a0", " ") == shown


def test_markup_outside_text_stays_text():
    root = ET.fromstring(math_element("</math><script>x", display=False))
    assert "".join(root.itertext()) == "</math><script>x"


def test_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="LaTeX string"):
        math_element(3, display=True)


def test_html_page_is_self_contained_and_escapes_its_title():
    page = html_page("<script>alert(1)</script> & notes", "<p>body</p>")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; notes</title>" in page
    assert "<script" not in page
    lowered = page.lower()
    assert "http://" not in lowered.replace("http://www.w3.org", "") and "https://" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    assert "default-src 'none'" in page


@pytest.mark.parametrize(
    "verdict, symbol, kind",
    [
        ("proved", "✓", "ok"),
        ("follows", "✓", "ok"),
        ("does not follow", "✗", "wrong"),
        ("refuted", "✗", "wrong"),
        ("not checked", "?", "unknown"),
        ("definition", "≡", "definition"),
    ],
)
def test_marks(verdict, symbol, kind):
    html = mark(verdict)
    assert f"mark-{kind}" in html and f">{symbol}</span>" in html
    assert f".mark-{kind} {{ color:" in html_page("x", "")


def test_an_unknown_mark_is_refused():
    with pytest.raises(ValueError, match="no verdict mark"):
        mark("maybe")


# -- the browser helper ------------------------------------------------------------------


def test_the_helper_sees_raw_tex_and_errors():
    assert raw_tex(r"<p>where \frac{a}{b} is</p>") == [r"\frac"]
    assert raw_tex("<p>$$x$$</p>") == ["$$", "$$"]
    assert raw_tex(r"<p>ok</p><pre>\frac{a}{b}</pre><code>\dots</code>") == []
    assert raw_tex(r"<math><mi>\foo</mi></math>") == [r"\foo"]
    assert page_text("<math><merror><mtext>x</mtext></merror></math>").merrors == 1
    with pytest.raises(AssertionError, match="MathML error"):
        assert_math_rendered("<math><merror><mtext>x</mtext></merror></math>")
    with pytest.raises(AssertionError, match="raw TeX"):
        assert_math_rendered(r"<math><mi>x</mi></math><p>\alpha</p>")


def test_a_page_renders_in_chromium(tmp_path):
    body = (
        "<h1>Notes</h1><p>"
        + " ".join(mark(v) for v in ("follows", "does not follow", "unknown", "definition"))
        + "</p>"
        + math_element(r"\frac{\partial L}{\partial x_{ij}} = \sum_k w_{ki} g_k", True)
        + math_element(r"\begin{aligned} y &= w x + b \\ &= \text{<script>}\end{aligned}", True)
    )
    path = tmp_path / "page.html"
    path.write_text(html_page("notes", body), encoding="utf-8")
    page = render_page(path, screenshot=tmp_path / "page.png", size=(800, 500), printed=True)
    text = assert_math_rendered(page.dom, min_maths=2)
    assert text.marks == ["mark-ok", "mark-wrong", "mark-unknown", "mark-definition"]
    assert "<script>" not in page.dom.split("</style>", 1)[1].replace("&lt;script&gt;", "")
    printed = page.printed
    for symbol in "✓✗?≡":
        assert symbol in printed
    assert "∂" in printed and "∑" in printed  # the fraction and the sum were laid out as math
    assert page.screenshot.stat().st_size > 2000


def test_raw_tex_on_a_page_is_caught_in_chromium(tmp_path):
    path = tmp_path / "bad.html"
    path.write_text(
        html_page("bad", r"<p>$$\frac{a}{b}$$</p><math><merror><mtext>x</mtext></merror></math>"), encoding="utf-8"
    )
    dom = render_page(path).dom
    assert raw_tex(dom) == ["$$", r"\frac", "$$"]
    assert page_text(dom).merrors == 1
