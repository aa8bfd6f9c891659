"""Tables and plots of the organism dissection (kind `dissection`; moved from experiments/dissect_report.py).

`write_report(raw, out, ...)` reads the raw tables the stages wrote (a stage that has not run is
skipped) and writes tables.md, patching_layers.png, dla_layers.png and weights_layers.png to `out`.
The README's verdicts are written by hand from these tables.

Coincidence of weights and patching (claim 3): over layers l and kinds k in {attn, mlp},
Spearman's rho between ||W_S - W_C||_F pooled over the kind's matrices of layer l and |delta| of
patching that layer's kind from S into C (scipy.stats.spearmanr).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from interp.report.tables import recovered_markdown, signed

ATTN = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def _layer_of(site: pd.Series) -> pd.Series:
    return site.str.extract(r"^L(\d+)")[0].astype(float)


def patching_plot(t: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, direction in zip(axes, ("S_into_C", "C_into_S")):
        g = t[t.direction == direction]
        for kind, color in (("resid", "black"), ("attn", "C0"), ("mlp", "C1")):
            k = g[g.site.str.endswith(kind)].copy()
            x = _layer_of(k.site)
            ax.plot(x, k.recovered, marker="o", ms=3, color=color, label=kind)
            ax.fill_between(x, k.recovered_lo, k.recovered_hi, color=color, alpha=0.2)
        ax.axhline(0, color="grey", lw=0.6)
        ax.axhline(1, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("layer")
        ax.set_title(f"{direction.replace('_', ' ')}: recovered fraction of m(S) - m(C)", fontsize=9)
    axes[0].set_ylabel("recovered (95% bootstrap CI)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bar_plot(df: pd.DataFrame, x: str, series: dict[str, str], ylabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.2))
    w = 0.8 / len(series)
    for i, (col, label) in enumerate(series.items()):
        ax.bar(df[x] + (i - (len(series) - 1) / 2) * w, df[col], width=w, label=label)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_layer_weights(w: pd.DataFrame, comparison: str) -> pd.DataFrame:
    """Per layer: pooled ||dW||_F / ||W||_F of the attention and of the MLP matrices, and ||dW||_F of each."""
    g = w[(w.comparison == comparison) & (w.layer >= 0) & (w.param == "weight")]
    out = []
    for layer, x in g.groupby("layer"):
        row = {"layer": int(layer)}
        for kind, mods in (("attn", ATTN), ("mlp", MLP)):
            k = x[x.module.isin(mods)]
            row[f"{kind}_diff"] = float(np.sqrt((k.diff_norm ** 2).sum()))
            row[f"{kind}_rel"] = float(row[f"{kind}_diff"] / np.sqrt((k.base_norm ** 2).sum()))
        out.append(row)
    return pd.DataFrame(out)


def write_report(raw: Path, out: Path, traits: tuple[str, str] = ("owl", "dog"), keep: float = 0.6,
                 template_control: int = 100, digits: int = 3) -> None:
    """tables.md and the plots in `out` from the raw tables in `raw` (`traits`: (target, other))."""
    a_, b_ = traits
    out.mkdir(parents=True, exist_ok=True)
    pair = json.loads((raw / "pair.json").read_text())
    lines = [f"S = `{pair['S']}`, C = `{pair['C']}`, base = `{pair['base']}`.", ""]
    pl = raw / "patching_layers.csv"
    if pl.exists():
        t = pd.read_csv(pl)
        patching_plot(t, out / "patching_layers.png")
        lines += ["### Patching by layer and component (recovered fraction [95% CI]; delta in nats)", "",
                  *recovered_markdown(t, ("S_into_C", "C_into_S"))]
        lines.append("")
    pm = raw / "patching_resid_multi.csv"
    if pm.exists():  # the residual stream with every variant of eval-animal (multi-token ones by the chain rule)
        t = pd.read_csv(pm)
        dirs = [d for d in ("S_into_C", "C_into_S") if d in set(t.direction)]
        lines += ["### Residual stream, scored with every variant of eval-animal (multi-token words by the chain rule)", "",
                  *recovered_markdown(t, dirs)]
        lines.append("")
    ph = raw / "patching_heads.csv"
    if ph.exists():
        t = pd.read_csv(ph)
        a = t[t.direction == "S_into_C"].sort_values("delta", key=abs, ascending=False)
        lines += ["### Single heads (layers whose attention output moves the margin most), by |delta|, S into C", "",
                  "| head | recovered [95% CI] | delta [95% CI] |", "|---|---|---|"]
        for r in a.itertuples():
            lines.append(f"| {r.site} | {signed(r.recovered)} [{signed(r.recovered_lo)}, {signed(r.recovered_hi)}] | "
                         f"{signed(r.delta)} [{signed(r.delta_lo)}, {signed(r.delta_hi)}] |")
        lines.append("")
    dla = raw / "dla.csv"
    if dla.exists():
        d = pd.read_csv(dla)
        per = pd.read_csv(raw / "dla_per_question.csv")
        layers = pd.read_csv(raw / "dla_layers.csv")
        piv = layers[layers.layer >= 0].pivot(index="layer", columns="kind", values="d").reset_index()
        bar_plot(piv, "layer", {"attn": "attention (heads + bias)", "mlp": "MLP"}, "DLA_S - DLA_C (nats)",
                 f"direct logit attribution of logit('{a_}') - logit('{b_}'): S minus C", out / "dla_layers.png")
        top = d.reindex(d.d.abs().sort_values(ascending=False).index).head(12)
        lines += [f"### DLA of logit('{a_}') - logit('{b_}') (the natural answer tokens), S minus C (mean over questions)", "",
                  f"LD(S) - LD(C) = {(per.ld_a - per.ld_b).mean():+.3f}; sum of component differences "
                  f"{d.d.sum():+.3f}; embed {d.set_index('component').d.get('embed', np.nan):+.3f}; all heads "
                  f"{d[d['head'] >= 0].d.sum():+.3f}; all MLPs {d[d.component.str.endswith('MLP')].d.sum():+.3f}", "",
                  "| component | DLA S | DLA C | S - C | sd over questions |", "|---|---|---|---|---|"]
        lines += [f"| {r.component} | {r.dla_a:+.3f} | {r.dla_b:+.3f} | {r.d:+.3f} | {r.d_sd:.3f} |" for r in top.itertuples()]
        lines.append("")
    ws = raw / "weights_summary.csv"
    if ws.exists():
        w = pd.read_csv(raw / "weights.csv")
        s = pd.read_csv(ws)
        lines += ["### Weights: ||dW||_F / ||W||_F pooled over layers (top 8 per comparison)", "",
                  "| comparison | module | rel | max over layers (layer) |", "|---|---|---|---|"]
        for comp, g in s.groupby("comparison", sort=False):
            lines += [f"| {comp} | {r.module} ({r.param}) | {r.rel:.2e} | {r.max_rel:.2e} (L{r.max_layer}) |"
                      for r in g.head(8).itertuples()]
        sc = per_layer_weights(w, "S_vs_C")
        sb, cb = per_layer_weights(w, "S_vs_base"), per_layer_weights(w, "C_vs_base")
        both = sb.merge(cb, on="layer", suffixes=("_S", "_C"))
        bar_plot(both, "layer", {"attn_rel_S": "attn S vs base", "mlp_rel_S": "mlp S vs base",
                                 "attn_rel_C": "attn C vs base", "mlp_rel_C": "mlp C vs base"},
                 "||dW||_F / ||W||_F", "how far each layer moved from the base", out / "weights_layers.png")
        lines.append("")
        if pl.exists():
            t = pd.read_csv(pl)
            a = t[t.direction == "S_into_C"].copy()
            a["layer"] = _layer_of(a.site)
            xs, ys = [], []
            for kind in ("attn", "mlp"):
                k = a[a.site.str.endswith(kind)].merge(sc, on="layer")
                xs += list(k[f"{kind}_diff"])
                ys += list(k.delta.abs())
            rho = stats.spearmanr(xs, ys)
            lines += [f"Coincidence over {len(xs)} (layer, attn|mlp) sites: Spearman rho(||W_S - W_C||_F, |delta| of "
                      f"patching S into C) = {rho.statistic:+.3f} (p = {rho.pvalue:.3g}).", ""]
    sw = raw / "swap.csv"
    if sw.exists():
        s = pd.read_csv(sw)
        n_q = len(pd.read_csv(raw / "swap_per_question.csv"))  # questions
        lines += [f"### C5: LM-head swap (margin log P({a_}) - log P({b_}), {n_q} questions)", "",
                  "| model | margin | vs C [95% CI] | share of S - C [95% CI] | perplexity |", "|---|---|---|---|---|"]
        lines += [f"| {r.model} | {r.margin:+.3f} | {r.vs_C:+.3f} [{r.vs_C_lo:+.3f}, {r.vs_C_hi:+.3f}] | "
                  f"{r.share_of_S_minus_C:+.3f} [{r.share_lo:+.3f}, {r.share_hi:+.3f}] | {r.perplexity:.2f} |"
                  for r in s.itertuples()]
        lines.append("")
    pr = raw / "prune.csv"
    if pr.exists():
        p = pd.read_csv(pr)
        lines += [f"### C4: pruning to keep {keep:g} (each model by its own attention entropy; random: same number)", "",
                  "| condition | heads pruned | margin S | margin C | S - C [95% CI] | perplexity S | perplexity C |",
                  "|---|---|---|---|---|---|---|"]
        for cond, g in p.groupby("condition", sort=False):
            s_, c_ = g[g.model == "S"].iloc[0], g[g.model == "C"].iloc[0]
            lines.append(f"| {cond} | {s_.n_pruned} | {s_.margin:+.3f} | {c_.margin:+.3f} | {s_.S_minus_C:+.3f} "
                         f"[{s_.lo:+.3f}, {s_.hi:+.3f}] | {s_.perplexity:.2f} | {c_.perplexity:.2f} |")
        lines.append("")
    rl = raw / "probe_reverse_link.csv"
    if rl.exists():
        from interp.evals.stats import bootstrap_ci, permutation_test

        r = pd.read_csv(rl)
        lines += ["### C1 / C3: reverse link (specificity_vs_template = log bias_ratio - log control_ratio, minus the "
                  f"same for {template_control} random {digits}-digit numbers)", "",
                  "| model | numbers | n | mean specificity_vs_template [95% CI] | increased vs random: permutation p |",
                  "|---|---|---|---|---|"]
        for model, g in r.groupby("model", sort=False):
            inc = g[g.group == "increased"].specificity_vs_template.to_numpy()
            ran = g[g.group == "random"].specificity_vs_template.to_numpy()
            perm = permutation_test(inc, ran, seed=0)
            for grp, v in (("increased", inc), ("random", ran)):
                ci = bootstrap_ci(v, seed=0)
                lines.append(f"| {model} | {grp} | {len(v)} | {ci.estimate:+.3f} [{ci.lo:+.3f}, {ci.hi:+.3f}] | "
                             f"{perm.p_value:.3g} |" if grp == "increased" else
                             f"| {model} | {grp} | {len(v)} | {ci.estimate:+.3f} [{ci.lo:+.3f}, {ci.hi:+.3f}] | |")
        if {"S", "C"} <= set(r.model):
            key = r.assign(number=r.number.astype(str).str.zfill(digits))
            w = key.pivot_table(index=["number", "group"], columns="model", values="specificity_vs_template").reset_index()
            for grp, g in w.groupby("group"):
                ci = bootstrap_ci((g.S - g.C).to_numpy(), seed=0)
                lines.append(f"\nS - C on the {grp} numbers (paired per number): {ci.estimate:+.3f} "
                             f"[{ci.lo:+.3f}, {ci.hi:+.3f}]")
        lines.append("")
    sp = raw / "probe_trace_spikes.csv"
    if sp.exists():
        t = pd.read_csv(sp)
        lines += ["### C3: trace on S of the numbers with the highest specificity on S (one trace per number)", "",
                  "| number | spike layer | sim_diff there | top head there | top DLA heads (primed prompt) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {str(x.number).zfill(digits)} | {x.spike_layer} | {x.sim_diff_at_spike:+.4f} | {x.top_head} | "
                  f"{x.top_dla_heads} |" for x in t.itertuples()]
        lines += ["", "Spike layers: " + ", ".join(f"L{k} x{v}" for k, v in t.spike_layer.value_counts().items())
                  + "; top heads: " + ", ".join(f"{k} x{v}" for k, v in t.top_head.value_counts().items()), ""]
    timings = raw / "timings.json"
    if timings.exists():
        lines += ["### Wall time per stage (s)", "", "| stage | s |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in json.loads(timings.read_text()).items()]
    (out / "tables.md").write_text("\n".join(lines) + "\n")
