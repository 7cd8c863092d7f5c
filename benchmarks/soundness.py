"""Soundness under attack: a mutation campaign against the prover.

Every true claim the project knows (built-in layers' ``[[claims]]`` with expect "proved"
and the extra spellings below) is mutated by rewriting its Python AST (flip added or
removed, arguments swapped, convolve <-> correlate, mode changed, transpose added or
removed, axis changed, sign flipped, a term dropped or doubled, an index shifted, a
summation bound moved, a constant changed). Each mutant's truth is settled without the
prover: PyTorch autograd of the layer's forward (written here in torch) against the
claim evaluated by NumPy / SciPy / torch.nn.functional (closed form) or by vectorised
loops over the index grid (index form), at many sizes satisfying the assumptions.
Then ``prove`` runs on the mutant, and every counterexample it gives is re-checked the
same independent way.

    python benchmarks/soundness.py            # full campaign (>= 1,000 mutants)
    python benchmarks/soundness.py --small    # the test suite's size

>>> from benchmarks.soundness import judge
>>> judge("linear", "x", "w.T @ g")
'true'
"""

from __future__ import annotations

import argparse
import ast
import copy
import math
import multiprocessing
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

RTOL, ATOL = 1e-6, 1e-8
PROVE_TIMEOUT = {"full": 15.0, "small": 8.0}
WORKER_MEMORY = 6 * 2**30
JOB_WAIT = 180
MAX_GRID = 4_000_000


class Unjudgeable(Exception):
    """The campaign's own evaluator cannot evaluate this claim (not a verdict on it)."""


class ClaimRaised(Exception):
    """The libraries refuse the claim at these sizes (undefined there)."""


# -- the layers' forwards, in torch --------------------------------------------------------


def _flip2(w):
    return torch.flip(w, dims=(0, 1))


def _correlate_valid(x, w):
    return F.conv2d(x[None, None], w[None, None])[0, 0]


def _convolve_full(x, w):
    kh, kw = w.shape
    return F.conv2d(x[None, None], _flip2(w)[None, None], padding=(kh - 1, kw - 1))[0, 0]


def _sdpa(t, s):
    return torch.softmax(t["Q"] @ t["K"].T / math.sqrt(s["d"]), dim=-1) @ t["V"]


#: layer name -> forward(tensors, sizes) returning the output (``y``, or the loss ``L``)
FORWARDS = {
    "attention": _sdpa,
    "avg_pool2d_k2": lambda t, s: F.avg_pool2d(t["x"], 2),
    "batch_norm": lambda t, s: F.batch_norm(
        t["x"], None, None, t["gamma"], t["beta"], training=True, eps=float(t["eps"])
    ),
    "conv1d_ncl": lambda t, s: F.conv1d(t["x"], t["w"], t["b"]),
    "conv1d_ncl_s2": lambda t, s: F.conv1d(t["x"], t["w"], t["b"], stride=2),
    "conv2d": lambda t, s: _correlate_valid(t["x"], t["w"]) + t["b"],
    "conv2d_nchw": lambda t, s: F.conv2d(t["x"], t["w"], t["b"]),
    "conv2d_nchw_d2": lambda t, s: F.conv2d(t["x"], t["w"], t["b"], dilation=2),
    "conv2d_nchw_g2": lambda t, s: F.conv2d(t["x"], t["w"], t["b"], groups=2),
    "conv2d_nchw_s2p1": lambda t, s: F.conv2d(t["x"], t["w"], t["b"], stride=2, padding=1),
    "conv_transpose2d_nchw": lambda t, s: F.conv_transpose2d(t["x"], t["w"], t["b"]),
    "convolution2d": lambda t, s: _correlate_valid(t["x"], _flip2(t["w"])),
    "convolution2d_full": lambda t, s: _convolve_full(t["x"], t["w"]),
    "layer_norm": lambda t, s: F.layer_norm(t["x"], (s["D"],), t["gamma"], t["beta"], eps=float(t["eps"])),
    "linear": lambda t, s: t["w"] @ t["x"] + t["b"],
    "linear_batched": lambda t, s: F.linear(t["x"], t["w"], t["b"]),
    "log_softmax_nll": lambda t, s: F.cross_entropy(t["s"], t["t"]),
    "mse": lambda t, s: F.mse_loss(t["x"], t["t"]),
    "relu": lambda t, s: torch.relu(t["x"]),
    "sigmoid": lambda t, s: torch.sigmoid(t["x"]),
    "sigmoid_bce": lambda t, s: F.binary_cross_entropy_with_logits(t["x"], t["t"]),
    "softmax_cross_entropy": lambda t, s: -(t["t"] * torch.log_softmax(t["s"], dim=0)).sum(),
    "tanh": lambda t, s: torch.tanh(t["x"]),
}

