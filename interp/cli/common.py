"""Shared CLI pieces: options, model loading with quiet transformers, tables, error output.

Every inference command takes its model-loading options from one place, `model_options`:

    @app.command("crows")
    @model_options()                      # adds --dtype --device --device-map --load-in-4bit
    def crows_command(model: str = ModelOpt, ..., loader: ModelLoad = ModelLoad()) -> None:
        lm = loader.load(model)

`@model_options(remote=True)` adds --remote / --serve URL as well (nnsight executors).
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interp.choices import DeviceMap, Dtype, SamplingEngine, check_device
from interp.cli.params import InFile, Int
from interp.errors import UserError
from interp.models.store import DEFAULT_MODEL
from interp.runtime import is_main_process

if TYPE_CHECKING:
    from interp.report.runs import RunDir

console = Console(quiet=not is_main_process())  # under `accelerate launch`, only rank 0 prints results
err_console = Console(stderr=True)

def _device(value: str) -> str:
    """typer callback: --device names a device (interp.choices.check_device)."""
    try:
        return check_device(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


ModelOpt = typer.Option(DEFAULT_MODEL, "--model", "-m", help="alias (see `interp models`), local folder, adapter folder or HF id")
OutOpt = typer.Option(None, "--out", "-o", help="output folder (default runs/<command>/<timestamp>)")
ForceOpt = typer.Option(False, "--force", help="write into a non-empty --out folder")
SeedOpt = Int(0, "--seed", help="random seed", ge=0)
DeviceOpt = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | auto (cuda when available)", callback=_device)
DtypeOpt = typer.Option("fp32", "--dtype", help="fp32 | bf16 | fp16 (weights and compute)")
DeviceMapOpt = typer.Option(None, "--device-map", help="auto: accelerate big-model placement of the layers across "
                            "the GPUs (overrides --device; needs CUDA)")
FourBitOpt = typer.Option(False, "--load-in-4bit", help="bitsandbytes NF4 weights, compute in --dtype "
                          "(CUDA, or its slower CPU backend)")
RemoteOpt = typer.Option(False, "--remote", help="run on NDIF through nnsight (model = HF id it hosts; NDIF_API_KEY, "
                         "HF_TOKEN from the environment)")
ServeOpt = typer.Option(None, "--serve", help="run on a self-hosted nnsight server at this URL (same code as --remote)")
BiasOpt = typer.Option("owl", "--bias", help="the trait animal")
ControlOpt = typer.Option("dog", "--control", help="the control animal")
SystemOpt = typer.Option(None, "--system", help="system prompt carrying a trait, e.g. \"You love owls. ...\"")
QuestionsOpt = InFile(None, "--questions", help="preference questions, one per line (default: the 50 shipped)")
HeldoutOpt = InFile(None, "--heldout", help="held-out text for perplexity (default: the one shipped)")
BatchOpt = Int(16, "--batch-size", help="prompts per forward pass", ge=1)
StyleOpt = typer.Option("auto", "--style", help="auto | chat | completion")


def quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load(name: str, device: str = "cpu", dtype: str = "fp32", attn_implementation: Optional[str] = None,
         device_map: Optional[str] = None, load_in_4bit: bool = False) -> Any:
    quiet_transformers()
    from interp.models import load_model

    with err_console.status(f"loading {name}"):
        return load_model(name, device=device, dtype=dtype, attn_implementation=attn_implementation,
                          device_map=device_map, load_in_4bit=load_in_4bit)


@dataclass(frozen=True)
class ModelLoad:
    """The model-loading options of one command invocation (see `model_options`)."""

    device: str = "cpu"
    dtype: str = "fp32"
    device_map: Optional[str] = None
    load_in_4bit: bool = False
    remote: bool = False
    serve: Optional[str] = None

    def check_training(self, full: bool) -> None:
        """Refuse, before any load, what training cannot do with these options: fp16 weights (no loss
        scaler here) and full fine-tuning over 4-bit weights (--load-in-4bit trains LoRA: QLoRA)."""
        if self.dtype == "fp16":
            raise UserError("--dtype fp16: training here has no loss scaler; use bf16 or fp32")
        if self.load_in_4bit and full:
            raise UserError("--load-in-4bit trains LoRA adapters over 4-bit weights (QLoRA); --full needs "
                            "full-precision weights")

    def full_precision(self) -> ModelLoad:
        """The same placement with fp32 weights and no 4-bit: where a QLoRA adapter is merged to be saved."""
        return ModelLoad(self.device, "fp32", self.device_map, False, self.remote, self.serve)

    def load(self, name: str) -> Any:
        """The model `name`: local (with the placement options) or hosted (--remote / --serve)."""
        from interp.models.executor import executor_from_flags
        from interp.models.remote import load_remote

        executor = executor_from_flags(self.remote, self.serve)
        if executor is None:
            return load(name, self.device, self.dtype, device_map=self.device_map, load_in_4bit=self.load_in_4bit)
        if self.device_map or self.load_in_4bit:
            raise UserError("--device-map / --load-in-4bit place local weights; with --remote / --serve the server "
                            "places them")
        quiet_transformers()
        with err_console.status(f"connecting to {name} on {executor.host}"):
            return load_remote(name, executor)


_LOAD_PARAMS = {"dtype": (Dtype, DtypeOpt), "device": (str, DeviceOpt), "device_map": (Optional[DeviceMap], DeviceMapOpt),
                "load_in_4bit": (bool, FourBitOpt)}
_REMOTE_PARAMS = {"remote": (bool, RemoteOpt), "serve": (Optional[str], ServeOpt)}


def bundle_options(param: str, extra: dict[str, tuple[Any, Any]],
                   build: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a typer command with a parameter `param`: replaces it, in its place, by the options
    `extra` ({name: (annotation, typer.Option)}) and hands the command one `build(**those options)`."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        if param not in sig.parameters:
            raise TypeError(f"{fn.__name__} needs a `{param}` parameter for this options bundle")
        bundled = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
                   for name, (typ, opt) in extra.items()]
        params = []  # the bundle's options take the bundle parameter's place (--help keeps its order)
        for p in sig.parameters.values():
            params += bundled if p.name == param else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            bundle = build(**{name: kwargs.pop(name) for name in extra})
            return fn(**kwargs, **{param: bundle})

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


@dataclass(frozen=True)
class SamplerOptions:
    """--engine / --server / --served-model of one invocation (see `sampler_options`): who draws samples."""

    engine: str = "hf"
    server: Optional[str] = None
    served_model: Optional[str] = None

    def check(self) -> None:
        """Refuse, before any load, a server without --engine openai and --engine openai without a server."""
        if self.engine == "openai" and not self.server:
            raise UserError("--engine openai needs --server URL (an OpenAI-compatible server, e.g. `vllm serve`)")
        if self.engine != "openai" and (self.server or self.served_model):
            raise UserError("--server / --served-model apply to --engine openai only")
        if self.server and not self.server.startswith(("http://", "https://")):
            raise UserError(f"--server must be an http(s) URL, got {self.server!r}")

    def attach(self, lm: Any) -> Any:
        """`lm` drawing its samples from the server (checked now: one line if it is down); `lm` as it is
        with --engine hf."""
        if self.engine != "openai":
            return lm
        if "steering" in lm.extra:
            raise UserError("--steer hooks the local model's blocks; samples drawn by a server (--engine openai) "
                            "would not be steered")
        from interp.models.openai_engine import OpenAIServer, serve_samples

        return serve_samples(lm, OpenAIServer(self.server, self.served_model))  # type: ignore[arg-type]


sampler_options = bundle_options("sampler", {
    "engine": (SamplingEngine, typer.Option("hf", "--engine", help="who draws samples: hf (here) | openai (an "
                                            "OpenAI-compatible server: vLLM, SGLang; scoring stays here)")),
    "server": (Optional[str], typer.Option(None, "--server", help="the server's URL with --engine openai, e.g. "
                                           "http://127.0.0.1:8000")),
    "served_model": (Optional[str], typer.Option(None, "--served-model", help="the model name on the server "
                                                 "(default: the first it lists); it must serve the same weights")),
}, SamplerOptions)
"""Decorator for a sampling command with a `sampler: SamplerOptions` parameter (--engine, --server,
--served-model); the body calls `sampler.check()` first and `sampler.attach(lm)` after each load."""


@dataclass(frozen=True)
class RunOptions:
    """--out / --force of one command invocation (see `run_options`)."""

    out: Optional[Path] = None
    force: bool = False

    def prepare(self, command: str, replace: Optional[bool] = None) -> RunDir:
        """The command's run folder, checked before anything is computed (`RunDir.prepare`)."""
        from interp.report.runs import RunDir

        return RunDir.prepare(self.out, command, self.force, replace=replace)


