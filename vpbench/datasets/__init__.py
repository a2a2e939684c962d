"""Datasets by name: ``build_dataset(name, config, data_dir, seed) -> SequenceSource``."""
from vpbench.datasets.base import (
    DataSpec,
    EpochBatches,
    SequenceSource,
    build_dataset,
    dataset_entry,
    dataset_names,
    register_dataset,
)

from vpbench.datasets import moving_mnist  # noqa: E402,F401  registers mmnist, mmnist-long  isort: skip
from vpbench.datasets import kth, human36m  # noqa: E402,F401  registers kth, human36m  isort: skip

__all__ = [
    "DataSpec",
    "EpochBatches",
    "SequenceSource",
    "build_dataset",
    "dataset_entry",
    "dataset_names",
    "register_dataset",
]
