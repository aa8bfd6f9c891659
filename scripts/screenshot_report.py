"""Open a report in headless Chromium with no network, screenshot it, and check the attention view rendered.

    python scripts/screenshot_report.py runs/trace/087/report.html [--png shot.png]

Chromium (apt package `chromium`) runs with a fresh --user-data-dir and networking features off;
the page is loaded from file://. Two checks, exit code 1 if either fails:
1. the DOM dumped after a virtual-time budget has, inside the circuitsvis container, a non-empty
   <canvas> or <svg> (React rendered the attention heads view);
2. the screenshot has more than a few non-white pixels (something was drawn).
It also fails if the HTML references anything on the network (interp.report.html.external_references).
Run it inside `unshare -n` (or any sandbox without network) to prove the report works offline.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-extensions", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("chromium not found: apt-get update && apt-get install -y chromium")


def run_chromium(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(html_path: Path, budget_ms: int = 5000) -> str:
    res = run_chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", html_path.resolve().as_uri()])
    return res.stdout


def attention_view_rendered(dom: str) -> tuple[bool, str]:
    """Whether a circuitsvis container holds a <canvas> or an <svg> with content."""
    m = re.search(r'<div id="circuits-vis-[^"]+"[^>]*>(.*)', dom, re.S)
    if not m:
        return False, "no circuits-vis container in the DOM"
    inner = m.group(1)
    canvases = len(re.findall(r"<canvas\b", inner))
    svgs = len(re.findall(r"<svg\b[^>]*>\s*<", inner))
    return canvases + svgs > 0, f"{canvases} canvas, {svgs} non-empty svg inside the circuitsvis container"


def screenshot(html_path: Path, png: Path, budget_ms: int = 5000, size: str = "1280,2400") -> None:
    run_chromium([f"--virtual-time-budget={budget_ms}", f"--window-size={size}", f"--screenshot={png.resolve()}",
                  html_path.resolve().as_uri()])


def drawn_fraction(png: Path) -> float:
    """Fraction of pixels that are not near-white."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    return float((img.min(-1) < 0.9).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--png", type=Path, default=None, help="screenshot path (default: next to the report)")
    ap.add_argument("--budget-ms", type=int, default=5000)
    a = ap.parse_args(argv)
    from interp.report.html import external_references

    html = a.html.read_text()
    ext = external_references(html)
    print(f"external references: {len(ext)}")
    dom = dump_dom(a.html, a.budget_ms)
    ok, detail = attention_view_rendered(dom)
    print(f"attention view rendered: {ok} ({detail})")
    png = a.png or a.html.with_suffix(".png")
    screenshot(a.html, png, a.budget_ms)
    frac = drawn_fraction(png) if png.is_file() else 0.0
    print(f"screenshot {png}: {frac:.1%} of pixels drawn")
    return 0 if ok and not ext and frac > 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
