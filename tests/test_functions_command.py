"""``symderive functions``: every function a claim may use, read from the operator table."""

import pytest

from symderive import cli
from symderive.core.ir import size_symbol
from symderive.core.ops import OPERATORS, Operator, Param
from symderive.core.parse import parse_tree

N, D = size_symbol("N"), size_symbol("D")


def _run(capsys, *argv):
    status = cli.main(["functions", *argv], prog="symderive")
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_every_function_a_claim_may_call_is_listed_with_its_parameters(capsys):
    status, out, err = _run(capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    for name, op in OPERATORS.items():
        if op.by_name:
            params = [p.name for p in op.params]
            heading = next(ln for ln in lines if ln.startswith(f"{name}("))
            assert [part.split("=")[0].strip() for part in _params_of(heading[len(name) + 1 : -1])] == params
    for extra in ("pi", "e", "Sum(body", "KroneckerDelta(i, j)"):
        assert any(ln.startswith(extra) for ln in lines), extra
    assert not any(ln.startswith(("add(", "getitem(")) for ln in lines)  # syntax operators are not called


def test_the_listing_comes_from_the_operator_table(capsys, monkeypatch):
    exp = OPERATORS["exp"]
    row = Operator(
        name="made_up",
        family="numpy",
        params=(Param("x", "tensor", required=True), Param("scale", "number", default=2)),
        definition=exp.definition,
        shape_rule=exp.shape_rule,
        to_numpy=exp.to_numpy,
        to_latex=exp.to_latex,
        meaning="a row added for this test",
        example="made_up(x, scale=3)",
    )
    monkeypatch.setitem(OPERATORS, "made_up", row)
    status, out, _ = _run(capsys, "made_up")
    assert status == 0
    assert out.splitlines() == ["made_up(x, scale=2)", "    a row added for this test", "    e.g. made_up(x, scale=3)"]


@pytest.mark.parametrize(
    "name, signature",
    [
        ("gelu", "gelu(input, approximate='none')"),
        ("F.softplus", "F.softplus(input, beta=1, threshold=20)"),
        ("leaky_relu", "leaky_relu(input, negative_slope=0.01, inplace=False)"),
        ("std", "std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False)"),
        ("exp", "exp(x)"),
    ],
)
def test_one_function(capsys, name, signature):
    status, out, _ = _run(capsys, name)
    assert status == 0 and out.splitlines()[0] == signature


def test_an_unknown_function_is_an_input_error_naming_close_ones(capsys):
    status, out, err = _run(capsys, "gleu")
    assert status == 2 and out == ""
    assert err.strip().splitlines() == [
        "symderive: error: unknown function 'gleu' (did you mean 'gelu'?); symderive functions lists them"
    ]


def test_an_unknown_function_in_a_claim_names_close_ones(capsys):
    status = cli.main(["prove", "tanh", "--wrt", "x", "g * silo(x)"], prog="symderive")
    err = capsys.readouterr().err
    assert status == 2 and "unknown function 'silo'" in err and "'silu'" in err


@pytest.mark.parametrize("name", [n for n, op in OPERATORS.items() if op.by_name and op.example])
def test_a_written_example_is_a_claim_expression_calling_its_function(name):
    names = {"x": (N, D), "s": (N, D), "t": (N, D), "gamma": (D,), "beta": (D,)}
    tree = parse_tree(OPERATORS[name].example_call(), names, [N, D])
    assert _calls(tree) & {name}, name


def _calls(node) -> set:
    # the operators a closed-form tree calls
    out = {node.op} if hasattr(node, "op") else set()
    for _, v in getattr(node, "args", ()):
        for item in v if isinstance(v, tuple) else (v,):
            out |= _calls(item) if hasattr(item, "__dataclass_fields__") else set()
    return out


def _params_of(inside: str) -> list[str]:
    # the parameter names of a signature's inside, where a default may be a tuple: axes=(0, 1)
    depth, names, current = 0, [], ""
    for ch in inside + ",":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            names.append(current.split("=")[0].strip())
            current = ""
        else:
            current += ch
    return names
