"""`nasblocks summary` (not registered yet)."""
