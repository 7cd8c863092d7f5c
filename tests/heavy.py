"""The built-in layers whose per-layer checks take longest (normalisations, attention, the
convolutions with stride, groups, dilation or a transpose), so that ``pytest -m "not slow"``
stays a quick loop: their cases in the per-layer sweeps carry the slow marker. CI runs them.

>>> [p.marks for p in by_weight(["linear", "batch_norm"])][0]
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

#: what pytest.param returns (its class is not public)
ParameterSet = type(pytest.param(None))

#: the per-layer sweeps take 10 s and more for each of these (2 cores, quiet machine)
HEAVY_LAYERS = frozenset(
    {
        "attention",
        "batch_norm",
        "layer_norm",
        "layer_norm_fn",
        "conv2d_nchw_s2p1",
        "conv2d_nchw_g2",
        "conv2d_nchw_d2",
        "conv_transpose2d_nchw",
    }
)


def by_weight(cases: Iterable, layer: Callable = lambda case: case) -> list:
    """``cases`` as pytest params, those of a heavy layer (``layer(case)`` names it) marked slow."""
    out = []
    for case in cases:
        # a case may already be a pytest.param (with its own id): its values name the layer
        values, marks, id_ = (
            (case.values, list(case.marks), case.id) if isinstance(case, ParameterSet) else (case, [], None)
        )
        values = values if isinstance(values, tuple) else (values,)
        if layer(values if len(values) > 1 else values[0]) in HEAVY_LAYERS:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(*values, marks=marks, id=id_))
    return out
