"""One self-contained HTML page: a stylesheet for notes with MathML math and verdict marks.

Every HTML file symderive writes (a report, an annotated audit) is :func:`html_page` around
its body: no scripts, no fonts or images fetched from anywhere (a Content-Security-Policy
says so to the browser too), so the file can be mailed or opened offline. Verdict marks
are :func:`mark` spans, styled and coloured by kind.

>>> "<style>" in html_page("notes", "<p>x</p>")
True
"""

from __future__ import annotations

import html
import re

#: mark kind -> (symbol, words for a screen reader); CSS class ``mark-<kind>``
MARKS = {
    "ok": ("\u2713", "holds"),
    "wrong": ("\u2717", "does not hold"),
    "unknown": ("?", "not decided"),
    "definition": ("\u2261", "definition"),
}
#: verdict words (of prove and of audit) -> mark kind
MARK_OF_VERDICT = {
    "proved": "ok",
    "follows": "ok",
    "refuted": "wrong",
    "does not follow": "wrong",
    "unknown": "unknown",
    "not checked": "unknown",
    "error": "unknown",
    "definition": "definition",
}

STYLESHEET = """
:root { --ok: #1a7f37; --wrong: #c62828; --unknown: #9a6700; --definition: #3b5bab;
        --ink: #1f2328; --muted: #59636e; --rule: #d0d7de; --wrong-bg: #fdecea; }
html { font-size: 17px; }
body { font-family: "Latin Modern Roman", "Computer Modern Serif", Georgia, "Times New Roman", serif;
       color: var(--ink); background: #fff; line-height: 1.55; max-width: 46rem;
       margin: 2.5rem auto 4rem; padding: 0 1.25rem; }
h1 { font-size: 1.7rem; line-height: 1.25; margin: 0 0 0.4rem; font-weight: 600; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; border-bottom: 1px solid var(--rule); padding-bottom: 0.2rem; font-weight: 600; }
h3 { font-size: 1.08rem; margin: 1.6rem 0 0.4rem; font-weight: 600; }
p, li { margin: 0.45rem 0; }
.muted, .subtitle { color: var(--muted); }
code, pre, .verbatim { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.86em; }
code { overflow-wrap: anywhere; }
pre, .verbatim { background: #f6f8fa; border: 1px solid var(--rule); border-radius: 4px;
                 padding: 0.5rem 0.7rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", math; font-size: 1.06em; }
math[display="block"] { display: block math; margin: 0.6rem 0; overflow-x: auto; overflow-y: hidden; }
mtd[columnalign="right"] { text-align: right; }
mtd[columnalign="left"] { text-align: left; }
mtd[columnalign="right"] { padding-right: 0; }  /* an aligned pair r&l sits together, as in LaTeX */
mtd[columnalign="right"] + mtd[columnalign="left"] { padding-left: 0; }
.mark { display: inline-block; min-width: 1.3em; text-align: center; font-weight: 700;
        font-family: "DejaVu Sans", "Segoe UI Symbol", sans-serif; border-radius: 3px; }
.mark-ok { color: var(--ok); }
.mark-wrong { color: var(--wrong); }
.mark-unknown { color: var(--unknown); }
.mark-definition { color: var(--definition); }
.entry { display: grid; grid-template-columns: 3.2rem 1.8rem minmax(0, 1fr); column-gap: 0.5rem;
         align-items: start; padding: 0.35rem 0.4rem; border-left: 3px solid transparent; }
.entry + .entry { border-top: 1px solid #eef0f2; }
.entry .line { color: var(--muted); font-size: 0.8rem; padding-top: 0.55rem; text-align: right;
               font-family: "DejaVu Sans", sans-serif; }
.entry .mark { font-size: 1.2rem; padding-top: 0.3rem; }
.entry .body { min-width: 0; }
.entry .body math[display="block"] { margin: 0.25rem 0; }
.entry.first-wrong { background: var(--wrong-bg); border-left-color: var(--wrong); }
.first-wrong-label { color: var(--wrong); font-weight: 700; font-size: 0.85rem;
                     font-family: "DejaVu Sans", sans-serif; text-transform: uppercase; letter-spacing: 0.04em; }
.verdict { font-family: "DejaVu Sans", sans-serif; font-size: 0.85rem; color: var(--muted); }
.verdict-wrong { color: var(--wrong); font-weight: 600; }
.verdict-ok { color: var(--ok); }
.verdict-unknown { color: var(--unknown); }
.verdict-definition { color: var(--definition); }
.reason, .counterexample { font-size: 0.92rem; margin: 0.2rem 0 0.3rem; }
.counterexample { border-left: 2px solid var(--wrong); padding-left: 0.6rem; }
.legend { font-family: "DejaVu Sans", sans-serif; font-size: 0.85rem; color: var(--muted); }
.legend .mark { min-width: 1em; }
table { border-collapse: collapse; margin: 0.6rem 0; }
th, td { border-bottom: 1px solid var(--rule); padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
figure { margin: 1rem 0; text-align: center; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9rem; color: var(--muted); }
.footnotes { font-size: 0.88rem; color: var(--muted); border-top: 1px solid var(--rule); margin-top: 2.5rem; }
@media print { body { margin: 0 auto; } .entry { break-inside: avoid; } }
"""

