"""Bug: g padded by the kernel size instead of the kernel size minus one (the windows are shifted)."""

import numpy as np


def conv2d_backward_x(g, w):
    kh, kw = w.shape
    padded = np.pad(g, ((kh, kh), (kw, kw)))
    flipped = w[::-1, ::-1]
    dx = np.empty((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = np.sum(padded[i : i + kh, j : j + kw] * flipped)
    return dx