#: extra true spellings (layer, wrt, claim, assume): other ways users write the same gradients
EXTRA_CLAIMS = [
    ("linear", "x", "w.T @ g", ()),
    ("linear", "x", "np.transpose(w) @ g", ()),
    ("linear", "x", "dx[j] == Sum(w[i, j] * g[i], i)", ()),
    ("linear", "x", "g @ w", ()),
    ("linear", "w", "dw[i, j] == g[i] * x[j]", ()),
    ("linear", "w", "np.outer(g, x)", ()),
    ("linear", "b", "db[i] == g[i]", ()),
    ("conv2d", "x", "dx[p, q] == Sum(g[e, f] * w[p - e, q - f], e, f)", ()),
    ("conv2d", "x", "scipy.signal.convolve(g, w, 'full')", ()),
    ("conv2d", "x", "convolve2d(g, w, 'full')", ()),
    ("conv2d", "x", "correlate(g, flip(w), 'full')", ()),
    ("conv2d", "w", "dw[m, n] == Sum(x[i + m, j + n] * g[i, j], (i, 0, H - kh), (j, 0, W - kw))", ()),
    ("conv2d", "w", "correlate2d(x, g, 'valid')", ()),
    ("conv2d", "b", "db == Sum(g[i, j], i, j)", ()),
    ("conv2d", "b", "sum(sum(g, axis=0))", ()),
    ("convolution2d_full", "x", "dx[p, q] == Sum(g[e, f] * w[e - p, f - q], e, f)", ()),
    ("convolution2d", "x", "dx[p, q] == Sum(g[e, f] * w[kh - 1 - p + e, kw - 1 - q + f], e, f)", ()),
    ("softmax_cross_entropy", "s", "exp(s) / sum(exp(s)) - t", ()),
    ("softmax_cross_entropy", "s", "ds[k] == softmax(s)[k] - t[k]", ()),
    ("softmax_cross_entropy", "s", "scipy.special.softmax(s) - t", ()),
    ("softmax_cross_entropy", "s", "softmax(s) * sum(t) - t", ()),
    ("softmax_cross_entropy", "s", "ds[k] == exp(s[k]) / Sum(exp(s[j]), j) - t[k]", ()),
    ("relu", "x", "where(x > 0, g, 0)", ()),
    ("relu", "x", "dx[i, j] == g[i, j] * (x[i, j] > 0)", ()),
    ("tanh", "x", "g - g * y * y", ()),
    ("sigmoid", "x", "g * expit(x) * expit(-x)", ()),
    ("mse", "x", "2 * (x - t) / N / D", ()),
    ("mse", "x", "dx[i, j] == 2 * (x[i, j] - t[i, j]) / (N * D)", ()),
    ("linear_batched", "x", "dx[n, i] == Sum(g[n, o] * w[o, i], o)", ()),
    ("linear_batched", "w", "transpose(x.T @ g)", ()),
    ("conv1d_ncl", "x", "dx[n, c, p] == Sum(g[n, o, p - m] * w[o, c, m], o, m)", ()),
    ("conv1d_ncl", "b", "db[o] == Sum(g[n, o, i], n, i)", ()),
    ("conv2d_nchw", "b", "db[o] == Sum(g[n, o, i, j], n, i, j)", ()),
    ("conv2d_nchw", "x", "dx[n, c, p, q] == Sum(g[n, o, p - m, q - l] * w[o, c, m, l], o, m, l)", ()),
    ("layer_norm", "beta", "sum(g, axis=0)", ()),
    ("batch_norm", "beta", "sum(g, axis=0)", ()),
]


# -- evaluating a claim with the real libraries --------------------------------------------

_PREFIXES = ("np.", "numpy.", "scipy.signal.", "scipy.special.", "F.", "torch.nn.functional.")
_MODES = ("full", "valid", "same")


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _torch_fn(fn):
    def call(*args, **kw):
        return fn(*[_t(a) if isinstance(a, np.ndarray) else a for a in args], **kw).numpy()

    return call


def _softmax_like(fn):
    def call(a, axis=None):
        return fn(np.asarray(a, dtype=np.float64), axis=axis)

    return call


def _signal(fn):
    def call(a, b, mode="full", method="direct"):
        return fn(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), mode=mode, method="direct")

    return call


def _signal2d(fn):
    def call(a, b, mode="full"):
        return fn(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), mode=mode)

    return call


def _relu(a):
    return np.maximum(np.asarray(a, dtype=np.float64), 0.0)


def _pad(a, pad_width, mode="constant"):
    if mode != "constant":
        raise Unjudgeable("pad with a non-constant mode")
    return np.pad(a, pad_width)


FUNCTIONS = {
    "sum": np.sum,
    "mean": np.mean,
    "var": np.var,
    "max": np.max,
    "amax": np.amax,
    "min": np.min,
    "amin": np.amin,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "square": np.square,
    "tanh": np.tanh,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "sin": np.sin,
    "cos": np.cos,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "abs": np.abs,
    "sign": np.sign,
    "clip": np.clip,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "where": np.where,
    "transpose": np.transpose,
    "flip": np.flip,
    "rot90": np.rot90,
    "outer": np.outer,
    "dot": np.dot,
    "einsum": np.einsum,
    "trace": np.trace,
    "diag": np.diag,
    "pad": _pad,
    "zeros_like": np.zeros_like,
    "ones_like": np.ones_like,
    "correlate": _signal(scipy.signal.correlate),
    "convolve": _signal(scipy.signal.convolve),
    "correlate2d": _signal2d(scipy.signal.correlate2d),
    "convolve2d": _signal2d(scipy.signal.convolve2d),
    "softmax": _softmax_like(scipy.special.softmax),
    "log_softmax": _softmax_like(scipy.special.log_softmax),
    "logsumexp": _softmax_like(scipy.special.logsumexp),
    "expit": scipy.special.expit,
    "sigmoid": scipy.special.expit,
    "conv1d": _torch_fn(F.conv1d),
    "conv2d": _torch_fn(F.conv2d),
    "conv_transpose1d": _torch_fn(F.conv_transpose1d),
    "conv_transpose2d": _torch_fn(F.conv_transpose2d),
    "avg_pool2d": _torch_fn(F.avg_pool2d),
    "relu": _relu,
}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: np.true_divide(a, b),
    ast.Pow: lambda a, b: np.power(np.asarray(a, dtype=np.float64), b) if isinstance(a, np.ndarray) else a**b,
    ast.MatMult: lambda a, b: np.matmul(a, b),
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}


@dataclass
class _Frame:
    """The reads made inside one Sum (for the bare-index rule)."""

    reads: list = field(default_factory=list)


