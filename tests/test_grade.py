"""``symderive grade``: the class in examples/course/class graded row by row, the outputs, Gradescope's schema.

The expected statuses are written from what each submission is (its docstring says it),
not from the grader's output.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from symderive.cli import main
from symderive.grade import find_submissions, grade

CLASS = Path(__file__).parents[1] / "examples" / "course" / "class"
FAST = {"jobs": 2, "timeout": 2.0, "memory_mb": 300}

CONV2D = {
    # correct, in different styles
    "loops": "correct",
    "pad_windows": "correct",
    "fft": "correct",
    "einsum": "correct",
    "scipy_full": "correct",
    "correlate_flipped": "correct",
    "torch_transpose": "correct",
    "single_precision": "correct",  # float32, compared at float32 tolerances
    "nested_list": "correct",  # converted as NumPy would
    "chatty": "correct",  # megabytes printed
    "forks": "correct",  # a sleeping process left behind each call
    "kwargs": "correct",
    "ivan": "correct",  # a student's folder with a helper module
    # the typical bugs
    "no_flip": "wrong",
    "flip_rows_only": "wrong",
    "pad_off_by_one": "wrong",
    "flip_in_place": "wrong",  # swapping rows of views in place copies one onto the other
    "plus_bias": "wrong",
    "integer_result": "wrong",
    "same_mode": "wrong shape",  # (H - kh + 1, W - kw + 1) is not x's shape once the kernel is larger than 1x1
    "valid_mode": "wrong shape",
    "square_kernel": "wrong shape",  # kw taken from kh: the width is wrong for a 1x2 kernel
    "transposed_kernel": "wrong shape",
    "upstream_shape": "wrong shape",
    "squeezed": "wrong shape",  # H = W = 1 squeezed to shape ()
    "forgot_return": "wrong shape",  # None
    "raises": "raised",
    "exits": "raised",  # sys.exit: SystemExit
    "os_exit": "raised",  # the interpreter ends without a result
    "hangs": "timeout",
    "memory_hungry": "memory",
    "syntax_error": "not loaded",
    "misnamed": "missing function",
}
LINEAR = {
    "transpose": "correct",
    "einsum": "correct",
    "loops": "correct",
    "w_for_wt": "raised",  # w @ g: the shapes do not align unless m == n
    "wrong_axis": "wrong shape",  # a vector of length m, not n
    "forgot_g": "wrong",
}
#: the wrong formula each nameable bug computes, written from the submission (the others name none)
NO_FLIP = "correlate(g, w, 'full'): the kernel is not flipped (a correlation where the gradient is a convolution)"
CONV2D_MISTAKES = {
    "no_flip": NO_FLIP,
    "pad_off_by_one": "convolve(g, w, 'full') shifted by (1, 1): an off-by-one padding",  # g padded by kh, not kh - 1
    "same_mode": "convolve(g, w, 'same'): mode 'full', not 'same'",
    "valid_mode": "convolve(g, w, 'valid'): mode 'full', not 'valid'",
    "transposed_kernel": "convolve(g, w.T, 'full'): w must not be transposed",
}
LINEAR_MISTAKES = {"w_for_wt": "w @ g: w must be transposed"}
SOFTMAX_CE_MISTAKES = {"sign": "-(softmax(s) - t): the sign is the other way"}  # t - softmax(s)
SOFTMAX_CE = {
    "stable": "correct",
    "scipy_softmax": "correct",
    "no_target": "wrong",
    "sign": "wrong",
    "log_softmax": "wrong",
    "target_in_place": "wrong",
}


@pytest.fixture(scope="module")
def conv2d_class():
    return grade("conv2d", "x", "conv2d_backward_x", [str(CLASS / "conv2d")], **FAST)


def test_the_class_has_thirty_conv2d_submissions_and_more_over_three_layers():
    assert len(find_submissions([str(CLASS / "conv2d")], "conv2d_backward_x")) >= 30
    total = sum(len(list((CLASS / d).iterdir())) for d in ("conv2d", "linear", "softmax_ce"))
    assert total >= 30


def test_every_conv2d_row(conv2d_class):
    statuses = {r.student: r.status for r in conv2d_class.rows}
    assert statuses == CONV2D
    for r in conv2d_class.rows:
        if r.status == "correct":
            assert r.score == 1.0 and r.counterexample is None, r
        else:
            assert r.score < 1.0 and r.message, r


def test_scores_are_the_fraction_of_size_classes_passed(conv2d_class):
    rows = {r.student: r for r in conv2d_class.rows}
    n = len(conv2d_class.rubric)
    # squeezed fails only where H = W = 1 (the first class: a 1x1 image)
    first = conv2d_class.rubric[0].sizes
    assert first == {"H": 1, "W": 1, "kh": 1, "kw": 1}
    assert rows["squeezed"].passed == (False,) + (True,) * (n - 1)
    # no_flip passes exactly the classes whose kernel is 1x1 (a flip changes nothing there)
    one_by_one = tuple(p.sizes["kh"] == 1 and p.sizes["kw"] == 1 for p in conv2d_class.rubric)
    assert rows["no_flip"].passed == one_by_one
    assert rows["no_flip"].score == round(sum(one_by_one) / n, 4)
    # hanging, crashing, missing: no class passed
    for name in ("hangs", "memory_hungry", "syntax_error", "misnamed", "raises"):
        assert rows[name].score == 0.0
    # a large class beyond the sweep is part of the rubric
    assert "large" in conv2d_class.rubric[-1].reasons[0]
    assert sum(conv2d_class.rubric[-1].sizes.values()) > max(sum(p.sizes.values()) for p in conv2d_class.rubric[:-1])


def test_the_smallest_failing_case_of_no_flip_is_the_hand_computed_one(conv2d_class):
    row = next(r for r in conv2d_class.rows if r.student == "no_flip")
    cx = row.counterexample
    # the smallest sizes where a flip shows: a 1x2 kernel on a 1x2 image (g is 1x1)
    assert cx["sizes"] == {"H": 1, "W": 2, "kh": 1, "kw": 2}
    g, w = np.array(cx["inputs"]["g"]), np.array(cx["inputs"]["w"])
    assert np.allclose(cx["expected"], g[0, 0] * w)  # the full convolution of a 1x1 g with w
    assert np.allclose(cx["returned"], g[0, 0] * w[:, ::-1])
    assert cx["differing"] == [[0, 0], [0, 1]]


def test_the_nameable_bugs_are_named_and_no_other(conv2d_class):
    named = {r.student: r.mistake for r in conv2d_class.rows if r.mistake}
    assert named == {k: f"your function computes {v}" for k, v in CONV2D_MISTAKES.items()}


def test_a_float32_result_is_reported_with_its_dtype(conv2d_class):
    row = next(r for r in conv2d_class.rows if r.student == "single_precision")
    assert "float32" in row.message


def test_the_class_summary_counts_every_status(conv2d_class):
    summary = conv2d_class.summary()
    expected = {s: list(CONV2D.values()).count(s) for s in summary["statuses"]}
    assert summary["statuses"] == expected and summary["submissions"] == len(CONV2D)
    assert summary["mistakes"] == {f"your function computes {v}": 1 for v in CONV2D_MISTAKES.values()}


@pytest.mark.parametrize(
    ("folder", "layer", "function", "statuses", "mistakes"),
    [
        ("linear", "linear", "linear_backward_x", LINEAR, LINEAR_MISTAKES),
        # the other bugs of this class (log-softmax, no target, s changed in place) are no one-place edit
        ("softmax_ce", "softmax_cross_entropy", "softmax_ce_backward_s", SOFTMAX_CE, SOFTMAX_CE_MISTAKES),
    ],
)
def test_every_row_of_the_other_layers(folder, layer, function, statuses, mistakes):
    result = grade(layer, "s" if layer.startswith("softmax") else "x", function, [str(CLASS / folder)], **FAST)
    assert {r.student: r.status for r in result.rows} == statuses
    assert {r.student: r.mistake for r in result.rows if r.mistake} == {
        k: f"your function computes {v}" for k, v in mistakes.items()
    }


# -- the command line -------------------------------------------------------------------------------
@pytest.fixture
def small_class(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ann.py").write_text("def dx(w, g):\n    return w.T @ g\n")
    (folder / "ben.py").write_text("def dx(w, g):\n    return w.T @ g + 1\n")
    (folder / "cid").mkdir()
    (folder / "cid" / "main.py").write_text(
        "import numpy as np\n\ndef dx(w, g):\n    return np.einsum('i,ij->j', g, w)\n"
    )
    return folder


def run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_outputs_csv_markdown_json(small_class, tmp_path, capsys):
    base = ["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class), "--jobs", "2"]
    status, out, err = run([*base, "-o", str(tmp_path / "t.json")], capsys)
    assert status == 1 and err == ""
    data = json.loads((tmp_path / "t.json").read_text())
    rows = data["submissions"]
    assert [(r["student"], r["status"]) for r in rows] == [("ann", "correct"), ("ben", "wrong"), ("cid", "correct")]
    for r in rows:
        assert set(r) == {"student", "path", "status", "score", "mistake", "counterexample", "seconds"}
        assert r["mistake"] is None
    assert rows[1]["counterexample"]["sizes"] == {"n": 1, "m": 1}
    # ben adds 1 everywhere: returned - expected is 1 at every element
    assert np.allclose(np.array(rows[1]["counterexample"]["returned"]) - rows[1]["counterexample"]["expected"], 1)
    assert data["summary"]["statuses"]["correct"] == 2 and data["summary"]["statuses"]["wrong"] == 1
    assert rows[2]["path"].endswith("cid")
    # the table on stdout names the rubric
    assert "size classes passed" in out and "ben" in out

    status, _, _ = run([*base, "-o", str(tmp_path / "t.csv")], capsys)
    table = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert status == 1 and [r["status"] for r in table] == ["correct", "wrong", "correct"]
    assert table[1]["sizes"] == "n=1, m=1" and table[0]["score"] == "1.0"

    status, _, _ = run([*base, "-o", str(tmp_path / "t.md")], capsys)
    md = (tmp_path / "t.md").read_text()
    assert status == 1 and "| ben | wrong | 0.00 |" in md and "| missing function | 0 |" in md


def test_cli_exit_zero_when_all_correct_and_two_on_input_errors(small_class, capsys):
    ok = ["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "ann.py")]
    assert run(ok, capsys)[0] == 0
    for argv, where in [
        (["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "nobody.py")], "PATH"),
        (["grade", "linear", "--wrt", "q", "--function", "dx", str(small_class)], "--wrt"),
        (["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "zz*")], "PATH"),
        ([*ok, "-o", "table.txt"], "-o"),
        ([*ok, str(small_class / "ben.py"), "--gradescope", str(small_class.parent / "r.json")], "--gradescope"),
        ([*ok, "--jobs", "0"], "--jobs"),
    ]:
        status, out, err = run(argv, capsys)
        assert status == 2 and len(err.strip().splitlines()) == 1 and where in err, (argv, err)


def test_globs_and_student_names(small_class):
    subs = find_submissions([str(small_class / "*.py"), str(small_class)], "dx")
    names = [(s.student, Path(s.file).name) for s in subs]
    assert names == [("ann", "ann.py"), ("ben", "ben.py"), ("ann", "ann.py"), ("ben", "ben.py"), ("cid", "main.py")]
    # one submission (Gradescope): a folder is the student's own
    (one,) = find_submissions([str(small_class / "cid")], "dx", one=True)
    assert one.student == "cid" and Path(one.file).name == "main.py"


# -- Gradescope -----------------------------------------------------------------------------------
# Gradescope's results.json (gradescope-autograders.readthedocs.io, "Autograder Specifications",
# "Output format"), written out by hand: the keys grade writes and their types
GRADESCOPE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "integer"},
        "output": {"type": "string"},
        "visibility": {"type": "string", "enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"type": "string", "enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"type": "string", "enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": {
                        "type": "string",
                        "enum": ["hidden", "after_due_date", "after_published", "visible"],
                    },
                    "extra_data": {"type": "object"},
                },
                "required": ["name", "score", "max_score", "status", "output", "visibility"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["score", "execution_time", "output", "tests"],
    "additionalProperties": False,
}
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
}


def schema_errors(value, schema, where="$") -> list[str]:
    """The places where ``value`` breaks ``schema`` (the JSON-Schema subset above)."""
    kind = JSON_TYPES[schema["type"]]
    if not isinstance(value, kind) or isinstance(value, bool):
        return [f"{where}: {type(value).__name__}, not {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if schema["type"] == "object" and "properties" in schema:
        errors += [f"{where}: no {key!r}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key not in schema["properties"]:
                errors.append(f"{where}: unknown key {key!r}")
            else:
                errors += schema_errors(item, schema["properties"][key], f"{where}.{key}")
    if schema["type"] == "array":
        for k, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{k}]")
    return errors


def test_the_schema_check_can_fail():
    good = {"score": 1.0, "execution_time": 1, "output": "", "tests": []}
    assert schema_errors(good, GRADESCOPE_SCHEMA) == []
    assert schema_errors({**good, "execution_time": 1.5}, GRADESCOPE_SCHEMA)
    assert schema_errors({**good, "tests": [{"name": "a"}]}, GRADESCOPE_SCHEMA)
    assert schema_errors({**good, "extra": 1}, GRADESCOPE_SCHEMA)


@pytest.mark.parametrize("hidden", [False, True])
def test_gradescope_results_follow_the_schema(small_class, tmp_path, capsys, hidden):
    out = tmp_path / "results.json"
    argv = ["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "ben.py"), "--gradescope", str(out)]
    status, _, _ = run(argv + (["--hidden"] if hidden else []), capsys)
    results = json.loads(out.read_text())
    assert status == 1 and schema_errors(results, GRADESCOPE_SCHEMA) == []
    tests = results["tests"]
    # ben is wrong at every size: no test passed, the score is their sum
    assert [t["status"] for t in tests] == ["failed"] * len(tests) and results["score"] == 0
    assert all(t["max_score"] == 1 for t in tests) and "Rubric" in results["output"]
    first = tests[0]["output"]
    assert "sizes: n=1, m=1" in first and "differing elements: [0]" in first
    assert ("expected dx =" in first) is not hidden


def test_gradescope_score_of_a_correct_submission(small_class, tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = ["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "cid"), "--gradescope", str(out)]
    assert run(argv, capsys)[0] == 0
    results = json.loads(out.read_text())
    assert schema_errors(results, GRADESCOPE_SCHEMA) == []
    assert results["score"] == len(results["tests"]) and all(t["status"] == "passed" for t in results["tests"])


def test_hidden_drops_the_expected_array_everywhere(small_class, tmp_path, capsys):
    target = tmp_path / "t.json"
    argv = ["grade", "linear", "--wrt", "x", "--function", "dx", str(small_class / "ben.py"), "--hidden", "-o"]
    run([*argv, str(target)], capsys)
    cx = json.loads(target.read_text())["submissions"][0]["counterexample"]
    assert "expected" not in cx and cx["sizes"] == {"n": 1, "m": 1} and cx["differing"] == [[0]]


# -- the pytest side ------------------------------------------------------------------------------
def test_assert_implementation_passes_and_fails_with_checks_message(tmp_path, capsys):
    from symderive.testing import assert_implementation

    assert assert_implementation("linear", "x", lambda w, g: w.T @ g).ok
    (tmp_path / "ben.py").write_text("def dx(w, g):\n    return w.T @ g + 1\n")
    spec = f"{tmp_path}/ben.py:dx"
    with pytest.raises(AssertionError) as caught:
        assert_implementation("linear", "x", spec)
    main(["check", "linear", "--wrt", "x", "--impl", spec])
    assert str(caught.value) == capsys.readouterr().out.rstrip("\n")
    assert str(caught.value).startswith(f"{spec}: DIFFERS\n  wrong at sizes n=1, m=1")


def test_assert_gradient_given_a_function_points_to_assert_implementation():
    from symderive.testing import assert_gradient

    with pytest.raises(TypeError, match="assert_implementation"):
        assert_gradient("linear", "x", lambda w, g: w.T @ g)
