"""Bug: computes the gradient and forgets to return it."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    dx = convolve(g, w, "full")  # noqa: F841
