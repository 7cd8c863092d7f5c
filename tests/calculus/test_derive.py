"""The deriver: its steps, and the derived gradient against PyTorch autograd.

The derived gradient is an index expression at a free index; it is evaluated concretely
(element by element, no symbolic reasoning) and compared with autograd of the forward
pass written in torch, at several sizes with random, non-symmetric float64 data.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from symderive.calculus.derive import eliminate_deltas
from symderive.core.ir import GSum, Iverson, Tensor, index_symbol, read, size_symbol
from symderive.decide.concrete import evaluate
from symderive.derive import derive
from symderive.errors import InputError
from symderive.model.layer import LAYERS_DIR, load_layer


def _conv_full(t):
    kh, kw = t["w"].shape
    return F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None], padding=(kh - 1, kw - 1))[0, 0]


# forward passes in torch, and the shapes of every input and of g
TORCH = {
    "conv2d": lambda t: F.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"],
    "convolution2d": lambda t: F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None])[0, 0],
    "convolution2d_full": _conv_full,
    "linear": lambda t: t["w"] @ t["x"] + t["b"],
    "softmax_cross_entropy": lambda t: -(t["t"] * torch.log_softmax(t["s"], 0)).sum(),
}


def _conv_valid(H, W, kh, kw):
    return {"x": (H, W), "w": (kh, kw), "b": (), "g": (H - kh + 1, W - kw + 1)}


SHAPES = {
    "conv2d": _conv_valid,
    "convolution2d": lambda H, W, kh, kw: {k: v for k, v in _conv_valid(H, W, kh, kw).items() if k != "b"},
    "convolution2d_full": lambda H, W, kh, kw: {"x": (H, W), "w": (kh, kw), "g": (H + kh - 1, W + kw - 1)},
    "linear": lambda n, m: {"x": (n,), "w": (m, n), "b": (m,), "g": (m,)},
    "softmax_cross_entropy": lambda n: {"s": (n,), "t": (n,)},
}

# sizes in each layer's declaration order; edge cases included (1s, kernel as large as the input)
SIZES = {
    "conv2d": [(4, 3, 2, 3), (1, 1, 1, 1), (5, 4, 5, 1), (3, 5, 2, 2)],
    "convolution2d": [(4, 3, 2, 3), (1, 1, 1, 1), (5, 4, 5, 1), (3, 5, 2, 2)],
    "convolution2d_full": [(3, 2, 2, 4), (1, 1, 1, 1), (2, 4, 3, 1)],
    "linear": [(3, 2), (1, 1), (1, 4), (5, 1)],
    "softmax_cross_entropy": [(1,), (3,), (5,)],
}
NAMES = {
    "conv2d": ("H", "W", "kh", "kw"),
    "convolution2d": ("H", "W", "kh", "kw"),
    "convolution2d_full": ("H", "W", "kh", "kw"),
    "linear": ("n", "m"),
    "softmax_cross_entropy": ("n",),
}
WRT = [(layer, wrt) for layer in TORCH for wrt in load_layer(layer).differentiable]
RNG = np.random.default_rng(4)


def torch_gradient(layer: str, wrt: str, values: dict) -> np.ndarray:
    t = {k: torch.tensor(v, requires_grad=(k == wrt)) for k, v in values.items()}
    out = TORCH[layer](t)
    loss = out if layer == "softmax_cross_entropy" else (t["g"] * out).sum()
    loss.backward()
    return t[wrt].grad.numpy()


def derived_value(derivation, expr, shape, sizes, values) -> np.ndarray:
    """``expr`` (a step's right side at the derivation's free index) evaluated over the input's shape."""
    index = derivation.index
    tensor = Tensor(shape=shape, element=lambda idx: expr.xreplace(dict(zip(index, idx, strict=True))))
    return np.asarray(evaluate(tensor, sizes, values), dtype=np.float64)


@pytest.mark.parametrize(("layer", "wrt"), WRT)
def test_derived_gradient_matches_autograd(layer, wrt):
    lay = load_layer(layer)
    d = derive(lay, wrt)
    for size in SIZES[layer]:
        sizes = dict(zip(NAMES[layer], size, strict=True))
        # non-normalised targets: the derivation itself assumes nothing about sum(t)
        values = {n: RNG.standard_normal(s) for n, s in SHAPES[layer](*size).items()}
        expected = torch_gradient(layer, wrt, values)
        got = derived_value(d, d.gradient, lay.inputs[wrt], sizes, values)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"{layer}/{wrt} at {sizes}")


NON_FINAL = ["loss", "forward", "chain rule", "partial derivative", "kronecker deltas", "delta elimination", "result"]


