"""The all-sizes prover on the seed layers: the seeds' claims proved, the usual mistakes refuted.

Every verdict is checked against independent oracles, never against symderive itself:
the true gradient is PyTorch autograd of the forward pass written in torch; each claim
is evaluated by the small NumPy/SciPy lambda next to it in the table. A refutation's
counterexample is recomputed at its sizes and values and must show the two sides
differing at its index; its sizes must be minimal (LANGUAGE.md: smallest sum of sizes,
ties by the sizes in declaration order, smallest first), checked by brute force over
every smaller allowed size assignment with random data.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
import scipy.signal as ss
import scipy.special
import torch
import torch.nn.functional as F

from symderive.errors import InputError
from symderive.prove import prove

# -- the layers, written independently of symderive ----------------------------------------


def _conv_shapes(s, g_shape):
    return {"x": (s["H"], s["W"]), "w": (s["kh"], s["kw"]), "g": g_shape}


def _torch_conv2d(t):
    return F.conv2d(t["x"][None, None], t["w"][None, None])[0, 0] + t["b"]


def _torch_convolve_valid(t):
    # scipy's convolve is correlate with the flipped kernel
    return F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None])[0, 0]


def _torch_convolve_full(t):
    kh, kw = t["w"].shape
    return F.conv2d(t["x"][None, None], torch.flip(t["w"], (0, 1))[None, None], padding=(kh - 1, kw - 1))[0, 0]


def _torch_softmax_ce(t):
    return -(t["t"] * torch.log_softmax(t["s"], 0)).sum()


@dataclass(frozen=True)
class Spec:
    """One layer as the oracle sees it: sizes in declaration order, shapes, torch forward."""

    sizes: tuple
    allowed: object  # sizes dict -> bool
    shapes: object  # sizes dict -> {name: shape}, g included for non-final layers
    forward: object  # torch tensors dict -> output (y, or the loss L)
    loss: bool = False
    normalised_t: bool = False


SPECS = {
    "conv2d": Spec(
        ("H", "W", "kh", "kw"),
        lambda s: s["kh"] <= s["H"] and s["kw"] <= s["W"],
        lambda s: {**_conv_shapes(s, (s["H"] - s["kh"] + 1, s["W"] - s["kw"] + 1)), "b": ()},
        _torch_conv2d,
    ),
    "convolution2d": Spec(
        ("H", "W", "kh", "kw"),
        lambda s: s["kh"] <= s["H"] and s["kw"] <= s["W"],
        lambda s: _conv_shapes(s, (s["H"] - s["kh"] + 1, s["W"] - s["kw"] + 1)),
        _torch_convolve_valid,
    ),
    "convolution2d_full": Spec(
        ("H", "W", "kh", "kw"),
        lambda s: True,
        lambda s: _conv_shapes(s, (s["H"] + s["kh"] - 1, s["W"] + s["kw"] - 1)),
        _torch_convolve_full,
    ),
    "linear": Spec(
        ("n", "m"),
        lambda s: True,
        lambda s: {"x": (s["n"],), "w": (s["m"], s["n"]), "b": (s["m"],), "g": (s["m"],)},
        lambda t: t["w"] @ t["x"] + t["b"],
    ),
    "softmax_cross_entropy": Spec(
        ("n",), lambda s: True, lambda s: {"s": (s["n"],), "t": (s["n"],)}, _torch_softmax_ce, True, True
    ),
    # the same loss without the assumption sum(t) == 1 (a layer file written in tmp_path)
    "softmax_ce_free": Spec(
        ("n",), lambda s: True, lambda s: {"s": (s["n"],), "t": (s["n"],)}, _torch_softmax_ce, True, False
    ),
}

FREE_LAYER_TOML = """
name = "softmax_ce_free"
description = "Softmax cross-entropy without the assumption sum(t) == 1."
constants = ["t"]

[inputs]
s = ["n"]
t = ["n"]

[output]
L = "-sum(t * log(softmax(s)))"
"""


def torch_gradient(layer: str, wrt: str, values: dict) -> np.ndarray:
    """The true gradient: autograd of the torch forward (loss ``sum(g * y)`` for a non-final layer)."""
    spec = SPECS[layer]
    t = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=(k == wrt)) for k, v in values.items()}
    out = spec.forward(t)
    loss = out if spec.loss else (t["g"] * out).sum()
    loss.backward()
    return t[wrt].grad.numpy()


def random_values(layer: str, sizes: dict, rng, assume=()) -> dict:
    """Random float64 data: non-symmetric, and targets normalised only where the layer assumes it."""
    spec = SPECS[layer]
    out = {n: rng.standard_normal(shape) for n, shape in spec.shapes(sizes).items()}
    if "t" in out and (spec.normalised_t or "sum(t) == 1" in assume):
        t = rng.uniform(0.1, 1.0, out["t"].shape)
        out["t"] = t / t.sum()
    return out


def size_assignments(layer: str, largest: int):
    """Every allowed size assignment with each size in 1..largest, in minimal order (sum, then declaration order)."""
    spec = SPECS[layer]
    combos = itertools.product(range(1, largest + 1), repeat=len(spec.sizes))
    envs = [dict(zip(spec.sizes, c, strict=True)) for c in combos]
    envs = [e for e in envs if spec.allowed(e)]
    return sorted(envs, key=lambda e: (sum(e.values()), tuple(e[k] for k in spec.sizes)))


# -- claim oracles: index-form helpers (reads outside a shape are zero) --------------------

B = range(-3, 14)  # a bare summation index: wider than any shape used here


def rd(a, *ix):
    """``a[ix]``, or 0 outside ``a``'s shape (no NumPy wrap-around)."""
    a = np.asarray(a)
    if all(0 <= i < n for i, n in zip(ix, a.shape, strict=True)):
        return float(a[ix])
    return 0.0


def grid(shape, fn) -> np.ndarray:
    """The array of ``fn(*index)`` over ``shape``."""
    return np.array([fn(*ix) for ix in np.ndindex(*shape)], dtype=np.float64).reshape(shape)


def shp(v, name):
    return np.asarray(v[name]).shape


def softmax(s):
    e = np.exp(s - s.max())
    return e / e.sum()


flip = np.flip

# -- the table -------------------------------------------------------------------------------
P, R, U = "proved", "refuted", "unknown"
DX = "dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)"
DW = "dw[m, n] == Sum(x[i + m, j + n] * g[i, j], (i, 0, H - kh), (j, 0, W - kw))"
FULL_DX = "dx[p, q] == Sum(g[e, f] * w[e - p, f - q], e, f)"


def _dx_conv2d(v, shift=0):
    return grid(
        shp(v, "x"), lambda p, q: sum(rd(v["g"], e, f) * rd(v["w"], p - e + shift, q - f) for e in B for f in B)
    )


def _dw_conv2d(v, i_lo=0, i_hi_extra=0):
    H, W, kh, kw = v["H"], v["W"], v["kh"], v["kw"]
    ii = range(i_lo, H - kh + i_hi_extra + 1)
    return grid(
        shp(v, "w"),
        lambda m, n: sum(rd(v["x"], i + m, j + n) * rd(v["g"], i, j) for i in ii for j in range(0, W - kw + 1)),
    )


def _dx_seed_e(v):
    # seed 000's Eq. E as written: w[e - p, f - q]
    return grid(shp(v, "x"), lambda p, q: sum(rd(v["g"], e, f) * rd(v["w"], e - p, f - q) for e in B for f in B))


