"""`nasblocks export` (not registered yet)."""
