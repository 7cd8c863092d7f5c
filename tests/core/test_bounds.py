"""Bounds: every input size, every solver call and every command has a limit with a clear message.

Text length, syntax-tree size, nesting depth and literal size are input errors (exit 2)
that say which bound was hit; concrete evaluation at huge constant sizes ends in an input
error or ``unknown`` with a reason, quickly; every z3 call runs under the deterministic
resource limit ``symderive.domains.RLIMIT``, so exhausting it gives ``unknown`` and the
same verdict on every run; ``--timeout`` guards the command by wall clock.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import sympy as sp
import z3

import symderive.core.domains as domains
from symderive.cli import main
from symderive.prove import prove


def run_prove(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["prove", *argv], prog="symderive")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("claim", "words"),
    [
        pytest.param("w.T @ g + " + " + ".join(["0 * g"] * 900), "too long", id="text-length"),
        pytest.param(" + ".join(["w.T @ g"] * 500), "too", id="expression-size"),
        pytest.param("-" * 150 + "w.T @ g", "nested", id="nesting-depth"),
        pytest.param("exp(" * 120 + "w.T @ g" + ")" * 120, "nested", id="call-depth"),
        pytest.param("w.T @ g * 10**10**10", "too large", id="power-tower"),
        pytest.param("w.T @ g * 2**100", "too large", id="big-exponent"),
        pytest.param("w.T @ g * 1" + "0" * 30, "too large", id="big-literal"),
        pytest.param("w.T @ g * 1e400", "too large", id="float-overflow"),
    ],
)
def test_oversized_claims_hit_a_named_bound(capsys, claim, words):
    start = time.perf_counter()
    code, out, err = run_prove(capsys, "linear", "--wrt", "x", claim)
    assert time.perf_counter() - start < 20
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1
    assert words in err, err
    assert "Traceback" not in err


def test_huge_constant_sizes_are_bounded(capsys, tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text('name = "huge"\n[inputs]\nx = ["100000", "100000"]\n[output]\ny = "2 * x"\n', encoding="utf-8")
    start = time.perf_counter()
    code, out, err = run_prove(capsys, str(path), "--wrt", "x", "--timeout", "60", "3 * g")
    assert time.perf_counter() - start < 60
    assert code in (1, 2, 3), out + err
    assert "Traceback" not in out + err
    if code == 3:
        # an unknown says why: the sizes are beyond the concrete search
        assert "beyond the concrete search" in out, out


def test_a_fixed_size_layer_above_the_usual_search_limit_is_still_searched(capsys, tmp_path):
    # 6 x 6 (72 scalar unknowns with g) was skipped as too large and answered unknown;
    # the smallest allowed size is always searched, and a fixed-size layer has no other
    path = tmp_path / "square6.toml"
    path.write_text('name = "square6"\n[inputs]\nx = ["6", "6"]\n[output]\ny = "x * x"\n', encoding="utf-8")
    code, out, err = run_prove(capsys, str(path), "--wrt", "x", "--json", "3 * x * g")
    assert code == 1, out + err
    found = json.loads(out)["counterexample"]
    x, g = np.array(found["values"]["x"], dtype=float), np.array(found["values"]["g"], dtype=float)
    # d/dx sum(g * x * x) = 2 x g, independently of symderive
    assert (
        2 * x[tuple(found["index"])] * g[tuple(found["index"])]
        != 3 * x[tuple(found["index"])] * g[tuple(found["index"])]
    )
    if code == 3:
        assert out.strip(), "unknown without a reason"


def test_solver_calls_use_the_resource_limit(monkeypatch):
    seen = []
    original = z3.Solver.set

    def spy(self, *args, **kwargs):
        seen.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(z3.Solver, "set", spy)
    assert domains.new_solver() is not None
    assert ("rlimit", domains.RLIMIT) in seen
    assert 0 < domains.RLIMIT <= 10**9


def _hard_presburger(n: int = 14):
    """A satisfiable but laborious question: n integer variables tied by congruences and sums."""
    xs = sp.symbols(f"v0:{n}", integer=True)
    conds = [sp.Ge(v, 0) for v in xs]
    conds += [sp.Eq(sp.Mod(3 * xs[i] + 5 * xs[(i + 1) % n], 7 + i), 1 + i % 3) for i in range(n)]
    conds += [sp.Eq(sum((i + 2) * v for i, v in enumerate(xs)), 10007)]
    return conds


def test_hard_query_is_unknown_within_its_bound_every_time(monkeypatch):
    monkeypatch.setattr(domains, "RLIMIT", 2000)
    answers = [domains.check(_hard_presburger())[0] for _ in range(3)]
    assert answers == [None, None, None]


@pytest.mark.slow
def test_exhausted_resource_limit_gives_the_same_unknown_on_every_run(monkeypatch):
    monkeypatch.setattr(domains, "RLIMIT", 1)
    verdicts = [prove("conv2d", "x", "convolve(g, w, 'full')", timeout=60) for _ in range(3)]
    assert [v.verdict for v in verdicts] == ["unknown"] * 3
    assert len({v.reason for v in verdicts}) == 1
    assert verdicts[0].reason


def test_exhausted_resource_limit_never_proves_a_false_claim(monkeypatch):
    monkeypatch.setattr(domains, "RLIMIT", 1)
    v = prove("conv2d", "x", "convolve(g, flip(w), 'full')", timeout=60)
    assert v.verdict in ("refuted", "unknown")


def test_tiny_timeout_gives_unknown_timeout(capsys):
    claim = (
        "(softmax(Q @ K.T / sqrt(d), axis=-1) * (g @ V.T - sum((g @ V.T) * softmax(Q @ K.T / sqrt(d), axis=-1),"
        " axis=-1, keepdims=True))) @ K / sqrt(d)"
    )
    start = time.perf_counter()
    code, out, err = run_prove(capsys, "attention", "--wrt", "Q", "--timeout", "0.2", "--json", claim)
    assert time.perf_counter() - start < 10
    assert code == 3, out + err
    assert '"verdict": "unknown"' in out
    assert "timeout" in out


def test_timeout_is_counted_per_claim_in_a_batch(capsys, tmp_path):
    batch = tmp_path / "batch.json"
    batch.write_text(
        '[{"layer": "attention", "wrt": "Q", "claim": "(softmax(Q @ K.T / sqrt(d), axis=-1) * (g @ V.T)) @ K"},'
        ' {"layer": "linear", "wrt": "x", "claim": "w.T @ g"}]',
        encoding="utf-8",
    )
    code, out, err = run_prove(capsys, "--batch", str(batch), "--json", "--timeout", "0.05")
    lines = out.strip().splitlines()
    assert len(lines) == 2, out + err
    assert '"unknown"' in lines[0] and "timeout" in lines[0]
