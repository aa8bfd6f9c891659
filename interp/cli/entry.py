"""The entry point of `interp`: runs the typer app with one-line errors, Ctrl-C handling and the
publishing of run folders (`main`)."""

from __future__ import annotations

import signal
import sys
from typing import Sequence

import typer

try:  # typer >= 0.26 carries its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

from interp.cli.app import app

INTERRUPTED = 130  # the shell's code for a process ended by SIGINT (128 + 2)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; always ends in SystemExit with the command's code.

    Bad input (a UserError from the command, or an option typer refuses while parsing: a value out
    of its range, NaN, an unknown choice, a missing / empty / binary input file) is one red line on
    stderr and exit 2. Ctrl-C is one line and exit 130. The run folders a command prepared are
    published when it succeeds; when it fails or is interrupted they are discarded, and what it
    wrote into --out directly is removed, so --out is left as it was.
    """
    from interp.cli import commands  # noqa: F401  (registers every command on `app`)
    from interp.cli.common import fail, interrupted
    from interp.errors import UserError
    from interp.report.runs import finish_runs

    command = typer.main.get_command(app)
    try:
        code = command.main(args=list(argv) if argv is not None else None, prog_name="interp", standalone_mode=False)
    except typer.Exit as e:  # raised by a command, not caught by the non-standalone main
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        finish_runs(success=False)
        interrupted()
    except UserError as e:
        finish_runs(success=False)
        fail(str(e))
    except NoArgsIsHelpError as e:  # `interp` or a group alone: its help
        print(e.format_message())
        code = e.exit_code
    except ClickException as e:  # typer's own parsing: bad option, value or file
        finish_runs(success=False)
        fail(usage_line(e) if isinstance(e, UsageError) else " ".join(e.format_message().split()))
    except BaseException:
        finish_runs(success=False)
        raise
    code = 0 if code is None else int(code)
    if code == INTERRUPTED:  # typer turns KeyboardInterrupt inside a command into Exit(130)
        finish_runs(success=False)
        interrupted()
    finish_runs(success=code == 0)
    if argv is None and code == 0:  # the process (not a test calling main): the results are published, so a
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C during interpreter teardown (~1 s) cannot turn it into 130
    sys.exit(code)


def usage_line(e: UsageError) -> str:
    """One line for typer's usage errors: the message (its newlines folded) and where to look."""
    message = " ".join(e.format_message().split()).replace("Value error, ", "")
    command = e.ctx.command_path if e.ctx is not None else "interp"
    return f"{message} (see `{command} --help`)"
