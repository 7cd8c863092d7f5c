"""Bug: calls sys.exit when it is done, instead of returning."""

import sys

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    print(convolve(g, w, "full"))
    sys.exit(0)
