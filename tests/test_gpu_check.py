"""scripts/gpu_check.py, the prepared accelerator check, runs its steps here on the CPU with shrunk configs of
the seeds' models (same families and head ratios), so the script a GPU machine runs is known to work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_every_step_on_shrunk_configs(tmp_path):
    env = {**os.environ, "INTERP_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--dtype", "fp32",
                        "--shrink", "--out", str(tmp_path / "out")], env=env, cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    steps = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [s["name"].split()[0] for s in steps] == ["trace", "trace", "prune", "finetune", "shd", "qlora"]
    assert all(s["code"] == 0 and s["seconds"] > 0 for s in steps)
    families = {json.loads((tmp_path / "out" / "models" / n / "config.json").read_text())["model_type"]
                for n in ("llama-3.2-1b", "gpt2-medium", "gemma-2b", "mistral-7b")}
    assert families == {"llama", "gpt2", "gemma", "mistral"}
