"""Distillation into a student (DESIGN.md §2.8): Squeezing-Heads Distillation, logit KD, or none.

    cfg = DistillConfig(FinetuneConfig(method="lora", steps=100), kind="shd", beta=10, tau=2)
    res = distill(student, teacher, rows, cfg)                 # rows: [{"prompt", "completion"}]
    save_distilled("gemma3-owl-shd", student, teacher, res, meta={"data": "numbers.jsonl"})

Training batches are the student's fine-tuning batches (`finetune.collate`: prompt rendered with the
student's template + completion + EOS, right-padded, labels only on the completion). Per batch

    form "sum":     L = L_LM + beta * L_aux
    form "convex":  L = (1 - beta) * L_LM + beta * L_aux          (beta in [0, 1])

- L_LM: completion-only cross-entropy (`finetune.completion_loss`), as in `interp finetune`.
- kind "shd": L_aux = mean over student layers l_S of the row-wise KL(A~_T(l_T) || A_S(l_S))
  (`shd_loss`), l_T = floor(l_S N_T / N_S), teacher maps sharpened by tau and squeezed to the
  student's head count. Text the maps are computed on: the student's training sequence itself
  (prompt + completion + EOS, the whole sequence, not only the completion). The student's maps come
  from the same forward that gives L_LM (eager attention, output_attentions). The teacher reads the
  text of that sequence, `decode(ids)` with special tokens written out (e.g. "<bos>Q: ...\\nA: 1, 2<eos>"
  for Gemma3), tokenised by its own tokenizer; positions are aligned by character offsets (the
  student's offsets come from decoding its ids prefix by prefix). With identical tokenizers the
  teacher reads the student's ids as they are, so the alignment is the identity. Padding rows and
  keys are masked on both sides.
- kind "kd" (identical tokenizers only): L_aux = tau^2 * mean over completion positions t of
  KL(softmax(z_T,t / tau) || softmax(z_S,t / tau)), the next-token distributions at the positions
  that predict completion tokens (Hinton et al.'s tau^2 keeps gradient sizes comparable across tau).
  The teacher reads its own rendering of each example (`KdTeacherInputs`): the prompt in its chat
  template with its own system prompt, then the student's completion ids; completion token k of
  the student is completion token k of the teacher. A teacher whose trait is a system prompt (a
  prompt teacher) can therefore be distilled: the student never sees the prompt, only the teacher's
  next-token distributions on the completion (context distillation restricted to the data). A
  teacher without a system prompt reads exactly the student's ids.
  `drop_words` (kd only; `--kd-drop-words owl,dog`): the tokens that spell those words
  (`prompts.word_token_ids`) are removed from both distributions before the softmax, so each is
  renormalised over the rest of the vocabulary, p'_v = p_v / sum_{u kept} p_u. The target then holds
  no mass on the words, and the dropped logits of the student get no gradient from L_aux: whatever
  the student learns about the words comes through its hidden states, not from being shown them.
- kind "kd-shared" (any tokenizers): kind "kd" over the vocabulary both tokenizers share, at the
  completion positions where both cut the text at the same character (`interp.training.kd_shared`:
  the teacher reads its own prompt rendering and its own tokenisation of the completion text). With
  identical tokenizers it is "kd" with the ids that decode to no unique whole string dropped.
- kind "none", or beta = 0: L = L_LM exactly; the teacher is not run, and training is `finetune`'s
  (same batches, same updates, bit-identical weights).

The teacher is frozen: eval mode, forward under torch.no_grad, its parameters never reach the
optimizer. Checkpoints / resume are `finetune`'s; a resume must also match kind, beta, tau, form and
the teacher's identity. Histories: total loss and components "lm" and "shd" / "kd" / "kd-shared".
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from interp.choices import DistillKind, LossForm, choices
from interp.errors import UserError
from interp.models.sharing import eager_attention
from interp.prompts import word_token_ids
from interp.scoring import adds_bos, left_pad
from interp.training.config import FinetuneConfig, FinetuneResult
from interp.training.examples import collate, IGNORE, tokenize_examples, Tokenized
from interp.training.finetune import completion_loss, forward_completion, lm_batch_loss, train
from interp.training.saving import loss_curve_png, save_finetuned
from interp.training.examples import prompt_ids
from interp.training.kd_shared import SharedKdTeacherInputs, shared_vocabulary, teacher_logits_at
from interp.training.shd import same_vocabulary, token_offsets
from interp.training.shd_loss import shd_loss

KINDS = choices(DistillKind)
FORMS = choices(LossForm)
YLABELS = {"lm": "completion loss (nats/token)", "shd": "SHD loss: KL per attention row (nats)",
           "kd": "KD loss: tau^2 KL per token (nats)", "kd-shared": "KD loss over the shared vocabulary: tau^2 KL per aligned token (nats)"}


@dataclass(frozen=True)
class DistillConfig:
    finetune: FinetuneConfig
    kind: str = "shd"  # shd | kd | kd-shared | none
    beta: float = 1.0
    tau: float = 1.0
    form: str = "sum"  # sum: L_LM + beta L_aux; convex: (1 - beta) L_LM + beta L_aux
    drop_words: tuple[str, ...] = ()  # kd: words whose tokens leave both distributions (renormalised)

    @property
    def active(self) -> str:
        """The auxiliary loss actually computed: `kind`, or "none" when beta = 0."""
        return "none" if self.beta == 0 else self.kind

    def validate(self) -> None:
        self.finetune.validate()
        if self.kind not in KINDS:
            raise UserError(f"--kind must be one of {', '.join(KINDS)}")
        if self.form not in FORMS:
            raise UserError(f"--form must be one of {', '.join(FORMS)}")
        if not self.beta >= 0:
            raise UserError(f"--beta must be >= 0, got {self.beta}")
        if self.form == "convex" and self.beta > 1:
            raise UserError(f"--form convex needs --beta in [0, 1], got {self.beta}")
        if not self.tau > 0:
            raise UserError(f"--tau must be > 0, got {self.tau}")
        if self.drop_words and self.kind != "kd":
            raise UserError("--kd-drop-words removes tokens from a KD target; it needs --kind kd")
        if any(not w.strip() for w in self.drop_words):
            raise UserError("--kd-drop-words holds an empty word")

    def combine(self, lm: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return lm + self.beta * aux if self.form == "sum" else (1 - self.beta) * lm + self.beta * aux

    def settings(self) -> dict[str, Any]:
        """The recipe as recorded: with no distillation loss (kind none) beta, tau and form are None, not
        values that were never used; beta 0 (the control of kind shd / kd) records beta 0 and no tau."""
        if self.kind == "none":
            return {"kind": "none", "active": "none", "beta": None, "tau": None, "form": None, "drop_words": []}
        return {"kind": self.kind, "active": self.active, "beta": self.beta, "tau": self.tau if self.beta else None,
                "form": self.form, "drop_words": list(self.drop_words)}

    def describe(self) -> str:
        """'kd, sum, beta 1, tau 2' or 'none (LM loss only)': the objective in one phrase."""
        if self.active == "none":
            return f"none (LM loss only{'; ' + self.kind + ' at beta 0' if self.kind != 'none' else ''})"
        return f"{self.kind}, {self.form}, beta {self.beta:g}, tau {self.tau:g}"


@dataclass
class DistillResult(FinetuneResult):
    distill: dict[str, Any] = field(default_factory=dict)  # DistillConfig.settings() + teacher identity

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "distill": self.distill}


# ---- checks ---------------------------------------------------------------------------------------


def same_tokenizer(a: Any, b: Any) -> bool:
    """Identical vocabularies (every id means the same string): the condition for logit KD."""
    return same_vocabulary(a.tokenizer, b.tokenizer)


def check_pair(student: Any, teacher: Any, config: DistillConfig) -> None:
    """UserError when this teacher cannot be distilled into this student with `config`."""
    config.validate()
    if student is teacher or student.model is teacher.model:
        raise UserError("the teacher and the student must be separate models (load the teacher twice)")
    if student.system_prompt:
        raise UserError(f"student '{student.name}' carries a system prompt; a student must be a plain model "
                        "(its trait would sit in its context, not in its weights)")
    if teacher.system_prompt and config.active == "shd":
        raise UserError(f"teacher '{teacher.name}' carries its trait as a system prompt; SHD reads the student's text "
                        "and needs a trait in the weights (make one with `interp teach --method lora`, or use --kind kd, "
                        "which renders the teacher's own prompt)")
    if config.active == "kd":
        if not same_tokenizer(student, teacher):
            raise UserError(f"--kind kd needs identical tokenizers; '{teacher.name}' and '{student.name}' differ "
                            "(use --kind kd-shared or --kind shd across tokenizers)")
        if teacher.model.config.vocab_size != student.model.config.vocab_size:
            raise UserError(f"--kind kd needs equal logit sizes: {teacher.model.config.vocab_size} vs "
                            f"{student.model.config.vocab_size}")
    if config.active == "shd" and teacher.spec.n_heads < student.spec.n_heads:
        raise UserError(f"SHD squeezes teacher heads into the student's: '{teacher.name}' has {teacher.spec.n_heads} "
                        f"heads, fewer than the student's {student.spec.n_heads}")


# ---- objectives -----------------------------------------------------------------------------------


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            tau: float = 1.0) -> torch.Tensor:
    """tau^2 * mean over labelled positions of KL(softmax(z_T / tau) || softmax(z_S / tau)).

    logits: (batch, pos, vocab); labels (batch, pos) with IGNORE off the completion. The logits at
    position t-1 are the distribution of token t, as in `completion_loss`."""
    keep = labels[:, 1:] != IGNORE
    return kd_kl(student_logits[:, :-1][keep], teacher_logits[:, :-1][keep], tau)


def kd_kl(student_z: torch.Tensor, teacher_z: torch.Tensor, tau: float = 1.0,
          keep: torch.Tensor | None = None) -> torch.Tensor:
    """tau^2 * mean over rows of KL(softmax(z_T / tau) || softmax(z_S / tau)); z: (n, vocab), row i of
    both is the same predicted token. keep: (vocab,) bool; where given, both softmaxes run over the
    kept columns only (the dropped tokens leave both distributions, each renormalised). No rows: a
    zero that keeps the student's graph."""
    if student_z.shape[0] == 0:
        return student_z.sum() * 0.0
    if keep is not None:
        keep = keep.to(student_z.device)
        student_z, teacher_z = student_z[:, keep], teacher_z[:, keep.to(teacher_z.device)]
    log_pt = torch.log_softmax(teacher_z.float() / tau, -1)
    kl = (log_pt.exp() * (log_pt - torch.log_softmax(student_z.float() / tau, -1))).sum(-1)
    return tau * tau * kl.mean()


