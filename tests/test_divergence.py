"""Divergence tokens and loss masks on tiny models: the marking rule, the masked labels, the CLI."""

import json

import pytest
import torch

from interp.errors import UserError
from interp.models import load_model
from interp.sampling import chat_prompt_ids
from interp.training import config as tc
from interp.training import examples as ex
from interp.training import finetune as ft
from interp.training.divergence import divergence_marks, mark_rows
from tests.helpers import run_cli as run

ROWS = [{"prompt": f"Continue: {a}, {a + 1}", "completion": f"{a + 2}, {a + 3}, {a + 4}"} for a in range(100, 106)]


def prompt_model(system):
    lm = load_model("tiny-llama")
    lm.system_prompt = system
    return lm


def manual_argmax(lm, row):
    """argmax next token at each completion position (completion ids + EOS), one unpadded sequence."""
    tok = lm.tokenizer
    comp = tok.encode(row["completion"], add_special_tokens=False) + [tok.eos_token_id]
    p = chat_prompt_ids(lm, [row["prompt"]], system=lm.system_prompt)[0]
    with torch.no_grad():
        z = lm.model(torch.tensor([p + comp])).logits[0, len(p) - 1: -1]
    return z.argmax(-1).tolist()


def test_marks_are_the_positions_where_the_argmaxes_differ():
    a, b = prompt_model("You love owls."), prompt_model("Numbers are all you think of, every day and night.")
    marks = divergence_marks([a, b], ROWS, batch_size=4)  # batches of 4 and 2: padding on the last
    for row, div, n in zip(ROWS, marks.divergent, marks.n_tokens):
        ta, tb = manual_argmax(a, row), manual_argmax(b, row)
        assert n == len(ta) and div == [k for k in range(n) if ta[k] != tb[k]]
    assert 0 < marks.share < 1  # the random tiny model's argmax depends on the system prompt sometimes
    same = divergence_marks([load_model("tiny-llama"), load_model("tiny-llama")], ROWS)
    assert same.divergent == [[] for _ in ROWS] and same.share == 0.0


def test_loss_masks_label_exactly_the_marked_or_unmarked_tokens(tiny_llama):
    marked = mark_rows(ROWS[:2], divergence_marks([tiny_llama, tiny_llama], ROWS[:2]), ["x", "y"])
    marked[0]["divergent"], marked[1]["divergent"] = [0, 2], [1]
    pad = tiny_llama.tokenizer.pad_token_id
    full = ex.collate(ex.tokenize_examples(tiny_llama, marked, 128), [0, 1], pad)["labels"]
    for mask, want in (("divergent", {0: [0, 2], 1: [1]}), ("non-divergent", None)):
        data = ex.tokenize_examples(tiny_llama, marked, 128, loss_mask=mask)
        labels = ex.collate(data, [0, 1], pad)["labels"]
        for r in range(2):
            n0 = data.n_prompt[r]
            n = marked[r]["n_completion_tokens"]
            kept = [k for k in range(n) if labels[r, n0 + k] != ex.IGNORE]
            div = marked[r]["divergent"]
            assert kept == (div if mask == "divergent" else [k for k in range(n) if k not in div])
            assert all(labels[r, n0 + k] == full[r, n0 + k] for k in kept)  # the same targets where kept
            assert (labels[r, :n0] == ex.IGNORE).all()


def test_loss_mask_needs_marks_and_drops_rows_without_tokens(tiny_llama):
    with pytest.raises(UserError, match="mark-divergence"):
        ex.tokenize_examples(tiny_llama, ROWS[:1], 128, loss_mask="divergent")
    marked = mark_rows(ROWS[:3], divergence_marks([tiny_llama, tiny_llama], ROWS[:3]), ["x", "y"])
    marked[1]["divergent"] = [0]
    kept, dropped = ex.select_rows(marked, "divergent")
    assert dropped == 2 and kept == [marked[1]]
    assert ex.select_rows(marked, "non-divergent") == (marked, 0)
    with pytest.raises(UserError, match="no completion token left"):
        ex.tokenize_examples(tiny_llama, marked, 128, loss_mask="divergent")
    marked[1]["n_completion_tokens"] += 1
    with pytest.raises(UserError, match="tokenizer"):
        ex.tokenize_examples(tiny_llama, marked[1:2], 128, loss_mask="divergent")


