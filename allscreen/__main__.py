"""`python -m allscreen` is the `allscreen` command."""

from cli.main import main

main()
