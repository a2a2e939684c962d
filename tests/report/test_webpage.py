"""``reports/index.html``: its leaderboard holds the values of the markdown tables plus the cost columns, its
players hold the stored frames, each run's configuration is on the page, and nothing is fetched from a network."""
from __future__ import annotations

import base64
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vpbench.report.build import build_report
from vpbench.report.webpage import markdown_block, table_cells


class _Page(HTMLParser):
    """What the tests read from the page: tables (rows of cell texts), JSON scripts, attributes, details ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.scripts: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.details: list[str] = []
        self._cell: list[str] | None = None
        self._script: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script" and ("type", "application/json") in attrs:
            self._script = ""
        elif tag == "details":
            self.details.append(dict(attrs)["id"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "script" and self._script is not None:
            self.scripts.append(self._script)
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self._script += data


@pytest.fixture(scope="module")
def page(page_report) -> _Page:
    return _Page((page_report / "index.html").read_text())


def _markdown_results(report: Path) -> tuple[list[str], dict[str, list[str]]]:
    lines = (report / "mmnist.md").read_text().split("### Results", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next(i for i, line in enumerate(lines[start:], start) if not line.startswith("|"))
    header, rows = table_cells(lines[start:end])
    return header, {row[0]: [c.replace("**", "") for c in row] for row in rows}


def test_leaderboard_is_the_results_table_with_params_gflops_and_epoch_time(page, page_report, sweep):
    leaderboard = page.tables[0]
    header, rows = leaderboard[0], {row[0]: row for row in leaderboard[1:]}
    md_header, md_rows = _markdown_results(page_report)
    assert header[: len(md_header)] == [h.replace("**", "") for h in md_header]
    assert header[len(md_header):] == ["Params", "GFLOPs", "Train s/epoch"]
    for label, md_row in md_rows.items():
        assert rows[label][: len(md_row)] == md_row
    convgru = rows["ConvGRU"]
    assert " ± " in convgru[header.index("MSE ↓")] and convgru[header.index("n")] == "2"
    seconds = [pd.read_csv(r / "train_log.csv")["seconds"].mean() for r in (sweep / "mmnist" / "convgru").iterdir()]
    assert convgru[header.index("Train s/epoch")] == f"{np.mean(seconds):.1f}"
    metrics = json.loads(next((sweep / "mmnist" / "convgru").iterdir()).joinpath("metrics.json").read_text())
    assert convgru[header.index("Params")] == f"{metrics['params']:,}"
    assert rows["Persistence"][header.index("Train s/epoch")] == "-"


def test_players_step_the_stored_frames_of_the_ground_truth_and_every_model(page, sweep):
    players = [json.loads(s) for s in page.scripts]
    assert len(players) == 2  # --samples 0,1
    run = sorted((sweep / "mmnist" / "convgru").iterdir())[0]
    with np.load(run / "samples.npz") as samples:
        inputs, targets, predictions = samples["inputs"][1], samples["targets"][1], samples["predictions"][1]
    second = players[1]
    assert second["inputs"] == len(inputs) and second["count"] == len(inputs) + len(targets)
    assert len(second["panels"]) == 3  # ground truth, ConvGRU (its first seed), Persistence

    def frame(uri: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))

    np.testing.assert_array_equal(frame(second["panels"][0][0]), inputs[0, 0])
    np.testing.assert_array_equal(frame(second["panels"][0][-1]), targets[-1, 0])
    np.testing.assert_array_equal(frame(second["panels"][1][len(inputs)]), predictions[0, 0])


def test_each_run_has_its_config_and_provenance_one_click_away(page, page_report, sweep):
    text = (page_report / "index.html").read_text()
    runs = sorted(sweep.glob("mmnist/*/*"))
    assert len(page.details) == len(runs) == 3
    links = {v for tag, name, v in page.attributes if tag == "a" and name == "href" and v.startswith("#run-")}
    for run in runs:
        (anchor,) = [d for d in page.details if d.endswith(run.name) and f"-{run.parent.name}-" in d]
        assert (f"#{anchor}" in links) == run.name.endswith("-s0")  # the leaderboard links each model's first seed
        fold = text.split(f'id="{anchor}"', 1)[1].split("</details>", 1)[0]
        assert html.escape((run / "config.yaml").read_text()) in fold
        assert html.escape(json.dumps(str(run))) in fold and "test set sha256" in fold


def test_the_page_needs_no_network_and_its_files_are_beside_it(page, page_report):
    text = (page_report / "index.html").read_text()
    assert "http://" not in text and "https://" not in text and "<link rel=\"stylesheet\"" not in text
    local = [v for tag, name, v in page.attributes if name in ("src", "href") and not v.startswith(("data:", "#"))]
    assert local and all((page_report / v).is_file() for v in local), local
    assert re.search(r"<style>.+</style>", text, re.S) and "function sortTable" in text


def test_markdown_blocks_become_html():
    block = markdown_block(["### Paired comparison", "", "| Model | MSE |", "|---|---:|", "| **A** `x` | 1.5 |",
                            "", "Note with [a link](b.md) and *italics*."])
    assert "<h3>Paired comparison</h3>" in block
    assert '<td class="">**A**' not in block and "<strong>A</strong> <code>x</code>" in block
    assert '<td class="num">1.5</td>' in block and '<a href="b.md">a link</a>' in block and "<em>italics</em>" in block


def test_an_empty_results_folder_gives_a_page_that_says_so(tmp_path):
    (tmp_path / "results").mkdir()
    build_report(tmp_path / "results", tmp_path / "out")
    assert "No finished runs found" in (tmp_path / "out" / "index.html").read_text()
