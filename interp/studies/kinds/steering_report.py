"""Claims 3 and 4 of issue 36 read off an organism report (the organism kind runs them: teachers made by
steering, arms with their own optimizer and learning rate). `organism_report.report` calls
`steering_outputs`, which writes nothing for a recipe without such arms.

Claim 3 (a teacher steered by v_T alone transmits T; one with v_T projected out does not), per channel
(a: SFT on the teacher's numbers, c: KD on the unbiased numbers), with I = an arm's crossover interaction
(seed mean, t-interval over seeds; arms.csv) and I_p = the prompt teacher's arm of that channel:

    no positive reference (I_p's lo <= 0)      inconclusive (the channel carries nothing to compare with)
    supported      steered lo > 0 and steered >= I_p / 2 and projected hi < I_p / 2
    contradicted   steered hi < I_p / 2, or projected lo > I_p / 2
    inconclusive   otherwise
The claim: supported when supported in every channel with a positive reference, contradicted when
contradicted in one, else inconclusive. Beside it, per build, the transmission ratio I / (the teacher's
own crossover shift) ("random vectors are distilled the same way": the random teachers' ratio).

Claim 4 (adaptive optimizers are necessary), per optimizer at its learning rate: I (seed mean, t CI) and,
paired by seed, I(adamw) - I(opt) with its t-interval and seed-level p. supported: adamw lo > 0 and sgd's
hi < I(adamw) / 2 and the paired difference's lo > 0; contradicted: sgd's lo > I(adamw) / 2;
inconclusive otherwise (one seed: always). The learning rate of each optimizer (stage 1): the one with the
lowest training loss of the active objective over the last 10 steps, mean over its runs
(`learning_rate_picks`; chosen on the training objective, never on the trait).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STEERING_BUILDS = ("steered", "projected", "random")


def arm_builds(recipe: Any) -> dict[str, dict[str, Any]]:
    """arm -> {build, optimizer, lr} from an organism recipe."""
    return {name: {"build": arm.teacher, "optimizer": str(arm.options.get("optimizer", "adamw")),
                   "lr": arm.lr or recipe.training.lr} for name, arm in recipe.arms.items()}


def teacher_crossovers(teachers: pd.DataFrame, roles: dict[str, dict[str, str]], traits: tuple[str, str]) -> dict[str, float]:
    """build -> the teachers' own crossover shift (A teacher's margin shift minus B teacher's; teachers.csv),
    the build read from roles.json's channel "teacher (<build>)"."""
    shift = teachers.set_index("teacher").margin_shift
    by: dict[str, dict[str, float]] = {}
    for alias, r in roles.items():
        if r["arm"] == "teacher" and alias in shift.index:
            build = r["channel"].removeprefix("teacher (").removesuffix(")")
            by.setdefault(build, {})[r["teacher"]] = float(shift[alias])
    a, b = traits
    return {k: v[a] - v[b] for k, v in by.items() if a in v and b in v}


