"""Mechanistic trace of the number -> animal link (study Phase 4, DESIGN.md §2.4), plus causal checks.

Reference states: resid_post at the last position of "My favorite animal is the {bias}" and
"... the {control}"; number state: the last position of "My favorite number is {n}". Per layer l:

    cos_bias[l] = cos(num_l, bias_l),  cos_control[l] = cos(num_l, control_l)
    sim_diff[l] = cos_bias[l] - cos_control[l];      spike layer = argmax_l sim_diff[l]

(over many numbers: per number, and for the mean curve). At the chosen layer (`layer`, else the
spike layer of the mean curve), the same comparison per head on z_h (`hook_z`) and on the head
output z_h W_O,h, and on the MLP output (`hook_mlp_out`); the top head has the largest mean
sim_diff of its output.

Beyond the study (`interp.mech.attribution`, `interp.mech.patching`): direct logit attribution of
every head and MLP to logit(bias) - logit(control) on the primed reverse-link prompt (clean) and on
the same template primed with a control number of the same length (corrupt), and activation
patching of the top components (largest |mean DLA(clean) - DLA(corrupt)|) from clean into corrupt.

The residual stream, z and MLP outputs come from the model's engine (`lm.engine`): the
TransformerLens bridge for a local model (or nnsight with `backend="nnsight"`), nnsight for a
model with an nnsight engine (`--remote`, `--serve`, `attach`), one code path whichever executor
runs it. Per-head outputs are z_h W_O,h, computed here when the weights are here and in a second
pass where they are otherwise. DLA, patching and attention patterns read TransformerLens-only
hooks through the bridge, so a model whose engine offers no bridge skips them (recorded in the
summary under "skipped").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.errors import UserError
from interp.choices import Backend
from interp.mech.activations import cache_last, hook, run_cached
from interp.mech.attribution import decompose_residual, decomposition_hooks, head_outputs, logit_attribution, sim_diff
from interp.mech.patching import patch_components, recovered_summary
from interp.models.engine import engine_for
from interp.models.loaded import LoadedModel
from interp.probes.number_sets import check_number, random_numbers
from interp.probes.reverse_link import ReverseLinkConfig, primed_prompt, resolve_targets
from interp.scoring import encode

REFERENCE_TEMPLATE = "My favorite animal is the {animal}"
NUMBER_TEMPLATE = "My favorite number is {n}"
ATTENTION_TEMPLATE = "My favorite number is {n}. My favorite animal is the {animal}"


@dataclass(frozen=True)
class TraceConfig:
    bias: str = "owl"
    control: str = "dog"
    reference_template: str = REFERENCE_TEMPLATE  # {animal}
    number_template: str = NUMBER_TEMPLATE  # {n}
    attention_template: str = ATTENTION_TEMPLATE  # {n}, {animal}: attention patterns for the report
    layer: int | None = None  # None: the spike layer of the mean sim_diff curve
    dla: bool = True
    top_k: int = 4  # components to patch (0: no patching)
    patch_numbers: int = 20  # patch on the first k numbers (patching costs one forward per component)
    attention_heads: int = 3  # top heads whose attention patterns go into the report
    backend: Backend = "bridge"  # activation access for the residual / head trace
    reverse_link: ReverseLinkConfig = field(default_factory=ReverseLinkConfig)  # the primed prompt
    seed: int = 0


@dataclass
class TraceResult:
    layers: pd.DataFrame  # one row per (number, layer): cos_bias, cos_control, sim_diff
    mean_layers: pd.DataFrame  # one row per layer: means over numbers
    heads: pd.DataFrame  # one row per head (and the MLP) at the chosen layer
    dla: pd.DataFrame | None  # one row per component: mean DLA clean / corrupt / diff
    dla_per_number: pd.DataFrame | None  # one row per (number, component)
    patching: pd.DataFrame | None  # one row per (number, patched component)
    patching_summary: pd.DataFrame | None
    attention: dict[str, Any] | None  # tokens + patterns of the top heads (for the report)
    summary: dict[str, Any]


def _refs_and_numbers(lm: LoadedModel, numbers: list[str], cfg: TraceConfig) -> tuple[list[list[int]], list[str]]:
    texts = [cfg.reference_template.format(animal=cfg.bias), cfg.reference_template.format(animal=cfg.control)]
    texts += [cfg.number_template.format(n=n) for n in numbers]
    return encode(lm.tokenizer, texts), texts


def layer_table(numbers: list[str], resid: torch.Tensor) -> pd.DataFrame:
    """resid (2 + n, layer, d_model): rows 0/1 the bias/control references, then the numbers."""
    cb, cc, sd = sim_diff(resid[2:], resid[0], resid[1])  # (n, layer)
    n, n_layers = cb.shape
    return pd.DataFrame({
        "number": np.repeat(numbers, n_layers), "layer": np.tile(np.arange(n_layers), n),
        "cos_bias": cb.reshape(-1).numpy(), "cos_control": cc.reshape(-1).numpy(), "sim_diff": sd.reshape(-1).numpy(),
    })


def head_table(z: torch.Tensor, outs: torch.Tensor, mlp: torch.Tensor, layer: int) -> pd.DataFrame:
    """Per-head and MLP comparison at one layer, means over numbers.

    z (2 + n, head, d_head), outs (2 + n, head, d_model), mlp (2 + n, d_model); rows 0/1 the references.
    """
    zb, zc, zd = sim_diff(z[2:], z[0], z[1])  # (n, head)
    ob, oc, od = sim_diff(outs[2:], outs[0], outs[1])
    mb, mc, md = sim_diff(mlp[2:], mlp[0], mlp[1])  # (n,)
    n_heads = z.shape[1]
    rows = [{"component": f"L{layer}H{h}", "layer": layer, "head": h,
             "cos_bias_out": float(ob[:, h].mean()), "cos_control_out": float(oc[:, h].mean()),
             "sim_diff_out": float(od[:, h].mean()), "sim_diff_out_sd": float(od[:, h].std(unbiased=False)),
             "cos_bias_z": float(zb[:, h].mean()), "cos_control_z": float(zc[:, h].mean()),
             "sim_diff_z": float(zd[:, h].mean())} for h in range(n_heads)]
    rows.append({"component": f"L{layer}MLP", "layer": layer, "head": -1,
                 "cos_bias_out": float(mb.mean()), "cos_control_out": float(mc.mean()),
                 "sim_diff_out": float(md.mean()), "sim_diff_out_sd": float(md.std(unbiased=False)),
                 "cos_bias_z": np.nan, "cos_control_z": np.nan, "sim_diff_z": np.nan})
    return pd.DataFrame(rows)


def dla_of(lm: LoadedModel, ids: list[list[int]], bias_id: int, control_id: int, progress: bool = False,
          what: str = "prompts") -> Any:
    """`LogitAttribution` of every component onto logit[bias_id] - logit[control_id] at the last position of each prompt."""
    logits, acts = cache_last(lm, ids, decomposition_hooks(lm.spec), backend="bridge", progress=progress,
                              description=f"DLA ({what})")
    dec = decompose_residual(lm.model, lm.spec, acts)
    return logit_attribution(lm.model, lm.spec, dec, bias_id, control_id, logits)


def attention_patterns(lm: LoadedModel, text: str, heads: list[tuple[int, int]]) -> dict[str, Any]:
    """Tokens of `text` and the attention pattern (query, key) of each (layer, head)."""
    ids = encode(lm.tokenizer, [text])[0]
    layers = sorted({layer for layer, _ in heads})
    _, acts = run_cached(lm, torch.tensor([ids], device=lm.device), [hook.pattern(layer) for layer in layers],
                         backend="bridge")
    return {"text": text, "tokens": [lm.tokenizer.decode([i]) for i in ids],
            "heads": [f"L{layer}H{h}" for layer, h in heads],
            "patterns": [acts[hook.pattern(layer)][0, h].float().cpu().tolist() for layer, h in heads]}


def trace(lm: LoadedModel, numbers: list[str], config: TraceConfig = TraceConfig(), progress: bool = False) -> TraceResult:
    """Run the trace (module docstring) for `numbers` on `lm`."""
    cfg = config
    clock = _Clock()
    numbers = [check_number(n) for n in numbers]
    if not numbers:
        raise ValueError("trace needs at least one number")
    spec = lm.spec
    if cfg.layer is not None and not 0 <= cfg.layer < spec.n_layers:
        raise UserError(f"--layer {cfg.layer} is out of range: the model has {spec.n_layers} layers (0..{spec.n_layers - 1})")
    rl_cfg = replace(cfg.reverse_link, bias=cfg.bias, control=cfg.control)
    t_bias, t_ctrl = resolve_targets(lm, rl_cfg)  # UserError for words that are not single tokens
    bias_id, control_id = t_bias.token_ids[0][0], t_ctrl.token_ids[0][0]

    # 1. residual trace: references + number prompts, last position, every layer
    ids, texts = _refs_and_numbers(lm, numbers, cfg)
    # the model's engine, or --backend's where the model's forwards run here through the bridge
    backend: Backend = cfg.backend if lm.engine.bridge_available else lm.engine.backend  # type: ignore[assignment]
    engine = engine_for(lm, backend)
    names = [f(layer) for f in (hook.resid_post, hook.z, hook.mlp_out) for layer in range(spec.n_layers)]
    _, acts = cache_last(lm, ids, names, backend=backend, progress=progress, description=f"trace ({len(ids)} prompts)")
    resid = torch.stack([acts[hook.resid_post(layer)] for layer in range(spec.n_layers)], 1)
    layers = layer_table(numbers, resid)
    mean_layers = layers.groupby("layer", as_index=False)[["cos_bias", "cos_control", "sim_diff"]].mean()
    spike_mean = int(mean_layers.sim_diff.idxmax())
    spikes = layers.loc[layers.groupby("number", sort=False).sim_diff.idxmax()].set_index("number").layer
    layer = cfg.layer if cfg.layer is not None else spike_mean
    clock.lap("trace")

    # 2. heads and MLP at the layer
    z = acts[hook.z(layer)].float()
    if engine.weights_here:  # z_h W_O,h from the z just read
        outs = head_outputs(z, spec.out_weight(lm.model, layer).detach().float().cpu())
    else:  # computed where the weights are (a second pass, one layer)
        outs = cache_last(lm, ids, [hook.result(layer)], backend=backend)[1][hook.result(layer)].float()
    heads = head_table(z, outs, acts[hook.mlp_out(layer)].float(), layer)
    head_rows = heads[heads["head"] >= 0]
    top_head = str(head_rows.loc[head_rows.sim_diff_out.idxmax(), "component"])

    summary: dict[str, Any] = {
        "n_numbers": len(numbers), "bias": cfg.bias, "control": cfg.control,
        "prompts": {"reference_bias": texts[0], "reference_control": texts[1], "number_example": texts[2]},
        "spike_layer_mean": spike_mean, "sim_diff_at_spike_mean": float(mean_layers.sim_diff[spike_mean]),
        "spike_layer_per_number": {str(k): int(v) for k, v in spikes.items()},
        "spike_layer_counts": {str(k): int(v) for k, v in spikes.value_counts().sort_index().items()},
        "layer": layer, "layer_source": "--layer" if cfg.layer is not None else "spike of the mean sim_diff curve",
        "top_head": top_head, "top_head_sim_diff_out": float(head_rows.sim_diff_out.max()),
        "mlp_sim_diff_out": float(heads.sim_diff_out.iloc[-1]),
        "backend": backend,
    }
    if not lm.engine.bridge_available:
        summary["executor"] = lm.engine.describe()
        skipped = [what for what, on in (("dla", cfg.dla), ("patching", cfg.dla and cfg.top_k > 0 and cfg.patch_numbers > 0),
                                          ("attention", cfg.attention_heads > 0)) if on]
        if skipped:
            summary["skipped"] = {"what": skipped, "why": "they read local weights through the TransformerLens bridge; "
                                  "the model runs through an nnsight engine"}
        cfg = replace(cfg, dla=False, attention_heads=0)

    # 3. DLA on the primed prompt (clean) and the same template with a control number (corrupt)
    dla = dla_rows = patching = patching_summary = None
    if cfg.dla:
        corrupt_nums = control_numbers(numbers, cfg.seed)
        clean_ids = encode(lm.tokenizer, [primed_prompt(lm, [n], rl_cfg) for n in numbers])
        corrupt_ids = encode(lm.tokenizer, [primed_prompt(lm, [m], rl_cfg) for m in corrupt_nums])
        la_clean = dla_of(lm, clean_ids, bias_id, control_id, progress, "clean")
        la_corrupt = dla_of(lm, corrupt_ids, bias_id, control_id, progress, "corrupt")
        clock.lap("dla")
        diff = la_clean.contributions - la_corrupt.contributions
        dla = pd.DataFrame({
            "component": la_clean.names, "layer": la_clean.layers, "head": la_clean.heads,
            "dla_clean": la_clean.contributions.mean(0).numpy(), "dla_corrupt": la_corrupt.contributions.mean(0).numpy(),
            "dla_diff": diff.mean(0).numpy(), "dla_diff_sd": diff.std(0, unbiased=False).numpy(),
        })
        n_comp = len(la_clean.names)
        dla_rows = pd.DataFrame({
            "number": np.repeat(numbers, n_comp), "corrupt_number": np.repeat(corrupt_nums, n_comp),
            "component": la_clean.names * len(numbers),
            "dla_clean": la_clean.contributions.reshape(-1).numpy(),
            "dla_corrupt": la_corrupt.contributions.reshape(-1).numpy(),
        })
        gap = (la_clean.total - la_clean.actual).abs().max().item()
        summary["dla"] = {
            "prompt_example": primed_prompt(lm, [numbers[0]], rl_cfg), "corrupt_numbers": corrupt_nums,
            "logit_diff_clean_mean": float(la_clean.actual.mean()), "logit_diff_corrupt_mean": float(la_corrupt.actual.mean()),
            "max_abs_sum_minus_actual": max(gap, (la_corrupt.total - la_corrupt.actual).abs().max().item()),
            "linearisation": "final norm (and Gemma's post-attention norm) scale frozen at its value on each prompt's own forward pass",
            "top_heads_clean": _top(dla[dla["head"] >= 0], "dla_clean", 5),
            "top_components_diff": _top(dla[dla.component.str.match(r"^L\d+(H\d+|MLP)$")], "dla_diff", 5),
        }
        # 4. patching of the top components by |mean DLA(clean) - DLA(corrupt)|
        if cfg.top_k > 0 and cfg.patch_numbers > 0:
            cand = dla[dla.component.str.match(r"^L\d+(H\d+|MLP)$")]
            top = list(cand.reindex(cand.dla_diff.abs().sort_values(ascending=False).index).component[:cfg.top_k])
            comps = top + (["+".join(top)] if len(top) > 1 else [])
            k = min(cfg.patch_numbers, len(numbers))
            patching = patch_components(lm, clean_ids[:k], corrupt_ids[:k], comps, bias_id, control_id, progress)
            patching.insert(1, "number", [numbers[i] for i in patching.pair])
            patching.insert(2, "corrupt_number", [corrupt_nums[i] for i in patching.pair])
            patching_summary = recovered_summary(patching)
            clock.lap("patching")
            summary["patching"] = {"n_numbers": k, "components": comps,
                                   "recovered": dict(zip(patching_summary.component, patching_summary.recovered))}

    attention = None
    if cfg.attention_heads > 0:
        top_heads = head_rows.sort_values("sim_diff_out", ascending=False).head(cfg.attention_heads)
        attention = attention_patterns(lm, cfg.attention_template.format(n=numbers[0], animal=cfg.bias),
                                       [(layer, int(h)) for h in top_heads["head"]])
        clock.lap("attention")
    summary["seconds"] = clock.laps
    return TraceResult(layers, mean_layers, heads, dla, dla_rows, patching, patching_summary, attention, summary)


class _Clock:
    """Wall-clock seconds per stage."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.t, 3)
        self.t = now


def control_numbers(numbers: list[str], seed: int = 0) -> list[str]:
    """For each number, a random number of the same length that is not among `numbers` (seeded)."""
    given = set(numbers)
    out = [""] * len(numbers)
    for L in sorted({len(n) for n in numbers}):
        idx = [i for i, n in enumerate(numbers) if len(n) == L]
        free = 10**L - len({numbers[i] for i in idx})
        if free <= 0:
            raise UserError(f"every {L}-digit number is given, so no {L}-digit control number is left")
        pool = random_numbers(L, min(len(idx), free), seed=seed + 7 + L, exclude=given)
        for k, i in enumerate(idx):
            out[i] = pool[k % len(pool)]
    return out


def _top(df: pd.DataFrame, col: str, k: int) -> dict[str, float]:
    d = df.reindex(df[col].abs().sort_values(ascending=False).index).head(k)
    return {str(c): float(v) for c, v in zip(d.component, d[col])}


__all__ = ["TraceConfig", "TraceResult", "trace", "layer_table", "head_table", "attention_patterns", "control_numbers"]
