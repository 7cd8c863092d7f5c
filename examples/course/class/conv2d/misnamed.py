"""Bug: the function has another name than the assignment asks for."""

from scipy.signal import convolve


def conv_backward(g, w):
    return convolve(g, w, "full")
