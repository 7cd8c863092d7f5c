"""pytest plugin: every ``[[claims]]`` entry of a layer file is a test item.

Files matching the ini option ``symderive_files`` (default ``*.symd.toml``) are loaded
as layers; each claim is proved, and the item passes when the verdict is the entry's
``expect`` (``proved`` unless it says ``refuted`` or ``unknown``). A failure shows the
counterexample or the reason, never a traceback into symderive; an invalid layer file is a
collection error with its one-line message.

Registered through the ``pytest11`` entry point; symderive itself (SymPy, z3) is imported
only when a layer file is collected, so the plugin costs nothing to other test suites.
"""

from __future__ import annotations

import fnmatch

import pytest

DEFAULT_PATTERNS = ["*.symd.toml"]


def pytest_addoption(parser):
    group = parser.getgroup("symderive", "symderive: gradient claims in layer files")
    parser.addini(
        "symderive_files",
        type="args",
        default=DEFAULT_PATTERNS,
        help="glob patterns of layer files whose [[claims]] are collected as tests (default: *.symd.toml)",
    )
    parser.addini("symderive_timeout", default="60", help="seconds allowed per claim (default 60)")
    group.addoption(
        "--symderive-files",
        action="append",
        default=None,
        metavar="GLOB",
        help="collect layer files matching GLOB (overrides the symderive_files ini option; repeatable)",
    )


def _patterns(config) -> list[str]:
    return config.getoption("symderive_files") or config.getini("symderive_files") or DEFAULT_PATTERNS


def pytest_collect_file(file_path, parent):
    if any(fnmatch.fnmatch(file_path.name, p) for p in _patterns(parent.config)):
        return LayerFile.from_parent(parent, path=file_path)
    return None


class ClaimFailed(Exception):
    """A claim's verdict is not the one its entry expects (carries the rendered verdict)."""


class LayerFile(pytest.File):
    """A layer file: one item per ``[[claims]]`` entry."""

    def collect(self):
        from .errors import InputError
        from .model.layer import load_layer

        try:
            layer = load_layer(str(self.path))
        except InputError as exc:
            raise self.CollectError(" ".join(str(exc).split())) from None
        seen: dict[str, int] = {}
        for claim in layer.claims:
            name = _item_name(layer.name, claim)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            yield ClaimItem.from_parent(self, name=name, layer=layer, claim=claim)


def _item_name(layer_name: str, claim) -> str:
    """``layer[dwrt = claim]``, with the claim's own assumptions when it has any."""
    from .render.text import claim_heading

    extra = f" assuming {', '.join(claim.assume)}" if claim.assume else ""
    return f"{layer_name}[{claim_heading(claim.wrt, claim.claim)}{extra}]"


class ClaimItem(pytest.Item):
    """One claim of a layer file, proved when run."""

    def __init__(self, *, layer, claim, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.claim = claim

    def runtest(self):
        from .prove import prove
        from .render.text import render_verdict

        timeout = float(self.config.getini("symderive_timeout") or 60)
        verdict = prove(self.layer, self.claim.wrt, self.claim.claim, assume=self.claim.assume, timeout=timeout)
        if verdict.verdict != self.claim.expect:
            raise ClaimFailed(f"expected {self.claim.expect}, got {verdict.verdict}\n{render_verdict(verdict)}")

    def repr_failure(self, excinfo, style=None):
        from .errors import InputError

        if isinstance(excinfo.value, ClaimFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, InputError):
            return f"input error: {' '.join(str(excinfo.value).split())}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        from .render.text import claim_heading

        return self.path, None, f"{self.layer.name}: {claim_heading(self.claim.wrt, self.claim.claim)}"
