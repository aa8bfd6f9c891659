"""Self-contained offline HTML reports of run directories.

    html = build_report(Path("runs/trace/087"))       # str: one file, no network needed
    write_report(Path("runs/trace/087"))              # -> runs/trace/087/report.html

A report shows the run's summary.json (inputs, model, figures) and its CSV tables; a trace run
(trace.csv) also gets the layer plot (matplotlib, inline base64 PNG), the per-head table, and the
circuitsvis attention patterns of attention.json. circuitsvis is embedded through
`RenderedHTML.local_src`, which inlines its JavaScript bundle; `str(rendered)` would import it from
a CDN, and the Jupyter path probes the network. `external_references(html)` lists anything that
would load from the network (a test asserts it is empty).
"""

from __future__ import annotations

import base64
import html as _html
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from interp.errors import UserError
from interp.report.runs import RunDir
from interp.textfiles import read_csv_file, read_json_file

MAX_ROWS = 60  # rows shown per generic CSV table
_EXTERNAL = [
    re.compile(r"<script[^>]*\bsrc\s*=", re.I),
    re.compile(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"\bimport\s*(?:[\w{}*,\s]+\s*from\s*)?[\"'](https?:)?//", re.I),
    re.compile(r"\bimport\(\s*[\"'](https?:)?//", re.I),
    re.compile(r"<(img|iframe|source|embed)[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.I),
    re.compile(r"url\(\s*[\"']?(https?:)?//", re.I),
]


def external_references(html: str) -> list[str]:
    """Snippets of `html` that would fetch from the network: script src, remote link/img/iframe,
    ES-module imports of URLs, CSS url(//...)."""
    found = []
    for pat in _EXTERNAL:
        found += [html[max(0, m.start() - 20): m.end() + 40] for m in pat.finditer(html)]
    return found


def _table(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> str:
    note = f"<p class='note'>first {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""
    return df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t") + note


def layer_plot_png(mean_layers: pd.DataFrame, layers: pd.DataFrame | None, bias: str, control: str, spike: int | None) -> str:
    """Base64 PNG of cos_bias, cos_control and sim_diff per layer (means over numbers; thin lines per number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    a1.plot(mean_layers.layer, mean_layers.cos_bias, marker="o", ms=3, label=f"cos(number, {bias})")
    a1.plot(mean_layers.layer, mean_layers.cos_control, marker="o", ms=3, label=f"cos(number, {control})")
    a1.set_xlabel("layer"); a1.set_ylabel("cosine (resid_post, last position)"); a1.legend(fontsize=8)
    if layers is not None and layers.number.nunique() > 1:
        for _, g in list(layers.groupby("number"))[:200]:
            a2.plot(g.layer, g.sim_diff, color="0.8", lw=0.5)
    a2.plot(mean_layers.layer, mean_layers.sim_diff, color="C3", marker="o", ms=3, label="sim_diff (mean)")
    if spike is not None:
        a2.axvline(spike, color="C3", ls="--", lw=1, label=f"spike layer {spike}")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xlabel("layer"); a2.set_ylabel(f"cos({bias}) - cos({control})"); a2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def attention_html(att: dict[str, Any]) -> str:
    """circuitsvis attention heads view of `att` ({tokens, heads, patterns}), inlined (no CDN)."""
    import circuitsvis as cv
    import numpy as np

    rendered = cv.attention.attention_heads(attention=np.asarray(att["patterns"], dtype=np.float32),
                                            tokens=list(att["tokens"]), attention_head_names=list(att["heads"]))
    src = rendered.local_src
    # circuitsvis writes its container as `<div .../>`, which HTML parses as an open tag: close it.
    src = re.sub(r"^(\s*<div[^>]*?)\s*/>", r"\1></div>", src, count=1)
    # its container id is random per call: make it stable so a rebuilt report is byte-identical
    src = re.sub(r"circuits-vis-[0-9a-f]{8}-[0-9a-f]{4}", "circuits-vis-attention", src)
    return f"<div class='cv'>{src}</div>"


def _section(title: str, body: str) -> str:
    return f"<h2>{_html.escape(title)}</h2>\n{body}\n"


def build_report(run_dir: Path) -> str:
    """The HTML report of any run directory (needs summary.json)."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no summary.json)")
    summary = read_json_file(summary_path, "summary.json")
    if not isinstance(summary, dict):
        raise UserError(f"{summary_path} does not hold a run summary (a JSON object)")
    figures = summary.get("figures") or {}
    parts: list[str] = []
    model = summary.get("model") or {}
    head = (f"<p>command <b>{_html.escape(str(summary.get('command')))}</b>, created {summary.get('created')}, "
            f"{summary.get('elapsed_s')} s; model <b>{_html.escape(str(model.get('name')))}</b> "
            f"({_html.escape(str(model.get('family')))}, {model.get('n_layers')} layers x {model.get('n_heads')} heads, "
            f"sha256 {_html.escape(str(model.get('sha256'))[:23])}...)</p>")
    parts.append(head)

    trace_csv = run_dir / "trace.csv"
    if trace_csv.is_file():
        layers = read_csv_file(trace_csv, "trace table", dtype={"number": str})
        mean_layers = layers.groupby("layer", as_index=False)[["cos_bias", "cos_control", "sim_diff"]].mean()
        png = layer_plot_png(mean_layers, layers, figures.get("bias", "bias"), figures.get("control", "control"),
                             figures.get("spike_layer_mean"))
        key = {k: figures.get(k) for k in ("n_numbers", "spike_layer_mean", "sim_diff_at_spike_mean", "layer",
                                             "top_head", "top_head_sim_diff_out", "mlp_sim_diff_out")}
        parts.append(_section("Residual trace", f"<img alt='layer plot' src='data:image/png;base64,{png}'/>"
                              + _table(pd.DataFrame([key]))))
    for name, title in (("heads.csv", "Heads and MLP at the layer"), ("patching_summary.csv", "Activation patching"),
                        ("dla.csv", "Direct logit attribution (components by |mean DLA clean - corrupt|)")):
        p = run_dir / name
        if p.is_file():
            df = read_csv_file(p, "table")
            if name == "dla.csv" and "dla_diff" in df:
                df = df.reindex(df.dla_diff.abs().sort_values(ascending=False).index)
            parts.append(_section(title, _table(df, 30 if name == "dla.csv" else MAX_ROWS)))
    att_path = run_dir / "attention.json"
    if att_path.is_file():
        att = read_json_file(att_path, "attention patterns")
        parts.append(_section(f"Attention patterns: {att['text']}", attention_html(att)))
    shown = {"trace.csv", "heads.csv", "patching_summary.csv", "dla.csv"}
    for p in sorted(run_dir.glob("*.csv")):
        if p.name not in shown:
            parts.append(_section(p.name, _table(read_csv_file(p, "table"))))
    parts.append(_section("summary.json", "<pre>" + _html.escape(json.dumps(summary, indent=1)[:200_000]) + "</pre>"))
    title = f"interp {summary.get('command')} report"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}"
            "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}"
            "pre{font-size:11px;background:#f6f6f6;padding:6px;overflow:auto;max-height:400px}.note{color:#666;font-size:12px}"
            f"</style></head><body><h1>{_html.escape(title)}</h1>\n" + "\n".join(parts) + "</body></html>\n")


def write_report(run_dir: Path, run: RunDir | None = None) -> Path:
    """Build the report of `run_dir` and write it (atomically) as report.html inside it."""
    text = build_report(run_dir)
    run = run or RunDir(Path(run_dir), "report")
    return run.write_text("report.html", text)
