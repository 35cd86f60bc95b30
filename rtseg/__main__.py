"""``python -m rtseg ...`` (and ``torchrun ... -m rtseg ...``): the rtseg command line."""

import sys

from rtseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
