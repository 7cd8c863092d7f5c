"""Correct, taking every argument as keywords."""

from scipy.signal import convolve


def conv2d_backward_x(**arrays):
    return convolve(arrays["g"], arrays["w"], "full")
