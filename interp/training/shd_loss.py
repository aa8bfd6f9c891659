"""SHD loss on real models: capture teacher maps and value streams, squeeze, align, KL.

    loss = shd_loss(teacher, student, texts, tau=2.0)     # scalar tensor, differentiable in the student

Both models read the same raw text; each tokenises it its own way (BOS rule of `scoring.encode`
via the tokenizer's defaults) and positions are aligned through character offsets
(`interp.training.shd.align_tokens`). Callers that already hold token ids and offsets (the
distillation trainer) pass them as `student_enc` / `teacher_enc` instead. Attention maps need eager
attention: both models are switched to it for the call and switched back afterwards. The teacher
runs under no_grad in eval mode.

Keys the student cannot attend to (causal, padding, and sliding-window masks: exactly zero weight
in its eager map) are removed from the target rows, which are renormalised (`attention_kl`).
"""

from __future__ import annotations

from typing import Any

import torch

from interp.models.loaded import LoadedModel
from interp.models.sharing import eager_attention
from interp.training.shd import (
    align_tokens,
    attention_kl,
    causal_key_mask,
    identity_alignment,
    layer_map,
    same_vocabulary,
    sharpen,
    squeeze_heads,
)


def tokenize_with_offsets(lm: LoadedModel, texts: list[str]) -> dict[str, Any]:
    """Left-padded ids, mask, position ids and per-example char offsets of real tokens."""
    tok = lm.tokenizer
    enc = tok(texts, add_special_tokens=True, return_offsets_mapping=True)
    from interp.scoring import left_pad

    batch = left_pad(enc["input_ids"], tok.pad_token_id, next(lm.model.parameters()).device)
    batch["offsets"] = [[tuple(o) for o in offs] for offs in enc["offset_mapping"]]
    return batch


def _capture_attn_inputs(lm: LoadedModel, layers: list[int]) -> tuple[dict[int, torch.Tensor], list[Any]]:
    store: dict[int, torch.Tensor] = {}
    handles = []
    for l in sorted(set(layers)):
        def pre(mod: torch.nn.Module, args: tuple, kwargs: dict, l: int = l) -> None:
            store[l] = kwargs.get("hidden_states", args[0] if args else None)
        handles.append(lm.spec.module(lm.model, "attn", l).register_forward_pre_hook(pre, with_kwargs=True))
    return store, handles


def teacher_targets(teacher: LoadedModel, texts: list[str] | None, student_heads: int, student_layers: int,
                    tau: float = 1.0, enc: dict[str, Any] | None = None) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Squeezed, sharpened teacher maps per student layer, in teacher positions: each (batch, m, S_T, S_T),
    and the teacher encoding used (`enc` if given: input_ids, attention_mask, position_ids, offsets)."""
    lmap = layer_map(student_layers, teacher.spec.n_layers)
    enc = enc if enc is not None else tokenize_with_offsets(teacher, texts or [])
    attn_inputs, handles = _capture_attn_inputs(teacher, lmap)
    try:
        with torch.no_grad(), eager_attention(teacher.model):
            out = teacher.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                position_ids=enc["position_ids"], output_attentions=True, use_cache=False)
            km = causal_key_mask(enc["attention_mask"])
            squeezed: dict[int, torch.Tensor] = {}
            for l in sorted(set(lmap)):
                A = sharpen(out.attentions[l].float(), tau, km[:, None])
                X = teacher.spec.value_streams(teacher.model, l, attn_inputs[l]).float()
                squeezed[l] = squeeze_heads(A, X, student_heads) if A.shape[1] > student_heads else A
    finally:
        for h in handles:
            h.remove()
    return [squeezed[l] for l in lmap], enc  # type: ignore[return-value]


def shd_loss(teacher: LoadedModel, student: LoadedModel, texts: list[str] | None, tau: float = 1.0,
             student_out: Any = None, student_enc: dict[str, Any] | None = None,
             teacher_enc: dict[str, Any] | None = None, same_tokenizer: bool | None = None) -> torch.Tensor:
    """Mean over student layers of KL(aligned squeezed teacher map || student map).

    Pass `student_out` (a forward with output_attentions=True under eager attention) and its
    `student_enc` to reuse the student's forward of the LM loss; otherwise one is run here.
    `teacher_enc` (left-padded input_ids, attention_mask, position_ids, offsets) replaces the
    teacher's tokenisation of `texts`. Encodings may be left- or right-padded.
    `same_tokenizer` (computed from the vocabularies when None): an example whose teacher and
    student ids are equal then aligns by `identity_alignment`, never through char offsets.
    """
    m, n_s = student.spec.n_heads, student.spec.n_layers
    if teacher.spec.n_heads < m:
        raise ValueError(f"SHD squeezes teacher heads into fewer student heads: teacher has {teacher.spec.n_heads}, student {m}")
    if same_tokenizer is None:
        same_tokenizer = same_vocabulary(student.tokenizer, teacher.tokenizer)
    targets, t_enc = teacher_targets(teacher, texts, m, n_s, tau, enc=teacher_enc)
    s_enc = student_enc or tokenize_with_offsets(student, texts or [])
    if student_out is None:
        with eager_attention(student.model):
            student_out = student.model(input_ids=s_enc["input_ids"], attention_mask=s_enc["attention_mask"],
                                        position_ids=s_enc["position_ids"], output_attentions=True, use_cache=False)
    B, S_s = s_enc["input_ids"].shape
    km_s = causal_key_mask(s_enc["attention_mask"])
    row_mask = s_enc["attention_mask"].bool().clone()
    # per-example alignment of real (non-padding) positions
    aligns = []
    for b in range(B):
        ps = s_enc["attention_mask"][b].nonzero().flatten()
        pt = t_enc["attention_mask"][b].nonzero().flatten()
        s_ids, t_ids = s_enc["input_ids"][b, ps].tolist(), t_enc["input_ids"][b, pt].tolist()
        if same_tokenizer and s_ids == t_ids:
            al = identity_alignment(len(ps))
        else:
            al = align_tokens([s_enc["offsets"][b][i] for i in range(len(ps))],
                              [t_enc["offsets"][b][i] for i in range(len(pt))])
        row_mask[b, ps] &= al.query_index.to(row_mask.device) >= 0
        aligns.append((ps, pt, al))
    losses = []
    for l_s, A_T in enumerate(targets):
        target = torch.zeros(B, m, S_s, S_s, dtype=A_T.dtype, device=A_T.device)
        for b, (ps, pt, al) in enumerate(aligns):
            sub = A_T[b][:, pt][:, :, pt]  # (m, S_T_real, S_T_real)
            target[b][:, ps[:, None], ps[None, :]] = al.apply(sub)
        A_S = student_out.attentions[l_s].float()
        allowed = km_s[:, None] & (A_S > 0)  # (batch, head, S, S): also the student's sliding window
        losses.append(attention_kl(target, A_S, row_mask, allowed))
    return torch.stack(losses).mean()
