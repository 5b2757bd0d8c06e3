"""Per-layer tools: which PyTorch module every op of an artifact came from (modules.py, written
at export as layers.json), where the time goes (profile.py) and where the accuracy goes
(diff.py)."""
