"""`python -m evolver` runs the CLI."""

from evolver.cli.app import main

main()
