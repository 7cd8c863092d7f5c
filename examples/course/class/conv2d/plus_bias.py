"""Bug: adds the bias to the gradient."""

from scipy.signal import convolve


def conv2d_backward_x(g, w, b):
    return convolve(g, w, "full") + b
