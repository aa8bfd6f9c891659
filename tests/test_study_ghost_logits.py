"""Kind `ghost_logits` (studies/ghost_logits/sweep.yaml): sweep.csv and sweep.png rebuilt byte for byte
from the committed sweep_per_seed.csv, the job graph (one run step per configuration)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from interp.errors import UserError
from interp.studies.graph import Graph
from interp.studies.kinds import ghost_logits as kind
from interp.studies.spec import Study, load_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "studies" / "ghost_logits" / "sweep.yaml"
RAW = ROOT / "reports" / "ghost_logits"


def planned(study: Study) -> Graph:
    """The study's graph. (`runner.plan_study` needs a model to name the Graph's base: with `models: {}`
    its `next(iter(spec.models.values()))` raises StopIteration, so the graph is built here directly.)"""
    g = Graph(study.spec.study, "none")
    assert study.kind.build(study, g) == "report"
    return g


def test_report_rebuilds_committed_tables_byte_for_byte(tmp_path: Path) -> None:
    study = load_study(SPEC)
    kind.report(RAW, tmp_path, study.recipe)
    for name in ("sweep.csv", "sweep.png"):
        assert (tmp_path / name).read_bytes() == (RAW / name).read_bytes(), name


def test_per_seed_table_names_every_config_parameter() -> None:
    per = pd.read_csv(RAW / "sweep_per_seed.csv")
    assert set(kind.CONFIG) <= set(per.columns)
    cfgs = per[list(kind.CONFIG)].drop_duplicates()
    assert len(cfgs) == len(kind.configs(load_study(SPEC).recipe))
    assert per.groupby(list(kind.CONFIG)).size().eq(20 * 4).all()  # 20 copies x (reference, teacher, 2 students)


def test_graph_has_one_run_per_committed_configuration() -> None:
    g = planned(load_study(SPEC))
    per = pd.read_csv(RAW / "sweep_per_seed.csv")
    runs = [j for j in g.jobs.values() if j.func.endswith(":run")]
    assert len(runs) == len(per[list(kind.CONFIG)].drop_duplicates()) == 7
    assert [j.name for j in g.jobs.values()][-2:] == ["collect", "report"]
    assert len(g.jobs) == len(runs) + 2
    assert not any(j.argv or j.model for j in g.jobs.values())


@pytest.mark.parametrize("old,new,key", [("  seed: 0\n", "  seed: 0\n  sed: 1\n", "recipe.sed"),
                                         ("models: {}\n", "models: {base: smollm2}\n", "models.base")])
def test_unknown_key_is_refused(tmp_path: Path, old: str, new: str, key: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text().replace(old, new))
    with pytest.raises(UserError, match=key):
        load_study(spec)


def test_unknown_grid_factor_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text().replace("    ghosts: [1, 3, 10]\n", "    ghost: [1, 3, 10]\n"))
    with pytest.raises(UserError, match="ghost"):
        load_study(spec)


def _hashes(text: str, tmp_path: Path) -> dict[str, str]:
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    return {name: j.hash for name, j in planned(load_study(spec)).jobs.items()}


@pytest.mark.parametrize("old,new,changed", [
    ("    noise: [1000, 3000, 10000]\n", "    noise: [1000, 2000, 10000]\n", None),  # one run renamed
    ("  interval: t\n", "  interval: logit\n", {"report"}),
    ("  epochs_teacher: 20\n", "  epochs_teacher: 10\n", "all"),
])
def test_one_parameter_changes_exactly_its_jobs(tmp_path: Path, old: str, new: str, changed: object) -> None:
    a = _hashes(SPEC.read_text(), tmp_path)
    b = _hashes(SPEC.read_text().replace(old, new), tmp_path)
    if changed is None:  # run-noise=3000 replaced by run-noise=2000; the other runs keep their hashes
        assert set(a) ^ set(b) == {"run-noise=3000", "run-noise=2000"}
        assert {k for k in set(a) & set(b) if a[k] != b[k]} == {"collect", "report"}
    elif changed == "all":
        assert a.keys() == b.keys() and all(a[k] != b[k] for k in a)
    else:
        assert a.keys() == b.keys() and {k for k in a if a[k] != b[k]} == changed