class ClaimEvaluator:
    """Evaluate a claim AST with NumPy/SciPy/torch at concrete data (our own test code).

    Index-form claims are evaluated over a grid: every free index and every Sum index
    gets its own array axis, reads outside a tensor are zero, and a bare Sum index runs
    over the points where one of the reads that use it is in range (LANGUAGE.md).

    >>> ev = ClaimEvaluator({"a": np.arange(3.0)}, {})
    >>> ev.closed(ast.parse("flip(a) * 2", mode="eval").body).tolist()
    [4.0, 2.0, 0.0]
    """

    def __init__(self, tensors: dict, sizes: dict):
        self.tensors = tensors
        self.sizes = sizes
        self.indices: dict[str, np.ndarray] = {}
        self.frames: list[_Frame] = []
        self.axes: dict = {}
        self.ndim = 0
        self.radius = 3 * max([*sizes.values(), 2]) + 2

    # closed form
    def closed(self, node):
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise Unjudgeable(f"no evaluator for {type(node).__name__}")
        return method(node)

    def _Constant(self, node):
        if isinstance(node.value, bool) or node.value is None or isinstance(node.value, int | float | str):
            return node.value
        raise Unjudgeable(f"constant {node.value!r}")

    def _Name(self, node):
        if node.id in self.indices:
            return self.indices[node.id]
        if node.id in self.tensors:
            return self.tensors[node.id]
        if node.id in self.sizes:
            return self.sizes[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise Unjudgeable(f"unknown name {node.id}")

    def _Attribute(self, node):
        if node.attr == "T":
            return np.transpose(self.closed(node.value))
        raise Unjudgeable("attribute")

    def _Tuple(self, node):
        return tuple(self.closed(e) for e in node.elts)

    _List = _Tuple

    def _UnaryOp(self, node):
        v = self.closed(node.operand)
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return v
        raise Unjudgeable("unary op")

    def _BinOp(self, node):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise Unjudgeable("binary op")
        a, b = self.closed(node.left), self.closed(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(b, int | float) and abs(b) > 64:
            raise Unjudgeable("huge power")
        try:
            return op(a, b)
        except (ValueError, ZeroDivisionError) as exc:
            raise ClaimRaised(str(exc)) from exc

    def _Compare(self, node):
        if len(node.ops) != 1:
            raise Unjudgeable("chained comparison")
        a, b = self.closed(node.left), self.closed(node.comparators[0])
        try:
            out = _COMPARE[type(node.ops[0])](a, b)
        except ValueError as exc:
            raise ClaimRaised(str(exc)) from exc
        return np.asarray(out, dtype=np.float64) if isinstance(out, np.ndarray) else float(out)

    def _Subscript(self, node):
        if not self.indices and not self.frames:
            raise Unjudgeable("closed-form slicing")
        return self.read(node)

    def _Call(self, node):
        name = ast.unparse(node.func)
        for p in _PREFIXES:
            if name.startswith(p):
                name = name[len(p) :]
                break
        if name == "Sum":
            return self.sum(node)
        if name == "KroneckerDelta":
            a, b = (self.closed(x) for x in node.args)
            return np.asarray(np.equal(a, b), dtype=np.float64)
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise Unjudgeable(f"function {name}")
        args = [self.closed(a) for a in node.args]
        kwargs = {k.arg: self.closed(k.value) for k in node.keywords}
        if any(k is None for k in kwargs):
            raise Unjudgeable("**kwargs")
        args = [
            np.asarray(a, dtype=np.float64) if isinstance(a, int | float) and not isinstance(a, bool) else a
            for a in args
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = fn(*args, **kwargs)
            except (ValueError, RuntimeError, TypeError, IndexError, np.exceptions.AxisError) as exc:
                raise ClaimRaised(f"{name}: {exc}") from exc
        return np.asarray(out, dtype=np.float64)

    # index form
    def read(self, node):
        base = np.asarray(self.closed(node.value), dtype=np.float64)
        entries = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(e, ast.Slice) for e in entries):
            raise Unjudgeable("slice")
        if len(entries) != base.ndim:
            raise ClaimRaised(f"{len(entries)} indices for a {base.ndim}-d array")
        positions, clipped, inside = [], [], True
        for e, n in zip(entries, base.shape, strict=True):
            i = np.asarray(self.closed(e))
            if i.dtype.kind not in "iu":
                raise Unjudgeable("non-integer index")
            ok = (i >= 0) & (i < n)
            positions.append((self.index_names(e), ok))
            clipped.append(np.clip(i, 0, n - 1))
            inside = inside & ok
        if self.frames:
            self.frames[-1].reads.append(positions)
        clipped = np.broadcast_arrays(*clipped) if clipped else []
        value = base[tuple(clipped)] if clipped else base
        return np.where(inside, value, 0.0)

    def index_names(self, node) -> set:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in self.indices}

    def axis_values(self, k: int, values: np.ndarray) -> np.ndarray:
        shape = [1] * self.ndim
        shape[k] = len(values)
        return np.asarray(values, dtype=np.int64).reshape(shape)

    def sum(self, node):
        body, limits = node.args[0], node.args[1:]
        saved = dict(self.indices)
        outer = set(self.indices)
        names, bare, mask = [], [], 1.0
        for k, lim in enumerate(limits):
            axis = self.axes[(id(node), k)]
            if isinstance(lim, ast.Tuple):
                name = lim.elts[0].id
                lo, hi = self.closed(lim.elts[1]), self.closed(lim.elts[2])
                if isinstance(lo, int | np.integer) and isinstance(hi, int | np.integer):
                    values = self.axis_values(axis, np.arange(lo, max(hi + 1, lo)))
                    self.indices[name] = values
                    if hi < lo:
                        mask = 0.0
                else:
                    values = self.axis_values(axis, np.arange(-self.radius, self.radius + 1))
                    self.indices[name] = values
                    mask = mask * ((values >= lo) & (values <= hi))
            else:
                name = lim.id
                self.indices[name] = self.axis_values(axis, np.arange(-self.radius, self.radius + 1))
                bare.append(name)
            names.append((name, axis))
        self.frames.append(_Frame())
        try:
            value = np.asarray(self.closed(body), dtype=np.float64)
            mine = {n for n, _ in names}
            for v in bare:
                guard = False
                using = [r for r in self.frames[-1].reads if any(v in used for used, _ in r)]
                if not using:
                    raise ClaimRaised(f"Sum index {v} used by no read")
                for r in using:
                    one = True
                    for used, ok in r:
                        if v in used:
                            if used - outer - mine:
                                raise Unjudgeable("bound from an inner index")
                            one = one & ok
                    guard = guard | one
                mask = mask * guard
            total = value * mask
            shape = list(np.shape(total)) + [1] * (self.ndim - np.ndim(total))
            total = np.reshape(total, shape) if np.ndim(total) < self.ndim else total
            full = list(total.shape)
            for name, axis in names:
                full[axis] = self.indices[name].shape[axis]
            total = np.broadcast_to(total, full)
            for _, axis in names:
                total = total.sum(axis=axis, keepdims=True)
        finally:
            frame = self.frames.pop()
            if self.frames:
                self.frames[-1].reads.extend(frame.reads)
            self.indices = saved
        return total

    def index_form(self, lhs_indices: list, rhs, shape: tuple):
        """The claimed gradient array of an index-form claim, over the gradient's shape."""
        sums = [(id(n), k) for n in ast.walk(rhs) if _is_sum(n) for k in range(len(n.args) - 1)]
        self.ndim = len(lhs_indices) + len(sums)
        cells = math.prod(shape) * (2 * self.radius + 1) ** len(sums)
        if cells > MAX_GRID:
            raise Unjudgeable(f"index grid of {cells} points")
        self.axes = {key: len(lhs_indices) + j for j, key in enumerate(sums)}
        if len(lhs_indices) != len(shape):
            raise ClaimRaised("wrong number of free indices")
        for k, (name, n) in enumerate(zip(lhs_indices, shape, strict=True)):
            self.indices[name] = self.axis_values(k, np.arange(n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = np.asarray(self.closed(rhs), dtype=np.float64)
        value = np.reshape(value, list(value.shape) + [1] * (self.ndim - value.ndim))
        value = np.broadcast_to(value, tuple(shape) + value.shape[len(shape) :])
        return value.reshape(tuple(shape) + (-1,))[..., 0] if self.ndim > len(shape) else value


def _is_sum(n) -> bool:
    return isinstance(n, ast.Call) and ast.unparse(n.func) == "Sum"


def evaluate_claim(claim: str, wrt: str, shape: tuple, tensors: dict, sizes: dict) -> np.ndarray:
    """The claimed gradient at concrete data (raises ClaimRaised / Unjudgeable).

    >>> evaluate_claim("dx[i] == 2 * a[i]", "x", (2,), {"a": np.array([1.0, 3.0])}, {}).tolist()
    [2.0, 6.0]
    """
    try:
        tree = ast.parse(claim.strip(), mode="eval").body
    except SyntaxError as exc:
        raise Unjudgeable("syntax") from exc
    ev = ClaimEvaluator(tensors, sizes)
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        lhs, rhs = tree.left, tree.comparators[0]
        if isinstance(lhs, ast.Subscript) and ast.unparse(lhs.value) == "d" + wrt:
            entries = lhs.slice.elts if isinstance(lhs.slice, ast.Tuple) else [lhs.slice]
            if not all(isinstance(e, ast.Name) for e in entries):
                raise Unjudgeable("left side")
            return ev.index_form([e.id for e in entries], rhs, shape)
        if isinstance(lhs, ast.Name) and lhs.id == "d" + wrt:
            if any(_is_sum(n) for n in ast.walk(rhs)):
                return ev.index_form([], rhs, shape)
            tree = rhs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ev.closed(tree), dtype=np.float64)


# -- sizes and data ------------------------------------------------------------------------


def _int_value(text: str, sizes: dict):
    ev = ClaimEvaluator({}, sizes)
    return ev.closed(ast.parse(text, mode="eval").body)


def _size_texts(layer, assume) -> list[str]:
    texts = [a.text for a in layer.assumptions if a.kind == "size"]
    names = {str(s) for s in layer.sizes}
    for text in assume:
        used = {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)}
        if used <= names:
            texts.append(text)
    return texts


def sizes_hold(layer, sizes: dict, assume=()) -> bool:
    """Whether concrete sizes satisfy the layer's (and the claim's) size assumptions."""
    if any(v < 1 for v in sizes.values()):
        return False
    return all(bool(_int_value(t, sizes)) for t in _size_texts(layer, assume))


def size_points(layer, assume, count: int, seed: int) -> list[dict]:
    """Sizes satisfying the assumptions: the smallest ones (edges) and a seeded random spread."""
    names = [str(s) for s in layer.sizes]
    top = 6 if len(names) <= 2 else 5 if len(names) <= 3 else 4 if len(names) <= 5 else 3
    if layer.name == "conv2d_nchw_d2":
        top = 5
    ok = []
    for combo in product(range(1, top + 1), repeat=len(names)):
        sizes = dict(zip(names, combo, strict=True))
        if sizes_hold(layer, sizes, assume):
            ok.append(sizes)
    ok.sort(key=lambda s: (sum(s.values()), list(s.values())))
    rng = np.random.default_rng(seed)
    picked = ok[:3]
    rest = ok[3:]
    if rest:
        for j in rng.choice(len(rest), size=min(count - len(picked), len(rest)), replace=False):
            picked.append(rest[int(j)])
    return picked


def _shape(layer, name: str, sizes: dict) -> tuple:
    subs = {s: sizes[str(s)] for s in layer.sizes}
    return tuple(int(e.subs(subs)) for e in layer.inputs[name])


def _tensor_rules(layer, assume) -> list[tuple]:
    """('sum', name, axis) and ('positive', name) rules from the tensor assumptions."""
    texts = [a.text for a in layer.assumptions if a.kind != "size"]
    size_names = {str(s) for s in layer.sizes}
    for text in assume:
        used = {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)}
        if not used <= size_names:
            texts.append(text)
    rules = []
    for text in texts:
        t = ast.parse(text, mode="eval").body
        if not (isinstance(t, ast.Compare) and len(t.ops) == 1):
            raise Unjudgeable(f"assumption {text}")
        left, op, right = t.left, t.ops[0], t.comparators[0]
        if isinstance(op, ast.Gt) and isinstance(left, ast.Name) and ast.unparse(right) == "0":
            rules.append(("positive", left.id))
        elif (
            isinstance(op, ast.Eq)
            and isinstance(left, ast.Call)
            and ast.unparse(left.func) == "sum"
            and ast.unparse(right) == "1"
        ):
            axis = {k.arg: ast.literal_eval(k.value) for k in left.keywords}.get("axis")
            rules.append(("sum", left.args[0].id, axis))
        else:
            raise Unjudgeable(f"assumption {text}")
    return rules


