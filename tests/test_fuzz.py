"""Fuzzing the command line: every claim and layer file ends in a verdict or a clean input error.

Generated inputs (well-formed claims from a grammar of the table's functions, token soups,
Python constructs that must be refused, layer files valid and broken) go through
``symderive.cli.main(["prove", ...])`` in process: the exit status is 0, 1, 2 or 3 (never
70), an input error is one line on stderr, and no Python traceback is ever printed.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symderive.cli import main

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def run_prove(capsys, layer: str, wrt: str, claim: str, timeout: str = "10") -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``symderive prove`` run in process."""
    capsys.readouterr()
    code = main(["prove", layer, "--wrt", wrt, "--timeout", timeout, claim], prog="symderive")
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, out: str, err: str, what: str) -> None:
    assert code in (0, 1, 2, 3), f"exit {code} for {what!r}: {err}"
    assert "Traceback" not in out + err, f"traceback for {what!r}: {err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"input error not one line for {what!r}: {err!r}"
        assert lines[0].startswith("symderive: error:"), err


# -- well-formed claims from the table's grammar ------------------------------------------

LINEAR_TENSORS = ["x", "w", "b", "g", "y"]
UNARY = ["exp", "log", "sqrt", "tanh", "abs", "sign", "square", "sigmoid", "expit", "flip", "transpose", "sum", "mean"]
BINARY_FN = ["outer", "maximum", "minimum", "dot"]
OPS = ["+", "-", "*", "/", "@"]


def _claims(tensors):
    leaves = st.one_of(st.sampled_from(tensors), st.sampled_from(["1", "2", "0.5", "n", "m"]))

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(OPS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(BINARY_FN), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.tuples(inner, st.sampled_from([0, 1, -1, 2])).map(lambda t: f"sum({t[0]}, axis={t[1]})"),
            inner.map(lambda e: f"{e}.T"),
            inner.map(lambda e: f"-{e}"),
        )

    return st.recursive(leaves, extend, max_leaves=6)


@pytest.mark.slow
@FUZZ
@given(claim=_claims(LINEAR_TENSORS), wrt=st.sampled_from(["x", "w", "b"]))
def test_wellformed_closed_claims_end_in_a_verdict_or_input_error(capsys, claim, wrt):
    code, out, err = run_prove(capsys, "linear", wrt, claim, timeout="5")
    assert_clean(code, out, err, claim)


_INDEX = st.sampled_from(["p", "q", "p + 1", "p - e", "e - p", "q - f", "2 * p", "p // 2", "e", "f", "kh - 1 - e"])


@FUZZ
@given(
    body=st.lists(
        st.tuples(st.sampled_from(["g", "w", "x"]), _INDEX, _INDEX).map(lambda t: f"{t[0]}[{t[1]}, {t[2]}]"),
        min_size=1,
        max_size=3,
    ),
    bounds=st.sampled_from(["e, f", "(e, 0, H - kh), (f, 0, W - kw)", "e, (f, 0, kw)", "(e, 1, 0), f"]),
)
@pytest.mark.slow
def test_wellformed_index_claims_end_in_a_verdict_or_input_error(capsys, body, bounds):
    claim = f"dx[p, q] == Sum({' * '.join(body)}, {bounds})"
    code, out, err = run_prove(capsys, "conv2d", "x", claim, timeout="5")
    assert_clean(code, out, err, claim)


# -- malformed claims -------------------------------------------------------------------

TOKENS = [
    "x", "w", "g", "b", "y", "(", ")", "[", "]", ",", ":", ".", "T", "+", "-", "*", "/", "**", "@", "==", "=",
    "<", ">", "1", "0", "10**10**10", "1e308", "'full'", '"valid"', "axis=", "Sum", "convolve", "transpose",
    "np.", "F.", "scipy.signal.", "__class__", "__import__", "lambda", "for", "in", "if", "else", "not", "and",
    ":=", "*", "**", "{", "}", "f'", "dx", "KroneckerDelta", "\\", "#", ";", "\n", "\t", "é", "\x00", "...",
]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14))
def test_token_soups_are_input_errors_or_verdicts(capsys, tokens):
    claim = " ".join(tokens)
    code, out, err = run_prove(capsys, "linear", "x", claim, timeout="5")
    assert_clean(code, out, err, claim)


@pytest.mark.slow
@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_text_is_an_input_error_or_verdict(capsys, text):
    code, out, err = run_prove(capsys, "linear", "x", text, timeout="5")
    assert_clean(code, out, err, text)


