"""Bug: forgets the upstream gradient."""


def linear_backward_x(w, g):
    return w.sum(axis=0)
