"""``bench list``: the models (with tags, and ``[external: ...]`` for plug-ins), groups, datasets, metrics,
presets and launchers, one line each."""
from __future__ import annotations

import argparse

from vpbench import presets
from vpbench.datasets import dataset_entry, dataset_names
from vpbench.models import GROUPS, get_entry, group_members, model_names


def _origin(origin: dict) -> str:
    return "" if origin.get("kind") == "builtin" else f"  [external: {origin.get('source', '')}]"


def command(args: argparse.Namespace) -> None:
    print("models:")
    for name in model_names():
        entry = get_entry(name)
        tags = ", ".join(sorted(entry.tags)) or "-"
        print(f"  {name:<18} {entry.label:<22} {tags}{_origin(entry.origin)}")
    print("groups:")
    for group, description in GROUPS.items():
        print(f"  {group:<18} {description}: {', '.join(group_members(group)) or '(none registered)'}")
    print("datasets:")
    for name in dataset_names():
        entry = dataset_entry(name)
        print(f"  {name:<18} {entry.description}{_origin(entry.origin)}")
    print("presets (--protocol, --preset):")
    for preset in presets.PRESETS.values():
        print(f"  {preset.name:<18} protocol {preset.protocol}, scale {preset.scale}")
