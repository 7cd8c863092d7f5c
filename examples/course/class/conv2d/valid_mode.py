"""Bug: the wrong mode ('valid', as in the forward pass)."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    return convolve(g, w, "valid")
