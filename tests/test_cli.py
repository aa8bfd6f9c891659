"""CLI contract: results written on success; one clear line, exit 2, nothing written on bad input."""

import json

import pandas as pd
import pytest

from tests.helpers import run_cli as run


def test_reverse_link_writes_results(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087,747",
                          "--template-control", "5", "--out", str(out))
    assert code == 0
    df = pd.read_csv(out / "reverse_link.csv", dtype={"number": str})
    assert list(df.number) == ["087", "747"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "reverse-link" and summary["model"]["family"] == "llama" and summary["model"]["model_type"] == "llama"
    assert summary["figures"]["bias_ratio_mean"]["estimate"] == pytest.approx(df.bias_ratio.mean())
    assert "mean bias_ratio" in stdout


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model", "--numbers", "087"], "unknown model 'no-such-model'"),
    (["--model", "tiny-llama", "--numbers", "087", "--bias", "zebrafish"], "not a single token"),
    (["--model", "tiny-llama", "--numbers", "٠٨٧"], "not a string of ASCII digits"),
    (["--model", "tiny-llama", "--numbers", "12a"], "not a string of ASCII digits"),
    (["--model", "tiny-llama", "--numbers", "087", "--digits", "3"], "give only one of"),
    (["--model", "tiny-llama", "--numbers-file", "/nonexistent/n.txt"], "does not exist"),
])
def test_bad_input_one_line_exit_2_nothing_written(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "reverse-link", *args, "--out", str(out))
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_non_empty_out_needs_force(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087", "--out", str(out))
    assert code == 2 and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    code, _, _ = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087", "--template-control", "3",
                     "--out", str(out), "--force")
    assert code == 0 and (out / "reverse_link.csv").exists() and (out / "keep.txt").read_text() == "precious"


def test_force_replaces_an_earlier_run_without_stale_files(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, _ = run(capsys, "trace", "--model", "tiny-llama", "--number", "087", "--out", str(out))
    assert code == 0 and (out / "trace.csv").exists() and (out / "report.html").exists()
    code, _, _ = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087", "--template-control", "3",
                     "--out", str(out), "--force")
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert "reverse_link.csv" in names and "trace.csv" not in names and "report.html" not in names
    assert __import__("json").loads((out / "summary.json").read_text())["command"] == "reverse-link"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_failed_run_publishes_nothing(capsys, tmp_path, monkeypatch):
    """A command that fails after writing some outputs leaves --out as it was (nothing staged stays)."""
    import interp.training.saving as sv

    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "p%d", "completion": "%d"}\n' % (i, i) for i in range(4)))
    out = tmp_path / "ft"

    def taken(*a, **k):
        from interp.errors import UserError
        raise UserError("alias 'x' was taken meanwhile")
    monkeypatch.setattr(sv, "save_finetuned", taken)
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    code, _, err = run(capsys, "finetune", "--model", "tiny-llama", "--data", str(data), "--alias", "x",
                       "--steps", "1", "--batch-size", "2", "--out", str(out))
    assert code == 2 and "taken meanwhile" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_models_lists_aliases(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for alias in ("smollm2", "gemma3-270m", "tiny-llama"):
        assert alias in out


def test_ctrl_c_leaves_out_as_it_was(capsys, tmp_path, monkeypatch):
    """Ctrl-C after checkpoints were written into --out: exit 130, one line, the checkpoints this run
    wrote are removed and nothing is published (issue 32: `distill --checkpoint-every` left checkpoints/)."""
    import interp.training.saving as sv

    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "p%d", "completion": "%d"}\n' % (i, i) for i in range(4)))
    out = tmp_path / "ft"

    def ctrl_c(*a, **k):
        assert (out / "checkpoints").is_dir()  # the run did write into OUT before the interrupt
        raise KeyboardInterrupt
    monkeypatch.setattr(sv, "save_finetuned", ctrl_c)
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    code, _, err = run(capsys, "finetune", "--model", "tiny-llama", "--data", str(data), "--alias", "x",
                       "--steps", "2", "--batch-size", "2", "--checkpoint-every", "1", "--out", str(out))
    lines = err.strip().splitlines()  # progress lines, then the one line of the interrupt
    assert code == 130 and lines[-1].startswith("interrupted:") and "Traceback" not in err
    assert [ln for ln in lines if "interrupted" in ln or "error" in ln] == lines[-1:]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ctrl_c_keeps_what_was_in_out_before(capsys, tmp_path, monkeypatch):
    """A --resume run interrupted: the earlier run's checkpoints stay, only this run's new ones go."""
    import interp.training.saving as sv

    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "p%d", "completion": "%d"}\n' % (i, i) for i in range(4)))
    out = tmp_path / "ft"
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    common = ["finetune", "--model", "tiny-llama", "--data", str(data), "--alias", "x", "--batch-size", "2",
              "--checkpoint-every", "1", "--out", str(out)]
    code, _, err = run(capsys, *common, "--steps", "2")
    assert code == 0, err
    import shutil

    shutil.rmtree(out / "checkpoints" / "step-000002")  # as if killed after step 1's checkpoint
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))

    def ctrl_c(*a, **k):
        assert (out / "checkpoints" / "step-000002").is_dir()  # the resumed run wrote a new checkpoint
        raise KeyboardInterrupt
    monkeypatch.setattr(sv, "save_finetuned", ctrl_c)
    code, _, err = run(capsys, *common, "--steps", "2", "--resume", "--force")
    assert code == 130, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_get_the_umask_permissions(capsys, tmp_path, umask, mode):
    import os

    out = tmp_path / "run"
    old = os.umask(umask)
    try:
        code, _, err = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087", "--template-control", "0",
                           "--out", str(out))
    finally:
        os.umask(old)
    assert code == 0, err
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {oct(mode)}
