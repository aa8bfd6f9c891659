"""Head and MLP attribution: per-head outputs, cosine comparisons, direct logit attribution (DLA).

Pure functions over cached last-position activations (see `interp.mech.activations`).

Head output (what head h writes, before any post-attention norm):
    out_h = z_h @ W_O[:, h*d_head:(h+1)*d_head].T            # z_h: (n, d_head) -> (n, d_model)

Residual decomposition at one position (exact, checked by `decompose_residual`):
    resid_post[L-1] = resid_pre[0]                                     # "embed" (token + position embeddings)
                    + sum_l [ sum_h PN_l(out_h) + PN_l(b_O) + PN_l.bias ]  # "L{l}H{h}", "L{l}attn_bias"
                    + sum_l mlp_out_l                                  # "L{l}MLP" (= resid_post - resid_mid)
PN_l is the attention-output norm where the family has one (Gemma: post_attention_layernorm), else
the identity; it is linearised by freezing its scale at the value of the same forward pass, so
PN_l(sum_h out_h + b_O) = sum_h PN_l,lin(out_h) + PN_l,lin(b_O) + PN_l.bias exactly.

DLA onto the logit difference of two tokens b (bias) and c (control):
    Δw = W_U[b] - W_U[c],   Δb = b_U[b] - b_U[c] (0 without an LM-head bias)
    DLA(component v) = N_lin(v) · Δw,   N_lin(v) = gain * C(v) / s
where N is the final norm (RMSNorm: C = identity, s = sqrt(mean(x^2) + eps); LayerNorm: C subtracts
the mean, s = sqrt(var(x) + eps)) and s is **frozen at its value on the clean forward pass**
(x = resid_post[L-1] of that prompt). Then
    sum_components DLA + final_norm.bias · Δw + Δb = logit[b] - logit[c]      (exactly, up to fp)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from interp.mech.activations import hook
from interp.models.arch import ArchSpec, effective_weight

# ---- cosines ------------------------------------------------------------------------------------

def cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """cos(a, b) along the last dim, in float64; shapes broadcast: (..., d) x (..., d) -> (...)."""
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)


def sim_diff(x: torch.Tensor, ref_bias: torch.Tensor, ref_control: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cos(x, ref_bias), cos(x, ref_control), their difference); x (n, ..., d), refs (..., d)."""
    cb, cc = cosine(x, ref_bias), cosine(x, ref_control)
    return cb, cc, cb - cc


def head_outputs(z: torch.Tensor, w_o: torch.Tensor) -> torch.Tensor:
    """Per-head outputs out_h = z_h W_O,h^T: z (..., head, d_head), w_o (d_model, head * d_head) -> (..., head, d_model)."""
    n_heads, d_head = z.shape[-2], z.shape[-1]
    return torch.einsum("...he,dhe->...hd", z, w_o.reshape(w_o.shape[0], n_heads, d_head).to(z.dtype))


# ---- norms, linearised --------------------------------------------------------------------------

@dataclass
class FrozenNorm:
    """A norm with its scale frozen: N_lin(v) = gain * C(v) / scale, and N(y) = N_lin(y) + bias."""

    gain: torch.Tensor  # (d_model,)
    scale: torch.Tensor  # (n, 1): per prompt, from the forward pass it was frozen on
    center: bool  # LayerNorm subtracts the mean; RMSNorm does not
    bias: torch.Tensor | None  # (d_model,) or None

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """N_lin(v) for v (n, ..., d_model), linear in v."""
        if self.center:
            v = v - v.mean(-1, keepdim=True)
        scale = self.scale.reshape(self.scale.shape[0], *([1] * (v.ndim - 1)))
        return self.gain * v / scale


def freeze_norm(module: nn.Module, y: torch.Tensor) -> FrozenNorm:
    """Linearise `module` (an RMSNorm of any family, or nn.LayerNorm) at inputs y (n, d_model).

    The RMSNorm gain is read off the module itself, N(1) * sqrt(1 + eps), so Llama's `w` and
    Gemma's `1 + w` need no special case.
    """
    module = getattr(module, "_original_component", module)  # the TransformerLens bridge wraps HF modules in place
    eps = float(getattr(module, "eps", None) or getattr(module, "variance_epsilon", None) or 0.0)
    y = y.float()
    if isinstance(module, nn.LayerNorm):
        scale = torch.sqrt(y.var(-1, unbiased=False, keepdim=True) + eps)
        bias = module.bias.detach().float() if module.bias is not None else None
        gain = module.weight.detach().float() if module.weight is not None else torch.ones(y.shape[-1])
        return FrozenNorm(gain, scale, True, bias)
    with torch.no_grad():
        ones = torch.ones(1, y.shape[-1], dtype=y.dtype, device=y.device)
        gain = module(ones)[0].float() * (1.0 + eps) ** 0.5
    scale = torch.sqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return FrozenNorm(gain, scale, False, None)


