"""Alice's conv2d backward (NumPy only)."""

import numpy as np


def conv2d_backward_x(g, w):
    """dL/dx of y = correlate(x, w, 'valid') + b, given g = dL/dy.

    Every output y[i, j] read x[i + m, j + n] with weight w[m, n], so x[p, q] collects
    g[p - m, q - n] * w[m, n]: a full convolution of g with w.
    """
    kh, kw = w.shape
    dx = np.zeros((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for m in range(kh):
        for n in range(kw):
            dx[m : m + g.shape[0], n : n + g.shape[1]] += w[m, n] * g
    return dx