@pytest.mark.parametrize(("layer", "wrt"), WRT)
def test_steps_have_the_documented_kinds_in_order(layer, wrt):
    d = derive(layer, wrt)
    kinds = [s.kind for s in d.steps]
    wanted = (
        ["loss", "partial derivative", "delta elimination", "result"] if layer == "softmax_cross_entropy" else NON_FINAL
    )
    positions = [kinds.index(k) for k in wanted]  # raises if a kind is missing
    assert positions == sorted(positions), kinds
    assert kinds[-1] == "result"
    assert d.steps[-1].rhs == d.gradient
    assert all(s.text for s in d.steps)


@pytest.mark.parametrize(("layer", "wrt"), [w for w in WRT if w[0] != "softmax_cross_entropy"])
def test_deltas_appear_then_are_eliminated(layer, wrt):
    d = derive(layer, wrt)
    step = {s.kind: s for s in d.steps}
    if wrt != "b":
        assert step["kronecker deltas"].rhs.has(sp.KroneckerDelta)
    assert not step["delta elimination"].rhs.has(sp.KroneckerDelta)
    assert not d.gradient.has(sp.KroneckerDelta)


GRADIENT_STEPS = ("kronecker deltas", "delta elimination", "guards", "reindex", "kernel offsets", "result")


@pytest.mark.parametrize(("layer", "wrt"), WRT)
def test_every_step_at_the_free_index_has_the_gradient_value(layer, wrt):
    """Each step from the sum with deltas on (elimination, guards, re-indexing) keeps autograd's value."""
    lay = load_layer(layer)
    d = derive(lay, wrt)
    steps = [s for s in d.steps if s.kind in GRADIENT_STEPS]
    if layer == "softmax_cross_entropy":
        steps += [s for s in d.steps if s.kind == "partial derivative"]
    assert steps
    for size in SIZES[layer][:2] + SIZES[layer][-1:]:
        sizes = dict(zip(NAMES[layer], size, strict=True))
        values = {n: RNG.standard_normal(s) for n, s in SHAPES[layer](*size).items()}
        expected = torch_gradient(layer, wrt, values)
        for step in steps:
            got = derived_value(d, step.rhs, lay.inputs[wrt], sizes, values)
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"step {step.kind} at {sizes}")


def test_convolution2d_shows_the_shift_by_kh_minus_1():
    """Issue 4: convolution2d's derivation re-indexes to show seed 000's Eq. E shifted by kh - 1."""
    d = derive("convolution2d", "x")
    reindex = [s for s in d.steps if s.kind == "reindex"]
    assert reindex, f"no reindex step in {[s.kind for s in d.steps]}"
    kh = size_symbol("kh")
    assert any((s.rhs.has(kh) or s.text.count("kh")) for s in reindex)


def test_conv2d_ends_with_seed_004s_sum_over_the_kernel():
    """Seed 004: dL/dI(i', j') = sum_{m < k1, n < k2} dL/dY(i' - m, j' - n) w(m, n)."""
    d = derive("conv2d", "x")
    (step,) = [s for s in d.steps if s.kind == "kernel offsets"]
    kh, kw = size_symbol("kh"), size_symbol("kw")
    (m, lo_m, hi_m), (n, lo_n, hi_n) = step.rhs.limits
    assert (lo_m, hi_m, lo_n, hi_n) == (0, kh - 1, 0, kw - 1)
    p, q = d.index
    reads = {str(r.base): r.indices for r in step.rhs.atoms(sp.Indexed)}
    assert reads["w"] == (m, n)
    assert reads["g"] == (p - m, q - n)


def test_bad_wrt_and_constant_wrt_are_input_errors():
    with pytest.raises(InputError):
        derive("linear", "y")
    with pytest.raises(InputError):
        derive("softmax_cross_entropy", "t")


# -- the DESIGN.md trap: deltas over the integers, not the rationals ---------------------------

STRIDED = """
name = "strided"
description = "Every second element of x."

[inputs]
x = ["N"]

[output]
y = "y[i] == x[2 * i]"
shape = ["M"]
"""


def strided_torch_gradient(x, g) -> np.ndarray:
    xt = torch.tensor(x, requires_grad=True)
    zero = torch.zeros((), dtype=torch.float64)
    y = torch.stack([xt[2 * i] if 2 * i < len(x) else zero for i in range(len(g))])
    (torch.tensor(g) * y).sum().backward()
    return xt.grad.numpy()


@pytest.mark.parametrize(("N", "M"), [(6, 3), (7, 3), (5, 4), (1, 1), (4, 1), (2, 5)])
def test_strided_read_gradient_is_zero_at_odd_positions(tmp_path, N, M):
    path = tmp_path / "strided.toml"
    path.write_text(STRIDED)
    lay = load_layer(str(path))
    d = derive(lay, "x")
    x, g = RNG.standard_normal(N), RNG.standard_normal(M)
    got = derived_value(d, d.gradient, lay.inputs["x"], {"N": N, "M": M}, {"x": x, "g": g})
    expected = strided_torch_gradient(x, g)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert np.all(got[1::2] == 0)


