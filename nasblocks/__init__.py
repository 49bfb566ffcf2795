"""nasblocks."""
