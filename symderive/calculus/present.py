"""The reader's derivation: the lean derivation's steps, then a separate presentation pass.

:func:`symderive.calculus.derive.derive` is what the prover needs (the gradient after the
delta elimination). :func:`present` is what a person reads -- the command line's
``symderive derive``, reports, notebooks: the forward element and the summed deltas with
the guards their ranges imply dropped, then the gradient's own guards dropped, the
gradient re-indexed and written by kernel offsets where that reads better, the steps
labelled with the layer's equation names and the summation variables renamed.

>>> from symderive.layer import load_layer
>>> [s.kind for s in present(load_layer("linear"), "x").steps][-1]
'result'
"""

from __future__ import annotations

from ..model.layer import as_layer
from .derive import (
    Derivation,
    Step,
    by_kernel_offsets,
    derivation_steps,
    partial_symbol,
    range_facts,
    readable_names,
    reindexed,
    simplify_guards,
    taken_names,
)


def present(layer, wrt: str) -> Derivation:
    """The gradient of ``layer``'s loss with respect to ``wrt``, step by step for a reader.

    >>> from symderive.layer import load_layer
    >>> d = present(load_layer("linear"), "x")
    >>> [s.kind for s in d.steps][:2]
    ['loss', 'forward']
    """
    layer = as_layer(layer)
    lean, at, out_idx = derivation_steps(layer, wrt, tidy=simplify_guards)
    steps = list(lean.steps)
    lhs = partial_symbol("L", wrt, at)
    eliminated = lean.gradient
    facts = list(layer.size_assumptions()) + range_facts(at, layer.inputs[wrt])
    gradient = simplify_guards(eliminated, facts)
    if gradient != eliminated:
        steps.append(
            Step(
                "guards",
                f"Drop the guards that hold for every {', '.join(map(str, at)) or 'value'} "
                f"inside the shape of {wrt} under the assumptions.",
                lhs,
                gradient,
            )
        )
    shifted = reindexed(gradient, layer.sizes)
    if shifted is not None:
        new_rhs, text = shifted
        steps.append(Step("reindex", text, lhs, new_rhs))
    by_offsets = by_kernel_offsets(gradient, at, layer.sizes)
    if by_offsets is not None:
        new_rhs, text = by_offsets
        steps.append(Step("kernel offsets", text, lhs, new_rhs))
    steps.append(Step("result", f"The gradient with respect to {wrt}.", lhs, gradient))
    return _labelled(layer, wrt, lean.index, gradient, steps, set(map(str, at)) | set(map(str, out_idx)))


def _labelled(layer, wrt: str, at, gradient, steps: list[Step], used: set[str]) -> Derivation:
    """The steps with the layer's equation labels and readable summation variables."""
    labels = layer.labels.get(wrt, {})
    steps = [Step(s.kind, s.text, s.lhs, s.rhs, labels.get(s.kind, s.label)) for s in steps]
    names = readable_names(steps, taken_names(layer) | used)
    steps = [Step(s.kind, s.text, s.lhs.xreplace(names), s.rhs.xreplace(names), s.label) for s in steps]
    return Derivation(layer=layer.name, wrt=wrt, index=at, gradient=gradient.xreplace(names), steps=tuple(steps))
