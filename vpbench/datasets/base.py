"""What every dataset provides to the harness: its shape, its sequences, its options and reference tables."""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from vpbench import presets
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

    def metric_context(self) -> dict[str, Any]:
        """What metrics may know of this data beyond the frames: the fields of
        :class:`vpbench.metrics.registry.MetricContext` other than ``dataset`` (channel names, physical
        ``offset``/``scale`` and ``units``, ``lat_weights``, ``extra`` arrays). 8-bit frames need none."""
        return {}


class InMemorySource(SequenceSource):
    """A source whose splits are arrays held in memory (``train``, ``val``, ``test``, uint8 [N, T, C, H, W]):
    each epoch shuffles ``train`` by (seed, epoch) and reads at most ``train_sequences`` of it (all when 0)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_sequences: int
    seed: int

    def batches_per_epoch(self, batch_size: int) -> int:
        return max(1, min(len(self.train), self.train_sequences or len(self.train)) // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        return self.train[order[(index * batch_size + np.arange(batch_size)) % len(order)]]

    def split(self, name: str) -> np.ndarray:
        return {"val": self.val, "test": self.test}[name]


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
class Option:
    """One option of a dataset (``--set dataset.NAME=VALUE``): its default, per preset or for all, and
    what values it takes (a type with an optional minimum, or choices; ``nullable``: also null)."""

    default: Any  # a value, or {preset name: value} (a preset not named takes its SRVP fallback's)
    help: str
    kind: type | None = None  # int, float, str or bool; None: any value
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    nullable: bool = False

    def default_for(self, preset: str) -> Any:
        if isinstance(self.default, Mapping):
            return presets.lookup(self.default, preset)
        return self.default

    def describe(self) -> str:
        """What a valid value is, for error messages: ``an integer >= 1``, ``area or bilinear``."""
        if self.choices:
            text = ", ".join(map(str, self.choices[:-1])) + f" or {self.choices[-1]}" if len(self.choices) > 1 \
                else str(self.choices[0])
        else:
            text = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(self.kind,
                                                                                                    "a value")
            if self.minimum is not None:
                text += f" >= {self.minimum:g}"
        return text + (" or null" if self.nullable else "")

    def valid(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.choices:
            return value in self.choices
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return False
        if self.kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return False
        if self.kind in (str, bool) and not isinstance(value, self.kind):
            return False
        return self.minimum is None or value >= self.minimum


def positive_int(default: Any, help: str, nullable: bool = False) -> Option:
    """An option holding a count: an integer >= 1."""
    return Option(default, help, kind=int, minimum=1, nullable=nullable)


@dataclass(frozen=True)
class ReferenceTable:
    """A published table measured on a dataset (the SRVP paper's Tables 1-4, OpenSTL's benchmark tables).

    A mean table has one value per metric in ``columns`` (means over predicted frames); a per-step table
    has one value of ``metric`` per predicted frame in ``steps``. Models give their rows (``references``
    in their registry entries); a table published for a dataset newer than the models may carry them as
    ``rows`` (model registry name -> values, as in ``references``; a model's own row wins). ``protocol`` is
    the protocol whose runs it is set beside; ``convention`` how its MSE and MAE are scaled (``paper``: per
    pixel on 0-255; ``openstl``: per frame on [0, 1])."""

    id: str
    title: str
    frames: tuple[int, int]
    group: str = "main"  # "main" or "ablation"
    columns: tuple[str, ...] = ()
    metric: str | None = None
    steps: tuple[int, ...] = ()
    protocol: str = "srvp"
    convention: str = "paper"
    rows: Mapping[str, Mapping[str, float]] = field(default_factory=dict, compare=False)
