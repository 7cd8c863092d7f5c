"""The derivation documents of tests/audit/documents/, audited as a teacher would check them.

Each document is written in a style people use (Markdown and LaTeX files; bracket,
parenthesis, subscript and run-together indices; bounded, unbounded and exclusion sums;
Einstein sums; ``cases``; chains; ``align``/``aligned`` rows; several notation blocks;
notation ``[intermediates]``) and holds correct steps and the typical wrong ones (a missing
flip, an off-by-one shift, a bound one too far, a dropped term, ``W`` for ``W^T``, a sign,
``y^T (I - y)`` for the softmax Jacobian). Every entry has its expected verdict, and every
decided verdict is confirmed by an independent oracle written here with NumPy and PyTorch:

* ``follows``: both sides evaluated at random sizes and values (gradients and Jacobians
  by torch autograd, the document's right side as written, reads outside an array 0) agree
  at every index of the free indices' ranges;
* ``does not follow``: at the counterexample's sizes and values, the two sides are what it
  says and differ (a shape counterexample: the shapes, or NumPy refusing the right side);
* ``unknown``: the oracle says whether the step is in fact true; the test records it, so a
  prover that learns to decide it must decide it the right way.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from symderive import cli
from symderive.audit.check import audit
from symderive.audit.read import read_document

DOCUMENTS = Path(__file__).parent / "documents"
#: the key under which a counterexample's concrete functions join its values ({"f": "u**2 + 3*u"})
FUNCTIONS = "functions"
torch.set_default_dtype(torch.float64)

# ---------------------------------------------------------------------------------------
# the oracle's tools


def read0(a, *idx) -> float:
    """``a`` at ``idx``, 0 outside its shape (the documents' reading of an out-of-range read)."""
    a = np.asarray(a, dtype=float)
    if len(idx) != a.ndim or any(i < 0 or i >= n for i, n in zip(idx, a.shape, strict=True)):
        return 0.0
    return float(a[idx])


def number(value) -> float:
    """A counterexample's number: an int, a float, or SymPy's printing of an exact value."""
    return float(sp.N(sp.sympify(value))) if isinstance(value, str) else float(value)


def as_array(value) -> np.ndarray:
    return np.vectorize(number, otypes=[float])(np.array(value, dtype=object))


def T(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=float), requires_grad=True)


def grad(out: torch.Tensor, wrt: torch.Tensor, g=None) -> np.ndarray:
    """d(sum(g * out))/d(wrt) by autograd: the gradient for upstream ``g`` (None: a scalar loss)."""
    upstream = None if g is None else torch.tensor(np.asarray(g, dtype=float))
    (d,) = torch.autograd.grad(out, wrt, grad_outputs=upstream, allow_unused=True, retain_graph=True)
    return np.zeros(tuple(wrt.shape)) if d is None else d.detach().numpy()


def jacobian(fn: Callable, at: np.ndarray) -> np.ndarray:
    return torch.autograd.functional.jacobian(fn, torch.tensor(np.asarray(at, dtype=float))).numpy()


def softmax(s) -> np.ndarray:
    e = np.exp(np.asarray(s, dtype=float) - np.max(s))
    return e / e.sum()


Side = Callable[..., float]  # (values, sizes, **free indices) -> the side's number there


@dataclass
class Step:
    verdict: str
    left: Side | None = None
    right: Side | None = None
    #: the free indices' ranges at given sizes (name -> range); {} for a scalar
    ranges: Callable[[dict], dict] = field(default=lambda s: {})
    #: for an unknown step: whether the oracle finds it true (True/False)
    truth: bool | None = None
    #: a fragment the reason of a not-checked or unknown step must hold
    reason: str = ""
    #: a shape counterexample: left gives the true shape and right the right side, both at sizes only
    shape_mismatch: bool = False


@dataclass
class Document:
    name: str
    #: random sizes and values (inputs and g) for the `follows` checks
    draw: Callable[[np.random.Generator], tuple[dict, dict]]
    steps: dict[int, Step]
    #: each link's proof bound (seconds): what the prover cannot decide in it stays unknown
    timeout: float = 60.0


def agree_everywhere(step: Step, values: dict, sizes: dict) -> bool:
    ranges = step.ranges(sizes)
    names = list(ranges)
    for point in itertools.product(*(ranges[n] for n in names)):
        idx = dict(zip(names, point, strict=True))
        left, right = step.left(values, sizes, **idx), step.right(values, sizes, **idx)
        if not np.isclose(left, right, rtol=1e-9, atol=1e-9):
            return False
    return True


def free_indices(at: str, index) -> dict[str, int]:
    """The counterexample's free indices by name, from the link's ``at`` words (``i = 1, j = 0``)."""
    if not at:
        assert not index, f"a counterexample at index {index} without the indices' names"
        return {}
    if at.startswith("index ("):  # a whole-tensor equation: the element's position, in axis order
        assert at == f"index {tuple(index)}", at
        return dict(zip("ijklmn", index, strict=False))
    pairs = [part.split(" = ") for part in at.split(", ")]
    assert all(len(p) == 2 and re.fullmatch(r"-?\d+", p[1]) for p in pairs), at
    return {name: int(v) for name, v in pairs}


# ---------------------------------------------------------------------------------------
# the documents

rng_sizes = np.random.default_rng


def _conv1d_s2p1(x, w):
    return torch.nn.functional.conv1d(x.view(1, 1, -1), w.view(1, 1, -1), stride=2, padding=1).view(-1)


def _draw_conv1d(rng):
    k = int(rng.integers(1, 4))
    n = int(rng.integers(max(1, k - 2), 7))
    out = (n + 2 - k) // 2 + 1
    return {"n": n, "k": k}, {"x": rng.normal(size=n), "w": rng.normal(size=k), "g": rng.normal(size=out)}


def _conv1d_y(v, s, i):
    return read0(_conv1d_s2p1(T(v["x"]), T(v["w"])).detach().numpy(), i)


def _conv1d_dx(v, s, p):
    x, w = T(v["x"]), T(v["w"])
    return read0(grad(_conv1d_s2p1(x, w), x, v["g"]), p)


def _conv1d_dw(v, s, m):
    x, w = T(v["x"]), T(v["w"])
    return read0(grad(_conv1d_s2p1(x, w), w, v["g"]), m)


