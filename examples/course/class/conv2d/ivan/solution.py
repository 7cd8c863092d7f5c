"""Correct: a student's folder, the function using a helper module next to it."""

from helpers import full_convolution


def conv2d_backward_x(g, w):
    return full_convolution(g, w)
