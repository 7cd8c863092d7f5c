"""Bug: not written yet."""


def conv2d_backward_x(g, w):
    raise NotImplementedError("TODO: the backward pass")
