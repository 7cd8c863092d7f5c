"""Bob's conv2d backward (NumPy only)."""

import numpy as np


def conv2d_backward_x(g, w):
    """dL/dx: slide the kernel over the zero-padded upstream gradient."""
    kh, kw = w.shape
    padded = np.pad(g, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    dx = np.zeros((g.shape[0] + kh - 1, g.shape[1] + kw - 1))
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = np.sum(padded[i : i + kh, j : j + kw] * w)  # the kernel should be flipped here
    return dx
