"""``bench report``: everything under ``--out`` from the runs under ``--results-dir``.

    <out>/README.md                  index: datasets, presets, test sets, models, skipped runs
    <out>/<dataset>.md               tables, paired comparison, cost and figures per preset/test set
    <out>/<dataset>-framewise.csv    model, seed, frame, metric, value (+ label, preset, test_set)
    <out>/<dataset>-<preset>-<test hash>-{framewise,framewise-ablation,sample<i>}.{png,pdf,svg}
    <out>/<dataset>-<preset>-<test hash>-sample<i>.gif   ground truth and every prediction, as motion
    <out>/<dataset>-<preset>-<test hash>-cost-quality.{png,pdf,svg}   MSE and SSIM against GFLOPs and time/epoch
    <out>/index.html                 the same as one browsable page: sortable leaderboards, players, runs' configs
"""
from __future__ import annotations

import argparse
import sys
from itertools import groupby
from pathlib import Path

import pandas as pd

from vpbench.errors import UserError
from vpbench.report.collect import collect, read_profiles
from vpbench.report.conventions import CONVENTIONS
from vpbench.report.figures import FORMATS
from vpbench.report.framewise import framewise_long
from vpbench.report.index import index_markdown
from vpbench.report.page import Options, group_section
from vpbench.report.webpage import write_page
from vpbench.store import atomic_write_bytes


def parse_samples(text: str) -> tuple[int, ...]:
    """``"0,3"`` -> ``(0, 3)``: positions among the test sequences each run stores."""
    try:
        positions = tuple(dict.fromkeys(int(p) for p in text.split(",") if p.strip()))
    except ValueError:
        positions = (-1,)
    if any(p < 0 for p in positions):
        raise UserError(f"--samples {text!r}: expected comma-separated indices >= 0 of the stored test samples, "
                        "e.g. --samples 0,3")
    return positions


def _writable(out: str | Path) -> Path:
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"report folder {str(path)!r} cannot be created ({err.strerror}); pass --out DIR") from None
    return path


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("png", "pdf")``, each one of the figure formats."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--figure-format {text!r}: choose from {', '.join(FORMATS)}, comma-separated, e.g. png,pdf")
    return formats


def build_report(results_dir: str | Path, out: str | Path, *, convention: str | None = None,
                 samples: str = "0", figure_formats: str = "png") -> Path:
    """Write the report into ``out``; returns the index's path. Warnings go to stderr, one line each.
    ``convention``: of every table; None: each section's protocol's (``paper`` or ``openstl``)."""
    if convention is not None and convention not in CONVENTIONS:
        raise UserError(f"--convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    options = Options(convention, parse_samples(samples), parse_formats(figure_formats))
    collection = collect(results_dir)
    profiles, warnings = read_profiles(results_dir)
    warnings = collection.warnings + warnings
    out = _writable(out)
    for dataset, groups in groupby(collection.groups, key=lambda g: g.dataset):
        groups = list(groups)
        lines = [f"# {dataset}", "", f"Back to the [index](README.md). Frame-wise values: "
                 f"[{dataset}-framewise.csv]({dataset}-framewise.csv).", ""]
        for group in groups:
            lines += group_section(group, out, options, profiles, warnings)
        atomic_write_bytes(out / f"{dataset}.md", ("\n".join(lines).rstrip("\n") + "\n").encode())
        table = pd.concat([framewise_long(g, options.convention_for(g)) for g in groups], ignore_index=True)
        atomic_write_bytes(out / f"{dataset}-framewise.csv", table.to_csv(index=False).encode())
    index = out / "README.md"
    atomic_write_bytes(index, index_markdown(collection.groups, Path(results_dir), options, warnings).encode())
    page = write_page(collection.groups, out, options, warnings, results_dir)
    for warning in warnings:
        print(f"bench report: warning: {warning}", file=sys.stderr)
    runs = sum(len(g.runs) for g in collection.groups)
    sections = len(collection.groups)
    print(f"report: {index} and {page} ({runs} run{'s' * (runs != 1)} in {sections} section{'s' * (sections != 1)} "
          f"from {results_dir})")
    return index


def command(args: argparse.Namespace) -> None:
    """``bench report``."""
    build_report(args.results_dir, args.out, convention=args.convention, samples=args.samples,
                 figure_formats=args.figure_format)