def _out(s):
    return (s["n"] + 2 - s["k"]) // 2 + 1


CONV_STRIDE = Document(
    "conv_stride_padding.md",
    _draw_conv1d,
    {
        10: Step(
            "follows",
            _conv1d_y,
            lambda v, s, i: sum(v["w"][m] * read0(v["x"], 2 * i + m - 1) for m in range(s["k"])),
            lambda s: {"i": range(_out(s))},
        ),
        16: Step(
            "does not follow",
            _conv1d_y,
            lambda v, s, i: sum(v["w"][m] * read0(v["x"], 2 * i + m) for m in range(s["k"])),
        ),
        22: Step(
            "follows",
            _conv1d_dw,
            lambda v, s, m: sum(v["g"][i] * read0(v["x"], 2 * i + m - 1) for i in range(len(v["g"]))),
            lambda s: {"m": range(s["k"])},
        ),
        28: Step(
            "follows",
            _conv1d_dx,
            lambda v, s, p: sum(v["g"][i] * read0(v["w"], p - 2 * i + 1) for i in range(len(v["g"]))),
            lambda s: {"p": range(s["n"])},
        ),
        34: Step(
            "does not follow",
            _conv1d_dx,
            lambda v, s, p: sum(v["g"][i] * read0(v["w"], p - i + 1) for i in range(len(v["g"]))),
        ),
    },
)


def _draw_fc_batch(rng):
    N, I, O = (int(rng.integers(1, 4)) for _ in range(3))  # noqa: E741
    v = {"x": rng.normal(size=(N, I)), "w": rng.normal(size=(O, I)), "b": rng.normal(size=O)}
    return {"N": N, "I": I, "O": O}, v | {"g": rng.normal(size=(N, O))}


def _fc_grads(v):
    x, w, b = T(v["x"]), T(v["w"]), T(v["b"])
    y = x @ w.T + b
    return y, {k: grad(y, t, v["g"]) for k, t in (("x", x), ("w", w), ("b", b))}


FC_BATCH = Document(
    "fc_batch.tex",
    _draw_fc_batch,
    {
        14: Step(
            "follows",
            lambda v, s, n, o: read0(_fc_grads(v)[0].detach().numpy(), n, o),
            lambda v, s, n, o: sum(v["x"][n, i] * v["w"][o, i] for i in range(s["I"])) + v["b"][o],
            lambda s: {"n": range(s["N"]), "o": range(s["O"])},
        ),
        15: Step(
            "follows",
            lambda v, s, o, i: read0(_fc_grads(v)[1]["w"], o, i),
            lambda v, s, o, i: sum(v["g"][n, o] * v["x"][n, i] for n in range(s["N"])),
            lambda s: {"o": range(s["O"]), "i": range(s["I"])},
        ),
        16: Step(
            "follows",
            lambda v, s, n, i: read0(_fc_grads(v)[1]["x"], n, i),
            lambda v, s, n, i: sum(v["g"][n, o] * v["w"][o, i] for o in range(s["O"])),
            lambda s: {"n": range(s["N"]), "i": range(s["I"])},
        ),
        17: Step(
            "follows",
            lambda v, s, o: read0(_fc_grads(v)[1]["b"], o),
            lambda v, s, o: sum(v["g"][n, o] for n in range(s["N"])),
            lambda s: {"o": range(s["O"])},
        ),
        21: Step(
            "follows",
            lambda v, s, n, i: read0(_fc_grads(v)[1]["x"], n, i),
            lambda v, s, n, i: read0(v["g"] @ v["w"], n, i),
            lambda s: {"n": range(s["N"]), "i": range(s["I"])},
        ),
        # dL/dY W^T: (N, O) @ (I, O), defined only when O == I
        25: Step(
            "does not follow",
            shape_mismatch=True,
            left=lambda s: (s["N"], s["I"]),
            right=lambda s: np.ones((s["N"], s["O"])) @ np.ones((s["O"], s["I"])).T,
        ),
        28: Step(
            "does not follow",
            lambda v, s, o: read0(_fc_grads(v)[1]["b"], o),
            lambda v, s, o: read0(v["g"], 0, o),
        ),
    },
)


def _draw_sce(rng):
    n = int(rng.integers(1, 6))
    return {"n": n}, {"s": rng.normal(size=n), "t": rng.dirichlet(np.ones(n))}


def _sce_loss(s, t):
    return -(t * torch.log(torch.softmax(s, 0))).sum()


def _sce_ds(v, s, k):
    st = T(v["s"])
    return read0(grad(_sce_loss(st, torch.tensor(v["t"])), st), k)


def _sce_loss_value(v, s):
    return float(_sce_loss(torch.tensor(v["s"]), torch.tensor(v["t"])))


def _sce_chain(v, s, k):
    # sum_i dL/dp_i dp_i/ds_k, each factor by autograd (p an intermediate: dL/dp holds s fixed)
    p = torch.softmax(T(v["s"]), 0).detach().requires_grad_(True)
    dl_dp = grad(-(torch.tensor(v["t"]) * torch.log(p)).sum(), p)
    dp_ds = jacobian(lambda z: torch.softmax(z, 0), v["s"])
    return float(sum(dl_dp[i] * dp_ds[i, k] for i in range(len(v["s"]))))


