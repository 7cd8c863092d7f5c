"""Bug: does not parse."""


def conv2d_backward_x(g, w)
    return g
