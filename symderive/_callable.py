"""Modules that can be called like their main function.

``symderive.prove`` is both a module and, in LANGUAGE.md's API, a function
(``sd.prove(layer, wrt, claim)``). Importing a submodule binds it on the package under
its own name, so the package cannot simply hold the function there; instead the three
modules named after their function (prove, derive, report) forward a call to it.
"""

from __future__ import annotations

import sys
import types


class CallableModule(types.ModuleType):
    """A module whose call runs the function of the same name in it."""

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Let ``module(...)`` call ``module.<its last name>(...)``.

    >>> import symderive.prove as p
    >>> callable(p)
    True
    """
    sys.modules[module_name].__class__ = CallableModule
