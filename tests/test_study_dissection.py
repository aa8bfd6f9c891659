"""Kind `dissection` (studies/dissection/smollm2.yaml): the committed report rebuilt byte for byte from
the committed raw tables, the steps' table code against the committed tables, the job graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.kinds import dissection as kind
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "studies" / "dissection" / "smollm2.yaml"
RAW = ROOT / "reports" / "organism" / "dissection"
REPORT_FILES = ("tables.md", "patching_layers.png", "dla_layers.png", "weights_layers.png")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake store entries for the spec's models made by other studies (S, C, the teacher)."""
    home = tmp_path / "home"
    monkeypatch.setenv("INTERP_HOME", str(home))
    pair = json.loads((RAW / "pair.json").read_text())
    for alias in (pair["S"], pair["C"], "smollm2-owl-lora"):
        (home / "models" / alias).mkdir(parents=True)
        (home / "models" / alias / "interp_model.json").write_text(json.dumps({"alias": alias, "kind": "finetuned"}))
    return home


@pytest.mark.parametrize("sub", ["", "teachers"])
def test_report_rebuilds_committed_tables_byte_for_byte(tmp_path: Path, sub: str) -> None:
    study = load_study(SPEC)
    kind.report(RAW / sub, tmp_path, study.recipe)
    for name in REPORT_FILES:
        if (RAW / sub / name).exists():
            assert (tmp_path / name).read_bytes() == (RAW / sub / name).read_bytes(), f"{sub}/{name}"


def test_spec_names_the_committed_pair() -> None:
    pair = json.loads((RAW / "pair.json").read_text())
    models = json.loads((ROOT / "reports" / "organism" / "models.json").read_text())
    study = load_study(SPEC)
    assert (study.model("student"), study.model("control"), study.model("base")) == (pair["S"], pair["C"], pair["base"])
    assert next(m for m in models if m["alias"] == pair["S"])["control"] == pair["C"]


def test_recovered_tables_match_the_committed_ones() -> None:
    layers = pd.concat([kind.recovered(RAW / f"patching_layers_{d}.csv") for d in kind.DIRECTIONS])
    assert layers.to_csv(index=False, float_format="%.5g") == (RAW / "patching_layers.csv").read_text()
    heads = kind.recovered(RAW / "patching_heads_S_into_C.csv")
    assert heads.to_csv(index=False, float_format="%.5g") == (RAW / "patching_heads.csv").read_text()
    top = kind.top_attention_layers(layers, 3)
    assert sorted(top) == sorted(set(heads.site.str.extract(r"L(\d+)H")[0].astype(int)))


