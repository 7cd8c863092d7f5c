"""The calculus: derivation of gradients, and their presentation as a separate step."""
