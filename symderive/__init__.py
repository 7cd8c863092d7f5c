"""symderive: symbolic checks of backpropagation derivations.

>>> import symderive as sd
>>> sd.prove("linear", "x", "w.T @ g").verdict
'proved'
"""

from __future__ import annotations

import importlib

from . import display as _display

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
    "prove_identity": ("prove", "prove_identity"),
    "Verdict": ("decide.verdict", "Verdict"),
    "Counterexample": ("decide.verdict", "Counterexample"),
    "emit_numpy": ("codegen", "emit_numpy"),
    "emit_tests": ("codegen", "emit_tests"),
    "report": ("report", "report"),
    "solve": ("search", "solve"),
    "SolveResult": ("search", "SolveResult"),
    "nearest_variants": ("search", "nearest_variants"),
    "audit": ("audit", "audit"),
    "check_implementation": ("checking", "check_implementation"),
    "ImplementationReport": ("checking", "ImplementationReport"),
    "InputError": ("errors", "InputError"),
    "InternalError": ("errors", "InternalError"),
}
# name -> module: the submodules reachable as attributes (``sd.ir``), wherever they live
_SUBMODULES = {
    "testing": "testing",
    "ops": "core.ops",
    "ir": "core.ir",
    "tree": "core.tree",
    "concrete": "decide.concrete",
    "language": "core.parse",
    "counterexample": "counterexample",
}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        if module == attr:
            # the module itself: callable like its function, and what importing it binds here
            return importlib.import_module(f".{module}", __name__)
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'symderive' has no attribute {name!r}")


def _verdict_markdown(verdict) -> str:
    from .render.report import verdict_markdown

    return verdict_markdown(verdict)


def _derivation_markdown(derivation) -> str:
    from .render.report import derivation_markdown

    return derivation_markdown(derivation)


def _notebook(name: str):
    """The renderer ``render.notebook.<name>``, imported when a notebook first shows a result."""

    def render(obj) -> str:
        from .render import notebook

        return getattr(notebook, name)(obj)

    render.__name__ = name
    return render


# notebooks show results through the renderer, which they cannot import (it sits above or beside them)
_display.register_markdown("Verdict", _verdict_markdown)
_display.register_markdown("Derivation", _derivation_markdown)
for _kind, _class, _name in (
    ("latex", "Verdict", "verdict_latex"),
    ("html", "Verdict", "verdict_html"),
    ("latex", "Derivation", "derivation_latex"),
    ("html", "Derivation", "derivation_html"),
    ("markdown", "SolveResult", "solve_markdown"),
    ("latex", "SolveResult", "solve_latex"),
    ("html", "SolveResult", "solve_html"),
    ("markdown", "Audit", "audit_markdown"),
    ("latex", "Audit", "audit_latex"),
    ("html", "Audit", "audit_html"),
):
    _display.register(_class, _kind, _notebook(_name))
del _kind, _class, _name