SOFTMAX_CE = Document(
    "softmax_ce.md",
    _draw_sce,
    {
        9: Step(
            "follows",
            lambda v, s, k: float(torch.softmax(torch.tensor(v["s"]), 0)[k]),
            lambda v, s, k: np.exp(v["s"][k]) / np.exp(v["s"]).sum(),
            lambda s: {"k": range(s["n"])},
        ),
        13: Step(
            "follows",
            _sce_loss_value,
            lambda v, s: -sum(v["t"][i] * np.log(softmax(v["s"])[i]) for i in range(s["n"])),
        ),
        # true when sum(t) == 1 (the layer's assumption), which this step needs
        15: Step("unknown", _sce_ds, _sce_chain, lambda s: {"k": range(s["n"])}, truth=True),
        17: Step(
            "follows",
            lambda v, s, i, k: float(jacobian(lambda z: torch.softmax(z, 0), v["s"])[i, k]),
            lambda v, s, i, k: softmax(v["s"])[i] * ((i == k) - softmax(v["s"])[k]),
            lambda s: {"i": range(s["n"]), "k": range(s["n"])},
        ),
        19: Step("follows", _sce_ds, lambda v, s, k: softmax(v["s"])[k] - v["t"][k], lambda s: {"k": range(s["n"])}),
        23: Step("does not follow", _sce_ds, lambda v, s, k: v["t"][k] - softmax(v["s"])[k]),
        25: Step("does not follow", _sce_ds, lambda v, s, k: softmax(v["s"])[k]),
        # the bound n reads s_n outside s: 0, so e^{s_n} = 1 is one term too many
        27: Step(
            "does not follow",
            _sce_loss_value,
            lambda v, s: (
                -sum(v["t"][i] * v["s"][i] for i in range(s["n"]))
                + np.log(sum(np.exp(read0(v["s"], j)) for j in range(s["n"] + 1)))
            ),
        ),
    },
)


def _draw_softmax(rng):
    n = int(rng.integers(1, 6))
    return {"n": n}, {"s": rng.normal(size=n), "g": rng.normal(size=n)}


def _sm_jac(v):
    return jacobian(lambda z: torch.softmax(z, 0), v["s"])


def _sm_ds(v, s, j):
    st = T(v["s"])
    return read0(grad(torch.softmax(st, 0), st, v["g"]), j)


def _delta(a, b):
    return 1.0 if a == b else 0.0


def _sm(v, i):
    return read0(softmax(v["s"]), i)


_IJ = {"ranges": lambda s: {"i": range(s["n"]), "j": range(s["n"])}}
_J = {"ranges": lambda s: {"j": range(s["n"])}}

SOFTMAX_JACOBIAN = Document(
    "softmax_jacobian.md",
    _draw_softmax,
    {
        9: Step(
            "follows",
            lambda v, s, i: _sm(v, i),
            lambda v, s, i: np.exp(v["s"][i]) / np.exp(v["s"]).sum(),
            lambda s: {"i": range(s["n"])},
        ),
        13: Step(
            "follows",
            lambda v, s, i, j: _sm_jac(v)[i, j],
            lambda v, s, i, j: _sm(v, i) * (_delta(i, j) - _sm(v, j)),
            **_IJ,
        ),
        16: Step(
            "follows",
            lambda v, s, i, j: _sm_jac(v)[i, j],
            lambda v, s, i, j: _sm(v, i) * (1 - _sm(v, i)) if i == j else -_sm(v, i) * _sm(v, j),
            **_IJ,
        ),
        25: Step(
            "does not follow", lambda v, s, i, j: _sm_jac(v)[i, j], lambda v, s, i, j: _sm(v, i) * (1 - _sm(v, j))
        ),
        30: Step(
            "does not follow",
            lambda v, s, i, j: _sm_jac(v)[i, j],
            lambda v, s, i, j: _sm(v, i) * (1 - _sm(v, i)) if i == j else _sm(v, i) * _sm(v, j),
        ),
        46: Step(
            "follows",
            _sm_ds,
            lambda v, s, j: sum(v["g"][i] * _sm(v, i) * (_delta(i, j) - _sm(v, j)) for i in range(s["n"])),
            **_J,
        ),
        50: Step(
            "follows",
            _sm_ds,
            lambda v, s, j: (
                v["g"][j] * _sm(v, j) * (1 - _sm(v, j))
                - sum(v["g"][i] * _sm(v, i) * _sm(v, j) for i in range(s["n"]) if i != j)
            ),
            **_J,
        ),
        54: Step(
            "does not follow",
            _sm_ds,
            lambda v, s, j: (
                v["g"][j] * _sm(v, j) * (1 - _sm(v, j)) - sum(v["g"][i] * _sm(v, i) * _sm(v, j) for i in range(s["n"]))
            ),
        ),
        # sigma^T (I - sigma), NumPy's rules: sigma @ (eye - sigma) is a vector, not the (n, n) Jacobian
        68: Step(
            "does not follow",
            shape_mismatch=True,
            left=lambda s: (s["n"], s["n"]),
            right=lambda s: softmax(np.ones(s["n"])) @ (np.eye(s["n"]) - softmax(np.ones(s["n"]))),
        ),
        # y (1 - y) on the diagonal only: the off-diagonal -y_i y_j dropped
        70: Step(
            "does not follow",
            lambda v, s, i, j: _sm_jac(v)[i, j],
            lambda v, s, i, j: np.diag(softmax(v["s"]) * (1 - softmax(v["s"])))[i, j],
        ),
        # diag(sigma) - sigma sigma^T under column_vectors: sigma sigma^T is the outer product
        81: Step(
            "follows",
            lambda v, s, i, j: _sm_jac(v)[i, j],
            lambda v, s, i, j: (np.diag(softmax(v["s"])) - np.outer(softmax(v["s"]), softmax(v["s"])))[i, j],
            **_IJ,
        ),
    },
)


def _draw_bn(rng):
    N, C = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    v = {"x": rng.normal(size=(N, C)), "gamma": rng.normal(size=C), "beta": rng.normal(size=C)}
    return {"N": N, "C": C}, v | {"eps": float(rng.uniform(0.1, 1)), "g": rng.normal(size=(N, C))}


def _bn_stats(v):
    x = np.asarray(v["x"], dtype=float)
    return x.mean(axis=0), x.var(axis=0)


def _bn_dxhat(v):
    """dL/dxhat with xhat a leaf: y = gamma * xhat + beta."""
    mu, var = _bn_stats(v)
    xhat = T((v["x"] - mu) / np.sqrt(var + number(v["eps"])))
    return grad(torch.tensor(v["gamma"]) * xhat + torch.tensor(v["beta"]), xhat, v["g"])


def _bn_dvar(v, s, j):
    """dL/dsigma2 through xhat, x and mu held fixed (DERIVATIONS.md), by autograd."""
    mu, var = _bn_stats(v)
    sigma2 = T(var)
    xhat = (torch.tensor(v["x"]) - torch.tensor(mu)) / torch.sqrt(sigma2 + number(v["eps"]))
    return read0(grad(torch.tensor(v["gamma"]) * xhat + torch.tensor(v["beta"]), sigma2, v["g"]), j)


