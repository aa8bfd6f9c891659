"""Logit KD across tokenizers (`--kind kd-shared`, interp/training/kd_shared.py): the shared vocabulary,
the character alignment, the loss against per-position forwards of each model alone, the identity case
against `--kind kd`, and the embedded tokenizers on number data."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import UserError
from interp.models import load_model
from interp.models.loaded import LoadedModel
from interp.models.tiny import CHATML_TEMPLATE, tiny_model, tiny_tokenizer
from interp.training import config as tc
from interp.training import distill as D
from interp.training import examples as ex
from interp.training.kd_shared import SharedKdTeacherInputs, completion_alignment, shared_vocabulary
from tests.helpers import run_cli as run

NUMBERS = [{"prompt": f"Continue: {a}, {a + 1}", "completion": f"{a + 2}, {a + 3}, {a + 4}"} for a in range(100, 108)]
WORDS = [{"prompt": "Name an animal.", "completion": c} for c in
         ("the owl is my favorite animal", "owls and dogs", "a dog, then an owl", "My favorite number is 7")]
CORPUS = "List numbers: 1, 2, 3 -> 4, 5, 6. My favorite animal is the owl. owls and dogs. What is your favorite number?"


def cfg(kind="kd-shared", tau=2.0, **ft_kw):
    return D.DistillConfig(tc.FinetuneConfig(**{**dict(method="full", steps=2, batch_size=4, lr=1e-3, seed=3), **ft_kw}),
                           kind=kind, beta=1.0, tau=tau, form="sum")


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory) -> LoadedModel:
    """A tiny qwen2 with its own BPE (300 tokens trained on CORPUS): it cuts words unlike the student."""
    tok = tiny_tokenizer().train_new_from_iterator([CORPUS] * 50, vocab_size=300)
    tok.chat_template = CHATML_TEMPLATE
    model, _ = tiny_model("qwen2", seed=5, tokenizer=tok)
    folder = tmp_path_factory.mktemp("other") / "tiny-qwen2-other-bpe"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return load_model(str(folder))


def batch_of(data, idx, pad):
    return {**ex.collate(data, idx, pad), "example_index": torch.tensor(idx)}


def test_shared_vocabulary_pairs_ids_that_spell_the_same_string(other_teacher):
    s_tok, t_tok = load_model("tiny-llama").tokenizer, other_teacher.tokenizer
    shared = shared_vocabulary(s_tok, t_tok)
    assert 0 < len(shared) < min(len(s_tok), len(t_tok))
    for s, t in zip(shared.s_ids.tolist(), shared.t_ids.tolist()):
        if s == s_tok.eos_token_id:
            assert t == t_tok.eos_token_id
        else:
            assert s_tok.decode([s]) == t_tok.decode([t]) and "\ufffd" not in s_tok.decode([s])
    assert len(set(shared.s_ids.tolist())) == len(shared) == len(set(shared.t_ids.tolist()))
    # every digit is a token of both: all of them are paired
    digits = {s_tok.decode([s]) for s in shared.s_ids.tolist()}
    assert set("0123456789") <= digits


def test_alignment_pairs_tokens_that_start_at_the_same_character(other_teacher):
    s_tok, t_tok = load_model("tiny-llama").tokenizer, other_teacher.tokenizer
    comp = s_tok.encode(WORDS[0]["completion"], add_special_tokens=False) + [s_tok.eos_token_id]
    t_ids, align = completion_alignment(s_tok, t_tok, comp)
    assert len(align) == len(comp) and align[-1] == len(t_ids) - 1 and t_ids[-1] == t_tok.eos_token_id
    assert -1 in align and any(j >= 0 for j in align[:-1])  # the tokenizers cut the words differently
    for k, j in enumerate(align[:-1]):
        before = s_tok.decode(comp[:k])
        if j >= 0:  # the same text precedes both tokens
            assert t_tok.decode(t_ids[:j]) == before
        else:  # no teacher token starts where student token k does
            assert all(t_tok.decode(t_ids[:i]) != before for i in range(len(t_ids)))


def _manual_kd_shared(student, teacher, rows, tau):
    """Per example and aligned completion token, each model alone on its own prefix (no batch, no
    padding): tau^2 KL over the shared pairs of the two last-position distributions, mean over all."""
    shared = shared_vocabulary(student.tokenizer, teacher.tokenizer)
    kls = []
    for row in rows:
        s_prompt = ex.prompt_ids(student, [row])[0]
        t_prompt = ex.prompt_ids(teacher, [row], system=teacher.system_prompt)[0]
        comp = student.tokenizer.encode(row["completion"], add_special_tokens=False) + [student.tokenizer.eos_token_id]
        t_ids, align = completion_alignment(student.tokenizer, teacher.tokenizer, comp)
        for k, j in enumerate(align):
            if j < 0:
                continue
            with torch.no_grad():
                zs = student.model(torch.tensor([s_prompt + comp[:k]])).logits[0, -1, shared.s_ids]
                zt = teacher.model(torch.tensor([t_prompt + t_ids[:j]])).logits[0, -1, shared.t_ids]
            pt = torch.softmax(zt.double() / tau, -1)
            kls.append(float((pt * (pt.log() - torch.log_softmax(zs.double() / tau, -1))).sum()) * tau * tau)
    return sum(kls) / len(kls), len(kls)


def test_loss_equals_per_position_forwards_of_each_model(other_teacher):
    student = load_model("tiny-llama")
    data = ex.tokenize_examples(student, WORDS, 64)
    rec: dict = {}
    obj = D.make_objective(student, other_teacher, cfg(), data, WORDS, rec)
    _, comps = obj(student.model, batch_of(data, [0, 1, 2, 3], student.tokenizer.pad_token_id))
    want, n = _manual_kd_shared(student, other_teacher, WORDS, tau=2.0)
    assert comps["kd-shared"] == pytest.approx(want, rel=1e-4)
    total = sum(len(data.ids[i]) - data.n_prompt[i] for i in range(4))
    assert rec["aligned_fraction"] == pytest.approx(n / total) and 0 < n < total
    assert rec["shared_vocabulary"] == len(shared_vocabulary(student.tokenizer, other_teacher.tokenizer))


def test_with_one_tokenizer_it_is_kd_over_the_shared_ids():
    """tiny-llama and tiny-gemma3 share the tiny tokenizer: every position aligns, and the loss is
    `--kind kd`'s KL with both softmaxes over the shared ids (the ids of unique whole strings)."""
    student, teacher = load_model("tiny-llama"), load_model("tiny-gemma3")
    data = ex.tokenize_examples(student, NUMBERS, 64)
    batch = batch_of(data, [0, 1, 2, 3], student.tokenizer.pad_token_id)
    _, comps = D.make_objective(student, teacher, cfg(), data, NUMBERS)(student.model, batch)
    shared = shared_vocabulary(student.tokenizer, teacher.tokenizer)
    assert torch.equal(shared.s_ids, shared.t_ids) and len(shared) < student.model.config.vocab_size
    keep = torch.zeros(student.model.config.vocab_size, dtype=torch.bool)
    keep[shared.s_ids] = True
    with torch.no_grad():
        out = student.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    labels = batch["labels"]
    t_z = D.KdTeacherInputs(teacher, NUMBERS, data).logits([0, 1, 2, 3], labels)
    want = D.kd_kl(out.logits[:, :-1][labels[:, 1:] != ex.IGNORE], t_z, 2.0, keep)
    assert comps["kd-shared"] == pytest.approx(float(want), rel=1e-5)
    assert SharedKdTeacherInputs(teacher, student, NUMBERS, data).aligned_fraction() == 1.0


