"""``python -m convlayer ...``: the same command line as ``convlayer ...``."""

import sys

from .cli import main

sys.exit(main())
