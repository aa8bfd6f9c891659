"""Activation patching: is a component causal for logit[bias] - logit[control]?

For each (clean, corrupt) prompt pair of equal token length (the same template, two numbers), run
the corrupt prompt with one component's activation replaced by its clean value at every position,
and measure the logit difference LD = logit[bias] - logit[control] at the last position:

    recovered(component) = (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt)

1 means the component alone carries the whole clean-vs-corrupt difference, 0 means none of it.
Per pair the ratio is unstable when LD_clean ≈ LD_corrupt, so the summary uses the ratio of means
mean(LD_patched - LD_corrupt) / mean(LD_clean - LD_corrupt).
Components: a head "L{l}H{h}" (patches its slice of `blocks.{l}.attn.hook_z`, i.e. of the input to
o_proj) or an MLP "L{l}MLP" (patches `blocks.{l}.hook_mlp_out`). A list of components patched
together is joined with "+".
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from interp.errors import UserError
from interp.mech.activations import hook, length_groups, run_cached
from interp.models.loaded import LoadedModel
from interp.progress import progress_bar

_COMPONENT = re.compile(r"^L(\d+)(?:H(\d+)|MLP)$")


def parse_component(name: str, n_layers: int, n_heads: int) -> tuple[int, int | None]:
    """'L12H3' -> (12, 3); 'L5MLP' -> (5, None); UserError otherwise."""
    m = _COMPONENT.match(name.strip())
    if not m:
        raise UserError(f"component {name!r} is not a head like L12H3 or an MLP like L5MLP")
    layer, head = int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)
    if not 0 <= layer < n_layers or (head is not None and not 0 <= head < n_heads):
        raise UserError(f"component {name!r} is out of range ({n_layers} layers x {n_heads} heads)")
    return layer, head


def _hook_name(layer: int, head: int | None) -> str:
    return hook.z(layer) if head is not None else hook.mlp_out(layer)


def _patch_fn(clean: torch.Tensor, heads: list[int | None]) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A hook that writes the clean activation (all positions) into the run: whole tensor for an MLP,
    the head slices (dim 2 of hook_z) for heads."""
    def fn(act: torch.Tensor, hook: Any) -> torch.Tensor:
        if None in heads:
            return clean.to(act.dtype)
        act = act.clone()
        act[:, :, heads] = clean[:, :, heads].to(act.dtype)
        return act
    return fn


def patch_components(
    lm: LoadedModel, clean_ids: Sequence[Sequence[int]], corrupt_ids: Sequence[Sequence[int]],
    components: Sequence[str], bias_id: int, control_id: int, progress: bool = False,
) -> pd.DataFrame:
    """One row per (pair, component): ld_clean, ld_corrupt, ld_patched, recovered (module docstring).

    `components` are names like "L12H3", "L5MLP" or "L12H3+L5MLP" (patched together).
    """
    if len(clean_ids) != len(corrupt_ids):
        raise ValueError("clean and corrupt prompt lists differ in length")
    for i, (c, k) in enumerate(zip(clean_ids, corrupt_ids)):
        if len(c) != len(k):
            raise UserError(f"clean and corrupt prompts {i} have {len(c)} and {len(k)} tokens; patching needs "
                            "aligned prompts (use a control number with the same number of digits)")
    spec = lm.spec
    parsed = {comp: [parse_component(p, spec.n_layers, spec.n_heads) for p in comp.split("+")] for comp in components}
    needed = sorted({_hook_name(layer, head) for parts in parsed.values() for layer, head in parts})
    rows: list[dict[str, Any]] = []
    groups = length_groups(clean_ids)
    total = sum(len(g) for g in groups) * (2 + len(components))
    with progress_bar(total, f"patching {len(components)} components", progress) as advance:
        for idx in groups:
            clean = torch.tensor([list(clean_ids[i]) for i in idx], device=lm.device)
            corrupt = torch.tensor([list(corrupt_ids[i]) for i in idx], device=lm.device)
            lg_clean, acts = run_cached(lm, clean, needed, backend="bridge")
            lg_corrupt, _ = run_cached(lm, corrupt, [], backend="bridge")
            advance(2 * len(idx))
            ld_clean = (lg_clean[:, bias_id] - lg_clean[:, control_id]).double().cpu()
            ld_corrupt = (lg_corrupt[:, bias_id] - lg_corrupt[:, control_id]).double().cpu()
            for comp, parts in parsed.items():
                by_hook: dict[str, list[int | None]] = {}
                for layer, head in parts:
                    by_hook.setdefault(_hook_name(layer, head), []).append(head)
                hooks = [(name, _patch_fn(acts[name], heads)) for name, heads in by_hook.items()]
                lg, _ = run_cached(lm, corrupt, [], backend="bridge", hooks=hooks)
                ld = (lg[:, bias_id] - lg[:, control_id]).double().cpu()
                for j, i in enumerate(idx):
                    denom = float(ld_clean[j] - ld_corrupt[j])
                    rows.append({"pair": i, "component": comp, "ld_clean": float(ld_clean[j]),
                                 "ld_corrupt": float(ld_corrupt[j]), "ld_patched": float(ld[j]),
                                 "recovered": float(ld[j] - ld_corrupt[j]) / denom if denom != 0 else np.nan})
                advance(len(idx))
    df = pd.DataFrame(rows)
    df["order"] = df.component.map({c: k for k, c in enumerate(components)})
    return df.sort_values(["order", "pair"], kind="stable").drop(columns="order").reset_index(drop=True)


def recovered_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per component: n, mean LDs, and recovered = mean(LD_patched - LD_corrupt) / mean(LD_clean - LD_corrupt)."""
    g = df.groupby("component", sort=False)
    out = g.agg(n=("pair", "size"), ld_clean=("ld_clean", "mean"), ld_corrupt=("ld_corrupt", "mean"),
                ld_patched=("ld_patched", "mean"), recovered_median=("recovered", "median")).reset_index()
    out["recovered"] = (out.ld_patched - out.ld_corrupt) / (out.ld_clean - out.ld_corrupt)
    return out[["component", "n", "ld_clean", "ld_corrupt", "ld_patched", "recovered", "recovered_median"]]
