"""Datasets by name: ``build_dataset(name, config, data_dir, seed) -> SequenceSource``, one file per dataset,
video decoding in :mod:`vpbench.datasets.video`, and plug-in datasets from outside the package.

Every module of this package is imported once, and the datasets it declares with ``@register_dataset``
register themselves; nothing else lists them. Data is read from the files users download, never fetched at
run time. May import the foundation modules (errors, presets, parallel, plugins); never models, metrics, the
harness or anything above.
"""
import importlib
import pkgutil

from vpbench.datasets.base import DataSpec, EpochBatches, Option, ReferenceTable, SequenceSource, positive_int
from vpbench.datasets.registry import (
    DatasetEntry,
    build_dataset,
    dataset_entry,
    dataset_names,
    entries,
    register_dataset,
)


def discover() -> None:
    """Import every module of ``vpbench.datasets`` (its built-in datasets register on import)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


discover()

__all__ = [
    "DataSpec",
    "DatasetEntry",
    "EpochBatches",
    "Option",
    "ReferenceTable",
    "SequenceSource",
    "build_dataset",
    "dataset_entry",
    "dataset_names",
    "entries",
    "positive_int",
    "register_dataset",
]
