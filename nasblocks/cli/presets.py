"""`nasblocks presets` (not registered yet)."""
