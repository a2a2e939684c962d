"""Clips of real videos as a dataset (KTH, Human3.6M), and what ``bench data check`` says about a data directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, SequenceSource, array_digest
from vpbench.datasets.video.catalogue import Catalog, Loaded, load_videos, make_splits, require_clips
from vpbench.datasets.video.frame_cache import cache_root

CatalogFn = Callable[["Path | None", Mapping[str, Any], DataSpec], Catalog]


class VideoClips(SequenceSource):
    """Clips of ``spec.total_frames`` frames from cached videos: training clips in a new order each
    epoch (the first ``train_sequences`` of it when set), fixed validation and test clips.

    Only the (small) validation split stays in memory; training batches and the test split are
    gathered from the memory-mapped cache when asked for."""

    def __init__(self, spec: DataSpec, catalog: Catalog, config: Mapping[str, Any], seed: int):
        self.spec, self.seed = spec, seed
        catalog.require_videos()
        folder = cache_root(config.get("cache_dir")) / spec.name
        step, length = catalog.prep.step, spec.total_frames
        train, test = (load_videos(catalog.videos[s], catalog.prep, folder) for s in ("train", "test"))
        val = load_videos(catalog.videos["val"], catalog.prep, folder) if "val" in catalog.videos else None
        videos, clips = make_splits(train, test, length, step, int(config["val_sequences"]),
                                    config.get("test_sequences"), val)
        require_clips(catalog, clips, length)
        self._paths = [v.path for v in videos]
        self._frames: list[np.ndarray] | None = [v.frames for v in videos]
        self.train_clips = clips["train"]
        self.train_sequences = config.get("train_sequences")
        self._epoch: tuple[int, np.ndarray] | None = None
        self._val: np.ndarray | None = None
        self.keys = [v.video.key for v in videos]
        self.clips = clips
        count = {s: len(np.unique(t[:, 0])) for s, t in clips.items()}
        digest = array_digest(self.split("test"))
        self.provenance = {
            "kind": catalog.kind,
            "data_dir": str(catalog.root),
            "preprocessing": catalog.prep.tag(),
            "notes": list(catalog.notes),
            "videos": count,
            "clips": {s: len(t) for s, t in clips.items()},
            "test_sequences": len(clips["test"]),
            "test_sha256": digest,
            "label": f"{catalog.kind} test set [{digest[:8]}]: {len(clips['test'])} clips of {count['test']} videos "
                     f"(subjects {catalog.subjects_text('test')}), {catalog.prep.tag()}",
        }

    @property
    def frames(self) -> list[np.ndarray]:
        """Each video's cached frames (re-opened after unpickling, e.g. in a DataLoader worker)."""
        if self._frames is None:
            self._frames = [np.load(p, mmap_mode="r", allow_pickle=False) for p in self._paths]
        return self._frames

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_frames": None, "_val": None}  # memory maps travel as paths, not copies

    def _gather(self, clips: np.ndarray) -> np.ndarray:
        """Clips [N, 2] -> uint8 [N, T, C, H, W]."""
        spec, frames = self.spec, self.frames
        out = np.empty((len(clips), spec.total_frames, spec.channels, spec.height, spec.width), np.uint8)
        for i, (video, start) in enumerate(clips):
            out[i] = frames[video][start : start + spec.total_frames]
        return out

    def _order(self, epoch: int) -> np.ndarray:
        """This epoch's training clips, in order (depends on seed and epoch only)."""
        if self._epoch is None or self._epoch[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train_clips))
            self._epoch = (epoch, order[: self.train_sequences])
        return self._epoch[1]

    def batches_per_epoch(self, batch_size: int) -> int:
        size = min(len(self.train_clips), self.train_sequences or len(self.train_clips))
        return max(1, size // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray:
        order = self._order(epoch)
        return self._gather(self.train_clips[order[(index * batch_size + np.arange(batch_size)) % len(order)]])

    def split(self, name: str) -> np.ndarray:
        if name not in ("val", "test"):
            raise ValueError(f"no split {name!r}: val or test")
        if name == "test":
            return self._gather(self.clips["test"])
        if self._val is None:
            self._val = self._gather(self.clips["val"])
        return self._val


def inspector(catalog: CatalogFn) -> Callable[[Path | None, Mapping[str, Any], DataSpec], tuple[list[str], list[str]]]:
    """``bench data check`` for a video dataset whose videos ``catalog`` finds: what the directory holds,
    split by split, every missing and unreadable file, and the problems that would make a run fail.

    It reads the directory as a run would (same names, splits and clips) and decodes every video that is
    not cached yet, so it also fills the cache."""

    def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
        found = catalog(root, config, spec)
        folder = cache_root(config.get("cache_dir")) / spec.name
        unreadable: list[str] = []
        loaded = {split: load_videos(videos, found.prep, folder, on_error=lambda video, err: unreadable.append(str(err)))
                  for split, videos in found.videos.items()}
        videos, clips = make_splits(loaded["train"], loaded["test"], spec.total_frames, found.prep.step,
                                    int(config["val_sequences"]), config.get("test_sequences"), loaded.get("val"))
        lines = [f"{spec.name} in {found.root} ({found.kind})", *(f"  {line}" for line in found.notes),
                 f"  preprocessing: {found.prep.tag()}; cache: {folder}",
                 f"  clips: {spec.total_frames} frames ({spec.input_frames} -> {spec.output_frames}), "
                 f"{spec.channels}x{spec.height}x{spec.width}",
                 "", f"{'split':<6} {'videos':>6} {'frames':>8} {'clips':>7}  subjects"]
        for split, table in clips.items():
            used = [videos[i] for i in sorted({int(i) for i in table[:, 0]})]
            lines.append(f"{split:<6} {len(used):>6} {sum(len(v.frames) for v in used):>8} {len(table):>7}  "
                         f"{_subjects(found, split, used)}")
        lines.append("\nmissing:" + ("" if found.missing else " none"))
        lines += [f"  {subject}: {', '.join(names)}" for subject, names in found.missing.items()]
        lines.append(f"unreadable: {len(unreadable) or 'none'}")
        lines += [f"  {line}" for line in unreadable]
        problems = [f"{len(unreadable)} unreadable videos"] if unreadable else []
        problems += [f"no {split} clips" for split, table in clips.items() if len(table) == 0]
        return lines, problems

    return inspect


def _subjects(catalog: Catalog, split: str, used: list[Loaded]) -> str:
    """``person01, person02 (2 of person01-person16)``; validation: held out from the training subjects."""
    if not catalog.subjects:
        return catalog.subjects_text(split)
    if split == "val":
        return "whole training videos held out"
    found = sorted({v.video.subject for v in used})
    names = ", ".join(catalog.subject_name(s) for s in found) or "none"
    return f"{names} ({len(found)} of {catalog.subjects_text(split)})"