CASES = [
    # ---- conv2d: y = correlate(x, w, "valid") + b -----------------------------------------
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w, "full")',
        (),
        P,
        lambda v: ss.convolve(v["g"], v["w"], "full"),
        id="conv2d-x-convolve-full",
    ),
    pytest.param(
        "conv2d",
        "x",
        'correlate(g, flip(w), "full")',
        (),
        P,
        lambda v: ss.correlate(v["g"], flip(v["w"]), "full"),
        id="conv2d-x-correlate-flip-full",
    ),
    pytest.param(
        "conv2d",
        "x",
        'scipy.signal.convolve2d(g, w, "full")',
        (),
        P,
        lambda v: ss.convolve2d(v["g"], v["w"], "full"),
        id="conv2d-x-convolve2d",
    ),
    pytest.param("conv2d", "x", DX, (), P, _dx_conv2d, id="conv2d-x-index"),
    pytest.param(
        "conv2d",
        "x",
        'dx == convolve(g, w, "full")',
        (),
        P,
        lambda v: ss.convolve(v["g"], v["w"], "full"),
        id="conv2d-x-dx-closed",
    ),
    pytest.param(
        "conv2d",
        "w",
        'correlate(x, g, "valid")',
        (),
        P,
        lambda v: ss.correlate(v["x"], v["g"], "valid"),
        id="conv2d-w-correlate-valid",
    ),
    pytest.param("conv2d", "w", DW, (), P, _dw_conv2d, id="conv2d-w-index"),
    pytest.param(
        "conv2d",
        "w",
        'scipy.signal.correlate2d(x, g, "valid")',
        (),
        P,
        lambda v: ss.correlate2d(v["x"], v["g"], "valid"),
        id="conv2d-w-correlate2d",
    ),
    pytest.param(
        "conv2d",
        "w",
        'convolve(x, flip(g), "valid")',
        (),
        P,
        lambda v: ss.convolve(v["x"], flip(v["g"]), "valid"),
        id="conv2d-w-convolve-flip",
    ),
    # a bound one past the end reads g outside its shape: zero, so the claim is still TRUE
    pytest.param(
        "conv2d",
        "w",
        DW.replace("(i, 0, H - kh)", "(i, 0, H - kh + 1)"),
        (),
        P,
        lambda v: _dw_conv2d(v, i_hi_extra=1),
        id="conv2d-w-index-bound-past-end-reads-zero",
    ),
    pytest.param("conv2d", "b", "sum(g)", (), P, lambda v: np.sum(v["g"]), id="conv2d-b-sum"),
    pytest.param("conv2d", "b", "np.sum(g)", (), P, lambda v: np.sum(v["g"]), id="conv2d-b-np-sum"),
    pytest.param(
        "conv2d", "b", "sum(sum(g, axis=0))", (), P, lambda v: np.sum(np.sum(v["g"], axis=0)), id="conv2d-b-sum-sum"
    ),
    pytest.param("conv2d", "b", "db == Sum(g[i, j], i, j)", (), P, lambda v: np.sum(v["g"]), id="conv2d-b-index"),
    # mistakes
    pytest.param(
        "conv2d",
        "x",
        'correlate(g, w, "full")',
        (),
        R,
        lambda v: ss.correlate(v["g"], v["w"], "full"),
        id="conv2d-x-not-flipped",
    ),
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, flip(w), "full")',
        (),
        R,
        lambda v: ss.convolve(v["g"], flip(v["w"]), "full"),
        id="conv2d-x-flipped-twice",
    ),
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w, "valid")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["w"], "valid"),
        id="conv2d-x-mode-valid",
    ),
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w, "same")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["w"], "same"),
        id="conv2d-x-mode-same",
    ),
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w.T, "full")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["w"].T, "full"),
        id="conv2d-x-transposed-kernel",
    ),
    pytest.param(
        "conv2d",
        "x",
        '-convolve(g, w, "full")',
        (),
        R,
        lambda v: -ss.convolve(v["g"], v["w"], "full"),
        id="conv2d-x-sign",
    ),
    pytest.param(
        "conv2d",
        "x",
        '2 * convolve(g, w, "full")',
        (),
        R,
        lambda v: 2 * ss.convolve(v["g"], v["w"], "full"),
        id="conv2d-x-scaled",
    ),
    pytest.param(
        "conv2d",
        "x",
        DX.replace("w[p - e,", "w[p - e + 1,"),
        (),
        R,
        lambda v: _dx_conv2d(v, shift=1),
        id="conv2d-x-index-off-by-one",
    ),
    pytest.param("conv2d", "x", FULL_DX, (), R, _dx_seed_e, id="conv2d-x-index-seed-eq-e"),
    pytest.param(
        "conv2d",
        "w",
        'convolve(x, g, "valid")',
        (),
        R,
        lambda v: ss.convolve(v["x"], v["g"], "valid"),
        id="conv2d-w-convolve-for-correlate",
    ),
    pytest.param(
        "conv2d",
        "w",
        'correlate(g, x, "valid")',
        (),
        R,
        lambda v: ss.correlate(v["g"], v["x"], "valid"),
        id="conv2d-w-swapped-operands",
    ),
    pytest.param(
        "conv2d",
        "w",
        DW.replace("(i, 0, H - kh)", "(i, 1, H - kh)"),
        (),
        R,
        lambda v: _dw_conv2d(v, i_lo=1),
        id="conv2d-w-index-bound-from-1",
    ),
    pytest.param(
        "conv2d",
        "w",
        DW.replace("(i, 0, H - kh)", "(i, 0, H - kh - 1)"),
        (),
        R,
        lambda v: _dw_conv2d(v, i_hi_extra=-1),
        id="conv2d-w-index-bound-short",
    ),
    pytest.param("conv2d", "b", "mean(g)", (), R, lambda v: np.mean(v["g"]), id="conv2d-b-mean"),
    pytest.param("conv2d", "b", "sum(g, axis=0)", (), R, lambda v: np.sum(v["g"], axis=0), id="conv2d-b-sum-axis0"),
    # ---- convolution2d: y = convolve(x, w, "valid") ----------------------------------------
    pytest.param(
        "convolution2d",
        "x",
        'convolve(g, flip(w), "full")',
        (),
        P,
        lambda v: ss.convolve(v["g"], flip(v["w"]), "full"),
        id="convolution2d-x-convolve-flip",
    ),
    pytest.param(
        "convolution2d",
        "x",
        'correlate(g, w, "full")',
        (),
        P,
        lambda v: ss.correlate(v["g"], v["w"], "full"),
        id="convolution2d-x-correlate",
    ),
    pytest.param(
        "convolution2d",
        "x",
        "dx[p, q] == Sum(g[e, f] * w[e - p + kh - 1, f - q + kw - 1], e, f)",
        (),
        P,
        lambda v: grid(
            shp(v, "x"),
            lambda p, q: sum(
                rd(v["g"], e, f) * rd(v["w"], e - p + v["kh"] - 1, f - q + v["kw"] - 1) for e in B for f in B
            ),
        ),
        id="convolution2d-x-index-shifted",
    ),
    pytest.param(
        "convolution2d",
        "w",
        'convolve(g, flip(x), "valid")',
        (),
        P,
        lambda v: ss.convolve(v["g"], flip(v["x"]), "valid"),
        id="convolution2d-w-convolve-flip",
    ),
    pytest.param(
        "convolution2d",
        "w",
        'flip(correlate(x, g, "valid"))',
        (),
        P,
        lambda v: flip(ss.correlate(v["x"], v["g"], "valid")),
        id="convolution2d-w-flip-correlate",
    ),
    pytest.param(
        "convolution2d",
        "w",
        "dw[m, n] == Sum(g[i, j] * x[i + kh - 1 - m, j + kw - 1 - n], i, j)",
        (),
        P,
        lambda v: grid(
            shp(v, "w"),
            lambda m, n: sum(
                rd(v["g"], i, j) * rd(v["x"], i + v["kh"] - 1 - m, j + v["kw"] - 1 - n) for i in B for j in B
            ),
        ),
        id="convolution2d-w-index",
    ),
    pytest.param(
        "convolution2d",
        "x",
        'convolve(g, w, "full")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["w"], "full"),
        id="convolution2d-x-not-flipped",
    ),
    pytest.param(
        "convolution2d",
        "x",
        'correlate(g, flip(w), "full")',
        (),
        R,
        lambda v: ss.correlate(v["g"], flip(v["w"]), "full"),
        id="convolution2d-x-correlate-flip",
    ),
    pytest.param("convolution2d", "x", FULL_DX, (), R, _dx_seed_e, id="convolution2d-x-seed-eq-e-unshifted"),
    pytest.param(
        "convolution2d",
        "w",
        'correlate(x, g, "valid")',
        (),
        R,
        lambda v: ss.correlate(v["x"], v["g"], "valid"),
        id="convolution2d-w-correlate",
    ),
    pytest.param(
        "convolution2d",
        "w",
        'convolve(g, x, "valid")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["x"], "valid"),
        id="convolution2d-w-not-flipped",
    ),
    # ---- convolution2d_full: y = convolve(x, w, "full"), seed 000 as written ----------------
    pytest.param(
        "convolution2d_full",
        "x",
        'correlate(g, w, "valid")',
        (),
        P,
        lambda v: ss.correlate(v["g"], v["w"], "valid"),
        id="full-x-correlate-valid",
    ),
    pytest.param("convolution2d_full", "x", FULL_DX, (), P, _dx_seed_e, id="full-x-index-seed-eq-e"),
    pytest.param(
        "convolution2d_full",
        "x",
        'convolve(g, flip(w), "valid")',
        (),
        P,
        lambda v: ss.convolve(v["g"], flip(v["w"]), "valid"),
        id="full-x-convolve-flip-valid",
    ),
    pytest.param(
        "convolution2d_full",
        "w",
        'correlate(g, x, "valid")',
        (),
        P,
        lambda v: ss.correlate(v["g"], v["x"], "valid"),
        id="full-w-correlate-valid",
    ),
    pytest.param(
        "convolution2d_full",
        "w",
        "dw[m, n] == Sum(g[e, f] * x[e - m, f - n], e, f)",
        (),
        P,
        lambda v: grid(
            shp(v, "w"), lambda m, n: sum(rd(v["g"], e, f) * rd(v["x"], e - m, f - n) for e in B for f in B)
        ),
        id="full-w-index",
    ),
    pytest.param(
        "convolution2d_full",
        "x",
        'convolve(g, w, "valid")',
        (),
        R,
        lambda v: ss.convolve(v["g"], v["w"], "valid"),
        id="full-x-convolve-for-correlate",
    ),
    pytest.param(
        "convolution2d_full",
        "x",
        'correlate(g, w, "full")',
        (),
        R,
        lambda v: ss.correlate(v["g"], v["w"], "full"),
        id="full-x-mode-full",
    ),
    pytest.param(
        "convolution2d_full",
        "x",
        'correlate(g, w, "same")',
        (),
        R,
        lambda v: ss.correlate(v["g"], v["w"], "same"),
        id="full-x-mode-same",
    ),
    pytest.param("convolution2d_full", "x", DX, (), R, _dx_conv2d, id="full-x-index-not-flipped"),
    pytest.param(
        "convolution2d_full",
        "w",
        'correlate(x, g, "valid")',
        (),
        R,
        lambda v: ss.correlate(v["x"], v["g"], "valid"),
        id="full-w-swapped-operands",
    ),
    pytest.param(
        "convolution2d_full",
        "w",
        '-correlate(g, x, "valid")',
        (),
        R,
        lambda v: -ss.correlate(v["g"], v["x"], "valid"),
        id="full-w-sign",
    ),
    # ---- linear: y = w @ x + b ---------------------------------------------------------------
    pytest.param("linear", "x", "transpose(w) @ g", (), P, lambda v: v["w"].T @ v["g"], id="linear-x-transpose"),
    pytest.param("linear", "x", "w.T @ g", (), P, lambda v: v["w"].T @ v["g"], id="linear-x-dot-T"),
    pytest.param("linear", "x", "g @ w", (), P, lambda v: v["g"] @ v["w"], id="linear-x-g-at-w"),
    pytest.param(
        "linear", "x", "np.transpose(w) @ g", (), P, lambda v: np.transpose(v["w"]) @ v["g"], id="linear-x-np-transpose"
    ),
    pytest.param(
        "linear",
        "x",
        'einsum("ij,i->j", w, g)',
        (),
        P,
        lambda v: np.einsum("ij,i->j", v["w"], v["g"]),
        id="linear-x-einsum",
    ),
    pytest.param(
        "linear",
        "x",
        "dx[p] == Sum(w[i, p] * g[i], i)",
        (),
        P,
        lambda v: grid(shp(v, "x"), lambda p: sum(rd(v["w"], i, p) * rd(v["g"], i) for i in B)),
        id="linear-x-index",
    ),
    pytest.param("linear", "w", "outer(g, x)", (), P, lambda v: np.outer(v["g"], v["x"]), id="linear-w-outer"),
    pytest.param(
        "linear",
        "w",
        "transpose(outer(x, g))",
        (),
        P,
        lambda v: np.outer(v["x"], v["g"]).T,
        id="linear-w-transpose-outer",
    ),
    pytest.param(
        "linear",
        "w",
        "dw[p, q] == g[p] * x[q]",
        (),
        P,
        lambda v: grid(shp(v, "w"), lambda p, q: rd(v["g"], p) * rd(v["x"], q)),
        id="linear-w-index",
    ),
    pytest.param("linear", "b", "g", (), P, lambda v: v["g"], id="linear-b-g"),
    pytest.param("linear", "b", "db[p] == g[p]", (), P, lambda v: v["g"], id="linear-b-index"),
    pytest.param("linear", "x", "w @ g", (), R, lambda v: v["w"] @ v["g"], id="linear-x-W-for-WT"),
    pytest.param("linear", "x", "-w.T @ g", (), R, lambda v: -v["w"].T @ v["g"], id="linear-x-sign"),
    pytest.param(
        "linear",
        "x",
        "dx[p] == Sum(w[p, i] * g[i], i)",
        (),
        R,
        lambda v: grid(shp(v, "x"), lambda p: sum(rd(v["w"], p, i) * rd(v["g"], i) for i in B)),
        id="linear-x-index-W-for-WT",
    ),
    pytest.param("linear", "w", "outer(x, g)", (), R, lambda v: np.outer(v["x"], v["g"]), id="linear-w-outer-order"),
    pytest.param("linear", "w", "2 * outer(g, x)", (), R, lambda v: 2 * np.outer(v["g"], v["x"]), id="linear-w-scaled"),
    pytest.param(
        "linear",
        "w",
        "dw[p, q] == g[p] * x[q + 1]",
        (),
        R,
        lambda v: grid(shp(v, "w"), lambda p, q: rd(v["g"], p) * rd(v["x"], q + 1)),
        id="linear-w-index-shift",
    ),
    pytest.param("linear", "b", "sum(g)", (), R, lambda v: np.sum(v["g"]), id="linear-b-summed"),
    pytest.param("linear", "b", "mean(g)", (), R, lambda v: np.mean(v["g"]), id="linear-b-mean"),
    # ---- softmax cross-entropy -----------------------------------------------------------------
    pytest.param(
        "softmax_cross_entropy", "s", "softmax(s) - t", (), P, lambda v: softmax(v["s"]) - v["t"], id="sce-s-softmax"
    ),
    pytest.param(
        "softmax_cross_entropy",
        "s",
        "ds[k] == softmax(s)[k] - t[k]",
        (),
        P,
        lambda v: softmax(v["s"]) - v["t"],
        id="sce-s-index",
    ),
    pytest.param(
        "softmax_cross_entropy",
        "s",
        "exp(s) / sum(exp(s)) - t",
        (),
        P,
        lambda v: np.exp(v["s"]) / np.sum(np.exp(v["s"])) - v["t"],
        id="sce-s-exp-over-sum",
    ),
    pytest.param(
        "softmax_cross_entropy",
        "s",
        "ds[k] == exp(s[k]) / Sum(exp(s[j]), j) - t[k]",
        (),
        P,
        lambda v: np.exp(v["s"]) / np.sum(np.exp(v["s"])) - v["t"],
        id="sce-s-index-exp",
    ),
    pytest.param(
        "softmax_cross_entropy", "s", "t - softmax(s)", (), R, lambda v: v["t"] - softmax(v["s"]), id="sce-s-sign"
    ),
    pytest.param(
        "softmax_cross_entropy", "s", "exp(s) - t", (), R, lambda v: np.exp(v["s"]) - v["t"], id="sce-s-unnormalised"
    ),
    pytest.param(
        "softmax_cross_entropy",
        "s",
        "ds[k] == softmax(s)[k] - t[k + 1]",
        (),
        R,
        lambda v: softmax(v["s"]) - np.append(v["t"][1:], 0.0),
        id="sce-s-index-shift",
    ),
    # n = 1 leaves the normaliser empty (1/0): the claim is undefined there, the smallest counterexample
    pytest.param(
        "softmax_cross_entropy",
        "s",
        "ds[k] == exp(s[k]) / Sum(exp(s[j]), (j, 1, n - 1)) - t[k]",
        (),
        R,
        lambda v: np.exp(v["s"]) / np.sum(np.exp(v["s"][1:])) - v["t"],
        id="sce-s-index-normaliser-from-1",
    ),
    pytest.param(
        "softmax_ce_free",
        "s",
        "softmax(s) - t",
        (),
        R,
        lambda v: softmax(v["s"]) - v["t"],
        id="sce-free-s-softmax-without-assumption",
    ),
    pytest.param(
        "softmax_ce_free",
        "s",
        "softmax(s) * sum(t) - t",
        (),
        P,
        lambda v: softmax(v["s"]) * np.sum(v["t"]) - v["t"],
        id="sce-free-s-general",
    ),
    pytest.param(
        "softmax_ce_free",
        "s",
        "softmax(s) - t",
        ("sum(t) == 1",),
        P,
        lambda v: softmax(v["s"]) - v["t"],
        id="sce-free-s-softmax-assumed",
    ),
]


