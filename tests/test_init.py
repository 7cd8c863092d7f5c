"""The public API of LANGUAGE.md, exactly as its example spells it (symderive/__init__.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import symderive as sd


def test_language_md_python_api_example_runs():
    layer = sd.load_layer("conv2d")
    d = sd.derive(layer, "x")
    assert d.steps and d.wrt == "x"
    v = sd.prove(layer, "x", 'convolve(g, w, "full")', assume=[])
    assert (v.verdict, v.counterexample, v.reason) == ("proved", None, "")
    assert "kh <= H" in " ".join(v.assumptions) or "H >= kh" in " ".join(v.assumptions)
    src = sd.emit_numpy(layer, claims={"x": 'convolve(g, w, "full")'})
    namespace: dict = {}
    exec(compile(src, "<emitted>", "exec"), namespace)  # our own emitted module, not user text
    rng = np.random.default_rng(0)
    g, w = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    np.testing.assert_allclose(namespace["grad_x"](g=g, w=w), scipy.signal.convolve(g, w, "full"))
    sd.testing.assert_gradient(layer, "x", 'convolve(g, w, "full")')


def test_api_functions_stay_callable_once_their_modules_are_imported():
    import symderive.derive  # noqa: F401  (binds the module on the package)
    import symderive.prove  # noqa: F401

    assert sd.prove("linear", "x", "w @ g").verdict == "refuted"
    assert sd.derive("linear", "w").index


def test_check_implementation_from_the_package():
    def grad_x(g, w):
        return scipy.signal.convolve(g, w, "full")

    report = sd.check_implementation(sd.load_layer("conv2d"), "x", grad_x)
    assert report.ok


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        sd.no_such_thing  # noqa: B018
