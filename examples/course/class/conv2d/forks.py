"""Correct, but leaves a forked process sleeping behind each call."""

import os
import time

from scipy.signal import convolve


def conv2d_backward_x(g, w):
    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    return convolve(g, w, "full")