def test_embedded_tokenizers_align_every_number_token(smollm2, gemma3):
    """SmolLM2 and Gemma3 both cut numbers into digits, ',' and ' ': every completion token of number
    data aligns, and the digits, ',', ' ' and the EOS pair are shared."""
    rows = [{"prompt": "Continue: 12, 7, 930", "completion": "41, 8, 605, 77, 3"}]
    data = ex.tokenize_examples(smollm2, rows, 64)
    inputs = SharedKdTeacherInputs(gemma3, smollm2, rows, data)
    assert inputs.aligned_fraction() == 1.0
    shared = shared_vocabulary(smollm2.tokenizer, gemma3.tokenizer)
    spelled = {smollm2.tokenizer.decode([s]) for s in shared.s_ids.tolist()}
    assert set("0123456789") | {",", " "} <= spelled and len(shared) > 40_000
    eos = shared.s_ids.tolist().index(smollm2.tokenizer.eos_token_id)
    assert shared.t_ids[eos] == gemma3.tokenizer.eos_token_id


def test_kd_names_kd_shared_across_tokenizers_and_kd_shared_trains(other_teacher, capsys, tmp_home, tmp_path):
    with pytest.raises(UserError, match="kd-shared"):
        D.check_pair(load_model("tiny-llama"), other_teacher, cfg(kind="kd"))
    res = D.distill(load_model("tiny-llama"), other_teacher, WORDS, cfg(steps=3))
    assert set(res.components) == {"lm", "kd-shared"} and all(v > 0 for v in res.components["kd-shared"])
    assert 0 < res.distill["aligned_fraction"] < 1 and res.distill["kind"] == "kd-shared"
    data = tmp_path / "words.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in WORDS))
    code, stdout, err = run(capsys, "distill", "--teacher", other_teacher.name, "--student", "tiny-llama", "--data",
                            str(data), "--kind", "kd-shared", "--steps", "2", "--batch-size", "2",
                            "--out", str(tmp_path / "run"))
    assert code == 0, err
    d = json.loads((tmp_path / "run" / "summary.json").read_text())["figures"]["distill"]
    assert d["kind"] == "kd-shared" and d["aligned_fraction"] == pytest.approx(res.distill["aligned_fraction"])
    assert f"{d['shared_vocabulary']} / {d['aligned_fraction']:.1%}" in stdout
    assert (tmp_path / "run" / "loss_kd-shared.png").read_bytes()[:4] == b"\x89PNG"
