"""experiments/families/per_question.py: issue 37's per-question table is the union of its studies' report
rows with the columns the issue names; a report collected before family / objective were recorded is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "families" / "per_question.py"


def report(folder: Path, family: str, n: int, recorded: bool = True) -> None:
    folder.mkdir(parents=True)
    t = pd.DataFrame({"alias": [f"{family}-s"] * n, "teacher": "owl", "channel": "c", "arm": "shd-b1", "seed": 0,
                      "examples": 256, "epochs": 1.0, "steps": 16, "lr": 5e-5, "optimizer": "adamw", "batch_size": 16,
                      "family": family, "objective": "shd", "beta": 1.0, "tau": None, "question": range(n),
                      "logp_owl": -1.0, "logp_other": -2.0})
    (t if recorded else t.drop(columns=["family", "objective", "beta", "tau"])).to_csv(folder / "per_question.csv", index=False)


def run(*args: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_union_of_the_study_reports(tmp_path):
    report(tmp_path / "c8", "gemma3", 3)
    report(tmp_path / "organism-qwen", "qwen2", 2)
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    u = pd.read_csv(tmp_path / "per_question.csv")
    assert list(u.columns[:3]) == ["study", "family", "alias"]
    assert {"teacher", "channel", "beta", "seed", "question", "logp_owl", "logp_other"} <= set(u.columns)
    assert u.groupby("study").family.first().to_dict() == {"c8": "gemma3", "organism-qwen": "qwen2"}
    assert len(u) == 5


def test_a_report_without_the_recorded_columns_is_refused(tmp_path):
    report(tmp_path / "old", "llama", 2, recorded=False)
    done = run(tmp_path)
    assert done.returncode != 0 and "family" in done.stderr and not (tmp_path / "per_question.csv").exists()
