"""Bug: normalises the target in place by the wrong total (it already sums to 1), then returns the softmax of a modified s."""

import numpy as np


def softmax_ce_backward_s(s, t):
    s -= t  # modifies the input in place: what is used below is no longer s
    e = np.exp(s)
    return e / e.sum() - t
