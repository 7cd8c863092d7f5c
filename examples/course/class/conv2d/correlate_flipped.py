"""Correct: a full correlation with the flipped kernel is the full convolution."""

import numpy as np
from scipy.signal import correlate


def conv2d_backward_x(g, w):
    return correlate(g, np.flip(w), "full")
