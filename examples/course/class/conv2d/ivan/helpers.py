"""Ivan's helper: a full 2-D convolution by shifted sums."""

import numpy as np


def full_convolution(a, k):
    out = np.zeros((a.shape[0] + k.shape[0] - 1, a.shape[1] + k.shape[1] - 1))
    for m in range(k.shape[0]):
        for n in range(k.shape[1]):
            out[m : m + a.shape[0], n : n + a.shape[1]] += k[m, n] * a
    return out
