"""`nasblocks train` (not registered yet)."""
