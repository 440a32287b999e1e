"""Fails while being imported, on line 5."""

X = 1

raise RuntimeError("engine library not found")
