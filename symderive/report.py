"""Reports (the README's ``symderive.report``): a layer's derivations and verdicts as PDF, LaTeX, Markdown or HTML.

This façade does the work a report shows -- derives each input's gradient, proves each
claim within its time, emits the NumPy module of the proved ones -- and hands the
results to the renderer (:mod:`symderive.render.report`), which only lays them out.
``sd.report(...)`` calls :func:`report`; the renderer's own functions (``math_latex``,
``compile_pdf`` ...) are reachable here too.

>>> "documentclass" in render_tex("linear")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import prove as prove_api
from ._callable import make_callable
from .calculus.present import present
from .clock import ClaimTimeout, wall_clock
from .decide.verdict import REFUTED, UNKNOWN, Verdict
from .emit import codegen as emitter
from .errors import InputError
from .model.layer import as_layer
from .render import report as renderer
from .render.html import html_document
from .render.markdown import markdown_document
from .render.report import Evidence, LatexError, check_output, claims_by_input, compile_pdf, write_report

__all__ = [
    "Evidence",
    "LatexError",
    "compile_pdf",
    "evidence",
    "render_html",
    "render_markdown",
    "render_tex",
    "report",
    "report_data",
    "report_document",
]


def report(
    layer,
    claims: Mapping | None = None,
    output: str | Path = "report.pdf",
    wrt=None,
    timeout: float | None = None,
    code: bool = False,
    variants: bool = True,
) -> Path:
    """Write a layer's report to ``output``; its suffix says the format: ``.pdf`` (compiled
    with latexmk), ``.tex``, ``.md`` (GitHub/Jupyter Markdown) or ``.html`` (one file, MathML).

    ``claims`` maps input names to a claim or a list of claims (default: the layer's
    known claims); ``wrt`` names the inputs to report on (default: the ones named in
    ``claims``, else every differentiable input); ``timeout`` bounds each claim's proof
    in seconds (a claim out of time shows as unknown, with the reason); ``code`` adds the
    emitted NumPy module as an appendix; ``variants`` looks for the nearest true variant of
    each refuted claim (a few seconds each) to say what would hold.

    >>> # report(load_layer("conv2d"), {"x": 'convolve(g, w, "full")'}, "conv2d.pdf")
    """
    layer = as_layer(layer)  # anything but a Layer, a name or a path is a TypeError saying so
    if claims is not None and not isinstance(claims, Mapping):
        raise TypeError(f"claims maps input names to a claim or a list of claims, got {type(claims).__name__}")
    output = check_output(output)
    document = report_document(layer, claims, wrt, timeout, code, variants)
    suffix = output.suffix.lower()
    if suffix == ".md":
        text = markdown_document(document)
    elif suffix == ".html":
        text = html_document(document)
    else:
        text = renderer.latex_document(document)
    return write_report(text, output)


def report_document(
    layer,
    claims: Mapping | None = None,
    wrt=None,
    timeout: float | None = None,
    code: bool = False,
    variants: bool = True,
):
    """The report as format-neutral blocks (:mod:`symderive.render.blocks`), derived and proved now."""
    layer = as_layer(layer)
    found = evidence(layer, claims, wrt, timeout, code=code, variants=variants)
    return renderer.report_document(layer, found, code)


def render_tex(
    layer,
    claims: Mapping | None = None,
    wrt=None,
    timeout: float | None = None,
    code: bool = False,
    variants: bool = True,
) -> str:
    """The report's LaTeX source (see :func:`report` for the arguments)."""
    return renderer.latex_document(report_document(layer, claims, wrt, timeout, code, variants))


def render_markdown(
    layer,
    claims: Mapping | None = None,
    wrt=None,
    timeout: float | None = None,
    code: bool = False,
    variants: bool = True,
) -> str:
    """The report as GitHub/Jupyter Markdown (see :func:`report` for the arguments)."""
    return markdown_document(report_document(layer, claims, wrt, timeout, code, variants))


def render_html(
    layer,
    claims: Mapping | None = None,
    wrt=None,
    timeout: float | None = None,
    code: bool = False,
    variants: bool = True,
) -> str:
    """The report as one self-contained HTML page (see :func:`report` for the arguments)."""
    return html_document(report_document(layer, claims, wrt, timeout, code, variants))


