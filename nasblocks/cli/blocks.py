"""`nasblocks blocks` (not registered yet)."""