#: no scripts, no network: styles inline, images only as data: URLs or inline SVG
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def mark(kind: str) -> str:
    """The HTML of a verdict mark: a span ``mark mark-<kind>`` with the symbol, its meaning as a title.

    ``kind`` is a mark kind (``ok``, ``wrong``, ``unknown``, ``definition``) or a verdict word
    (``proved``, ``follows``, ``refuted``, ``not checked`` ...).

    >>> mark("proved")
    '<span class="mark mark-ok" title="holds" role="img" aria-label="holds">✓</span>'
    """
    kind = MARK_OF_VERDICT.get(kind, kind)
    if kind not in MARKS:
        raise ValueError(f"no verdict mark for {kind!r}: one of {', '.join(sorted(MARKS | MARK_OF_VERDICT))}")
    symbol, words = MARKS[kind]
    return f'<span class="mark mark-{kind}" title="{words}" role="img" aria-label="{words}">{symbol}</span>'


#: the class of the element that holds a fragment (a notebook cell's output)
FRAGMENT_CLASS = "symderive-output"
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")


def _scoped_selector(selector: str) -> str:
    if selector in (":root", "html", "body"):
        return f".{FRAGMENT_CLASS}"
    return f".{FRAGMENT_CLASS} {selector}"


def scoped_stylesheet(css: str = STYLESHEET) -> str:
    """The page's stylesheet with every rule limited to a fragment's element (no ``@media`` blocks):
    a notebook's own page keeps its look.

    >>> print(scoped_stylesheet("body { color: red; } h1, p { margin: 0; }"))
    .symderive-output { color: red; }
    .symderive-output h1, .symderive-output p { margin: 0; }
    """
    css = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = []
    for selectors, body in _RULE.findall(css):
        scoped = ", ".join(_scoped_selector(s.strip()) for s in selectors.split(",") if s.strip())
        rules.append(f"{scoped} {{ {' '.join(body.split())} }}")
    return "\n".join(rules)


def html_fragment(body_html: str) -> str:
    """``body_html`` in one element with the stylesheet limited to it (for a notebook cell's output).

    >>> html_fragment("<p>x</p>").startswith('<div class="symderive-output"><style>')
    True
    """
    # inside a notebook the output sits in its cell: no page margins, the notebook's own size
    fit = f".{FRAGMENT_CLASS} {{ margin: 0.3rem 0; padding: 0; max-width: 52rem; font-size: 15px; background: none; }}"
    return f'<div class="{FRAGMENT_CLASS}"><style>{scoped_stylesheet()}\n{fit}</style>{body_html}</div>'


def html_page(title: str, body_html: str) -> str:
    """A whole HTML5 document: ``title`` (plain text, escaped here) and ``body_html`` (markup, as is).

    >>> page = html_page("a < b", "<p>hi</p>")
    >>> "<title>a &lt; b</title>" in page, page.startswith("<!DOCTYPE html>")
    (True, True)
    """
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="symderive">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{STYLESHEET}</style>\n"
        f"</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    )


__all__ = ["MARKS", "MARK_OF_VERDICT", "STYLESHEET", "html_fragment", "html_page", "mark", "scoped_stylesheet"]
