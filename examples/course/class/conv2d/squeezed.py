"""Bug: squeezes the result, so a dimension of size 1 disappears."""

import numpy as np
from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return np.squeeze(convolve(g, w, "full"))
