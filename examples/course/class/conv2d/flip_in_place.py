"""Bug: flips the kernel in place by swapping rows and columns of views (the swap copies one onto the other)."""

from scipy.signal import correlate


def conv2d_backward_x(g, w):
    kh, kw = w.shape
    for m in range(kh // 2):
        w[m], w[kh - 1 - m] = w[kh - 1 - m], w[m]
    for n in range(kw // 2):
        w[:, n], w[:, kw - 1 - n] = w[:, kw - 1 - n], w[:, n]
    return correlate(g, w, "full")
