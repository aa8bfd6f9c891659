"""The seed-probes study kind (issue 35 item 5): the graph of the committed specs, the whole graph run on a
tiny model, the committed report rebuilt from its raw tables, and each verdict rule on hand-made tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from interp.cli.study_cmd import check_argv
from interp.studies.kinds.seed_probes import Recipe, report, verdicts
from interp.studies.runner import plan_study, run_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "studies" / "seed_probes"
RAW = REPO / "reports" / "scaling" / "seed_probes" / "smollm2"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def plan(path: Path):
    return plan_study(load_study(path), check_argv)


@pytest.mark.parametrize("spec", ["smollm2.yaml", "qwen2.5-coder-1.5b.yaml", "tiny.yaml"])
def test_specs_plan_every_probe(spec):
    jobs = plan(SPECS / spec).graph.jobs
    n = load_study(SPECS / spec).recipe.trace_numbers
    assert set(jobs) == {"pick-numbers", "reverse-link", "numbers-vocab", "numbers-ar", "digit-length", "trace-numbers",
                         "prune", "collect", "report", *(f"trace-{k}" for k in range(n))}


def test_changing_keep_changes_only_the_pruning(tmp_path):
    before = plan(SPECS / "smollm2.yaml").graph.jobs
    spec = yaml.safe_load((SPECS / "smollm2.yaml").read_text())
    spec["recipe"] = {"keep": 0.5}
    p = SPECS / f".test-{tmp_path.name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    try:
        after = plan(p).graph.jobs
    finally:
        p.unlink()
    assert {n for n in before if before[n].hash != after[n].hash} == {"prune", "collect", "report"}


def test_the_whole_graph_on_a_tiny_model(tmp_path):
    """Every job runs (real commands and steps) and the report holds a verdict per claim; a rerun has no work."""
    planned = plan(SPECS / "tiny.yaml")
    run = run_study(planned, cores=1, study_dir=tmp_path / "study")
    assert run.returncode == 0, run.failed
    out = next((tmp_path / "study" / "jobs").glob("report-*")) / "out"
    v = pd.read_csv(out / "verdicts.csv")
    assert v.claim.tolist() == ["C1", "C2", "C3", "C4"] and v.verdict.notna().all()
    for f in ("tables.md", "reverse_link.csv", "categories_reverse_link.csv", "digit_length_numbers.csv",
              "trace_spikes.csv", "prune_per_question.csv", "numbers_vocab.csv"):
        assert (out / f).stat().st_size > 0, f
    assert len(pd.read_csv(out / "trace_spikes.csv")) == 2
    again = run_study(planned, cores=1, dry_run=True, study_dir=tmp_path / "study")
    assert again.returncode == 0 and again.jobs_to_run == 0


def test_committed_report_rebuilds_from_its_raw_tables(tmp_path):
    study = load_study(SPECS / "smollm2.yaml")
    assert study.report_dir == RAW
    report(RAW, tmp_path, study.recipe)
    for f in ("verdicts.csv", "link_summary.csv", "tables.md"):
        assert (tmp_path / f).read_bytes() == (RAW / f).read_bytes(), f


def raw_tables(tmp_path: Path, *, inc_shift: float, one_digit: float, top_heads: list[str], kept: float,
               full_lift: float = 2.0, pruned_ppl: float = 30.0) -> Path:
    """A raw folder made by hand: every table the report reads, with the effects named."""
    rng = np.random.default_rng(0)
    shutil.copytree(RAW, tmp_path / "raw")
    raw = tmp_path / "raw"
    cats = pd.DataFrame({"number": [f"{i:03d}" for i in range(30)],
                         "category": ["increased"] * 10 + ["decreased"] * 10 + ["unchanged"] * 10,
                         "specificity_vs_template": np.r_[inc_shift + rng.normal(0, 0.05, 10), rng.normal(0, 0.05, 20)]})
    cats.to_csv(raw / "categories_reverse_link.csv", index=False)
    lengths = np.repeat([1, 2, 3], 10)
    base = rng.normal(3.0, 0.05, 30)
    dl = pd.DataFrame({"length": lengths, "number": [str(i) for i in range(30)],
                       "bias_ratio": np.where(lengths == 1, base + one_digit, base),
                       "bias_ratio_vs_template": np.where(lengths == 1, 1 + one_digit / 3, 1.0) + rng.normal(0, 0.01, 30)})
    dl.to_csv(raw / "digit_length_numbers.csv", index=False)
    pd.DataFrame({"number": [f"{i}" for i in range(len(top_heads))], "spike_layer": 0, "top_head": top_heads,
                  "sim_diff_at_spike": 0.1, "top_dla_heads": ""}).to_csv(raw / "trace_spikes.csv", index=False)
    q = np.arange(50)
    none = rng.normal(-8, 0.3, 50)
    lift = full_lift + rng.normal(0, 0.1, 50)
    rows = [pd.DataFrame({"condition": c, "question": q, "logp_trait": none + f * lift, "logp_none": none})
            for c, f in (("full", 1.0), ("entropy", kept), ("random_s0", 1.0))]
    pd.concat(rows).to_csv(raw / "prune_per_question.csv", index=False)
    pd.DataFrame({"condition": ["full", "entropy", "random_s0"], "n_pruned": [0, 108, 108], "n_heads": 270, "keep": 0.6,
                  "perplexity": [27.0, pruned_ppl, 100.0]}).to_csv(raw / "prune_conditions.csv", index=False)
    return raw


def test_verdicts_when_the_seed_study_is_right(tmp_path):
    raw = raw_tables(tmp_path, inc_shift=0.5, one_digit=1.0, top_heads=["L0H9"] * 4 + ["L3H1"], kept=0.9)
    v = verdicts(raw, Recipe()).set_index("claim").verdict
    assert v["C1"].startswith("contradicted")  # the increased numbers are specially entangled
    assert v["C2"] == "supported"
    assert v["C3"] == "a re-used head, of the trait; named heads L0H9 present"
    assert v["C4"] == "supported"


def test_verdicts_when_it_is_not(tmp_path):
    raw = raw_tables(tmp_path, inc_shift=0.0, one_digit=0.0, top_heads=["L1H0", "L2H0", "L3H0", "L4H0", "L5H0"],
                     kept=0.1, pruned_ppl=5000.0)
    v = verdicts(raw, Recipe()).set_index("claim").verdict
    assert v["C1"] == "supported (no special entanglement)"
    assert v["C2"].startswith("not supported")
    assert v["C3"] == "contradicted (no re-used head); named heads absent"
    assert v["C4"] == "contradicted, and not a fair test (pruning multiplies the perplexity by 185)"
    raw = raw_tables(tmp_path / "b", inc_shift=0.0, one_digit=0.0, top_heads=["L1H0"], kept=0.9, full_lift=-0.5)
    assert verdicts(raw, Recipe()).set_index("claim").verdict["C4"].startswith("not tested")


def test_the_committed_verdicts_name_their_numbers():
    v = pd.read_csv(RAW / "verdicts.csv")
    assert json.loads((RAW / "model.json").read_text()) == "smollm2"
    assert v.number.str.len().min() > 40 and v.job.notna().all()
