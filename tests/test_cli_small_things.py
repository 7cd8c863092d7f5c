"""Small things a user trips on (issue 20, requirement 3), through the command line in process."""

from __future__ import annotations

import re

import pytest

from symderive.cli import main
from symderive.model.layer import LAYERS_DIR

LAYER = """name = "mylinear"

[inputs]
x = ["n"]
w = ["m", "n"]

[output]
y = "w @ x"
"""


def run(capsys, *argv):
    status = main(list(argv), prog="symderive")
    out, err = capsys.readouterr()
    return status, out, err


def claims_block(wrt: str, claim: str, expect: str | None = None, assume: tuple[str, ...] = ()) -> str:
    lines = ["", "[[claims]]", f'wrt = "{wrt}"', f"claim = {claim!r}"]
    if expect:
        lines.append(f'expect = "{expect}"')
    if assume:
        lines.append("assume = [" + ", ".join(f'"{a}"' for a in assume) + "]")
    return "\n".join(lines) + "\n"


def table_rows(out: str) -> list[list[str]]:
    """The table's rows split on runs of two spaces or more (a claim has single spaces)."""
    import re

    lines = out.split("\n\n")[0].strip().splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


# -- 1. prove LAYER proves the file's own claims ---------------------------------------------------
def test_prove_layer_file_alone_proves_its_claims_and_prints_a_table(tmp_path, capsys):
    path = tmp_path / "mylinear.toml"
    # w.T @ g is the gradient (hand computation: d(sum(g * (w @ x)))/dx = w.T @ g); w @ g is not
    path.write_text(LAYER + claims_block("x", "w.T @ g") + claims_block("x", "w @ g", expect="refuted"))
    status, out, err = run(capsys, "prove", str(path))
    assert status == 0, (out, err)
    rows = table_rows(out)
    assert rows[0] == ["claim", "wrt", "expected", "verdict", "ok"]
    assert rows[1:] == [["w.T @ g", "x", "proved", "proved", "yes"], ["w @ g", "x", "refuted", "refuted", "yes"]]


def test_prove_layer_file_alone_exits_1_when_a_verdict_is_not_the_expected_one(tmp_path, capsys):
    path = tmp_path / "mylinear.toml"
    # with m == n, w @ g is still not w.T @ g (w need not be symmetric): expecting proved is wrong
    path.write_text(LAYER + claims_block("x", "w.T @ g") + claims_block("x", "w @ g", assume=("m == n",)))
    status, out, _ = run(capsys, "prove", str(path))
    assert status == 1
    rows = table_rows(out)
    assert rows[2] == ["w @ g assuming m == n", "x", "proved", "refuted", "NO"]
    assert "counterexample" in out or "at dx[" in out  # the unexpected verdict is shown


def test_prove_layer_file_alone_honours_each_claims_own_assumption(tmp_path, capsys):
    import json

    path = tmp_path / "mylinear.toml"
    # w @ g is wrong either way; the counterexample's sizes must satisfy the claim's own assumption
    path.write_text(LAYER + claims_block("x", "w @ g", expect="refuted", assume=("n == m + 1",)))
    status, out, _ = run(capsys, "prove", str(path), "--json")
    assert status == 0
    [obj] = [json.loads(line) for line in out.strip().splitlines()]
    assert obj["expect"] == "refuted" and obj["verdict"] == "refuted"
    sizes = obj["counterexample"]["sizes"]
    assert sizes["n"] == sizes["m"] + 1


def test_prove_layer_without_claims_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "bare.toml"
    path.write_text(LAYER)
    status, _, err = run(capsys, "prove", str(path))
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "[[claims]]" in err


def test_prove_layer_alone_with_assume_is_an_input_error(capsys):
    status, _, err = run(capsys, "prove", "linear", "--assume", "m == n")
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "--assume" in err


@pytest.mark.parametrize("layer", ["relu", "linear"])
def test_prove_builtin_layer_alone_meets_its_expectations(layer, capsys):
    status, out, _ = run(capsys, "prove", layer)
    assert status == 0
    rows = table_rows(out)[1:]
    assert rows and all(row[-1] == "yes" for row in rows)


# -- 2. show LAYER --toml prints the layer's file -----------------------------------------------------
@pytest.mark.parametrize("name", ["relu", "conv2d", "batch_norm"])
def test_show_toml_prints_the_builtin_layers_file(name, capsys):
    status, out, err = run(capsys, "show", name, "--toml")
    assert status == 0 and err == ""
    assert out == (LAYERS_DIR / f"{name}.toml").read_text(encoding="utf-8")


def test_show_toml_output_loads_as_the_same_layer(tmp_path, capsys):
    status, out, _ = run(capsys, "show", "layer_norm", "--toml")
    assert status == 0
    copy = tmp_path / "my_layer_norm.toml"
    copy.write_text(out)
    assert run(capsys, "show", str(copy))[1] == run(capsys, "show", "layer_norm")[1]


def test_show_toml_of_a_layer_file_prints_it(tmp_path, capsys):
    path = tmp_path / "mylinear.toml"
    path.write_text(LAYER)
    status, out, _ = run(capsys, "show", str(path), "--toml")
    assert status == 0 and out == LAYER


# -- 3. assumptions accept = as well as == -----------------------------------------------------------
SCE = """name = "sce"
constants = ["t"]
{assume}

[inputs]
s = ["n"]
t = ["n"]

[output]
L = "-sum(t * log(softmax(s)))"
"""


