"""``bench data download NAME [--to DIR]``: a published data set's files from their official addresses (or a
mirror), resumable and checked, archives extracted, then ``bench data check`` on the folder when vpbench reads
that data set. Without NAME: the data sets it knows. A data set whose licence forbids redistribution
(Human3.6M) is not downloaded: its instructions are printed instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vpbench import presets
from vpbench.datasets import dataset_entry, dataset_names
from vpbench.diagnostics.data_check import data_check
from vpbench.fetch import mirror_from
from vpbench.fetch.catalogue import DataEntry, data_entries, data_entry
from vpbench.fetch.entries import fetch_entry


def listing() -> list[str]:
    """One line per published data set: its name, what it is, and how it is fetched."""
    lines = []
    for entry in data_entries().values():
        how = "instructions only (licence)" if entry.instructions else \
            f"{len(entry.files)} file{'s' * (len(entry.files) > 1)}{' + the files its catalogue lists' * bool(entry.listed)}"
        lines.append(f"{entry.name:22s} {entry.title} [{how}]")
    return lines


def checkable(entry: DataEntry) -> str | None:
    """The vpbench dataset ``bench data check`` reads the entry's files as, when vpbench has it and can check it."""
    if entry.dataset is None or entry.dataset not in dataset_names():
        return None
    return entry.dataset if dataset_entry(entry.dataset).inspect is not None else None


def download(name: str, to: str | Path | None = None, *, mirror: str | None = None, sha256: str | None = None,
             preset: str = "quick") -> Path | None:
    """Fetch the published data set ``name`` into ``to`` (default ``data/<name>``) and check it; returns the folder
    (None for a data set that is not downloaded)."""
    entry = data_entry(name)
    if entry.instructions:
        print(f"{entry.title}: not downloaded.\n{entry.instructions.rstrip()}")
        return None
    folder = Path(to if to is not None else Path("data") / name).expanduser()
    source = mirror_from(mirror)
    print(f"{entry.title} -> {folder}" + (f" (through the mirror {source})" if source else ""))
    fetch_entry(entry, folder, mirror=source, sha256=sha256)
    dataset = checkable(entry)
    if dataset is None:
        print(f"done: {folder}" + (f" (vpbench reads it as --dataset {entry.dataset})" if entry.dataset else ""))
        return folder
    print(f"bench data check --dataset {dataset} --data-dir {folder}")
    data_check(dataset, folder, preset=preset)
    print(f"done: --dataset {dataset} --data-dir {folder}")
    return folder


def command(args: argparse.Namespace) -> None:
    """``bench data download``."""
    if args.name is None:
        print("\n".join(listing()))
        return
    download(args.name, args.to, mirror=args.mirror, sha256=args.sha256,
             preset=presets.choose(args.preset, args.protocol, "cpu").name)
