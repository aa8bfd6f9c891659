"""Big-model options: --dtype, --device, --device-map, --load-in-4bit on every command that loads a model
(inference and training)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from interp.cli import main
from interp.cli.app import app
from interp.errors import UserError
from interp.models import load_model

INFERENCE = ["reverse-link", "numbers", "digit-length", "trace", "prune", "swap-head", "eval-animal", "crows",
             "stereoset", "compare"]
REMOTE = ["reverse-link", "numbers", "trace"]
TRAINING = ["finetune", "distill", "teach"]
NO_CUDA = not torch.cuda.is_available()


def options_of(command: str) -> set[str]:
    import typer.main

    from interp.cli import commands  # noqa: F401  (registers the commands)

    group = typer.main.get_command(app)
    return {o for p in group.commands[command].params for o in p.opts}


@pytest.mark.parametrize("command", INFERENCE + TRAINING)
def test_every_inference_command_has_the_placement_options(command):
    opts = options_of(command)
    assert {"--dtype", "--device", "--device-map", "--load-in-4bit"} <= opts
    assert ({"--remote", "--serve"} <= opts) == (command in REMOTE)


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only messages")
@pytest.mark.parametrize("kwargs, message", [
    ({"device": "cuda"}, "--device cuda needs a CUDA GPU"),
    ({"device_map": "auto"}, "--device-map auto spreads the layers over CUDA GPUs"),
    ({"device_map": "balanced"}, "--device-map must be one of auto"),
    ({"dtype": "int8"}, "unknown dtype 'int8'"),
])
def test_cuda_only_options_on_cpu_are_one_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        load_model("smollm2", **kwargs)


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only messages")
@pytest.mark.parametrize("argv", [["trace", "--number", "087"], ["eval-animal"], ["reverse-link", "--numbers", "087"]])
def test_cli_says_so_in_one_line(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--device-map", "auto", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "spreads the layers over CUDA GPUs" in err


def test_4bit_weights_load_and_score(tmp_path):
    """NF4 through bitsandbytes (CUDA, or its CPU backend here): Linear layers become Linear4bit,
    the weights take less memory, scoring runs, and the summary says so."""
    pytest.importorskip("bitsandbytes")
    from bitsandbytes.nn import Linear4bit

    from interp.scoring import next_token_logprobs

    ref = load_model("tiny-llama")
    ref.model.save_pretrained(tmp_path / "m")
    ref.tokenizer.save_pretrained(tmp_path / "m")
    q = load_model(str(tmp_path / "m"), load_in_4bit=True)
    assert isinstance(q.spec.module(q.model, "o_proj", 0), Linear4bit)
    assert q.model.get_memory_footprint() < 0.5 * ref.model.get_memory_footprint()
    assert q.identity()["placement"]["load_in_4bit"] is True
    lp = next_token_logprobs(q, [[5, 6, 7], [8, 9]])
    assert lp.shape == (2, 560) and torch.isfinite(lp).all()
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2), atol=1e-4, rtol=0)


def test_dtype_is_applied_and_recorded(tmp_path, capsys):
    lm = load_model("tiny-llama", dtype="bf16", device="auto")
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    assert lm.identity()["placement"] == {"dtype": "bf16", "device": "cpu" if NO_CUDA else "cuda", "device_map": None,
                                          "modules_per_device": None, "load_in_4bit": False}
    with pytest.raises(SystemExit) as e:
        main(["eval-animal", "--model", "tiny-llama", "--samples", "0", "--dtype", "fp16", "--out", str(tmp_path / "e")])
    assert e.value.code == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert s["model"]["placement"]["dtype"] == "fp16"


# ---- bf16 vs fp32 on the real model ----------------------------------------------------------------
# Measured (smollm2, --number 087, CPU): max |bf16 - fp32| over the 30 layers is 0.0044 for cos_bias,
# 0.0031 for cos_control and 0.0024 for sim_diff (sim_diff itself reaches 0.078); 0.014 for a head's
# sim_diff_out at the spike layer. Tolerance: 0.01 on the per-layer cosines and sim_diff, 0.03 on
# the head table; the spike layer and the top head must be the same.
LAYER_TOL, HEAD_TOL = 0.01, 0.03


@pytest.mark.embedded
def test_smollm2_trace_bf16_matches_fp32(tmp_path, capsys):
    runs = {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        with pytest.raises(SystemExit) as e:
            main(["trace", "--number", "087", "--dtype", dtype, "--out", str(out)])
        assert e.value.code == 0, capsys.readouterr().err
        runs[dtype] = (pd.read_csv(out / "trace.csv"), pd.read_csv(out / "heads.csv"),
                       json.loads((out / "summary.json").read_text()))
    (l32, h32, s32), (l16, h16, s16) = runs["fp32"], runs["bf16"]
    assert s16["model"]["placement"]["dtype"] == "bf16" and s32["model"]["placement"]["dtype"] == "fp32"
    assert list(l16.layer) == list(l32.layer) == list(range(30))
    for col in ("cos_bias", "cos_control", "sim_diff"):
        diff = (l16[col] - l32[col]).abs().max()
        assert 0 < diff < LAYER_TOL, (col, diff)  # > 0: the bf16 run really ran in bf16
    assert (h16.sim_diff_out - h32.sim_diff_out).abs().max() < HEAD_TOL
    assert s16["figures"]["spike_layer_mean"] == s32["figures"]["spike_layer_mean"]
    assert s16["figures"]["top_head"] == s32["figures"]["top_head"]


def _tiny_folder(tmp_path):
    ref = load_model("tiny-llama")
    ref.model.save_pretrained(tmp_path / "m")
    ref.tokenizer.save_pretrained(tmp_path / "m")
    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "Count %d:", "completion": " %d, %d"}\n' % (i, i, i + 1) for i in range(8)))
    return ref, tmp_path / "m", data


def test_finetune_over_4bit_weights_is_qlora_saved_in_full_precision(tmp_path, capsys, monkeypatch):
    """--load-in-4bit trains LoRA over NF4 weights; the store gets the adapter merged into the fp32 base
    (loadable without bitsandbytes), and the recipe says qlora."""
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    ref, folder, data = _tiny_folder(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--model", str(folder), "--data", str(data), "--alias", "q-student", "--steps", "2",
              "--batch-size", "4", "--lr", "1e-2", "--load-in-4bit", "--out", str(tmp_path / "o")])
    assert e.value.code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["figures"]["config"]["method"] == "qlora" and summary["model"]["placement"]["load_in_4bit"] is True
    made = load_model("q-student")
    assert all(p.dtype == torch.float32 for p in made.model.parameters())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(made.model(ids).logits, ref.model(ids).logits, atol=1e-4)  # it trained


def test_finetune_in_bf16_records_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    _, folder, data = _tiny_folder(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--model", str(folder), "--data", str(data), "--alias", "b-student", "--steps", "1",
              "--batch-size", "4", "--dtype", "bf16", "--out", str(tmp_path / "o")])
    assert e.value.code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["model"]["placement"]["dtype"] == "bf16"


@pytest.mark.parametrize("argv, needle", [
    (["finetune", "--full", "--load-in-4bit"], "--full needs full-precision weights"),
    (["finetune", "--dtype", "fp16"], "no loss scaler"),
    (["distill", "--teacher", "tiny-llama", "--student", "tiny-llama", "--full", "--load-in-4bit"], "--full needs"),
    (["teach", "--method", "lora", "--load-in-4bit"], "with --method qlora"),
    (["teach", "--method", "prompt", "--dtype", "bf16"], "--method prompt trains nothing"),
])
def test_training_placement_refused_before_any_load(tmp_path, capsys, monkeypatch, argv, needle):
    import interp.models as M

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(M, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded a model")))
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "p", "completion": " 1"}\n')
    extra = [] if argv[0] == "teach" else ["--data", str(data), "--steps", "1"]
    extra += ["--alias", "x"] if argv[0] != "distill" else []
    with pytest.raises(SystemExit) as e:
        main([*argv, *extra, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
