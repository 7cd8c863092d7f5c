"""Bug: the kernel transposed (w.T for w)."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return convolve(g, w.T, "full")
