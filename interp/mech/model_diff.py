"""How two models of one lineage differ: in their weights, and in what each component writes to a logit difference.

Weights, per parameter tensor (`weight_diff_table`):

    rel(W) = ||W_model - W_base||_F / ||W_base||_F

with the parameter's layer (-1 outside the blocks) and its module path inside the block
("self_attn.q_proj", "mlp.down_proj", "input_layernorm", ...). Tied parameters count once.
`weight_diff_summary` pools a module kind over layers: sqrt(sum ||dW||^2) / sqrt(sum ||W||^2).

DLA of the difference (`dla_difference`): each model's direct logit attribution onto
logit[bias] - logit[control] at the last position (`mech.attribution`, each with its own weights and its
own frozen final norm), and per component

    d(component) = mean_q [ DLA_a(component, q) - DLA_b(component, q) ]

Summed over components (and the norm and head biases) d equals mean_q [LD_a(q) - LD_b(q)] exactly, up
to floating point: the decomposition is exact for each model. It is direct effects only: a component
whose change works through later components shows up at those.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from interp.errors import UserError
from interp.mech.trace import dla_of
from interp.models.arch import ArchSpec
from interp.models.lineage import check_lineage
from interp.models.loaded import LoadedModel


def _unique_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> tensor, one name per storage (a tied embedding / head counts once, under its first name)."""
    return {n: p for n, p in model.named_parameters(remove_duplicate=True)}


def weight_diff_table(model: LoadedModel, base: LoadedModel) -> pd.DataFrame:
    """One row per parameter tensor: name, layer, module, numel, base_norm, diff_norm, rel (module docstring)."""
    check_lineage(model, base)
    a, b = _unique_parameters(model.model), _unique_parameters(base.model)
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise UserError(f"{model.name} and {base.name} have different parameters (e.g. {only[0]}); "
                        "merge adapters first (the store's full copies are merged)")
    prefix = re.compile(rf"^{re.escape(model.spec.layout.layers)}\.(\d+)\.(.+)$")
    rows = []
    with torch.no_grad():
        for name, w in a.items():
            w0 = b[name]
            d = (w.detach().double().cpu() - w0.detach().double().cpu())
            m = prefix.match(name)
            layer, module = (int(m.group(1)), m.group(2)) if m else (-1, name)
            module = re.sub(r"\.(weight|bias)$", "", module)
            kind = "bias" if name.endswith(".bias") else "weight"
            base_norm = float(w0.detach().double().norm())
            diff_norm = float(d.norm())
            rows.append({"name": name, "layer": layer, "module": module, "param": kind, "numel": w.numel(),
                         "base_norm": base_norm, "diff_norm": diff_norm,
                         "rel": diff_norm / base_norm if base_norm > 0 else np.nan})
    return pd.DataFrame(rows)


def weight_diff_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (module, param) pooled over layers: sqrt(sum diff^2) / sqrt(sum base^2), and the layer that moved most."""
    out = []
    for (module, param), g in table.groupby(["module", "param"], sort=False):
        top = g.loc[g.rel.idxmax()] if g.rel.notna().any() else g.iloc[0]
        out.append({"module": module, "param": param, "layers": len(g),
                    "rel": float(np.sqrt((g.diff_norm ** 2).sum()) / np.sqrt((g.base_norm ** 2).sum())),
                    "max_rel": float(top.rel), "max_layer": int(top.layer)})
    return pd.DataFrame(out).sort_values("rel", ascending=False, kind="stable").reset_index(drop=True)


def dla_difference(a: LoadedModel, b: LoadedModel, prompt_ids: Sequence[Sequence[int]], bias_id: int,
                   control_id: int, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per component: layer, head, dla_a, dla_b, d = dla_a - dla_b (means over prompts), sd of the per-prompt
    difference; per prompt: ld_a, ld_b and the sums of the contributions). See the module docstring."""
    check_lineage(a, b)
    ids = [list(p) for p in prompt_ids]
    la = dla_of(a, ids, bias_id, control_id, progress, a.name)
    lb = dla_of(b, ids, bias_id, control_id, progress, b.name)
    diff = (la.contributions - lb.contributions).numpy()  # (n, component)
    comp = pd.DataFrame({"component": la.names, "layer": la.layers, "head": la.heads,
                         "dla_a": la.contributions.numpy().mean(0), "dla_b": lb.contributions.numpy().mean(0),
                         "d": diff.mean(0), "d_sd": diff.std(0, ddof=1) if len(ids) > 1 else np.zeros(len(la.names))})
    per_prompt = pd.DataFrame({"prompt": range(len(ids)), "ld_a": la.actual.numpy(), "ld_b": lb.actual.numpy(),
                               "sum_a": la.total.numpy(), "sum_b": lb.total.numpy()})
    return comp, per_prompt


def layer_totals(comp: pd.DataFrame, spec: ArchSpec) -> pd.DataFrame:
    """`dla_difference`'s components pooled per layer: attention (heads + bias) and MLP; embed and biases as layer -1."""
    kind = np.where(comp.component.str.endswith("MLP"), "mlp", np.where(comp.layer >= 0, "attn", comp.component))
    g = comp.assign(kind=kind).groupby(["layer", "kind"], sort=True).d.sum().reset_index()
    return g[g.layer.between(-1, spec.n_layers - 1)].reset_index(drop=True)


__all__ = ["weight_diff_table", "weight_diff_summary", "dla_difference", "layer_totals"]
