"""Correct: every x[i + m, j + n] collects g[i, j] * w[m, n] (four loops)."""

import numpy as np


def conv2d_backward_x(g, w):
    kh, kw = w.shape
    dx = np.zeros((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            for m in range(kh):
                for n in range(kw):
                    dx[i + m, j + n] += g[i, j] * w[m, n]
    return dx