def test_eliminate_deltas_non_unit_coefficient_keeps_divisibility():
    """Sum_k [0 <= k <= n-1] x[2k] delta(2k, p): 1 at even p < 2n, 0 at odd p (SymPy would say 1)."""
    k, p = index_symbol("k"), index_symbol("p")
    n = size_symbol("n")
    expr = eliminate_deltas(GSum(read("x", (2 * k,)) * sp.KroneckerDelta(2 * k, p), (k, 0, n - 1)))
    assert not expr.has(sp.KroneckerDelta)
    for nv in (1, 3):
        for pv in range(0, 2 * nv + 2):
            want = 1.0 if (pv % 2 == 0 and pv < 2 * nv) else 0.0
            value = expr.xreplace({p: pv, n: nv})
            x = np.arange(1.0, 2 * nv + 3)
            t = Tensor(shape=(), element=lambda idx, v=value: v)
            got = float(evaluate(t, {}, {"x": x}))
            assert got == (x[pv] if want else 0.0), (nv, pv, value)


BUILT_IN = sorted(p.stem for p in Path(LAYERS_DIR).glob("*.toml"))


@pytest.mark.parametrize("name", BUILT_IN)
def test_presentation_steps_keep_the_gradient_of_every_built_in_layer(name):
    """Re-indexing steps (shift, kernel offsets, guards) change the form, never the value."""
    from symderive.counterexample import input_shapes, size_candidates

    lay = load_layer(name)
    for wrt in lay.differentiable:
        d = derive(lay, wrt)
        steps = [s for s in d.steps if s.kind in ("guards", "reindex", "kernel offsets")]
        for sizes in itertools.islice(size_candidates(lay), 0, 6, 5):
            shapes = input_shapes(lay, sizes)
            values = {n: RNG.standard_normal(s) for n, s in shapes.items()}
            env = {str(k): v for k, v in sizes.items()}
            expected = derived_value(d, d.gradient, lay.inputs[wrt], env, values)
            for step in steps:
                got = derived_value(d, step.rhs, lay.inputs[wrt], env, values)
                np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"{name}/{wrt} {step.kind}")


@pytest.mark.parametrize("name", ["conv2d", "convolution2d", "convolution2d_full"])
def test_every_seed_label_names_a_step_of_the_derivation(name):
    """The seeds' equation names ([labels] in the layer file) appear on the steps they name."""
    lay = load_layer(name)
    assert lay.labels
    for wrt, labels in lay.labels.items():
        d = derive(lay, wrt)
        shown = {s.kind: s.label for s in d.steps if s.label}
        assert shown == dict(labels), f"{name}/{wrt}: steps {[s.kind for s in d.steps]}"


def test_conv2d_labels_seed_004s_equation_2_on_the_sum_over_the_kernel():
    d = derive("conv2d", "x")
    (labelled,) = [s for s in d.steps if s.label == "(2)"]
    assert labelled.kind == "kernel offsets"


# -- a keepdims reduction's range guard (RMSNorm, a user layer) ----------------------------------

RMS_NORM = Path(__file__).resolve().parents[2] / "examples" / "custom_layers" / "rms_norm.toml"


def test_forward_step_drops_the_guards_its_output_ranges_imply():
    # mean(..., keepdims=True) reads its row under [0 <= i <= N - 1]; in a denominator it showed as
    # y[i, j] = gamma[j] * x[i, j] / (... * [0 <= i <= N - 1]), which every i of the loss's sum makes 1
    lay = load_layer(str(RMS_NORM))
    d = derive(lay, "x")
    forward = next(s for s in d.steps if s.kind == "forward")
    assert not forward.rhs.has(Iverson), forward.rhs
    assert not any(s.rhs.has(Iverson) for s in d.steps if s.kind in ("partial derivative", "kronecker deltas"))


@pytest.mark.parametrize(("N", "D"), [(1, 1), (2, 3), (3, 5)])
def test_rms_norm_steps_have_torch_autograds_gradient(N, D):
    lay = load_layer(str(RMS_NORM))
    d = derive(lay, "x")
    values = {"x": RNG.standard_normal((N, D)), "gamma": RNG.standard_normal(D), "eps": np.array(0.3)}
    values["g"] = RNG.standard_normal((N, D))
    t = {k: torch.tensor(v, requires_grad=(k == "x")) for k, v in values.items()}
    (t["g"] * F.rms_norm(t["x"], (D,), t["gamma"], float(values["eps"]))).sum().backward()
    expected = t["x"].grad.numpy()
    for step in d.steps:
        if step.kind in ("kronecker deltas", "delta elimination", "guards", "result"):
            got = derived_value(d, step.rhs, lay.inputs["x"], {"N": N, "D": D}, values)
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=step.kind)