REFUSED_BY_NAME = [
    pytest.param("__import__('os')", "__import__", id="import"),
    pytest.param("w.__class__", "__class__", id="dunder-attr"),
    pytest.param("w.T.__dict__ @ g", "__dict__", id="dunder-after-T"),
    pytest.param("(lambda q: w.T)(0) @ g", "lambda", id="lambda"),
    pytest.param("sum([a for a in g])", "comprehension", id="list-comprehension"),
    pytest.param("sum(a for a in g)", "generator", id="generator"),
    pytest.param("f'{g}'", "f-string", id="f-string"),
    pytest.param("transpose(*w) @ g", "starred", id="starred"),
    pytest.param("(v := w).T @ g", ":=", id="walrus"),
    pytest.param("w.sum()", "sum", id="method-call"),
    pytest.param("np.linalg.norm(w)", "np.linalg.norm", id="np-linalg"),
    pytest.param("torch.tanh(x)", "torch.tanh", id="torch-prefix"),
    pytest.param("os.system('true')", "os.system", id="os"),
    pytest.param("np.convolve(g, w)", "np.convolve", id="np-convolve"),
    pytest.param("w.T.real @ g", "real", id="attribute"),
    pytest.param("g.__class__.__bases__", "__", id="chain"),
]


@pytest.mark.parametrize(("claim", "name"), REFUSED_BY_NAME)
def test_python_objects_are_refused_by_name(capsys, claim, name):
    code, out, err = run_prove(capsys, "linear", "x", claim)
    assert_clean(code, out, err, claim)
    assert code == 2, f"{claim!r} was not refused: {out}{err}"
    assert name in err, f"{claim!r}: the message does not name {name!r}: {err}"


BOUNDED = [
    pytest.param("10**10**10", id="tower"),
    pytest.param("w.T @ g * " + "9" * 5000, id="huge-literal-long-text"),
    pytest.param("w.T @ g * 1" + "0" * 40, id="huge-literal"),
    pytest.param("(" * 400 + "w.T @ g" + ")" * 400, id="deep-parens"),
    pytest.param("-" * 300 + "w.T @ g", id="deep-unary"),
    pytest.param(" + ".join(["w.T @ g"] * 600), id="wide-sum"),
    pytest.param("exp(" * 150 + "x" + ")" * 150, id="deep-calls"),
    pytest.param("w.T @ g * 2**1000", id="big-power"),
]


@pytest.mark.parametrize("claim", BOUNDED)
def test_oversized_claims_are_refused_cleanly(capsys, claim):
    code, out, err = run_prove(capsys, "linear", "x", claim)
    assert_clean(code, out, err, claim[:80])
    assert code in (2, 3)


# -- layer files -----------------------------------------------------------------------

LAYER_TEMPLATE = """name = "{name}"
assume = [{assume}]

[inputs]
x = [{xshape}]
w = [{wshape}]

[output]
y = "{forward}"
"""

SHAPES = ['"n"', '"m", "n"', '"H", "W"', '"kh", "kw"', '"2"', "", '"n + 1"', '"3", "n"']
FORWARDS = [
    "w @ x",
    "x * w",
    "correlate(x, w, 'valid')",
    "convolve(x, w, 'full')",
    "exp(x) + sum(w)",
    "y[i] == Sum(w[i, j] * x[j], j)",
    "tanh(x)",
    "x @ w.T",
    "flip(x) - w",
]
ASSUMES = ['"kh <= H"', '"n >= 2"', '"sum(x) == 1"', '"x > 0"', "", '"kw <= W", "kh <= H"', '"m % 2 == 0"']


@st.composite
def layer_files(draw):
    text = LAYER_TEMPLATE.format(
        name=draw(st.sampled_from(["fz", "a b", "", "linear"])),
        assume=draw(st.sampled_from(ASSUMES)),
        xshape=draw(st.sampled_from(SHAPES)),
        wshape=draw(st.sampled_from(SHAPES)),
        forward=draw(st.sampled_from(FORWARDS)),
    )
    if draw(st.booleans()):
        # break it: cut, duplicate or corrupt a stretch of the text
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["cut", "dup", "junk", "drop-table"]))
        if how == "cut":
            text = text[:at]
        elif how == "dup":
            text = text[:at] + text[at // 2 : at] + text[at:]
        elif how == "junk":
            text = (
                text[:at]
                + draw(st.sampled_from(['"', "[", "]]", "=", "\n[[claims]]\n", "x = 3\n", "\x00"]))
                + text[at:]
            )
        else:
            text = text.replace("[output]", "")
    return text


@pytest.mark.slow
@FUZZ
@given(text=layer_files(), wrt=st.sampled_from(["x", "w", "q"]), claim=st.sampled_from(["g", "w.T @ g", "x", "0"]))
def test_layer_files_end_in_a_verdict_or_input_error(capsys, text, wrt, claim):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        code, out, err = run_prove(capsys, path, wrt, claim, timeout="5")
    assert_clean(code, out, err, text)


@FUZZ
@given(st.binary(max_size=200))
def test_binary_layer_files_are_input_errors(capsys, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.toml")
        with open(path, "wb") as f:
            f.write(data)
        code, out, err = run_prove(capsys, path, "x", "g", timeout="5")
    assert_clean(code, out, err, repr(data))
    assert code == 2
