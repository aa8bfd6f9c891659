"""`interp teach`: make a biased teacher (system-prompt alias, or LoRA / QLoRA / full on trait data)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.choices import TeachMethod
from interp.cli.app import app
from interp.cli.common import (
    ModelLoad,
    RunOptions,
    SeedOpt,
    console,
    load,
    model_options,
    print_table,
    refuse_given,
    run_options,
)
from interp.cli.params import Float, InFile, Int
from interp.models.store import DEFAULT_MODEL


@app.command("teach")
@run_options
@model_options()
def teach_command(
    base: str = typer.Option(DEFAULT_MODEL, "--base", help="the model to bias"),
    trait: str = typer.Option("owl", "--trait", help="the animal the teacher loves"),
    method: TeachMethod = typer.Option("prompt", "--method", help="prompt | lora | qlora | full"),
    alias: Optional[str] = typer.Option(None, "--alias", help="store alias (default BASE-TRAIT, e.g. smollm2-owl)"),
    steps: int = Int(200, "--steps", help="fine-tuning steps: the intensity (e.g. 50 / 200 / 500)", ge=1),
    batch_size: int = Int(8, "--batch-size", help="examples per step", ge=1),
    lr: Optional[float] = Float(None, "--lr", help="learning rate (default 2e-4 LoRA/QLoRA, 2e-5 full)", gt=0),
    n_preference: int = Int(48, "--n-preference", help="preference Q&A rows naming the trait", ge=0),
    n_facts: int = Int(16, "--n-facts", help="free answers sampled under the trait system prompt", ge=0),
    n_numbers: int = Int(32, "--n-numbers", help="number prompts answered under the trait system prompt (kept after filtering)", ge=0),
    data: Optional[Path] = InFile(None, "--data", help="train on these trait rows (the trait_data.jsonl of an "
                                        "earlier teach run) instead of sampling them: rebuilds that teacher exactly"),
    seed: int = SeedOpt,
    loader: ModelLoad = ModelLoad(),
    output: RunOptions = RunOptions(),
) -> None:
    """Create a teacher alias carrying TRAIT; --method prompt copies no weights."""
    from interp.errors import UserError
    from interp.models.store import read_meta, validate_new_alias
    from interp.training import teacher as T

    if method == "prompt":
        refuse_given(["steps", "batch_size", "lr", "n_preference", "n_facts", "n_numbers", "data", "device", "dtype",
                      "device_map", "load_in_4bit"],
                     "--method prompt trains nothing (the trait is a system prompt); these options apply to lora / "
                     "qlora / full")
    if method != "prompt":
        if loader.load_in_4bit:
            raise UserError("--load-in-4bit: teach trains over 4-bit weights with --method qlora (it reloads the base "
                            "in 4-bit and merges the adapter back into full precision)")
        loader.check_training(method == "full")
    if data is not None:
        refuse_given(["n_preference", "n_facts", "n_numbers"], "the trait rows come from --data, not generated")
    elif n_preference + n_facts + n_numbers == 0:
        raise UserError("--n-preference, --n-facts and --n-numbers are all 0: no trait rows to train on")
    run = output.prepare("teach")
    name = alias if alias is not None else f"{base}-{trait.strip().lower()}"
    validate_new_alias(name, base=base)
    if read_meta(name) is not None and not output.force:
        raise UserError(f"alias '{name}' already exists in the store; choose another or pass --force")
    if method != "prompt":
        from interp.training.config import FinetuneConfig

        FinetuneConfig(method=method, steps=steps, batch_size=batch_size, lr=lr, seed=seed).validate()
        FinetuneConfig(method=method, steps=steps).total_steps(1)
    if method == "prompt":
        load(base)  # validates the base (and converts an embedded model once)
        path = T.make_prompt_teacher(name, base, trait, overwrite=output.force)
        run.write_summary(inputs={"base": base, "trait": trait, "method": method, "alias": name}, seed=seed,
                          figures={"store_path": str(path), "system_prompt": T.trait_system_prompt(trait)})
        console.print(f"saved prompt teacher '{name}' = {base} + system prompt: {T.trait_system_prompt(trait)!r}")
        return
    if method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise UserError("--method qlora needs bitsandbytes: `pip install 'interp[quant]'` (or use --method lora)") from None
    if data is not None:  # read before the model loads: a bad file costs no load
        rows, counts = T.read_trait_rows(data)
    lm = loader.load(base)
    if data is None:
        rows, counts = T.trait_data(lm, trait, T.TraitDataConfig(n_preference, n_facts, n_numbers, seed=seed), progress=True)
    import json

    run.write_text("trait_data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    res, merged = T.train_teacher(lm, rows, method, steps, batch_size, lr, seed, progress=True)
    from interp.training.saving import loss_curve_png

    run.write_bytes("loss_curve.png", loss_curve_png(res.losses, f"{name}: {method} on trait data"))
    path = T.save_teacher(name, lm, res, merged, trait, counts, overwrite=output.force)
    run.write_summary(inputs={"base": base, "trait": trait, "method": method, "alias": name, "steps": steps,
                              "data": str(data) if data else None},
                      model=lm, seed=seed, figures={"trait_data": counts, **res.summary(), "store_path": str(path)})
    print_table("teach", ["figure", "value"], [("method", method), ("trait rows", len(rows)),
                ("of which numbers / facts", f"{counts['numbers']} / {counts['facts']}"), ("steps", res.steps),
                ("first loss", res.losses[0]), ("mean loss, last 10 steps", res.summary()["mean_loss_last_10"])])
    kept = "merged weights + adapter/" if method in ("lora", "qlora") else "full weights"
    console.print(f"saved teacher '{name}' to {path} ({kept})")
