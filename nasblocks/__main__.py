"""``python -m nasblocks ...``: the ``nasblocks`` command, for environments without its script."""

import sys

from nasblocks.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
