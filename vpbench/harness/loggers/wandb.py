"""``--logger wandb``: a Weights & Biases run, offline by default (needs ``wandb``).

Written to ``<run>/logs/wandb/offline-run-*`` (or under ``logger.dir``); ``wandb sync`` uploads it later.
``WANDB_MODE=online`` logs live instead; ``WANDB_PROJECT`` names the project (default ``vpbench``), and
runs of one dataset and preset share a group. Test metrics per predicted frame are logged against
``test_frame/frame``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import wandb

from vpbench.harness.loggers.base import Logger, run_name
from vpbench.store import RunDir


class WandbLogger(Logger):
    def __init__(self, folder: Path, name: str, config: Mapping[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "vpbench"), dir=str(folder), name=name,
                              group=f"{config['dataset']['name']}-{config['preset']}", config=dict(config),
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new",
                              settings=wandb.Settings(console="off", x_disable_stats=True))
        self.run.define_metric("test_frame/*", step_metric="test_frame/frame")

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self.run.log({tag: wandb.Image(picture, caption="inputs, ground truth, prediction")}, step=step)

    def framewise(self, values: Mapping[str, np.ndarray]) -> None:
        frames = len(next(iter(values.values())))
        for t in range(frames):
            self.run.log({"test_frame/frame": t + 1, **{f"test_frame/{m}": float(v[t]) for m, v in values.items()}})

    def close(self) -> None:
        self.run.finish()


def open_logger(root: Path, run: RunDir, config: Mapping[str, Any]) -> Logger:
    return WandbLogger(root, run_name(run, config), config)