def random_values(layer, sizes: dict, rules, rng, integers: bool = False) -> dict:
    """Random float64 inputs respecting the tensor assumptions (non-symmetric, non-normalised elsewhere)."""
    if integers:
        values = {n: rng.integers(-1, 3, size=_shape(layer, n, sizes)).astype(np.float64) for n in layer.inputs}
    else:
        values = {n: rng.normal(size=_shape(layer, n, sizes)) for n in layer.inputs}
    for rule in rules:
        if rule[0] == "positive":
            values[rule[1]] = np.abs(values[rule[1]]) + 0.1
        else:
            a = rng.uniform(0.1, 1.0, size=values[rule[1]].shape)
            values[rule[1]] = a / a.sum(axis=rule[2], keepdims=rule[2] is not None)
    return values


def values_hold(rules, values: dict) -> bool:
    for rule in rules:
        a = np.asarray(values[rule[1]], dtype=np.float64)
        if rule[0] == "positive" and not np.all(a > 0):
            return False
        if rule[0] == "sum" and not np.allclose(a.sum(axis=rule[2]), 1.0):
            return False
    return True


def true_gradient(layer, values: dict, sizes: dict, g: np.ndarray | None = None):
    """PyTorch autograd of the layer's forward: (gradients by input, g, y as NumPy)."""
    forward = FORWARDS[layer.name]
    ts = {
        n: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=n not in layer.constants)
        for n, v in values.items()
    }
    out = forward(ts, sizes)
    if layer.is_loss:
        loss, g_np = out, None
    else:
        if g is None:
            raise ValueError("g needed")
        g_np = np.asarray(g, dtype=np.float64).reshape(tuple(out.shape))
        loss = (torch.as_tensor(g_np) * out).sum()
    wrts = [n for n in values if n not in layer.constants]
    grads = torch.autograd.grad(loss, [ts[n] for n in wrts], allow_unused=True)
    grads = {n: (np.zeros(values[n].shape) if gr is None else gr.numpy()) for n, gr in zip(wrts, grads, strict=True)}
    return grads, g_np, out.detach().numpy()


