"""`python -m cvspec`: the same as the `cvspec` command."""

import sys

from cvspec.cli import main

sys.exit(main())