def report_data(layer, claims: Mapping | None = None, wrt=None, timeout: float | None = None) -> dict:
    """Everything a report shows, derived and proved now, as template data.

    ``timeout`` (seconds) bounds each claim's proof; a claim that runs out of time is
    shown as unknown with the reason (None: :func:`symderive.prove.prove`'s default).
    """
    layer = as_layer(layer)
    return renderer.report_data(layer, evidence(layer, claims, wrt, timeout))


def evidence(
    layer,
    claims: Mapping | None = None,
    wrt=None,
    timeout: float | None = None,
    code: bool = True,
    variants: bool = False,
) -> Evidence:
    """The derivations, verdicts (a refuted one with its nearest true variant, when one is found)
    and, with ``code``, the emitted module a report on ``layer`` shows.

    >>> [name for name, _, _ in evidence("linear", {"x": "w.T @ g"}).sections]
    ['x']
    """
    layer = as_layer(layer)
    memo = prove_api.Memo()  # the emitted module's proofs reuse the report's
    sections, chosen, proofs = [], {}, {}
    for name, entries in claims_by_input(layer, claims, wrt).items():
        derivation = present(layer, name)
        found = []
        for text, assume in entries:
            verdict = _verdict_within(layer, name, text, assume, timeout, memo)
            if variants and verdict.verdict == REFUTED:
                verdict = with_variants(layer, verdict, assume, timeout)
            found.append((text, assume, verdict))
            if verdict.proved and not assume and name not in chosen:
                chosen[name], proofs[name] = text, verdict
        sections.append((name, derivation, tuple(found)))
    module, note = emitted_module(layer, chosen, proofs, memo) if chosen and code else ("", "")
    return Evidence(sections=tuple(sections), chosen=chosen, module=module, note=note)


def _verdict_within(layer, wrt: str, claim: str, assume, timeout: float | None, memo=None):
    """The verdict, or unknown with the reason when ``timeout`` seconds run out first."""
    if timeout is None:
        return prove_api.prove(layer, wrt, claim, assume=assume, memo=memo)
    # prove's own timeout bounds its counterexample search; the wall clock bounds the proof
    try:
        with wall_clock(float(timeout)):
            return prove_api.prove(layer, wrt, claim, assume=assume, timeout=float(timeout), memo=memo)
    except ClaimTimeout:
        return Verdict(UNKNOWN, layer=layer.name, wrt=wrt, claim=claim, reason=f"timeout (after {timeout:g} s)")


#: seconds the search for a refuted claim's nearest true variant may take (at most the claim's own timeout)
VARIANT_TIMEOUT = 5.0


@dataclass(frozen=True)
class _WithVariants:
    """A refuted verdict and the nearest true variants of its claim (what the report shows)."""

    inner: Verdict
    variants: tuple = ()

    def __getattr__(self, name):
        # everything but the variants is the verdict's own (verdict, claim, counterexample ...)
        return getattr(self.inner, name)


def with_variants(layer, verdict: Verdict, assume=(), timeout: float | None = None):
    """A refuted verdict with the nearest true variants of its claim (the verdict's own, if it
    carries them; else :func:`symderive.search.nearest_variants`, within a few seconds)."""
    if getattr(verdict, "variants", None):
        return verdict
    from .search import nearest_variants

    budget = VARIANT_TIMEOUT if timeout is None else min(VARIANT_TIMEOUT, float(timeout))
    try:
        found = nearest_variants(layer, verdict.wrt, verdict.claim, timeout=budget, assume=tuple(assume))
    except Exception:  # noqa: BLE001  (no variant is shown rather than no report)
        return verdict
    return _WithVariants(verdict, tuple(found)) if found else verdict


def emitted_module(layer, claims: Mapping[str, str], verdicts=None, memo=None) -> tuple[str, str]:
    """(the emitted NumPy module for these proved claims, a note when there is none)."""

    def prove(*args, **kwargs):
        return prove_api.prove(*args, memo=memo, **kwargs)

    try:
        return emitter.emit_numpy(layer, claims=dict(claims), verdicts=verdicts, prove=prove), ""
    except (InputError, NotImplementedError, emitter.CodegenRefusal) as err:
        return "", f"(no code emitted: {err})"


def __getattr__(name: str):
    # the renderer's functions, reachable under the documented module as before
    return getattr(renderer, name)


make_callable(__name__)