@dataclass
class Sample:
    sizes: dict
    tensors: dict  # inputs, g and the output, as NumPy arrays
    grads: dict


_SAMPLES: dict = {}


def layer_samples(layer, assume: tuple, count: int) -> list[Sample]:
    """Cached data and true gradients at ``count`` size points for one layer (and claim assumptions)."""
    key = (layer.name, tuple(assume), count)
    if key in _SAMPLES:
        return _SAMPLES[key]
    seed = zlib.crc32(repr(key).encode())
    rng = np.random.default_rng(seed)
    rules = _tensor_rules(layer, assume)
    out = []
    for j, sizes in enumerate(size_points(layer, assume, count, seed)):
        # the first two points also use small integers: kinks (relu at 0) and ties are seen
        values = random_values(layer, sizes, rules, rng, integers=j < 2)
        g = None
        if not layer.is_loss:
            g = rng.normal(size=_output(layer, values, sizes).shape)
        grads, g_np, y = true_gradient(layer, values, sizes, g)
        tensors = dict(values)
        if g_np is not None:
            tensors["g"] = g_np
        tensors[layer.output] = y
        out.append(Sample(sizes, tensors, grads))
    _SAMPLES[key] = out
    return out


def _output(layer, values, sizes) -> np.ndarray:
    with torch.no_grad():
        ts = {n: torch.tensor(np.asarray(v, dtype=np.float64)) for n, v in values.items()}
        return FORWARDS[layer.name](ts, sizes).numpy()


def mismatch(claim: str, wrt: str, sample: Sample) -> str:
    """'' when the claim equals the true gradient on this sample, else what differs."""
    want = sample.grads[wrt]
    try:
        got = evaluate_claim(claim, wrt, want.shape, sample.tensors, sample.sizes)
    except ClaimRaised as exc:
        return f"claim undefined at {sample.sizes}: {exc}"
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape} at {sample.sizes}"
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        return f"values differ at {sample.sizes}"
    return ""


def judge(layer_name: str, wrt: str, claim: str, assume=(), count: int = 8) -> str:
    """'true', 'false' or 'unjudged' for a claim, settled by torch autograd against the libraries."""
    from symderive.layer import load_layer

    layer = load_layer(layer_name)
    if layer.name not in FORWARDS:
        return "unjudged"
    try:
        samples = layer_samples(layer, tuple(assume), count)
        for s in samples:
            if mismatch(claim, wrt, s):
                return "false"
    except Unjudgeable:
        return "unjudged"
    return "true" if samples else "unjudged"


