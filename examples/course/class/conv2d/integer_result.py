"""Bug: rounds the gradient to integers."""

import numpy as np
from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return np.rint(convolve(g, w, "full")).astype(np.int64)
