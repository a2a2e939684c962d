"""What every dataset provides to the harness, and the registry of datasets."""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from vpbench.errors import UserError


@dataclass(frozen=True)
class DataSpec:
    """Shape of a dataset's sequences: T_in input frames, T_out target frames of C x H x W."""

    name: str
    input_frames: int
    output_frames: int
    channels: int
    height: int
    width: int

    @property
    def total_frames(self) -> int:
        return self.input_frames + self.output_frames

    def model_keys(self) -> dict[str, Any]:
        """The keys the harness passes to model factories."""
        return {
            "in_channels": self.channels,
            "img_size": (self.height, self.width),
            "input_frames": self.input_frames,
            "output_frames": self.output_frames,
        }


class SequenceSource(ABC):
    """A dataset: training batches per (epoch, index), fixed validation and test splits.

    Sequences are uint8 arrays [N, T_in + T_out, C, H, W]; the harness scales them to [0, 1].
    Training batches depend only on (seed, epoch, index), never on the number of workers or ranks.
    """

    spec: DataSpec
    provenance: dict[str, Any]

    @abstractmethod
    def batches_per_epoch(self, batch_size: int) -> int: ...

    @abstractmethod
    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray: ...

    @abstractmethod
    def split(self, name: str) -> np.ndarray:
        """The fixed ``val`` or ``test`` sequences, uint8 [N, T, C, H, W]."""


class EpochBatches(torch.utils.data.Dataset):
    """One epoch of training batches as a map-style dataset (use with ``batch_size=None``).

    Under data parallelism each rank takes its slice of the same global batch.
    """

    def __init__(self, source: SequenceSource, epoch: int, batch_size: int, rank: int = 0, world: int = 1):
        self.source, self.epoch, self.batch_size, self.rank, self.world = source, epoch, batch_size, rank, world

    def __len__(self) -> int:
        return self.source.batches_per_epoch(self.batch_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        batch = self.source.train_batch(self.epoch, index, self.batch_size)
        return torch.from_numpy(np.ascontiguousarray(batch[self.rank :: self.world]))


def array_digest(array: np.ndarray) -> str:
    """Short SHA-256 of an array's shape and bytes: the identity of a test set."""
    h = hashlib.sha256(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()[:16]


def existing_dir(data_dir: str | Path | None) -> Path | None:
    """``data_dir`` as a Path, or a clear error when it was given but does not exist."""
    if data_dir is None:
        return None
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"data directory {str(path)!r} does not exist; pass --data-dir with the folder holding the files")
    return path


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    build: Callable[[DataSpec, Mapping[str, Any], Path | None, int], SequenceSource]  # (spec, config, dir, seed)
    description: str
    frames: tuple[int, int]  # default (T_in, T_out)
    shape: tuple[int, int, int]  # (C, H, W)

    def spec(self, config: Mapping[str, Any]) -> DataSpec:
        """The shape of the sequences under a resolved dataset config."""
        return DataSpec(self.name, int(config["input_frames"]), int(config["output_frames"]), *self.shape)


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, *, description: str, frames: tuple[int, int], shape: tuple[int, int, int]):
    """Decorator adding a builder ``(spec, config, data_dir, seed) -> SequenceSource``."""

    def add(build):
        _DATASETS[name] = DatasetEntry(name, build, description, frames, shape)
        return build

    return add


def dataset_entry(name: str) -> DatasetEntry:
    if name not in _DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(_DATASETS)} (see `bench list`)")
    return _DATASETS[name]


def dataset_names() -> list[str]:
    return list(_DATASETS)


def build_dataset(name: str, config: Mapping[str, Any], data_dir: str | Path | None, seed: int) -> SequenceSource:
    """Build dataset ``name`` from its resolved config section."""
    entry = dataset_entry(name)
    return entry.build(entry.spec(config), config, existing_dir(data_dir), seed)
