"""Bug: the kernel is flipped along its rows only."""

from scipy.signal import correlate


def conv2d_backward_x(g, w):
    return correlate(g, w[::-1, :], "full")
