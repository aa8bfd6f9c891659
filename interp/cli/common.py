"""Shared CLI pieces: options, model loading with quiet transformers, tables, error output."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional

import typer
from rich.console import Console
from rich.table import Table

from interp.errors import UserError

console = Console()
err_console = Console(stderr=True)

ModelOpt = typer.Option("smollm2", "--model", "-m", help="alias (see `interp models`), local folder, adapter folder or HF id")
OutOpt = typer.Option(None, "--out", "-o", help="output folder (default runs/<command>/<timestamp>)")
ForceOpt = typer.Option(False, "--force", help="write into a non-empty --out folder")
SeedOpt = typer.Option(0, "--seed", help="random seed")
DeviceOpt = typer.Option("cpu", "--device", help="cpu | cuda | auto")
DtypeOpt = typer.Option("fp32", "--dtype", help="fp32 | bf16 | fp16")
BatchOpt = typer.Option(16, "--batch-size", help="prompts per forward pass")


def quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load(name: str, device: str = "cpu", dtype: str = "fp32", attn_implementation: Optional[str] = None) -> Any:
    quiet_transformers()
    from interp.models import load_model

    with err_console.status(f"loading {name}"):
        return load_model(name, device=device, dtype=dtype, attn_implementation=attn_implementation)


def fail(message: str) -> None:
    """Print one error line and exit 2 (used by main for every UserError)."""
    err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[fmt(v) for v in r])
    console.print(table)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def ci(iv: Any) -> str:
    """'1.2345 [1.1000, 1.4000]' from an Interval or its dict."""
    d = iv.to_dict() if hasattr(iv, "to_dict") else iv
    return f"{fmt(d['estimate'])} [{fmt(d['lo'])}, {fmt(d['hi'])}]"


def exactly_one(**given: Any) -> str:
    names = [k for k, v in given.items() if v]
    if len(names) > 1:
        raise UserError("give only one of " + ", ".join("--" + k.replace("_", "-") for k in given))
    return names[0] if names else ""