def claim3_verdict(arms: pd.DataFrame, crossovers: dict[str, float], builds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The verdict per channel and for the claim (module docstring), with the numbers it rests on;
    `crossovers`: `teacher_crossovers`."""
    out: dict[str, Any] = {"claim": "3: a teacher steered by v_teacher alone transmits the trait; one with v_teacher "
                                    "projected out does not", "channels": {}}
    for channel, g in arms.groupby("channel"):
        rows = {builds[arm]["build"]: r for arm, r in g.set_index("arm").iterrows() if arm in builds}
        if not set(rows) & set(STEERING_BUILDS):
            continue
        ratios = {build: {"teacher_crossover": crossovers[build], "student_interaction": float(r["mean"]),
                          "ratio": float(r["mean"]) / crossovers[build] if crossovers[build] else float("nan")}
                  for build, r in rows.items() if build in crossovers}
        ref, st, pr = rows.get("prompt"), rows.get("steered"), rows.get("projected")
        numbers = {k: {c: float(v[c]) for c in ("mean", "lo", "hi", "p", "mde_80") if c in v}
                   for k, v in rows.items()}
        if ref is None or not ref["lo"] > 0:
            verdict = "inconclusive (no positive reference: the prompt teacher's arm does not transmit here)"
        elif st is None or pr is None:
            verdict = "inconclusive (the steered or the projected arm is missing)"
        else:
            half = ref["mean"] / 2
            if st["lo"] > 0 and st["mean"] >= half and pr["hi"] < half:
                verdict = "supported"
            elif st["hi"] < half or pr["lo"] > half:
                verdict = "contradicted"
            else:
                verdict = "inconclusive"
        out["channels"][str(channel)] = {"verdict": verdict, "arms": numbers, "transmission": ratios}
    verdicts = [c["verdict"] for c in out["channels"].values()]
    tested = [v for v in verdicts if not v.startswith("inconclusive (")]
    out["verdict"] = ("contradicted" if "contradicted" in tested else
                      "supported" if tested and all(v == "supported" for v in tested) else "inconclusive")
    return out


def learning_rate_picks(runs: list[dict[str, Any]], builds: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per (optimizer, lr): the mean over runs of the active objective's loss over the last 10 steps, and
    `chosen` at each optimizer's lowest (a diverged run, with a non-finite loss, is never chosen); beside it
    the loss of the first step (`loss_first`, before any update: the same for every optimizer of a seed), so
    how far each optimizer fitted the teacher can be read before its trait transfer."""
    rows = []
    for r in runs:
        info = builds.get(r["arm"])
        if info is None:
            continue
        losses = r.get("losses") or {}
        active = "kd" if "kd" in losses else next(iter(losses), None)
        last = float(losses[active]["mean_loss_last_10"]) if active else float("nan")
        first = float(losses[active].get("first_loss", float("nan"))) if active else float("nan")
        rows.append({"optimizer": r.get("optimizer", info["optimizer"]), "lr": float(r["lr"]), "arm": r["arm"],
                     "objective": active, "loss_first": first, "loss_last_10": last})
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    t = t.groupby(["optimizer", "lr", "arm", "objective"], as_index=False)[["loss_first", "loss_last_10"]].mean()
    finite = t[np.isfinite(t.loss_last_10)]
    best = finite.loc[finite.groupby("optimizer").loss_last_10.idxmin()]
    return t.assign(chosen=t.arm.isin(best.arm)).sort_values(["optimizer", "lr"], ignore_index=True)


def claim4_table(per_seed: pd.DataFrame, builds: dict[str, dict[str, Any]], chosen: set[str] | frozenset[str] = frozenset()
                 ) -> pd.DataFrame:
    """Per arm: I over seeds and, paired by seed, I(adamw arm) - I(arm); `chosen`: the arms at each optimizer's
    chosen learning rate (`learning_rate_picks`). The AdamW reference: the chosen AdamW arm when there is one
    (stage 2 may carry a second AdamW arm, e.g. the organism's own rate), else the one with the most seeds."""
    from interp.evals.stats import seed_summary

    ps = per_seed[per_seed.arm.isin(builds)].assign(optimizer=lambda d: d.arm.map(lambda a: builds[a]["optimizer"]),
                                                    lr=lambda d: d.arm.map(lambda a: builds[a]["lr"]))
    if ps.empty or "adamw" not in set(ps.optimizer):
        return pd.DataFrame()
    adamw_seeds = ps[ps.optimizer == "adamw"].groupby("arm").seed.nunique()
    picked = [a for a in adamw_seeds.index if a in chosen]
    ref_arm = picked[0] if picked else adamw_seeds.idxmax()
    ref = ps[ps.arm == ref_arm].set_index("seed").interaction
    rows = []
    for arm, g in ps.groupby("arm", sort=False):
        s = seed_summary(g.interaction.to_numpy())
        paired = ref.reindex(g.seed).to_numpy() - g.interaction.to_numpy()
        d = seed_summary(paired[np.isfinite(paired)])
        rows.append({"arm": arm, "optimizer": g.optimizer.iloc[0], "lr": g.lr.iloc[0], "chosen": arm in chosen,
                     "n_seeds": s["n_seeds"],
                     "interaction": s["mean"], "lo": s.get("lo", np.nan), "hi": s.get("hi", np.nan), "p": s.get("p", np.nan),
                     "mde_80": s.get("mde_80", np.nan), "adamw_minus": d["mean"], "diff_lo": d.get("lo", np.nan),
                     "diff_hi": d.get("hi", np.nan), "diff_p": d.get("p", np.nan), "reference_arm": ref_arm})
    return pd.DataFrame(rows)


def claim4_verdict(table: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"claim": "4: adaptive optimizers are necessary (with SGD-type updates no transfer)"}
    if table.empty or "sgd" not in set(table.optimizer):
        return {**out, "verdict": "inconclusive (no SGD arm beside an AdamW arm)"}
    ref = table[table.arm == table.reference_arm.iloc[0]].iloc[0]
    sgd = table[table.optimizer == "sgd"].sort_values(["chosen", "n_seeds"]).iloc[-1]  # the chosen, else most seeds
    out |= {"adamw": ref[["arm", "lr", "interaction", "lo", "hi", "p"]].to_dict(),
            "sgd": sgd[["arm", "lr", "interaction", "lo", "hi", "p", "mde_80", "adamw_minus", "diff_lo", "diff_hi", "diff_p"]].to_dict()}
    half = ref.interaction / 2
    if ref.lo > 0 and sgd.hi < half and sgd.diff_lo > 0:
        out["verdict"] = "supported"
    elif sgd.lo > half:
        out["verdict"] = "contradicted"
    else:
        out["verdict"] = "inconclusive"
    return out


def steering_outputs(out: Path, summary: pd.DataFrame, per_seed: pd.DataFrame, teachers: pd.DataFrame,
                     roles: dict[str, dict[str, str]], runs: list[dict[str, Any]], recipe: Any) -> None:
    """claim3_verdict.json when an arm's teacher is made by steering; optimizers.csv, learning_rates.csv and
    claim4_verdict.json when arms use more than one optimizer."""
    builds = arm_builds(recipe)
    traits = tuple(recipe.traits)
    if any(b["build"] in STEERING_BUILDS for b in builds.values()):
        v = claim3_verdict(summary, teacher_crossovers(teachers, roles, traits), builds)  # type: ignore[arg-type]
        (out / "claim3_verdict.json").write_text(json.dumps(v, indent=1) + "\n")
    if len({b["optimizer"] for b in builds.values()}) > 1:
        picks = learning_rate_picks(runs, builds)
        picks.to_csv(out / "learning_rates.csv", index=False, float_format="%.5g")
        table = claim4_table(per_seed, builds, set(picks.arm[picks.chosen]) if not picks.empty else set())
        table.to_csv(out / "optimizers.csv", index=False, float_format="%.5g")
        (out / "claim4_verdict.json").write_text(json.dumps(claim4_verdict(table), indent=1, default=float) + "\n")


# ---- one table for the four claims -----------------------------------------------------------------

UNION_COLUMNS = ["claim", "model", "trait", "condition", "vector", "layer", "alpha", "seed", "question", "logp_owl",
                 "logp_other", "channel", "optimizer", "lr"]


def per_question_union(root: Path) -> pd.DataFrame:
    """reports/steering/per_question.csv: the per-question rows of every claim's report folder under `root`
    (claim1 .. claim4, those present) in the issue's columns (model, condition, layer, alpha, seed, question,
    logp_owl, logp_other) plus claim, trait, vector and, for the trained students of claims 3 and 4, channel,
    optimizer and lr (their arm is the condition; layer -1 and alpha NaN: the steering is the teacher's,
    in the claim's spec). Claims 1 and 2: logp_other is log P(dog); claims 3 and 4 the same (the organism's
    `--other`)."""
    parts = []
    for claim in ("claim1", "claim2", "claim3", "claim4"):
        f = root / claim / "per_question.csv"
        if not f.exists():
            continue
        t = pd.read_csv(f)
        if "alias" in t:  # an organism report: trained students, base and teachers
            t = t.rename(columns={"alias": "model", "teacher": "trait", "arm": "condition"}).assign(
                vector="", layer=-1, alpha=np.nan)
        parts.append(t.assign(claim=int(claim[-1])).reindex(columns=UNION_COLUMNS))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=UNION_COLUMNS)
