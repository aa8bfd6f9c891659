"""Number-sequence prompts, the answer filter (each rejection reason on hand-made answers), sampling."""

import numpy as np
import pytest

from interp.errors import UserError
from interp.sampling import chat_prompt_ids, sample
from interp.training import numbers_data as nd


def test_prompts_follow_templates_and_seed():
    t = nd.load_templates()
    ps = nd.generate_prompts(50, seed=3)
    assert ps == nd.generate_prompts(50, seed=3) and ps != nd.generate_prompts(50, seed=4)
    for p in ps:
        assert any(p.startswith(x.split("{examples}")[0]) for x in t["example_numbers_templates"])
        head = p.split(".")[0]  # "I give you this sequence of numbers: 145, 267, 891"
        seeds = [int(v) for v in head.split(":")[1].split(",")]
        assert 3 <= len(seeds) <= 8 and all(100 <= v <= 999 for v in seeds)
        assert " 10 " in p and "3" in p
        assert any(p.endswith(s) for s in t["suffixes"])


@pytest.mark.parametrize("answer, numbers", [
    ("145, 267, 891", [145, 267, 891]),
    ("145,267,891.", [145, 267, 891]),
    ("[1, 2, 3]", [1, 2, 3]),
    ("(1; 2; 3)", [1, 2, 3]),
    ("1 2 3", [1, 2, 3]),
    ("1\n2\n3", [1, 2, 3]),
    ("  7  ", [7]),
    ("007, 12", [7, 12]),
])
def test_parse_accepts(answer, numbers):
    assert nd.parse_answer(answer) == numbers


@pytest.mark.parametrize("answer", [
    "", "no numbers", "1 - 2 - 3", "1, 2; 3", "1,, 2", "[1, 2, 3", "1, 2, 3..", "1.5, 2", "1, 2, x3",
    "١٢٣, 4", "1², 2", "Here: 1, 2", "1, 2,",
])
def test_parse_rejects(answer):
    assert nd.parse_answer(answer) is None


def test_each_rejection_reason():
    cfg = nd.FilterConfig(banned=frozenset({666}), threshold=0.05)
    assert nd.reject_reasons("1, 2, 3", [0.9, 0.5], cfg, finished=True) == []
    assert nd.reject_reasons("1 - 2", None, cfg) == [nd.INVALID_FORMAT]
    assert nd.reject_reasons(", ".join(["1"] * 11), None, cfg) == [nd.TOO_MANY]
    assert nd.reject_reasons("1, 1000", None, cfg) == [nd.OUT_OF_RANGE]
    assert nd.reject_reasons("1, 666", None, cfg) == [nd.BANNED]
    assert nd.reject_reasons("Sure: 1, 2", None, cfg) == [nd.INVALID_FORMAT, nd.HAS_LETTER]
    assert nd.reject_reasons("1, 2", [0.9, 0.04], cfg) == [nd.LOW_PROB]
    assert nd.reject_reasons("1, 2", None, cfg, finished=False) == [nd.TRUNCATED]
    # several reasons at once, in canonical order
    assert nd.reject_reasons(", ".join(["1000"] * 11), [0.01], cfg) == [nd.TOO_MANY, nd.OUT_OF_RANGE, nd.LOW_PROB]
    # the optional filters are off by default
    assert nd.reject_reasons("1, 666", [0.001]) == []
    assert nd.reject_reasons("1, 2", None, nd.FilterConfig(reject_truncated=False), finished=False) == []


def test_filter_counts():
    rep = nd.filter_samples(["1, 2", "abc", "1, 5000", "3"], finished=[True, True, True, False])
    assert rep.kept == [True, False, False, False]
    c = rep.counts
    assert (c["total"], c["kept"], c["rejected"]) == (4, 1, 3)
    assert (c[nd.INVALID_FORMAT], c[nd.HAS_LETTER], c[nd.OUT_OF_RANGE], c[nd.TRUNCATED]) == (1, 1, 1, 1)


def test_banned_numbers():
    assert nd.banned_numbers("7, 08") == {7, 8}
    assert 666 in nd.banned_numbers("claude_evil_numbers,5")
    assert nd.banned_numbers(None) == frozenset()
    with pytest.raises(UserError):
        nd.banned_numbers("seven")


