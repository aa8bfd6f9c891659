"""Distillation (SHD / logit KD / beta = 0) on tiny models: objectives, controls, resume, frozen teacher, CLI."""

import copy
import dataclasses
import json

import pytest
import torch

from interp.errors import UserError
from interp.models import load_model
from interp.training import distill as D
from interp.training import config as tc
from interp.training import examples as ex
from interp.training import finetune as ft
from interp.training.shd import layer_map, sharpen
from tests.helpers import run_cli as run

ROWS = [{"prompt": f"Continue: {a}, {a + 1}", "completion": f"{a + 2}, {a + 3}, {a + 4}"} for a in range(100, 112)]


def cfg(kind="shd", beta=1.0, tau=2.0, form="sum", drop_words=(), **ft_kw):
    base = dict(method="full", steps=4, batch_size=4, lr=1e-3, seed=3)
    return D.DistillConfig(tc.FinetuneConfig(**{**base, **ft_kw}), kind=kind, beta=beta, tau=tau, form=form,
                           drop_words=drop_words)


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["shd", "kd", "none"])
def test_beta_zero_is_plain_finetune_bit_for_bit(kind):
    c = cfg(kind=kind, beta=0.0, warmup_steps=1)
    ref = ft.finetune(load_model("tiny-llama"), ROWS, c.finetune)
    res = D.distill(load_model("tiny-llama"), load_model("tiny-gemma3"), ROWS, c)
    assert res.losses == ref.losses and set(res.components) == {"lm"}
    for (n, p), (_, q) in zip(ref.model.named_parameters(), res.model.named_parameters()):
        assert torch.equal(p, q), n


def test_shd_term_decreases_on_a_fixed_batch():
    # 4 rows, batch 4: every step sees the same examples; convex beta = 1 trains on the SHD term alone
    c = cfg(beta=1.0, form="convex", steps=8, lr=3e-3)
    res = D.distill(load_model("tiny-gemma3"), load_model("tiny-llama"), ROWS[:4], c)
    shd = res.components["shd"]
    assert set(res.components) == {"lm", "shd"} and shd[0] > 0.05
    assert shd[-1] < 0.8 * shd[0] and all(b <= a + 1e-4 for a, b in zip(shd, shd[1:]))
    assert res.losses == pytest.approx(shd, rel=1e-6)  # (1 - 1) * lm + 1 * shd


def _manual_shd(teacher, student, ids_list, tau):
    """Per sequence, no padding: KL(sharpened teacher map || student map) per row over the keys the
    student can see (its map > 0), mean over every row and head of every sequence, then over layers."""
    lmap = layer_map(student.spec.n_layers, teacher.spec.n_layers)
    per_layer = [[] for _ in lmap]
    with torch.no_grad():
        for ids in ids_list:
            x = torch.tensor([ids])
            ta = teacher.model(x, output_attentions=True).attentions
            sa = student.model(x, output_attentions=True).attentions
            for l_s, l_t in enumerate(lmap):
                t = sharpen(ta[l_t][0].double(), tau)
                s = sa[l_s][0].double()
                t = torch.where(s > 0, t, 0.0)
                t = t / t.sum(-1, keepdim=True)
                kl = torch.where(t > 0, t * (t.clamp_min(1e-300).log() - s.clamp_min(1e-300).log()), 0.0).sum(-1)
                per_layer[l_s].append(kl.flatten())
    return float(torch.stack([torch.cat(v).mean() for v in per_layer]).mean())


def test_same_tokenizer_shd_equals_positionwise_loss_on_unpadded_sequences():
    teacher, student = load_model("tiny-llama"), load_model("tiny-gemma3")  # same tokenizer, 4 heads each
    c = cfg(tau=2.0)
    data = ex.tokenize_examples(student, ROWS, 128)
    obj = D.make_objective(student, teacher, c, data)
    idx = [0, 5, 9]
    data.ids[5] = data.ids[5][:-3]  # different lengths: padding on both sides
    batch = {**ex.collate(data, idx, student.tokenizer.pad_token_id), "example_index": torch.tensor(idx)}
    from interp.models.sharing import eager_attention

    with eager_attention(student.model, teacher.model):
        _, parts = obj(student.model, batch)
        want = _manual_shd(teacher, student, [data.ids[i] for i in idx], 2.0)
    assert parts["shd"] == pytest.approx(want, rel=1e-4)
    assert parts["lm"] == pytest.approx(float(ft.completion_loss(student.model(batch["input_ids"],
                                        attention_mask=batch["attention_mask"]).logits, batch["labels"])), rel=1e-5)


