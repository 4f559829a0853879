"""`python -m simokit.cli`: the same entry point as the `simokit` console script."""

import sys

from simokit.cli import main

sys.exit(main())
