"""experiments/families/compare_organisms.py: two organism reports side by side, arm by arm; a recipe one
family lacks is empty there, teachers are matched by trait and build, not by alias."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "families" / "compare_organisms.py"


def report(folder: Path, prefix: str, arms: list[tuple[str, str, int, float]]) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame([{"arm": a, "channel": c, "examples": n, "epochs": 1.0, "n_seeds": 3, "mean": m, "sd": 0.1,
                   "lo": m - 0.2, "hi": m + 0.2, "p": 0.01, "mde_80": 0.3} for a, c, n, m in arms]).to_csv(
        folder / "arms.csv", index=False)
    pd.DataFrame({"teacher": [f"{prefix}-owl", f"{prefix}-dog", f"{prefix}-owl-lora-ab12", f"{prefix}-dog-lora-cd34"],
                  "margin_shift": [3.0, -2.0, 7.0, -7.0], "lo": 0.0, "hi": 0.0, "p": 1e-9, "dlogp_owl": 0.0,
                  "dlogp_dog": 0.0}).to_csv(folder / "teachers.csv", index=False)


def test_recipes_and_teachers_side_by_side(tmp_path):
    report(tmp_path / "a", "smollm2", [("kd-unbiased-data-lora", "c", 256, 1.7), ("sft", "a", 256, 0.03)])
    report(tmp_path / "b", "organism-qwen2.5-coder-0.5b-teacher", [("kd-unbiased-data-lora", "c", 256, 0.9),
                                                                   ("sft", "a", 1000, 0.2)])
    done = subprocess.run([sys.executable, str(SCRIPT), f"small={tmp_path / 'a'}", f"qwen={tmp_path / 'b'}",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    arms = pd.read_csv(tmp_path / "out" / "organism_compare.csv")
    kd = arms[arms.arm == "kd-unbiased-data-lora"].iloc[0]
    assert (kd.mean_small, kd.mean_qwen) == (1.7, 0.9)
    sft = arms[arms.arm == "sft"].set_index("examples")
    assert sft.mean_small[256] == 0.03 and pd.isna(sft.mean_qwen[256]) and sft.mean_qwen[1000] == 0.2
    teachers = pd.read_csv(tmp_path / "out" / "teachers_compare.csv").set_index(["build", "trait"])
    assert teachers.loc[("lora", "owl")].margin_shift_small == 7.0 and teachers.loc[("prompt", "dog")].margin_shift_qwen == -2.0
    assert "MDE 0.30" in done.stdout and "| sft | a | 1000 | 1.0 | - |" in done.stdout
    assert "interim" not in done.stdout


def test_an_interim_report_is_named_as_such(tmp_path):
    report(tmp_path / "a", "smollm2", [("sft", "a", 256, 0.03)])
    report(tmp_path / "b", "qwen", [("sft", "a", 256, 0.2)])
    (tmp_path / "b" / "interim.json").write_text('{"jobs_not_done": ["eval-x", "eval-y"]}')
    done = subprocess.run([sys.executable, str(SCRIPT), f"small={tmp_path / 'a'}", f"qwen={tmp_path / 'b'}",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "qwen: interim report" in done.stdout and "2 jobs not done yet" in done.stdout
    assert "small: interim" not in done.stdout


def test_a_missing_report_is_refused(tmp_path):
    report(tmp_path / "a", "smollm2", [("sft", "a", 256, 0.03)])
    done = subprocess.run([sys.executable, str(SCRIPT), f"small={tmp_path / 'a'}", f"qwen={tmp_path / 'nope'}",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode != 0 and "nope/arms.csv" in done.stderr


def test_a_spec_names_its_report_and_labels_it_by_its_base_model(tmp_path):
    report(tmp_path / "b", "x", [("kd-unbiased-data-lora", "c", 256, 0.9)])
    done = subprocess.run([sys.executable, str(SCRIPT), str(REPO / "studies" / "organism" / "smollm2.yaml"),
                           f"other={tmp_path / 'b'}", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    arms = pd.read_csv(tmp_path / "out" / "organism_compare.csv").set_index(["arm", "examples"])
    assert arms.loc[("kd-unbiased-data-lora", 256)].mean_other == 0.9
    assert arms.loc[("kd-unbiased-data-lora", 1000)].mean_smollm2 > 3  # the committed organism's 1,000-example arm
