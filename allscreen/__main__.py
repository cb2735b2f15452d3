"""`python -m allscreen` is the `allscreen` command."""

from allscreen.cli import main

main()
