"""codegen --target torch: for every built-in layer the emitted torch.library.custom_op against torch
autograd of a hand-written torch layer (forward, gradients, second derivatives) at several sizes, its
nn.Module, its emitted pytest module run, the refusals and the command line."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import scipy.signal as scipy_signal
import torch
from emitted_layers import LAYER_NAMES, REFERENCES, SIZES, assert_close, layer_of, random_values, reference
from heavy import by_weight

from symderive.cli import main
from symderive.emit import frameworks
from symderive.emit.torch import emit_torch


def _tensors(values: dict, layer, grad=True) -> dict:
    return {
        n: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=grad and n in layer.differentiable)
        for n, v in values.items()
        if n in layer.inputs
    }


@pytest.mark.parametrize("name", by_weight(LAYER_NAMES))
def test_emitted_op_matches_autograd_of_a_torch_reference(name, emitted_torch):
    module = emitted_torch.module(name)
    layer = layer_of(name)
    wrt = list(layer.differentiable)
    for sizes in SIZES[name]:
        values = random_values(name, sizes)
        expected_y, expected_grads = reference(name, values)
        inputs = _tensors(values, layer)
        y = module.forward(**inputs)
        assert y.dtype == torch.float64
        assert_close(y.detach(), expected_y, f"{name} output at {sizes}")
        g = torch.ones(()) if layer.is_loss else torch.tensor(values["g"])
        grads = torch.autograd.grad(y, [inputs[n] for n in wrt], g)
        for n, d in zip(wrt, grads, strict=True):
            assert_close(d, expected_grads[n], f"{name} d{n} at {sizes}")


@pytest.mark.parametrize("name", by_weight(LAYER_NAMES))
def test_second_derivatives_match_autograd_of_the_reference(name, emitted_torch):
    # double backward: the emitted backward is torch operations, differentiated again by autograd;
    # a random direction v contracts the first gradients, whose gradient is compared with the reference's
    module = emitted_torch.module(name)
    layer = layer_of(name)
    wrt = list(layer.differentiable)
    sizes = SIZES[name][-1]
    values = random_values(name, sizes, seed=1)
    rng = np.random.default_rng(5)
    directions = [torch.tensor(rng.standard_normal(np.shape(values[n]))) for n in wrt]

    def second(forward):
        inputs = _tensors(values, layer)
        y = forward(inputs)
        g = torch.ones(()) if layer.is_loss else torch.tensor(values["g"])
        first = torch.autograd.grad(y, [inputs[n] for n in wrt], g, create_graph=True)
        contracted = sum((d * v).sum() for d, v in zip(first, directions, strict=True))
        if not contracted.requires_grad:  # the first gradients do not depend on the inputs (a linear layer)
            return (None,) * len(wrt)
        return torch.autograd.grad(contracted, [inputs[n] for n in wrt], allow_unused=True)

    got = second(lambda t: module.forward(**t))
    expected = second(REFERENCES[name])
    for n, a, b in zip(wrt, got, expected, strict=True):
        b = np.zeros(np.shape(values[n])) if b is None else b.numpy()
        a = np.zeros(np.shape(values[n])) if a is None else a.detach().numpy()
        assert_close(a, b, f"{name}: second derivative by {n} at {sizes}")


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_emitted_pytest_module_passes(name, torch_test_results):
    results = torch_test_results[name]
    names = {test.split("[")[0] for test, _ in results}
    assert {"test_gradcheck", "test_opcheck", "test_compile_fullgraph_equals_eager"} <= names, names
    failed = [(test, outcome) for test, outcome in results if outcome != "passed"]
    assert not failed, failed


def test_module_defines_the_op_with_its_registrations_and_docstrings(emitted_torch):
    emitted_torch.module("linear")
    source = (emitted_torch.folder / "linear_torch_op.py").read_text()
    tree = ast.parse(source)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [a.name for n in imports for a in n.names] == ["torch"]
    assert "torch.library.custom_op" in source and ".numpy()" not in source
    for registration in ("register_fake", "register_autograd", "register_vmap"):
        assert f"linear.{registration}(" in source or f"@linear.{registration}" in source, registration
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    # the docstring of each gradient names the claim it was proved from, its shapes and assumptions
    doc = ast.get_docstring(functions["grad_w"])
    assert "dL/dw = outer(g, x), proved by symderive" in doc and "Shapes:" in doc and "Assumes:" in doc
    assert [a.arg for a in functions["forward"].args.kwonlyargs] == ["x", "w", "b"]


def test_nn_module_holds_the_parameters_and_calls_the_op(emitted_torch):
    module = emitted_torch.module("linear_batched")
    rng = np.random.default_rng(3)
    x, w, b = (torch.tensor(rng.standard_normal(s)) for s in ((4, 3), (2, 3), (2,)))
    layer = module.LinearBatched(w, b)
    assert {n for n, _ in layer.named_parameters()} == {"w", "b"}
    y = layer(x)
    y.sum().backward()
    w_ref, b_ref = w.clone().requires_grad_(), b.clone().requires_grad_()
    torch.nn.functional.linear(x, w_ref, b_ref).sum().backward()
    assert_close(y.detach(), torch.nn.functional.linear(x, w, b).numpy(), "LinearBatched output")
    assert_close(layer.w.grad, w_ref.grad.numpy(), "LinearBatched dw")
    assert_close(layer.b.grad, b_ref.grad.numpy(), "LinearBatched db")
    # a layer without parameters has no Module
    assert not hasattr(emitted_torch.module("relu"), "Relu")


def test_float32_inputs_give_float32_outputs_and_gradients(emitted_torch):
    module = emitted_torch.module("conv2d_nchw")
    rng = np.random.default_rng(4)
    x, w, b = (
        torch.tensor(rng.standard_normal(s), dtype=torch.float32, requires_grad=True)
        for s in ((2, 3, 6, 5), (4, 3, 3, 2), (4,))
    )
    y = module.forward(x=x, w=w, b=b)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == torch.float32
    expected = torch.nn.functional.conv2d(x.detach().double(), w.detach().double(), b.detach().double())
    np.testing.assert_allclose(y.detach().numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_gradient_of_a_constant_is_refused_with_the_reason(emitted_torch):
    module = emitted_torch.module("mse")
    x = torch.randn(2, 3, dtype=torch.float64)
    t = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    y = module.forward(x=x, t=t)
    with pytest.raises(RuntimeError, match="t is a constant of layer mse"):
        torch.autograd.grad(y, [t])


def test_an_input_without_a_proved_claim_is_refused(tmp_path):
    layer = tmp_path / "scale.toml"
    layer.write_text('name = "scale"\n[inputs]\nx = ["n"]\nw = ["n"]\n[output]\ny = "w * x ** 2"\n')
    with pytest.raises(frameworks.NoProvedClaim, match="no proved claim for dx of layer scale"):
        emit_torch(str(layer), claims={"w": "g * x ** 2"})


def test_cli_writes_the_torch_module_and_its_tests(capsys, tmp_path):
    out, tests = tmp_path / "lin_op.py", tmp_path / "test_lin_op.py"
    status = main(["codegen", "linear", "--target", "torch", "-o", str(out), "--tests", str(tests)], prog="symderive")
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "torch.library.custom_op" in out.read_text() and "import lin_op as emitted" in tests.read_text()
    assert "torch.autograd.gradcheck" in tests.read_text() and "torch.library.opcheck" in tests.read_text()


def test_cli_refuses_a_wrong_claim_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "m.py"
    status = main(["codegen", "linear", "--target", "torch", "-o", str(out), "--claim", "x", "w @ g"], prog="symderive")
    assert status == 1 and not out.exists()
    assert "not writing" in capsys.readouterr().err


def test_cli_refuses_an_unknown_target(capsys, tmp_path):
    status = main(["codegen", "linear", "--target", "tensorflow", "-o", str(tmp_path / "m.py")], prog="symderive")
    err = capsys.readouterr().err
    assert status == 2 and "--target" in err and "tensorflow" in err, err
    assert not (tmp_path / "m.py").exists()


def test_the_op_saves_its_log_softmax_for_the_backward_and_never_overwrites_it(emitted_torch):
    # log_softmax_nll's op returns (L, log_softmax(s)) and its backward takes exp of the saved log_softmax: the
    # second output must be torch's log_softmax (not written in place by the forward's product with t), and two
    # backwards through one graph (retain_graph) must give the same gradient as torch's cross_entropy
    module = emitted_torch.module("log_softmax_nll")
    rng = np.random.default_rng(6)
    t = torch.tensor(rng.uniform(0.1, 1, (3, 5)))
    t = t / t.sum(dim=1, keepdim=True)
    s = torch.tensor(3 * rng.standard_normal((3, 5)), requires_grad=True)
    loss, saved = module.log_softmax_nll(s, t)
    torch.testing.assert_close(saved, torch.log_softmax(s.detach(), dim=1), rtol=1e-12, atol=1e-12)
    assert not saved.requires_grad
    g = torch.tensor(0.7, dtype=torch.float64)
    first = torch.autograd.grad(loss, [s], g, retain_graph=True)[0]
    second = torch.autograd.grad(loss, [s], g)[0]
    s_ref = s.detach().clone().requires_grad_(True)
    expected = torch.autograd.grad(torch.nn.functional.cross_entropy(s_ref, t), [s_ref], g)[0]
    torch.testing.assert_close(first, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(second, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(saved, torch.log_softmax(s.detach(), dim=1), rtol=1e-12, atol=1e-12)


def test_a_float32_loss_reduced_by_a_dot_product_stays_within_float32_rounding(emitted_torch):
    # the forward's mean(-sum(t * log_softmax(s))) is a torch.dot of the flattened arrays divided by -N
    module = emitted_torch.module("log_softmax_nll")
    rng = np.random.default_rng(7)
    t = rng.uniform(0.1, 1, (64, 300))
    t = t / t.sum(axis=1, keepdims=True)
    s = 3 * rng.standard_normal((64, 300))
    exact = torch.nn.functional.cross_entropy(torch.tensor(s), torch.tensor(t)).item()
    got = module.forward(s=torch.tensor(s, dtype=torch.float32), t=torch.tensor(t, dtype=torch.float32))
    assert got.dtype == torch.float32
    assert abs(got.item() - exact) <= 1e-5 * abs(exact)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((7,), (3,)),
        ((4,), (4,)),
        ((1,), (1,)),
        ((6, 5), (2, 3)),
        ((5, 4), (5, 4)),
        ((1, 6), (1, 2)),
        ((4, 3, 5), (2, 1, 3)),
    ],
)
@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_the_emitted_correlate_and_convolve_are_scipys(emitted_torch, a_shape, b_shape, mode):
    # every mode on 1 to 3 axes with non-square kernels (zeros put around a before a valid convolution: the
    # pads' order is the last axis first), kernels as large as the input and sizes of 1, against SciPy
    module = emitted_torch.module("conv2d")
    rng = np.random.default_rng(len(a_shape) * 10 + b_shape[-1])
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        ta, tb = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        for ours, theirs in ((module._correlate, scipy_signal.correlate), (module._convolve, scipy_signal.convolve)):
            got = ours(ta, tb, mode)
            assert got.dtype == dtype
            np.testing.assert_allclose(got.numpy(), theirs(a, b, mode), rtol=tol, atol=tol)
