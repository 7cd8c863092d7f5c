"""Tests mirror the package's layers in folders; this file puts ``tests/`` itself on
``sys.path`` (pytest's rootdir-relative import), so a test in ``tests/emit/`` can reuse
the torch oracles of ``tests/test_layers_torch.py``."""
