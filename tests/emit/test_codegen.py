"""Emitted NumPy code against PyTorch autograd, refusals, the pre-emission check, ruff, emitted tests."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import subprocess
import sys
import zlib

import numpy as np
import pytest

# the torch forwards, sizes and data of the new layers are shared with tests/test_layers_torch.py
# (tests/ is on sys.path under pytest: tests/conftest.py)
import test_layers_torch as new_layers
import torch
import torch.nn.functional as F
from heavy import by_weight

from symderive import codegen
from symderive.codegen import ClaimNotProved, emit_numpy, emit_tests
from symderive.core.ops import OPERATORS
from symderive.errors import InputError, InternalError
from symderive.model.layer import builtin_layer_names, load_layer

torch.set_default_dtype(torch.float64)


def load_source(source: str, name: str = "emitted") -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 -- test of generated code
    return namespace


# -- independent oracles: each layer's loss written in PyTorch -----------------------------------


def torch_conv2d(x, w, b):
    return F.conv2d(x[None, None], w[None, None])[0, 0] + b


def torch_convolution2d(x, w):
    return F.conv2d(x[None, None], torch.flip(w, (0, 1))[None, None])[0, 0]


def torch_convolution2d_full(x, w):
    kh, kw = w.shape
    return F.conv2d(x[None, None], torch.flip(w, (0, 1))[None, None], padding=(kh - 1, kw - 1))[0, 0]


def torch_linear(x, w, b):
    return w @ x + b


def torch_softmax_cross_entropy(s, t):
    return -(t * torch.log_softmax(s, dim=0)).sum()


CONV_SIZES = [(1, 1, 1, 1), (3, 5, 3, 5), (5, 4, 2, 3), (7, 6, 1, 4), (6, 9, 4, 2), (4, 1, 2, 1), (8, 11, 3, 3)]

LAYERS = {
    "conv2d": (torch_conv2d, lambda H, W, kh, kw: {"x": (H, W), "w": (kh, kw), "b": ()}, CONV_SIZES),
    "convolution2d": (torch_convolution2d, lambda H, W, kh, kw: {"x": (H, W), "w": (kh, kw)}, CONV_SIZES),
    "convolution2d_full": (
        torch_convolution2d_full,
        lambda H, W, kh, kw: {"x": (H, W), "w": (kh, kw)},
        CONV_SIZES + [(2, 3, 4, 5)],
    ),
    "linear": (
        torch_linear,
        lambda n, m: {"x": (n,), "w": (m, n), "b": (m,)},
        [(1, 1), (3, 1), (1, 4), (5, 3), (7, 12)],
    ),
    "softmax_cross_entropy": (torch_softmax_cross_entropy, lambda n: {"s": (n,), "t": (n,)}, [(1,), (2,), (5,), (33,)]),
}


def random_inputs(layer_name, shapes, rng):
    values = {n: rng.standard_normal(s) for n, s in shapes.items()}
    if layer_name == "softmax_cross_entropy":
        t = rng.uniform(0.1, 1.0, shapes["t"])  # a spread target, not one-hot
        values["t"] = t / t.sum()
        values["s"] = 3 * values["s"]
    return values


def autograd(layer_name, values, layer):
    fn = LAYERS[layer_name][0]
    tensors = {n: torch.tensor(v, requires_grad=n in layer.differentiable) for n, v in values.items()}
    out = fn(**tensors)
    if layer.is_loss:
        loss, g = out, None
    else:
        g = np.random.default_rng(7).standard_normal(tuple(out.shape))
        loss = (out * torch.tensor(g)).sum()
    loss.backward()
    grads = {n: tensors[n].grad.numpy() for n in layer.differentiable}
    return out.detach().numpy(), g, grads


def call(function, values):
    import inspect

    return function(**{a: values[a] for a in inspect.signature(function).parameters})


@functools.cache
def emitted_source(name: str) -> str:
    """The emitted module of a built-in layer, once per test run."""
    return emit_numpy(name)


@pytest.fixture(scope="module")
def emitted():
    return {name: emitted_source(name) for name in LAYERS}


@pytest.mark.parametrize("layer_name", by_weight(LAYERS))
def test_emitted_code_matches_torch_autograd(layer_name, emitted):
    layer = load_layer(layer_name)
    module = load_source(emitted[layer_name])
    _, shapes_of, sizes = LAYERS[layer_name]
    rng = np.random.default_rng(42)
    for size in sizes:
        values = random_inputs(layer_name, shapes_of(*size), rng)
        y, g, grads = autograd(layer_name, values, layer)
        if g is not None:
            values["g"] = g
        np.testing.assert_allclose(call(module["forward"], values), y, rtol=1e-10, atol=1e-12, err_msg=f"{size}")
        for wrt in layer.differentiable:
            got = call(module[f"grad_{wrt}"], values)
            assert isinstance(got, np.ndarray) and got.shape == values[wrt].shape, (wrt, size)
            np.testing.assert_allclose(got, grads[wrt], rtol=1e-10, atol=1e-12, err_msg=f"grad_{wrt} at {size}")


@pytest.mark.parametrize("layer_name", ["conv2d", "linear", "softmax_cross_entropy", "convolution2d_full"])
def test_derived_index_form_lowering_matches_torch(layer_name):
    # without known claims the gradient is lowered from the derivation itself
    layer = dataclasses.replace(load_layer(layer_name), claims=())
    source = emit_numpy(layer)
    assert "derived index form" in source
    module = load_source(source)
    _, shapes_of, sizes = LAYERS[layer_name]
    rng = np.random.default_rng(3)
    for size in sizes[:5]:
        values = random_inputs(layer_name, shapes_of(*size), rng)
        _, g, grads = autograd(layer_name, values, layer)
        if g is not None:
            values["g"] = g
        for wrt in layer.differentiable:
            got = call(module[f"grad_{wrt}"], values)
            np.testing.assert_allclose(got, grads[wrt], rtol=1e-10, atol=1e-12, err_msg=f"grad_{wrt} at {size}")


def test_given_claims_are_used_and_named_in_docstrings():
    source = emit_numpy("linear", claims={"x": "w.T @ g", "w": "outer(g, x)"})
    module = load_source(source)
    assert "w.T @ g" in module["grad_x"].__doc__
    assert "Shapes: w [m, n], g [m] -> dx [n]" in module["grad_x"].__doc__


def test_index_form_claim_is_lowered():
    claim = "dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)"
    module = load_source(emit_numpy("conv2d", claims={"x": claim}))
    layer = load_layer("conv2d")
    values = random_inputs("conv2d", {"x": (6, 5), "w": (3, 2), "b": ()}, np.random.default_rng(0))
    _, g, grads = autograd("conv2d", values, layer)
    values["g"] = g
    np.testing.assert_allclose(call(module["grad_x"], values), grads["x"], rtol=1e-10)


def test_refuted_claim_is_refused_with_its_verdict():
    with pytest.raises(ClaimNotProved) as info:
        emit_numpy("conv2d", claims={"x": "convolve(g, flip(w), 'full')"})
    assert info.value.verdict.verdict == "refuted"
    assert info.value.exit_status == 1
    assert "refuted" in str(info.value)


def test_softmax_claim_without_its_assumption_is_refused():
    layer = dataclasses.replace(load_layer("softmax_cross_entropy"), assumptions=())
    with pytest.raises(ClaimNotProved) as info:
        emit_numpy(layer, claims={"s": "softmax(s) - t"})
    assert info.value.exit_status == 1


def test_claim_for_an_unknown_input_is_an_input_error():
    with pytest.raises(InputError):
        emit_numpy("linear", claims={"q": "g"})


def test_check_catches_a_wrong_shape_lowering(monkeypatch):
    outer = OPERATORS["outer"]
    monkeypatch.setitem(
        OPERATORS, "outer", dataclasses.replace(outer, to_numpy=lambda a, b, **_: f"np.outer({b}, {a})")
    )
    with pytest.raises(InternalError, match="grad_w"):
        emit_numpy("linear")


def test_check_catches_a_slightly_wrong_value_lowering(monkeypatch):
    op = OPERATORS["softmax"]
    wrong = dataclasses.replace(op, to_numpy=lambda **kw: f"({op.to_numpy(**kw)} * 1.000001)")
    monkeypatch.setitem(OPERATORS, "softmax", wrong)
    with pytest.raises(InternalError, match="differ"):
        emit_numpy("softmax_cross_entropy")


def test_check_passes_without_the_broken_lowering():
    assert "def grad_s(*, s, t):" in emit_numpy("softmax_cross_entropy")


def test_emitted_module_imports_only_numpy(emitted):
    for name, source in emitted.items():
        imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)]
        assert [a.name for n in imports for a in n.names] == ["numpy"], name


def test_emitted_functions_take_keyword_arguments_named_after_inputs(emitted):
    import inspect

    for name, source in emitted.items():
        layer = load_layer(name)
        module = load_source(source)
        for wrt in layer.differentiable:
            params = inspect.signature(module[f"grad_{wrt}"]).parameters
            assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
            assert set(params) <= set(layer.inputs) | {"g"}


def test_emitted_code_is_ruff_clean(emitted, tmp_path):
    for name, source in emitted.items():
        (tmp_path / f"{name}_grads.py").write_text(source)
    ruff = [sys.executable, "-m", "ruff"]
    opts = ["--isolated", "--line-length", "120"]
    checked = subprocess.run(
        [*ruff, "check", *opts, "--select", "E,F,W,I,B,UP", str(tmp_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout
    formatted = subprocess.run([*ruff, "format", *opts, "--check", str(tmp_path)], capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout


@pytest.mark.slow
def test_emitted_tests_run_green_and_can_fail(tmp_path):
    module = emit_numpy("softmax_cross_entropy")
    (tmp_path / "sce_grads.py").write_text(module)
    (tmp_path / "test_sce_grads.py").write_text(emit_tests("softmax_cross_entropy", "sce_grads"))
    imports = [
        n for n in ast.walk(ast.parse((tmp_path / "test_sce_grads.py").read_text())) if isinstance(n, ast.Import)
    ]
    assert sorted(a.name for n in imports for a in n.names) == ["numpy", "sce_grads"]
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:symderive", str(tmp_path)]
    green = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert green.returncode == 0, green.stdout
    assert "2 passed" in green.stdout
    # a broken module must turn the generated tests red
    broken = module + "\n_good_grad_s = grad_s\n\n\ndef grad_s(**kwargs):\n    return 1.001 * _good_grad_s(**kwargs)\n"
    (tmp_path / "sce_grads.py").write_text(broken)
    red = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert red.returncode == 1 and "test_grad_s" in red.stdout


def test_check_sizes_include_edge_sizes():
    layer = load_layer("conv2d")
    sizes = [{str(k): v for k, v in s.items()} for s in codegen.check_sizes(layer)]
    assert {"H": 1, "W": 1, "kh": 1, "kw": 1} in sizes
    assert any(s["H"] == s["kh"] and s["W"] == s["kw"] and s["H"] > 1 for s in sizes)
    assert any(len(set(s.values())) >= 3 for s in sizes)
    assert all(s["kh"] <= s["H"] and s["kw"] <= s["W"] for s in sizes)


# -- every built-in layer -------------------------------------------------------------------------


def test_compound_number_in_a_closed_form_keeps_its_parentheses():
    # mse's 2 * (x - t) / (N * D) was emitted as 2 * (x - t) / D * N
    source = emit_numpy("mse")
    assert "/ (D * N)" in source or "/ (N * D)" in source
    module = load_source(source)
    x, t = np.random.default_rng(5).standard_normal((2, 3, 4))
    xt = torch.tensor(x, requires_grad=True)
    F.mse_loss(xt, torch.tensor(t)).backward()
    np.testing.assert_allclose(module["grad_x"](x=x, t=t), xt.grad.numpy(), rtol=1e-12)


def test_size_code_is_exact_integer_arithmetic():
    import sympy as sp

    H, k, v = sp.symbols("H k v", integer=True, positive=True)
    for expr in [sp.floor((H - k) / 2) + 1, (H - v + 2) / 2, sp.ceiling((H - k) / 3), sp.Mod(H - k, 2)]:
        code = codegen.size_code(expr)
        for h, kk in [(7, 3), (8, 3), (1, 1), (9, 2)]:
            got = eval(code, {"H": h, "k": kk, "v": 2 + (h % 2)})  # noqa: S307 -- our own generated text
            want = expr.subs({H: h, k: kk, v: 2 + (h % 2)})
            assert type(got) is int and got == want, (expr, code, h, kk)


def test_a_size_the_read_arguments_do_not_give_is_read_from_the_input_differentiated():
    # g of conv1d_ncl_s2 has length floor((L - k) / 2) + 1, which does not give L
    source = emit_numpy("conv1d_ncl_s2")
    module = load_source(source)
    assert "L = x.shape[2]" in source
    assert "x" in inspect.signature(module["grad_x"]).parameters


def test_a_size_solved_from_a_dilated_shape_is_an_integer():
    # kh from g.shape[2] == H - 2 * kh + 2 was the float (H - g.shape[2] + 2) / 2: float index arrays
    source = emit_numpy("conv2d_nchw_d2")
    assert "// 2" in source and "1 / 2 *" not in source


BUILTINS = builtin_layer_names()
#: a few sizes per built-in layer: the first is the edge (dimensions of 1), then kernels
#: as large as the input, strides that do not divide, non-square
SEED_SIZES = {"conv2d": [(1, 1, 1, 1), (4, 1, 2, 1), (5, 4, 5, 3)], "linear": [(1, 1), (5, 3)]}


def layer_cases(name: str, layer):
    """(values with g, torch output, {wrt: torch gradient}) at a few sizes of one layer."""
    if name in LAYERS:
        fn, shapes_of, sizes = LAYERS[name]
        for size in SEED_SIZES.get(name, sizes[:3]):
            values = random_inputs(name, shapes_of(*size), np.random.default_rng(zlib.crc32(repr(size).encode())))
            y, g, grads = autograd(name, values, layer)
            if g is not None:
                values["g"] = g
            yield size, values, y, grads
        return
    for sizes in new_layers.SIZES[name][:3]:
        values = new_layers.random_values(layer, sizes, new_layers.rng_for("codegen", name, sizes))
        y = new_layers.torch_forward(name, values)[0].detach().numpy()
        grads = {wrt: new_layers.torch_gradient(layer, wrt, values) for wrt in layer.differentiable}
        yield sizes, values, y, grads


def test_every_builtin_layer_has_torch_cases():
    assert len(BUILTINS) >= 23
    assert set(BUILTINS) <= set(LAYERS) | set(new_layers.SIZES)


@pytest.mark.parametrize("name", by_weight(BUILTINS))
def test_every_builtin_layer_emits_code_matching_torch_autograd(name):
    layer = load_layer(name)
    module = load_source(emitted_source(name))
    for size, values, y, grads in layer_cases(name, layer):
        np.testing.assert_allclose(call(module["forward"], values), y, rtol=1e-10, atol=1e-12, err_msg=f"{size}")
        for wrt in layer.differentiable:
            got = call(module[f"grad_{wrt}"], values)
            assert isinstance(got, np.ndarray) and got.shape == np.shape(values[wrt]), (wrt, size, got.shape)
            np.testing.assert_allclose(got, grads[wrt], rtol=1e-9, atol=1e-11, err_msg=f"grad_{wrt} at {size}")


@pytest.mark.slow
def test_every_builtin_layers_emitted_module_is_ruff_clean(tmp_path):
    for name in BUILTINS:
        (tmp_path / f"{name}_grads.py").write_text(emitted_source(name))
    opts = ["--isolated", "--line-length", "120"]
    ruff = [sys.executable, "-m", "ruff"]
    rules = ["--select", "E,F,W,I,B,UP"]
    checked = subprocess.run([*ruff, "check", *opts, *rules, str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    formatted = subprocess.run([*ruff, "format", *opts, "--check", str(tmp_path)], capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout


@pytest.mark.slow
def test_cli_codegen_with_tests_for_new_layers_runs_green_and_can_fail(tmp_path):
    layers = ["conv2d_nchw_s2p1", "batch_norm", "attention"]
    cli = [sys.executable, "-m", "symderive", "codegen"]
    runs = [
        subprocess.Popen(
            [*cli, name, "-o", f"{name}_grads.py", "--tests", f"test_{name}_grads.py"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in layers
    ]
    for name, run in zip(layers, runs, strict=True):
        out, errs = run.communicate(timeout=300)
        assert run.returncode == 0, (name, out, errs)
        assert f"wrote test_{name}_grads.py" in out
    pytest_run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:symderive", str(tmp_path)]
    green = subprocess.run(pytest_run, cwd=tmp_path, capture_output=True, text=True)
    assert green.returncode == 0, green.stdout
    # forward + dx, dgamma, dbeta (batch_norm); forward + dx, dw, db; forward + dQ, dK, dV
    assert "12 passed" in green.stdout
    module = tmp_path / "batch_norm_grads.py"
    module.write_text(
        module.read_text() + "\n_good = grad_gamma\n\n\ndef grad_gamma(**kw):\n    return _good(**kw) + 1e-6\n"
    )
    red = subprocess.run(pytest_run, cwd=tmp_path, capture_output=True, text=True)
    assert red.returncode == 1 and "test_grad_gamma" in red.stdout and "11 passed" in red.stdout


def test_check_sizes_cover_both_parities_of_each_strided_axis():
    # conv2d_nchw_s2p1 needs output_padding (W + 2 - kw) % 2 on its own: some check size must make it 1
    layer = load_layer("conv2d_nchw_s2p1")
    sizes = [{str(k): v for k, v in s.items()} for s in codegen.check_sizes(layer)]
    assert {(s["H"] - s["kh"]) % 2 for s in sizes} == {0, 1}
    assert {(s["W"] - s["kw"]) % 2 for s in sizes} == {0, 1}


@pytest.mark.slow
def test_check_catches_an_output_padding_dropped_on_one_axis(monkeypatch):
    op = OPERATORS["conv_transpose2d"]

    def without_width_padding(**kw):
        kw["output_padding"] = (kw["output_padding"][0], 0)
        return op.to_numpy(**kw)

    monkeypatch.setitem(OPERATORS, "conv_transpose2d", dataclasses.replace(op, to_numpy=without_width_padding))
    with pytest.raises(InternalError, match="grad_x"):
        emit_numpy("conv2d_nchw_s2p1")


def _lowered(layer_name, expr, index, shape):
    """A one-function module computing an index expression with IndexLowering."""
    layer = load_layer(layer_name)
    body, args, helpers = codegen.IndexLowering(layer).function_body(expr, index, shape)
    fn = codegen.Function("f", args, body, "f.", None, helpers)
    return load_source(codegen.module_source(layer, [fn]))["f"], args


def test_a_sum_over_a_variable_only_bound_inside_its_summand_counts_its_terms():
    # Sum_k (Sum_k x[k]) == n * sum(x): the inner k is another variable (derived batch-norm gradients)
    import sympy as sp

    from symderive.core.ir import GSum, index_symbol, read

    layer = load_layer("linear")
    (n,) = layer.inputs["x"]
    k, i = index_symbol("k"), index_symbol("i")
    inner = GSum(read("x", (k,)), (k, 0, n - 1))
    expr = GSum(inner * read("x", (i,)), (k, 0, n - 1))
    f, args = _lowered("linear", expr, (i,), (n,))
    x = np.random.default_rng(2).standard_normal(4)
    np.testing.assert_allclose(f(x=x), 4 * x.sum() * x, rtol=1e-12)
    assert sp.Symbol("k") not in expr.free_symbols


def test_a_partial_operation_outside_its_domain_is_nan():
    import sympy as sp

    from symderive.core.ir import Defined, index_symbol, read

    layer = load_layer("linear")
    (n,) = layer.inputs["x"]
    i = index_symbol("i")
    xi = read("x", (i,))
    f, _ = _lowered("linear", Defined(1 / xi, sp.Ne(xi, 0)), (i,), (n,))
    with np.errstate(divide="ignore"):
        got = f(x=np.array([2.0, 0.0, -4.0]))
    np.testing.assert_array_equal(got, [0.5, np.nan, -0.25])


# -- in-place updates and row blocks of the normalisers (issue 5's speed work) -------------------


@functools.cache
def _log_softmax_nll_module() -> dict:
    return load_source(emit_numpy(load_layer("log_softmax_nll")), "log_softmax_nll")


def _torch_cross_entropy_and_grad(s, t):
    ts = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(ts, torch.tensor(t, dtype=torch.float64))
    loss.backward()
    return loss.item(), ts.grad.numpy()


# below and above the 65536-element blocking threshold; 70 rows of 1000 are blocks of 32, 32, 6;
# one row, one column (blocks of 32768 rows), and a row length under 16 (no buffer change)
@pytest.mark.parametrize("shape", [(3, 5), (64, 1000), (70, 1000), (1, 70000), (70000, 1), (9000, 8), (300, 257)])
def test_emitted_log_softmax_nll_matches_torch_above_and_below_the_blocking_threshold(shape):
    m = _log_softmax_nll_module()
    rng = np.random.default_rng(sum(shape))
    s = 4 * rng.standard_normal(shape)
    t = rng.dirichlet(np.ones(shape[1]), size=shape[0])
    before = (s.copy(), t.copy())
    loss, grad = _torch_cross_entropy_and_grad(s, t)
    got_loss, got_grad = m["forward"](s=s, t=t), m["grad_s"](s=s, t=t)
    assert got_grad.shape == shape and got_grad.dtype == np.float64
    np.testing.assert_allclose(got_loss, loss, rtol=1e-10)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-9, atol=1e-15)
    # the in-place updates write only into arrays the emitted code made
    np.testing.assert_array_equal(s, before[0])
    np.testing.assert_array_equal(t, before[1])


@pytest.mark.parametrize("shape", [(4, 6), (70, 1000)])
@pytest.mark.parametrize(
    ("s_dtype", "t_dtype"), [(np.float32, np.float64), (np.float64, np.float32), (np.float32,) * 2]
)
def test_emitted_updates_promote_dtypes_as_numpys_out_of_place_result(shape, s_dtype, t_dtype):
    m = _log_softmax_nll_module()
    rng = np.random.default_rng(7)
    s = (4 * rng.standard_normal(shape)).astype(s_dtype)
    t = rng.dirichlet(np.ones(shape[1]), size=shape[0]).astype(t_dtype)
    grad = m["grad_s"](s=s, t=t)
    # NumPy's own out-of-place result type: float32 s with float64 t is float64
    assert grad.dtype == np.result_type(s, t)
    assert np.asarray(m["forward"](s=s, t=t)).dtype == np.result_type(s, t)
    loss, expected = _torch_cross_entropy_and_grad(s.astype(float), t.astype(float))
    # float32 t sums to 1 only to float32 precision, and torch's gradient is softmax * sum(t) - t
    tol = 2e-5
    np.testing.assert_allclose(grad, expected, rtol=tol, atol=tol / shape[0])
    np.testing.assert_allclose(m["forward"](s=s, t=t), loss, rtol=tol)


def test_an_update_that_broadcasts_past_its_operand_is_not_written_in_place():
    from symderive.core.parse import parse_claim

    layer = load_layer("log_softmax_nll")
    # softmax of a [K] row minus t [N, K] is [N, K]: the [K] array cannot hold it
    tree = parse_claim("softmax(sum(s, axis=0)) - t", layer, "s").tree
    code = codegen.InPlaceLowering(layer).code(tree)
    assert "out=" not in code
    *lines, last = code.split("\n")
    rng = np.random.default_rng(3)
    s, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    namespace = load_source(emit_numpy(layer))  # for the helpers
    exec("\n".join(lines) + f"\nresult = {last}", namespace | {"s": s, "t": t}, scope := {})  # noqa: S102
    expected = scipy_softmax(s.sum(axis=0)) - t
    np.testing.assert_allclose(scope["result"], expected, rtol=1e-12)


def test_a_division_by_a_size_is_a_multiply_in_place_and_a_division_by_an_array_is_not():
    from symderive.core.parse import parse_claim

    layer = load_layer("log_softmax_nll")
    by_size = codegen.InPlaceLowering(layer).code(parse_claim("(softmax(s, axis=1) - t) / N", layer, "s").tree)
    assert "np.multiply(buf, 1 / N, out=buf)" in by_size
    by_array = codegen.InPlaceLowering(layer).code(parse_claim("softmax(s, axis=1) / t", layer, "s").tree)
    assert "np.divide(buf, t, out=_into(buf, t))" in by_array


def test_into_refuses_operands_that_widen_or_are_not_arrays():
    namespace = load_source(emit_numpy(load_layer("log_softmax_nll")))
    into = namespace["_into"]
    a32, a64 = np.ones(3, np.float32), np.ones(3)
    assert into(a32, np.ones(3, np.float32)) is a32
    assert into(a64, np.ones(3, np.float32)) is a64
    assert into(a32, np.ones(3)) is None
    assert into(a32, np.float64(2.0)) is None  # a NumPy scalar is not weak: it would promote
    assert into(a32, [1.0, 2.0, 3.0]) is None


def scipy_softmax(x, axis=None):
    import scipy.special

    return scipy.special.softmax(x, axis=axis)


@pytest.mark.parametrize("s_dtype", [np.float32, np.float64])
def test_emitted_log_softmax_nll_with_one_hot_integer_targets(s_dtype):
    m = _log_softmax_nll_module()
    rng = np.random.default_rng(11)
    s = (4 * rng.standard_normal((70, 1000))).astype(s_dtype)
    labels = rng.integers(0, 1000, size=70)
    t = np.zeros((70, 1000), dtype=np.int64)
    t[np.arange(70), labels] = 1
    loss = F.cross_entropy(torch.tensor(s, dtype=torch.float64), torch.tensor(labels)).item()
    got = m["forward"](s=s, t=t)
    # NumPy promotes float32 with int64 to float64, in the einsum as in the product it replaces
    assert np.asarray(got).dtype == np.result_type(s, t)
    assert m["grad_s"](s=s, t=t).dtype == np.result_type(s, t)
    np.testing.assert_allclose(got, loss, rtol=1e-9 if s_dtype == np.float64 else 1e-6)


def test_a_sum_of_a_product_with_an_array_of_our_own_is_one_einsum():
    from symderive.core.parse import parse_claim

    layer = load_layer("log_softmax_nll")
    lower = codegen.InPlaceLowering(layer)
    fused = lower.code(parse_claim("sum(t * log_softmax(s, axis=1), axis=1)", layer, "s").tree)
    assert 'np.einsum("ij,ij->i", buf, t)' in fused
    plain = codegen.InPlaceLowering(layer).code(parse_claim("sum(t * s, axis=1)", layer, "s").tree)
    assert plain == "np.add.reduce((t * s), axis=1)"


def test_a_sum_of_a_product_of_vectors_with_an_array_of_our_own_is_a_dot_product():
    from symderive.core.parse import parse_claim

    layer = load_layer("softmax_cross_entropy")
    code = codegen.InPlaceLowering(layer).code(parse_claim("sum(t * log(softmax(s)))", layer, "s").tree)
    assert code.endswith("np.dot(buf, t)")
    m = load_source(emit_numpy(layer))
    rng = np.random.default_rng(12)
    for s_dtype, t_dtype in [(np.float32, np.float64), (np.float32, np.float32), (np.float64, np.int64)]:
        s = (4 * rng.standard_normal(9)).astype(s_dtype)
        t = np.eye(9, dtype=t_dtype)[4] if t_dtype == np.int64 else rng.dirichlet(np.ones(9)).astype(t_dtype)
        got = m["forward"](s=s, t=t)
        assert np.asarray(got).dtype == np.result_type(s, t)
        expected = torch_softmax_cross_entropy(
            torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64)
        )
        np.testing.assert_allclose(got, expected.item(), rtol=1e-6 if np.float32 in (s_dtype, t_dtype) else 1e-12)


# -- the convolution layers' emitted code over many sizes, float64 and float32 --------------------
#: sizes per convolution layer: dimensions of 1, 1x1 kernels, kernels as large as the (padded) input, kernels
#: larger than the output (the shifted-GEMM lowering's other regime), N = 1, C = 1, non-square, many channels
CONV_SIZES = {
    "conv2d_nchw": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=3, H=5, W=4, O=2, kh=1, kw=1),
        dict(N=2, C=2, H=4, W=3, O=3, kh=4, kw=3),
        dict(N=3, C=5, H=13, W=9, O=4, kh=3, kw=2),
        dict(N=2, C=3, H=9, W=8, O=2, kh=7, kw=6),
        dict(N=1, C=1, H=6, W=7, O=1, kh=2, kw=3),
        dict(N=2, C=9, H=12, W=11, O=7, kh=3, kw=3),
    ],
    "conv2d_nchw_s2p1": [
        dict(N=1, C=1, H=1, W=2, O=1, kh=3, kw=4),
        dict(N=2, C=3, H=9, W=6, O=2, kh=3, kw=3),
        dict(N=1, C=2, H=8, W=11, O=3, kh=1, kw=2),
    ],
    "conv2d_nchw_d2": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=3, H=9, W=8, O=2, kh=3, kw=2),
        dict(N=1, C=2, H=7, W=5, O=3, kh=4, kw=3),
    ],
    "conv2d_nchw_g2": [
        dict(N=1, Cg=1, H=1, W=1, Og=1, kh=1, kw=1),
        dict(N=2, Cg=3, H=8, W=7, Og=2, kh=3, kw=2),
        dict(N=1, Cg=2, H=6, W=5, Og=3, kh=6, kw=4),
    ],
    "conv1d_ncl": [
        dict(N=1, C=1, L=1, O=1, k=1),
        dict(N=3, C=4, L=17, O=5, k=3),
        dict(N=2, C=3, L=9, O=2, k=8),
    ],
    "conv1d_ncl_s2": [dict(N=1, C=1, L=1, O=1, k=1), dict(N=2, C=3, L=15, O=4, k=4)],
    "conv_transpose2d_nchw": [
        dict(N=1, C=1, H=1, W=1, O=1, kh=1, kw=1),
        dict(N=2, C=3, H=6, W=5, O=4, kh=3, kw=2),
        dict(N=1, C=2, H=2, W=3, O=3, kh=5, kw=4),
        dict(N=3, C=1, H=4, W=4, O=1, kh=1, kw=2),
    ],
}

#: the benchmark's weight-gradient claim for conv2d_nchw: a conv2d whose kernel is g (larger than its output)
NCHW_CONV_CLAIMS = {"w": "transpose(conv2d(transpose(x, (1, 0, 2, 3)), transpose(g, (1, 0, 2, 3))), (1, 0, 2, 3))"}


@functools.cache
def conv_module(name: str, claims: tuple = ()) -> dict:
    return load_source(emit_numpy(name, claims=dict(claims) or None), name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("name", "claims"),
    by_weight(
        [(name, ()) for name in CONV_SIZES] + [("conv2d_nchw", tuple(NCHW_CONV_CLAIMS.items()))],
        layer=lambda case: case[0],
    ),
    ids=lambda v: v if isinstance(v, str) else ("claims" if v else "default"),
)
def test_emitted_convolutions_match_torch_autograd_over_many_sizes(name, claims, dtype):
    layer = load_layer(name)
    module = conv_module(name, claims)
    for sizes in CONV_SIZES[name]:
        values = new_layers.random_values(layer, sizes, new_layers.rng_for("conv sizes", name, sizes))
        values = {k: v.astype(dtype) for k, v in values.items()}
        # the oracle runs in float64 on the same (rounded) data
        expected = {"forward": new_layers.torch_forward(name, values)[0].detach().numpy()}
        expected |= {f"grad_{wrt}": new_layers.torch_gradient(layer, wrt, values) for wrt in layer.differentiable}
        for fn, want in expected.items():
            got = call(module[fn], values)
            # the convolution lowerings keep float32; an index-form claim's lowering computes in float64
            assert got.dtype in (dtype, np.float64) and got.shape == want.shape, (fn, sizes, got.dtype, got.shape)
            assert fn != "forward" or got.dtype == dtype
            scale = np.abs(want).max(initial=1.0)
            atol = 1e-12 * scale if dtype == np.float64 else 1e-5 * scale
            np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{fn} at {sizes}")


# -- which known claim is emitted when none is given -----------------------------------------------


def test_known_claims_put_closed_forms_first_and_leave_out_claims_needing_assumptions():
    layer = load_layer("conv2d_nchw")
    ranked = codegen.known_claims(layer, "w")
    # the index-form claim lowers to a gather; the closed form to convolutions
    assert ranked[0].startswith("transpose(conv2d(")
    assert any("==" in text for text in ranked[1:])
    texts = {c.claim for c in layer.claims if c.wrt == "w"}
    assert set(ranked) <= texts
    for claim in layer.claims:
        if claim.assume or claim.expect != "proved":
            assert claim.claim not in codegen.known_claims(layer, claim.wrt)


def test_known_claims_put_the_smaller_of_two_closed_forms_first():
    ranked = codegen.known_claims("log_softmax_nll", "s")
    assert ranked == [
        "(softmax(s, axis=1) - t) / N",
        "(softmax(s, axis=1) * sum(t, axis=1, keepdims=True) - t) / N",
    ]


def test_a_layer_without_claims_given_emits_its_cheapest_known_claims(tmp_path):
    from symderive.cli import main

    source = emit_numpy("conv2d_nchw")
    assert "dL/dw = transpose(conv2d(" in source
    out = tmp_path / "conv.py"
    assert main(["codegen", "conv2d_nchw", "-o", str(out)]) == 0
    # the command line and the Python API choose the same claims
    assert out.read_text() == source
    m = load_source(source)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    g = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dw = m["grad_w"](x=x, g=g)
    # the convolution path keeps float32 (the index-form gather computed in float64)
    assert dw.dtype == np.float32
    tx = torch.tensor(x, dtype=torch.float64)
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    (F.conv2d(tx, tw) * torch.tensor(g, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_an_operand_read_twice_by_an_in_place_update_is_computed_once():
    from symderive.core.parse import parse_claim

    layer = load_layer("log_softmax_nll")
    claim = "(softmax(s, axis=1) * sum(t, axis=1, keepdims=True) - t) / N"
    code = codegen.InPlaceLowering(layer).code(parse_claim(claim, layer, "s").tree)
    assert code.count("np.add.reduce(t") == 1
    m = load_source(emit_numpy(layer, claims={"s": claim}))
    rng = np.random.default_rng(5)
    s = 3 * rng.standard_normal((5, 7))
    t = rng.uniform(0.1, 1, (5, 7))  # rows not summing to 1: the claim's sum(t) matters
    expected = (scipy_softmax(s, axis=1) * t.sum(axis=1, keepdims=True) - t) / 5
    np.testing.assert_allclose(m["grad_s"](s=s, t=t), expected, rtol=1e-12)


def test_a_proved_verdict_given_for_a_claim_is_not_proved_again(monkeypatch):
    import symderive.prove as prove_module

    layer = load_layer("linear")
    verdict = prove_module.prove(layer, "x", "w.T @ g")
    assert verdict.verdict == "proved"
    proved, real_prove = [], prove_module.prove

    def counted(layer, wrt, claim, *args, **kwargs):
        proved.append((wrt, claim))
        return real_prove(layer, wrt, claim, *args, **kwargs)

    monkeypatch.setattr(prove_module, "prove", counted)
    source = emit_numpy(layer, claims={"x": "w.T @ g", "w": "outer(g, x)"}, verdicts={"x": verdict})
    assert "def grad_x(*, w, g):" in source
    assert proved == [("w", "outer(g, x)"), ("b", "g")]


@pytest.mark.parametrize(
    "mismatch",
    [
        {"claim": "w.T @ g"},
        {"wrt": "b"},
        {"layer": "linear_batched"},
        {"verdict": "unknown"},
        {"assumptions": ("m == n",)},
    ],
)
def test_a_verdict_that_is_not_this_claims_proof_is_ignored(mismatch):
    from symderive.decide.verdict import Verdict

    layer = load_layer("linear")
    # "w @ g" is false (w is [m, n]); a verdict that proves something else does not let it through
    fields = {"verdict": "proved", "layer": "linear", "wrt": "x", "claim": "w @ g", "assumptions": ()} | mismatch
    with pytest.raises(ClaimNotProved):
        emit_numpy(layer, claims={"x": "w @ g"}, verdicts={"x": Verdict(**fields)})


# comparisons are 0/1 arrays (LANGUAGE.md); NumPy's booleans differ under +, -, sign, exp, matmul
COMPARISON_CLAIMS = [
    ("g * ((x > 0) + (x > 0)) / 2", lambda x, g, c: g * (c(x > 0) + c(x > 0)) / 2),
    ("g * (1 - (x < 0) - (x == 0))", lambda x, g, c: g * (1 - c(x < 0) - c(x == 0))),
    ("g * ((x > 0) - (x < 0) + (x < 0))", lambda x, g, c: g * (c(x > 0) - c(x < 0) + c(x < 0))),
    ("g * -(-(x > 0))", lambda x, g, c: g * c(x > 0)),
    ("g * sign(x > 0)", lambda x, g, c: g * np.sign(c(x > 0))),
    ("g * (x > 0) * exp(x > 0) / exp(x > 0)", lambda x, g, c: g * c(x > 0)),
]


@pytest.mark.parametrize(("claim", "as_floats"), COMPARISON_CLAIMS, ids=[c for c, _ in COMPARISON_CLAIMS])
def test_emitted_comparisons_count_as_0_1_numbers(claim, as_floats):
    m = load_source(emit_numpy("relu", claims={"x": claim}))
    rng = np.random.default_rng(8)
    x = rng.integers(-1, 2, (4, 5)).astype(float)  # zeros, ties and both signs
    g = rng.standard_normal((4, 5))
    tx = torch.tensor(x, requires_grad=True)
    (torch.relu(tx) * torch.tensor(g)).sum().backward()
    got = m["grad_x"](x=x, g=g)
    # the oracle: the claim with every comparison converted to floats before any arithmetic
    np.testing.assert_allclose(got, as_floats(x, g, lambda b: b.astype(float)), rtol=1e-15)
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-15)


def test_float_constants_are_emitted_and_printed_as_their_exact_decimals():
    from pathlib import Path

    from symderive.core.tree import to_latex

    layer = load_layer(str(Path(__file__).parents[2] / "examples" / "custom_layers" / "gelu_tanh.toml"))
    source = emit_numpy(layer)
    assert "0.7978845608028654" in source and "0.044715" in source
    assert "5000000000000000" not in source and "200000" not in source
    m = load_source(source)
    rng = np.random.default_rng(9)
    x, g = 3 * rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    tx = torch.tensor(x, requires_grad=True)
    y = F.gelu(tx, approximate="tanh")
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(m["forward"](x=x), y.detach().numpy(), rtol=1e-12)
    # the tails of the GELU gradient cancel to ~1e-6 and below: rounding differs there in the 16th digit
    np.testing.assert_allclose(m["grad_x"](x=x, g=g), tx.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert "0.044715" in to_latex(layer.forward_tree)
