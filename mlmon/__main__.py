"""`python -m mlmon` is the `mlmon` command."""

import sys

from mlmon.cli import main

sys.exit(main())
