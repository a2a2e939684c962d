"""Videos of a dataset and their clips: the catalogue of a data directory, the splits, the clip tables."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from vpbench.datasets.video.decode import Preprocess, Source, kept_numbers
from vpbench.datasets.video.frame_cache import cached_frames
from vpbench.errors import UserError

VAL_SEED = 20160  # fixed: every run, whatever its seed, holds out the same validation videos


@dataclass(frozen=True)
class Video:
    """A source matched to a dataset: its key, subject and action, and how clips are cut from it."""

    source: Source
    key: str  # e.g. person01_boxing_d1, S1 Walking 1.54138969
    subject: int
    action: str
    train_stride: int  # frames between the starts of consecutive clips, in the training split
    eval_stride: int  # the same, in the validation and test splits
    ranges: tuple[tuple[int, int], ...] | None = None  # frame-number ranges to use (1-based, inclusive)


@dataclass
class Catalog:
    """The videos of one dataset found in a data directory, split by subject (or by folder: ``subjects`` empty)."""

    dataset: str
    root: Path
    prep: Preprocess
    videos: dict[str, list[Video]]  # "train", "test" (and "val" when the data has its own)
    subjects: dict[str, list[int]]  # the subjects each split should have
    subject_name: Callable[[int], str]
    hint: str  # the names the dataset expects, for error messages
    missing: dict[str, list[str]]  # subject name -> expected videos not found
    notes: list[str]  # how the directory was read: layouts, annotation files, duplicates

    @property
    def kind(self) -> str:
        """``<dataset>-<layout>``: ``kth-avi``, ``human36m-mp4``, ``kth-frames``, ..."""
        kinds = sorted({v.source.kind for vids in self.videos.values() for v in vids})
        return f"{self.dataset}-{'+'.join(kinds) or 'none'}"

    def subjects_text(self, split: str) -> str:
        """The subjects of ``split``: ``person17-person25``, ``S9, S11``; its folder for a dataset split by
        folder (``the test/ folder``)."""
        if split not in self.subjects:
            return f"the {split}/ folder"
        ids = self.subjects[split]
        names = [self.subject_name(s) for s in ids]
        consecutive = len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1))
        return f"{names[0]}-{names[-1]}" if consecutive else ", ".join(names)

    def require_videos(self) -> None:
        """A clear error when a split has no video."""
        for split, videos in self.videos.items():
            if not videos:
                raise UserError(f"no {split} videos of {self.dataset} (subjects {self.subjects_text(split)}) in "
                                f"{self.root}; expected {self.hint} (`bench data check --dataset {self.dataset} "
                                f"--data-dir {self.root}` lists what is there)")


@dataclass(frozen=True)
class Loaded:
    """A video with its cached frames."""

    video: Video
    frames: np.ndarray  # memory map [N, C, S, S]
    numbers: np.ndarray  # frame numbers [N]
    path: Path  # the cache file


def load_videos(videos: list[Video], prep: Preprocess, folder: Path,
                on_error: Callable[[Video, UserError], None] | None = None) -> list[Loaded]:
    """The videos with their cached frames; a bad video raises, or goes to ``on_error`` when given."""
    out = []
    for video in tqdm(videos, desc="videos", unit="video", leave=False, disable=None):
        try:
            frames, path = cached_frames(video.source, prep, folder)
        except UserError as err:
            if on_error is None:
                raise
            on_error(video, err)
            continue
        out.append(Loaded(video, frames, kept_numbers(video.source, prep.step, len(frames)), path))
    return out


def runs(numbers: np.ndarray, step: int, ranges: Iterable[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """Maximal runs [start, stop) of frame indices whose numbers go up by ``step`` and stay inside one
    of ``ranges`` (frames outside every range are dropped; no ranges: one range of everything)."""
    label = np.zeros(len(numbers), dtype=np.int64)
    if ranges is not None:
        label[:] = -1
        for r, (first, last) in enumerate(ranges):
            label[(numbers >= first) & (numbers <= last)] = r
    cuts = np.flatnonzero((np.diff(numbers) != step) | (np.diff(label) != 0)) + 1
    bounds = zip([0, *cuts], [*cuts, len(numbers)])
    return [(int(a), int(b)) for a, b in bounds if b > a and label[a] >= 0]


def clip_starts(loaded: Loaded, length: int, step: int, stride: int) -> np.ndarray:
    """First frames of the clips of ``length`` frames of one video, ascending: in each run, clips
    counted back from the run's last frame, ``stride`` frames apart (PredRNN's rule)."""
    starts = [np.arange(b - length, a - 1, -stride) for a, b in runs(loaded.numbers, step, loaded.video.ranges)]
    return np.sort(np.concatenate([np.zeros(0, np.int64), *starts]))


def clip_table(videos: list[Loaded], offset: int, length: int, step: int, split: str) -> np.ndarray:
    """Clips [N, 2] (index of the video counted from ``offset``, first frame) of ``split`` ("train" or eval)."""
    rows = [np.zeros((0, 2), np.int64)]
    for i, item in enumerate(videos):
        stride = item.video.train_stride if split == "train" else item.video.eval_stride
        starts = clip_starts(item, length, step, stride)
        rows.append(np.stack([np.full(len(starts), offset + i), starts], axis=1))
    return np.concatenate(rows)


def spread(clips: np.ndarray, count: int | None) -> np.ndarray:
    """At most ``count`` clips, evenly spaced over the list (all of them when ``count`` is None)."""
    if count is None or count >= len(clips):
        return clips
    return clips[np.linspace(0, len(clips) - 1, count).round().astype(np.int64)]


def make_splits(train: list[Loaded], test: list[Loaded], length: int, step: int, val_sequences: int,
                test_sequences: int | None, val: list[Loaded] | None = None) -> tuple[list[Loaded], dict[str, np.ndarray]]:
    """The videos in (train, val, test) order and each split's clips [N, 2] (video index, first frame).

    Validation holds out whole training videos, chosen in a fixed random order until they give
    ``val_sequences`` clips (never the last training video), unless videos of its own are given (``val``);
    its clips are cut like the test's. The test set takes ``test_sequences`` clips evenly spaced over all
    test clips (None: all)."""
    if val is None:
        counts = [len(clip_starts(v, length, step, v.video.eval_stride)) for v in train]
        held, total = [], 0
        for i in np.random.default_rng(VAL_SEED).permutation(len(train)):
            if total >= val_sequences or len(held) == len(train) - 1:
                break
            held.append(int(i))
            total += counts[i]
        val = [train[i] for i in sorted(held)]
        fit = [v for i, v in enumerate(train) if i not in held]
    else:
        fit = train
    videos = fit + val + test
    clips = {
        "train": clip_table(fit, 0, length, step, "train"),
        "val": spread(clip_table(val, len(fit), length, step, "eval"), val_sequences),
        "test": spread(clip_table(test, len(fit) + len(val), length, step, "eval"), test_sequences),
    }
    return videos, clips


def require_clips(catalog: Catalog, clips: dict[str, np.ndarray], length: int) -> None:
    """A clear error when a split has no clip."""
    for split, table in clips.items():
        if len(table) == 0:
            why = ("validation holds out whole training videos, and there are too few of them (or they are too "
                   "short); add training videos" if split == "val" else
                   f"every {split} video is shorter than {length} frames; add videos or lower "
                   "dataset.input_frames/output_frames")
            raise UserError(f"no {split} clips of {catalog.dataset} in {catalog.root}: {why}")
