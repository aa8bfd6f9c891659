"""The typer app and its entry point; commands register themselves from their own modules."""

from __future__ import annotations

from typing import Sequence

import typer

app = typer.Typer(
    name="interp",
    help="Mechanistic study of subliminal bias transfer: probes, tracing, interventions, model making, evals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: bad input (UserError) becomes one red line and exit code 2. The run folders a
    command prepared are published when it succeeds and left untouched when it fails."""
    from interp.cli import commands  # noqa: F401  (registers every command on `app`)
    from interp.cli.common import fail
    from interp.errors import UserError
    from interp.report.runs import finish_runs

    try:
        app(args=list(argv) if argv is not None else None, prog_name="interp")
    except SystemExit as e:  # typer ends every command with SystemExit (code 0 on success)
        finish_runs(success=e.code in (0, None))
        raise
    except UserError as e:
        finish_runs(success=False)
        fail(str(e))
    except BaseException:
        finish_runs(success=False)
        raise
    finish_runs(success=True)