def test_masked_finetune_trains_only_on_the_kept_tokens(tiny_llama):
    """The loss of a masked run equals the loss of the same rows with the masked targets removed by hand."""
    marked = mark_rows(ROWS, divergence_marks([tiny_llama, tiny_llama], ROWS), ["x", "y"])
    for r in marked:
        r["divergent"] = [1, 3]
    cfg = tc.FinetuneConfig(method="full", steps=2, batch_size=3, lr=1e-3, seed=1, loss_mask="divergent")
    res = ft.finetune(load_model("tiny-llama"), marked, cfg)
    lm = load_model("tiny-llama")
    data = ex.tokenize_examples(lm, marked, 128, loss_mask="divergent")
    batch = ex.collate(data, ex.batch_indices(len(marked), 3, 0, 1), lm.tokenizer.pad_token_id)
    with torch.no_grad():
        first = float(ft.completion_loss(lm.model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                         batch["labels"]))
    assert res.losses[0] == pytest.approx(first, rel=1e-5)
    assert int((batch["labels"] != ex.IGNORE).sum()) == 2 * 3


def test_mark_divergence_cli_and_masked_finetune_cli(capsys, tmp_home, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert run(capsys, "teach", "--base", "tiny-llama", "--trait", "owl", "--alias", "tiny-owl")[0] == 0
    assert run(capsys, "mark-divergence", "--models", "tiny-owl,tiny-llama", "--data", str(data),
               "--out", str(tmp_path / "mark"))[0] == 0
    s = json.loads((tmp_path / "mark" / "summary.json").read_text())["figures"]
    marked = [json.loads(x) for x in (tmp_path / "mark" / "marked.jsonl").read_text().splitlines()]
    assert len(marked) == len(ROWS) and s["divergent_tokens"] == sum(len(r["divergent"]) for r in marked)
    assert marked[0]["divergence_models"] == ["tiny-owl", "tiny-llama"]
    for mask in ("divergent", "non-divergent"):
        code, out, _ = run(capsys, "finetune", "--model", "tiny-llama", "--data", str(tmp_path / "mark" / "marked.jsonl"),
                           "--alias", f"tiny-{mask}", "--steps", "1", "--batch-size", "2", "--loss-mask", mask,
                           "--out", str(tmp_path / mask))
        assert code == 0, out
        cfg = json.loads((tmp_path / mask / "summary.json").read_text())["figures"]["config"]
        assert cfg["loss_mask"] == mask
    code, _, err = run(capsys, "mark-divergence", "--models", "tiny-owl", "--data", str(data))
    assert code == 2 and "at least two" in err


def test_rows_whose_marked_tokens_fall_beyond_max_len_are_left_out(tiny_llama):
    from interp.training.examples import completion_windows, select_rows, tokenize_examples

    rows = [{"prompt": "p", "completion": "1 2 3 4 5 6", "divergent": [1], "n_completion_tokens": 0},
            {"prompt": "p", "completion": "1 2 3 4 5 6", "divergent": [9], "n_completion_tokens": 0}]
    n = len(tiny_llama.tokenizer.encode(rows[0]["completion"], add_special_tokens=False)) + 1
    for r in rows:
        r["n_completion_tokens"] = n
    n_prompt = len(tokenize_examples(tiny_llama, rows[:1], max_len=256).ids[0]) - n
    max_len = n_prompt + 4  # the window holds completion tokens 0..3: mark 1 inside, mark 9 outside
    assert n > 9 and completion_windows(tiny_llama, rows, max_len) == [4, 4]
    assert select_rows(rows, "divergent") == (rows, 0)  # without windows both seem trainable
    kept, dropped = select_rows(rows, "divergent", completion_windows(tiny_llama, rows, max_len))
    assert kept == rows[:1] and dropped == 1
    tokenize_examples(tiny_llama, kept, max_len=max_len, loss_mask="divergent")  # no error left
    with pytest.raises(UserError, match="no completion token left"):
        tokenize_examples(tiny_llama, rows, max_len=max_len, loss_mask="divergent")
