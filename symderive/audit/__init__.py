"""Reading derivation documents for ``symderive audit`` (DERIVATIONS.md).

>>> from symderive.audit import read_document
>>> [e.status for e in read_document("$$I(H, W)$$")]
['not an equation']
"""

from .read import Entry, Link, read_document
from .symbols import LayerSymbols, load_layer_symbols

__all__ = ["Entry", "LayerSymbols", "Link", "load_layer_symbols", "read_document"]