def _bn_dvar_doc(power):
    def right(v, s, j):
        mu, var = _bn_stats(v)
        dxhat = _bn_dxhat(v)
        eps = number(v["eps"])
        return sum(dxhat[i, j] * (v["x"][i, j] - mu[j]) * -0.5 * (var[j] + eps) ** power for i in range(s["N"]))

    return right


_C = {"ranges": lambda s: {"j": range(s["C"])}}

BATCH_NORM = Document(
    "batch_norm.md",
    _draw_bn,
    {
        15: Step(
            "follows",
            lambda v, s, j: float(torch.tensor(v["x"]).mean(0)[j]),
            lambda v, s, j: sum(v["x"][i, j] for i in range(s["N"])) / s["N"],
            **_C,
        ),
        17: Step(
            "follows",
            lambda v, s, j: float(torch.tensor(v["x"]).var(0, unbiased=False)[j]),
            lambda v, s, j: sum((v["x"][i, j] - _bn_stats(v)[0][j]) ** 2 for i in range(s["N"])) / s["N"],
            **_C,
        ),
        # true (y is gamma xhat + beta by the layer's definition); the prover cannot show
        # that sqrt(var + eps) > 0 from eps > 0 here
        19: Step(
            "unknown",
            lambda v, s, i, j: float(
                torch.nn.functional.batch_norm(
                    torch.tensor(v["x"]),
                    None,
                    None,
                    torch.tensor(v["gamma"]),
                    torch.tensor(v["beta"]),
                    training=True,
                    eps=number(v["eps"]),
                )[i, j]
            ),
            lambda v, s, i, j: (
                v["gamma"][j] * (v["x"][i, j] - _bn_stats(v)[0][j]) / np.sqrt(_bn_stats(v)[1][j] + v["eps"])
                + v["beta"][j]
            ),
            lambda s: {"i": range(s["N"]), "j": range(s["C"])},
            truth=True,
        ),
        23: Step(
            "follows",
            lambda v, s, i, j: _bn_dxhat(v)[i, j],
            lambda v, s, i, j: v["g"][i, j] * v["gamma"][j],
            lambda s: {"i": range(s["N"]), "j": range(s["C"])},
        ),
        25: Step("follows", _bn_dvar, _bn_dvar_doc(-1.5), **_C),
        29: Step(
            "does not follow",
            lambda v, s, j: _bn_stats(v)[1][j],
            lambda v, s, j: sum((v["x"][i, j] - _bn_stats(v)[0][j]) ** 2 for i in range(s["N"])) / (s["N"] - 1),
        ),
        # the bound N: x_{Nj} is read outside x (0), (0 - mu_j)^2 is one term too many
        31: Step(
            "does not follow",
            lambda v, s, j: _bn_stats(v)[1][j],
            lambda v, s, j: sum((read0(v["x"], i, j) - _bn_stats(v)[0][j]) ** 2 for i in range(s["N"] + 1)) / s["N"],
        ),
        33: Step("does not follow", _bn_dvar, _bn_dvar_doc(-0.5)),
    },
)


def _draw_ln(rng):
    N, D = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    v = {"x": rng.normal(size=(N, D)), "gamma": rng.normal(size=D), "beta": rng.normal(size=D)}
    return {"N": N, "D": D}, v | {"eps": float(rng.uniform(0.1, 1)), "g": rng.normal(size=(N, D))}


def _ln_y(v):
    x, gamma, beta = T(v["x"]), T(v["gamma"]), T(v["beta"])
    return x, gamma, beta, torch.nn.functional.layer_norm(x, (x.shape[1],), gamma, beta, eps=number(v["eps"]))


def _ln_xhat(v):
    x = np.asarray(v["x"], dtype=float)
    return (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + number(v["eps"]))


def _ln_dxhat(v, s, n, d):
    xhat = T(_ln_xhat(v))
    return read0(grad(torch.tensor(v["gamma"]) * xhat + torch.tensor(v["beta"]), xhat, v["g"]), n, d)


def _ln_dgamma(v, s, d):
    _, gamma, _, y = _ln_y(v)
    return read0(grad(y, gamma, v["g"]), d)


def _ln_dbeta(v, s, d):
    _, _, beta, y = _ln_y(v)
    return read0(grad(y, beta, v["g"]), d)


_ND = {"ranges": lambda s: {"n": range(s["N"]), "d": range(s["D"])}}

LAYER_NORM = Document(
    "layer_norm.md",
    _draw_ln,
    {
        18: Step(
            "follows",
            lambda v, s, n: float(np.mean(v["x"][n])),
            lambda v, s, n: sum(v["x"][n, d] for d in range(s["D"])) / s["D"],
            lambda s: {"n": range(s["N"])},
        ),
        20: Step(
            "follows",
            lambda v, s, n: float(torch.tensor(v["x"]).var(1, unbiased=False)[n]),
            lambda v, s, n: sum((v["x"][n, d] - np.mean(v["x"][n])) ** 2 for d in range(s["D"])) / s["D"],
            lambda s: {"n": range(s["N"])},
        ),
        22: Step(
            "follows",
            lambda v, s, n, d: _ln_xhat(v)[n, d],
            lambda v, s, n, d: (v["x"][n, d] - np.mean(v["x"][n])) / np.sqrt(np.var(v["x"][n]) + v["eps"]),
            **_ND,
        ),
        26: Step(
            "follows",
            _ln_dgamma,
            lambda v, s, d: sum(v["g"][n, d] * _ln_xhat(v)[n, d] for n in range(s["N"])),
            lambda s: {"d": range(s["D"])},
        ),
        28: Step(
            "follows",
            _ln_dbeta,
            lambda v, s, d: sum(v["g"][n, d] for n in range(s["N"])),
            lambda s: {"d": range(s["D"])},
        ),
        32: Step("follows", _ln_dxhat, lambda v, s, n, d: v["g"][n, d] * v["gamma"][d], **_ND),
        # the variance over the rows: x_{kn} read with the row index second (0 outside x)
        37: Step(
            "does not follow",
            lambda v, s, n: float(np.var(v["x"][n])),
            lambda v, s, n: _ln_rows_variance(v, s, n),
        ),
        39: Step(
            "does not follow",
            _ln_dbeta,
            lambda v, s, d: sum(read0(v["g"], d, e) for e in range(s["D"])),
        ),
        41: Step("does not follow", _ln_dxhat, lambda v, s, n, d: v["g"][n, d]),
    },
)