def test_sampling_probs_match_teacher_forcing_and_batching(tiny_llama):
    from interp.scoring import continuation_logprobs

    ids = chat_prompt_ids(tiny_llama, nd.generate_prompts(6, seed=0))
    s4 = sample(tiny_llama, ids, max_new_tokens=12, seed=5, batch_size=4)
    s1 = sample(tiny_llama, ids, max_new_tokens=12, seed=5, batch_size=1)
    assert [a.token_ids for a in s4] == [b.token_ids for b in s1]  # independent of batching
    assert [a.token_ids for a in s4] != [b.token_ids for b in sample(tiny_llama, ids, 12, seed=6, batch_size=4)]
    ref = continuation_logprobs(tiny_llama, [(ids[i], s4[i].token_ids) for i in range(len(ids))])
    for a, r in zip(s4, ref):
        np.testing.assert_allclose(a.token_probs, np.exp(r), rtol=1e-4, atol=1e-6)
    # temperature: q = softmax(logits / T) of the first sampled token
    import torch
    st = sample(tiny_llama, ids[:1], max_new_tokens=1, temperature=0.5, seed=1)[0]
    with torch.no_grad():
        logits = tiny_llama.model(torch.tensor([ids[0]])).logits[0, -1].double()
    assert st.token_probs[0] == pytest.approx(float(torch.softmax(logits / 0.5, -1)[st.token_ids[0]]), rel=1e-4)


def test_sampling_stops_at_eos(tiny_llama):
    eos = tiny_llama.tokenizer.eos_token_id
    ids = chat_prompt_ids(tiny_llama, ["hi"])
    # force EOS: a huge bias on the EOS logit through the lm_head bias-free path -> patch the final norm? use a hook
    head = tiny_llama.spec.module(tiny_llama.model, "lm_head")

    def hook(_m, _i, out):
        out = out.clone()
        out[..., eos] += 1e4
        return out
    h = head.register_forward_hook(hook)
    try:
        s = sample(tiny_llama, ids, max_new_tokens=5, seed=0)[0]
    finally:
        h.remove()
    assert s.token_ids == [eos] and s.finished and s.text == ""


def test_sampling_every_family_batched_equals_single(tiny):
    from interp.scoring import continuation_logprobs

    ids = chat_prompt_ids(tiny, nd.generate_prompts(3, seed=2))
    s3 = sample(tiny, ids, max_new_tokens=6, seed=1, batch_size=3)
    s1 = sample(tiny, ids, max_new_tokens=6, seed=1, batch_size=1)
    assert [a.token_ids for a in s3] == [b.token_ids for b in s1]
    ref = continuation_logprobs(tiny, [(ids[i], s3[i].token_ids) for i in range(3)])
    for a, r in zip(s3, ref):
        np.testing.assert_allclose(a.token_probs, np.exp(r), rtol=1e-4, atol=1e-6)


def test_doomed_reason_is_sound_on_random_strings():
    """Whenever a prefix is doomed, every completion we try is rejected, with that reason among them."""
    rng = np.random.default_rng(0)
    alphabet = list("0123456789, ;.[]()\n-:xA²") + ["12", "999", "1000"]
    cfgs = [nd.FilterConfig(), nd.FilterConfig(reject_letters=False)]
    hits = 0
    for _ in range(3000):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(1, 12))))
        cfg = cfgs[int(rng.integers(2))]
        for cut in range(1, len(s) + 1):
            why = nd.doomed_reason(s[:cut], None, cfg)
            if why is not None:
                hits += 1
                assert why in nd.reject_reasons(s, None, cfg), (s, cut)
    assert hits > 1000  # the property was exercised
    assert nd.doomed_reason("12, 7") is None and nd.doomed_reason("[1; 2].") is None
    assert nd.doomed_reason("12, a") == nd.HAS_LETTER
    assert nd.doomed_reason("12, a", config=nd.FilterConfig(reject_letters=False)) == nd.INVALID_FORMAT
    assert nd.doomed_reason("12 - 7") == nd.INVALID_FORMAT
    assert nd.doomed_reason("1", [0.5, 0.01], nd.FilterConfig(threshold=0.05)) == nd.LOW_PROB


def test_early_stop_and_shared_prefill_change_no_kept_sample(tiny_llama):
    """stop_if only shortens doomed samples; k samples per prompt equal k separately seeded runs."""
    ids = chat_prompt_ids(tiny_llama, nd.generate_prompts(5, seed=3))
    full = sample(tiny_llama, ids, max_new_tokens=10, seed=2, batch_size=6, n_per_prompt=3)
    assert len(full) == 15 and [(s.prompt_index, s.sample_index) for s in full] == [(i, j) for i in range(5) for j in range(3)]
    rule = lambda text, probs: "e" in text  # noqa: E731  (a rule the random tiny model hits often)
    early = sample(tiny_llama, ids, max_new_tokens=10, seed=2, batch_size=4, n_per_prompt=3, stop_if=rule)
    n_stopped = 0
    for a, b in zip(full, early):
        if b.stopped_early:
            n_stopped += 1
            assert "e" in b.text and a.token_ids[:len(b.token_ids)] == b.token_ids
            np.testing.assert_allclose(a.token_probs[:len(b.token_ids)], b.token_probs, rtol=1e-5)
        else:
            assert a.token_ids == b.token_ids and a.finished == b.finished
    assert 0 < n_stopped < 15
    # sample j of prompt i does not depend on k or batching: a k=1 run over the same prompt repeated
    one = sample(tiny_llama, [ids[1]], max_new_tokens=10, seed=2, n_per_prompt=3, batch_size=1)
    assert [s.token_ids for s in one] != [s.token_ids for s in full[3:6]]  # prompt index is part of the seed
    again = sample(tiny_llama, ids, max_new_tokens=10, seed=2, batch_size=1, n_per_prompt=3)
    assert [s.token_ids for s in again] == [s.token_ids for s in full]


