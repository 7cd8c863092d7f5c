"""Correct, returned as nested lists (converted as NumPy would)."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return convolve(g, w, "full").tolist()
