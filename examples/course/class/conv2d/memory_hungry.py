"""Bug: builds a dense matrix of every pair of positions, far too large."""

import numpy as np


def conv2d_backward_x(g, w):
    table = np.ones((40_000, 40_000))
    return table[: g.shape[0], : g.shape[1]]