def _number(v) -> float:
    if isinstance(v, str):
        return float(Fraction(v)) if "/" in v and "(" not in v else float(v)
    return float(v)


def recheck_counterexample(layer_name: str, wrt: str, claim: str, assume, cx) -> str:
    """'' when the counterexample is confirmed independently, else why it fails."""
    from symderive.layer import load_layer

    layer = load_layer(layer_name)
    sizes = {k: int(v) for k, v in cx.sizes.items()}
    if set(sizes) != {str(s) for s in layer.sizes}:
        return f"counterexample sizes {sizes} do not name every size"
    if not sizes_hold(layer, sizes, assume):
        return f"counterexample sizes {sizes} violate the assumptions"
    rules = _tensor_rules(layer, assume)
    rng = np.random.default_rng(0)
    if cx.values:
        values = {
            n: np.vectorize(_number, otypes=[float])(np.asarray(cx.values[n], dtype=object)) for n in layer.inputs
        }
        values = {n: v.reshape(_shape(layer, n, sizes)) for n, v in values.items()}
        if not values_hold(rules, values):
            return f"counterexample values violate the assumptions: {cx.values}"
        g = np.asarray(cx.values["g"], dtype=np.float64) if "g" in cx.values else None
    else:
        values = random_values(layer, sizes, rules, rng)
        g = None if layer.is_loss else rng.normal(size=_output(layer, values, sizes).shape)
    grads, g_np, y = true_gradient(layer, values, sizes, g)
    tensors = dict(values)
    if g_np is not None:
        tensors["g"] = g_np
    tensors[layer.output] = y
    try:
        why = mismatch(claim, wrt, Sample(sizes, tensors, grads))
    except Unjudgeable:
        return ""
    return "" if why else f"claim equals the true gradient at the counterexample {cx.to_json()}"


# -- mutants -------------------------------------------------------------------------------

_SWAPS = {
    "convolve": "correlate",
    "correlate": "convolve",
    "convolve2d": "correlate2d",
    "correlate2d": "convolve2d",
    "conv1d": "conv_transpose1d",
    "conv_transpose1d": "conv1d",
    "conv2d": "conv_transpose2d",
    "conv_transpose2d": "conv2d",
    "sum": "mean",
    "mean": "sum",
    "softmax": "log_softmax",
}
_CMP_SWAP = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt}
_OPTIONS = ("axis", "keepdims", "stride", "padding", "dilation", "groups", "output_padding", "axes")


def _num(v):
    return ast.Constant(v)


def _parents(tree) -> dict:
    out = {}
    for p in ast.walk(tree):
        for f, v in ast.iter_fields(p):
            if isinstance(v, list):
                for j, c in enumerate(v):
                    if isinstance(c, ast.AST):
                        out[id(c)] = (p, f, j)
            elif isinstance(v, ast.AST):
                out[id(v)] = (p, f, None)
    return out


def _replace(tree, k: int, new) -> ast.AST:
    tree = copy.deepcopy(tree)
    nodes = list(ast.walk(tree))
    target = nodes[k]
    if k == 0:
        return new
    parent, f, j = _parents(tree)[id(target)]
    if j is None:
        setattr(parent, f, new)
    else:
        getattr(parent, f)[j] = new
    return tree


