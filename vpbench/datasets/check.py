"""``bench data check``: what a data directory holds for a video dataset, split by split.

It reads the directory as a run would (same names, splits and clips), decodes every video that is not
cached yet (so it also fills the cache), and lists every missing and unreadable file. It ends with a
one-line error (exit code 2) when a run on this directory would fail: an unreadable video or a split
without clips.
"""
from __future__ import annotations

from pathlib import Path

from vpbench.config import dataset_config, load_preset
from vpbench.datasets import human36m, kth
from vpbench.datasets.base import dataset_entry, existing_dir
from vpbench.datasets.video import Catalog, Loaded, cache_root, load_videos, make_splits
from vpbench.errors import UserError

CATALOGS = {"kth": kth.catalog, "human36m": human36m.catalog}


def data_check(dataset: str, data_dir: str | Path, *, preset: str = "quick") -> None:
    """Print videos, subjects, frames and clips per split, and every missing or unreadable file."""
    if dataset not in CATALOGS:
        raise UserError(f"`bench data check` reads video datasets ({', '.join(CATALOGS)}), not {dataset!r}")
    config = dataset_config(load_preset(preset), dataset, {})
    spec = dataset_entry(dataset).spec(config)
    catalog = CATALOGS[dataset](existing_dir(data_dir), config, spec)
    folder = cache_root(config.get("cache_dir")) / dataset
    unreadable: list[str] = []
    train, test = (load_videos(catalog.videos[s], catalog.prep, folder,
                               on_error=lambda video, err: unreadable.append(str(err))) for s in ("train", "test"))
    videos, clips = make_splits(train, test, spec.total_frames, catalog.prep.step, int(config["val_sequences"]),
                                config.get("test_sequences"))
    print(f"{dataset} in {catalog.root} ({catalog.kind}, preset {preset})")
    for line in catalog.notes:
        print(f"  {line}")
    print(f"  preprocessing: {catalog.prep.tag()}; cache: {folder}")
    print(f"  clips: {spec.total_frames} frames ({spec.input_frames} -> {spec.output_frames}), "
          f"{spec.channels}x{spec.height}x{spec.width}")
    print(f"\n{'split':<6} {'videos':>6} {'frames':>8} {'clips':>7}  subjects")
    for split, table in clips.items():
        used = [videos[i] for i in sorted({int(i) for i in table[:, 0]})]
        print(f"{split:<6} {len(used):>6} {sum(len(v.frames) for v in used):>8} {len(table):>7}  "
              f"{_subjects(catalog, split, used)}")
    print("\nmissing:" + ("" if catalog.missing else " none"))
    for subject, names in catalog.missing.items():
        print(f"  {subject}: {', '.join(names)}")
    print(f"unreadable: {len(unreadable) or 'none'}")
    for line in unreadable:
        print(f"  {line}")
    problems = [f"{len(unreadable)} unreadable videos"] if unreadable else []
    problems += [f"no {split} clips" for split, table in clips.items() if len(table) == 0]
    if problems:
        raise UserError(f"{dataset} in {catalog.root}: {', '.join(problems)}; a run would fail (details above)")


def _subjects(catalog: Catalog, split: str, used: list[Loaded]) -> str:
    """``person01, person02 (2 of person01-person16)``; validation: held out from the training subjects."""
    if split == "val":
        return "whole training videos held out"
    found = sorted({v.video.subject for v in used})
    names = ", ".join(catalog.subject_name(s) for s in found) or "none"
    return f"{names} ({len(found)} of {catalog.subjects_text(split)})"
