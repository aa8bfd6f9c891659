"""The `interp` command line (typer). One thin module per command under interp/cli/."""

from interp.cli.app import app
from interp.cli.entry import main

__all__ = ["app", "main"]
