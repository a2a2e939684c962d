"""``bench data check``: what a data directory holds for a dataset, split by split.

The dataset's own inspector reads the directory as a run would (same files, splits and clips) and lists
what is missing or unreadable; the check ends with a one-line error (exit code 2) when a run on this
directory would fail.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from vpbench import config as cfg
from vpbench import presets
from vpbench.datasets import dataset_entry, dataset_names
from vpbench.datasets.base import existing_dir
from vpbench.errors import UserError


def data_check(dataset: str, data_dir: str | Path, *, preset: str = "quick", sets: Sequence[str] = ()) -> None:
    """Print what ``data_dir`` holds for ``dataset`` under its options (``--set dataset.KEY=VALUE``); a
    UserError when a run on it would fail."""
    entry = dataset_entry(dataset)
    if entry.inspect is None:
        checkable = [n for n in dataset_names() if dataset_entry(n).inspect is not None]
        raise UserError(f"`bench data check` reads datasets from a data directory ({', '.join(checkable)}); "
                        f"{entry.name!r} has nothing to check")
    root = existing_dir(data_dir)
    config = cfg.dataset_config(cfg.load_preset(preset), entry.name, cfg.parse_sets(sets)["dataset"], root)
    lines, problems = entry.inspect(root, config, entry.spec(config))
    print(f"preset {preset}")
    print("\n".join(lines))
    if problems:
        raise UserError(f"{entry.name} in {root}: {', '.join(problems)}; a run would fail (details above)")


def command(args: argparse.Namespace) -> None:
    """``bench data check``."""
    data_check(args.dataset, args.data_dir, preset=presets.choose(args.preset, args.protocol, "cpu").name,
               sets=args.sets)