def _node_mutations(node, tensors: set, ctx: dict) -> list[tuple[str, ast.AST]]:
    out = []
    c = copy.deepcopy
    if isinstance(node, ast.Name) and node.id in tensors and ctx.get("role") == "value":
        out.append(("flip added", ast.Call(ast.Name("flip"), [c(node)], [])))
        out.append(("transpose added", ast.Attribute(c(node), "T")))
    if isinstance(node, ast.Attribute) and node.attr == "T":
        out.append(("transpose removed", c(node.value)))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
        name = ast.unparse(node.func).split(".")[-1]
        if name in ("flip", "transpose") and node.args:
            out.append((f"{name} removed", c(node.args[0])))
        if name in _SWAPS:
            new = c(node)
            new.func = ast.Name(_SWAPS[name])
            kind = "convolve<->correlate" if "conv" in name or "corr" in name else "function swapped"
            out.append((kind, new))
        if len(node.args) >= 2 and name not in ("Sum", "where", "einsum"):
            new = c(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            out.append(("arguments swapped", new))
        for j, kw in enumerate(node.keywords):
            if kw.arg in _OPTIONS:
                new = c(node)
                del new.keywords[j]
                out.append((f"{kw.arg} removed", new))
            if kw.arg == "axis":
                for a in (0, 1, -1, None, 2):
                    if ast.unparse(kw.value) != repr(a):
                        new = c(node)
                        new.keywords[j].value = _num(a)
                        out.append(("axis changed", new))
        if name in ("sum", "mean", "softmax", "log_softmax", "flip", "var") and not any(
            k.arg == "axis" for k in node.keywords
        ):
            for a in (0, 1, -1):
                new = c(node)
                new.keywords.append(ast.keyword("axis", _num(a)))
                out.append(("axis changed", new))
    if isinstance(node, ast.Constant):
        if node.value in _MODES:
            for m in _MODES:
                if m != node.value:
                    out.append(("mode changed", ast.Constant(m)))
        elif isinstance(node.value, int | float) and not isinstance(node.value, bool) and ctx.get("role") != "index":
            out.append(("constant changed", _num(node.value + 1)))
            if node.value >= 2:
                out.append(("constant changed", _num(node.value - 1)))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub) and ctx.get("role") != "index":
            flipped = ast.BinOp(c(node.left), ast.Sub() if isinstance(node.op, ast.Add) else ast.Add(), c(node.right))
            out.append(("sign flipped", flipped))
            out.append(("term dropped", c(node.left)))
            right = c(node.right)
            out.append(("term dropped", ast.UnaryOp(ast.USub(), right) if isinstance(node.op, ast.Sub) else right))
            out.append(
                ("term doubled", ast.BinOp(ast.BinOp(_num(2), ast.Mult(), c(node.left)), node.op, c(node.right)))
            )
            out.append(
                ("term doubled", ast.BinOp(c(node.left), node.op, ast.BinOp(_num(2), ast.Mult(), c(node.right))))
            )
        if isinstance(node.op, ast.MatMult | ast.Div):
            out.append(("arguments swapped", ast.BinOp(c(node.right), node.op, c(node.left))))
        if isinstance(node.op, ast.Mult | ast.Div) and ctx.get("role") != "index":
            out.append(("term dropped", c(node.left)))
            if isinstance(node.op, ast.Mult):
                out.append(("term dropped", c(node.right)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append(("sign flipped", c(node.operand)))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_SWAP:
        new = c(node)
        new.ops = [_CMP_SWAP[type(node.ops[0])]()]
        out.append(("comparison changed", new))
    if ctx.get("role") == "index":
        out.append(("index shifted", ast.BinOp(c(node), ast.Add(), _num(1))))
        out.append(("index shifted", ast.BinOp(c(node), ast.Sub(), _num(1))))
    if ctx.get("role") == "bound":
        out.append(("bound moved", ast.BinOp(c(node), ast.Add(), _num(1))))
        out.append(("bound moved", ast.BinOp(c(node), ast.Sub(), _num(1))))
    return out


def _roles(tree) -> dict:
    """id(node) -> {'role': 'value' | 'index' | 'bound' | 'lhs' | 'other'}."""
    roles = {}
    for n in ast.walk(tree):
        roles.setdefault(id(n), {"role": "value"})
    root = tree
    if isinstance(root, ast.Compare) and isinstance(root.left, ast.Subscript | ast.Name):
        for n in ast.walk(root.left):
            roles[id(n)] = {"role": "lhs"}
    for n in ast.walk(tree):
        if isinstance(n, ast.Subscript) and roles[id(n)]["role"] != "lhs":
            entries = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            for e in entries:
                for m in ast.walk(e):
                    roles[id(m)] = {"role": "other"}
                roles[id(e)] = {"role": "index"}
            if isinstance(n.slice, ast.Tuple):
                roles[id(n.slice)] = {"role": "other"}
        if _is_sum(n):
            for lim in n.args[1:]:
                for m in ast.walk(lim):
                    roles[id(m)] = {"role": "other"}
                if isinstance(lim, ast.Tuple):
                    for b in lim.elts[1:]:
                        roles[id(b)] = {"role": "bound"}
        if isinstance(n, ast.Call):
            roles[id(n.func)] = {"role": "other"}
            for m in ast.walk(n.func):
                roles[id(m)] = {"role": "other"}
        if isinstance(n, ast.keyword):
            for m in ast.walk(n.value):
                if roles[id(m)]["role"] == "value" and isinstance(m, ast.Name):
                    roles[id(m)] = {"role": "other"}
    return roles


def mutants(claim: str, tensors: set, wrt: str | None = None) -> list[tuple[str, str]]:
    """(kind, mutant text) for every single AST rewrite of the claim, deduplicated.

    With ``wrt``, also the claim plus a term that is zero except where it is undefined
    (``0 * log(x)``: NumPy's nan at x <= 0), which SymPy's simplification must not erase.

    >>> ("convolve<->correlate", "correlate(g, w, 'full')") in mutants("convolve(g, w, 'full')", {"g", "w"})
    True
    """
    tree = ast.parse(claim, mode="eval").body
    roles = _roles(tree)
    seen = {ast.unparse(tree)}
    out = []
    nodes = list(ast.walk(tree))
    for k, node in enumerate(nodes):
        for kind, new in _node_mutations(node, tensors, roles.get(id(node), {})):
            text = ast.unparse(ast.fix_missing_locations(_replace(tree, k, new)))
            if text not in seen:
                seen.add(text)
                out.append((kind, text))
    is_index = isinstance(tree, ast.Compare) and isinstance(tree.left, ast.Subscript)
    if not is_index:
        text = ast.unparse(ast.UnaryOp(ast.USub(), copy.deepcopy(tree)))
        if text not in seen:
            out.append(("sign flipped", text))
        if wrt is not None:
            body = ast.unparse(tree)
            for term in (f"0 * log({wrt})", f"sqrt({wrt}) - sqrt({wrt})", f"0 / {wrt}"):
                out.append(("undefined term added", f"{body} + {term}"))
    return out


def base_claims() -> list[tuple[str, str, str, tuple]]:
    """Every true claim the project knows: built-in layers' proved claims and the extra spellings."""
    from symderive.layer import builtin_layer_names, load_layer

    out = []
    for name in builtin_layer_names():
        for c in load_layer(name).claims:
            if c.expect == "proved":
                out.append((name, c.wrt, c.claim, tuple(c.assume)))
    return out + [(a, b, c, tuple(d)) for a, b, c, d in EXTRA_CLAIMS]


# -- running the prover --------------------------------------------------------------------


@dataclass
class Result:
    layer: str
    wrt: str
    claim: str
    kind: str
    truth: str  # true | false | unjudged
    verdict: str  # proved | refuted | unknown | invalid | crash
    note: str = ""
    recheck: str = ""
    seconds: float = 0.0


def run_one(job) -> Result:
    """Judge one mutant independently, prove it, re-check any counterexample."""
    from symderive.cli import ClaimTimeout, wall_clock
    from symderive.errors import InputError
    from symderive.prove import prove

    layer, wrt, claim, assume, kind, count, timeout = job
    t0 = time.perf_counter()
    truth = judge(layer, wrt, claim, assume, count)
    note, recheck = "", ""
    try:
        with wall_clock(timeout):
            v = prove(layer, wrt, claim, assume=list(assume))
        verdict = v.verdict
        note = v.reason
        if verdict == "refuted" and v.counterexample is not None:
            try:
                recheck = recheck_counterexample(layer, wrt, claim, assume, v.counterexample)
            except Exception as exc:  # a re-check that cannot run is itself suspicious
                recheck = f"re-check raised {exc!r}"
    except ClaimTimeout:
        verdict, note = "unknown", "timeout"
    except InputError as exc:
        verdict, note = "invalid", str(exc)
    except Exception as exc:  # a crash of the prover is a bug, kept for the report
        verdict, note = "crash", f"{type(exc).__name__}: {exc}"
    if truth == "true" and verdict == "refuted" and v.counterexample is not None and recheck == "":
        # the campaign's sampled sizes missed the difference, and the prover's counterexample
        # is confirmed by the same independent oracle at its own sizes and values: it is false
        truth, note = "false", "false at sizes the campaign did not sample (prover's counterexample re-checked)"
    return Result(layer, wrt, claim, kind, truth, verdict, note, recheck, time.perf_counter() - t0)


def jobs(size: str) -> list[tuple]:
    """The campaign's mutants as jobs (small: a deterministic spread over the base claims)."""
    from symderive.layer import load_layer

    count = 6 if size == "full" else 5
    timeout = PROVE_TIMEOUT[size]
    out = []
    for number, (layer, wrt, claim, assume) in enumerate(base_claims()):
        lay = load_layer(layer)
        tensors = set(lay.inputs) | {lay.output} | ({"g"} if not lay.is_loss else set())
        ms = mutants(claim, tensors, wrt)
        if size == "small":
            # one mutant per base claim, spread over the mutation kinds: ~100 in all
            ms = [ms[(7 * number) % len(ms)]] if ms else []
        out += [(layer, wrt, text, assume, kind, count, timeout) for kind, text in ms]
    return out


def summarise(results: list[Result], seconds: float) -> dict:
    judged = [r for r in results if r.truth != "unjudged" and r.verdict not in ("invalid",)]
    false = [r for r in judged if r.truth == "false"]
    true = [r for r in judged if r.truth == "true"]
    return {
        "mutants tried": len(results),
        "invalid (input errors)": sum(r.verdict == "invalid" for r in results),
        "unjudged (campaign evaluator)": sum(r.truth == "unjudged" and r.verdict != "invalid" for r in results),
        "false": len(false),
        "false proved (MUST be 0)": sum(r.verdict == "proved" for r in false),
        "false refuted": sum(r.verdict == "refuted" for r in false),
        "false unknown": sum(r.verdict == "unknown" for r in false),
        "true": len(true),
        "true proved": sum(r.verdict == "proved" for r in true),
        "true unknown": sum(r.verdict == "unknown" for r in true),
        "true refuted (bug)": sum(r.verdict == "refuted" for r in true),
        "false only at unsampled sizes (re-checked)": sum("did not sample" in r.note for r in false),
        "crashes (bug)": sum(r.verdict == "crash" for r in results),
        "counterexamples failing re-check (bug)": sum(bool(r.recheck) for r in results),
        "seconds": round(seconds, 1),
    }


def _worker_init() -> None:
    import resource

    torch.set_num_threads(1)
    # a runaway mutant must end in MemoryError (reported as a crash), not in the OOM killer
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))


