"""Hostile and careless inputs are input errors: exit 2 and one line on stderr (never 70, never a
traceback); through the Python API, InputError or a TypeError that says what was expected."""

from __future__ import annotations

import json
import math

import pytest

import symderive as sd
from symderive import testing
from symderive.cli import main
from symderive.errors import InputError

POWER = "(((m + 1)**64)**64)**64"
HEX = "0x" + "f" * 3900  # parses to an integer of about 4700 decimal digits (str() refuses it)
DECIMAL = "9" * 3900


def run(capsys, *argv):
    status = main(list(argv), prog="symderive")
    out, err = capsys.readouterr()
    return status, out, err


def assert_input_error(capsys, *argv, fragment: str = ""):
    status, _, err = run(capsys, *argv)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    # the message names the trouble, without echoing thousands of digits back
    assert len(lines[0]) < 2000
    assert fragment.lower() in lines[0].lower(), lines[0]
    return lines[0]


# -- claims ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layer", "wrt", "claim", "fragment"),
    [
        ("linear", "x", f"w.T @ g * {POWER}", "degree"),
        ("tanh", "x", "g * (((x + 1)**64)**64)**64", "degree"),
        ("tanh", "x", "g * (x + 1)**40 * (x + 2)**40", "degree"),
        ("linear", "x", "w.T @ g * square(square(square(square(square(square(square(x)))))))", "degree"),
        ("linear", "x", f"w.T @ g * {HEX}", "too large"),
        ("linear", "x", f"w.T @ g * {DECIMAL}", "too large"),
        ("linear", "x", "dx[p] == Sum(w[i, p] * g[i], i) + x[(p + 1)**3]", "not linear"),
        ("linear", "x", "dx[p] == Sum(w[i, p] * g[i], i) + x[p * p * p]", "not linear"),
        ("linear", "x", f"dx[p] == Sum(w[i, p] * g[i], (i, 0, {POWER}))", "not linear"),
        ("linear", "x", "w.T @ g * 2**(2**(2**64))", "too large"),
        ("linear", "x", "", "empty"),
    ],
    ids=[
        "nested-size-power",
        "nested-tensor-power",
        "product-of-powers",
        "nested-square",
        "hex-literal",
        "decimal-literal",
        "index-cube",
        "index-product",
        "sum-bound-power",
        "tower-exponent",
        "empty",
    ],
)
def test_hostile_claims_are_input_errors(capsys, layer, wrt, claim, fragment):
    assert_input_error(capsys, "prove", layer, "--wrt", wrt, claim, fragment=fragment)


# -- assumptions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("assumption", "fragment"),
    [
        (f"{POWER} >= 1", "degree 262144"),
        ("m*n >= 2", "not linear"),
        ("2**m >= 2", "exponent"),
        ("m**2 >= 2", "not linear"),
        ("(m + n)**3 >= 1", "not linear"),
        ("m * m * m >= 1", "not linear"),
        ("m % (n * n) == 0", "constant"),
        ("m // n >= 1", "constant"),
        ("m >= 1e308", "not an integer"),
        (f"m >= {DECIMAL}", "too large"),
        (f"m >= {HEX[:1000]}", "too large"),
        ("m >= 0 and n >= 0", ""),
        ("m < 1", "never"),
    ],
    ids=[
        "nested-power",
        "product",
        "power-of-two",
        "square",
        "cube-of-sum",
        "triple-product",
        "mod-by-size-product",
        "floordiv-by-size",
        "float-bound",
        "long-literal",
        "hex-literal",
        "boolean-operator",
        "contradiction",
    ],
)
def test_hostile_assumptions_are_input_errors(capsys, assumption, fragment):
    assert_input_error(capsys, "prove", "linear", "--wrt", "x", "w.T @ g", "--assume", assumption, fragment=fragment)


# -- layer files ---------------------------------------------------------------------------
def _layer_text(shape='["n"]', assume="[]", output='y = "2 * x"', extra=""):
    return f'name = "hostile"\nassume = {assume}\n{extra}\n[inputs]\nx = {shape}\n[output]\n{output}\n'


LAYER_FILES = {
    "shape-nested-power": (_layer_text(shape=f'["{POWER}"]'), "degree 262144"),
    "shape-product": (_layer_text(shape='["m*n"]'), "not linear"),
    "shape-power-of-two": (_layer_text(shape='["2**H"]'), "exponent"),
    "shape-square": (_layer_text(shape='["H**2"]'), "not linear"),
    "shape-huge-integer": (_layer_text(shape=f"[{'9' * 30}]"), "too large"),
    "shape-huge-string": (_layer_text(shape=f'["{DECIMAL}"]'), "too large"),
    "assume-nested-power": (_layer_text(assume=f'["{POWER} >= 1"]'), "degree 262144"),
    "assume-product": (_layer_text(assume='["n*n >= 2"]'), "not linear"),
    "assume-power-of-two": (_layer_text(assume='["2**n >= 2"]'), "exponent"),
    "assume-square": (_layer_text(assume='["n**2 >= 2"]'), "not linear"),
    "output-nested-power": (_layer_text(output='y = "(((x + 1)**64)**64)**64"'), "degree"),
    "output-index-shape": (
        _layer_text(output=f'y = "y[i] == x[i]"\nshape = ["{POWER}"]'),
        "degree 262144",
    ),
    "constants-not-a-list": (_layer_text(extra='constants = "x"'), "list"),
    "deep-array": (_layer_text(extra="description = " + "[" * 5000 + "]" * 5000), ""),
    "rank-33": (_layer_text(shape="[" + ", ".join(f'"n{k}"' for k in range(33)) + "]"), "rank 33"),
    "not-a-table": ('name = "x"\ninputs = 3\noutput = 4\n', "table"),
}


