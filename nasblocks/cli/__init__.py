"""The ``nasblocks`` command: one file per command group, each a thin layer over the library."""
