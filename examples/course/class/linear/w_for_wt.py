"""Bug: W for W^T."""


def linear_backward_x(w, g):
    return w @ g