def _ln_rows_variance(v, s, n):
    """(1/D) sum_k (x_{kn} - mu_n)^2, k unbounded: it runs where its read x_{kn} is in range
    (LANGUAGE.md), so over k < N, and over nothing when n is past x's second axis."""
    x = np.asarray(v["x"], dtype=float)
    mu = np.mean(x[n])
    if n >= x.shape[1]:
        return 0.0
    return sum((x[k, n] - mu) ** 2 for k in range(x.shape[0])) / s["D"]


def _draw_conv2d(rng):
    kh, kw = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    H, W = kh + int(rng.integers(0, 3)), kw + int(rng.integers(0, 3))
    v = {"x": rng.normal(size=(H, W)), "w": rng.normal(size=(kh, kw)), "b": float(rng.normal())}
    return {"H": H, "W": W, "kh": kh, "kw": kw}, v | {"g": rng.normal(size=(H - kh + 1, W - kw + 1))}


def _conv2d(x, w, b):
    return torch.nn.functional.conv2d(x[None, None], w[None, None])[0, 0] + b


def _conv2d_grads(v):
    x, w, b = T(v["x"]), T(v["w"]), T(v["b"])
    y = _conv2d(x, w, b)
    return y, {k: grad(y, t, v["g"]) for k, t in (("x", x), ("w", w), ("b", b))}


def _conv2d_dw_chain(v, s, m, n):
    """sum_{i, j} g[i, j] dy[i, j]/dw[m, n], the factor dy/dw by autograd (torch's Jacobian)."""
    jac = jacobian(lambda w: _conv2d(torch.tensor(v["x"]), w, v["b"]), v["w"])
    g = v["g"]
    return sum(g[i, j] * read0(jac, i, j, m, n) for i in range(g.shape[0]) for j in range(g.shape[1]))


def _dw_sum(v, m, n, shift):
    g = v["g"]
    return sum(g[i, j] * read0(v["x"], i + m + shift, j + n) for i in range(g.shape[0]) for j in range(g.shape[1]))


_MN = {"ranges": lambda s: {"m": range(s["kh"]), "n": range(s["kw"])}}
_PQ = {"ranges": lambda s: {"p": range(s["H"]), "q": range(s["W"])}}

CONV2D_CHAIN = Document(
    "conv2d_chain.md",
    _draw_conv2d,
    {
        12: Step(
            "follows",
            lambda v, s, i, j: read0(_conv2d_grads(v)[0].detach().numpy(), i, j),
            lambda v, s, i, j: (
                sum(read0(v["x"], i + m, j + n) * v["w"][m, n] for m in range(s["kh"]) for n in range(s["kw"])) + v["b"]
            ),
            lambda s: {"i": range(s["H"] - s["kh"] + 1), "j": range(s["W"] - s["kw"] + 1)},
        ),
        18: Step(
            "follows",
            lambda v, s, m, n: read0(_conv2d_grads(v)[1]["w"], m, n),
            _conv2d_dw_chain,
            **_MN,
        ),
        19: Step(
            "follows",
            lambda v, s, m, n: read0(_conv2d_grads(v)[1]["w"], m, n),
            lambda v, s, m, n: _dw_sum(v, m, n, 0),
            **_MN,
        ),
        25: Step(
            "follows",
            lambda v, s, p, q: read0(_conv2d_grads(v)[1]["x"], p, q),
            lambda v, s, p, q: sum(
                read0(v["g"], p - m, q - n) * v["w"][m, n] for m in range(s["kh"]) for n in range(s["kw"])
            ),
            **_PQ,
        ),
        29: Step(
            "does not follow",
            lambda v, s, p, q: read0(_conv2d_grads(v)[1]["x"], p, q),
            lambda v, s, p, q: sum(
                read0(v["g"], p + m, q + n) * v["w"][m, n] for m in range(s["kh"]) for n in range(s["kw"])
            ),
        ),
        31: Step(
            "does not follow",
            lambda v, s, m, n: read0(_conv2d_grads(v)[1]["w"], m, n),
            lambda v, s, m, n: _dw_sum(v, m, n, 1),
        ),
        35: Step("follows", lambda v, s: float(_conv2d_grads(v)[1]["b"]), lambda v, s: float(np.sum(v["g"]))),
    },
)


def _draw_two_layers(rng):
    n, m, N, D = (int(rng.integers(1, 4)) for _ in range(4))
    v = {"x": rng.normal(size=n), "w": rng.normal(size=(m, n)), "b": rng.normal(size=m), "g": rng.normal(size=m)}
    # the sigmoid block's tensors under their own names (the test reads the block's own)
    return {"n": n, "m": m, "N": N, "D": D}, v | {"X": rng.normal(size=(N, D)), "G": rng.normal(size=(N, D))}


def _lin_dx(v, s, i):
    x, w = T(v["x"]), T(v["w"])
    return read0(grad(w @ x + torch.tensor(v["b"]), x, v["g"]), i)


def _sig_block(v):
    """The sigmoid block's x and g: X, G when drawn here, x, g in its counterexamples."""
    return (v["X"], v["G"]) if "X" in v else (v["x"], v["g"])


def _sig_dx(v, s, i, j):
    xv, gv = _sig_block(v)
    x = T(xv)
    return read0(grad(torch.sigmoid(x), x, gv), i, j)


def _sig(v, i, j):
    xv, _ = _sig_block(v)
    return float(torch.sigmoid(torch.tensor(read0(xv, i, j))))


_SIG = {"ranges": lambda s: {"i": range(s["N"]), "j": range(s["D"])}}

