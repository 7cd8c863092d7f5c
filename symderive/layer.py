"""Layers (the README's ``symderive.layer``): load a built-in name or a TOML file.

The model lives in :mod:`symderive.model.layer`; this façade keeps the documented path.

>>> load_layer("linear").name
'linear'
"""

from __future__ import annotations

from .model.layer import (
    Assumption,
    KnownClaim,
    Layer,
    as_layer,
    builtin_layer_names,
    check_extra_assumptions,
    describe_layer,
    layer_from_dict,
    load_layer,
)

__all__ = [
    "Assumption",
    "KnownClaim",
    "Layer",
    "as_layer",
    "builtin_layer_names",
    "check_extra_assumptions",
    "describe_layer",
    "layer_from_dict",
    "load_layer",
]


def __getattr__(name: str):
    # the model's other names (LAYERS_DIR, size_text, ...), reachable here as before the move
    from .model import layer as model

    return getattr(model, name)
