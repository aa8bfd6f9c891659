"""Faults and bad input that used to escape: each is one red line on stderr, exit code 2, no
traceback, and nothing written (DEVELOPERS: "no silent wrong numbers")."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from interp.errors import UserError
from interp.models import load_model, store
from interp.models.tiny import tiny_model
from tests.helpers import run_cli

BINARY = bytes(range(128, 256)) * 4  # not UTF-8 anywhere


def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def nothing_in(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


# ---- aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias, needle", [("tiny-llama", "name of a built-in model"),
                                           ("smollm2", "name of a built-in model"),
                                           ("", "invalid alias ''")])
def test_teach_refuses_aliases_that_shadow_builtins_or_are_empty(capsys, tmp_home, tmp_path, alias, needle):
    code, _, err = run_cli(capsys, "teach", "--base", "tiny-llama", "--method", "prompt", "--alias", alias,
                           "--out", str(tmp_path / "o"))
    one_line_error(code, err, needle)
    assert nothing_in(tmp_home / "models") and nothing_in(tmp_path / "o")
    assert load_model("tiny-llama").source.startswith("random tiny model")  # still the built-in


def test_prompt_alias_cannot_point_at_itself_through_its_base(tmp_home):
    store.save_prompt_alias("a-owl", "tiny-llama", "You love owls.")
    store.save_prompt_alias("b-owl", "a-owl", "You love owls.")
    with pytest.raises(UserError, match=r"would refer to itself: a-owl -> b-owl -> a-owl"):
        store.save_prompt_alias("a-owl", "b-owl", "x", overwrite=True)


def test_a_cycle_already_in_the_store_is_one_line_at_load(capsys, tmp_home, tmp_path):
    for alias, base in (("tiny-llama", "tiny-llama"), ("x-owl", "y-owl"), ("y-owl", "x-owl")):  # made by old versions
        d = tmp_home / "models" / alias
        d.mkdir(parents=True)
        (d / store.META_FILE).write_text(json.dumps({"alias": alias, "kind": "prompt", "base": base,
                                                     "system_prompt": "s", "source": "old"}))
    with pytest.raises(UserError, match=r"store alias cycle: tiny-llama -> tiny-llama; .*rm -r"):
        load_model("tiny-llama")
    code, _, err = run_cli(capsys, "reverse-link", "--model", "x-owl", "--numbers", "087", "--out", str(tmp_path / "o"))
    one_line_error(code, err, "store alias cycle: x-owl -> y-owl -> x-owl")
    assert nothing_in(tmp_path / "o")


# ---- store integrity ----------------------------------------------------------------------------


def _saved(alias: str = "tiny-made") -> Path:
    model, tok = tiny_model("llama", seed=2)
    return store.save_model(alias, model, tok, {"kind": "made", "source": "test"})


def test_flipped_bytes_in_stored_weights_are_refused(capsys, tmp_home, tmp_path):
    folder = _saved()
    load_model("tiny-made")  # verified (cached)
    w = folder / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a weight byte, same size
    w.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "reverse-link", "--model", "tiny-made", "--numbers", "087", "--out", str(tmp_path / "o"))
    one_line_error(code, err, "do not match the sha256 recorded")
    assert nothing_in(tmp_path / "o")


def test_truncated_weights_and_missing_config_are_one_line(capsys, tmp_home, tmp_path):
    folder = _saved()
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "reverse-link", "--model", "tiny-made", "--numbers", "087", "--out", str(tmp_path / "o"))
    one_line_error(code, err, "do not match the sha256")
    folder2 = _saved("tiny-made-2")
    (folder2 / "config.json").unlink()
    code, _, err = run_cli(capsys, "reverse-link", "--model", "tiny-made-2", "--numbers", "087", "--out", str(tmp_path / "o"))
    one_line_error(code, err, "config.json is missing")
    assert nothing_in(tmp_path / "o")


def test_verification_is_cached_by_size_and_mtime(tmp_home, monkeypatch):
    folder = _saved()
    calls = []
    real = store.weights_digest
    monkeypatch.setattr(store, "weights_digest", lambda f: calls.append(f) or real(f))
    load_model("tiny-made")
    load_model("tiny-made")
    assert calls == []  # save recorded the verification; unchanged files are not hashed again
    os.utime(folder / "model.safetensors", ns=(1, 1))
    load_model("tiny-made")
    assert len(calls) == 1


# ---- bad input files and values -----------------------------------------------------------------


def _bin(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_bytes(BINARY)
    return p


@pytest.mark.parametrize("argv", [
    ["finetune", "--model", "tiny-llama", "--alias", "s1", "--steps", "1", "--data", "{bin}"],
    ["gen-numbers", "--model", "tiny-llama", "--n", "2", "--templates", "{bin}"],
    ["eval-animal", "--model", "tiny-llama", "--questions", "{bin}"],
    ["stereoset", "--model", "tiny-llama", "--data", "{bin}"],
    ["crows", "--model", "tiny-llama", "--data", "{bin}"],
    ["reverse-link", "--model", "tiny-llama", "--numbers-file", "{bin}"],
])
def test_binary_input_files_are_one_line(capsys, tmp_home, tmp_path, argv):
    b = _bin(tmp_path, "data.bin")
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, *[a.replace("{bin}", str(b)) for a in argv], "--out", str(out))
    one_line_error(code, err, "is not UTF-8 text")
    assert nothing_in(out) and nothing_in(tmp_home / "models")


def test_report_of_a_binary_summary_is_one_line(capsys, tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    _bin(d, "summary.json")
    code, _, err = run_cli(capsys, "report", str(d))
    one_line_error(code, err, "is not UTF-8 text")
    assert sorted(p.name for p in d.iterdir()) == ["summary.json"]


@pytest.mark.parametrize("argv, needle", [
    (["finetune", "--model", "tiny-llama", "--alias", "s1", "--steps", "1", "--lr", "-1"], "'--lr': must be > 0"),
    (["finetune", "--model", "tiny-llama", "--alias", "s1", "--steps", "1", "--lr", "nan"], "'--lr': must be > 0"),
    (["teach", "--base", "tiny-llama", "--method", "lora", "--alias", "t1", "--lr", "-1"], "'--lr': must be > 0"),
    (["reverse-link", "--model", "tiny-llama", "--numbers", ""], "no numbers given"),
    (["trace", "--model", "tiny-llama", "--numbers", ""], "no numbers given"),
    (["reverse-link", "--model", "tiny-llama", "--digits", "0"], "'--digits': must be in [1, 7]"),
    (["trace", "--model", "tiny-llama", "--digits", "0"], "'--digits': must be in [1, 7]"),
    (["numbers", "--model", "tiny-llama", "--method", "ar", "--digits", "0"], "'--digits': must be in [1, 7]"),
])
def test_bad_values_are_one_line(capsys, tmp_home, tmp_path, argv, needle):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "p", "completion": "1"}\n')
    argv = argv + (["--data", str(data)] if argv[0] == "finetune" else [])
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "o"))
    one_line_error(code, err, needle)
    assert nothing_in(tmp_path / "o") and nothing_in(tmp_home / "models")


# ---- checkpoints --------------------------------------------------------------------------------


def test_resume_falls_back_from_a_corrupted_latest_checkpoint(capsys, tmp_home, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "Count %d:", "completion": " %d, %d"}\n' % (i, i, i + 1) for i in range(16)))
    out = tmp_path / "run"
    common = ["finetune", "--model", "tiny-llama", "--data", str(data), "--steps", "6", "--batch-size", "2",
              "--checkpoint-every", "2", "--out", str(out)]
    code, _, err = run_cli(capsys, *common, "--alias", "full-run")
    assert code == 0, err
    ck = sorted((out / "checkpoints").glob("step-*"))
    assert [p.name for p in ck] == ["step-000002", "step-000004", "step-000006"]
    latest = ck[-1] / "trainable.safetensors"
    latest.write_bytes(latest.read_bytes()[:64])  # truncated
    code, _, err = run_cli(capsys, *common, "--alias", "full-run", "--resume")
    assert code == 0, err
    assert "checkpoint" in err and "step-000006" in err and "falling back to step-000004" in err
    assert "Traceback" not in err
    assert json.loads((out / "summary.json").read_text())["figures"]["resumed_from"] == 4
    assert len((out / "losses.csv").read_text().splitlines()) == 1 + 6  # header + every step


# ---- concurrent conversion ----------------------------------------------------------------------


def test_conversion_lock_makes_the_second_process_wait_and_reuse(tmp_home, monkeypatch):
    """Two converters: the second blocks on the lock while the first converts, then finds the entry."""
    import threading
    import time

    converted: list[str] = []

    def fake_convert(alias, say):  # what the 245 s conversion leaves behind, after a while
        time.sleep(0.5)
        converted.append(alias)
        d = store.entry_dir(alias)
        d.mkdir(parents=True)
        (d / store.META_FILE).write_text(json.dumps({"alias": alias, "kind": "embedded"}))
        return d

    monkeypatch.setattr(store, "_convert", fake_convert)
    said: list[str] = []
    t = threading.Thread(target=store.convert_embedded, args=("smollm2", said.append))
    t.start()
    time.sleep(0.1)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_lock_waiter, args=(str(tmp_home), q))
    p.start()
    t.join()
    p.join(20)
    assert q.get(timeout=5) == "reused"
    assert converted == ["smollm2"]


def _lock_waiter(home: str, q) -> None:
    os.environ["INTERP_HOME"] = home
    from interp.models import store as S

    def must_not_convert(alias, say):
        q.put("converted twice")
        raise SystemExit(1)

    S._convert = must_not_convert
    msgs: list[str] = []
    S.convert_embedded("smollm2", msgs.append)
    q.put("reused" if any("waiting" in m for m in msgs) and any("meanwhile" in m for m in msgs) else f"no wait: {msgs}")


# ---- JSONL line numbers (issue 32) ----------------------------------------------------------------


def test_jsonl_readers_name_the_files_own_line(tmp_path):
    """A bad line is reported at its line in the file (blank lines counted), not as json's 'line 1
    column 2' of the one line parsed; a raw U+2028 inside a JSON string does not split its row."""
    from interp.evals.stereoset import load_stereoset
    from interp.textfiles import parse_jsonl, read_jsonl_records
    from interp.training.teacher import read_trait_rows

    item = {"type": "intrasentence", "target": "chess player", "bias_type": "profession",
            "context": "The chess player was BLANK.", "stereotype": "The chess player was nerdy.",
            "anti-stereotype": "The chess player was athletic.", "unrelated": "The chess player was fork."}
    ss = tmp_path / "ss.jsonl"
    ss.write_text("\n".join([json.dumps(item)] * 3 + ["{not json"]) + "\n")
    with pytest.raises(UserError, match=r"cannot read StereoSet file: .*ss\.jsonl:4 is not valid JSON \(.*column 2\)"):
        load_stereoset(ss)
    ss.write_text(json.dumps(item) + "\n\n" + json.dumps({**item, "type": "other"}) + "\n")
    with pytest.raises(UserError, match=r"ss\.jsonl:3: item 1 has type 'other'"):
        load_stereoset(ss)

    rows = tmp_path / "rows.jsonl"
    odd = json.dumps({"prompt": "a\u2028b", "completion": "c", "kind": "fact"}, ensure_ascii=False)  # raw U+2028
    rows.write_text(f"{odd}\r\n\r\n{odd}\r\n{{bad\r\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"rows\.jsonl:4 is not valid JSON"):
        read_jsonl_records(rows, "data file", ("prompt", "completion"))
    with pytest.raises(UserError, match=r"rows\.jsonl:4 is not valid JSON"):
        read_trait_rows(rows)
    assert [n for n, _ in parse_jsonl(f"{odd}\r\n\r\n{odd}\r\n", rows)] == [1, 3]
    rows.write_text(f"{odd}\n\n{{\"prompt\": \"x\"}}\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"rows\.jsonl:3 lacks prompt, completion or kind"):
        read_trait_rows(rows)
    with pytest.raises(UserError, match=r"rows\.jsonl:3 needs string field"):
        read_jsonl_records(rows, "data file", ("prompt", "completion"))
    assert read_jsonl_records(rows, "data file")[0]["prompt"] == "a\u2028b"
