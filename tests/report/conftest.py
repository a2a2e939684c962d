"""Fixtures of the report's page tests: a small sweep (two seeds of convgru, persistence) and its report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from vpbench.report.build import build_report

SECOND_SEED_FACTOR = 1.25  # the copied seed's per-sequence metrics and epoch time, scaled


@pytest.fixture(scope="session")
def sweep(tiny_results, tmp_path_factory) -> Path:
    """``tiny_results`` plus a second convgru seed: a copy of the real run with its metrics and epoch times
    scaled by :data:`SECOND_SEED_FACTOR` (so that means and stds over seeds are known)."""
    root = tmp_path_factory.mktemp("page") / "results"
    shutil.copytree(tiny_results, root)
    source = next((root / "mmnist" / "convgru").iterdir())
    target = source.parent / source.name.replace("-s0", "-s1")
    shutil.copytree(source, target)
    with np.load(target / "per_sequence.npz") as data:
        per_frame, names = data["per_frame"] * SECOND_SEED_FACTOR, data["metrics"]
    np.savez_compressed(target / "per_sequence.npz", per_frame=per_frame, metrics=names)
    metrics = json.loads((target / "metrics.json").read_text())
    metrics.update(seed=1, run_id=target.name)
    (target / "metrics.json").write_text(json.dumps(metrics))
    config = yaml.safe_load((target / "config.yaml").read_text())
    (target / "config.yaml").write_text(yaml.safe_dump({**config, "seed": 1}))
    log = (target / "train_log.csv").read_text().splitlines()
    column = log[0].split(",").index("seconds")
    rows = [row.split(",") for row in log[1:]]
    for row in rows:
        row[column] = str(float(row[column]) * SECOND_SEED_FACTOR)
    (target / "train_log.csv").write_text("\n".join([log[0], *(",".join(r) for r in rows)]) + "\n")
    return root


@pytest.fixture(scope="session")
def page_report(sweep, tmp_path_factory) -> Path:
    """The report of :func:`sweep`, every figure format."""
    out = tmp_path_factory.mktemp("page") / "reports"
    build_report(sweep, out, samples="0,1", figure_formats="png,pdf,svg")
    return out
