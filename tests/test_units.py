"""experiments/units.py: the timing log keeps the first time of a unit and adds reruns beside it."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from units import record_time  # noqa: E402


def test_record_time_keeps_first_time_and_adds_rerun(tmp_path: Path) -> None:
    record_time(tmp_path, "train a", 10.04)
    record_time(tmp_path, "train b", 3.0)
    record_time(tmp_path, "train a", 20.0)
    data = json.loads((tmp_path / "timings.json").read_text())
    assert data["train a"] == 10.0 and data["train b"] == 3.0
    reruns = [k for k in data if k.startswith("train a (rerun ")]
    assert len(reruns) == 1 and data[reruns[0]] == 20.0
