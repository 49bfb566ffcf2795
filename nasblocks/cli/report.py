"""`nasblocks report` (not registered yet)."""
