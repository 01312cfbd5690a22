"""The ``crmlens`` command line (Typer + rich)."""

from crmlens.cli.app import app, main

__all__ = ["app", "main"]
