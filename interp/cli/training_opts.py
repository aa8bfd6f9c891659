"""Typer options shared by the training commands (`interp finetune`, `interp distill`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Any,
    Optional,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import typer

from interp.cli.common import bundle_options
from interp.cli.params import Float, InFile, Int
from interp.fields import option_fields
from interp.training.config import FinetuneConfig

if TYPE_CHECKING:
    from interp.cli.common import ModelLoad, RunOptions
    from interp.models.loaded import LoadedModel
    from interp.report.runs import RunDir
    from interp.training.config import FinetuneResult

DataOpt = InFile(..., "--data", help="JSONL with 'prompt' and 'completion' fields (e.g. gen-numbers output)")
FullOpt = typer.Option(False, "--full/--lora", help="full fine-tuning instead of LoRA (default --lora)")
CheckpointEveryOpt = Int(0, "--checkpoint-every", help="save a resumable checkpoint every N steps (0: off)", ge=0)
ResumeOpt = typer.Option(False, "--resume", help="continue from the latest checkpoint in OUT/checkpoints")
LimitOpt = Int(None, "--limit", help="use only the first N examples", ge=1)


def config_options(cls: type) -> dict[str, tuple[Any, Any]]:
    """{field name: (annotation, typer option)} for the fields of dataclass `cls` declared with
    `interp.fields.option`: numbers with their range (`Int` / `Float`), Literal choices as typer
    choices. A new option field of FinetuneConfig becomes an option of every training command."""
    hints = get_type_hints(cls)
    out: dict[str, tuple[Any, Any]] = {}
    for f in option_fields(cls):
        typ, meta = hints[f.name], dict(f.metadata)
        flag, help_text = meta.pop("flag"), meta.pop("help")
        base = next((a for a in get_args(typ) if a is not type(None)), typ) if get_origin(typ) in (Union, UnionType) else typ
        if base is int:
            opt = Int(f.default, flag, help=help_text, **meta)
        elif base is float:
            opt = Float(f.default, flag, help=help_text, **meta)
        else:
            opt = typer.Option(f.default, flag, help=help_text)
        out[f.name] = (typ, opt)
    return out


CONFIG_OPTIONS = config_options(FinetuneConfig)


@dataclass(frozen=True)
class TrainingOptions:
    """The optimisation options of one training command (see `training_options`): --full/--lora, the
    option fields of `FinetuneConfig` (`settings`), and the run's own --checkpoint-every, --resume, --limit."""

    full: bool = False
    checkpoint_every: int = 0
    resume: bool = False
    limit: Optional[int] = None
    settings: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig field -> value given

    @classmethod
    def build(cls, full: bool = False, checkpoint_every: int = 0, resume: bool = False, limit: Optional[int] = None,
              **settings: Any) -> TrainingOptions:
        return cls(full, checkpoint_every, resume, limit, settings)

    @property
    def loss_mask(self) -> str:
        return str(self.settings["loss_mask"])

    @property
    def max_len(self) -> int:
        return int(self.settings["max_len"])

    def config(self, seed: int, loader: ModelLoad | None = None) -> FinetuneConfig:
        """The run's FinetuneConfig. With `loader` (the command's model-loading options), its training checks
        run first, and --load-in-4bit makes the method qlora (LoRA over the 4-bit weights)."""
        if loader is not None:
            loader.check_training(self.full)
        method = "full" if self.full else "qlora" if loader is not None and loader.load_in_4bit else "lora"
        return FinetuneConfig(method=method, seed=seed, lora_alpha=2 * self.settings["lora_r"], **self.settings)

    def rows(self, data: Path) -> list[dict[str, Any]]:
        """The examples of DATA (the first --limit of them), less those --loss-mask leaves without a token."""
        from interp.cli.common import console
        from interp.training.examples import read_jsonl, select_rows

        rows = read_jsonl(data)
        rows = rows[:self.limit] if self.limit else rows
        kept, dropped = select_rows(rows, self.loss_mask)
        if dropped:
            console.print(f"--loss-mask {self.loss_mask}: {dropped} of {len(rows)} examples have no token to train on "
                          f"and are left out; {len(kept)} remain")
        if not kept:
            from interp.errors import UserError

            raise UserError(f"--loss-mask {self.loss_mask} leaves no example with a token to train on")
        return kept

    def fit(self, rows: list[dict[str, Any]], lm: LoadedModel) -> list[dict[str, Any]]:
        """`rows` less those whose labelled tokens under --loss-mask all lie beyond --max-len once the
        model's prompt is in the window (e.g. a divergence token late in a long example)."""
        if self.loss_mask == "all":
            return rows
        from interp.cli.common import console
        from interp.errors import UserError
        from interp.training.examples import completion_windows, select_rows

        kept, dropped = select_rows(rows, self.loss_mask, completion_windows(lm, rows, self.max_len))
        if dropped:
            console.print(f"--loss-mask {self.loss_mask}: {dropped} of {len(rows)} examples keep no labelled token within "
                          f"--max-len {self.max_len} and are left out; {len(kept)} remain")
        if not kept:
            raise UserError(f"--loss-mask {self.loss_mask} leaves no example with a token to train on within --max-len {self.max_len}")
        return kept

    def inputs(self) -> dict[str, Any]:
        return {"limit": self.limit, "checkpoint_every": self.checkpoint_every, "resume": self.resume,
                "loss_mask": self.loss_mask}


_TRAIN_PARAMS = {"full": (bool, FullOpt), **CONFIG_OPTIONS, "checkpoint_every": (int, CheckpointEveryOpt),
                 "resume": (bool, ResumeOpt), "limit": (Optional[int], LimitOpt)}

training_options = bundle_options("training", _TRAIN_PARAMS, TrainingOptions.build)
"""Decorator for a command with a `training: TrainingOptions` parameter: --full/--lora, every option
field of FinetuneConfig (--freeze --steps --epochs --batch-size --lr --warmup --max-len --lora-r
--loss-mask), --checkpoint-every, --resume, --limit."""


def store_weights(result: FinetuneResult, loader: ModelLoad, name: str) -> Any:
    """What the store keeps of a QLoRA run: the adapter merged into `name` reloaded in full precision (the
    4-bit weights it trained over cannot be saved as a plain model); None for any other run (the saver
    merges the adapter itself)."""
    if not loader.load_in_4bit:
        return None
    from interp.training.saving import merged_into

    return merged_into(result, loader.full_precision().load(name).model)


def prepare_training_run(output: RunOptions, command: str, alias: str, resume: bool) -> RunDir:
    """The checks every training command makes before loading a model: --resume needs --out, the
    output folder is writable, the alias is valid and new (or --force / --resume)."""
    from interp.errors import UserError
    from interp.models.store import read_meta, validate_new_alias
    from interp.report.runs import RunDir

    if resume and output.out is None:
        raise UserError("--resume needs the --out folder of the interrupted run")
    run = RunDir.prepare(output.out, command, output.force or resume, replace=output.force and not resume)
    validate_new_alias(alias)
    if read_meta(alias) is not None and not (output.force or resume):
        raise UserError(f"alias '{alias}' already exists in the store; choose another or pass --force")
    return run