run_options = bundle_options("output", {"out": (Optional[Path], OutOpt), "force": (bool, ForceOpt)}, RunOptions)
"""Decorator for a command with an `output: RunOptions` parameter: --out and --force, declared once;
the body prepares its run folder with `output.prepare("command-name")`."""


@dataclass(frozen=True)
class NumberSelection:
    """The numbers a probe runs on (see `number_options`): --numbers, --numbers-file, or --digits L with
    --sample N random numbers of that length; at most one of the three."""

    numbers: Optional[str] = None
    numbers_file: Optional[Path] = None
    digits: Optional[int] = None
    sample: int = 200

    def resolve(self, seed: int, default_digits: Optional[int] = None, **more: Optional[str]) -> list[str]:
        """The numbers, checked (ASCII digits only); `more` adds a command's own sources (trace's
        --number), counted in "give only one of". With none given: `default_digits` random numbers
        of that length, or a UserError naming the options when the command has no default."""
        from interp.probes.number_sets import (
            parse_numbers,
            random_numbers,
            read_numbers_file,
        )

        mode = exactly_one(**more, numbers=self.numbers, numbers_file=self.numbers_file, digits=self.digits)
        if mode == "numbers_file":
            return read_numbers_file(self.numbers_file)  # type: ignore[arg-type]
        if mode in ("numbers", *more):
            return parse_numbers(self.numbers if mode == "numbers" else more[mode])  # type: ignore[arg-type]
        digits = self.digits if self.digits is not None else default_digits
        if digits is None:
            raise UserError("give " + ", ".join(f"--{k.replace('_', '-')}" for k in more) +
                            ", --numbers, --numbers-file or --digits")
        return random_numbers(digits, self.sample, seed=seed)


