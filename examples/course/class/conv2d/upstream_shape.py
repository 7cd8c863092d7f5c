"""Bug: returns an array of g's shape (the output's), not x's."""


def conv2d_backward_x(g, w):
    return g * w.sum()
