"""`tunecard report`: one self-contained HTML page per run, its numbers from the run's files, checked in Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import WNUT_SAMPLE
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import build_config
from tunecard.doctor import diagnose
from tunecard.errors import OutputError, TunecardError
from tunecard.pipeline import train
from tunecard.reporting.report import GENERATOR, REPORT_FILE, render_report, write_report

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run(tiny_bert_cased, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("runs") / "ner"
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
        validation=str(WNUT_SAMPLE / "dev.conll"), test=str(WNUT_SAMPLE / "test.conll"), output=str(output),
        num_epochs=2, max_train_examples=32, max_eval_examples=16, train_batch_size=16, learning_rate=1e-3,
        precision="fp32", eval_on_start=True,
    ))
    return train(config, progress=False).output


class _Page(HTMLParser):
    """Collects what the page would load (src / link href), its images, and the table rows with their class."""

    def __init__(self):
        super().__init__()
        self.loads: list[str] = []
        self.images: list[str] = []
        self.scripts = 0
        self.rows: list[tuple[str | None, list[str]]] = []
        self._cells: list[str] | None = None
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "src" in attrs:
            self.loads.append(attrs["src"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "link" and attrs.get("href"):
            self.loads.append(attrs["href"])
        if tag == "tr":
            self.rows.append((attrs.get("class"), []))
        if tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1][1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][1][-1] += data.strip()


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_page_is_self_contained_with_every_plot_inline(run):
    path = write_report(run)
    assert path == run / REPORT_FILE
    html = path.read_text(encoding="utf-8")
    page = _parse(html)
    assert page.scripts == 0
    # Nothing to fetch: every resource is a data URI, and the images are the run's own PNGs, byte for byte.
    assert page.loads and all(src.startswith("data:image/png;base64,") for src in page.loads)
    plots = sorted(p.read_bytes() for p in (run / "plots").glob("*.png"))
    inline = sorted(base64.b64decode(src.split(",", 1)[1]) for src in page.images)
    assert len(plots) == 5 and inline == plots


def test_numbers_come_from_the_run_files(run):
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    page = _parse(render_report(run))
    # The per-epoch table: one row per evaluation, and the saved checkpoint's row (only it) is marked.
    epoch_rows = [(cls, cells) for cls, cells in page.rows if len(cells) == 9 and cells[-1] in ("", "✓")]
    assert len(epoch_rows) == len(history["rows"]) == 3  # eval_on_start + two epochs
    marked = [cells for cls, cells in epoch_rows if cls == "best"]
    assert len(marked) == 1 and marked[0][-1] == "✓" and marked[0][2] == str(history["best"]["step"])
    assert marked[0][6] == f"{metrics['validation']['f1']:.4f}"
    # Per-label rows carry the saved checkpoint's validation support for every entity type.
    for label, result in metrics["validation"]["per_label"].items():
        assert any(cells[0] == label and cells[4] == str(result["support"]) for _, cells in page.rows), label
    # The baselines table marks this model's rows and shows the all-O baseline.
    ours = [cells for cls, cells in page.rows if cls == "ours"]
    assert [cells[0] for cells in ours] == ["validation", "test"]
    assert ours[1][4] == f"{metrics['test']['f1']:.4f}"


def test_diagnosis_and_config_are_on_the_page(run):
    html = render_report(run)
    for finding in diagnose(run).findings:
        assert f"{finding.code} {finding.name}" in html
    assert "learning_rate: 0.001" in html  # train_config.yaml, verbatim


def test_user_text_is_escaped(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    evil = "<script>alert(1)</script>"
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["validation"]["per_label"][evil] = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1,
                                                "predicted": 1}
    (copy / "metrics.json").write_text(json.dumps(metrics))
    config = (copy / "train_config.yaml").read_text()
    (copy / "train_config.yaml").write_text(config.replace("dataset_name: null", f"dataset_name: '{evil}'"))
    html = render_report(copy)
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert _parse(html).scripts == 0


def test_plots_are_drawn_for_a_run_without_plot_files(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("plots"))
    page = _parse(render_report(copy))
    assert len(page.images) == 5
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")


def test_never_replaces_a_file_that_is_not_a_report(run, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    with pytest.raises(OutputError) as caught:
        write_report(run, mine)
    assert caught.value.code == "E462" and mine.read_text() == "<p>my notes</p>"
    write_report(run, mine, overwrite=True)
    assert GENERATOR in mine.read_text()
    # An earlier report is tunecard's own: replaced without asking.
    write_report(run, mine)
    assert not list(tmp_path.glob(".notes.html.*")), "temporary file left behind"


def test_a_folder_that_is_not_a_run_is_a_clear_error(run, tmp_path):
    with pytest.raises(TunecardError) as caught:
        write_report(tmp_path)
    assert caught.value.code == "E460" and "metrics.json" in caught.value.message
    broken = tmp_path / "broken"
    shutil.copytree(run, broken, ignore=shutil.ignore_patterns(REPORT_FILE))
    (broken / "history.json").write_text('{\n  "rows": [,]\n}')
    with pytest.raises(TunecardError) as caught:
        write_report(broken)
    assert caught.value.code == "E461" and caught.value.line == 2
    assert not (broken / REPORT_FILE).exists()


def test_cli_report_writes_the_page(run, tmp_path):
    target = tmp_path / "out" / "page.html"
    result = CliRunner().invoke(app, ["report", str(run), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.is_file() and GENERATOR in target.read_text()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_chromium(run, tmp_path):
    """Headless Chromium: no console errors, no page errors, no request beyond the file, every image decoded."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (CI installs it: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    path = write_report(run, tmp_path / REPORT_FILE)
    url = path.resolve().as_uri()
    problems, requests = [], []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert [r for r in requests if r != url and not r.startswith("data:")] == []
    assert len(images) == 5
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    width, height = _png_size(screenshot.read_bytes())
    # The whole page: header, tables and five plots stacked, well beyond one screen.
    assert width == 1200 and height > 2500
    assert screenshot.stat().st_size > 50_000
