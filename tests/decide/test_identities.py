"""prove_identity: identities between two expressions over a layer's tensors, each confirmed in NumPy/SciPy.

Every identity's verdict is checked against an independent oracle: a true one is compared
numerically at random values over several sizes; for a false one the counterexample's
sizes and values are fed to NumPy/SciPy, whose two sides must differ at the reported
element with the reported values.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import scipy.special

from symderive.cli import main
from symderive.layer import layer_from_dict, load_layer
from symderive.prove import prove_identity
from symderive.render.text import printed_value

SIGNAL = layer_from_dict({"name": "signal", "inputs": {"x": ["n"], "w": ["k"]}, "output": {"y": "sum(x) * sum(w)"}})
SIGNAL_ASSUMED = layer_from_dict(
    {
        "name": "signal_assumed",
        "assume": ["k <= n"],
        "inputs": {"x": ["n"], "w": ["k"]},
        "output": {"y": "sum(x) * sum(w)"},
    }
)
MATRIX = layer_from_dict({"name": "matrix", "inputs": {"a": ["m", "n"], "c": ["n", "p"]}, "output": {"y": "a @ c"}})
SOFTMAX = load_layer("softmax_cross_entropy")  # assumes sum(t) == 1
CONV = load_layer("conv2d")  # x [H, W], w [kh, kw], assumes kh <= H, kw <= W
LINEAR = load_layer("linear")  # x [n], w [m, n], b [m]
POSITIVE = layer_from_dict(
    {"name": "positive", "assume": ["x > 0"], "inputs": {"x": ["n"], "z": ["n"]}, "output": {"y": "x * z"}}
)

SHAPES = {
    "signal": lambda s: {"x": (s["n"],), "w": (s["k"],)},
    "signal_assumed": lambda s: {"x": (s["n"],), "w": (s["k"],)},
    "matrix": lambda s: {"a": (s["m"], s["n"]), "c": (s["n"], s["p"])},
    "softmax_cross_entropy": lambda s: {"s": (s["n"],), "t": (s["n"],)},
    "conv2d": lambda s: {"x": (s["H"], s["W"]), "w": (s["kh"], s["kw"]), "b": ()},
    "linear": lambda s: {"x": (s["n"],), "w": (s["m"], s["n"]), "b": (s["m"],)},
    "positive": lambda s: {"x": (s["n"],), "z": (s["n"],)},
}
SIZES = {
    "signal": [{"n": 1, "k": 1}, {"n": 4, "k": 2}, {"n": 2, "k": 5}, {"n": 6, "k": 3}],
    "signal_assumed": [{"n": 1, "k": 1}, {"n": 4, "k": 2}, {"n": 6, "k": 6}],
    "matrix": [{"m": 1, "n": 1, "p": 1}, {"m": 2, "n": 3, "p": 4}, {"m": 3, "n": 1, "p": 2}],
    "softmax_cross_entropy": [{"n": 1}, {"n": 3}, {"n": 5}],
    "conv2d": [
        {"H": 1, "W": 1, "kh": 1, "kw": 1},
        {"H": 4, "W": 5, "kh": 2, "kw": 3},
        {"H": 3, "W": 3, "kh": 3, "kw": 1},
    ],
    "linear": [{"n": 1, "m": 1}, {"n": 3, "m": 2}, {"n": 2, "m": 4}],
    "positive": [{"n": 1}, {"n": 4}],
}


def conv_sum(w, x, e, flipped=False, shift=0):
    """Sum over a of w[e - a] * x[a] (or w[a] * x[e - a]), reads outside the arrays zero."""

    def read(arr, i):
        return arr[i] if 0 <= i < len(arr) else 0.0

    lo, hi = -len(w) - len(x) - abs(e) - 2, len(w) + len(x) + abs(e) + 2
    if flipped:
        return sum(read(w, a) * read(x, e - a - shift) for a in range(lo, hi))
    return sum(read(w, e - a) * read(x, a) for a in range(lo, hi))


def softmax(s):
    return scipy.special.softmax(s)


# (layer, identity, verdict, NumPy oracle: values -> (left, right)) for closed forms, or
# (layer, identity, verdict, oracle: (values, e) -> (left, right)) for a free index ``e``
CLOSED = [
    # -- signal processing: scipy.signal's correlate/convolve ------------------------------------
    (
        CONV,
        "correlate2d(x, w, 'valid') == correlate(x, w, 'valid')",
        "proved",
        lambda v: (scipy.signal.correlate2d(v["x"], v["w"], "valid"), scipy.signal.correlate(v["x"], v["w"], "valid")),
    ),
    (
        CONV,
        "correlate2d(x, w, 'valid') == convolve2d(x, w, 'valid')",
        "refuted",
        lambda v: (scipy.signal.correlate2d(v["x"], v["w"], "valid"), scipy.signal.convolve2d(v["x"], v["w"], "valid")),
    ),
    (
        CONV,
        "correlate2d(x, w, 'valid') == convolve2d(x, flip(w), 'valid')",
        "proved",
        lambda v: (
            scipy.signal.correlate2d(v["x"], v["w"], "valid"),
            scipy.signal.convolve2d(v["x"], np.flip(v["w"]), "valid"),
        ),
    ),
    (
        CONV,
        "correlate2d(x, w, 'valid') == convolve2d(x, flip(w, 0), 'valid')",
        "refuted",
        lambda v: (
            scipy.signal.correlate2d(v["x"], v["w"], "valid"),
            scipy.signal.convolve2d(v["x"], np.flip(v["w"], 0), "valid"),
        ),
    ),
    (
        CONV,
        "convolve2d(x, w, 'full') == convolve2d(w, x, 'full')",
        "proved",
        lambda v: (scipy.signal.convolve2d(v["x"], v["w"], "full"), scipy.signal.convolve2d(v["w"], v["x"], "full")),
    ),
    (
        CONV,
        "correlate2d(x, w, 'full') == correlate2d(w, x, 'full')",
        "refuted",
        lambda v: (scipy.signal.correlate2d(v["x"], v["w"], "full"), scipy.signal.correlate2d(v["w"], v["x"], "full")),
    ),
    (
        CONV,
        "correlate2d(x, w, 'full') == flip(correlate2d(w, x, 'full'))",
        "proved",
        lambda v: (
            scipy.signal.correlate2d(v["x"], v["w"], "full"),
            np.flip(scipy.signal.correlate2d(v["w"], v["x"], "full")),
        ),
    ),
    (
        SIGNAL,
        "convolve(x, w, 'full') == convolve(w, x, 'full')",
        "proved",
        lambda v: (scipy.signal.convolve(v["x"], v["w"], "full"), scipy.signal.convolve(v["w"], v["x"], "full")),
    ),
    (
        SIGNAL,
        "correlate(x, w, 'full') == correlate(w, x, 'full')",
        "refuted",
        lambda v: (scipy.signal.correlate(v["x"], v["w"], "full"), scipy.signal.correlate(v["w"], v["x"], "full")),
    ),
    (
        SIGNAL,
        "correlate(x, w, 'full') == convolve(x, flip(w), 'full')",
        "proved",
        lambda v: (
            scipy.signal.correlate(v["x"], v["w"], "full"),
            scipy.signal.convolve(v["x"], np.flip(v["w"]), "full"),
        ),
    ),
    (
        SIGNAL,
        "correlate(x, w, 'full') == convolve(x, w, 'full')",
        "refuted",
        lambda v: (scipy.signal.correlate(v["x"], v["w"], "full"), scipy.signal.convolve(v["x"], v["w"], "full")),
    ),
    (
        SIGNAL_ASSUMED,
        "correlate(x, w, 'valid') == convolve(x, flip(w), 'valid')",
        "proved",
        lambda v: (
            scipy.signal.correlate(v["x"], v["w"], "valid"),
            scipy.signal.convolve(v["x"], np.flip(v["w"]), "valid"),
        ),
    ),
    (
        SIGNAL,
        "sum(convolve(x, w, 'full')) == sum(x) * sum(w)",
        "proved",
        lambda v: (np.sum(scipy.signal.convolve(v["x"], v["w"], "full")), np.sum(v["x"]) * np.sum(v["w"])),
    ),
    (
        SIGNAL,
        "sum(correlate(x, w, 'full')) == sum(x) * sum(flip(w)) + 1",
        "refuted",
        lambda v: (np.sum(scipy.signal.correlate(v["x"], v["w"], "full")), np.sum(v["x"]) * np.sum(v["w"]) + 1),
    ),
    # -- flips and transposes ------------------------------------------------------------------
    (SIGNAL, "flip(flip(x)) == x", "proved", lambda v: (np.flip(np.flip(v["x"])), v["x"])),
    (SIGNAL, "flip(x) == x", "refuted", lambda v: (np.flip(v["x"]), v["x"])),
    (CONV, "flip(flip(w, 0), 1) == flip(w)", "proved", lambda v: (np.flip(np.flip(v["w"], 0), 1), np.flip(v["w"]))),
    (CONV, "flip(w, 0) == flip(w, 1)", "refuted", lambda v: (np.flip(v["w"], 0), np.flip(v["w"], 1))),
    (
        MATRIX,
        "transpose(a @ c) == transpose(c) @ transpose(a)",
        "proved",
        lambda v: (np.transpose(v["a"] @ v["c"]), v["c"].T @ v["a"].T),
    ),
    (MATRIX, "transpose(transpose(a)) == a", "proved", lambda v: (v["a"].T.T, v["a"])),
    (
        MATRIX,
        "sum(a @ c) == sum(transpose(a) @ c)",
        "refuted",
        lambda v: (
            np.sum(v["a"] @ v["c"]),
            np.sum(v["a"].T @ v["c"]) if v["a"].shape[0] == v["c"].shape[0] else np.nan,
        ),
    ),
    (LINEAR, "w.T @ b == transpose(w) @ b", "proved", lambda v: (v["w"].T @ v["b"], v["w"].T @ v["b"])),
    (
        LINEAR,
        "outer(b, x) == transpose(outer(x, b))",
        "proved",
        lambda v: (np.outer(v["b"], v["x"]), np.outer(v["x"], v["b"]).T),
    ),
    (LINEAR, "outer(b, x) == outer(x, b)", "refuted", lambda v: (np.outer(v["b"], v["x"]), np.outer(v["x"], v["b"]))),
    (LINEAR, "w @ x == sum(w * x, axis=1)", "proved", lambda v: (v["w"] @ v["x"], np.sum(v["w"] * v["x"], axis=1))),
    (
        LINEAR,
        "w @ x == sum(w * x, axis=0)",
        "refuted",
        lambda v: (v["w"] @ v["x"], np.sum(v["w"] * v["x"][None, :], axis=0)),
    ),
    # -- sums and shifts -----------------------------------------------------------------------
    (SIGNAL, "sum(x) == sum(flip(x))", "proved", lambda v: (np.sum(v["x"]), np.sum(np.flip(v["x"])))),
    (
        SIGNAL,
        "sum(x[1:]) == sum(x[:n - 1])",
        "refuted",
        lambda v: (np.sum(v["x"][1:]), np.sum(v["x"][: len(v["x"]) - 1])),
    ),
    (SIGNAL, "sum(x[1:]) + x[0] == sum(x)", "proved", lambda v: (np.sum(v["x"][1:]) + v["x"][0], np.sum(v["x"]))),
    (SIGNAL, "sum(x * x) == dot(x, x)", "proved", lambda v: (np.sum(v["x"] * v["x"]), np.dot(v["x"], v["x"]))),
    (SIGNAL, "sum(x) ** 2 == sum(x * x)", "refuted", lambda v: (np.sum(v["x"]) ** 2, np.sum(v["x"] * v["x"]))),
    # -- softmax, under the layer's assumption sum(t) == 1 -----------------------------------------
    (
        SOFTMAX,
        "softmax(s) == exp(s) / sum(exp(s))",
        "proved",
        lambda v: (softmax(v["s"]), np.exp(v["s"]) / np.sum(np.exp(v["s"]))),
    ),
    (SOFTMAX, "softmax(s) == exp(s)", "refuted", lambda v: (softmax(v["s"]), np.exp(v["s"]))),
    (SOFTMAX, "sum(t * 2) == 2", "proved", lambda v: (np.sum(v["t"] * 2), 2.0)),
    (SOFTMAX, "sum(t * 2) == 1", "refuted", lambda v: (np.sum(v["t"] * 2), 1.0)),
    (SOFTMAX, "softmax(s + 1) == softmax(s)", "proved", lambda v: (softmax(v["s"] + 1), softmax(v["s"]))),
    (SOFTMAX, "softmax(2 * s) == softmax(s)", "refuted", lambda v: (softmax(2 * v["s"]), softmax(v["s"]))),
    (
        SOFTMAX,
        "softmax(s) * sum(t) == softmax(s)",
        "proved",
        lambda v: (softmax(v["s"]) * np.sum(v["t"]), softmax(v["s"])),
    ),
    (
        SOFTMAX,
        "softmax(s) * sum(t) == softmax(s) * t",
        "refuted",
        lambda v: (softmax(v["s"]) * np.sum(v["t"]), softmax(v["s"]) * v["t"]),
    ),
    (
        SOFTMAX,
        "log(softmax(s)) == s - log(sum(exp(s)))",
        "proved",
        lambda v: (np.log(softmax(v["s"])), v["s"] - np.log(np.sum(np.exp(v["s"])))),
    ),
    (
        SOFTMAX,
        "log(softmax(s)) == s - sum(exp(s))",
        "refuted",
        lambda v: (np.log(softmax(v["s"])), v["s"] - np.sum(np.exp(v["s"]))),
    ),
    # -- elementwise algebra under a sign assumption ---------------------------------------------
    (POSITIVE, "log(x * x) == 2 * log(x)", "proved", lambda v: (np.log(v["x"] * v["x"]), 2 * np.log(v["x"]))),
    (POSITIVE, "exp(log(x)) == x", "proved", lambda v: (np.exp(np.log(v["x"])), v["x"])),
    (POSITIVE, "sqrt(z * z) == z", "refuted", lambda v: (np.sqrt(v["z"] * v["z"]), v["z"])),
    (POSITIVE, "log(exp(z)) == z", "proved", lambda v: (np.log(np.exp(v["z"])), v["z"])),
    (POSITIVE, "abs(z) == z", "refuted", lambda v: (np.abs(v["z"]), v["z"])),
    (
        POSITIVE,
        "exp(x + z) == exp(x) * exp(z)",
        "proved",
        lambda v: (np.exp(v["x"] + v["z"]), np.exp(v["x"]) * np.exp(v["z"])),
    ),
    (
        POSITIVE,
        "exp(x * z) == exp(x) * exp(z)",
        "refuted",
        lambda v: (np.exp(v["x"] * v["z"]), np.exp(v["x"]) * np.exp(v["z"])),
    ),
    (POSITIVE, "tanh(z) == sigmoid(2 * z)", "refuted", lambda v: (np.tanh(v["z"]), scipy.special.expit(2 * v["z"]))),
    (POSITIVE, "relu(z) == z", "refuted", lambda v: (np.maximum(v["z"], 0), v["z"])),
    # two closed forms are compared as arrays of one shape (no broadcasting between the sides)
    (POSITIVE, "x / x == 1", "refuted", lambda v: (v["x"] / v["x"], np.float64(1.0))),
]

INDEXED = [
    (
        SIGNAL,
        "Sum(w[e - a] * x[a], a) == Sum(w[a] * x[e - a], a)",
        "proved",
        lambda v, e: (conv_sum(v["w"], v["x"], e), conv_sum(v["w"], v["x"], e, flipped=True)),
    ),
    (
        SIGNAL,
        "Sum(w[e - a] * x[a], a) == Sum(w[a] * x[e - a - 1], a)",
        "refuted",
        lambda v, e: (conv_sum(v["w"], v["x"], e), conv_sum(v["w"], v["x"], e, flipped=True, shift=1)),
    ),
    (
        SIGNAL,
        "Sum(w[e - a] * x[a], a) == Sum(w[a] * x[a - e], a)",
        "refuted",
        lambda v, e: (
            conv_sum(v["w"], v["x"], e),
            sum(v["w"][a] * (v["x"][a - e] if 0 <= a - e < len(v["x"]) else 0.0) for a in range(len(v["w"]))),
        ),
    ),
    (SIGNAL, "Sum(x[a], (a, 0, n - 1)) == Sum(x[a], a)", "proved", lambda v, e: (np.sum(v["x"]), np.sum(v["x"]))),
    (
        SIGNAL,
        "Sum(x[a], (a, 0, n - 2)) == Sum(x[a], a)",
        "refuted",
        lambda v, e: (np.sum(v["x"][: len(v["x"]) - 1]), np.sum(v["x"])),
    ),
    (
        SIGNAL,
        "Sum(x[a], (a, 1, n)) == Sum(x[a + 1], (a, 0, n - 1))",
        "proved",
        lambda v, e: (np.sum(v["x"][1:]), np.sum(v["x"][1:])),
    ),
    (
        SIGNAL,
        "Sum(x[a], (a, 0, n)) == Sum(x[a + 1], (a, 0, n - 1))",
        "refuted",
        lambda v, e: (np.sum(v["x"]), np.sum(v["x"][1:])),
    ),
    (
        SIGNAL,
        "x[e] * KroneckerDelta(e, 0) == x[0] * KroneckerDelta(e, 0)",
        "proved",
        lambda v, e: ((v["x"][e] if 0 <= e < len(v["x"]) else 0.0) * (e == 0), v["x"][0] * (e == 0)),
    ),
    (
        SIGNAL,
        "x[e] == x[n - 1 - e]",
        "refuted",
        lambda v, e: (
            v["x"][e] if 0 <= e < len(v["x"]) else 0.0,
            v["x"][len(v["x"]) - 1 - e] if 0 <= len(v["x"]) - 1 - e < len(v["x"]) else 0.0,
        ),
    ),
]

INDEXED += [
    (SIGNAL, "x[e] == x[e + 1]", "refuted", lambda v, e: (read(v["x"], e), read(v["x"], e + 1))),
    (
        SIGNAL,
        "Sum(x[a] * w[a], a) == Sum(x[a] * w[k - 1 - a], a)",
        "refuted",
        lambda v, e: (
            sum(read(v["x"], a) * read(v["w"], a) for a in range(len(v["x"]))),
            sum(read(v["x"], a) * read(v["w"], len(v["w"]) - 1 - a) for a in range(len(v["x"]))),
        ),
    ),
]


def read(arr, i):
    """NumPy's element, 0 outside the array (the claim language's reads)."""
    return arr[i] if 0 <= i < len(arr) else 0.0


ALL = [(layer, text, verdict, oracle, False) for layer, text, verdict, oracle in CLOSED] + [
    (layer, text, verdict, oracle, True) for layer, text, verdict, oracle in INDEXED
]


def random_values(layer, sizes, rng):
    shapes = SHAPES[layer.name](sizes)
    values = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    if layer.name == "softmax_cross_entropy":
        t = rng.uniform(0.1, 1.0, shapes["t"])
        values["t"] = t / t.sum()
    if layer.name == "positive":
        values["x"] = rng.uniform(0.1, 3.0, shapes["x"])
    return values


def test_there_are_forty_identities_half_of_them_false():
    assert len(ALL) >= 40
    assert sum(1 for case in ALL if case[2] == "refuted") >= len(ALL) / 2


@pytest.mark.parametrize(("layer", "text", "expected", "oracle", "indexed"), ALL, ids=[c[1] for c in ALL])
def test_identity_verdict_agrees_with_numpy(layer, text, expected, oracle, indexed):
    verdict = prove_identity(layer, text)
    assert verdict.verdict == expected, (verdict.reason, verdict.counterexample)
    rng = np.random.default_rng(14)
    if expected == "proved":
        assert verdict.counterexample is None
        for sizes in SIZES[layer.name]:
            values = random_values(layer, sizes, rng)
            if indexed:
                for e in range(-4, 9):
                    left, right = oracle(values, e)
                    np.testing.assert_allclose(left, right, rtol=1e-10, atol=1e-12, err_msg=f"{sizes}, e={e}")
            else:
                left, right = oracle(values)
                np.testing.assert_allclose(left, right, rtol=1e-10, atol=1e-12, err_msg=f"{sizes}")
        return
    cex = verdict.counterexample
    assert cex is not None
    values = {name: np.array(value, dtype=float) for name, value in (cex.values or {}).items()}
    for name, shape in SHAPES[layer.name]({k: int(v) for k, v in cex.sizes.items()}).items():
        values.setdefault(name, np.zeros(shape))
    if cex.is_shape_mismatch:
        with np.errstate(all="ignore"):
            try:
                left, right = oracle(values)
            except ValueError:  # NumPy refuses the right side at these sizes, as the verdict says
                return
        assert np.shape(left) != np.shape(right) or np.isnan(right).any()
        return
    if indexed:
        left, right = oracle(values, cex.index[0] if cex.index else 0)
    else:
        with np.errstate(all="ignore"):
            left, right = (np.asarray(side, dtype=float)[tuple(cex.index)] for side in oracle(values))
    # NumPy's two sides differ at the element reported, with the values reported
    assert not np.isclose(left, right, rtol=1e-9, atol=1e-12), (left, right)
    np.testing.assert_allclose(left, number(cex.expected), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(right, number(cex.claimed), rtol=1e-9, atol=1e-12)


def number(value) -> float:
    """A counterexample's value as a float (exact values come as SymPy's printing, e.g. '1/2')."""
    return printed_value(value) if isinstance(value, str) else float(value)


def test_the_command_line_proves_and_refutes_identities(capsys):
    identity = "correlate2d(x, w, 'valid') == convolve2d(x, flip(w), 'valid')"
    assert main(["prove", "conv2d", "--identity", identity]) == 0
    assert "proved" in capsys.readouterr().out
    assert main(["prove", "conv2d", "--identity", identity.replace("flip(w)", "w"), "--json"]) == 1
    import json

    line = json.loads(capsys.readouterr().out)
    assert line["verdict"] == "refuted" and line["wrt"] == "" and line["claim"] == identity.replace("flip(w)", "w")
    assert set(line["counterexample"]["values"]) == {"x", "w"}


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["prove", "conv2d", "--identity", "x =="], id="syntax"),
        pytest.param(["prove", "conv2d", "--identity", "x + q == x"], id="unknown-name"),
        pytest.param(["prove", "conv2d", "--wrt", "x", "--identity", "x == x"], id="with-wrt"),
        pytest.param(["prove", "conv2d", "--identity", "x[e] == correlate2d(x, w, 'valid')"], id="mixed"),
    ],
)
def test_a_bad_identity_is_one_line_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_prove_identity_is_on_the_package_and_the_prove_facade():
    import symderive as sd
    import symderive.prove

    assert sd.prove_identity is symderive.prove.prove_identity
    assert sd.prove_identity("linear", "transpose(transpose(w)) == w").verdict == "proved"


def test_prove_identity_bounds_the_whole_proof():
    import time

    start = time.monotonic()
    verdict = prove_identity(CONV, "correlate2d(x, w, 'full') == convolve2d(x, w, 'full')", timeout=0.2)
    assert verdict.verdict in ("unknown", "refuted")
    if verdict.verdict == "unknown":
        assert verdict.reason.startswith("timeout")
    assert time.monotonic() - start < 0.2 + 2
