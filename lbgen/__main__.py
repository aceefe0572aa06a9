"""`python -m lbgen` runs the command line."""

from lbgen.cli import main

main()