# -- running the prover once per claim -----------------------------------------------------

_VERDICTS: dict = {}


@pytest.fixture(scope="module")
def layer_paths(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "softmax_ce_free.toml"
    path.write_text(FREE_LAYER_TOML)
    return {"softmax_ce_free": str(path)}


def verdict_of(layer_paths, layer, wrt, claim, assume):
    key = (layer, wrt, claim, tuple(assume))
    if key not in _VERDICTS:
        _VERDICTS[key] = prove(layer_paths.get(layer, layer), wrt, claim, assume=list(assume))
    return _VERDICTS[key]


def rng_for(name: str):
    return np.random.default_rng(zlib.crc32(name.encode()))


# -- comparing a claim with autograd -----------------------------------------------------------


def claim_value(oracle, values: dict, sizes: dict):
    """The claim evaluated by its NumPy/SciPy lambda, or None where it is undefined."""
    try:
        with np.errstate(all="ignore"):  # an empty normaliser divides by zero: inf, a mismatch
            return np.asarray(oracle({**values, **sizes}), dtype=np.float64)
    except (ValueError, IndexError):
        return None


def agrees(layer, wrt, oracle, sizes, rng, assume=()) -> bool:
    values = random_values(layer, sizes, rng, assume)
    expected = torch_gradient(layer, wrt, values)
    claimed = claim_value(oracle, values, sizes)
    return claimed is not None and claimed.shape == expected.shape and np.allclose(claimed, expected, 1e-9, 1e-10)


def random_sizes(layer: str, rng, lo: int, hi: int) -> dict:
    spec = SPECS[layer]
    while True:
        env = {k: int(rng.integers(lo, hi + 1)) for k in spec.sizes}
        if spec.allowed(env):
            return env


def as_number(v):
    """A counterexample's JSON number (int, float or an exact fraction string) as a float, or None."""
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(Fraction(str(v)))
    except ValueError:
        return None


def as_array(v) -> np.ndarray:
    return (
        np.vectorize(as_number, otypes=[np.float64])(np.asarray(v, dtype=object))
        if np.ndim(v)
        else np.array(as_number(v))
    )


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "expected", "oracle"), CASES)
def test_verdict(layer_paths, layer, wrt, claim, assume, expected, oracle):
    v = verdict_of(layer_paths, layer, wrt, claim, assume)
    assert v.verdict == expected, f"{layer}/{wrt} {claim!r}: {v.verdict} ({v.reason}) {v.counterexample}"


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "expected", "oracle"), CASES)
def test_expected_verdict_agrees_with_autograd(layer, wrt, claim, assume, expected, oracle, request):
    """The table itself is right: proved claims match autograd at 3 random sizes, refuted ones differ at one."""
    rng = rng_for(request.node.callspec.id)
    if expected == P:
        for _ in range(3):
            sizes = random_sizes(layer, rng, 1, 5)
            assert agrees(layer, wrt, oracle, sizes, rng, assume), f"{claim!r} differs from autograd at {sizes}"
    else:
        # sizes of at least 2 avoid the degenerate 1x1 kernels that hide a flip
        draws = [random_sizes(layer, rng, 2, 5) for _ in range(3)]
        assert not all(agrees(layer, wrt, oracle, s, rng, assume) for s in draws), (
            f"{claim!r} matched autograd at {draws}"
        )