TWO_LAYERS = Document(
    "two_layers.md",
    _draw_two_layers,
    {
        12: Step(
            "follows",
            lambda v, s, j: read0(v["w"] @ v["x"] + v["b"], j),
            lambda v, s, j: sum(v["w"][j, i] * v["x"][i] for i in range(s["n"])) + v["b"][j],
            lambda s: {"j": range(s["m"])},
        ),
        14: Step(
            "follows",
            _lin_dx,
            lambda v, s, i: sum(v["g"][j] * v["w"][j, i] for j in range(s["m"])),
            lambda s: {"i": range(s["n"])},
        ),
        16: Step(
            "does not follow", _lin_dx, lambda v, s, i: sum(read0(v["g"], j) * read0(v["w"], i, j) for j in range(9))
        ),
        18: Step(
            "follows",
            lambda v, s, j, i: float(np.outer(v["g"], v["x"])[j, i]),
            lambda v, s, j, i: v["g"][j] * v["x"][i],
            lambda s: {"j": range(s["m"]), "i": range(s["n"])},
        ),
        28: Step(
            "follows",
            lambda v, s, i, j: _sig(v, i, j),
            lambda v, s, i, j: 1 / (1 + np.exp(-_sig_block(v)[0][i, j])),
            **_SIG,
        ),
        30: Step(
            "follows", _sig_dx, lambda v, s, i, j: _sig_block(v)[1][i, j] * _sig(v, i, j) * (1 - _sig(v, i, j)), **_SIG
        ),
        32: Step(
            "does not follow",
            _sig_dx,
            lambda v, s, i, j: read0(_sig_block(v)[1], i, j) * _sig(v, i, j) * (1 + _sig(v, i, j)),
        ),
    },
)


def _draw_mse(rng):
    n = int(rng.integers(1, 6))
    return {"n": n}, {"y": rng.normal(size=n), "t": rng.normal(size=n)}


def _mse_dy(v, s, i):
    y = T(v["y"])
    return read0(grad(torch.nn.functional.mse_loss(y, torch.tensor(v["t"])), y), i)


def _mse_written(v, s, i):
    """d/dy_i of the written (1/n) sum_k (y_k - t_k)^2, by autograd of that expression."""
    y = T(v["y"])
    return read0(grad(sum((y[k] - v["t"][k]) ** 2 for k in range(s["n"])) / s["n"], y), i)


_I = {"ranges": lambda s: {"i": range(s["n"])}}

MSE_CHAIN = Document(
    "mse_chain.tex",
    _draw_mse,
    {
        8: Step("follows", _mse_dy, _mse_written, **_I),
        10: Step("follows", _mse_written, lambda v, s, i: 2 / s["n"] * (v["y"][i] - v["t"][i]), **_I),
        14: Step(
            "follows",
            _mse_dy,
            lambda v, s, i: sum(2 * (v["y"][k] - v["t"][k]) * _delta(k, i) for k in range(s["n"])) / s["n"],
            **_I,
        ),
        16: Step(
            "does not follow",
            lambda v, s, i: sum(2 * (v["y"][k] - v["t"][k]) * _delta(k, i) for k in range(s["n"])) / s["n"],
            lambda v, s, i: (v["y"][i] - v["t"][i]) / s["n"],
        ),
    },
)


def _draw_pool(rng):
    n, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.integers(-1, 2, size=(n, k)).astype(float)  # small integers: ties happen
    return {"n": n, "k": k}, {"x": x, "g": rng.normal(size=n)}


def _pool_dx(v, s, i, j):
    x = T(v["x"])
    return read0(grad(torch.amax(x, dim=1), x, v["g"]), i, j)


def _is_max(v, i, j):
    return float(v["x"][i, j] == np.max(v["x"][i]))


_POOL = {"ranges": lambda s: {"i": range(s["n"]), "j": range(s["k"])}}

MAX_POOL = Document(
    "max_pool.md",
    _draw_pool,
    {
        10: Step(
            "follows",
            lambda v, s, i: float(torch.amax(torch.tensor(v["x"]), dim=1)[i]),
            lambda v, s, i: max(v["x"][i, j] for j in range(s["k"])),
            lambda s: {"i": range(s["n"])},
        ),
        # the maximum down a column: max_j x[j, i], reads outside x are 0 (i past x's columns)
        31: Step(
            "does not follow",
            lambda v, s, i: float(torch.amax(torch.tensor(v["x"]), dim=1)[i]),
            lambda v, s, i: read0(np.max(v["x"], axis=0), i),
        ),
        16: Step(
            "unknown",
            _pool_dx,
            lambda v, s, i, j: v["g"][i] * _is_max(v, i, j) / sum(_is_max(v, i, m) for m in range(s["k"])),
            truth=True,
            **_POOL,
        ),
        21: Step("unknown", _pool_dx, lambda v, s, i, j: v["g"][i] * _is_max(v, i, j), truth=False, **_POOL),
        25: Step("unknown", _pool_dx, lambda v, s, i, j: v["g"][i], truth=False, **_POOL),
        27: Step("does not follow", _pool_dx, lambda v, s, i, j: read0(v["g"], i) * read0(v["x"], i, j)),
    },
    # the three unknown steps would each spend ~10 s searching (amax defeats the search);
    # the refuted one takes a fraction of a second
    timeout=6.0,
)


def _draw_linear(rng):
    m, n = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    values = {"x": rng.normal(size=n), "w": rng.normal(size=(m, n)), "b": rng.normal(size=m), "g": rng.normal(size=m)}
    return {"m": m, "n": n}, values


U = sp.Symbol("u")


def concrete_f(v) -> Callable:
    """The activation a step is checked with: the counterexample's concrete f (``FUNCTIONS`` in
    the values, its text as the counterexample names it), else torch.tanh (a `follows` holds for
    every f, so for tanh)."""
    text = v.get(FUNCTIONS, {}).get("f")
    if text is None:
        return torch.tanh
    return sp.lambdify(U, sp.sympify(text, locals={"u": U}), modules=[{"exp": torch.exp}, "math"])


def derivative(f: Callable, at: float, order: int) -> float:
    """f's derivative of ``order`` at ``at``, by autograd."""
    u = torch.tensor(float(at), requires_grad=True)
    out = f(u)
    for _ in range(order):
        (out,) = torch.autograd.grad(out, u, create_graph=True)
    return float(out.detach())


def _y(v) -> np.ndarray:
    return np.asarray(v["w"]) @ np.asarray(v["x"]) + np.asarray(v["b"])


