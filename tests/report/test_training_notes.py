"""A model whose training here differs from its published runs' (its registry ``training_note``) is marked beside
its rows: DMVFN, trained without the VGG perceptual term."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from vpbench import config as cfg
from vpbench.models import get_entry
from vpbench.report.build import build_report


def as_model(run: Path, model: str) -> Path:
    """A copy of ``run`` stored as a run of ``model`` (its metrics.json and config.yaml say so)."""
    target = run.parents[1] / model / run.name
    shutil.copytree(run, target)
    metrics = json.loads((target / "metrics.json").read_text())
    (target / "metrics.json").write_text(json.dumps({**metrics, "model": model, "label": get_entry(model).label}))
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["model"] = cfg.resolve(config["preset"], model, "mmnist")["model"]
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    return target


def test_dmvfn_rows_say_they_were_trained_without_the_vgg_term(own_results, tmp_path):
    convgru = next((own_results / "mmnist" / "convgru").iterdir())
    as_model(convgru, "dmvfn")
    build_report(own_results, tmp_path / "report", samples="")
    page = (tmp_path / "report" / "mmnist.md").read_text()
    notes = [line for line in page.splitlines() if "trained without the VGG-19 perceptual term" in line]
    assert notes and all(line.startswith("- DMVFN: ") for line in notes)
    assert "- ConvGRU:" not in page


def test_dmvfn_trained_with_vgg_weights_has_no_such_note(own_results, tmp_path):
    dmvfn = as_model(next((own_results / "mmnist" / "convgru").iterdir()), "dmvfn")
    config = yaml.safe_load((dmvfn / "config.yaml").read_text())
    config["train"]["vgg_weights"] = "/weights/vgg19.pth"
    (dmvfn / "config.yaml").write_text(yaml.safe_dump(config))
    build_report(own_results, tmp_path / "report", samples="")
    page = (tmp_path / "report" / "mmnist.md").read_text()
    assert "DMVFN" in page and "trained without the VGG-19 perceptual term" not in page
