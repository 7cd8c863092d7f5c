"""Benchmark: symderive's emitted NumPy code against SciPy, PyTorch CPU and hand-written NumPy.

Run ``python benchmarks/codegen.py`` (or ``python benchmarks/codegen.py softmax linear`` for the cases whose
label contains one of those words). Cases: the seed conv2d at 512x512 (5x5) and 64x64 (3x3),
linear at 1024x1024, softmax cross-entropy on 1000 classes, conv2d_nchw 8x64x56x56 (3x3),
and the batched layers linear_batched (256x1024, W 1024x1024) and log_softmax_nll (256x1000).
For each case and dtype it prints the best-of-N time (``time.perf_counter``; the
implementations of a pass timed in interleaved rounds) of the forward pass and of the
whole backward pass (every gradient), the ratio emitted / fastest peer (torch with its default threads), torch again on one thread
(shown for comparison, not a peer of the ratio: NumPy's elementwise passes use one core), and a rate:
GFLOP/s beside this machine's NumPy 1024x1024 GEMM rate for GEMM-shaped work
(convolutions, batched linear; the batched convolution also beside the rate of its im2col-shaped
GEMM), GB/s beside a NumPy array copy's rate for memory-bound work (matrix-vector, outer
product, softmax). All rates are measured in the same run,
the reference one again just before each row. On a machine busy with other processes,
threaded BLAS and torch stall (the same GEMM takes a scheduler slice, whatever its size);
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/codegen.py`` then gives
single-threaded figures that compare like with like.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F

from symderive.codegen import emit_numpy
from symderive.layer import load_layer

torch.set_num_threads(torch.get_num_threads())


def best_time(fn, budget: float = 0.25, max_runs: int = 200) -> float:
    """The best of N wall-clock times of ``fn()``, N chosen to fit a time budget."""
    fn()  # warm-up
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or (spent < budget and runs < max_runs):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best


def best_times(fns: dict, budget: float = 0.4, max_runs: int = 400) -> dict:
    """The best of N wall-clock times of each of ``fns`` (name -> callable), timed in interleaved rounds.

    Interleaving puts every implementation under the same load when the machine is busy (a
    threaded BLAS stalls while other processes hold the cores), so a ratio compares like with like.
    ``budget`` is the time allowed per implementation.
    """
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    spent, runs = 0.0, 0
    while runs < 3 or (spent < budget * len(fns) and runs < max_runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            best[name], spent = min(best[name], elapsed), spent + elapsed
        runs += 1
    return best


GEMM_N = 1024
COPY_ITEMS = 8 * 2**20


def gemm_reference(dtype):
    """(a 1024x1024 NumPy matrix product as a callable, its flops)."""
    a, b = np.random.default_rng(0).standard_normal((2, GEMM_N, GEMM_N)).astype(dtype)
    return (lambda: a @ b), 2 * GEMM_N**3


def copy_reference(dtype):
    """(a NumPy array copy of 64 MiB of float64 as a callable, the bytes it reads and writes)."""
    src = np.random.default_rng(0).standard_normal(COPY_ITEMS).astype(dtype)
    dst = np.empty_like(src)
    return (lambda: np.copyto(dst, src)), 2 * src.nbytes


def gemm_rate(dtype) -> float:
    """GFLOP/s of a 1024x1024 NumPy matrix product."""
    fn, flops = gemm_reference(dtype)
    return flops / best_time(fn, budget=1.0) / 1e9


def shaped_gemm_rate(dtype, m: int, k: int, n: int) -> float:
    """GFLOP/s of a NumPy (m x k) @ (k x n) product: the ceiling for a convolution lowered to that GEMM."""
    a = np.random.default_rng(0).standard_normal((m, k)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((k, n)).astype(dtype)
    return 2 * m * k * n / best_time(lambda: a @ b, budget=1.0) / 1e9


def copy_rate(dtype) -> float:
    """GB/s (read + write) of a NumPy array copy of 8 Mi elements."""
    fn, nbytes = copy_reference(dtype)
    return nbytes / best_time(fn, budget=1.0) / 1e9


#: the seeds' claims, so the timed code is the proved closed form (emit_numpy refuses unproved ones)
CLAIMS = {
    "conv2d": {"x": "convolve(g, w, 'full')", "w": "correlate(x, g, 'valid')", "b": "sum(g)"},
    "linear": {"x": "transpose(w) @ g", "w": "outer(g, x)", "b": "g"},
    "softmax_cross_entropy": {"s": "softmax(s) - t"},
    "conv2d_nchw": {
        "x": "conv_transpose2d(g, w)",
        "w": "transpose(conv2d(transpose(x, (1, 0, 2, 3)), transpose(g, (1, 0, 2, 3))), (1, 0, 2, 3))",
        "b": "sum(g, axis=(0, 2, 3))",
    },
}


#: batched built-in layers timed with their own known claims (the ones that prove)
LAYERS = ("linear_batched", "log_softmax_nll")


def load(layer: str, claims: dict | None = None) -> dict:
    """The namespace of the module emitted (and checked) for a built-in layer."""
    namespace: dict = {"__name__": f"emitted_{layer}"}
    source = emit_numpy(load_layer(layer), claims=claims)
    exec(compile(source, f"<emitted {layer}>", "exec"), namespace)  # noqa: S102 -- our generated code
    return namespace


# -- the cases: (inputs, forward and backward for each implementation, work) ------------------------


def conv_case(H, W, k, dtype, m):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((H, W)).astype(dtype), rng.standard_normal((k, k)).astype(dtype)
    b = np.asarray(0.3, dtype=dtype)
    g = rng.standard_normal((H - k + 1, W - k + 1)).astype(dtype)
    tx, tw, tg, tb = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, w, g, b))

    def np_corr_valid(a, kern):
        win = np.lib.stride_tricks.sliding_window_view(a, kern.shape)
        return np.tensordot(win, kern, axes=((2, 3), (0, 1)))

    impls = {
        "emitted": (
            lambda: m["forward"](x=x, w=w, b=b),
            lambda: (m["grad_x"](w=w, g=g), m["grad_w"](x=x, g=g), m["grad_b"](g=g)),
        ),
        "scipy": (
            lambda: scipy.signal.correlate(x, w, "valid") + b,
            lambda: (scipy.signal.convolve(g, w, "full"), scipy.signal.correlate(x, g, "valid"), g.sum()),
        ),
        "torch": (
            lambda: F.conv2d(tx[None, None], tw[None, None])[0, 0] + tb,
            lambda: (
                F.conv_transpose2d(tg[None, None], tw[None, None])[0, 0],
                F.conv2d(tx[None, None], tg[None, None])[0, 0],
                tg.sum(),
            ),
        ),
        "numpy": (
            lambda: np_corr_valid(x, w) + b,
            lambda: (np_corr_valid(np.pad(g, k - 1), w[::-1, ::-1]), np_corr_valid(x, g), g.sum()),
        ),
    }
    out = (H - k + 1) * (W - k + 1)
    flops = (2 * out * k * k, 2 * H * W * k * k + 2 * out * k * k + out)
    return impls, ("GFLOP/s", flops)


def nchw_case(n, c, hw, o, k, pad, dtype, m):
    """Batched multi-channel conv2d (issue 9's GEMM-shaped case): stride 1, zero padding ``pad``.

    The built-in layer has padding 0, so the emitted code gets the input already padded (a [N, C, H + 2p, W + 2p]
    array: the same output, the same GEMM); torch gets the unpadded input with ``padding=pad``.
    """
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    w = (rng.standard_normal((o, c, k, k)) / (c * k * k) ** 0.5).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    out = hw + 2 * pad - k + 1
    g = rng.standard_normal((n, o, out, out)).astype(dtype)
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))

    impls = {
        "emitted": (
            lambda: m["forward"](x=xp, w=w, b=b),
            lambda: (m["grad_x"](w=w, g=g), m["grad_w"](x=xp, g=g), m["grad_b"](g=g)),
        ),
        "torch": (
            lambda: F.conv2d(tx, tw, tb, padding=pad),
            lambda: (
                torch.nn.grad.conv2d_input(tx.shape, tw, tg, padding=pad),
                torch.nn.grad.conv2d_weight(tx, tw.shape, tg, padding=pad),
                tg.sum((0, 2, 3)),
            ),
        ),
    }
    gemm_flops = 2 * n * o * out * out * c * k * k
    # the im2col GEMM's shape: the rate of that product is a second, shape-matched reference
    return impls, ("GFLOP/s", (gemm_flops, 2 * gemm_flops), (o, c * k * k, n * out * out))


def linear_case(n, m_, dtype, m):
    rng = np.random.default_rng(2)
    x, w, b, g = (rng.standard_normal(s).astype(dtype) for s in ((n,), (m_, n), (m_,), (m_,)))
    tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
    impls = {
        "emitted": (
            lambda: m["forward"](x=x, w=w, b=b),
            lambda: (m["grad_x"](w=w, g=g), m["grad_w"](x=x, g=g), m["grad_b"](g=g)),
        ),
        "torch": (lambda: F.linear(tx, tw, tb), lambda: (tw.T @ tg, torch.outer(tg, tx), tg)),
        "numpy": (lambda: w @ x + b, lambda: (g @ w, np.multiply.outer(g, x), g)),
    }
    item = np.dtype(dtype).itemsize
    nbytes = (m_ * n * item, 2 * m_ * n * item)  # forward reads W; backward reads W and writes dW
    return impls, ("GB/s", nbytes)


def linear_batched_case(n, i, o, dtype, m):
    """``y = x @ w.T + b`` on a batch: three GEMMs (forward, dx, dw) of 2*N*I*O flops each."""
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, i), (o, i), (o,)))
    g = rng.standard_normal((n, o)).astype(dtype)
    tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
    impls = {
        "emitted": (
            lambda: m["forward"](x=x, w=w, b=b),
            lambda: (m["grad_x"](w=w, g=g), m["grad_w"](x=x, g=g), m["grad_b"](g=g)),
        ),
        "torch": (lambda: F.linear(tx, tw, tb), lambda: (tg @ tw, tg.T @ tx, tg.sum(0))),
        "numpy": (lambda: x @ w.T + b, lambda: (g @ w, g.T @ x, g.sum(0))),
    }
    gemm_flops = 2 * n * i * o
    return impls, ("GFLOP/s", (gemm_flops + n * o, 2 * gemm_flops + n * o))


def log_softmax_nll_case(n, k, dtype, m):
    """``F.cross_entropy`` with probability targets, mean over the batch: memory-bound over s and t."""
    rng = np.random.default_rng(6)
    s = (3 * rng.standard_normal((n, k))).astype(dtype)
    t = rng.uniform(0.1, 1, (n, k))
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    ts, tt = torch.from_numpy(s), torch.from_numpy(t)

    def np_forward():
        z = s - s.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -(t * (z - lse)).sum() / n

    def np_backward():
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True) - t) / n

    impls = {
        "emitted": (lambda: m["forward"](s=s, t=t), lambda: m["grad_s"](s=s, t=t)),
        "scipy": (
            lambda: -(t * scipy.special.log_softmax(s, axis=1)).sum(axis=1).mean(),
            lambda: (scipy.special.softmax(s, axis=1) - t) / n,
        ),
        "torch": (lambda: F.cross_entropy(ts, tt), lambda: (torch.softmax(ts, 1) - tt) / n),
        "numpy": (np_forward, np_backward),
    }
    item = np.dtype(dtype).itemsize
    return impls, ("GB/s", (2 * n * k * item, 3 * n * k * item))  # forward reads s, t; backward also writes ds


def softmax_case(n, dtype, m):
    rng = np.random.default_rng(3)
    s = (3 * rng.standard_normal(n)).astype(dtype)
    t = rng.uniform(0.1, 1, n)
    t = (t / t.sum()).astype(dtype)
    ts, tt = torch.from_numpy(s), torch.from_numpy(t)

    def np_forward():
        z = s - s.max()
        return -(t * (z - np.log(np.exp(z).sum()))).sum()

    def np_backward():
        e = np.exp(s - s.max())
        return e / e.sum() - t

    impls = {
        "emitted": (lambda: m["forward"](s=s, t=t), lambda: m["grad_s"](s=s, t=t)),
        "scipy": (
            lambda: -(t * scipy.special.log_softmax(s)).sum(),
            lambda: scipy.special.softmax(s) - t,
        ),
        "torch": (lambda: -(tt * torch.log_softmax(ts, 0)).sum(), lambda: torch.softmax(ts, 0) - tt),
        "numpy": (np_forward, np_backward),
    }
    item = np.dtype(dtype).itemsize
    return impls, ("GB/s", (2 * n * item, 3 * n * item))


def main(only: list[str] | None = None) -> None:
    """Time every case (or those whose label contains one of ``only``) in float64 then float32."""
    t0 = time.perf_counter()
    modules = {name: load(name, claims) for name, claims in CLAIMS.items()}
    modules.update({name: load(name) for name in LAYERS})
    print(
        f"emitted and checked {len(modules)} modules in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}"
        f"; {os.cpu_count()} CPUs, load average {_load()}{_busy_warning()}"
    )
    peers = ("scipy", "torch", "numpy")
    cases = [
        ("conv2d 512x512 k5", lambda d: conv_case(512, 512, 5, d, modules["conv2d"])),
        ("conv2d 64x64 k3", lambda d: conv_case(64, 64, 3, d, modules["conv2d"])),
        ("linear 1024x1024", lambda d: linear_case(1024, 1024, d, modules["linear"])),
        ("softmax CE 1000", lambda d: softmax_case(1000, d, modules["softmax_cross_entropy"])),
        ("conv2d 8x64x56x56 k3", lambda d: nchw_case(8, 64, 56, 64, 3, 1, d, modules["conv2d_nchw"])),
        ("linear 256x1024x1024", lambda d: linear_batched_case(256, 1024, 1024, d, modules["linear_batched"])),
        ("log_softmax_nll 256x1000", lambda d: log_softmax_nll_case(256, 1000, d, modules["log_softmax_nll"])),
    ]
    cases = [(label, make) for label, make in cases if not only or any(word in label for word in only)]
    for dtype in (np.float64, np.float32):
        gemm, copy = gemm_rate(dtype), copy_rate(dtype)
        references = {"GFLOP/s": gemm_reference(dtype), "GB/s": copy_reference(dtype)}
        name = np.dtype(dtype).name
        print(f"\n== {name}: NumPy GEMM {gemm:.1f} GFLOP/s, NumPy copy {copy:.1f} GB/s ==")
        print("   (each row's reference rate, GEMM or copy, is re-measured just before its timings)")
        shaped = shaped_gemm_rate(dtype, 256, 1024, 1024)
        print(f"   (NumPy GEMM of the batched linear's shape, 256x1024 @ 1024x1024: {shaped:.1f} GFLOP/s)")
        shaped = shaped_gemm_rate(dtype, 64, 64 * 9, 8 * 56 * 56)
        print(f"   (NumPy GEMM of the 8x64x56x56 conv's im2col shape, 64x576 @ 576x25088: {shaped:.1f} GFLOP/s)")
        np_exp, torch_exp = exp_times(dtype)
        print(
            f"   (exp of 256x1000, the log-softmax NLL's kernel: NumPy {_fmt(np_exp)}, torch on one thread "
            f"{_fmt(torch_exp)}; NumPy's SIMD exp needs AVX-512 for float64)"
        )
        head = f"{'case':<26}{'pass':<9}{'emitted':>11}" + "".join(f"{p:>11}" for p in (*peers, "torch 1t"))
        print(head + f"{'ratio':>8}  rate (emitted)")
        for label, make in cases:
            impls, (unit, work, *gemm_shape) = make(dtype)
            shaped = shaped_gemm_rate(dtype, *gemm_shape[0]) if gemm_shape else None
            for k, pass_name in enumerate(("forward", "backward")):
                reference, reference_work = references[unit]
                # re-measured beside each row (not interleaved: its 16-64 MiB would evict the case's data)
                reference_rate = reference_work / best_time(reference, budget=0.3) / 1e9
                times = best_times({p: impl[k] for p, impl in impls.items()})
                times["torch 1t"] = torch_one_thread_time(impls["torch"][k])
                best_peer = min(times[p] for p in peers if p in times)
                ratio = times["emitted"] / best_peer
                rate = work[k] / times["emitted"] / 1e9
                kind = "GEMM" if unit == "GFLOP/s" else "copy"
                ref = f"{rate / reference_rate:.0%} of {kind} {reference_rate:.1f}"
                if shaped:
                    ref += f", {rate / shaped:.0%} of the im2col-shape GEMM {shaped:.1f}"
                cells = "".join(f"{_fmt(times.get(p)):>11}" for p in (*peers, "torch 1t"))
                print(
                    f"{label:<26}{pass_name:<9}{_fmt(times['emitted']):>11}{cells}{ratio:>8.2f}  {rate:.2f} {unit} ({ref})"
                )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {_load()}")


def exp_times(dtype) -> tuple[float, float]:
    """(NumPy, torch on one thread) best times of exp over a 256x1000 array, into a preallocated output: the
    floor of the log-softmax NLL's passes, each of which exponentiates every element once."""
    a = np.random.default_rng(0).standard_normal((256, 1000)).astype(dtype)
    out, ta = np.empty_like(a), torch.from_numpy(a)
    tout = torch.empty_like(ta)
    times = best_times({"numpy": lambda: np.exp(a, out=out)})
    return times["numpy"], torch_one_thread_time(lambda: torch.exp(ta, out=tout))


def torch_one_thread_time(fn) -> float:
    """The best time of a torch callable on one thread, as NumPy's ufuncs run (shown, not a peer of the ratio).

    The ratio is against torch as users run it (all cores); this column shows how much of a gap
    is torch's second thread, which NumPy's elementwise passes do not have.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return best_time(fn, budget=0.3)
    finally:
        torch.set_num_threads(threads)


def _busy_warning() -> str:
    if os.getloadavg()[0] < (os.cpu_count() or 1):
        return ""
    return (
        "\n  busy machine: threaded BLAS and torch stall for scheduler slices; for steadier figures run with"
        " OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
    )


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _fmt(t) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    return f"{t * 1e3:.2f} ms"


if __name__ == "__main__":
    main(sys.argv[1:])
