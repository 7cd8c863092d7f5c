"""codegen --target jax: for every built-in layer the emitted jax.custom_vjp function against torch
autograd of a hand-written torch layer (forward and gradients, eager and under jax.jit) at several
sizes, its emitted pytest module run, the refusals and the command line."""

from __future__ import annotations

import ast

import jax
import numpy as np
import pytest
from emitted_layers import LAYER_NAMES, SIZES, assert_close, layer_of, random_values, reference

from symderive.cli import main
from symderive.emit import frameworks
from symderive.emit.jax import emit_jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

#: slow: every built-in layer's module, compiled and checked (`pytest -m 'not slow'` leaves them out)
pytestmark = pytest.mark.slow


def _output_and_gradients(module, name: str, values: dict, jit: bool):
    layer = layer_of(name)
    wrt = list(layer.differentiable)
    inputs = {n: jnp.asarray(values[n], dtype=jnp.float64) for n in layer.inputs}
    g = jnp.ones(()) if layer.is_loss else jnp.asarray(values["g"], dtype=jnp.float64)

    def run(inputs, g):
        def f(*diff):
            return module.forward(**{**inputs, **dict(zip(wrt, diff, strict=True))})

        y, vjp = jax.vjp(f, *(inputs[n] for n in wrt))
        return y, dict(zip(wrt, vjp(g), strict=True))

    return (jax.jit(run) if jit else run)(inputs, g)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_emitted_function_matches_autograd_of_a_torch_reference(name, emitted_jax):
    module = emitted_jax.module(name)
    for sizes in SIZES[name]:
        values = random_values(name, sizes)
        expected_y, expected_grads = reference(name, values)
        # under jax.jit (eager JAX compiles every operation anew at each shape; the emitted tests compare
        # jit with eager)
        y, grads = _output_and_gradients(module, name, values, jit=True)
        assert y.dtype == jnp.float64
        assert_close(y, expected_y, f"{name} output at {sizes}")
        for n, d in grads.items():
            assert_close(d, expected_grads[n], f"{name} d{n} at {sizes}")


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_emitted_pytest_module_passes(name, jax_test_results):
    results = jax_test_results[name]
    names = {test.split("[")[0] for test, _ in results}
    assert {"test_check_grads", "test_jit_equals_eager", "test_vmap_equals_one_call_per_element"} <= names, names
    failed = [(test, outcome) for test, outcome in results if outcome != "passed"]
    assert not failed, failed


def test_module_is_a_custom_vjp_with_documented_gradients(emitted_jax):
    emitted_jax.module("linear")
    source = (emitted_jax.folder / "linear_jax_op.py").read_text()
    tree = ast.parse(source)
    imports = [a.name for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names]
    assert imports == ["jax", "jax.numpy"]
    assert "@jax.custom_vjp" in source and "_layer.defvjp(" in source
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    doc = ast.get_docstring(functions["grad_w"])
    assert "dL/dw = outer(g, x), proved by symderive" in doc and "Shapes:" in doc and "Assumes:" in doc
    assert [a.arg for a in functions["forward"].args.kwonlyargs] == ["x", "w", "b"]


def test_float32_inputs_give_float32_outputs_and_gradients(emitted_jax):
    module = emitted_jax.module("conv2d_nchw")
    rng = np.random.default_rng(4)
    x, w, b = (jnp.asarray(rng.standard_normal(s), dtype=jnp.float32) for s in ((2, 3, 6, 5), (4, 3, 3, 2), (4,)))
    y, grads = jax.value_and_grad(lambda x, w, b: module.forward(x=x, w=w, b=b).sum(), argnums=(0, 1, 2))(x, w, b)
    assert y.dtype == grads[0].dtype == grads[1].dtype == jnp.float32
    expected, _ = reference("conv2d_nchw", {"x": x, "w": w, "b": b, "g": np.ones((2, 4, 4, 4))})
    np.testing.assert_allclose(float(y), expected.sum(), rtol=1e-4)


def test_gradient_of_a_constant_is_refused_with_the_reason(emitted_jax):
    module = emitted_jax.module("mse")
    x, t = jnp.ones((2, 3)), jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="t is a constant of layer mse"):
        jax.grad(lambda t: module.forward(x=x, t=t))(t)
    # the gradient by x with t held is the proved one: 2 (x - t) / (N D)
    np.testing.assert_allclose(jax.grad(lambda x: module.forward(x=x, t=t))(x), np.full((2, 3), 2 / 6))


def test_an_input_without_a_proved_claim_is_refused(tmp_path):
    layer = tmp_path / "scale.toml"
    layer.write_text('name = "scale"\n[inputs]\nx = ["n"]\nw = ["n"]\n[output]\ny = "w * x ** 2"\n')
    with pytest.raises(frameworks.NoProvedClaim, match="no proved claim for dx of layer scale"):
        emit_jax(str(layer), claims={"w": "g * x ** 2"})


def test_cli_writes_the_jax_module_and_its_tests(capsys, tmp_path):
    out, tests = tmp_path / "lin_fn.py", tmp_path / "test_lin_fn.py"
    status = main(["codegen", "linear", "--target", "jax", "-o", str(out), "--tests", str(tests)], prog="symderive")
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "jax.custom_vjp" in out.read_text() and "import lin_fn as emitted" in tests.read_text()
    assert "check_grads" in tests.read_text()
