"""Bug: the sign is the wrong way round."""

from scipy.special import softmax


def softmax_ce_backward_s(s, t):
    return t - softmax(s)
