"""``--logger tensorboard``: TensorBoard event files, through torch's ``SummaryWriter`` (needs ``tensorboard``).

Written to ``<run>/logs/tensorboard`` (``tensorboard --logdir results`` finds every run), or to
``<logger.dir>/tensorboard/<dataset>-<model>-<run id>``. The configuration is the run's hyperparameters
(the HPARAMS tab, against the test MSE and SSIM) and a text; test metrics per predicted frame are curves
``test_frame/<metric>`` whose x axis is the predicted frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from vpbench.harness.loggers.base import Logger, flat_config, run_name
from vpbench.store import RunDir


class TensorBoardLogger(Logger):
    def __init__(self, folder: Path, config: Mapping[str, Any]) -> None:
        self.writer = SummaryWriter(log_dir=str(folder))
        for summary in hparams(flat_config(config), {"test/mse": 0.0, "test/ssim": 0.0}):
            self.writer.file_writer.add_summary(summary)
        text = yaml.safe_dump(dict(config), sort_keys=False)
        self.writer.add_text("config", "\n".join(f"    {line}" for line in text.splitlines()))  # markdown code

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, picture, step, dataformats="HWC")

    def framewise(self, values: Mapping[str, np.ndarray]) -> None:
        for metric, per_frame in values.items():
            for frame, value in enumerate(per_frame, start=1):
                self.writer.add_scalar(f"test_frame/{metric}", float(value), frame)

    def close(self) -> None:
        self.writer.close()


def open_logger(root: Path, run: RunDir, config: Mapping[str, Any]) -> Logger:
    in_run = root == run.path / "logs"
    return TensorBoardLogger(root / "tensorboard" if in_run else root / "tensorboard" / run_name(run, config), config)
