"""``python -m p2p.controller``: the same command as ``p2p-node``."""

import sys

from p2p.controller.cli import main

if __name__ == "__main__":
    sys.exit(main())