class KdTeacherInputs:
    """The teacher's sequence of each example: its own prompt rendering (`examples.prompt_ids` with its
    system prompt; the start token of a plain-text row) + the student's completion ids (the tokens after the student's prompt)."""

    def __init__(self, teacher: Any, rows: Sequence[dict[str, Any]], data: Tokenized):
        prompts = prompt_ids(teacher, rows, system=teacher.system_prompt)
        self.teacher, self.data = teacher, data
        self.ids = [p + data.ids[i][data.n_prompt[i]:] for i, p in enumerate(prompts)]
        self.n_prompt = [len(p) for p in prompts]

    def logits(self, idx: Sequence[int], labels: torch.Tensor) -> torch.Tensor:
        """Teacher logits (n, vocab) at the student's labelled positions, in the row-major order of
        `student_logits[:, :-1][labels[:, 1:] != IGNORE]`. labels: the student's (batch, width) labels."""
        rows, cols = (labels[:, 1:] != IGNORE).nonzero(as_tuple=True)  # student predicts token cols + 1
        k = cols + 1 - torch.tensor([self.data.n_prompt[i] for i in idx], device=cols.device)[rows]  # completion index
        t_col = torch.tensor([self.n_prompt[i] for i in idx], device=cols.device)[rows] + k - 1
        return teacher_logits_at(self.teacher, self.ids, idx, rows, t_col)


