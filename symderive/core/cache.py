"""Cache keys for objects without a hash of their own.

A :class:`~symderive.model.layer.Layer` holds dicts (no hash) and a
:class:`~symderive.core.ir.Tensor` compares by shape only (its element function is left
out), so neither can key a cache by value. :class:`Same` keys one by identity: equal only
to a key of the very same object. An ``functools.lru_cache`` holding the key keeps the object
alive, so its id is not reused while the entry exists.

>>> a, b = [1], [1]
>>> Same(a) == Same(a), Same(a) == Same(b)
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class Same:
    """An object as a cache key, equal only to itself (see the module's docstring).

    >>> len({Same(x) for x in ([], [])})
    2
    """

    value: object

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other) -> bool:
        return isinstance(other, Same) and other.value is self.value
