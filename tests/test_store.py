import json

import pytest
import torch

from interp.errors import UserError
from interp.models import load_model, store
from interp.models.tiny import tiny_model


def _logits(lm, ids=(5, 6, 7, 8)):
    with torch.no_grad():
        return lm.model(torch.tensor([list(ids)])).logits


def test_saved_alias_reloads_identically(tmp_home):
    model, tok = tiny_model("llama", seed=3)
    store.save_model("tiny-owl", model, tok, {"kind": "made", "source": "test"})
    meta = json.loads((tmp_home / "models" / "tiny-owl" / "interp_model.json").read_text())
    assert meta["alias"] == "tiny-owl" and len(meta["sha256"]) == 64
    lm = load_model("tiny-owl")
    with torch.no_grad():
        ref = model(torch.tensor([[5, 6, 7, 8]])).logits
    assert torch.equal(_logits(lm), ref)
    assert lm.identity()["sha256"] == meta["sha256"]
    assert "tiny-owl" in [m["alias"] for m in store.list_entries()]
    with pytest.raises(UserError, match="already exists"):
        store.save_model("tiny-owl", model, tok, {"kind": "made"})


def test_failed_save_leaves_nothing(tmp_home):
    with pytest.raises(RuntimeError):
        with store.staged_entry("half-done") as tmp:
            (tmp / "partial").write_text("x")
            raise RuntimeError("crash mid-save")
    assert not (tmp_home / "models" / "half-done").exists()
    assert list((tmp_home / "models").iterdir()) == []


def test_prompt_alias_carries_system_prompt(tmp_home):
    store.save_prompt_alias("tiny-llama-owl", "tiny-llama", "You love owls.")
    lm = load_model("tiny-llama-owl")
    assert lm.system_prompt == "You love owls." and lm.spec.family == "llama"
    assert torch.equal(_logits(lm), _logits(load_model("tiny-llama")))


def test_peft_adapter_folder_loads_on_its_base(tmp_path, tmp_home):
    from peft import LoraConfig, get_peft_model

    base, _ = tiny_model("llama")
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = "tiny-llama"
    peft_model.save_pretrained(tmp_path / "adapter")
    lm = load_model(str(tmp_path / "adapter"))
    assert "adapter" in lm.source
    with torch.no_grad():
        ref = peft_model(torch.tensor([[5, 6, 7, 8]])).logits
    assert torch.allclose(_logits(lm), ref, atol=1e-6)
    assert not torch.allclose(ref, _logits(load_model("tiny-llama")), atol=1e-3)  # the adapter does something


def test_unknown_model_lists_aliases(tmp_home):
    with pytest.raises(UserError) as e:
        load_model("no-such-model")
    assert "smollm2" in str(e.value) and "tiny-llama" in str(e.value)


def test_bad_alias_and_folder(tmp_path, tmp_home):
    with pytest.raises(UserError, match="invalid alias"):
        store.validate_alias("../escape")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a model folder"):
        load_model(str(tmp_path / "empty"))
