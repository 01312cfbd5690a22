"""``python -m crmlens`` runs the CLI."""

from crmlens.cli import main

main()
