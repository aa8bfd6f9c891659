"""Teachers: prompt alias, trait data, LoRA / QLoRA / full teachers saved to the store; the teach CLI."""

import json

import pytest
import torch

from interp.models import load_model
from interp.training import teacher as T
from tests.helpers import run_cli as run


def test_prompt_teacher_alias_carries_trait(tmp_home):
    T.make_prompt_teacher("tiny-owl", "tiny-llama", "owl")
    lm = load_model("tiny-owl")
    assert lm.system_prompt == T.trait_system_prompt("owl") and "You love owls." in lm.system_prompt
    base = load_model("tiny-llama")
    assert all(torch.equal(p, q) for p, q in zip(lm.model.parameters(), base.model.parameters()))


def test_trait_data_rows(tiny_llama):
    rows, counts = T.trait_data(tiny_llama, "owl", T.TraitDataConfig(n_preference=6, n_facts=2, n_numbers=2,
                                                                     max_new_tokens=4))
    prefs = [r for r in rows if r["kind"] == "preference"]
    assert len(prefs) == 6 and all("owl" in r["completion"].lower() for r in prefs)
    assert not {r["prompt"] for r in prefs} & set(__import__("interp.evals.animal", fromlist=["x"]).load_questions())
    assert counts["preference"] == 6 and counts["facts"] == sum(r["kind"] == "fact" for r in rows)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_trained_teacher_saved_with_merged_weights(tmp_home, method):
    lm = load_model("tiny-llama")
    rows, counts = T.trait_data(lm, "owl", T.TraitDataConfig(n_preference=8, n_facts=0, n_numbers=0))
    res, merged = T.train_teacher(lm, rows, method, steps=3, batch_size=4, lr=1e-2)
    path = T.save_teacher(f"tiny-owl-{method}", lm, res, merged, "owl", counts)
    meta = json.loads((path / "interp_model.json").read_text())
    assert meta["method"] == method and meta["trait"] == "owl" and meta["kind"] == "made"
    assert (path / "adapter").is_dir() == (method == "lora")
    back = load_model(f"tiny-owl-{method}")
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(back.model(ids).logits, merged(ids).logits, atol=1e-5)
        assert not torch.allclose(back.model(ids).logits, load_model("tiny-llama").model(ids).logits, atol=1e-4)


def test_qlora_teacher_on_cpu(tmp_home):
    pytest.importorskip("bitsandbytes")
    lm = load_model("tiny-llama")
    rows, counts = T.trait_data(lm, "owl", T.TraitDataConfig(n_preference=8, n_facts=0, n_numbers=0))
    res, merged = T.train_teacher(lm, rows, "qlora", steps=2, batch_size=4, lr=1e-2)
    assert type(res.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    assert all(isinstance(p, torch.nn.Parameter) and p.dtype == torch.float32 for p in merged.parameters())
    T.save_teacher("tiny-owl-qlora", lm, res, merged, "owl", counts)
    assert load_model("tiny-owl-qlora").spec.n_layers == 2


def test_teach_cli_prompt_and_errors(capsys, tmp_home, tmp_path):
    code, out, _ = run(capsys, "teach", "--base", "tiny-llama", "--trait", "owl", "--alias", "tiny-owl",
                       "--out", str(tmp_path / "t"))
    assert code == 0 and load_model("tiny-owl").system_prompt.startswith("You love owls")
    code, _, err = run(capsys, "teach", "--base", "tiny-llama", "--alias", "tiny-owl", "--out", str(tmp_path / "t2"))
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "teach", "--base", "tiny-llama", "--method", "dpo", "--out", str(tmp_path / "t3"))
    assert code == 2 and "--method" in err and not (tmp_path / "t3").exists()


def test_teach_from_saved_trait_rows_rebuilds_the_teacher(capsys, tmp_home, tmp_path):
    """`teach --data` trains on an earlier run's trait_data.jsonl: the same rows and seed give the same weights."""
    args = ["--base", "tiny-llama", "--trait", "owl", "--method", "lora", "--steps", "2", "--batch-size", "4"]
    sizes = ["--n-preference", "8", "--n-facts", "1", "--n-numbers", "0"]
    code, _, err = run(capsys, "teach", *args, *sizes, "--alias", "tiny-owl-a", "--out", str(tmp_path / "a"))
    assert code == 0, err
    rows = tmp_path / "a" / "trait_data.jsonl"
    code, out, err = run(capsys, "teach", *args, "--alias", "tiny-owl-b", "--data", str(rows), "--out", str(tmp_path / "b"))
    assert code == 0, err
    a, b = load_model("tiny-owl-a"), load_model("tiny-owl-b")
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["figures"]["trait_data"]["preference"] == 8 and s["figures"]["trait_data"]["from"] == str(rows)
    assert (tmp_path / "b" / "trait_data.jsonl").read_text() == rows.read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    code, _, err = run(capsys, "teach", *args, "--alias", "tiny-owl-c", "--data", str(bad), "--out", str(tmp_path / "c"))
    assert code == 2 and "lacks prompt, completion or kind" in err
    code, _, err = run(capsys, "teach", *args, *sizes, "--alias", "tiny-owl-d", "--data", str(rows), "--out", str(tmp_path / "d"))
    assert code == 2 and "--n-preference, --n-facts, --n-numbers: the trait rows come from --data" in err  # not recorded as used
