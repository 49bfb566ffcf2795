"""`nasblocks search` (not registered yet)."""
