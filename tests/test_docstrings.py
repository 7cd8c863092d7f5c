"""Every docstring example in the package runs and prints what it says (doctest).

The style asks for a tiny example on every public function; this keeps the examples true.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import symderive

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(symderive.__path__, prefix="symderive.")
    if not name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples in {name} fail (run doctest -v)"
    )


def test_the_package_has_docstring_examples():
    # the runner above would pass vacuously if it found no examples at all
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for name in MODULES for test in finder.find(importlib.import_module(name)))
    assert examples > 200
