"""Bug: the kernel is not flipped (a full correlation instead of a convolution)."""

from scipy.signal import correlate


def conv2d_backward_x(g, w):
    return correlate(g, w, "full")
