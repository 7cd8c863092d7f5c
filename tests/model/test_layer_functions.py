"""Layer files with abstract elementwise functions (``functions = ["f"]``): loading, the names
they may take, what a claim may call, and the commands that need concrete functions refusing
them with one clear line (exit status 2, LANGUAGE.md), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from symderive import cli
from symderive.core.functions import function_class
from symderive.core.ir import index_symbol, read
from symderive.core.parse import parse_claim
from symderive.errors import InputError
from symderive.layer import describe_layer, layer_from_dict, load_layer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_layers" / "activation_f.toml"


def act(**more) -> dict:
    return {"name": "act", "functions": ["f"], "inputs": {"x": ["n"]}, "output": {"y": "f(x)"}} | more


def test_the_forward_applies_f_elementwise_and_f_stays_opaque():
    layer = layer_from_dict(act())
    assert layer.functions == ("f",)
    i = index_symbol("i")
    assert layer.forward.element((i,)) == function_class("f")(read("x", (i,)))
    assert layer.forward.shape == layer.inputs["x"]


def test_claims_call_f_and_its_derivatives_on_arrays_and_elements():
    layer = layer_from_dict(act())
    assert parse_claim("g * f_prime(x)", layer, "x").tree is not None
    assert parse_claim("dx[p] == g[p] * f_prime(x[p])", layer, "x").body is not None
    assert parse_claim("g * f_prime_prime(x) + f(y)", layer, "x").tree is not None


@pytest.mark.parametrize(
    ("claim", "says"),
    [
        ("f(x, x)", "f takes one argument"),
        ("f(x, axis=0)", "f takes one argument"),
        ("f_prime_prime_prime(x)", "unknown function 'f_prime_prime_prime'"),
        ("h(x)", "unknown function 'h'"),
    ],
)
def test_a_wrong_call_of_f_is_an_input_error(claim, says):
    with pytest.raises(InputError, match=says):
        parse_claim(claim, layer_from_dict(act()), "x")


def test_a_layer_without_functions_does_not_know_f():
    with pytest.raises(InputError, match="unknown function 'f'"):
        layer_from_dict({"name": "id", "inputs": {"x": ["n"]}, "output": {"y": "f(x)"}})


@pytest.mark.parametrize(
    ("functions", "says"),
    [
        ("f", "must be a list"),
        ([1], "must be a string"),
        (["1f"], "not a valid function name"),
        (["x"], "also a tensor or a size"),
        (["n"], "also a tensor or a size"),
        (["y"], "also a tensor or a size"),
        (["tanh"], "the name of a built-in function"),
        (["Sum"], "reserved"),
        (["pi"], "the name of a built-in function"),
        (["g"], "reserved"),
        (["diff"], "reserved"),
        (["f", "f"], "declared twice"),
        (["f", "f_prime"], "declared twice"),
    ],
)
def test_a_function_name_must_be_new(functions, says):
    with pytest.raises(InputError, match=says) as err:
        layer_from_dict(act(functions=functions, output={"y": "2 * x"}), source="act.toml")
    assert err.value.where.startswith("act.toml: functions")


def test_the_forward_may_not_use_the_last_named_derivative():
    with pytest.raises(InputError, match="f_prime_prime, whose derivative has no name"):
        layer_from_dict(act(output={"y": "f_prime_prime(x)"}))
    assert layer_from_dict(act(output={"y": "f_prime(x) * f(x)"})).functions == ("f",)


def test_intermediates_and_index_forms_use_f_too():
    layer = layer_from_dict(act(intermediates={"z": "2 * x"}, output={"y": "y[i] == f(z[i]) + f(x[i])"}))
    assert layer.forward.shape == layer.inputs["x"]
    assert str(layer.forward.element((sp.Integer(0),))) == "f(x[0]) + f(2*x[0])"


def test_show_lists_the_functions():
    text = describe_layer(load_layer(str(EXAMPLE)))
    assert "functions: f (abstract, elementwise; derivatives f_prime)" in text
    assert "y = f(z)" in text


# -- what needs concrete functions refuses them, through the command line -------------------------
def _impl(tmp_path: Path) -> Path:
    path = tmp_path / "impl.py"
    path.write_text("def grad(*, x, w, b, g):\n    return w.T @ g\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["codegen", "LAYER", "-o", "OUT/m.py"],
        ["codegen", "LAYER", "--target", "torch", "-o", "OUT/m.py"],
        ["codegen", "LAYER", "--target", "jax", "-o", "OUT/m.py"],
        ["codegen", "LAYER", "-o", "OUT/m.py", "--tests", "OUT/test_m.py"],
        ["solve", "LAYER", "--wrt", "x"],
        ["check", "LAYER", "--wrt", "x", "--impl", "IMPL:grad"],
        ["grade", "LAYER", "--wrt", "x", "--function", "grad", "IMPL"],
    ],
    ids=lambda c: " ".join(c[:3]),
)
def test_a_command_that_needs_concrete_functions_refuses_an_abstract_f(command, tmp_path, capsys):
    impl = _impl(tmp_path)
    argv = [str(EXAMPLE) if a == "LAYER" else str(impl) if a == "IMPL" else a for a in command]
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    argv = [f"{impl}:grad" if a == "IMPL:grad" else a for a in argv]
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert captured.err.startswith("symderive: error:") and captured.err.count("\n") == 1, captured.err
    assert "needs concrete functions" in captured.err and "leaves f abstract" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "m.py").exists()


@pytest.mark.slow  # a report of a refuted claim: ~1 s each
@pytest.mark.parametrize("suffix", [".md", ".tex"])
def test_a_report_shows_the_claims_about_f(suffix, tmp_path, capsys):
    out = tmp_path / f"report{suffix}"
    assert cli.main(["report", str(EXAMPLE), "--claim", "b", "g * f(z)", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "f(u) = u**2 + 3*u" in text.replace("\\", "")  # Markdown escapes its punctuation
    assert "f_{prime}" not in text  # f' as derivations write it


def test_prove_names_the_concrete_f_of_a_counterexample(capsys):
    status = cli.main(["prove", str(EXAMPLE), "--wrt", "b", "g * f(z)"])
    out = capsys.readouterr().out
    assert status == 1
    assert "    f(u) = u**2 + 3*u" in out
    assert cli.main(["prove", str(EXAMPLE), "--wrt", "b", "g * f_prime(z)"]) == 0


def test_a_derivative_with_no_name_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "act.toml"
    path.write_text('name = "act"\nfunctions = ["f"]\ninputs = {b = ["m"]}\noutput = {y = "f(b)"}\n', encoding="utf-8")
    status = cli.main(["prove", str(path), "--identity", "diff(f_prime_prime(b[i]), b[i]) == 0"])
    err = capsys.readouterr().err
    assert status == 2 and "no derivative rule for f_prime_prime(b[i])" in err, err
    assert cli.main(["prove", str(path), "--identity", "diff(f_prime(b[i]), b[i]) == f_prime_prime(b[i])"]) == 0


def test_prove_why_and_assert_gradient_say_the_refutation_without_variants(capsys):
    from symderive.testing import assert_gradient

    assert cli.main(["prove", str(EXAMPLE), "--wrt", "b", "g * f(z)", "--why"]) == 1
    captured = capsys.readouterr()
    assert "f(u) = u**2 + 3*u" in captured.out and "Traceback" not in captured.err, captured.err
    with pytest.raises(AssertionError, match=r"with f\(u\) = u\*\*2 \+ 3\*u"):
        assert_gradient(str(EXAMPLE), "b", "g * f(z)")
