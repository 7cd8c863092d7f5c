"""Correct: pad g by the kernel size minus one, slide the flipped kernel over it."""

import numpy as np


def conv2d_backward_x(g, w):
    kh, kw = w.shape
    padded = np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    flipped = w[::-1, ::-1]
    dx = np.empty((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = np.sum(padded[i : i + kh, j : j + kw] * flipped)
    return dx
