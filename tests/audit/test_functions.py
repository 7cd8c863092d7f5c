"""A derivation document over a layer file that declares its own abstract function
(``functions = ["f"]``): f and f' are read without a [functions] block, a step is decided for
every f, and a wrong one is refuted with the concrete f its counterexample names (recomputed
here by torch autograd)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from symderive.audit.check import audit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_layers" / "activation_f.toml"
NOTES = """```toml symderive
layer = "activation_f.toml"
```

$$\\frac{\\partial L}{\\partial b_i} = \\frac{\\partial L}{\\partial y_i} f'(z_i)$$

$$\\frac{\\partial L}{\\partial b_i} = \\frac{\\partial L}{\\partial y_i} f(z_i)$$

$$\\frac{\\partial y_i}{\\partial z_i} = f'(z_i)$$

$$\\frac{\\partial y_i}{\\partial z_i} = f'''(z_i)$$
"""


@pytest.mark.slow  # an audit of four steps, one refuted: ~2 s
def test_a_layer_files_own_function_is_read_and_decided_for_every_f(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "activation_f.toml")
    (tmp_path / "notes.md").write_text(NOTES, encoding="utf-8")
    result = audit(tmp_path / "notes.md", timeout=20)
    verdicts = {e.line: e.verdict for e in result.entries}
    assert verdicts == {5: "follows", 7: "does not follow", 9: "follows", 11: "not checked"}
    (third,) = [e for e in result.entries if e.line == 11]
    assert "read at most 2 times" in third.reason
    (wrong,) = [e for e in result.entries if e.line == 7]
    cex = wrong.wrong_link.counterexample
    u = sp.Symbol("u")
    f = sp.lambdify(u, sp.sympify(cex.functions["f"], locals={"u": u}), modules=[{"exp": torch.exp}, "math"])
    t = {k: torch.tensor(np.asarray(v, dtype=float), requires_grad=True) for k, v in cex.values.items()}
    (db,) = torch.autograd.grad((t["g"] * f(t["w"] @ t["x"] + t["b"])).sum(), t["b"])
    z = (t["w"] @ t["x"] + t["b"]).detach()
    (i,) = cex.index
    assert float(db[i]) == float(sp.sympify(cex.expected))
    assert float(t["g"][i].detach() * f(z)[i]) == float(sp.sympify(cex.claimed)) != float(db[i])
