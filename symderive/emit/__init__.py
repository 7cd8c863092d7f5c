"""Emission: NumPy lowering, module assembly, self-check, emitted tests."""
