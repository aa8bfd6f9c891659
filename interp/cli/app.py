"""The typer app; commands register themselves on it from their own modules (`interp.cli.commands`
imports them), and `interp.cli.entry.main` runs it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="interp",
    help="Mechanistic study of subliminal bias transfer: probes, tracing, interventions, model making, evals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