@pytest.mark.parametrize("assume", ["sum(t) = 1", "sum(t)=1", "sum(t) == 1"])
def test_a_layer_file_assumption_accepts_a_single_equals(assume, tmp_path, capsys):
    # by hand: dL/ds = softmax(s) * sum(t) - t, which is softmax(s) - t exactly when sum(t) == 1
    path = tmp_path / "sce.toml"
    path.write_text(SCE.format(assume=f'assume = ["{assume}"]'))
    status, out, _ = run(capsys, "prove", str(path), "--wrt", "s", "softmax(s) - t")
    assert status == 0, out


def test_without_the_equality_the_claim_is_refuted(tmp_path, capsys):
    path = tmp_path / "sce.toml"
    path.write_text(SCE.format(assume=""))
    status, _, _ = run(capsys, "prove", str(path), "--wrt", "s", "softmax(s) - t")
    assert status == 1
    status, out, _ = run(capsys, "prove", str(path), "--wrt", "s", "softmax(s) - t", "--assume", "sum(t) = 1")
    assert status == 0, out


def test_assume_with_single_equals_on_the_command_line_is_listed_with_double_equals(capsys):
    import json

    status, out, _ = run(
        capsys, "prove", "conv2d", "--wrt", "x", 'convolve(g, w, "full")', "--assume", "kh = H", "--json"
    )
    assert status == 0
    assert json.loads(out)["assumptions"] == ["kh <= H", "kw <= W", "kh == H"]


def test_an_error_after_a_single_equals_points_at_the_column_as_written(capsys):
    status, _, err = run(capsys, "prove", "conv2d", "--wrt", "x", "g", "--assume", "kh = Hx")
    assert status == 2
    assert "column 6" in err and "'Hx'" in err  # "kh = Hx": H is the 6th character


def test_two_single_equals_are_still_an_input_error(capsys):
    status, _, err = run(capsys, "prove", "conv2d", "--wrt", "x", "g", "--assume", "kh = H = W")
    assert status == 2 and len(err.strip().splitlines()) == 1


# -- 4. a lowercase sum with index arguments points to Sum -------------------------------------------
@pytest.mark.parametrize(
    ("claim", "names"),
    [
        ("dx[j] == sum(w[i, j] * g[i], i)", "i"),
        ("dx[j] == sum(w[i, j] * g[i], (i, 0, m - 1))", "i"),
        ("sum(w * g, m, n)", "m, n"),
    ],
)
def test_lowercase_sum_with_index_arguments_points_to_Sum(claim, names, capsys):
    status, _, err = run(capsys, "prove", "linear", "--wrt", "x", claim)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"Sum(body, {names})" in err and "unknown name" not in err and "dtype" not in err


def test_the_Sum_it_points_to_proves(capsys):
    status, _, _ = run(capsys, "prove", "linear", "--wrt", "x", "dx[j] == Sum(w[i, j] * g[i], i)")
    assert status == 0


def test_numpy_sum_over_an_axis_is_unchanged(capsys):
    # sum(w, 0)[p] = sum_i w[i, p], not the gradient w.T @ g (at g = 0 the gradient is 0)
    status, out, _ = run(capsys, "prove", "linear", "--wrt", "x", "sum(w, 0)")
    assert status == 1 and "refuted" in out


# -- 5. codegen refusing a claim prints its counterexample ---------------------------------------------
def test_codegen_refusing_a_refuted_claim_prints_its_counterexample_first(tmp_path, capsys):
    target = tmp_path / "m.py"
    status, out, err = run(capsys, "codegen", "linear", "--claim", "b", "2 * g", "-o", str(target))
    assert status == 1 and not target.exists()
    # what prove prints for the same claim, then the one-line refusal on stderr
    assert run(capsys, "prove", "linear", "--wrt", "b", "2 * g")[1] == out
    assert "refuted" in out and "at db[" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not writing" in lines[0]


def test_codegen_of_a_proved_claim_prints_no_verdict(tmp_path, capsys):
    status, out, _ = run(capsys, "codegen", "linear", "--claim", "b", "g", "-o", str(tmp_path / "m.py"))
    assert status == 0 and "refuted" not in out and out.startswith("wrote ")


# -- 6. show and derive print no SymPy class names ------------------------------------------------------
SYMPY_NAMES = ("Piecewise", "Ne(", "Eq(", "Min(", "Max(", "Indexed", "GSum", "ReduceMax", "floor(", "Mod(")
SHOWN = ["relu", "layer_norm", "batch_norm", "attention", "conv2d_nchw_s2p1", "conv2d_nchw_d2", "avg_pool2d_k2"]


def _inputs(name: str) -> list[str]:
    from symderive.layer import load_layer

    return list(load_layer(name).differentiable)


@pytest.mark.parametrize("name", SHOWN)
def test_show_and_derive_print_no_sympy_class_names(name, capsys):
    texts = [run(capsys, "show", name)]
    texts += [run(capsys, "derive", name, "--wrt", wrt) for wrt in _inputs(name)]
    for status, out, _ in texts:
        assert status == 0
        found = [w for w in SYMPY_NAMES if w in out] + re.findall(r"(?<![A-Za-z0-9])_k\w*", out)  # a SymPy dummy
        assert not found, (found, out)


def test_relu_shows_its_guard_in_brackets(capsys):
    _, out, _ = run(capsys, "show", "relu")
    assert "y[i0, i1] = [x[i0, i1] > 0]*x[i0, i1]" in out


def test_shapes_are_shown_in_layer_file_syntax(capsys):
    # conv2d with stride 2, padding 1: H_out = (H + 2 - kh) // 2 + 1, as torch documents
    _, out, _ = run(capsys, "show", "conv2d_nchw_s2p1")
    assert "output: y [N, O, ((H - kh) // 2) + 2, ((W - kw) // 2) + 2]" in out
