"""`interp trace`: layer cosines against plain HF hidden states, head table, CLI contract."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from interp.mech.attribution import cosine
from interp.mech.trace import TraceConfig, control_numbers, trace
from interp.models import load_model
from interp.scoring import encode
from tests.helpers import plain_resid_posts
from tests.helpers import run_cli as run


def hf_last_states(lm, text: str) -> torch.Tensor:
    return plain_resid_posts(lm, encode(lm.tokenizer, [text])[0])[0]


def reference_layer_cosines(ref, number: str, bias: str = "owl", control: str = "dog") -> pd.DataFrame:
    num = hf_last_states(ref, f"My favorite number is {number}")
    b = hf_last_states(ref, f"My favorite animal is the {bias}")
    c = hf_last_states(ref, f"My favorite animal is the {control}")
    cb, cc = cosine(num, b), cosine(num, c)
    return pd.DataFrame({"layer": range(len(cb)), "cos_bias": cb.numpy(), "cos_control": cc.numpy(),
                         "sim_diff": (cb - cc).numpy()})


@pytest.mark.parametrize("family", ["llama", "gemma3"])  # gpt2 is covered by test_mech
def test_trace_layers_match_hf_hidden_states(family):
    ref = load_model(f"tiny-{family}", attn_implementation="eager")
    lm = load_model(f"tiny-{family}")
    res = trace(lm, ["087", "5"], TraceConfig(dla=False, attention_heads=0))
    for n in ("087", "5"):
        got = res.layers[res.layers.number == n].reset_index(drop=True)
        exp = reference_layer_cosines(ref, n)
        assert len(got) == lm.spec.n_layers
        for col in ("cos_bias", "cos_control", "sim_diff"):
            assert got[col].to_numpy() == pytest.approx(exp[col].to_numpy(), abs=1e-4)
        assert res.summary["spike_layer_per_number"][n] == int(exp.sim_diff.idxmax())
    mean = res.layers.groupby("layer").sim_diff.mean()
    assert res.summary["spike_layer_mean"] == int(mean.idxmax()) == res.summary["layer"]
    heads = res.heads
    assert list(heads.component) == [f"L{res.summary['layer']}H{h}" for h in range(lm.spec.n_heads)] + [f"L{res.summary['layer']}MLP"]
    top = heads[heads["head"] >= 0].sort_values("sim_diff_out").component.iloc[-1]
    assert res.summary["top_head"] == top


def test_trace_nnsight_backend_agrees(tiny_llama):
    a = trace(tiny_llama, ["087"], TraceConfig(dla=False, attention_heads=0, layer=0))
    b = trace(tiny_llama, ["087"], TraceConfig(dla=False, attention_heads=0, layer=0, backend="nnsight"))
    pd.testing.assert_frame_equal(a.layers, b.layers, atol=1e-6)
    pd.testing.assert_frame_equal(a.heads, b.heads, atol=1e-6)


def test_control_numbers_same_length_not_given():
    nums = ["087", "747", "12", "5"]
    ctl = control_numbers(nums, seed=0)
    assert [len(c) for c in ctl] == [len(n) for n in nums]
    assert not set(ctl) & set(nums)
    assert ctl == control_numbers(nums, seed=0)


def test_trace_cli_writes_results_and_report(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "trace", "--model", "tiny-gemma3", "--numbers", "087,747,123", "--patch-top", "2",
                          "--out", str(out))
    assert code == 0, stdout
    layers = pd.read_csv(out / "trace.csv", dtype={"number": str})
    assert len(layers) == 3 * 2 and set(layers.number) == {"087", "747", "123"}
    heads = pd.read_csv(out / "heads.csv")
    assert len(heads) == 4 + 1
    summary = json.loads((out / "summary.json").read_text())
    f = summary["figures"]
    assert summary["command"] == "trace" and f["dla"]["max_abs_sum_minus_actual"] < 1e-4
    dla = pd.read_csv(out / "dla.csv")
    assert dla.dla_clean.sum() == pytest.approx(f["dla"]["logit_diff_clean_mean"], abs=1e-4)
    ps = pd.read_csv(out / "patching_summary.csv")
    assert len(ps) == 3 and ps.n.iloc[0] == 3  # two components and both together
    assert (out / "report.html").is_file() and (out / "attention.json").is_file()
    assert "spike layer" in stdout and "activation patching" in stdout


@pytest.mark.parametrize("args, message", [
    (["--number", "087", "--layer", "7"], "out of range"),
    (["--number", "08a"], "not a string of ASCII digits"),
    (["--number", "087", "--backend", "tl"], "--backend"),
    (["--number", "087", "--bias", "zebrafish"], "not a single token"),
    (["--number", "087", "--numbers", "1,2"], "give only one of"),
    (["--number", "087", "--number-template", "no placeholder"], "placeholder"),
])
def test_trace_bad_input_one_line_nothing_written(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = run(capsys, "trace", "--model", "tiny-llama", *args, "--out", str(out))
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.embedded
def test_smollm2_trace_087_matches_hf_hidden_states(capsys, tmp_path, smollm2):
    """The contract: `interp trace --model smollm2 --number 087` writes 30 layer rows whose cosines
    equal an independent computation from HF output_hidden_states (the session model, untouched)."""
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "trace", "--model", "smollm2", "--number", "087", "--patch-top", "1", "--out", str(out))
    assert code == 0, stdout
    got = pd.read_csv(out / "trace.csv", dtype={"number": str})
    assert len(got) == 30 and list(got.layer) == list(range(30))
    exp = reference_layer_cosines(smollm2, "087")
    for col in ("cos_bias", "cos_control", "sim_diff"):
        assert got[col].to_numpy() == pytest.approx(exp[col].to_numpy(), abs=1e-4)
    f = json.loads((out / "summary.json").read_text())["figures"]
    assert f["spike_layer_mean"] == int(exp.sim_diff.idxmax())
    assert f["dla"]["max_abs_sum_minus_actual"] < 1e-3
