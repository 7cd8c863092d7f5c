"""Hand-written backward passes to check with `symderive check` (one right, one with a bug each)."""

import numpy as np


def rms_norm_dx(*, x, gamma, eps, g):
    """The RMSNorm input gradient, r = sqrt(mean(x**2) + eps) per row."""
    r = np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps)
    gg = g * gamma
    return gg / r - x * np.mean(gg * x, axis=-1, keepdims=True) / r**3


def rms_norm_dx_sum(*, x, gamma, eps, g):
    """The same with a sum where the mean belongs (the 1/D factor lost)."""
    r = np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps)
    gg = g * gamma
    return gg / r - x * np.sum(gg * x, axis=-1, keepdims=True) / r**3


def residual_dx(*, x, w, b, g):
    """The residual block's input gradient: the skip connection plus the ReLU branch."""
    return g + w.T @ (g * (w @ x + b > 0))


def residual_dx_no_skip(*, x, w, b, g):
    """The same without the skip connection."""
    return w.T @ (g * (w @ x + b > 0))