def test_probe_steps_rebuild_the_committed_probe_tables(tmp_path: Path) -> None:
    """CLI-shaped outputs (numbers.csv, reverse_link.csv + summary.json, trace.csv + summary.json) made
    from the committed tables go through probe_numbers, trace_numbers and probes back to them."""
    summary = json.loads((RAW / "probe_summary.json").read_text())
    numbers = tmp_path / "numbers"
    numbers.mkdir()
    shutil.copyfile(RAW / "probe_teacher_numbers.csv", numbers / "numbers.csv")
    pick = tmp_path / "pick"
    pick.mkdir()
    kind.probe_numbers(pick, {"n": 10, "digits": 3, "seed": 0}, str(numbers / "numbers.csv"))
    assert json.loads((pick / "groups.json").read_text()) == {"increased": summary["increased"], "random": summary["random"]}
    rl = pd.read_csv(RAW / "probe_reverse_link.csv", dtype={"number": str})
    links = {}
    for key in ("S", "C"):
        links[key] = tmp_path / f"link-{key}"
        links[key].mkdir()
        rl[rl.model == key].drop(columns=["model", "group"]).to_csv(links[key] / "reverse_link.csv", index=False)
        (links[key] / "summary.json").write_text(json.dumps({"figures": summary["reverse_link"][key]}))
    top = tmp_path / "top"
    top.mkdir()
    kind.trace_numbers(top, {"n": 5}, str(pick / "groups.json"), str(links["S"]))
    traced = [(top / f"trace_{k}.txt").read_text().strip() for k in range(5)]
    assert traced == summary["traced"]
    layers = pd.read_csv(RAW / "probe_trace_layers.csv", dtype={"number": str})
    spikes = pd.read_csv(RAW / "probe_trace_spikes.csv", dtype={"number": str})
    traces = {}
    for k, n in enumerate(traced):
        run = tmp_path / f"trace-{k}"
        run.mkdir()
        layers[layers.number == n].to_csv(run / "trace.csv", index=False)
        r = spikes[spikes.number == n].iloc[0]
        fig = {"spike_layer_mean": int(r.spike_layer), "top_head": r.top_head,
               "sim_diff_at_spike_mean": float(r.sim_diff_at_spike), "dla": {"top_heads_clean": r.top_dla_heads.split(",")}}
        (run / "summary.json").write_text(json.dumps({"inputs": {"numbers": [n]}, "figures": fig}))
        traces[f"trace_{k}"] = str(run)
    out = tmp_path / "probes"
    out.mkdir()
    kind.probes(out, {}, str(numbers), str(pick), str(links["S"]), str(links["C"]), **traces)
    for name in ("probe_teacher_numbers.csv", "probe_reverse_link.csv", "probe_trace_layers.csv",
                 "probe_trace_spikes.csv", "probe_summary.json"):
        assert (out / name).read_bytes() == (RAW / name).read_bytes(), name


def test_plan_covers_every_committed_stage(store: Path) -> None:
    planned = plan_study(load_study(SPEC), check_argv)
    jobs = planned.graph.jobs.values()
    commands = [j.argv[0] for j in jobs if j.argv]
    steps = [j.func.split(":")[1] for j in jobs if j.func]
    summary = json.loads((RAW / "probe_summary.json").read_text())
    models = set(pd.read_csv(RAW / "probe_reverse_link.csv").model)
    assert commands.count("trace") == len(summary["traced"])
    assert commands.count("reverse-link") == len(models)
    assert commands.count("numbers") == 1
    assert steps.count("patching") == len(list(RAW.glob("patching_layers_*.csv")))
    for stage in ("heads", "attention", "dla", "weights", "swap", "prune", "probes", "collect", "report_step"):
        assert steps.count(stage) == 1, stage
    timed = set(json.loads((RAW / "timings.json").read_text()))
    collect = planned.graph.jobs["collect"]
    assert set(collect.params["stage_of"].values()) == timed
    assert planned.report_job == "report"
    for j in jobs:
        if j.argv:
            assert j.argv[-4:] == ["--device", "cpu", "--dtype", "fp32"]


def test_unknown_recipe_key_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text().replace("  keep: 0.6\n", "  keep: 0.6\n  kepp: 0.5\n"))
    with pytest.raises(UserError, match="recipe.kepp"):
        load_study(spec)


def _hashes(spec: Path) -> dict[str, str]:
    return {name: j.hash for name, j in plan_study(load_study(spec), check_argv).graph.jobs.items()}


@pytest.mark.parametrize("old,new,changed", [
    ("  keep: 0.6\n", "  keep: 0.8\n", {"prune", "collect", "report"}),
    ("  top_layers: 3\n", "  top_layers: 2\n", {"heads", "attention", "collect", "report"}),
    ("  template_control: 100\n", "  template_control: 50\n",
     {"reverse-link-student", "reverse-link-control", "trace-numbers", *(f"trace-{k}" for k in range(5)), "probes",
      "collect", "report"}),
])
def test_one_parameter_changes_exactly_its_jobs(store: Path, tmp_path: Path, old: str, new: str, changed: set[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.read_text().replace(old, new))
    a, b = _hashes(SPEC), _hashes(spec)
    assert a.keys() == b.keys()
    assert {k for k in a if a[k] != b[k]} == changed
