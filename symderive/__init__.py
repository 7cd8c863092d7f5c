"""symderive: symbolic checks of backpropagation derivations.

>>> import symderive as sd
>>> sd.prove("linear", "x", "w.T @ g").verdict
'proved'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute): the public API, imported on first use so that
# `import symderive` (and the pytest plugin) stay light
_EXPORTS = {
    "load_layer": ("layer", "load_layer"),
    "builtin_layer_names": ("layer", "builtin_layer_names"),
    "Layer": ("layer", "Layer"),
    "derive": ("derive", "derive"),
    "Derivation": ("derive", "Derivation"),
    "prove": ("prove", "prove"),
    "Verdict": ("verdict", "Verdict"),
    "Counterexample": ("verdict", "Counterexample"),
    "emit_numpy": ("codegen", "emit_numpy"),
    "emit_tests": ("codegen", "emit_tests"),
    "report": ("report", "report"),
    "solve": ("search", "solve"),
    "SolveResult": ("search", "SolveResult"),
    "nearest_variants": ("search", "nearest_variants"),
    "check_implementation": ("checking", "check_implementation"),
    "ImplementationReport": ("checking", "ImplementationReport"),
    "InputError": ("errors", "InputError"),
    "InternalError": ("errors", "InternalError"),
}
_SUBMODULES = {"testing", "ops", "ir", "tree", "concrete", "language", "counterexample"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        if module == attr:
            # the module itself: callable like its function, and what importing it binds here
            return importlib.import_module(f".{module}", __name__)
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'symderive' has no attribute {name!r}")
