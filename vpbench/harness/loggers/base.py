"""The interface every tracker implements, and :class:`Tracker`, which hands each event to the chosen ones."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from vpbench.store import RunDir


def log_root(run: RunDir, section: Mapping[str, Any]) -> Path:
    """Where the trackers write: ``<run>/logs``, or ``logger.dir`` when the user points them elsewhere."""
    return Path(section["dir"]).expanduser() if section.get("dir") else run.path / "logs"


def run_name(run: RunDir, config: Mapping[str, Any]) -> str:
    """``<dataset>-<model>-<run id>``: the run's name in a tracker (its run id holds the preset and seed)."""
    return f"{config['dataset']['name']}-{config['model']['name']}-{run.run_id}"


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``; values that are not numbers, strings or booleans
    become their text (hyperparameter panels take scalars only)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


class Logger(ABC):
    """One tracker of one run. Steps are optimiser steps (the x axis of every curve)."""

    @abstractmethod
    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Named values at ``step`` (``train/loss``, ``val/mse``, ...)."""

    @abstractmethod
    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """A picture, uint8 [H, W, 3], at ``step``."""

    @abstractmethod
    def framewise(self, values: Mapping[str, np.ndarray]) -> None:
        """Test metrics per predicted frame: metric -> [T_out] (the mean over test sequences)."""

    @abstractmethod
    def close(self) -> None:
        """Write everything out and end the tracker's run."""


class Tracker:
    """The chosen loggers of a run, each event handed to every one. A logger that raises is dropped with a
    warning (``warn``): a tracker never stops training. Without loggers every call does nothing."""

    def __init__(self, loggers: list[Logger], warn: Callable[[str], None]) -> None:
        self.loggers, self.warn = loggers, warn
        self.last_step = 0  # the newest optimiser step logged: where the test values go

    @property
    def active(self) -> bool:
        return bool(self.loggers)

    def _each(self, call: Callable[[Logger], None]) -> None:
        for logger in list(self.loggers):
            try:
                call(logger)
            except Exception as err:  # noqa: BLE001  a tracker's failure (network, disk) must not stop the run
                self.loggers.remove(logger)
                self.warn(f"logger {type(logger).__name__} stopped ({type(err).__name__}: {err}); the run goes on")

    def step(self, step: int, loss: float, lr: float) -> None:
        """A training step's loss and learning rate."""
        self.last_step = step
        self._each(lambda logger: logger.scalars({"train/loss": loss, "train/lr": lr}, step))

    def epoch(self, step: int, row: Mapping[str, float], sample: np.ndarray | None) -> None:
        """An epoch's log row (``train_log.csv``'s: epoch, train_loss, val_loss, val_mse, lr, seconds) and its
        sample strip (uint8 [H, W, 3]: inputs, ground truth, prediction of the first validation sequence)."""
        self.last_step = step
        values = {"epoch": row["epoch"], "train/epoch_loss": row["train_loss"], "val/loss": row["val_loss"],
                  "val/mse": row["val_mse"], "train/epoch_seconds": row["seconds"]}
        self._each(lambda logger: logger.scalars(values, step))
        if sample is not None:
            self._each(lambda logger: logger.image("val/sample", sample, step))

    def test(self, summary: Mapping[str, Any], per_frame: np.ndarray, columns: tuple[str, ...]) -> None:
        """The test metrics: means (``summary``'s numbers) and per predicted frame (``per_frame``
        [N, T_out, len(columns)], averaged over the N test sequences)."""
        means = {f"test/{k}": float(v) for k, v in summary.items() if isinstance(v, (int, float)) and v is not None}
        frames = per_frame.mean(axis=0)
        self._each(lambda logger: logger.scalars(means, self.last_step))
        self._each(lambda logger: logger.framewise({c: frames[:, k] for k, c in enumerate(columns)}))

    def close(self) -> None:
        self._each(lambda logger: logger.close())
        self.loggers = []
