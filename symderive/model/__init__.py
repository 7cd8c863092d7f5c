"""The layer model: Layer, loading TOML, consistency checks."""