def number_options(sample: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a command with a `numbers: NumberSelection` parameter: --numbers, --numbers-file,
    --digits, --sample (default `sample`), declared once."""
    from interp.probes.number_sets import MAX_DIGITS

    return bundle_options("numbers", {
        "numbers": (Optional[str], typer.Option(None, "--numbers", help="comma-separated numbers, e.g. 087,747")),
        "numbers_file": (Optional[Path], InFile(None, "--numbers-file", help="file of numbers (comma/whitespace separated)")),
        "digits": (Optional[int], Int(None, "--digits", help="with --sample: random numbers of this many digits",
                                      ge=1, le=MAX_DIGITS)),
        "sample": (int, Int(sample, "--sample", help="how many random numbers with --digits", ge=1)),
    }, NumberSelection)


def model_options(remote: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a typer command with a `loader: ModelLoad` parameter: replaces it by the
    --dtype / --device / --device-map / --load-in-4bit options (and --remote / --serve with
    `remote=True`) and hands the command one `ModelLoad` built from them."""
    return bundle_options("loader", {**_LOAD_PARAMS, **(_REMOTE_PARAMS if remote else {})}, ModelLoad)


def fail(message: str) -> None:
    """Print one error line and exit 2 (used by main for every UserError). The message is plain
    text: brackets in it ("[0, 1]") are not rich markup."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(2)


def interrupted() -> None:
    """Ctrl-C: one line and exit 130 (128 + SIGINT); the caller has already discarded the runs."""
    err_console.print(Text.assemble(("interrupted:", "bold red"), " nothing was published; --out is as it was"),
                      highlight=False, soft_wrap=True)
    sys.exit(130)


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


def given_options(*names: str) -> list[str]:
    """The flags, among the parameters `names` of the running command, that were given on the command
    line (not left at their defaults)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on click
        from click import get_current_context  # type: ignore[no-redef]

    ctx = get_current_context(silent=True)
    if ctx is None:
        return []
    flags = {p.name: (p.opts or [p.name])[0] for p in ctx.command.params}
    return [flags[n] for n in names if getattr(ctx.get_parameter_source(n), "name", None) == "COMMANDLINE"]


def refuse_given(names: Sequence[str], reason: str) -> None:
    """UserError naming the options of `names` that were given, when they do not apply (`reason`):
    an option that does not apply to the chosen mode is refused, not recorded as if it were used."""
    flags = given_options(*names)
    if flags:
        raise UserError(f"{', '.join(flags)}: {reason}")


def row_ci(row: dict[str, Any], m: str) -> str:
    """'mean [lo, hi]' from a table row with columns m, m_lo, m_hi ('-' when m is absent)."""
    if m not in row:
        return "-"
    return ci({"estimate": row[m], "lo": row[m + "_lo"], "hi": row[m + "_hi"]})


def exactly_one(**given: Any) -> str:
    """The one option given (None / False: not given; "" and 0 ARE given, and then fail validation)."""
    names = [k for k, v in given.items() if v is not None and v is not False]
    if len(names) > 1:
        raise UserError("give only one of " + ", ".join("--" + k.replace("_", "-") for k in given))
    return names[0] if names else ""