@pytest.mark.parametrize("case", list(LAYER_FILES))
def test_hostile_layer_files_are_input_errors(capsys, tmp_path, case):
    text, fragment = LAYER_FILES[case]
    path = tmp_path / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    for argv in (["show", str(path)], ["prove", str(path), "--wrt", "x", "g"]):
        assert_input_error(capsys, *argv, fragment=fragment)


def test_a_non_utf8_layer_file_is_an_input_error(capsys, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(_layer_text(extra='description = "caf\xe9"').encode("latin-1"))
    assert_input_error(capsys, "show", str(path), fragment="UTF-8")


def test_a_directory_as_layer_file_is_an_input_error(capsys, tmp_path):
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    assert_input_error(capsys, "show", str(folder), fragment="layer file")


@pytest.mark.parametrize("command", ["show", "derive", "prove"])
def test_a_path_too_long_is_an_input_error(capsys, tmp_path, command):
    path = str(tmp_path / ("a" * 5000 + ".toml"))
    extra = {"show": [], "derive": ["--wrt", "x"], "prove": ["--wrt", "x", "g"]}[command]
    assert_input_error(capsys, command, path, *extra, fragment="layer file")


# -- batch files ---------------------------------------------------------------------------
BATCHES = {
    "deep-list": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep-object": ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
    "nan-assumption": ('[{"layer": "linear", "wrt": "x", "claim": "w.T @ g", "assume": [NaN]}]', "NaN"),
    "infinity-claim": ('[{"layer": "linear", "wrt": "x", "claim": Infinity}]', "Infinity"),
    "minus-infinity": ("[-Infinity]", "Infinity"),
    "not-a-list": ('{"layer": "linear"}', "list"),
}


@pytest.mark.parametrize("case", list(BATCHES))
def test_hostile_batch_files_are_input_errors(capsys, tmp_path, case):
    text, fragment = BATCHES[case]
    path = tmp_path / "batch.json"
    path.write_text(text, encoding="utf-8")
    assert_input_error(capsys, "prove", "--batch", str(path), "--json", fragment=fragment)


def test_a_non_utf8_batch_file_is_an_input_error(capsys, tmp_path):
    path = tmp_path / "batch.json"
    path.write_bytes(b'[{"layer": "linear", "wrt": "x", "claim": "w.T @ g \xff"}]')
    assert_input_error(capsys, "prove", "--batch", str(path), fragment="UTF-8")


def test_a_directory_as_batch_file_is_an_input_error(capsys, tmp_path):
    assert_input_error(capsys, "prove", "--batch", str(tmp_path), fragment="directory")


def test_a_batch_path_too_long_is_an_input_error(capsys, tmp_path):
    assert_input_error(capsys, "prove", "--batch", str(tmp_path / ("b" * 5000 + ".json")), fragment="too long")


def test_a_hostile_batch_entry_is_an_error_line_and_the_json_stays_strict(capsys, tmp_path):
    path = tmp_path / "batch.json"
    entries = [
        {"layer": "linear", "wrt": "x", "claim": "w.T @ g"},
        {"layer": "linear", "wrt": "x", "claim": "w.T @ g", "assume": [f"{POWER} >= 1"]},
    ]
    path.write_text(json.dumps(entries), encoding="utf-8")
    status, out, err = run(capsys, "prove", "--batch", str(path), "--json")
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "degree 262144" in err

    def refuse(name):
        raise AssertionError(f"{name} in --json output")

    lines = [json.loads(line, parse_constant=refuse) for line in out.splitlines()]
    assert [line["verdict"] for line in lines] == ["proved", "error"]


# -- command-line options and output paths --------------------------------------------------
@pytest.mark.parametrize("value", ["1e308", "nan", "-1", "inf", "-inf", "0", "abc", "1e7000"])
@pytest.mark.parametrize("command", ["layers", "prove"])
def test_a_bad_timeout_is_an_input_error(capsys, value, command):
    extra = ["linear", "--wrt", "x", "w.T @ g"] if command == "prove" else []
    assert_input_error(capsys, command, *extra, f"--timeout={value}", fragment="timeout")


def test_an_output_folder_that_does_not_exist_is_an_input_error(capsys, tmp_path):
    assert_input_error(capsys, "codegen", "linear", "-o", str(tmp_path / "no" / "m.py"), fragment="folder")


# -- layers that exclude the small sizes, and huge ones ---------------------------------------
def test_codegen_checks_at_the_smallest_sizes_the_assumptions_allow(capsys, tmp_path):
    layer = tmp_path / "wide.toml"
    layer.write_text(_layer_text(assume='["n >= 12"]'), encoding="utf-8")
    out_file = tmp_path / "m.py"
    status, out, err = run(capsys, "codegen", str(layer), "--claim", "x", "2 * g", "-o", str(out_file))
    assert status == 0, err
    namespace: dict = {}
    exec(compile(out_file.read_text(), str(out_file), "exec"), namespace)  # our own emitted code
    import numpy as np

    g = np.arange(12.0)
    np.testing.assert_allclose(namespace["grad_x"](g=g), 2 * g)


def test_report_uses_the_smallest_sizes_the_assumptions_allow(capsys, tmp_path):
    layer = tmp_path / "wide.toml"
    layer.write_text(_layer_text(assume='["n >= 12"]'), encoding="utf-8")
    status, _, err = run(capsys, "report", str(layer), "-o", str(tmp_path / "r.tex"))
    assert status == 0, err
    assert (tmp_path / "r.tex").read_text().strip()


def test_codegen_refuses_sizes_too_large_to_check(capsys, tmp_path):
    layer = tmp_path / "huge.toml"
    layer.write_text(_layer_text(assume='["n >= 1000000000"]'), encoding="utf-8")
    assert_input_error(
        capsys, "codegen", str(layer), "--claim", "x", "2 * g", "-o", str(tmp_path / "m.py"), fragment="n=1000000000"
    )


# -- the Python API ------------------------------------------------------------------------------
API_CASES = {
    "load_layer-int": lambda: sd.load_layer(123),
    "load_layer-none": lambda: sd.load_layer(None),
    "load_layer-dict": lambda: sd.load_layer({"name": "x"}),
    "load_layer-long-name": lambda: sd.load_layer("a" * 5000),
    "load_layer-long-path": lambda: sd.load_layer("/tmp/" + "a" * 5000 + ".toml"),
    "derive-dict": lambda: sd.derive({}, "x"),
    "derive-wrt-int": lambda: sd.derive("linear", 3),
    "derive-wrt-unknown": lambda: sd.derive("linear", "q"),
    "prove-claim-int": lambda: sd.prove("linear", "x", 5),
    "prove-claim-none": lambda: sd.prove("linear", "x", None),
    "prove-wrt-int": lambda: sd.prove("linear", 1, "g"),
    "prove-wrt-unknown": lambda: sd.prove("linear", "q", "g"),
    "prove-layer-list": lambda: sd.prove(["linear"], "x", "g"),
    "prove-timeout-str": lambda: sd.prove("linear", "x", "w.T @ g", timeout="a"),
    "prove-timeout-nan": lambda: sd.prove("linear", "x", "w.T @ g", timeout=math.nan),
    "prove-timeout-negative": lambda: sd.prove("linear", "x", "w.T @ g", timeout=-1),
    "prove-timeout-huge": lambda: sd.prove("linear", "x", "w.T @ g", timeout=1e308),
    "prove-assume-int": lambda: sd.prove("linear", "x", "w.T @ g", assume=5),
    "prove-assume-list-of-int": lambda: sd.prove("linear", "x", "w.T @ g", assume=[5]),
    "prove-assume-nonlinear": lambda: sd.prove("linear", "x", "w.T @ g", assume=[f"{POWER} >= 1"]),
    "emit_numpy-dict": lambda: sd.emit_numpy({}, claims={"x": "w.T @ g"}),
    "emit_numpy-claims-int": lambda: sd.emit_numpy("linear", claims=5),
    "emit_numpy-claim-int": lambda: sd.emit_numpy("linear", claims={"x": 5}),
    "emit_numpy-unknown-input": lambda: sd.emit_numpy("linear", claims={"q": "g"}),
    "report-int": lambda: sd.report(5, output="r.tex"),
    "report-claims-int": lambda: sd.report("linear", claims=5, output="r.tex"),
    "report-output-int": lambda: sd.report("linear", output=5),
    "check_implementation-dict": lambda: sd.check_implementation({}, "x", lambda **k: 0),
    "check_implementation-wrt-int": lambda: sd.check_implementation("linear", 1, lambda **k: 0),
    "check_implementation-function-int": lambda: sd.check_implementation("linear", "x", 5),
    "assert_gradient-layer-int": lambda: testing.assert_gradient(1, "x", "g"),
    "assert_gradient-claim-int": lambda: testing.assert_gradient("linear", "x", 3),
    "assert_gradient-wrt-list": lambda: testing.assert_gradient("linear", [], "g"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_the_api_refuses_wrong_arguments_at_its_entry(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a report that was wrongly written lands here
    with pytest.raises((InputError, TypeError)) as info:
        API_CASES[case]()
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 2000
    # the error is raised at the entry point, with a message of symderive's, not Python's own
    assert "object is not iterable" not in message and "has no attribute" not in message
