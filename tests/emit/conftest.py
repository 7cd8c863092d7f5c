"""Session fixtures of tests/emit/test_torch.py and test_jax.py: every built-in layer emitted once per
target, and the emitted pytest modules run once per target (see emitted_layers.py)."""

from __future__ import annotations

import pytest
from emitted_layers import Emitted, emitted_in


@pytest.fixture(scope="session")
def emitted_torch(tmp_path_factory) -> Emitted:
    return emitted_in(tmp_path_factory, "torch")


@pytest.fixture(scope="session")
def emitted_jax(tmp_path_factory) -> Emitted:
    return emitted_in(tmp_path_factory, "jax")


@pytest.fixture(scope="session")
def torch_test_results(emitted_torch) -> dict:
    return emitted_torch.run_tests()


@pytest.fixture(scope="session")
def jax_test_results(emitted_jax) -> dict:
    return emitted_jax.run_tests()
