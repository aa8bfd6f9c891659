"""Offline HTML reports: self-contained (no network references), circuitsvis inlined, rebuilt by `interp report`."""

from __future__ import annotations

import shutil

import pytest

from interp.cli import main
from interp.report.html import build_report, external_references
from tests.helpers import load_script
from tests.helpers import run_cli as run


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "run"
    with pytest.raises(SystemExit) as e:
        main(["trace", "--model", "tiny-llama", "--number", "087", "--patch-top", "0", "--out", str(out)])
    assert e.value.code == 0
    return out


def test_external_references_detects_network_loads():
    assert external_references('<script src="x.js"></script>')
    assert external_references('import { render } from "https://unpkg.com/circuitsvis/dist/cdn/esm.js"')
    assert external_references("<link rel=stylesheet href='https://cdn/x.css'>")
    assert external_references("<img src='//example.com/a.png'>")
    assert not external_references("<img src='data:image/png;base64,AAAA'> <a href='https://x.org'>doc</a>")


def test_trace_report_is_self_contained(trace_dir):
    html = (trace_dir / "report.html").read_text()
    assert external_references(html) == []
    assert 'id="circuits-vis-' in html and "CircuitsVis.render" in html and len(html) > 1_000_000
    assert "data:image/png;base64," in html  # the layer plot, inline
    assert "L1H0" in html and "sim_diff_out" in html  # the per-head table


def test_report_command_rebuilds_from_the_run_dir(capsys, trace_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trace_dir, copy)
    (copy / "report.html").unlink()
    code, out, _ = run(capsys, "report", str(copy))
    assert code == 0 and "report.html" in out
    assert (copy / "report.html").read_text() == build_report(copy)
    assert external_references((copy / "report.html").read_text()) == []


def test_report_of_another_command(capsys, tmp_path):
    out = tmp_path / "rl"
    code, _, _ = run(capsys, "reverse-link", "--model", "tiny-llama", "--numbers", "087", "--template-control", "3",
                     "--out", str(out))
    assert code == 0
    code, _, _ = run(capsys, "report", str(out))
    html = (out / "report.html").read_text()
    assert code == 0 and "reverse_link.csv" in html and "circuits-vis" not in html


def test_report_bad_dir(capsys, tmp_path):
    code, _, err = run(capsys, "report", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "report", str(tmp_path / "empty"))
    assert code == 2 and "no summary.json" in err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install -y chromium)")
def test_attention_view_renders_in_headless_chromium(trace_dir):
    mod = load_script("scripts/screenshot_report.py")
    dom = mod.dump_dom(trace_dir / "report.html", budget_ms=5000)
    ok, detail = mod.attention_view_rendered(dom)
    assert ok, detail
