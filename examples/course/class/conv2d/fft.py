"""Correct: a full convolution through the FFT (zero-padded to the full size)."""

import numpy as np


def conv2d_backward_x(g, w):
    shape = (g.shape[0] + w.shape[0] - 1, g.shape[1] + w.shape[1] - 1)
    return np.real(np.fft.ifft2(np.fft.fft2(g, shape) * np.fft.fft2(w, shape)))
