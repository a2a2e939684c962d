"""A model file and a dataset file of one's own, outside vpbench, join every command with no edit to vpbench."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODEL_FILE = '''
"""A model of one's own, in a file outside vpbench."""
import torch
from torch import nn

from vpbench.models import register_model


@register_model("lastplus", label="LastPlus", tags=("mine",), defaults={"tiny": {"width": 4}},
                recipe={"loss": "mse", "optimizer": "adam", "lr": 0.01, "scheduler": "none"})
class LastPlus(nn.Module):
    """The last input frame through a small residual convolution."""

    def __init__(self, *, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, in_channels, 3, padding=1))

    def forward(self, frames, horizon):
        last = frames[:, -1]
        frame = torch.clamp(last + self.net(last), 0, 1)
        return frame.unsqueeze(1).expand(-1, horizon, -1, -1, -1)
'''

DATASET_FILE = '''
"""A dataset of one's own, in a file outside vpbench: a bright square moving right."""
import numpy as np

from vpbench.datasets import Option, SequenceSource, positive_int, register_dataset
from vpbench.datasets.base import array_digest


def squares(n, frames, size, rng):
    out = np.zeros((n, frames, 1, size, size), np.uint8)
    for i in range(n):
        row, col = rng.integers(0, size - 4, 2)
        for t in range(frames):
            c = (col + 2 * t) % (size - 4)
            out[i, t, 0, row:row + 4, c:c + 4] = 255
    return out


class Squares(SequenceSource):
    def __init__(self, spec, config, data_dir, seed):
        self.spec, self.seed, self.config = spec, seed, config
        self.val = squares(config["val_sequences"], spec.total_frames, spec.height, np.random.default_rng(1))
        self.test = squares(config["test_sequences"], spec.total_frames, spec.height, np.random.default_rng(2))
        digest = array_digest(self.test)
        self.provenance = {"kind": "squares", "test_sha256": digest, "test_sequences": len(self.test),
                           "label": f"squares test set [{digest[:8]}]"}

    def batches_per_epoch(self, batch_size):
        return max(1, self.config["train_sequences"] // batch_size)

    def train_batch(self, epoch, index, batch_size):
        rng = np.random.default_rng([self.seed, epoch, index])
        return squares(batch_size, self.spec.total_frames, self.spec.height, rng)

    def split(self, name):
        return {"val": self.val, "test": self.test}[name]


@register_dataset("squares", description="a square moving right, 16x16", frames=(4, 4),
                  shape=lambda config: (1, config["size"], config["size"]),
                  options={"size": Option(16, "frame side", kind=int, minimum=8),
                           "train_sequences": positive_int({"paper": 1000, "tiny": 16}, "per epoch"),
                           "val_sequences": positive_int(4, "validation"),
                           "test_sequences": positive_int(6, "test")})
def build(spec, config, data_dir, seed):
    return Squares(spec, config, data_dir, seed)
'''


def bench_with(folder: Path, *args: str, plugins: str = "mylab_models,mylab_data") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder), "VPBENCH_PLUGINS": plugins}
    return subprocess.run([sys.executable, "-m", "vpbench.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=folder)


@pytest.fixture
def own_files(tmp_path) -> Path:
    folder = tmp_path / "mylab"
    folder.mkdir()
    (folder / "mylab_models.py").write_text(textwrap.dedent(MODEL_FILE))
    (folder / "mylab_data.py").write_text(textwrap.dedent(DATASET_FILE))
    return folder


def test_a_model_file_and_a_dataset_file_join_with_no_edit_to_vpbench(own_files, tmp_path):
    listed = bench_with(own_files, "list")
    assert listed.returncode == 0, listed.stderr
    assert "[external: mylab_models:LastPlus]" in listed.stdout
    assert "a square moving right, 16x16  [external: mylab_data:build]" in listed.stdout
    results, reports = tmp_path / "results", tmp_path / "reports"
    ran = bench_with(own_files, "run", "--models", "lastplus,persistence", "--dataset", "squares", "--preset", "tiny",
                     "--results-dir", results)
    assert ran.returncode == 0, ran.stderr[-2000:]
    config = next(results.glob("squares/lastplus/*/config.yaml")).read_text()
    assert "loss: mse" in config and "width: 4" in config and "size: 16" in config
    reported = bench_with(own_files, "report", "--results-dir", results, "--out", reports)
    assert reported.returncode == 0, reported.stderr
    page = (reports / "squares.md").read_text()
    assert "LastPlus †" in page and "Persistence" in page


def test_a_dataset_spec_on_the_command_line_and_its_errors(own_files, tmp_path):
    ran = bench_with(own_files, "run", "--models", "persistence", "--dataset", "mylab_data:build", "--preset",
                     "tiny", "--results-dir", tmp_path / "results", plugins="")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert list((tmp_path / "results").glob("squares/persistence/*/metrics.json"))
    for spec, needle in [("mylab_data:Squares", "is not a registered dataset; decorate its builder with "
                                                "@register_dataset"),
                         ("mylab_nowhere:build", "no module named 'mylab_nowhere'"),
                         ("mylab_data:nothing", "has no attribute 'nothing'")]:
        failed = bench_with(own_files, "run", "--models", "persistence", "--dataset", spec, "--preset", "tiny",
                            "--results-dir", tmp_path / "results", plugins="")
        assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
        assert needle in failed.stderr
    broken = bench_with(own_files, "list", plugins="mylab_missing")
    assert broken.returncode == 2 and "VPBENCH_PLUGINS module 'mylab_missing': no module named" in broken.stderr
    bad_option = bench_with(own_files, "run", "--models", "persistence", "--dataset", "squares", "--preset", "tiny",
                            "--set", "dataset.size=4", "--results-dir", tmp_path / "results")
    assert bad_option.returncode == 2 and "invalid value dataset.size=4: must be an integer >= 8" in bad_option.stderr