REFUTED_CASES = [c for c in CASES if c.values[4] == R]


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "expected", "oracle"), REFUTED_CASES)
def test_counterexample_is_real(layer_paths, layer, wrt, claim, assume, expected, oracle, request):
    v = verdict_of(layer_paths, layer, wrt, claim, assume)
    assert v.verdict == R, f"not refuted: {v.verdict} {v.reason}"
    ce = v.counterexample
    spec = SPECS[layer]
    sizes = {k: int(ce.sizes[k]) for k in spec.sizes}
    assert set(ce.sizes) == set(spec.sizes)
    assert spec.allowed(sizes)
    shapes = spec.shapes(sizes)
    if ce.is_shape_mismatch:
        assert tuple(ce.expected_shape) == shapes[wrt]
        claimed = claim_value(oracle, random_values(layer, sizes, rng_for(claim)), sizes)
        assert claimed is None or claimed.shape != shapes[wrt], f"{claim!r} has the right shape at {sizes}"
        return
    values = {n: as_array(ce.values[n]) for n in shapes}
    for n, s in shapes.items():
        assert values[n].shape == s, f"{n} has shape {values[n].shape}, want {s}"
        # small integer values, as LANGUAGE.md's minimal counterexample has them
        assert set(np.unique(values[n])) <= {-1.0, 0.0, 1.0, 2.0}, f"{n} = {values[n]}"
    if spec.normalised_t:
        assert np.isclose(values["t"].sum(), 1.0), "the counterexample breaks the assumption sum(t) == 1"
    expected_arr = torch_gradient(layer, wrt, values)
    claimed_arr = claim_value(oracle, values, sizes)
    assert claimed_arr is not None and claimed_arr.shape == expected_arr.shape
    idx = tuple(int(i) for i in ce.index)
    assert not np.isclose(expected_arr[idx], claimed_arr[idx], rtol=1e-9, atol=1e-12), (
        f"no difference at {idx}: {expected_arr} vs {claimed_arr}"
    )
    if as_number(ce.expected) is not None:
        assert np.isclose(as_number(ce.expected), expected_arr[idx])
    if as_number(ce.claimed) is not None:
        assert np.isclose(as_number(ce.claimed), claimed_arr[idx])
    # fewest nonzero values: zeroing any one nonzero entry must make the mismatch vanish
    for n in values:
        if spec.normalised_t and n == "t":
            continue  # zeroing a target entry would break sum(t) == 1
        for pos in np.ndindex(values[n].shape):
            if values[n][pos] == 0:
                continue
            reduced = {k: a.copy() for k, a in values.items()}
            reduced[n][pos] = 0.0
            exp_r = torch_gradient(layer, wrt, reduced)
            cl_r = claim_value(oracle, reduced, sizes)
            assert cl_r is not None and np.allclose(exp_r, cl_r), (
                f"{n}{list(pos)} could be 0 and the claim would still differ: not the fewest nonzero values"
            )


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "expected", "oracle"), REFUTED_CASES)
def test_counterexample_sizes_are_minimal(layer_paths, layer, wrt, claim, assume, expected, oracle):
    """No allowed size assignment before the counterexample's (sum, then declaration order) shows a mismatch."""
    v = verdict_of(layer_paths, layer, wrt, claim, assume)
    assert v.verdict == R
    spec = SPECS[layer]
    found = {k: int(v.counterexample.sizes[k]) for k in spec.sizes}
    key = (sum(found.values()), tuple(found[k] for k in spec.sizes))
    rng = rng_for(claim + "minimal")
    earlier = [e for e in size_assignments(layer, key[0]) if (sum(e.values()), tuple(e[k] for k in spec.sizes)) < key]
    for sizes in earlier:
        assert agrees(layer, wrt, oracle, sizes, rng, assume), f"{claim!r} already differs at {sizes}, before {found}"


