"""Bug: a loop whose index never advances."""


def conv2d_backward_x(g, w):
    i = 0
    while i < g.shape[0]:
        pass
    return g