def campaign(size: str = "full", processes: int = 2) -> tuple[dict, list[Result]]:
    """Run the campaign; returns the figures and every result."""
    t0 = time.perf_counter()
    work = jobs(size)
    if processes > 1:
        # spawn, not fork: a forked child of a process that already ran torch can deadlock
        with multiprocessing.get_context("spawn").Pool(processes, initializer=_worker_init) as pool:
            pending = [(j, pool.apply_async(run_one, (j,))) for j in work]
            results = []
            for j, r in pending:
                try:
                    results.append(r.get(timeout=JOB_WAIT))
                except multiprocessing.TimeoutError:
                    # the worker died or hung: a bug of the prover or of the campaign, kept visible
                    results.append(Result(j[0], j[1], j[2], j[4], "unjudged", "crash", "worker lost (killed or hung)"))
    else:
        results = [run_one(j) for j in work]
    return summarise(results, time.perf_counter() - t0), results


def bugs(results: list[Result]) -> list[Result]:
    """The results that show a bug: false proved, true refuted, crash, failed re-check."""
    return [
        r
        for r in results
        if (r.truth == "false" and r.verdict == "proved")
        or (r.truth == "true" and r.verdict == "refuted")
        or r.verdict == "crash"
        or r.recheck
    ]


def main(size: str = "full", processes: int = 2) -> dict:
    """Run and print the campaign's figures and every bug found."""
    figures, results = campaign(size, processes)
    for k, v in figures.items():
        print(f"{k:>42}: {v}")
    false = figures["false"]
    if false:
        print(f"{'false refuted (share)':>42}: {figures['false refuted'] / false:.1%}")
    for r in bugs(results):
        print(f"BUG [{r.truth} -> {r.verdict}] {r.layer} --wrt {r.wrt} {r.claim!r}: {r.note or r.recheck}")
    for r in results:
        if r.truth == "false" and r.verdict == "unknown":
            print(f"false unknown: {r.layer} --wrt {r.wrt} {r.claim!r}: {r.note}")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    a = parser.parse_args()
    main("small" if a.small else "full", a.processes)
    sys.exit(0)