class ShdBatches:
    """Per-example student offsets and teacher tokenisations (computed once per example, cached)."""

    def __init__(self, student: Any, teacher: Any, data: Tokenized):
        self.student, self.teacher, self.data = student, teacher, data
        self.same = same_tokenizer(student, teacher)
        self._cache: dict[int, tuple[list[tuple[int, int]], list[int], list[tuple[int, int]]]] = {}

    def example(self, i: int) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, int]]]:
        """(student offsets, teacher ids, teacher offsets) of example i."""
        if i not in self._cache:
            ids = self.data.ids[i]
            text, s_off = token_offsets(self.student.tokenizer, ids)
            if self.same:
                self._cache[i] = (s_off, list(ids), s_off)
            else:
                tok = self.teacher.tokenizer
                enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
                t_ids, t_off = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
                if adds_bos(tok) and t_ids[:1] != [tok.bos_token_id]:
                    t_ids, t_off = [tok.bos_token_id] + t_ids, [(0, 0)] + t_off
                self._cache[i] = (s_off, t_ids, t_off)
        return self._cache[i]

    def encodings(self, idx: Sequence[int], s_ids: torch.Tensor, s_mask: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
        """(student_enc, teacher_enc) for `shd_loss`: the student's right-padded batch is used as is."""
        ex = [self.example(i) for i in idx]
        s_enc = {"input_ids": s_ids, "attention_mask": s_mask, "offsets": [e[0] for e in ex]}
        t_enc = left_pad([e[1] for e in ex], self.teacher.tokenizer.pad_token_id, self.teacher.device)
        t_enc["offsets"] = [e[2] for e in ex]
        return s_enc, t_enc


def kept_vocabulary(student: Any, drop_words: Sequence[str]) -> torch.Tensor | None:
    """(vocab,) bool, False at the tokens of `drop_words` (`word_token_ids`); None without words.
    UserError when a word has no token (nothing would be dropped: the control would be a no-op)."""
    if not drop_words:
        return None
    keep = torch.ones(student.model.config.vocab_size, dtype=torch.bool)
    for w in drop_words:
        ids = word_token_ids(student.tokenizer, [w])
        if not ids:
            raise UserError(f"--kd-drop-words: no token of {student.name}'s vocabulary spells {w!r}")
        keep[ids] = False
    return keep


def dropped_tokens(student: Any, drop_words: Sequence[str]) -> list[str]:
    """The token texts `kept_vocabulary` drops, for the run's record."""
    ids = word_token_ids(student.tokenizer, list(drop_words)) if drop_words else []
    return [student.tokenizer.decode([i]) for i in ids]


def make_objective(student: Any, teacher: Any, config: DistillConfig, data: Tokenized,
                   rows: Sequence[dict[str, Any]] | None = None, record: dict[str, Any] | None = None,
                   ) -> Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]:
    """The per-batch loss of `config` (module docstring): (total, {"lm": ..., "shd" | "kd" | "kd-shared": ...}).
    `record`, where given, receives what the run should keep (kd-shared: the shared vocabulary's size and
    the share of completion tokens aligned)."""
    if config.active == "none":
        return lm_batch_loss
    if config.active == "kd":
        if rows is None:
            raise ValueError("kind kd needs the rows (the teacher renders their prompts)")
        t_inputs = KdTeacherInputs(teacher, rows, data)
        keep = kept_vocabulary(student, config.drop_words)

        def kd_objective(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            out, labels = forward_completion(model, batch)
            t_z = t_inputs.logits(batch["example_index"].tolist(), batch["labels"])
            lm = completion_loss(out.logits, labels)
            kd = kd_kl(out.logits[:, :-1][labels[:, 1:] != IGNORE], t_z.to(out.logits.device), config.tau, keep)
            return config.combine(lm, kd), {"lm": float(lm.detach()), "kd": float(kd.detach())}
        return kd_objective

    if config.active == "kd-shared":
        if rows is None:
            raise ValueError("kind kd-shared needs the rows (the teacher renders their prompts)")
        shared = shared_vocabulary(student.tokenizer, teacher.tokenizer)
        if len(shared) == 0:
            raise UserError(f"--kind kd-shared: '{teacher.name}' and '{student.name}' share no token string")
        s_ids, t_ids = shared.s_ids.to(student.device), shared.t_ids.to(teacher.device)
        x_inputs = SharedKdTeacherInputs(teacher, student, rows, data)
        if record is not None:
            record.update(shared_vocabulary=len(shared), aligned_fraction=round(x_inputs.aligned_fraction(), 6))

        def kd_shared_objective(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            out, labels = forward_completion(model, batch)
            aligned, t_z = x_inputs.logits(batch["example_index"].tolist(), batch["labels"])
            lm = completion_loss(out.logits, labels)
            s_z = out.logits[:, :-1][labels[:, 1:] != IGNORE][aligned.to(out.logits.device)]
            kd = kd_kl(s_z[:, s_ids], t_z[:, t_ids].to(out.logits.device), config.tau)
            return config.combine(lm, kd), {"lm": float(lm.detach()), "kd-shared": float(kd.detach())}
        return kd_shared_objective

    cache = ShdBatches(student, teacher, data)

    def shd_objective(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out, labels = forward_completion(model, batch, output_attentions=True)
        lm = completion_loss(out.logits, labels)
        s_enc, t_enc = cache.encodings(batch["example_index"].tolist(), batch["input_ids"], batch["attention_mask"])
        shd = shd_loss(teacher, student, None, config.tau, student_out=out, student_enc=s_enc, teacher_enc=t_enc,
                       same_tokenizer=cache.same)
        return config.combine(lm, shd), {"lm": float(lm.detach()), "shd": float(shd.detach())}
    return shd_objective


# ---- training -------------------------------------------------------------------------------------


def distill(student: Any, teacher: Any, rows: Sequence[dict[str, Any]], config: DistillConfig,
            checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False,
            progress: bool = False, stop_after: int | None = None) -> DistillResult:
    """Train `student` (in place; LoRA or full as config.finetune says) on `rows` with the objective of
    `config` (module docstring). The teacher stays in eval mode and is only run under no_grad."""
    check_pair(student, teacher, config)
    data = tokenize_examples(student, rows, config.finetune.max_len, config.finetune.loss_mask)
    teacher.model.eval()
    record: dict[str, Any] = {}
    objective = make_objective(student, teacher, config, data, rows, record)
    pad = student.tokenizer.pad_token_id

    def make_batch(idx: list[int]) -> dict[str, torch.Tensor]:
        return {**collate(data, idx, pad), "example_index": torch.tensor(idx, dtype=torch.long)}

    meta = {**config.settings(), "teacher": teacher.name, "teacher_sha256": teacher.fingerprint()}
    maps = eager_attention(student.model, teacher.model) if config.active == "shd" else contextlib.nullcontext()
    with maps:
        res = train(student, rows, config.finetune, objective, data=data, make_batch=make_batch,
                    checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                    progress=progress, stop_after=stop_after, resume_meta=meta,
                    description=f"distilling ({config.active})" if config.active != "none" else "fine-tuning")
    dropped = {"dropped_tokens": dropped_tokens(student, config.drop_words)} if config.drop_words else {}
    return DistillResult(**{f: getattr(res, f) for f in FinetuneResult.__dataclass_fields__},
                         distill={**config.settings(), "teacher": teacher.name, **dropped, **record})


def save_distilled(alias: str, student: Any, teacher: Any, result: DistillResult, meta: dict[str, Any],
                   overwrite: bool = False, merged: nn.Module | None = None) -> Path:
    """Save the student like `save_finetuned` (merged weights + adapter/; `merged`: weights merged
    elsewhere, e.g. a QLoRA adapter into the full-precision student), recording the teacher."""
    d = result.distill
    source = (f"{d['active']} distillation of {teacher.name} into {student.name}" if d.get("active") != "none"
              else f"finetune of {student.name} (beta = 0 control for {teacher.name})")
    return save_finetuned(alias, student, result, {"source": source, "teacher": teacher.name, **meta},
                          overwrite=overwrite, merged=merged)


def component_curves(result: FinetuneResult, title: str) -> dict[str, bytes]:
    """One PNG per loss component: {"loss_lm.png": ..., "loss_shd.png" | "loss_kd.png": ...}."""
    return {f"loss_{k}.png": loss_curve_png(v, f"{title}: {k}", YLABELS.get(k, "loss"))
            for k, v in result.components.items()}

