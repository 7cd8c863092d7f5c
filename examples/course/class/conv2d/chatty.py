"""Correct, but prints megabytes of debugging output."""

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    for _ in range(200):
        print("g =", g, "w =", w, "." * 20000)
    return convolve(g, w, "full")
