"""What tests/emit/test_torch.py and test_jax.py share (their fixtures: tests/emit/conftest.py): every built-in layer emitted once per target
(proofs and the pre-emission check's cases shared between the targets), the emitted pytest modules
run once per target in one process, and the oracle: each layer written in PyTorch operations by
hand (tests/test_layers_torch.py's, plus the five layers of the worked examples), differentiated
by torch autograd, at sizes with dimensions of 1, kernels as large as the input and non-square
shapes."""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest

# the torch oracles, sizes and data of the layers beyond the worked examples (tests/ is on sys.path)
import test_layers_torch as new_layers
import torch
import torch.nn.functional as F

from symderive import counterexample as cx
from symderive.codegen import _prover
from symderive.model.layer import builtin_layer_names, load_layer
from symderive.prove import Memo

LAYER_NAMES = tuple(builtin_layer_names())

# -- the oracle ---------------------------------------------------------------------------------


def _conv2d(t):
    return F.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"]


def _convolution2d(t):
    return F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None])[0, 0]


def _convolution2d_full(t):
    kh, kw = t["w"].shape
    return F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None], padding=(kh - 1, kw - 1))[0, 0]


REFERENCES = {
    **new_layers.TORCH,
    "conv2d": _conv2d,
    "convolution2d": _convolution2d,
    "convolution2d_full": _convolution2d_full,
    "linear": lambda t: t["w"] @ t["x"] + t["b"],
    "softmax_cross_entropy": lambda t: -(t["t"] * torch.log_softmax(t["s"], dim=0)).sum(),
}

_CONV = [
    dict(H=1, W=1, kh=1, kw=1),
    dict(H=3, W=4, kh=3, kw=4),  # kernel as large as the input
    dict(H=5, W=2, kh=2, kw=1),
]

SIZES = {
    **{name: new_layers.SIZES[name] for name in LAYER_NAMES if name in new_layers.SIZES},
    "conv2d": _CONV,
    "convolution2d": _CONV,
    "convolution2d_full": [*_CONV, dict(H=2, W=3, kh=4, kw=5)],  # a kernel larger than the input
    "linear": [dict(n=1, m=1), dict(n=3, m=1), dict(n=2, m=5)],
    "softmax_cross_entropy": [dict(n=1), dict(n=2), dict(n=7)],
}


def random_values(name: str, sizes: dict, seed=0) -> dict:
    """Random float64 inputs and ``g`` satisfying the layer's assumptions (targets summing to 1, eps > 0,
    zeros at relu's kink)."""
    layer = layer_of(name)
    rng = np.random.default_rng(zlib.crc32(repr((name, sorted(sizes.items()), seed)).encode()))
    values = new_layers.random_values(layer, sizes, rng)
    if name == "softmax_cross_entropy":
        values["t"] = rng.dirichlet(np.ones(sizes["n"]))
        values["s"] = 3 * values["s"]
    return values


def reference(name: str, values: dict) -> tuple[np.ndarray, dict]:
    """(output, {input: gradient}) of the hand-written torch layer, by torch autograd (upstream ``g``)."""
    layer = layer_of(name)
    t = {
        n: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=n in layer.differentiable)
        for n, v in values.items()
    }
    y = REFERENCES[name](t)
    loss = y if layer.is_loss else (t["g"] * y).sum()
    wrt = list(layer.differentiable)
    grads = torch.autograd.grad(loss, [t[n] for n in wrt])
    return y.detach().numpy(), {n: d.numpy() for n, d in zip(wrt, grads, strict=True)}


def assert_close(got, expected, what: str) -> None:
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == np.shape(expected), f"{what}: shape {got.shape}, expected {np.shape(expected)}"
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=what)


# -- emission, once per layer and target ----------------------------------------------------------------


@functools.cache
def layer_of(name: str):
    return load_layer(name)


@functools.cache
def _memo(name: str) -> Memo:
    return Memo()


class Emitted:
    """The emitted modules of a target, written to one folder (on sys.path) and imported, each once."""

    def __init__(self, folder: Path, target: str):
        self.folder, self.target = folder, target
        self.modules: dict = {}

    def module_name(self, name: str) -> str:
        return f"{name}_{self.target}_op"

    def tests_path(self, name: str) -> Path:
        return self.folder / f"test_{name}_{self.target}.py"

    def module(self, name: str):
        if name not in self.modules:
            if self.target == "torch":
                from symderive.emit.torch import emit

                extra = {"compile_backend": "aot_eager"}  # inductor's C++ build: minutes for 23 layers on 2 cores
            else:
                from symderive.emit.jax import emit

                extra = {}
            source, tests = emit(layer_of(name), self.module_name(name), prove=_prover(_memo(name)), **extra)
            (self.folder / f"{self.module_name(name)}.py").write_text(source, encoding="utf-8")
            self.tests_path(name).write_text(tests, encoding="utf-8")
            self.modules[name] = importlib.import_module(self.module_name(name))
        return self.modules[name]

    def run_tests(self) -> dict[str, list[tuple[str, str]]]:
        """Every layer's emitted pytest module run in one process: layer -> [(test, outcome)]."""
        for name in LAYER_NAMES:
            self.module(name)
        report = self.folder / f"{self.target}.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--rootdir",
            str(self.folder),
            f"--junitxml={report}",
            *(str(self.tests_path(name)) for name in LAYER_NAMES),
        ]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=1800)
        if not report.exists():
            pytest.fail(f"the emitted tests did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        results: dict[str, list[tuple[str, str]]] = {name: [] for name in LAYER_NAMES}
        for case in ET.parse(report).iter("testcase"):
            module = case.get("classname", "").split(".")[-1]
            layer = module[len("test_") : -len(f"_{self.target}")]
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = f"{child.tag}: {child.get('message', '')[:2000]}"
            results.setdefault(layer, []).append((case.get("name"), outcome))
        return results


def emitted_in(tmp_path_factory, target: str) -> Emitted:
    folder = tmp_path_factory.mktemp(f"emitted_{target}")
    sys.path.insert(0, str(folder))
    return Emitted(folder, target)


def input_shapes(name: str, sizes: dict) -> dict:
    return cx.input_shapes(layer_of(name), sizes)