# ---- residual decomposition and DLA -------------------------------------------------------------

@dataclass
class Decomposition:
    """The last-position residual stream resid_post[L-1] split into components: (n, component, d_model)."""

    names: list[str]
    layers: list[int]  # -1 for embed
    heads: list[int]  # -1 for non-head components
    vectors: torch.Tensor  # (n, n_components, d_model)
    final_resid: torch.Tensor  # (n, d_model): resid_post[L-1], what the pieces must add up to


def decomposition_hooks(spec: ArchSpec) -> list[str]:
    """The hooks `decompose_residual` needs (last position)."""
    names = [hook.resid_pre(0)]
    for layer in range(spec.n_layers):
        names += [hook.z(layer), hook.resid_pre(layer), hook.resid_mid(layer), hook.resid_post(layer)]
    return names


@torch.no_grad()
def decompose_residual(model: nn.Module, spec: ArchSpec, acts: dict[str, torch.Tensor]) -> Decomposition:
    """Split resid_post[L-1] into embed, per-head, attention-bias and MLP terms (module docstring).

    `acts` holds the `decomposition_hooks` at the last position: resid (n, d_model), z (n, head, d_head).
    """
    names, layers, heads, vecs = ["embed"], [-1], [-1], [acts[hook.resid_pre(0)].float()]
    for layer in range(spec.n_layers):
        o_proj = spec.module(model, "o_proj", layer)
        w_o = spec.out_weight(model, layer).detach().float().cpu()
        outs = head_outputs(acts[hook.z(layer)].float(), w_o)  # (n, head, d_model)
        b_o = getattr(o_proj, "bias", None)
        b_o = b_o.detach().float().cpu() if b_o is not None else torch.zeros(spec.d_model)
        attn_bias = b_o.expand(outs.shape[0], -1)
        if spec.layout.attn_out_norm is not None:
            pn = freeze_norm(spec.module(model, "attn_out_norm", layer).cpu(), outs.sum(1) + b_o)
            outs, attn_bias = pn.apply(outs), pn.apply(attn_bias) + (pn.bias if pn.bias is not None else 0.0)
        for h in range(spec.n_heads):
            names.append(f"L{layer}H{h}"); layers.append(layer); heads.append(h); vecs.append(outs[:, h])
        names.append(f"L{layer}attn_bias"); layers.append(layer); heads.append(-1); vecs.append(attn_bias)
        mlp = (acts[hook.resid_post(layer)] - acts[hook.resid_mid(layer)]).float()
        names.append(f"L{layer}MLP"); layers.append(layer); heads.append(-1); vecs.append(mlp)
    final = acts[hook.resid_post(spec.n_layers - 1)].float()
    return Decomposition(names, layers, heads, torch.stack(vecs, 1), final)


@dataclass
class LogitAttribution:
    """DLA of every component onto logit[bias] - logit[control], per prompt."""

    names: list[str]  # components, then "final_norm_bias", "lm_head_bias"
    layers: list[int]
    heads: list[int]
    contributions: torch.Tensor  # (n, n_names) float64
    actual: torch.Tensor  # (n,) the model's logit[bias] - logit[control]

    @property
    def total(self) -> torch.Tensor:
        """Sum of all contributions: (n,); equals `actual` up to floating point."""
        return self.contributions.sum(1)


@torch.no_grad()
def logit_attribution(model: nn.Module, spec: ArchSpec, dec: Decomposition, bias_id: int, control_id: int,
                      logits: torch.Tensor) -> LogitAttribution:
    """DLA of `dec`'s components onto logit[bias_id] - logit[control_id] (module docstring).

    `logits`: the model's last-position logits (n, vocab), for the `actual` difference (before the final
    soft-capping of Gemma 2, `ArchSpec.uncapped`: the components add up to that logit, not the capped one).
    """
    lm_head = spec.module(model, "lm_head")
    w_u = effective_weight(lm_head).detach().float().cpu()  # (vocab, d_model); LoRA on lm_head included
    dw = (w_u[bias_id] - w_u[control_id]).double()
    fn = freeze_norm(spec.module(model, "final_norm").cpu(), dec.final_resid)
    per = (fn.apply(dec.vectors).double() @ dw)  # (n, component)
    n = per.shape[0]
    norm_b = (fn.bias.double() @ dw).expand(n) if fn.bias is not None else torch.zeros(n, dtype=torch.float64)
    hb = getattr(lm_head, "bias", None)
    head_b = (hb[bias_id] - hb[control_id]).double().cpu().expand(n) if hb is not None else torch.zeros(n, dtype=torch.float64)
    contrib = torch.cat([per, norm_b[:, None], head_b[:, None]], 1)
    pre = spec.uncapped(logits.double())
    actual = pre[:, bias_id] - pre[:, control_id]
    return LogitAttribution(dec.names + ["final_norm_bias", "lm_head_bias"], dec.layers + [-1, -1],
                            dec.heads + [-1, -1], contrib, actual)
