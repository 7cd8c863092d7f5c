"""The pytest plugin, run on small layer files through ``pytester``."""

import textwrap

import pytest

from symderive.prove import prove

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="module")
def _symderive_imported():
    """Import everything a proof and a refutation use before pytester snapshots ``sys.modules``.

    pytester's in-process runs drop the modules they imported; NumPy's C extension cannot
    be loaded twice in one process.
    """
    prove("linear", "x", "w.T @ g")
    prove("linear", "b", "2 * g")


LINEAR = """
name = "lin"
[inputs]
x = ["n"]
w = ["m", "n"]
b = ["m"]
[output]
y = "w @ x + b"
"""


def _layer_file(pytester, name: str, claims: str, body: str = LINEAR):
    return pytester.makefile(".symd.toml", **{name: textwrap.dedent(body) + textwrap.dedent(claims)})


def test_true_claim_passes_false_claim_fails_with_the_counterexample(pytester):
    _layer_file(pytester, "lin", '[[claims]]\nwrt = "x"\nclaim = "w.T @ g"\n')
    # db is g; the claim 2 g differs wherever g is nonzero
    _layer_file(pytester, "twice", '[[claims]]\nwrt = "b"\nclaim = "2 * g"\n')
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=1)
    # ids name the layer, the input and the claim
    result.stdout.fnmatch_lines(
        ["*lin.symd.toml::lin?dx = w.T @ g? PASSED*", "*twice.symd.toml::lin?db = 2 [*] g? FAILED*"]
    )
    out = result.stdout.str()
    assert "expected proved, got refuted" in out
    assert "counterexample at sizes" in out
    result.stdout.fnmatch_lines(["*at db[[]*]: expected 1, claimed 2*"])
    assert "symderive/prove.py" not in out and "Traceback" not in out


def test_expect_refuted_passes_when_refuted_and_fails_when_proved(pytester):
    claims = """
    [[claims]]
    wrt = "x"
    claim = "w @ g"
    expect = "refuted"

    [[claims]]
    wrt = "b"
    claim = "g"
    expect = "refuted"
    """
    _layer_file(pytester, "lin", claims)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*lin?dx = w @ g? PASSED*", "*lin?db = g? FAILED*"])
    assert "expected refuted, got proved" in result.stdout.str()


@pytest.mark.slow
def test_expect_unknown(pytester):
    # true (exp(x) > x for every real x), but beyond the prover: no proof, no counterexample
    claim = "w.T @ g * (exp(x) > x)"
    _layer_file(pytester, "lin", f'[[claims]]\nwrt = "x"\nclaim = "{claim}"\nexpect = "unknown"\n')
    pytester.runpytest().assert_outcomes(passed=1)


def test_invalid_layer_file_is_a_one_line_collection_error(pytester):
    _layer_file(pytester, "bad", "", body='name = "bad"\n[inputs]\nx = ["n"]\n')
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.symd.toml*missing key 'output'*"])
    assert "Traceback" not in result.stdout.str()


def test_ini_option_selects_the_files(pytester):
    _layer_file(pytester, "lin", '[[claims]]\nwrt = "x"\nclaim = "w.T @ g"\n')
    pytester.makefile(".toml", other=textwrap.dedent(LINEAR) + '[[claims]]\nwrt = "b"\nclaim = "g"\n')
    pytester.makeini("[pytest]\nsymderive_files = other.toml\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*other.toml::lin?db = g? PASSED*"])