def test_enough_claims_about_half_false():
    assert len(CASES) >= 60
    false = len(REFUTED_CASES)
    assert 0.35 * len(CASES) <= false <= 0.65 * len(CASES)


def test_softmax_without_assumption_minimal_counterexample(layer_paths):
    """DESIGN.md: without sum(t) == 1 the smallest witness is n = 1, t = [0], s = [0] (0 against 1)."""
    v = verdict_of(layer_paths, "softmax_ce_free", "s", "softmax(s) - t", ())
    ce = v.counterexample
    assert ce.sizes == {"n": 1}
    assert as_array(ce.values["t"]).tolist() == [0.0]
    assert as_array(ce.values["s"]).tolist() == [0.0]
    assert as_number(ce.expected) == 0.0 and as_number(ce.claimed) == 1.0


def test_one_hot_targets_cannot_see_the_missing_assumption():
    """The trap of DESIGN.md: with a one-hot t the wrong claim matches autograd, so a random check must not use it."""
    s = np.random.default_rng(1).standard_normal(4)
    t = np.eye(4)[2]
    assert np.allclose(torch_gradient("softmax_ce_free", "s", {"s": s, "t": t}), softmax(s) - t)


@pytest.mark.parametrize(
    ("layer", "wrt", "claim", "assumptions"),
    [
        ("conv2d", "x", 'convolve(g, w, "full")', {"kh <= H", "kw <= W"}),
        ("linear", "w", "outer(g, x)", set()),
        ("softmax_cross_entropy", "s", "softmax(s) - t", {"sum(t) == 1"}),
    ],
)
def test_proved_lists_its_assumptions(layer, wrt, claim, assumptions):
    v = prove(layer, wrt, claim)
    assert v.verdict == P
    assert set(v.assumptions) == assumptions


def test_proved_lists_extra_assumptions(layer_paths):
    v = verdict_of(layer_paths, "softmax_ce_free", "s", "softmax(s) - t", ("sum(t) == 1",))
    assert "sum(t) == 1" in v.assumptions


def test_unknown_has_a_reason(layer_paths):
    """A repeated tensor in one monomial (x[i] * x[j]) is outside the decided fragment: unknown, with a reason."""
    _ = layer_paths
    for v in _VERDICTS.values():
        if v.verdict == U:
            assert v.reason
    v = prove("linear", "x", "w.T @ g + outer(x, x) @ x - sum(x * x) * x")
    assert v.verdict in (P, U)
    if v.verdict == U:
        assert v.reason.strip()


@pytest.mark.parametrize(
    ("layer", "wrt", "claim"),
    [("conv2d", "x", 'correlate(g, w, "full")'), ("linear", "x", "w.T @ g"), ("linear", "w", "outer(x, g)")],
)
def test_prove_is_deterministic(layer, wrt, claim):
    a, b = prove(layer, wrt, claim), prove(layer, wrt, claim)
    assert a.verdict == b.verdict
    assert a.counterexample == b.counterexample


@pytest.mark.parametrize(
    ("layer", "wrt"),
    [("linear", "z"), ("linear", "y"), ("linear", "g"), ("softmax_cross_entropy", "t"), ("conv2d", "")],
)
def test_bad_wrt_is_an_input_error(layer, wrt):
    with pytest.raises(InputError):
        prove(layer, wrt, "g")


def test_scipy_special_softmax_spelling():
    v = prove("softmax_cross_entropy", "s", "scipy.special.softmax(s) - t")
    assert v.verdict == P
    s = np.array([0.3, -1.2, 2.0])
    assert np.allclose(scipy.special.softmax(s), softmax(s))