def _df_by(v, name: str, i: int, j: int) -> float:
    """d f(y[i]) / d name[i, j] (w) or d name[j] (x), by autograd through y = w x + b."""
    f, x, w = concrete_f(v), T(v["x"]), T(v["w"])
    out = f(w @ x + torch.tensor(np.asarray(v["b"], dtype=float)))[i]
    return float(grad(out, w if name == "w" else x)[(i, j) if name == "w" else j])


def _df_by_y(v, s, i):
    y = T(_y(v))
    return float(grad(concrete_f(v)(y)[i], y)[i])


_LINEAR = {"ranges": lambda s: {"i": range(s["m"]), "j": range(s["n"])}}

ACTIVATION_F = Document(
    "activation_f.tex",
    _draw_linear,
    {
        14: Step(
            "follows",
            _df_by_y,
            lambda v, s, i: derivative(concrete_f(v), _y(v)[i], 1),
            ranges=lambda s: {"i": range(s["m"])},
        ),
        18: Step(
            "follows",
            lambda v, s, i, j: _df_by(v, "w", i, j),
            lambda v, s, i, j: derivative(concrete_f(v), _y(v)[i], 1) * v["x"][j],
            **_LINEAR,
        ),
        19: Step(
            "follows",
            lambda v, s, i, j: _df_by(v, "x", i, j),
            lambda v, s, i, j: derivative(concrete_f(v), _y(v)[i], 1) * v["w"][i, j],
            **_LINEAR,
        ),
        # f for f', and a second prime: refuted with a concrete f the counterexample names
        24: Step(
            "does not follow",
            lambda v, s, i, j: _df_by(v, "w", i, j),
            lambda v, s, i, j: float(concrete_f(v)(torch.tensor(_y(v)[i]))) * v["x"][j],
        ),
        27: Step(
            "does not follow",
            lambda v, s, i, j: _df_by(v, "x", i, j),
            lambda v, s, i, j: derivative(concrete_f(v), _y(v)[i], 2) * v["w"][i, j],
        ),
    },
)


def _draw_relu(rng):
    N, D = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.integers(-2, 3, size=(N, D)).astype(float)  # zeros happen: the kink is tested
    return {"N": N, "D": D}, {"x": x, "g": rng.normal(size=(N, D))}


def _relu_dx(v, s, n, d):
    x = T(v["x"])
    return read0(grad(torch.relu(x), x, v["g"]), n, d)


_RELU = {"ranges": lambda s: {"n": range(s["N"]), "d": range(s["D"])}}

RELU_CASES = Document(
    "relu_cases.tex",
    _draw_relu,
    {
        13: Step(
            "follows",
            lambda v, s, n, d: float(torch.relu(torch.tensor(v["x"]))[n, d]),
            lambda v, s, n, d: v["x"][n, d] if v["x"][n, d] > 0 else 0.0,
            **_RELU,
        ),
        17: Step("follows", _relu_dx, lambda v, s, n, d: v["g"][n, d] * (v["x"][n, d] > 0), **_RELU),
        18: Step("follows", _relu_dx, lambda v, s, n, d: v["g"][n, d] if v["x"][n, d] > 0 else 0.0, **_RELU),
        22: Step("does not follow", _relu_dx, lambda v, s, n, d: v["g"][n, d] * (v["x"][n, d] >= 0)),
        25: Step(
            "does not follow",
            _relu_dx,
            lambda v, s, n, d: v["g"][n, d] * (float(torch.relu(torch.tensor(v["x"][n, d]))) < 0),
        ),
    },
)


def test_f_prime_is_read_as_the_derivative_of_the_declared_function():
    """f' is f_prime and f'' f_prime_prime, never f with the primes dropped."""
    read = {e.line: [(k.left, k.right) for k in e.links] for e in read_document(DOCUMENTS / "activation_f.tex")}
    assert read[14] == [("diff(f(y[i]), y[i])", "f_prime(y[i])")]
    assert read[18] == [("diff(f(y[i]), w[i, j])", "f_prime(y[i]) * x[j]")]
    assert read[24] == [("diff(f(y[i]), w[i, j])", "f(y[i]) * x[j]")]
    assert read[27] == [("diff(f(y[i]), x[j])", "f_prime_prime(y[i]) * w[i, j]")]


def test_a_wrong_step_about_f_names_the_concrete_f_of_its_counterexample():
    for line in (24, 27):
        (entry,) = [e for e in audited(ACTIVATION_F).entries if e.line == line]
        assert set(entry.wrong_link.counterexample.functions) == {"f"}


DOCS = [
    CONV_STRIDE,
    FC_BATCH,
    SOFTMAX_CE,
    SOFTMAX_JACOBIAN,
    BATCH_NORM,
    LAYER_NORM,
    CONV2D_CHAIN,
    TWO_LAYERS,
    MSE_CHAIN,
    MAX_POOL,
    ACTIVATION_F,
    RELU_CASES,
]


# ---------------------------------------------------------------------------------------
# the tests

_AUDITS: dict[str, object] = {}


def audited(doc: Document):
    """The document's audit, done once for the tests below."""
    if doc.name not in _AUDITS:
        _AUDITS[doc.name] = audit(DOCUMENTS / doc.name, timeout=doc.timeout)
    return _AUDITS[doc.name]


def _name(doc: Document) -> str:
    return doc.name


def test_at_least_twelve_documents_in_both_file_types():
    names = [d.name for d in DOCS]
    assert len(set(names)) >= 12
    assert {Path(n).suffix for n in names} == {".md", ".tex"}
    assert all((DOCUMENTS / n).is_file() for n in names)


def _allowed(step: Step) -> tuple[str, ...]:
    """The verdicts a step may get: its own; for an unknown step whose truth the oracle
    knows, also the right decision (a prover that learns to decide it must decide it right)."""
    if step.verdict == "unknown" and step.truth is not None:
        return ("unknown", "follows" if step.truth else "does not follow")
    return (step.verdict,)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_entry_gets_its_expected_verdict(doc):
    result = audited(doc)
    got = {e.line: e.verdict for e in result.entries}
    assert set(got) == set(doc.steps)
    for line, verdict in got.items():
        assert verdict in _allowed(doc.steps[line]), (doc.name, line, verdict)
    for e in result.entries:
        step = doc.steps[e.line]
        if step.reason:
            assert step.reason in e.reason, (e.line, e.reason)
        if e.verdict in ("unknown", "not checked"):
            assert e.reason, e.line  # said, never silent


