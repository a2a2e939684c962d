"""``bench list [WHAT]``: the models (with tags, and ``[external: ...]`` for plug-ins), groups, datasets, metrics
and presets, one line each; ``bench list metrics`` (or another of them) prints that list alone."""
from __future__ import annotations

import argparse

from vpbench import presets
from vpbench.datasets import dataset_entry, dataset_names
from vpbench.errors import UserError
from vpbench.metrics.registry import PERCEPTUAL_HIGHER_IS_BETTER, get_metric, metric_names
from vpbench.models import GROUPS, get_entry, group_members, model_names


def _origin(origin: dict) -> str:
    return "" if origin.get("kind") == "builtin" else f"  [external: {origin.get('source', '')}]"


def _models() -> None:
    print("models:")
    for name in model_names():
        entry = get_entry(name)
        tags = ", ".join(sorted(entry.tags)) or "-"
        print(f"  {name:<18} {entry.label:<22} {tags}{_origin(entry.origin)}")


def _groups() -> None:
    print("groups:")
    for group, description in GROUPS.items():
        print(f"  {group:<18} {description}: {', '.join(group_members(group)) or '(none registered)'}")


def _datasets() -> None:
    print("datasets:")
    for name in dataset_names():
        entry = dataset_entry(name)
        print(f"  {name:<18} {entry.description}{_origin(entry.origin)}")


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _metrics() -> None:
    print("metrics (--metrics NAMES):")
    for name in metric_names():
        entry = get_metric(name)
        source = "built-in" if entry.origin.get("kind") == "builtin" else f"external: {entry.origin.get('source')}"
        print(f"  {name:<18} {entry.label:<22} {_direction(entry.higher_is_better):<17} {source}")
    for name, higher in PERCEPTUAL_HIGHER_IS_BETTER.items():
        print(f"  {name:<18} {name.upper():<22} {_direction(higher):<17} built-in, needs a weight file: "
              f"--set metrics.{name}_weights=FILE")


def _presets() -> None:
    print("presets (--protocol, --preset):")
    for preset in presets.PRESETS.values():
        print(f"  {preset.name:<18} protocol {preset.protocol}, scale {preset.scale}")


LISTS = {"models": _models, "groups": _groups, "datasets": _datasets, "metrics": _metrics, "presets": _presets}


def command(args: argparse.Namespace) -> None:
    what = getattr(args, "what", None)
    if what is not None and what not in LISTS:
        raise UserError(f"{what!r}: choose one of {', '.join(LISTS)} (or nothing, for every list)")
    for name, show in LISTS.items():
        if what in (None, name):
            show()