# -- domain conditions: x / x is 1 only where x != 0 --------------------------------------------
# LANGUAGE.md: an equivalence that needs a domain condition is proved only from the
# assumptions or what the form implies; otherwise unknown. NumPy gives nan at the point.
DOMAIN_CASES = [
    pytest.param(
        "linear",
        "x",
        "w.T @ g * x / x",
        {"x": [0.0]},
        lambda v: v["w"].T @ v["g"] * v["x"] / v["x"],
        id="x-over-x-at-0",
    ),
    pytest.param(
        "linear",
        "x",
        "(w.T @ g) * (x - 1) / (x - 1)",
        {"x": [1.0]},
        lambda v: v["w"].T @ v["g"] * (v["x"] - 1) / (v["x"] - 1),
        id="x-minus-1-over-itself-at-1",
    ),
    pytest.param(
        "linear",
        "x",
        "w.T @ g * tanh(x) / tanh(x)",
        {"x": [0.0]},
        lambda v: v["w"].T @ v["g"] * np.tanh(v["x"]) / np.tanh(v["x"]),
        id="tanh-over-tanh-at-0",
    ),
    pytest.param(
        "linear",
        "x",
        "w.T @ g + sqrt(x) ** 2 - x",
        {"x": [-1.0]},
        lambda v: v["w"].T @ v["g"] + np.sqrt(v["x"]) ** 2 - v["x"],
        id="sqrt-squared-at-minus-1",
    ),
    pytest.param(
        "linear",
        "x",
        "w.T @ g + exp(log(x)) - x",
        {"x": [-1.0]},
        lambda v: v["w"].T @ v["g"] + np.exp(np.log(v["x"])) - v["x"],
        id="exp-log-at-minus-1",
    ),
]


@pytest.mark.parametrize(("layer", "wrt", "claim", "point", "oracle"), DOMAIN_CASES)
def test_claim_needing_a_domain_condition_is_not_proved(layer, wrt, claim, point, oracle):
    """NumPy's value of the claim is nan at ``point`` (n = m = 1), so it is not the gradient there."""
    values = {"x": np.array(point["x"]), "w": np.array([[1.0]]), "b": np.array([0.0]), "g": np.array([1.0])}
    with np.errstate(all="ignore"):
        claimed = oracle(values)
    assert np.isnan(claimed).any()
    assert not np.isnan(torch_gradient(layer, wrt, values)).any()
    v = prove(layer, wrt, claim)
    assert v.verdict in (R, U), f"{claim!r} is {v.verdict}, but NumPy gives {claimed} at x = {point['x']}"


@pytest.mark.parametrize(
    ("claim", "assume"),
    [
        ("w.T @ g * x / x", ["x > 0"]),
        ("w.T @ g + exp(log(x)) - x", ["x > 0"]),
        ("w.T @ g * exp(x) / exp(x)", []),
        ("w.T @ g * (x ** 2 + 1) / (x ** 2 + 1)", []),
        ("w.T @ g + log(exp(x)) - x", []),
    ],
)
def test_domain_condition_implied_is_proved(claim, assume):
    assert prove("linear", "x", claim, assume=assume).verdict == P


# -- extra assumptions (--assume) change the verdict ---------------------------------------------

ASSUMED = [
    # square w: w @ g is defined, and still wrong (w is not symmetric); minimal n = m = 2
    pytest.param("linear", "x", "w @ g", ("m == n",), R, {"n": 2, "m": 2}, lambda v: v["w"] @ v["g"], id="square-w"),
    pytest.param(
        "linear", "x", "w.T @ g", ("m == n",), P, {"n": 3, "m": 3}, lambda v: v["w"].T @ v["g"], id="square-wT"
    ),
    # a 1x1 kernel makes "same" the same as "full"
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w, "same")',
        ("kh == 1", "kw == 1"),
        P,
        {"H": 3, "W": 4, "kh": 1, "kw": 1},
        lambda v: ss.convolve(v["g"], v["w"], "same"),
        id="same-with-1x1-kernel",
    ),
    # a kernel as large as the input: g is 1x1 and SciPy swaps the operands of "valid"
    pytest.param(
        "conv2d",
        "x",
        'convolve(g, w, "valid")',
        ("kh == H", "kw == W"),
        P,
        {"H": 3, "W": 2, "kh": 3, "kw": 2},
        lambda v: ss.convolve(v["g"], v["w"], "valid"),
        id="valid-with-kernel-as-large-as-input",
    ),
    pytest.param(
        "softmax_ce_free",
        "s",
        "2 * softmax(s) - t",
        ("sum(t) == 2",),
        P,
        {"n": 4},
        lambda v: 2 * softmax(v["s"]) - v["t"],
        id="targets-sum-to-2",
    ),
    pytest.param(
        "softmax_ce_free",
        "s",
        "softmax(s) - t",
        ("sum(t) == 2",),
        R,
        {"n": 1},
        lambda v: softmax(v["s"]) - v["t"],
        id="targets-sum-to-2-wrong",
    ),
]


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "expected", "sizes", "oracle"), ASSUMED)
def test_extra_assumptions(layer_paths, layer, wrt, claim, assume, expected, sizes, oracle):
    v = verdict_of(layer_paths, layer, wrt, claim, assume)
    assert v.verdict == expected, f"{v.verdict} {v.reason} {v.counterexample}"
    if expected == P:
        assert set(assume) <= set(v.assumptions)
        values = random_values(layer, sizes, rng_for(claim))
        if "sum(t) == 2" in assume:
            values["t"] = 2 * np.abs(values["t"]) / np.abs(values["t"]).sum()
        np.testing.assert_allclose(oracle({**values, **sizes}), torch_gradient(layer, wrt, values), rtol=1e-9)
        return
    ce = v.counterexample
    assert {k: int(ce.sizes[k]) for k in sizes} == sizes  # the smallest sizes the assumptions allow a mismatch at
    values = {n: as_array(ce.values[n]) for n in SPECS[layer].shapes(sizes)}
    idx = tuple(ce.index)
    expected_arr, claimed_arr = torch_gradient(layer, wrt, values), oracle({**values, **sizes})
    assert not np.isclose(expected_arr[idx], claimed_arr[idx])
    assert np.isclose(as_number(ce.expected), expected_arr[idx])
    assert np.isclose(as_number(ce.claimed), claimed_arr[idx])


# -- extra assumptions that cannot hold ------------------------------------------------------
CONTRADICTORY = [
    pytest.param("linear", "x", "3 * w.T @ g", ["n == 2", "n == 3"], "contradict each other", id="sizes-each-other"),
    pytest.param("linear", "x", "3 * w.T @ g", ["n >= m + 1", "m >= n"], "contradict each other", id="order"),
    pytest.param("linear", "x", "3 * w.T @ g", ["x > 0", "x <= 0"], "contradict each other", id="values"),
    pytest.param("conv2d", "x", 'convolve(g, w, "full")', ["kh > H"], "the layer's assumptions", id="conv-kernel"),
    pytest.param("softmax_cross_entropy", "s", "softmax(s) - t", ["t < 0"], "the layer's assumptions", id="sum-t"),
]


