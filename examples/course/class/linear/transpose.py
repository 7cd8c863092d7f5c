"""Correct: dL/dx = W^T g."""


def linear_backward_x(w, g):
    return w.T @ g
