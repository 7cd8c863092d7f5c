"""NumPy code (the README's ``symderive.codegen``): modules and tests from proved claims.

The lowering lives in :mod:`symderive.emit`; this façade keeps the documented path and
proves claims through :func:`symderive.prove.prove` (looked up at each call).

>>> "def grad_x" in emit_numpy("linear")
True
"""

from __future__ import annotations

import ast
import dataclasses
import warnings
from collections.abc import Mapping

import sympy as sp

from . import prove as prove_api
from .decide.verdict import PROVED, Verdict
from .emit import codegen as emitter
from .emit.codegen import ClaimNotProved, CodegenRefusal, NotVectorisable, known_claims
from .model.layer import as_layer

__all__ = [
    "ClaimNotProved",
    "CodegenRefusal",
    "NotVectorisable",
    "emit_numpy",
    "emit_tests",
    "gather_warnings",
    "known_claims",
    "solved_claims",
]

#: seconds ``solve`` may spend on one input that has no claim (issue 16's budget per input): a
#: safety only; the search itself is bounded by SOLVE_CANDIDATES, so that the module is the
#: same on every machine
SOLVE_TIMEOUT = 30.0
#: candidates ``solve`` builds per pass for an input that has no claim (a deterministic budget:
#: the built-in layers' closed forms need at most a few thousand, and the whole budget of both
#: passes runs in well under the safety timeout on a CI machine)
SOLVE_CANDIDATES = 10000


def _prover(memo=None):
    """:func:`symderive.prove.prove` as it is at the call (tests replace it), sharing ``memo``."""

    def prove(*args, **kwargs) -> Verdict:
        if memo is not None:
            kwargs["memo"] = memo
        return prove_api.prove(*args, **kwargs)

    return prove


def emit_numpy(
    layer,
    claims: Mapping[str, str] | None = None,
    check: bool = True,
    verdicts: Mapping[str, Verdict] | None = None,
    memo=None,
    solve_timeout: float | None = SOLVE_TIMEOUT,
) -> str:
    """The source of a standalone NumPy module for a layer's forward pass and gradients.

    See :func:`symderive.emit.codegen.emit_numpy`; ``memo`` (a :class:`symderive.prove.Memo`)
    shares proofs with the caller's other calls about this layer object. An input with
    neither a given nor a known claim gets the closed form :func:`symderive.search.solve`
    proves (within ``solve_timeout`` seconds; None: no search); failing that, its derived
    index form, with a ``UserWarning`` when that code gathers (:func:`gather_warnings`).

    >>> "def grad_w" in emit_numpy("linear", claims={"w": "outer(g, x)"})
    True
    """
    layer = as_layer(layer)
    if solve_timeout is not None:
        claims, verdicts = solved_claims(layer, claims, verdicts, timeout=solve_timeout)
    for message in gather_warnings(layer, claims):
        warnings.warn(message, UserWarning, stacklevel=2)
    return emitter.emit_numpy(layer, claims, check=check, verdicts=verdicts, prove=_prover(memo))


def emit_tests(
    layer,
    module_name: str,
    claims: Mapping[str, str] | None = None,
    sizes_count: int = 3,
    memo=None,
    solve_timeout: float | None = SOLVE_TIMEOUT,
) -> str:
    """Pytest tests for an emitted module (see :func:`symderive.emit.codegen.emit_tests`);
    inputs without a claim get the closed forms :func:`emit_numpy` emits for them.

    >>> "def test_grad_x" in emit_tests("linear", "linear_grads")
    True
    """
    layer = as_layer(layer)
    if solve_timeout is not None:
        claims, _ = solved_claims(layer, claims, timeout=solve_timeout)
    return emitter.emit_tests(layer, module_name, claims, sizes_count=sizes_count, prove=_prover(memo))


