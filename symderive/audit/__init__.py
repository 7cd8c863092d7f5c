"""Reading derivation documents for ``symderive audit`` (DERIVATIONS.md)."""
