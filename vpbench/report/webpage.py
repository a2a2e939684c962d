"""``reports/index.html``: the report as one page that works from ``file://`` with no server and no network.

Per dataset, preset and test set: a leaderboard sortable by any column (mean ± std over seeds, the published value
and Δ, params, GFLOPs, training time per epoch), the frame-wise and cost-quality figures (files beside the page),
for each sample sequence a player that steps the ground truth and every model's prediction together, the paired
comparison, and each run's configuration and provenance in a fold that the model's name opens. Styles and
scripts are inlined from ``assets/``; the player's frames are PNG data URIs.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

import vpbench
from vpbench.report import paper
from vpbench.report.collect import Group, Run
from vpbench.report.conventions import CONVENTIONS
from vpbench.report.cost_quality import cost_points
from vpbench.report.figures import FRAME_MS, rgb
from vpbench.report.page import Options, caption, paired_section, split_models, stored_samples
from vpbench.report.tables import cost_table, results_table, row_label
from vpbench.store import atomic_write_bytes

INDEX = "index.html"


def _inline(text: str) -> str:
    """The markdown the report's tables and notes use (bold, italics, code, links), as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def table_cells(lines: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """A markdown table (as :func:`vpbench.report.tables.markdown_table` writes it) -> (header, rows) of cell texts."""
    cells = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in lines if line.startswith("|")]
    return cells[0], cells[2:]


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, sortable: bool = True,
               first_cells: Sequence[str] | None = None) -> str:
    """A table of markdown cell texts; numbers right-aligned. ``first_cells``: HTML replacing each row's first cell."""
    def numeric(text: str) -> bool:
        return bool(re.match(r"^\**[+\-−]?[\d,.]+", text)) and text != "-"

    head = "".join(f'<th scope="col" class="{"num" if i else ""}">{_inline(h)}</th>' for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        tds = [first_cells[r] if first_cells is not None and i == 0 else _inline(cell) for i, cell in enumerate(row)]
        body.append("<tr>" + "".join(f'<td class="{"num" if numeric(c) else ""}">{td}</td>'
                                     for c, td in zip(row, tds)) + "</tr>")
    kind = ' class="sortable"' if sortable else ""
    return (f'<div class="table-box"><table{kind}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def markdown_block(lines: Sequence[str]) -> str:
    """The subset of markdown :mod:`vpbench.report.page` writes (headings, tables, list items, paragraphs) as HTML."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            out.append(html_table(*table_cells(table)))
            table = []
        if line.startswith("### "):
            out.append(f"<h3>{_inline(line[4:])}</h3>")
        elif line.startswith("- "):
            out.append(f'<p class="note">{_inline(line[2:])}</p>')
        elif line.strip():
            out.append(f'<p class="note">{_inline(line)}</p>')
    return "\n".join(out)


def run_anchor(run: Run) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"run-{run.dataset}-{run.model}-{run.run_id}")


def leaderboard(group: Group, options: Options) -> str:
    """The results table (means ± std over seeds, published values and Δ) with the model's params, GFLOPs and
    training time per epoch; each model's name links to its first run's configuration."""
    convention = options.convention_for(group)
    models = split_models(group)[0] or group.models
    published = next((t for t in paper.tables_for(group.dataset, group.frames, "main", group.protocol)
                      if not t.per_step), None)
    header, rows = table_cells(results_table(group, models, published, convention))
    cost_header, cost_rows = table_cells(cost_table(group, []))
    costs = {row[0]: row[1:] for row in cost_rows}
    seconds = dict(zip(group.models, cost_points(group, convention)["epoch_seconds"]))
    header += [*cost_header[1:], "Train s/epoch"]
    rows = [[*row, *costs[row[0]], "-" if np.isnan(seconds[m]) else f"{seconds[m]:.1f}"]
            for m, row in zip(models, rows)]
    links = [f'<a href="#{run_anchor(group.runs_of(m)[0])}">{_inline(row_label(group, m))}</a>' for m in models]
    return html_table(header, rows, first_cells=links)


def _figure(out: Path, stem: str, options: Options, alt: str, text: str) -> str:
    """The figure ``stem`` beside the page (PNG or SVG), with links to its other formats; "" when not drawn."""
    shown = next((f for f in options.figure_formats if f in ("png", "svg") and (out / f"{stem}.{f}").is_file()), None)
    others = [f for f in options.figure_formats if f != shown and (out / f"{stem}.{f}").is_file()]
    if shown is None and not others:
        return ""
    image = f'<img src="{stem}.{shown}" alt="{html.escape(alt)}" loading="lazy">' if shown else ""
    links = " ".join(f'<a href="{stem}.{f}">{f.upper()}</a>' for f in others)
    return f"<figure>{image}<figcaption>{html.escape(text)} {links}</figcaption></figure>"


def data_uri(frame: np.ndarray) -> str:
    """uint8 [C, H, W] -> a PNG data URI (gray stays gray)."""
    picture = rgb(frame[None])[0].transpose(1, 2, 0)
    image = Image.fromarray(picture[..., 0] if frame.shape[0] != 3 else picture)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def players(group: Group, options: Options) -> str:
    """For each chosen stored sample: the ground truth and each model's prediction, each after the input frames,
    stepped together by one play/pause button, previous/next buttons and a frame slider. (A damaged samples file
    was already a warning of the markdown page.)"""
    stored = stored_samples(group, [])
    if not stored:
        return ""
    indices, out = stored[0][2]["indices"], []
    for position in (p for p in options.samples if p < len(indices)):
        sequence = int(indices[position])
        first = stored[0][2]
        inputs, targets = first["inputs"][position], first["targets"][position]
        panels = [("Ground truth", targets)]
        for model, run, samples in stored:
            where = np.flatnonzero(samples["indices"] == sequence)
            if len(where):
                panels.append((f"{group.label(model)} (seed {run.seed})", samples["predictions"][where[0]]))
        context = [data_uri(f) for f in inputs]
        data = {"inputs": len(inputs), "count": len(inputs) + len(targets), "ms": FRAME_MS,
                "panels": [context + [data_uri(f) for f in frames] for _, frames in panels]}
        figures = "".join(f'<div class="panel"><img alt="{html.escape(label)}" src="{data["panels"][i][0]}">'
                          f"{html.escape(label)}</div>" for i, (label, _) in enumerate(panels))
        out.append(
            f'<div class="player" data-frame="0"><p class="caption">Test sequence {sequence} (stored sample '
            f"{position}): the {len(inputs)} input frames, then each panel's own {len(targets)} frames.</p>"
            f'<div class="panels">{figures}</div><div class="controls"><button type="button" class="play">Play'
            '</button><button type="button" class="previous" aria-label="Previous frame">&#9664;</button>'
            '<button type="button" class="next" aria-label="Next frame">&#9654;</button>'
            f'<input type="range" min="0" max="{data["count"] - 1}" value="0" aria-label="Frame">'
            '<span class="frame-label"></span></div>'
            f'<script type="application/json">{json.dumps(data)}</script></div>')
    return "".join(out)


def _run_details(run: Run) -> str:
    """A fold with the run's configuration (config.yaml) and provenance (data, origin, environment)."""
    config = (run.path / "config.yaml").read_text() if (run.path / "config.yaml").is_file() else "(missing)"
    environment = run.path / "environment.json"
    provenance = {"run folder": str(run.path), "status": run.status, "epochs": run.epochs, "data": run.provenance,
                  "test set sha256": run.test_sha256, "origin": run.origin,
                  "environment": json.loads(environment.read_text()) if environment.is_file() else None}
    if run.imported:
        provenance["imported"] = run.imported
    return (f'<details class="run" id="{run_anchor(run)}"><summary>{html.escape(run.label)} · seed {run.seed} · '
            f"<code>{html.escape(run.run_id)}</code> · {html.escape(run.status)}</summary>"
            f"<h4>Provenance</h4><pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>"
            f"<h4>config.yaml</h4><pre>{html.escape(config)}</pre></details>")


def group_html(group: Group, out: Path, options: Options) -> str:
    """The section of one group: leaderboard, figures, players, paired comparison and runs."""
    convention = options.convention_for(group)
    models = split_models(group)[0] or group.models
    parts = [f'<section class="group" id="{group.slug}"><h2>{html.escape(group.dataset)} {group.frames[0]} → '
             f"{group.frames[1]} · preset <code>{html.escape(group.preset)}</code> · test set "
             f"<code>{group.test_sha256[:8]}</code></h2>",
             f'<p class="caption">{_inline(caption(group, models).strip("*"))} '
             f'All tables on <a href="{group.dataset}.md">{group.dataset}.md</a>.</p>',
             "<h3>Leaderboard</h3>", leaderboard(group, options),
             f'<p class="note">Click a column to sort; a model\'s name opens its configuration. Mean ± sample std over '
             f"seeds; Δ = (measured − published) / published; {html.escape(CONVENTIONS[convention])}.</p>",
             _figure(out, f"{group.slug}-framewise", options, "MSE and SSIM per predicted frame",
                     "MSE and SSIM per predicted frame, means over the test sequences (± std over seeds)."),
             _figure(out, f"{group.slug}-cost-quality", options, "Cost against quality",
                     "Test MSE and SSIM against GFLOPs and training time per epoch; dashed: the Pareto front.")]
    shown = players(group, options)
    if shown:
        parts += ["<h3>Predictions</h3>", shown]
    parts.append(markdown_block(paired_section(group, options)))
    parts += ["<h3>Runs</h3>", *(_run_details(r) for r in group.runs), "</section>"]
    return "\n".join(p for p in parts if p)


def _asset(name: str) -> str:
    return files("vpbench.report").joinpath("assets", name).read_text()


def write_page(groups: Sequence[Group], out: Path, options: Options, warnings: Sequence[str],
               results_dir: str | Path) -> Path:
    """Write ``out/index.html`` for ``groups`` (whose figures are already in ``out``); returns its path."""
    sections = [group_html(g, out, options) for g in groups]
    nav = "".join(f'<a href="#{g.slug}">{html.escape(g.dataset)} · {html.escape(g.preset)} · {g.test_sha256[:8]}</a>'
                  for g in groups)
    empty = "" if groups else (f'<p>No finished runs found in <code>{html.escape(str(results_dir))}</code>: run '
                               "<code>bench run</code> first.</p>")
    notes = ("<h3>Warnings</h3><ul class=\"warnings\">" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
             + "</ul>") if warnings else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vpbench report</title><link rel="icon" href="data:,"><style>{_asset("page.css")}</style></head>
<body><header class="top"><h1>vpbench report</h1><nav class="sections">{nav}<a href="README.md">README.md</a></nav>
</header><main><p class="note">Runs from <code>{html.escape(str(results_dir))}</code>, vpbench {vpbench.__version__}.
Every value derives from the run folders; the markdown pages beside this file hold every table.</p>
{empty}{"".join(sections)}{notes}</main><script>{_asset("page.js")}</script></body></html>
"""
    path = out / INDEX
    atomic_write_bytes(path, page.encode())
    return path


