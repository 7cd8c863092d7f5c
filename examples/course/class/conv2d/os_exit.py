"""Bug: ends the interpreter with os._exit."""

import os


def conv2d_backward_x(g, w):
    os._exit(1)
