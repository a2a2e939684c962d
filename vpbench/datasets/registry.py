"""The registry of datasets, built by name.

A dataset is one file: its builder ``(spec, config, data_dir, seed) -> SequenceSource`` registers
itself with ``@register_dataset``, declaring its shape, its options with their types and defaults per
preset, its training options per preset, the published tables measured on it and (for ``bench data
check``) how to inspect a data directory. Built-in datasets are found by importing every module of
``vpbench.datasets``; datasets from other packages join like models do (see :mod:`vpbench.plugins`):
``--dataset module:factory``, the ``vpbench.datasets`` entry points and ``VPBENCH_PLUGINS``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vpbench import plugins
from vpbench.datasets.base import DataSpec, Option, ReferenceTable, SequenceSource, existing_dir, positive_int
from vpbench.errors import UserError

GROUP = "vpbench.datasets"
Builder = Callable[[DataSpec, Mapping[str, Any], "Path | None", int], SequenceSource]
# (data_dir, config) -> options read from the data (e.g. the lengths and frame shape of arrays of your own)
Probe = Callable[["Path | None", Mapping[str, Any]], dict[str, Any]]
# (data_dir, config, spec) -> (lines describing what is there, problems that would make a run fail)
Inspector = Callable[["Path | None", Mapping[str, Any], DataSpec], tuple[list[str], list[str]]]
Shape = tuple[int, int, int] | Callable[[Mapping[str, Any]], tuple[int, int, int]]


@dataclass(frozen=True)
class DatasetEntry:
    """What the registry knows about one dataset."""

    name: str
    build: Builder
    description: str
    frames: tuple[int, int] | Mapping[str, tuple[int, int]]  # default (T_in, T_out), or per preset
    shape: Shape  # (C, H, W), or a function of the resolved options
    options: Mapping[str, Option] = field(default_factory=dict)
    train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # preset -> train options
    tables: Sequence[ReferenceTable] = ()
    inspect: Inspector | None = None
    origin: Mapping[str, str | None] = field(default_factory=lambda: {"kind": "builtin"})
    rank: float = math.inf
    probe: Probe | None = None

    def all_options(self) -> dict[str, Option]:
        """Its options, with the input and output lengths first (null: read from the data by ``probe``)."""
        frames = self.frames
        per_preset = isinstance(frames, Mapping)
        lengths = [{p: f[i] for p, f in frames.items()} if per_preset else frames[i] for i in (0, 1)]
        return {
            "input_frames": positive_int(lengths[0], "input frames per sequence", nullable=self.probe is not None),
            "output_frames": positive_int(lengths[1], "predicted frames per sequence",
                                          nullable=self.probe is not None),
            **self.options,
        }

    def config(self, preset: str, sets: Mapping[str, Any], data_dir: str | Path | None = None) -> dict[str, Any]:
        """The resolved options: the defaults for ``preset``, then ``--set dataset.*``, then what ``probe``
        reads from the data in ``data_dir``, each checked."""
        options = self.all_options()
        unknown = sorted(set(sets) - set(options))
        if unknown:
            raise UserError(f"dataset {self.name!r} has no option {', '.join(unknown)}; it has: "
                            f"{', '.join(sorted(options))}")
        config = {name: option.default_for(preset) for name, option in options.items()}
        config.update(sets)
        if self.probe is not None:
            config.update(self.probe(existing_dir(data_dir), config))
        for name, option in options.items():
            if not option.valid(config[name]):
                raise UserError(f"invalid value dataset.{name}={config[name]!r}: must be {option.describe()}")
        return config

    def train_for(self, preset: str) -> dict[str, Any]:
        """Training options this dataset sets under ``preset`` (e.g. the paper's rate for Moving MNIST)."""
        return dict(self.train.get(preset, {}))

    def spec(self, config: Mapping[str, Any]) -> DataSpec:
        """The shape of the sequences under resolved options."""
        shape = self.shape(config) if callable(self.shape) else self.shape
        return DataSpec(self.name, int(config["input_frames"]), int(config["output_frames"]), *shape)


_DATASETS: dict[str, DatasetEntry] = {}
_UNAVAILABLE: dict[str, str] = {}
_PLUGINS_LOADED = False
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def register_dataset(name: str, *, description: str, frames: tuple[int, int] | Mapping[str, tuple[int, int]],
                     shape: Shape, options: Mapping[str, Option] | None = None,
                     train: Mapping[str, Mapping[str, Any]] | None = None, tables: Sequence[ReferenceTable] = (),
                     inspect: Inspector | None = None, rank: float = math.inf,
                     probe: Probe | None = None) -> Callable[[Builder], Builder]:
    """Decorator adding a builder ``(spec, config, data_dir, seed) -> SequenceSource`` (see :class:`DatasetEntry`)."""

    def add(build: Builder) -> Builder:
        if not NAME_PATTERN.fullmatch(name):
            raise UserError(f"invalid dataset name {name!r}: use letters, digits, '_', '.' and '-' only")
        if name in _DATASETS:
            owner = _DATASETS[name].origin.get("source", "a built-in dataset")
            raise UserError(f"dataset name {name!r} is already taken by {owner}; register it under another name")
        reserved = {"input_frames", "output_frames"} & set(options or {})
        if reserved:
            raise UserError(f"dataset {name!r}: declare the input and output lengths with frames=, not as options")
        _DATASETS[name] = DatasetEntry(name, build, description, frames, shape, dict(options or {}),
                                       dict(train or {}), tuple(tables), inspect, plugins.origin_of(build), rank, probe)
        return build

    return add


def entries() -> dict[str, DatasetEntry]:
    """Every registered dataset; the installed plug-ins load on the first call."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        plugins.load_entry_points(GROUP, "dataset", _adopt, _UNAVAILABLE)
        plugins.import_environment_plugins()
    return _DATASETS


def _adopt(build: Any, name: str, what: str) -> str:
    """The registry name of a builder that ``@register_dataset`` declared."""
    for entry in entries().values():
        if entry.build is build:
            return entry.name
    raise UserError(f"{what}: {getattr(build, '__qualname__', type(build).__name__)} is not a registered dataset; "
                    "decorate its builder with @register_dataset from vpbench.datasets (its name, frames and shape)")


def load_spec(spec: str) -> str:
    """Import ``module:builder`` and return the name its dataset is registered under."""
    module, _, attr = spec.partition(":")
    what = f"dataset spec {spec!r}"
    return _adopt(plugins.resolve(module, attr, what), plugins.spec_name(spec), what)


def dataset_names() -> list[str]:
    """Every dataset, in rank order, then in registration order."""
    registry = entries()
    order = {name: i for i, name in enumerate(registry)}
    return sorted(registry, key=lambda n: (registry[n].rank, order[n]))


def dataset_entry(name: str) -> DatasetEntry:
    """The dataset ``name``, or of a ``module:builder`` spec."""
    registry = entries()
    if ":" in name:
        name = load_spec(name)
    if name not in registry:
        if name in _UNAVAILABLE:
            raise UserError(_UNAVAILABLE[name])
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())} (see `bench list`), "
                        "or give a plug-in as module:builder")
    return registry[name]


def build_dataset(name: str, config: Mapping[str, Any], data_dir: str | Path | None, seed: int) -> SequenceSource:
    """Build dataset ``name`` from its resolved options."""
    entry = dataset_entry(name)
    return entry.build(entry.spec(config), config, existing_dir(data_dir), seed)


def reference_tables() -> list[tuple[str, ReferenceTable]]:
    """Every dataset's reference tables, with the dataset's name (``(dataset, table)`` pairs)."""
    return [(name, table) for name in dataset_names() for table in entries()[name].tables]

