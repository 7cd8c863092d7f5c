"""pytest plugin: layer files' claims as test items (being written)."""
