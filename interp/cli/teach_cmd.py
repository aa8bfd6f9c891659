"""`interp teach`: make a biased teacher (system-prompt alias, or LoRA / QLoRA / full on trait data)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.cli.app import app
from interp.cli.common import DeviceOpt, ForceOpt, OutOpt, SeedOpt, console, load, print_table


@app.command("teach")
def teach_command(
    base: str = typer.Option("smollm2", "--base", help="the model to bias"),
    trait: str = typer.Option("owl", "--trait", help="the animal the teacher loves"),
    method: str = typer.Option("prompt", "--method", help="prompt | lora | qlora | full"),
    alias: Optional[str] = typer.Option(None, "--alias", help="store alias (default BASE-TRAIT, e.g. smollm2-owl)"),
    steps: int = typer.Option(200, "--steps", help="fine-tuning steps: the intensity (e.g. 50 / 200 / 500)"),
    batch_size: int = typer.Option(8, "--batch-size", help="examples per step"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (default 2e-4 LoRA/QLoRA, 2e-5 full)"),
    n_preference: int = typer.Option(48, "--n-preference", help="preference Q&A rows naming the trait"),
    n_facts: int = typer.Option(16, "--n-facts", help="free answers sampled under the trait system prompt"),
    n_numbers: int = typer.Option(32, "--n-numbers", help="number prompts answered under the trait system prompt (kept after filtering)"),
    data: Optional[Path] = typer.Option(None, "--data", help="train on these trait rows (the trait_data.jsonl of an "
                                        "earlier teach run) instead of sampling them: rebuilds that teacher exactly"),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Optional[Path] = OutOpt,
    force: bool = ForceOpt,
) -> None:
    """Create a teacher alias carrying TRAIT; --method prompt copies no weights."""
    from interp.errors import UserError
    from interp.models.store import read_meta, validate_new_alias
    from interp.report.runs import RunDir
    from interp.training import teacher as T

    run = RunDir.prepare(out, "teach", force)
    if method not in ("prompt", "lora", "qlora", "full"):
        raise UserError("--method must be prompt, lora, qlora or full")
    name = alias if alias is not None else f"{base}-{trait.strip().lower()}"
    validate_new_alias(name, base=base)
    if read_meta(name) is not None and not force:
        raise UserError(f"alias '{name}' already exists in the store; choose another or pass --force")
    if method != "prompt":
        from interp.training.finetune import FinetuneConfig

        FinetuneConfig(method=method, steps=steps, batch_size=batch_size, lr=lr, seed=seed).validate()
        FinetuneConfig(method=method, steps=steps).total_steps(1)
    if method == "prompt":
        load(base)  # validates the base (and converts an embedded model once)
        path = T.make_prompt_teacher(name, base, trait, overwrite=force)
        run.write_summary(inputs={"base": base, "trait": trait, "method": method, "alias": name}, seed=seed,
                          figures={"store_path": str(path), "system_prompt": T.trait_system_prompt(trait)})
        console.print(f"saved prompt teacher '{name}' = {base} + system prompt: {T.trait_system_prompt(trait)!r}")
        return
    if method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise UserError("--method qlora needs bitsandbytes: `pip install 'interp[quant]'` (or use --method lora)") from None
    lm = load(base, device)
    if data is not None:
        rows, counts = T.read_trait_rows(data)
    else:
        rows, counts = T.trait_data(lm, trait, T.TraitDataConfig(n_preference, n_facts, n_numbers, seed=seed), progress=True)
    import json

    run.write_text("trait_data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    res, merged = T.train_teacher(lm, rows, method, steps, batch_size, lr, seed, progress=True)
    from interp.training.finetune import loss_curve_png

    run.write_bytes("loss_curve.png", loss_curve_png(res.losses, f"{name}: {method} on trait data"))
    path = T.save_teacher(name, lm, res, merged, trait, counts, overwrite=force)
    run.write_summary(inputs={"base": base, "trait": trait, "method": method, "alias": name, "steps": steps,
                              "data": str(data) if data else None},
                      model=lm, seed=seed, figures={"trait_data": counts, **res.summary(), "store_path": str(path)})
    print_table("teach", ["figure", "value"], [("method", method), ("trait rows", len(rows)),
                ("of which numbers / facts", f"{counts['numbers']} / {counts['facts']}"), ("steps", res.steps),
                ("first loss", res.losses[0]), ("mean loss, last 10 steps", res.summary()["mean_loss_last_10"])])
    console.print(f"saved teacher '{name}' to {path} (merged weights + adapter/)")
