"""symderive: symbolic checks of backpropagation derivations."""

__version__ = "0.1.0"
