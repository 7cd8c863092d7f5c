r"""Test helper: an HTML file as headless Chromium renders it (DOM, screenshot, printed text).

Used by the tests of HTML reports and annotated audits (``from browser import ...`` in a test
under ``tests/render/``, whose folder pytest puts on ``sys.path``)::

    page = render_page(path, screenshot=tmp_path / "page.png", printed=True)  # one Chromium run
    assert_math_rendered(page.dom)          # no raw TeX on the page, no MathML error nodes
    assert "✓" in page.printed              # the marks survive layout (PDF print, pdftotext)

Each call starts its own Chromium with a throw-away profile (other test processes may run
Chromium at the same time), no network beyond the file, and a time limit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60
#: text shown as code on purpose (a formula that could not be converted is shown verbatim)
VERBATIM_TAGS = frozenset({"code", "pre", "kbd", "samp"})
HIDDEN_TAGS = frozenset({"style", "script", "title", "head", "annotation", "annotation-xml"})
RAW_TEX = re.compile(r"\\[A-Za-z]+|\$\$|\\\[|\\\]|\\\(|\\\)|\\begin|\\end")


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page: the DOM after loading, the screenshot's path (or None) and
    the text of the page as laid out and printed to PDF ('' when not asked)."""

    dom: str
    screenshot: Path | None
    printed: str = ""


def _chromium(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        raise AssertionError("chromium is not installed (.ci/run installs Debian's chromium package)")
    with tempfile.TemporaryDirectory(prefix="sd-chromium-") as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-extensions",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def render_page(
    path: str | Path, screenshot: str | Path | None = None, size: tuple[int, int] = (1000, 2000), printed: bool = False
) -> Rendered:
    """The rendered DOM of an HTML file, a screenshot of ``size`` (width, height) if asked, and with
    ``printed`` the page's text as laid out (printed to PDF, read back by pdftotext). One Chromium run.

    >>> page = render_page("report.html", screenshot="report.png", printed=True)  # doctest: +SKIP
    """
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="sd-print-") as folder:
        args = ["--dump-dom"]
        shot = None if screenshot is None else Path(screenshot).resolve()
        if shot is not None:
            args += [f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}"]
        pdf = Path(folder) / "page.pdf"
        if printed:
            args += ["--no-pdf-header-footer", f"--print-to-pdf={pdf}"]
        dom = _chromium(*args, url).stdout
        if shot is not None and (not shot.is_file() or shot.stat().st_size == 0):
            raise AssertionError(f"chromium wrote no screenshot of {path}")
        text = _pdf_text(pdf) if printed else ""
    return Rendered(dom, shot, text)


def _pdf_text(pdf: Path) -> str:
    if not pdf.is_file():
        raise AssertionError("chromium printed no PDF")
    done = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"pdftotext failed: {done.stderr}")
    return done.stdout


def printed_text(path: str | Path) -> str:
    """The text of the page as laid out (Chromium prints it to PDF, pdftotext reads the PDF back).

    Only what the layout shows is there: a glyph the page's fonts lack, or text hidden by the
    stylesheet, is not.
    """
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="sd-print-") as folder:
        pdf = Path(folder) / "page.pdf"
        _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
        return _pdf_text(pdf)


class _PageText(HTMLParser):
    """Splits a page's text into prose (outside math and code), math token text, and verbatim code."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.prose: list[str] = []
        self.math: list[str] = []
        self.verbatim: list[str] = []
        self.merrors = 0
        self.maths = 0
        self.marks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "merror":
            self.merrors += 1
        if tag == "math":
            self.maths += 1
        classes = (dict(attrs).get("class") or "").split()
        if "mark" in classes:
            self.marks.append(next((c for c in classes if c.startswith("mark-")), "mark"))
        if tag not in ("br", "hr", "img", "meta", "link", "input", "mspace", "mprescripts", "none"):
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag == "merror":
            self.merrors += 1

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        inside = set(self.stack)
        if inside & HIDDEN_TAGS:
            return
        if inside & VERBATIM_TAGS:
            self.verbatim.append(data)
        elif "math" in inside:
            self.math.append(data)
        else:
            self.prose.append(data)


def page_text(dom: str) -> _PageText:
    """The DOM's text, split into ``prose``, ``math`` and ``verbatim`` lists, with counts of
    ``<math>`` elements (``maths``), ``<merror>`` nodes (``merrors``) and the ``marks`` (classes)."""
    parser = _PageText()
    parser.feed(dom)
    parser.close()
    return parser


def raw_tex(dom: str) -> list[str]:
    """The TeX left as text on the page: control words and math delimiters in prose or inside math
    (code and pre blocks excepted: a formula shown verbatim on purpose is there)."""
    text = page_text(dom)
    found = [m.group(0) for chunk in text.prose for m in RAW_TEX.finditer(chunk)]
    found += [chunk for chunk in text.math if "\\" in chunk]
    return found


def assert_math_rendered(dom: str, min_maths: int = 1) -> _PageText:
    """Fail unless the page has at least ``min_maths`` MathML formulas, no ``<merror>`` and no raw TeX."""
    text = page_text(dom)
    assert text.maths >= min_maths, f"{text.maths} <math> elements on the page, expected at least {min_maths}"
    assert text.merrors == 0, f"{text.merrors} MathML error nodes on the page"
    leftover = raw_tex(dom)
    assert leftover == [], f"raw TeX on the page: {leftover[:10]}"
    return text


__all__ = ["CHROMIUM", "Rendered", "assert_math_rendered", "page_text", "printed_text", "raw_tex", "render_page"]
