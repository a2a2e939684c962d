"""Datasets whose clips are rows of an index into frames kept on disk (KittiCaltech's hickle arrays, BAIR's
TFRecords), gathered when a batch or split is asked for."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from vpbench.datasets.base import SequenceSource


class IndexedClips(SequenceSource):
    """Training clips in a new order each epoch (its first ``train_sequences`` when set), fixed validation and
    test clips. ``clips[split]`` is an int array [N, k] whose rows :meth:`gather` turns into frames; the
    validation clips stay in memory once read."""

    clips: dict[str, np.ndarray]
    train_sequences: int | None
    seed: int

    @abstractmethod
    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Index rows [N, k] -> uint8 clips [N, T, C, H, W]."""

    def batches_per_epoch(self, batch_size: int) -> int:
        size = len(self.clips["train"])
        return max(1, min(size, self.train_sequences or size) // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.clips["train"]))
        order = order[: self.train_sequences]
        return self.gather(self.clips["train"][order[(index * batch_size + np.arange(batch_size)) % len(order)]])

    def split(self, name: str) -> np.ndarray:
        if name not in ("val", "test"):
            raise ValueError(f"no split {name!r}: val or test")
        if name == "test":
            return self.gather(self.clips["test"])
        if getattr(self, "_val", None) is None:
            self._val = self.gather(self.clips["val"])
        return self._val

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_val": None}