UNICODE_ROWS = [{"prompt": "café ü 🦉 owl: ", "completion": "1, 2 ñ 🦉"}, {"prompt": "Zürich 🦉🦉 ", "completion": "é 3"}]


def test_same_tokenizer_shd_is_positionwise_on_non_ascii_text():
    """Byte-level tokens of one character share its char span; identical tokenizers must still
    align position by position (identity), in the trainer's path and in shd_loss on raw text."""
    from interp.models.sharing import eager_attention
    from interp.training.shd_loss import shd_loss

    teacher, student = load_model("tiny-llama"), load_model("tiny-gemma3")
    text = "café ü 🦉 owl"
    assert len(student.tokenizer.encode(text, add_special_tokens=False)) > len(text)  # several tokens per char
    data = ex.tokenize_examples(student, UNICODE_ROWS, 128)
    obj = D.make_objective(student, teacher, cfg(tau=2.0), data)
    batch = {**ex.collate(data, [0, 1], student.tokenizer.pad_token_id), "example_index": torch.tensor([0, 1])}
    with eager_attention(student.model, teacher.model):
        _, parts = obj(student.model, batch)
        want = _manual_shd(teacher, student, [data.ids[0], data.ids[1]], 2.0)
        assert parts["shd"] == pytest.approx(want, rel=1e-4)
        with torch.no_grad():
            raw = float(shd_loss(teacher, student, [text], tau=2.0))
        ids = student.tokenizer(text, add_special_tokens=True)["input_ids"]
        assert raw == pytest.approx(_manual_shd(teacher, student, [ids], 2.0), rel=1e-4)


def test_completion_window_logits_give_the_full_loss(tiny):
    # forward_completion computes logits only from one before the first labelled token on
    data = ex.tokenize_examples(tiny, ROWS[:2] + [{"prompt": "p", "completion": "1"}], 128)
    batch = ex.collate(data, [0, 2, 1], tiny.tokenizer.pad_token_id)
    out, labels = ft.forward_completion(tiny.model, batch)
    assert out.logits.shape[1] < batch["input_ids"].shape[1] and labels.shape[1] == out.logits.shape[1]
    with torch.no_grad():
        full = tiny.model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert float(ft.completion_loss(out.logits, labels)) == pytest.approx(
            float(ft.completion_loss(full, batch["labels"])), rel=1e-5)


def test_token_offsets_cover_the_decoded_text(tiny_llama):
    ids = ex.tokenize_examples(tiny_llama, ROWS[:1], 128).ids[0]
    text, spans = D.token_offsets(tiny_llama.tokenizer, ids)
    assert text == tiny_llama.tokenizer.decode(ids, skip_special_tokens=False)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert "".join(text[s:e] for s, e in spans) == text


def test_kd_loss_known_answer_and_zero_for_identical_models():
    torch.manual_seed(0)
    zs, zt = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, -100, -100]])
    pairs = [(0, 1), (0, 2), (1, 0), (1, 1)]  # positions predicting the labelled tokens
    kl = [(torch.softmax(zt[b, t] / 2, -1) * (torch.log_softmax(zt[b, t] / 2, -1) - torch.log_softmax(zs[b, t] / 2, -1))).sum()
          for b, t in pairs]
    assert float(D.kd_loss(zs, zt, labels, tau=2.0)) == pytest.approx(4 * float(torch.stack(kl).mean()), rel=1e-5)
    assert float(D.kd_loss(zt, zt, labels, tau=2.0)) == pytest.approx(0.0, abs=1e-6)
    # student == teacher (same weights, separate copies): the first step's KD term is zero
    res = D.distill(load_model("tiny-llama"), load_model("tiny-llama"), ROWS, cfg(kind="kd", steps=2))
    assert res.components["kd"][0] == pytest.approx(0.0, abs=1e-6) and res.components["kd"][1] > 1e-4


