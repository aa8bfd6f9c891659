"""Animal -> number probe: known answers for the comparison, the vocab method, the biased prompt
being really scored (the original study scored the baseline twice), categories and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import plain_next_logprobs, plain_sequence_logprob
from test_cli import run

from interp.errors import UserError
from interp.probes.digit_length import parse_digit_range, plot_sweep
from interp.probes.numbers import (
    NumbersConfig,
    animal_numbers,
    categories_reverse_link,
    compare_distributions,
    digit_tokens,
    number_logprobs,
    number_prompt,
)
from interp.probes.reverse_link import ReverseLinkConfig
from interp.scoring import split_continuations


def test_compare_distributions_known_answer():
    nums = ["1", "2", "3", "4", "5", "6"]
    pn = np.array([0.30, 0.20, 0.20, 0.10, 0.10, 0.10]) * 0.5  # raw: half the mass elsewhere
    pb = np.array([0.10, 0.40, 0.20, 0.05, 0.15, 0.10]) * 0.25
    df = compare_distributions(nums, np.log(pn), np.log(pb), top=1).set_index("number")
    assert df.p_neutral.sum() == pytest.approx(1) and df.p_biased.sum() == pytest.approx(1)
    assert df.loc["2", "diff"] == pytest.approx(0.2) and df.loc["1", "diff"] == pytest.approx(-0.2)
    assert df.loc["5", "log_ratio"] == pytest.approx(np.log(1.5))
    assert df.loc["1", "p_neutral_raw"] == pytest.approx(0.15)
    assert (df.loc["2", "rank_biased"], df.loc["1", "rank_neutral"], df.loc["1", "rank_biased"]) == (1, 1, 4)
    assert df.loc["2", "category"] == "increased" and df.loc["1", "category"] == "decreased"
    # unchanged: smallest |log ratio| among numbers with p_neutral >= median (0.15): "3" (ratio 1)
    assert df.loc["3", "category"] == "unchanged" and df.loc["6", "category"] == ""
    with pytest.raises(ValueError):
        compare_distributions(nums, np.log(pn), np.log(pb[:3]), top=1)


def test_category_lists_lead_with_the_most_changed_number():
    """Issue 32: 'decreased' came least decreased first (the table's diff-descending order) while
    'increased' comes most increased first and `interp numbers` prints decreased most negative first.
    diffs: 2 +0.2, 5 +0.05, 3 0, 6 0, 4 -0.05, 1 -0.2; top 2."""
    from interp.probes.numbers import NumbersResult, category_numbers

    nums = ["1", "2", "3", "4", "5", "6"]
    pn = np.log([0.30, 0.20, 0.20, 0.10, 0.10, 0.10])
    pb = np.log([0.10, 0.40, 0.20, 0.05, 0.15, 0.10])
    df = compare_distributions(nums, pn, pb, top=2)
    assert list(df.number[df.category == "decreased"]) == ["4", "1"]  # the table stays diff-descending
    res = NumbersResult(df, {})
    assert res.category("increased") == ["2", "5"]
    assert res.category("decreased") == ["1", "4"] == category_numbers(df, "decreased")


def test_categories_are_disjoint_and_sized():
    rng = np.random.default_rng(0)
    nums = [str(i).zfill(2) for i in range(100)]
    df = compare_distributions(nums, rng.normal(size=100), rng.normal(size=100), top=10)
    counts = df.category.value_counts()
    assert counts["increased"] == counts["decreased"] == counts["unchanged"] == 10
    assert (df.loc[df.category == "increased", "diff"] > 0).all()
    assert (df.loc[df.category == "decreased", "diff"] < 0).all()
    assert df.loc[df.category == "increased", "diff"].min() >= df.loc[df.category == "", "diff"].max()


def test_digit_tokens_are_ascii_digits_only(tiny_llama):
    ids, strings = digit_tokens(tiny_llama.tokenizer)
    assert strings == [str(d) for d in range(10)]
    assert all(tiny_llama.tokenizer.decode([i]) == s for i, s in zip(ids, strings))


def test_vocab_method_equals_plain_forward(tiny_llama):
    prompt = number_prompt(tiny_llama, "owl")
    nums, lp = number_logprobs(tiny_llama, prompt, "vocab", 0)
    ref = plain_next_logprobs(tiny_llama, prompt)
    ids, strings = digit_tokens(tiny_llama.tokenizer)
    assert nums == strings
    assert np.abs(lp - ref[ids].numpy()).max() < 1e-4


def test_biased_distribution_is_scored_on_the_biased_prompt(tiny_llama):
    """Guards the baseline-twice bug: p_biased must come from the biased prompt (checked against an
    independent plain forward on it), differ from p_neutral, and give different categories."""
    res = animal_numbers(tiny_llama, "owl", NumbersConfig(method="ar", digits=2, top=5))
    assert "owl" in res.prompts["biased"] and "owl" not in res.prompts["neutral"]
    t = res.table.set_index("number")
    for prompt, col in ((res.prompts["neutral"], "p_neutral_raw"), (res.prompts["biased"], "p_biased_raw")):
        ctx, conts = split_continuations(tiny_llama.tokenizer, prompt, ["07", "42"])
        for n, c in zip(["07", "42"], conts):
            assert np.log(t.loc[n, col]) == pytest.approx(plain_sequence_logprob(tiny_llama, ctx, c), abs=1e-4)
    assert np.abs(t.p_biased - t.p_neutral).max() > 1e-4
    inc, dec = set(res.category("increased")), set(res.category("decreased"))
    assert len(inc) == len(dec) == 5 and not inc & dec
    assert res.summary["top_neutral"] != res.summary["top_biased"] or inc


def test_same_model_as_biased_model_changes_nothing(tiny_llama):
    res = animal_numbers(tiny_llama, "owl", NumbersConfig(method="vocab", top=3), biased_model=tiny_llama)
    assert np.abs(res.table["diff"]).max() < 1e-7
    assert res.category("increased") == [] and res.category("decreased") == []
    assert res.prompts["neutral"] == res.prompts["biased"]


def test_bad_method_and_digits(tiny_llama):
    with pytest.raises(UserError, match="--method"):
        animal_numbers(tiny_llama, "owl", NumbersConfig(method="sample"))
    with pytest.raises(UserError, match="--digits"):
        animal_numbers(tiny_llama, "owl", NumbersConfig(method="ar", digits=0))


def test_categories_reverse_link_means_and_tests(tiny_llama):
    res = animal_numbers(tiny_llama, "owl", NumbersConfig(method="ar", digits=2, top=4))
    link = categories_reverse_link(tiny_llama, res, "dog", ReverseLinkConfig(template_control=5, n_boot=200))
    assert set(link.table.category) == {"increased", "decreased", "unchanged"}
    pc = link.per_category.set_index("category")
    for c, g in link.table.groupby("category"):
        assert pc.loc[c, "bias_ratio"] == pytest.approx(g.bias_ratio.mean())
        assert pc.loc[c, "bias_ratio_lo"] <= pc.loc[c, "bias_ratio"] <= pc.loc[c, "bias_ratio_hi"]
    t = link.summary["permutation_tests"]["increased_vs_decreased"]["bias_ratio"]
    inc, dec = link.table[link.table.category == "increased"], link.table[link.table.category == "decreased"]
    assert t.statistic == pytest.approx(inc.bias_ratio.mean() - dec.bias_ratio.mean())
    assert 0 < t.p_value <= 1


def test_parse_digit_range():
    assert parse_digit_range("1-4") == [1, 2, 3, 4]
    assert parse_digit_range("3,1") == [1, 3]
    for bad in ("a-b", "", "0-2", "9"):
        with pytest.raises(UserError):
            parse_digit_range(bad)


def test_plot_sweep_is_png():
    table = pd.DataFrame({"length": [1, 2], "bias_ratio": [2.0, 3.0], "bias_ratio_lo": [1.5, 2.5],
                          "bias_ratio_hi": [2.5, 3.5], "bias_ratio_vs_template": [1.0, 1.1],
                          "bias_ratio_vs_template_lo": [0.9, 1.0], "bias_ratio_vs_template_hi": [1.1, 1.2]})
    assert plot_sweep(table, "owl")[:8] == b"\x89PNG\r\n\x1a\n"


# ---- CLI -----------------------------------------------------------------------------------------

def test_numbers_cli_writes_results(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "numbers", "--model", "tiny-llama", "--method", "ar", "--digits", "2", "--top", "3",
                          "--then-reverse-link", "--template-control", "3", "--out", str(out))
    assert code == 0, stdout
    df = pd.read_csv(out / "numbers.csv", dtype={"number": str})
    assert len(df) == 100 and df.p_neutral.sum() == pytest.approx(1, abs=1e-6)
    cats = pd.read_csv(out / "categories.csv")
    assert set(cats.category) == {"increased", "decreased", "unchanged"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "numbers" and summary["figures"]["n_numbers"] == 100
    assert "permutation_tests" in summary["figures"]["then_reverse_link"]
    assert "increased" in stdout and "reverse link by category" in stdout
    dec = df[df.category == "decreased"].sort_values("diff")
    assert summary["figures"]["categories"]["decreased"] == list(dec.number)  # most decreased first, as printed
    printed = stdout[stdout.index("decreased (top"):stdout.index("unchanged (top")]
    first_cells = [ln.split("│")[1].strip() for ln in printed.splitlines() if ln.startswith("│")]
    assert [c for c in first_cells if c] == list(dec.number)


def test_digit_length_cli_writes_plot(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "digit-length", "--model", "tiny-llama", "--digits", "1-2", "--top", "3",
                          "--template-control", "3", "--out", str(out))
    assert code == 0, stdout
    table = pd.read_csv(out / "digit_length.csv")
    assert list(table.length) == [1, 2] and (table.n <= 3).all()
    per = pd.read_csv(out / "numbers.csv", dtype={"number": str})
    for L, g in per.groupby("length"):
        assert table.set_index("length").loc[L, "n"] == len(g) and (g["diff"] > 0).all()
        assert table.set_index("length").loc[L, "bias_ratio"] == pytest.approx(g.bias_ratio.mean())
    assert (out / "digit_length.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("cmd, args, message", [
    ("numbers", ["--method", "sample"], "Invalid value for '--method'"),
    ("numbers", ["--digits", "9"], "'--digits': must be in [1, 7]"),
    ("numbers", ["--bias", "zebrafish", "--then-reverse-link", "--digits", "1"], "not a single token"),
    ("digit-length", ["--digits", "x"], "--digits must look like"),
])
def test_bad_input_one_line(capsys, tmp_path, cmd, args, message):
    out = tmp_path / "run"
    code, _, err = run(capsys, cmd, "--model", "tiny-llama", *args, "--out", str(out))
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.embedded
def test_smollm2_biased_prompt_moves_numbers(smollm2):
    """On smollm2 the owl trait changes the 2-digit distribution: categories differ and the biased
    column equals an independent plain forward on the biased prompt."""
    res = animal_numbers(smollm2, "owl", NumbersConfig(method="ar", digits=2, top=5))
    t = res.table.set_index("number")
    ctx, conts = split_continuations(smollm2.tokenizer, res.prompts["biased"], ["42"])
    assert np.log(t.loc["42", "p_biased_raw"]) == pytest.approx(plain_sequence_logprob(smollm2, ctx, conts[0]), abs=1e-4)
    assert res.summary["total_variation"] > 1e-3
    assert not set(res.category("increased")) & set(res.category("decreased"))