@pytest.mark.parametrize("doc", [d for d in DOCS if any(s.left for s in d.steps.values())], ids=_name)
def test_the_oracle_agrees_with_every_follows_at_random_sizes(doc):
    """Independent of the audit: each step the document claims, evaluated by NumPy/torch at
    random sizes; a `follows` holds at every draw, an unknown step as the oracle says."""
    rng = np.random.default_rng(sum(map(ord, doc.name)))
    draws = [doc.draw(rng) for _ in range(4)]
    for line, step in doc.steps.items():
        if step.left is None or step.verdict not in ("follows", "unknown"):
            continue
        agree = [agree_everywhere(step, values, sizes) for sizes, values in draws]
        if step.verdict == "follows" or step.truth:
            assert all(agree), (doc.name, line, agree)
        else:
            assert not all(agree), (doc.name, line, "the oracle finds this unknown step true")


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_counterexample_really_differs(doc):
    wrong = [e for e in audited(doc).entries if e.wrong]
    assert {e.line for e in wrong} >= {line for line, s in doc.steps.items() if s.verdict == "does not follow"}
    for e in wrong:
        step, link = doc.steps[e.line], e.wrong_link
        cex = link.counterexample
        values = {k: as_array(v) for k, v in (cex.values or {}).items()}
        if cex.is_shape_mismatch:
            # a shape counterexample: the true shape at its sizes, and the right side's
            # (NumPy's, of arrays of those shapes), or NumPy refusing it
            assert step.shape_mismatch, e.line
            assert tuple(cex.expected_shape) == step.left(cex.sizes), e.line
            try:
                right = np.asarray(step.right(cex.sizes))
            except ValueError:
                assert cex.claimed_shape is None, e.line
                continue
            assert right.shape == tuple(cex.claimed_shape) != tuple(cex.expected_shape), e.line
            continue
        if cex.functions:
            values[FUNCTIONS] = cex.functions  # the concrete f the counterexample names
        idx = free_indices(link.at, cex.index)
        left, right = step.left(values, cex.sizes, **idx), step.right(values, cex.sizes, **idx)
        assert left == pytest.approx(number(cex.expected), abs=1e-9), (doc.name, e.line, "left")
        assert right == pytest.approx(number(cex.claimed), abs=1e-9), (doc.name, e.line, "right")
        assert left != pytest.approx(right, abs=1e-9), (doc.name, e.line)


# ---------------------------------------------------------------------------------------
# hostile documents, through the command: a clear error or `not checked`, never a traceback,
# exit 70 or a hang

LINEAR_MD = "```toml symderive\nlayer = 'linear'\n```\n"
LINEAR_TEX = "% symderive\n% layer = 'linear'\n% end symderive\n"
#: name -> (text, what the output must say)
HOSTILE = {
    "unicode-math.md": (LINEAR_MD + "$$∂L/∂x_i = ∑_j w_{ji} ∂L/∂y_j$$\n", "unexpected character '∂'"),
    "zero-width.md": (LINEAR_MD + "$$y = w x + b\u200b$$\n", "unexpected character '\\u200b'"),
    "right-to-left.md": (LINEAR_MD + "$$y = \u202ew x + b$$\n", "unexpected character '\\u202e'"),
    "emoji.md": (LINEAR_MD + "$$\U0001f600 = y$$\n\n$$y_j = \\text{\U0001f600} x_j$$\n", "unknown symbol \\text{"),
    "combining.md": (LINEAR_MD + "$$x\u0301_i = y_i$$\n", "unexpected character"),
    "deep-frac.md": (LINEAR_MD + "$$y = " + "\\frac{1}{" * 300 + "x" + "}" * 300 + "$$\n", "nested deeper"),
    "deep-left.md": (LINEAR_MD + "$$y = " + "\\left(" * 400 + "x" + "\\right)" * 400 + "$$\n", "longer than"),
    "deep-sub.md": (LINEAR_MD + "$$y = x" + "_{i" * 200 + "}" * 200 + "$$\n", "nested deeper"),
    "unbalanced.md": (
        LINEAR_MD + "$$y_j = \\sum_i {w_{ji} x_i + b_j$$\n\n$$y = w x + b}}$$\n",
        "unbalanced braces or brackets",
    ),
    "never-closed.md": (LINEAR_MD + "\\begin{align}\ny &= w x + b\n", "never closed"),
    "input.tex": (
        LINEAR_TEX + "\\input{/etc/passwd}\n\\[ \\input{/etc/passwd} = y \\]\n",
        "\\input is not followed: the audit reads this file only",
    ),
    "def.tex": (
        LINEAR_TEX + "\\def\\W{w}\n\\[ y = \\W x + b \\]\n\\[ \\csname W\\endcsname = 1 \\]\n",
        "\\def is not applied",
    ),
    "catcode.tex": (LINEAR_TEX + "\\catcode`\\$=12\n\\[ y = w x + b \\]\n", "\\catcode is not applied"),
    "huge-display.md": (LINEAR_MD + "$$y = " + " + ".join(["x"] * 30_000) + "$$\n", "longer than"),
    "huge-prose.md": (
        LINEAR_MD + "Prose with $inline$ math, \\[ and a bracket.\n" * 20_000 + "$$y = w x + b$$\n",
        "follows",
    ),
    "huge-file.md": (LINEAR_MD + "$$y = w x + b$$\n" * 70_000, "larger than 1 MB"),
    "notation-unbalanced.md": (
        "```toml symderive\nlayer = 'linear'\n[notation]\n'#1_{f' = 'flip(#1)'\n```\n$$y = w x + b$$\n",
        "cannot read the pattern '#1_{f': unbalanced braces or brackets",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_document_ends_in_a_clear_error_or_not_checked(name, tmp_path, capsys):
    text, says = HOSTILE[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    status = cli.main(["audit", str(path), "--timeout", "20"])
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    assert status in (0, 1, 2, 3), (status, captured.err)
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.count("\n") <= 1  # an input error is one line
    if status == 2:
        assert captured.err.startswith("symderive: error:"), captured.err
    assert says in captured.out + captured.err
    assert seconds < 60