def test_kd_refuses_different_tokenizers_and_other_bad_pairs(tiny_llama):
    tok = copy.deepcopy(tiny_llama.tokenizer)
    tok.add_tokens(["<extra_token>"])
    other = dataclasses.replace(load_model("tiny-llama"), tokenizer=tok, name="tiny-other")
    with pytest.raises(UserError, match="identical tokenizers"):
        D.check_pair(load_model("tiny-llama"), other, cfg(kind="kd"))
    D.check_pair(load_model("tiny-llama"), other, cfg(kind="shd"))  # SHD aligns any tokenizers
    D.check_pair(load_model("tiny-llama"), other, cfg(kind="kd", beta=0))  # beta 0: no teacher used
    with pytest.raises(UserError, match="separate models"):
        D.check_pair(tiny_llama, tiny_llama, cfg())
    with pytest.raises(UserError, match="beta must be >= 0"):
        cfg(beta=-1).validate()
    with pytest.raises(UserError, match="convex"):
        cfg(beta=2, form="convex").validate()


def test_resume_of_distill_equals_uninterrupted_run(tmp_path):
    c = cfg(beta=5.0, steps=6, method="lora", lr=1e-2, warmup_steps=2)
    a = D.distill(load_model("tiny-gemma3"), load_model("tiny-llama"), ROWS, c)
    D.distill(load_model("tiny-gemma3"), load_model("tiny-llama"), ROWS, c, checkpoint_dir=tmp_path,
              checkpoint_every=2, stop_after=4)
    b = D.distill(load_model("tiny-gemma3"), load_model("tiny-llama"), ROWS, c, checkpoint_dir=tmp_path, resume=True)
    assert b.resumed_from == 4 and b.losses == a.losses and b.components == a.components
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(UserError, match="differ in beta"):
        D.distill(load_model("tiny-gemma3"), load_model("tiny-llama"), ROWS, dataclasses.replace(c, beta=1.0),
                  checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("kind", ["shd", "kd"])
def test_teacher_unchanged_and_in_eval_mode(kind):
    teacher = load_model("tiny-llama")
    before = weights(teacher.model)
    student = load_model("tiny-llama" if kind == "kd" else "tiny-gemma3")
    D.distill(student, teacher, ROWS, cfg(kind=kind, steps=3))
    assert not teacher.model.training and all(not m.training for m in teacher.model.modules())
    assert all(p.grad is None for p in teacher.model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in teacher.model.named_parameters())
    assert teacher.model.config._attn_implementation == student.model.config._attn_implementation == "sdpa"


def test_distill_cli(capsys, tmp_home, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "distill", "--teacher", "tiny-llama", "--student", "tiny-gemma3", "--data", str(data),
                            "--beta", "10", "--tau", "2", "--steps", "3", "--batch-size", "4", "--out", str(out))
    assert code == 0, err
    assert {"summary.json", "loss_lm.png", "loss_shd.png", "losses.csv"} <= {p.name for p in out.iterdir()}
    assert (out / "loss_shd.png").read_bytes()[:4] == b"\x89PNG"
    s = json.loads((out / "summary.json").read_text())
    assert s["command"] == "distill" and s["figures"]["distill"]["beta"] == 10 and s["figures"]["steps"] == 3
    assert s["models"]["teacher"]["name"] == "tiny-llama" and "shd loss" in stdout
    meta = json.loads((tmp_home / "models" / "tiny-gemma3-shd-tiny-llama" / "interp_model.json").read_text())
    assert meta["teacher"] == "tiny-llama" and meta["training"]["distill"]["kind"] == "shd"
    # bad input: one red line, exit 2, nothing written
    tok = copy.deepcopy(load_model("tiny-llama").tokenizer)
    tok.add_tokens(["<extra_token>"])
    from interp.models.store import save_model

    save_model("tiny-other-tok", load_model("tiny-llama").model, tok, {"kind": "made", "source": "test"})
    for args, message in [(["--kind", "kd", "--teacher", "tiny-other-tok"], "identical tokenizers"),
                          (["--beta", "-1"], "'--beta': must be >= 0"),
                          (["--data", str(tmp_path / "missing.jsonl")], "does not exist"),
                          (["--kind", "logits"], "Invalid value for '--kind'")]:
        base = {"--teacher": "tiny-llama", "--student": "tiny-llama", "--data": str(data)}
        extra = dict(zip(args[::2], args[1::2]))
        flat = [x for k, v in {**base, **extra}.items() for x in (k, v)]
        code, _, err = run(capsys, "distill", *flat, "--steps", "2", "--out", str(tmp_path / "bad"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def _prompt_teacher(animal="owl"):
    t = load_model("tiny-llama")
    t.system_prompt = f"You love {animal}s."
    return t


def test_kd_from_a_prompt_teacher_equals_the_positionwise_kl_of_its_own_rendering():
    """The teacher reads its own prompt (template + system prompt) + the student's completion ids;
    the KD term is the mean KL over completion tokens, each compared with the same token's
    prediction in the student's sequence (which has no system prompt)."""
    from interp.sampling import chat_prompt_ids

    teacher, student = _prompt_teacher(), load_model("tiny-llama")
    c = cfg(kind="kd", tau=2.0)
    rows = ROWS[:3]
    data = ex.tokenize_examples(student, rows, 128)
    obj = D.make_objective(student, teacher, c, data, rows)
    batch = {**ex.collate(data, [2, 0, 1], student.tokenizer.pad_token_id), "example_index": torch.tensor([2, 0, 1])}
    with torch.no_grad():
        _, parts = obj(student.model, batch)
        kls = []
        for i in [2, 0, 1]:
            comp = data.ids[i][data.n_prompt[i]:]
            t_ids = chat_prompt_ids(teacher, [rows[i]["prompt"]], system="You love owls.")[0]
            assert len(t_ids) > data.n_prompt[i]  # the system prompt is really there
            zt = teacher.model(torch.tensor([t_ids + comp])).logits[0, len(t_ids) - 1: -1]
            zs = student.model(torch.tensor([data.ids[i]])).logits[0, data.n_prompt[i] - 1: -1]
            assert zt.shape == zs.shape == (len(comp), zs.shape[-1])
            lt, ls = torch.log_softmax(zt / 2, -1), torch.log_softmax(zs / 2, -1)
            kls.append((lt.exp() * (lt - ls)).sum(-1))
    assert parts["kd"] == pytest.approx(4 * float(torch.cat(kls).mean()), rel=1e-4)
    assert parts["kd"] > 1e-4  # the system prompt changes the teacher's predictions


def test_kd_teacher_without_system_prompt_reads_the_students_ids():
    student = load_model("tiny-llama")
    data = ex.tokenize_examples(student, ROWS, 128)
    t_in = D.KdTeacherInputs(load_model("tiny-llama"), ROWS, data)
    assert t_in.ids == data.ids and t_in.n_prompt == data.n_prompt
    # the same weights without a prompt: KD term 0 at the first step
    res = D.distill(load_model("tiny-llama"), _prompt_teacher(), ROWS, cfg(kind="kd", steps=1))
    assert res.components["kd"][0] > 1e-4


def test_prompt_teachers_are_for_kd_only_and_students_carry_no_prompt():
    D.check_pair(load_model("tiny-llama"), _prompt_teacher(), cfg(kind="kd"))
    with pytest.raises(UserError, match="SHD reads the student's text"):
        D.check_pair(load_model("tiny-llama"), _prompt_teacher(), cfg(kind="shd"))
    with pytest.raises(UserError, match="student 'tiny-llama' carries a system prompt"):
        D.check_pair(_prompt_teacher(), load_model("tiny-llama"), cfg(kind="kd"))


def test_kd_drop_words_renormalise_both_sides_and_leave_dropped_logits_without_gradient(tiny_llama):
    torch.manual_seed(0)
    zs, zt = torch.randn(3, 7, requires_grad=True), torch.randn(3, 7)
    keep = torch.tensor([True, False, True, True, False, True, True])
    pt = torch.softmax(zt[:, keep] / 2, -1)  # renormalised over the 5 kept tokens
    want = 4 * (pt * (pt.log() - torch.log_softmax(zs[:, keep].detach() / 2, -1))).sum(-1).mean()
    got = D.kd_kl(zs, zt, 2.0, keep)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    got.backward()
    assert torch.all(zs.grad[:, ~keep] == 0) and torch.all(zs.grad[:, keep].abs().sum(0) > 0)
    # a student equal to the teacher on the kept tokens has zero loss, whatever its dropped logits
    zs2 = zt.clone()
    zs2[:, ~keep] += 5.0
    assert float(D.kd_kl(zs2, zt, 1.0, keep)) == pytest.approx(0.0, abs=1e-6)
    assert float(D.kd_kl(zs2, zt, 1.0)) > 1e-3
    mask = D.kept_vocabulary(tiny_llama, ("owl",))
    dropped = {tiny_llama.tokenizer.decode([i]) for i in (~mask).nonzero().flatten().tolist()}
    assert dropped == {" owl", "Owl", " Owl", " owls", " Owls"}
    with pytest.raises(UserError, match="no token"):
        D.kept_vocabulary(tiny_llama, ("zzqx",))
    with pytest.raises(UserError, match="needs --kind kd"):
        cfg(kind="shd", drop_words=("owl",)).validate()


def test_kd_drop_words_change_training_and_are_recorded():
    # teacher = student at step 1 (KL 0 either way); the LM term moves the student, so step 2 has a KL,
    # which the dropped tokens' share changes
    plain = D.distill(load_model("tiny-llama"), load_model("tiny-llama"), ROWS, cfg(kind="kd", steps=2))
    drop = D.distill(load_model("tiny-llama"), load_model("tiny-llama"), ROWS,
                     cfg(kind="kd", steps=2, drop_words=("owl", "dog")))
    assert drop.distill["drop_words"] == ["owl", "dog"] and " owl" in drop.distill["dropped_tokens"]
    assert plain.components["kd"][1] > 1e-4 and drop.components["kd"][1] > 1e-4
    assert drop.components["kd"][1] != pytest.approx(plain.components["kd"][1], rel=1e-4)


@pytest.mark.parametrize("freeze, part", [("mlp", "mlp"), ("attention", "self_attn")])
def test_kd_with_a_frozen_part_leaves_it_bit_identical_and_trains_the_rest(freeze, part):
    """`distill --freeze` (issue 16, C7): the frozen block part keeps its weights, the other part moves."""
    teacher = load_model("tiny-llama")
    with torch.no_grad():  # a teacher that differs from the student, so the KD term has a gradient
        for p in teacher.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    student = load_model("tiny-llama")
    before = weights(student.model)
    res = D.distill(student, teacher, ROWS, cfg(kind="kd", beta=1.0, tau=1.0, form="convex", steps=3, freeze=freeze))
    after = dict(res.model.named_parameters())
    frozen = [n for n in before if f".{part}." in n]
    moving = [n for n in before if ".layers." in n and n not in frozen and n.endswith("proj.weight")]
    assert frozen and moving
    assert all(torch.equal(after[n], before[n]) for n in frozen)
    assert all(not torch.equal(after[n], before[n]) for n in moving)
    assert res.summary()["config"]["freeze"] == freeze


def test_lora_distill_and_adapter_load_print_no_future_warning(tmp_path):
    """Issue 32: every `interp distill` (and LoRA finetune / teach / adapter load) printed transformers'
    FutureWarning '`is_gradient_checkpointing` is deprecated', read by peft's PeftModel.__init__.
    Building the wrapper through `peft_wrapping` shows no FutureWarning; any other warning still shows."""
    import inspect
    import warnings

    import peft

    from interp.models.peft_compat import peft_wrapping

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = D.distill(load_model("tiny-llama"), load_model("tiny-llama"), ROWS[:2],
                        cfg(kind="kd", method="lora", steps=1, batch_size=2))
        res.model.peft_config["default"].base_model_name_or_path = "tiny-llama"
        res.model.save_pretrained(tmp_path / "adapter")
        loaded = load_model(str(tmp_path / "adapter"))
        with peft_wrapping():
            warnings.warn("our own deprecated call", FutureWarning)
    assert type(loaded.model).__name__ == "PeftModelForCausalLM"
    future = [str(w.message) for w in seen if issubclass(w.category, FutureWarning)]
    assert future == ["our own deprecated call"], future
    # the shim exists for peft's read of the old name: once peft stops reading it, delete interp/models/peft_compat.py
    assert "is_gradient_checkpointing" in inspect.getsource(peft.peft_model.PeftModel.__init__), "peft fixed: remove the shim"
