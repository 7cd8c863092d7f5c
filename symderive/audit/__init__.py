"""Reading derivation documents for ``symderive audit`` (DERIVATIONS.md).

>>> from symderive.audit import read_document
>>> [e.status for e in read_document("$$I(H, W)$$")]
['not an equation']
"""

from symderive._callable import make_callable

from .read import Entry, Link, read_document
from .symbols import LayerSymbols, load_layer_symbols

__all__ = ["Audit", "Entry", "LayerSymbols", "Link", "audit", "load_layer_symbols", "read_document"]


def __getattr__(name: str):
    # the decider is imported when an audit is asked for, not when a document is only read
    if name in ("audit", "Audit"):
        from . import check

        return getattr(check, name)
    raise AttributeError(f"module 'symderive.audit' has no attribute {name!r}")


# sd.audit(path) is LANGUAGE.md's function; the package forwards a call to it
make_callable(__name__)
