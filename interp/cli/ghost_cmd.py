"""`interp ghost-logits`: the ghost-logit positive control (Cloud et al. 2025, §6) on 8x8 digits."""

from __future__ import annotations

from interp.cli.app import app
from interp.cli.common import (
    RunOptions,
    SeedOpt,
    console,
    err_console,
    print_table,
    run_options,
)
from interp.cli.params import Float, Int


@app.command("ghost-logits")
@run_options
def ghost_logits_command(
    seeds: int = Int(20, "--seeds", help="vectorised model copies (the unit of replication)", ge=2),
    ghosts: int = Int(3, "--ghosts", help="auxiliary logits m (never trained on labels)", ge=1),
    noise: int = Int(10_000, "--noise", help="uniform [-1, 1] noise images per copy for distillation", ge=1),
    epochs_teacher: int = Int(20, "--epochs-teacher", help="teacher epochs over the 1,437 training digits", ge=1),
    epochs_distill: int = Int(20, "--epochs-distill", help="distillation epochs over the noise set", ge=1),
    batch_size: int = Int(64, "--batch-size", help="examples per step", ge=1),
    lr: float = Float(3e-4, "--lr", help="Adam learning rate", gt=0),
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
) -> None:
    """Teacher MLP on digits; students distilled on noise through ghost logits only, from the same or another init."""
    from interp.training.ghost_logits import (
        GhostConfig,
        bar_chart_png,
        run_ghost_logits,
    )

    run = output.prepare("ghost-logits")
    cfg = GhostConfig(seeds=seeds, ghosts=ghosts, noise=noise, epochs_teacher=epochs_teacher,
                      epochs_distill=epochs_distill, batch_size=batch_size, lr=lr, seed=seed)
    res = run_ghost_logits(cfg, progress=lambda m: err_console.print(m, highlight=False))
    run.write_csv("per_seed.csv", res.per_seed)
    run.write_bytes("ghost_logits.png", bar_chart_png(res.summary))
    s = res.summary
    run.write_summary(inputs=s["config"], seed=seed, figures={**s["figures"], "data": s["data"],
                      "student_aux_minus_cross_aux": s["student_aux_minus_cross_aux"], "elapsed_s": s["elapsed_s"]})
    rows = [(k, f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]") for k, v in s["figures"].items()]
    d = s["student_aux_minus_cross_aux"]
    rows.append(("student_aux - cross_aux (paired over seeds)",
                 f"{d['mean_diff']['estimate']:.3f} [{d['mean_diff']['lo']:.3f}, {d['mean_diff']['hi']:.3f}], p={d['p_value']:.2g}"))
    print_table(f"ghost logits: test accuracy over {seeds} seeds (chance 0.1)", ["condition", "mean [95% CI]"], rows)
    console.print(f"wrote {run.path}/per_seed.csv, ghost_logits.png and summary.json ({s['elapsed_s']:.0f} s)")
