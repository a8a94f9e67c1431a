"""`python -m cvspec`: the same as the `cvspec` command."""

from cvspec.console import main

main()
