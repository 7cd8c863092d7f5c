"""Bug: the wrong mode ('same' instead of 'full')."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return convolve(g, w, "same")
