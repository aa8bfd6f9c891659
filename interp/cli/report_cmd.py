"""`interp report DIR`: rebuild the offline HTML report of a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.app import app
from interp.cli.common import console


@app.command("report")
def report_command(run_dir: Path = typer.Argument(..., help="a run directory (with summary.json)")) -> None:
    """Write DIR/report.html: summary, tables, and for trace runs the layer plot, head table and attention view."""
    from interp.errors import UserError
    from interp.report.html import write_report

    if not run_dir.is_dir():
        raise UserError(f"{run_dir} does not exist or is not a folder")
    path = write_report(run_dir)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, no network needed)")