@pytest.mark.parametrize(("layer", "wrt", "claim", "assume", "fragment"), CONTRADICTORY)
def test_contradictory_extra_assumptions_are_input_errors(capsys, layer, wrt, claim, assume, fragment):
    from symderive.cli import main

    with pytest.raises(InputError) as info:
        prove(layer, wrt, claim, assume=assume)
    message = str(info.value)
    assert message.startswith("--assume:") and fragment in message, message
    for a in assume:
        assert f'"{a}"' in message, message
    argv = ["prove", layer, "--wrt", wrt, claim]
    for a in assume:
        argv += ["--assume", a]
    status = main(argv, prog="symderive")
    out, err = capsys.readouterr()
    assert status == 2 and out == "", (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and fragment in err, err


def test_contradictory_size_assumptions_have_no_sizes():
    # the oracle for the size cases above: no sizes in a box satisfy them (plain integers)
    box = itertools.product(range(1, 40), repeat=2)
    assert not any(n == 2 and n == 3 for n, _ in box)
    assert not any(n >= m + 1 and m >= n for n, m in itertools.product(range(1, 40), repeat=2))
    assert not any(kh > H and kh <= H for H, kh in itertools.product(range(1, 40), repeat=2))


def test_consistent_extra_assumptions_still_decide():
    assert prove("linear", "x", "w.T @ g", assume=["n == 2", "m >= n + 1"]).verdict == P
    refuted = prove("linear", "x", "3 * w.T @ g", assume=["n == 2", "m == 3"])
    assert refuted.verdict == R
    assert {k: int(v) for k, v in refuted.counterexample.sizes.items()} == {"n": 2, "m": 3}
    assert prove("softmax_cross_entropy", "s", "softmax(s) - t", assume=["t >= 0"]).verdict == P


def test_a_proof_that_exact_evaluation_contradicts_is_an_internal_error(monkeypatch):
    # the cross-check is the last line of defence: were the all-sizes proof ever wrong,
    # the answer must be a bug report (exit 70), never "proved"
    from symderive.cli import main
    from symderive.decide import search as cx
    from symderive.errors import InternalError

    monkeypatch.setattr(cx, "disagreement_sizes", lambda *args, **kwargs: {"n": 1, "m": 1})
    with pytest.raises(InternalError, match="disagrees with exact evaluation"):
        prove("linear", "x", "w.T @ g")
    assert main(["prove", "linear", "--wrt", "x", "w.T @ g"], prog="symderive") == 70


# -- branch conditions and 0/1 guards on values (relu, maximum(x, 0)) ----------------------------
# NumPy's where evaluates both branches and then picks, so a nan in the untaken branch never
# reaches the result (LANGUAGE.md: where means NumPy's); a product with a nan factor is nan.
# The true gradient is PyTorch's: relu has derivative 0 at 0, maximum(x, 0) splits it (1/2).
GUARD_TOML = {
    "maxrelu": 'name = "maxrelu"\n[inputs]\nx = ["N", "D"]\n[output]\ny = "maximum(x, 0)"\n',
    "clip": 'name = "clip"\n[inputs]\nx = ["N", "D"]\n[output]\ny = "clip(x, -1, 1)"\n',
}
# torch.clamp passes the gradient at its bounds (LANGUAGE.md)
GUARD_FORWARD = {
    "relu": torch.relu,
    "maxrelu": lambda x: torch.maximum(x, torch.zeros_like(x)),
    "clip": lambda x: torch.clamp(x, -1.0, 1.0),
}
GUARD_Y = {
    "relu": lambda x: np.maximum(x, 0.0),
    "maxrelu": lambda x: np.maximum(x, 0.0),
    "clip": lambda x: np.clip(x, -1, 1),
}


def _numpy_where(c, a, b):
    with np.errstate(all="ignore"):
        return np.where(c, a, b)


GUARD_CASES = [
    pytest.param("relu", "g * (y != 0)", P, lambda x, g, y: g * (y != 0), id="relu-y-nonzero"),
    pytest.param("relu", "g * (0 < y)", P, lambda x, g, y: g * (0 < y), id="relu-y-positive-reversed"),
    pytest.param("relu", "where(y > 0, g, 0)", P, lambda x, g, y: np.where(y > 0, g, 0), id="relu-where-y"),
    pytest.param("relu", "g * (x > 0) * (x >= 0)", P, lambda x, g, y: g * (x > 0) * (x >= 0), id="relu-guard-product"),
    pytest.param("relu", "g * (x > 0) ** 2", P, lambda x, g, y: g * (x > 0) ** 2, id="relu-guard-squared"),
    pytest.param("relu", "g * (2 * x > 0)", P, lambda x, g, y: g * (2 * x > 0), id="relu-scaled-comparison"),
    pytest.param(
        "relu", "g * (1 - (x < 0) - (x == 0))", P, lambda x, g, y: g * (1 - (x < 0) - (x == 0)), id="relu-complements"
    ),
    pytest.param(
        "relu",
        "where(x > 0, g + 0 * log(x), 0)",
        P,
        lambda x, g, y: _numpy_where(x > 0, g + 0 * np.log(x), 0),
        id="relu-where-log-in-taken-branch",
    ),
    pytest.param(
        "relu",
        "g * where(x > 0, 1 + 0 * log(x), 0)",
        P,
        lambda x, g, y: g * _numpy_where(x > 0, 1 + 0 * np.log(x), 0),
        id="relu-where-log-inside-product",
    ),
    pytest.param(
        "relu",
        "where(x <= 0, 0, g * x / x)",
        P,
        lambda x, g, y: _numpy_where(x <= 0, 0, g * x / x),
        id="relu-where-division-in-else-branch",
    ),
    pytest.param(
        "relu",
        "where(y > 0, g * y / x, 0)",
        P,
        lambda x, g, y: _numpy_where(y > 0, g * y / x, 0),
        id="relu-where-y-settled-in-branch",
    ),
    pytest.param(
        "relu",
        "where(y > 0, g + 0 * log(y), 0)",
        P,
        lambda x, g, y: _numpy_where(y > 0, g + 0 * np.log(y), 0),
        id="relu-where-log-y",
    ),
    pytest.param("relu", "g * (x >= 0)", R, lambda x, g, y: g * (x >= 0), id="relu-kink-included"),
    pytest.param("relu", "g * (y >= 0)", R, lambda x, g, y: g * (y >= 0), id="relu-y-nonnegative-always"),
    pytest.param("relu", "g * (y != 1)", R, lambda x, g, y: g * (y != 1), id="relu-y-not-one"),
    pytest.param(
        "relu",
        "g * (1 - (x < 0) - (x <= 0))",
        R,
        lambda x, g, y: g * (1 - (x < 0) - (x <= 0)),
        id="relu-complements-wrong",
    ),
    pytest.param(
        "relu",
        "where(x > 0, g + 0 * log(x), 1)",
        R,
        lambda x, g, y: _numpy_where(x > 0, g + 0 * np.log(x), 1),
        id="relu-where-log-wrong-else",
    ),
    pytest.param(
        "relu",
        "where(x >= 0, g + 0 * log(x), 0)",
        R,
        lambda x, g, y: _numpy_where(x >= 0, g + 0 * np.log(x), 0),
        id="relu-where-log-at-zero-taken",
    ),
    pytest.param(
        "relu",
        "where(x > 0, g + 0 * log(-x), 0)",
        R,
        lambda x, g, y: _numpy_where(x > 0, g + 0 * np.log(-x), 0),
        id="relu-where-log-undefined-in-taken-branch",
    ),
    pytest.param(
        "relu",
        "g * (x > 0) * (1 + 0 * log(x))",
        R,
        lambda x, g, y: g * (x > 0) * (1 + 0 * np.log(x)),
        id="relu-guard-times-nan-is-nan",
    ),
    pytest.param(
        "maxrelu",
        "g * ((x > 0) + 0.5 * (x == 0))",
        P,
        lambda x, g, y: g * ((x > 0) + 0.5 * (x == 0)),
        id="maxrelu-tie-split",
    ),
    pytest.param(
        "maxrelu",
        "g * ((x > 0) + 0.5 * (x >= 0) * (x <= 0))",
        P,
        lambda x, g, y: g * ((x > 0) + 0.5 * (x >= 0) * (x <= 0)),
        id="maxrelu-tie-as-two-comparisons",
    ),
    pytest.param(
        "maxrelu",
        "g * where(x == 0, 0.5, y > 0)",
        P,
        lambda x, g, y: g * np.where(x == 0, 0.5, y > 0),
        id="maxrelu-where-tie",
    ),
    pytest.param("maxrelu", "g * (y != 0)", R, lambda x, g, y: g * (y != 0), id="maxrelu-y-nonzero-misses-tie"),
    pytest.param(
        "maxrelu",
        "g * ((x > 0) + 0.5 * (x >= 0) * (x < 0))",
        R,
        lambda x, g, y: g * ((x > 0) + 0.5 * (x >= 0) * (x < 0)),
        id="maxrelu-tie-never",
    ),
    pytest.param(
        "clip", "g * (x >= -1) * (x <= 1)", P, lambda x, g, y: g * (x >= -1) * (x <= 1), id="clip-interval-product"
    ),
    pytest.param("clip", "g * (abs(x) <= 1)", P, lambda x, g, y: g * (np.abs(x) <= 1), id="clip-interval-abs"),
    pytest.param("clip", "g * (y == x)", P, lambda x, g, y: g * (y == x), id="clip-y-is-x"),
    pytest.param(
        "clip", "where(abs(x) <= 1, g, 0)", P, lambda x, g, y: np.where(np.abs(x) <= 1, g, 0), id="clip-where"
    ),
    pytest.param(
        "clip",
        "g * (1 - (x < -1) - (x > 1))",
        P,
        lambda x, g, y: g * (1 - 1.0 * (x < -1) - 1.0 * (x > 1)),
        id="clip-complement-of-outside",
    ),
    pytest.param(
        "clip",
        "g * (abs(y) < 1)",
        R,
        lambda x, g, y: g * (np.abs(y) < 1),
        id="clip-bounds-excluded",
        marks=pytest.mark.slow,  # ~10 s to its counterexample
    ),
    pytest.param(
        "clip", "g * (x > -1) * (x <= 1)", R, lambda x, g, y: g * (x > -1) * (x <= 1), id="clip-lower-bound-excluded"
    ),
    pytest.param("clip", "g * (abs(x) <= 2)", R, lambda x, g, y: g * (np.abs(x) <= 2), id="clip-interval-too-wide"),
]


def _guard_layer(tmp_path_factory, layer: str) -> str:
    if layer == "relu":
        return layer
    path = tmp_path_factory.mktemp("guards") / f"{layer}.toml"
    path.write_text(GUARD_TOML[layer])
    return str(path)


def _guard_torch_gradient(layer: str, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (torch.tensor(g, dtype=torch.float64) * GUARD_FORWARD[layer](xt)).sum().backward()
    return xt.grad.numpy()


def _guard_claim(layer: str, oracle, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(oracle(x, g, GUARD_Y[layer](x)), dtype=np.float64) * np.ones_like(x)


@pytest.mark.parametrize(("layer", "claim", "expected", "oracle"), GUARD_CASES)
def test_guard_claim_verdict(tmp_path_factory, layer, claim, expected, oracle):
    v = prove(_guard_layer(tmp_path_factory, layer), "x", claim)
    assert v.verdict == expected, f"{claim!r}: {v.verdict} ({v.reason}) {v.counterexample}"
    if expected == R:
        ce = v.counterexample
        x, g = as_array(ce.values["x"]), as_array(ce.values["g"])
        idx = tuple(ce.index)
        want, got = _guard_torch_gradient(layer, x, g)[idx], _guard_claim(layer, oracle, x, g)[idx]
        assert not np.isclose(want, got), f"no difference at {idx}: {want} vs {got}"


@pytest.mark.parametrize(("layer", "claim", "expected", "oracle"), GUARD_CASES)
def test_guard_claim_table_agrees_with_autograd(layer, claim, expected, oracle, request):
    """Proved claims equal torch's gradient on data with zeros, ties and negatives; refuted ones differ."""
    rng = rng_for(request.node.callspec.id)
    agree = []
    for shape in [(1, 1), (2, 3), (3, 2), (4, 5)]:
        x = rng.integers(-2, 3, shape).astype(np.float64) * rng.choice([1.0, 0.5], shape)
        x[0, 0] = 0.0  # the kinks are the points these claims disagree on
        x[-1, -1] = -1.0
        g = rng.standard_normal(shape)
        got = _guard_claim(layer, oracle, x, g)
        agree.append(np.allclose(got, _guard_torch_gradient(layer, x, g), equal_nan=False))
    assert all(agree) if expected == P else not all(agree)


def test_assume_as_one_string_none_or_with_repeats():
    # one string is one assumption (not its characters); None is none; each listed once
    assert prove("linear", "x", "w @ g", assume="m == n").verdict == "refuted"
    assert prove("linear", "x", "w.T @ g", assume=None).assumptions == ()
    verdict = prove("softmax_cross_entropy", "s", "softmax(s) - t", assume=["n >= 2", "n >= 2", "sum(t) == 1"])
    assert verdict.verdict == "proved"
    assert sorted(verdict.assumptions) == ["n >= 2", "sum(t) == 1"]
    with pytest.raises(InputError, match="assumption is a string"):
        prove("linear", "x", "w.T @ g", assume=[3])


RELU_LINEAR = """
name = "relu_linear"
[inputs]
x = ["n"]
w = ["n", "n"]
b = ["n"]
[output]
y = "relu(w @ x + b)"
"""


@pytest.mark.parametrize(
    ("wrt", "claim", "expected", "as_numpy"),
    [
        ("b", "g * (w @ x + b > 0)", "proved", lambda x, w, b, g: g * (w @ x + b > 0)),
        ("b", "g * (y > 0)", "proved", lambda x, w, b, g: g * (np.maximum(w @ x + b, 0) > 0)),
        ("x", "w.T @ (g * (w @ x + b > 0))", "proved", lambda x, w, b, g: w.T @ (g * (w @ x + b > 0))),
        ("w", "outer(g * (y > 0), x)", "proved", lambda x, w, b, g: np.outer(g * (w @ x + b > 0), x)),
        ("x", "w @ (g * (w @ x + b > 0))", "refuted", None),
        ("b", "g * (w @ x + b >= 0)", "refuted", None),
        ("b", "g * (w @ x - b > 0)", "refuted", None),
    ],
)
def test_a_guard_on_a_sum_meets_itself_however_its_summation_variable_is_named(
    tmp_path, wrt, claim, expected, as_numpy
):
    # relu(w @ x + b): the derived guard and the claim's each sum over their own variable
    path = tmp_path / "relu_linear.toml"
    path.write_text(RELU_LINEAR)
    assert prove(str(path), wrt, claim).verdict == expected
    if as_numpy is not None:
        rng = np.random.default_rng(4)
        x, w, b, g = rng.standard_normal(5), rng.standard_normal((5, 5)), rng.standard_normal(5), rng.standard_normal(5)
        t = {k: torch.tensor(v, requires_grad=True) for k, v in {"x": x, "w": w, "b": b}.items()}
        (torch.relu(t["w"] @ t["x"] + t["b"]) * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(as_numpy(x, w, b, g), t[wrt].grad.numpy(), rtol=1e-12)
