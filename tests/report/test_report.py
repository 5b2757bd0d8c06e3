"""`edgekit report`: Markdown, a self-contained HTML page, rendered by headless Chromium."""

import json
import shutil
import subprocess
import sys

import pytest

from edgekit.bench.collectors import BenchConfig
from edgekit.bench.run import run_bench, write_results
from edgekit.errors import UsageError
from edgekit.report import load_results

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def results_file(tiny_artifact, tmp_path_factory):
    cfg = BenchConfig(warmup=2, warmup_seconds=0.05, runs=30, min_seconds=0.1, rounds=3,
                      retries=0)
    rows = run_bench([tiny_artifact], cfg=cfg)
    rows.append({"artifact": "/x/broken.fp32.onnx", "device": "ssh://pi@board", "status":
                 "failed", "error": "connection dropped mid-run", "attempts": []})
    out = tmp_path_factory.mktemp("rep") / "results.json"
    write_results(rows, out)
    return out


def test_markdown_and_html(results_file, tmp_path):
    html = tmp_path / "report.html"
    md = tmp_path / "report.md"
    res = subprocess.run([sys.executable, "-m", "edgekit.cli", "report", str(results_file),
                          "--html", str(html), "--md", str(md)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    text = md.read_text()
    assert "tiny_convnet.fp32.onnx" in text and "FAILED" in text
    page = html.read_text()
    assert page.count("data:image/png;base64,") >= 3  # distribution, vs size, accuracy
    assert "src='http" not in page and "src=\"http" not in page  # self-contained


def assert_renders_in_chromium(html, tmp_path) -> None:
    """The page renders in headless Chromium to a screenshot with content (not blank)."""
    assert CHROMIUM, "chromium missing: scripts/bootstrap.sh installs Debian's chromium"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        colours = im.convert("RGB").resize((60, 80)).getcolors(4800)
        assert colours is None or len(colours) > 20  # a page with content, not blank


def test_html_renders_in_headless_chromium(results_file, tmp_path):
    html = tmp_path / "report.html"
    from edgekit.report import render_html

    render_html(load_results([results_file]), html)
    assert_renders_in_chromium(html, tmp_path)


def test_bad_results_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="not a results JSON"):
        load_results([bad])
    bad.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(UsageError, match="not an edgekit bench, profile or diff results"):
        load_results([bad])
