"""The submissions, checked against the derived gradient (each runs in a bounded child process)."""

from pathlib import Path

import pytest

from symderive.checking import check_implementation

HERE = Path(__file__).parent


@pytest.mark.parametrize(("student", "status"), [("alice", "ok"), ("bob", "wrong")])
def test_submission(student, status):
    report = check_implementation(HERE / "conv2d.symd.toml", "x", f"{HERE}/students/{student}.py:conv2d_backward_x")
    assert report.status == status, report.details()