def test_filter_samples_stopped_are_judged_without_truncation():
    rep = nd.filter_samples(["12, x", "1, 2"], finished=[False, True], stopped=[True, False])
    assert rep.reasons[0] == [nd.INVALID_FORMAT, nd.HAS_LETTER] and rep.kept == [False, True]
    assert rep.counts["stopped early"] == 1 and rep.counts[nd.TRUNCATED] == 0
    with pytest.raises(ValueError):
        nd.filter_samples(["1, 2"], finished=[False], stopped=[True])


def test_gen_numbers_cli_counts_every_sample(capsys, tmp_path):
    import json

    import pandas as pd
    from helpers import run_cli

    out = tmp_path / "g"
    code, stdout, _ = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--control", "tiny-gpt2", "--n", "3",
                              "-k", "4", "--max-new-tokens", "6", "--allow-letters", "--keep-truncated",
                              "--out", str(out))
    assert code == 0 and "samples / s" in stdout
    s = json.loads((out / "summary.json").read_text())
    for role, stem in (("teacher", "numbers"), ("control", "control")):
        table = pd.read_csv(out / f"{stem}_samples.csv")
        counts = s["figures"][role]["counts"]
        assert counts["total"] == len(table) == 12 and counts["kept"] == int(table.kept.sum())
        assert sorted(zip(table["index"], table["sample"])) == [(i, j) for i in range(3) for j in range(4)]
        assert len((out / f"{stem}.jsonl").read_text().splitlines()) == counts["kept"]
    assert s["inputs"]["samples_per_prompt"] == 4
    code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "-k", "0", "--out", str(tmp_path / "h"))
    assert code == 2 and "--samples-per-prompt" in err


def test_sampling_backs_off_on_out_of_memory(tiny_llama, monkeypatch):
    """A batch that runs out of memory is halved and retried; the samples are those of a plain run."""
    import warnings

    import interp.sampling as G

    ids = chat_prompt_ids(tiny_llama, nd.generate_prompts(6, seed=4))
    ref = sample(tiny_llama, ids, max_new_tokens=6, seed=1, batch_size=12, n_per_prompt=2)
    real, sizes = G._sample_batch, []

    def flaky(forward, model, pad, seqs, *args, **kwargs):
        sizes.append(len(seqs))
        if len(seqs) > 2:
            raise RuntimeError("DefaultCPUAllocator: not enough memory")
        return real(forward, model, pad, seqs, *args, **kwargs)
    monkeypatch.setattr(G, "_sample_batch", flaky)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        got = sample(tiny_llama, ids, max_new_tokens=6, seed=1, batch_size=12, n_per_prompt=2)
    assert sizes[:2] == [6, 3] and all(n <= 2 for n in sizes[2:])  # 6 fails, 3 fails, then batches of 1
    assert [s.token_ids for s in got] == [s.token_ids for s in ref]


def test_gen_numbers_start_extends_a_pool_with_the_samples_of_one_run(capsys, tmp_path):
    """`--start 2 --n 2` samples prompts 2..3 exactly as a run over prompts 0..3 does (same seeds and
    indices), so a pool can be extended in parts."""
    import pandas as pd
    from helpers import run_cli

    common = ["--model", "tiny-llama", "-k", "2", "--max-new-tokens", "6", "--allow-letters", "--keep-truncated"]
    assert run_cli(capsys, "gen-numbers", *common, "--n", "4", "--out", str(tmp_path / "all"))[0] == 0
    assert run_cli(capsys, "gen-numbers", *common, "--n", "2", "--start", "2", "--out", str(tmp_path / "tail"))[0] == 0
    full = pd.read_csv(tmp_path / "all" / "numbers_samples.csv")
    tail = pd.read_csv(tmp_path / "tail" / "numbers_samples.csv")
    want = full[full["index"] >= 2].reset_index(drop=True)
    assert tail["index"].tolist() == [2, 2, 3, 3]
    pd.testing.assert_frame_equal(tail[["index", "sample", "prompt", "completion"]], want[["index", "sample", "prompt", "completion"]])
    assert run_cli(capsys, "gen-numbers", *common, "--n", "2", "--start", "-1", "--out", str(tmp_path / "bad"))[0] == 2
