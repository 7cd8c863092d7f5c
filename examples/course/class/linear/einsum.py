"""Correct: dL/dx[j] = sum_i g[i] w[i, j], by einsum."""

import numpy as np


def linear_backward_x(w, g):
    return np.einsum("i,ij->j", g, w)