def solved_claims(
    layer, claims: Mapping[str, str] | None = None, verdicts: Mapping[str, Verdict] | None = None, *, timeout=30.0
) -> tuple[dict[str, str], dict[str, Verdict]]:
    """``claims`` and ``verdicts`` completed with the simplest closed form ``solve`` proves for
    each differentiable input that has neither a given claim nor a known one.

    A solved claim comes with its proved verdict (the emitter does not prove it again);
    only one proved under the layer's own assumptions is taken (code holds at every size
    the layer allows). Claims of any other input are left as they are. The search is
    bounded by :data:`SOLVE_CANDIDATES` (the same answer on every machine); ``timeout`` is a
    safety: a search that runs past it gives no claim and a ``UserWarning`` that says so.

    >>> solved_claims("linear", {"x": "w.T @ g"})[0]
    {'x': 'w.T @ g'}
    """
    from .search import SolveTimeout, solve

    if claims is not None and not isinstance(claims, Mapping):
        raise TypeError(f"claims maps input names to claim strings, got {type(claims).__name__}")
    layer = as_layer(layer)
    claims, verdicts = dict(claims or {}), dict(verdicts or {})
    stated = {a.text for a in layer.assumptions}
    for wrt in layer.differentiable:
        if wrt in claims or _has_known_claim(layer, wrt):
            continue
        try:
            result = solve(layer, wrt, max_results=1, timeout=timeout, max_candidates=SOLVE_CANDIDATES)
        except SolveTimeout:
            warnings.warn(
                f"the search for a closed form of d{wrt} of layer {layer.name} ran past its {timeout:g} s safety "
                "timeout (this machine is slow or busy): its index form is emitted instead",
                UserWarning,
                stacklevel=2,
            )
            continue
        for found in result.claims:
            text = _inlined_claim(layer, found.claim)
            if found.verdict.verdict == PROVED and set(found.verdict.assumptions) <= stated and text is not None:
                # the code reads the inputs only: a named intermediate is spelled out (its
                # definition, so the same claim and the same proof)
                claims[wrt] = text
                verdicts[wrt] = found.verdict if text == found.claim else dataclasses.replace(found.verdict, claim=text)
                break
    return claims, verdicts


def _inlined_claim(layer, text: str) -> str | None:
    """``text`` with each named intermediate replaced by its definition (those above it spelled
    out too), or None when one it names is in index form.

    >>> _inlined_claim(as_layer("softmax_cross_entropy"), "p - t")
    'softmax(s) - t'
    """
    definitions = {i.name: i for i in getattr(layer, "intermediates", ())}
    if not definitions:
        return text

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id not in definitions:
                return node
            defined = definitions[node.id]
            if defined.tree is None:
                raise ValueError(node.id)
            return self.visit(ast.parse(defined.text.strip(), mode="eval").body)

    try:
        tree = Inline().visit(ast.parse(text.strip(), mode="eval"))
    except ValueError:
        return None
    return ast.unparse(tree)


def _has_known_claim(layer, wrt: str) -> bool:
    # known_claims' filter without parsing the claims (they are parsed when emitted)
    return any(c.wrt == wrt and c.expect == PROVED and not c.assume for c in layer.claims)


def gather_warnings(layer, claims: Mapping[str, str] | None = None) -> list[str]:
    """One message per input whose emitted gradient will be gather code: it has no claim
    (given or known) and its derived index form gathers; each says the memory the gather takes.

    >>> gather_warnings("linear")
    []
    """
    layer = as_layer(layer)
    messages = []
    for wrt in layer.differentiable:
        if wrt in (claims or {}) or _has_known_claim(layer, wrt):
            continue
        size = emitter.gather_bytes(layer, wrt)
        if size is None:
            continue
        typical = emitter.typical_sizes(layer)
        at = ", ".join(f"{s} = {v}" for s, v in typical.items())
        mib = float(size.subs(typical)) / 2**20
        messages.append(
            f"no closed form found for d{wrt} of layer {layer.name}: emitting its index form as gather code, "
            f"which builds about {sp.sstr(size)} bytes ({mib:.3g} MiB at {at})"
        )
    return messages


def __getattr__(name: str):
    # the emitter's functions, reachable under the documented module as before
    return getattr(emitter, name)
