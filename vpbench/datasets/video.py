"""Real videos (KTH, Human3.6M): finding, decoding with PyAV, preprocessing, the frame cache, clips.

A data directory holds each video either as a file (decoded with PyAV) or as numbered frame images
(one folder per video, or a shared folder with the video's name before the frame number). Each
video is decoded once: its preprocessed frames, uint8 [N, C, S, S], go to one ``.npy`` file in the
cache directory, keyed by the source (resolved path, size and mtime of every file) and the
preprocessing. Later epochs and later runs memory-map that file and decode nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import av
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from vpbench.datasets.base import DataSpec, SequenceSource, array_digest
from vpbench.errors import UserError

VIDEO_SUFFIXES = (".avi", ".mp4")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INTERPOLATIONS = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR}
VAL_SEED = 20160  # fixed: every run, whatever its seed, holds out the same validation videos
CACHE_VERSION = 1  # bump when decoding or preprocessing changes what a cache file holds
_NUMBERED = re.compile(r"^(.*?)(\d+)$")  # an image name ending in its frame number


@dataclass(frozen=True)
class Preprocess:
    """Keep every ``step``-th frame, center-crop it to the largest square, make it gray or RGB and
    resize it to ``size`` x ``size`` (``area``: PIL box filter; ``bilinear``: PIL's antialiased bilinear)."""

    size: int
    gray: bool
    interpolation: str = "area"
    step: int = 1

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise UserError(f"invalid value dataset.interpolation={self.interpolation!r}: "
                            f"must be {' or '.join(INTERPOLATIONS)}")

    @property
    def channels(self) -> int:
        return 1 if self.gray else 3

    def tag(self) -> str:
        """What the preprocessing does, for cache keys and provenance."""
        mode = "gray" if self.gray else "rgb"
        return f"{mode} center-crop {self.size}x{self.size} {self.interpolation} step {self.step}"

    def __call__(self, image: Image.Image) -> np.ndarray:
        """A frame of any size -> uint8 [C, size, size]."""
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side)).convert("L" if self.gray else "RGB")
        array = np.asarray(image.resize((self.size, self.size), INTERPOLATIONS[self.interpolation]))
        return array[None] if self.gray else array.transpose(2, 0, 1)


@dataclass(frozen=True)
class Source:
    """One video as found: a video file, or the numbered frame images of one video."""

    name: str  # POSIX path relative to the data directory, without suffix or frame number
    path: Path  # the video file, or the folder of the images
    images: tuple[Path, ...] = ()  # frame layout: the images, ordered by frame number
    numbers: tuple[int, ...] = ()  # frame layout: their frame numbers

    @property
    def kind(self) -> str:
        return "frames" if self.images else self.path.suffix.lower().lstrip(".")


def find_sources(root: Path) -> list[Source]:
    """Every video file under ``root`` and every group of numbered images (same folder, same name
    before the number: ``image_0001.png``, ``S9_Walking.54138969_000001.jpg``); video files first."""
    files: list[Source] = []
    groups: dict[tuple[Path, str], list[tuple[int, Path]]] = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(folder) / name
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                files.append(Source(path.relative_to(root).with_suffix("").as_posix(), path))
            elif suffix in IMAGE_SUFFIXES and (match := _NUMBERED.match(path.stem)):
                groups.setdefault((Path(folder), match.group(1)), []).append((int(match.group(2)), path))
    images = []
    for (folder, prefix), frames in groups.items():
        frames.sort()
        stem = prefix.rstrip("_-. ")
        name = (folder / stem if stem else folder).relative_to(root).as_posix()
        images.append(Source(name, folder, tuple(p for _, p in frames), tuple(n for n, _ in frames)))
    return sorted(files, key=lambda s: s.name) + sorted(images, key=lambda s: s.name)


def kept_numbers(source: Source, step: int, count: int | None = None) -> np.ndarray:
    """Frame numbers (1-based) of the frames kept with ``step``: of the images, or of ``count``
    decoded frames of a video file."""
    if not source.images:
        return 1 + step * np.arange(count or 0)
    numbers = np.asarray(source.numbers)
    return numbers[(numbers - numbers[0]) % step == 0]


def decode(source: Source, prep: Preprocess) -> np.ndarray:
    """The preprocessed frames kept by ``prep`` (every ``step``-th): uint8 [N, C, S, S]."""
    fix = "re-download it or remove it (`bench data check` lists every unreadable file)"
    frames = []
    if source.images:
        by_number = dict(zip(source.numbers, source.images))
        for number in kept_numbers(source, prep.step):
            try:
                with Image.open(by_number[int(number)]) as image:
                    frames.append(prep(image))
            except OSError as err:
                raise UserError(f"{by_number[int(number)]}: cannot be read as an image ({err}); {fix}") from None
        return np.stack(frames)
    try:
        with av.open(str(source.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i % prep.step == 0:
                    frames.append(prep(frame.to_image()))
    except (av.FFmpegError, OSError, IndexError) as err:
        reason = "no video stream" if isinstance(err, IndexError) else getattr(err, "strerror", None) or str(err)
        raise UserError(f"{source.path}: cannot be decoded as a video ({reason}); {fix}") from None
    if not frames:
        raise UserError(f"{source.path}: holds no video frames; {fix}")
    return np.stack(frames)


def cache_root(value: str | None) -> Path:
    """The cache directory: ``dataset.cache_dir``, else ``$VPBENCH_CACHE``, else
    ``$XDG_CACHE_HOME/vpbench`` (``~/.cache/vpbench``)."""
    if value:
        return Path(value).expanduser()
    if os.environ.get("VPBENCH_CACHE"):
        return Path(os.environ["VPBENCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vpbench"


def cache_file(source: Source, prep: Preprocess, folder: Path) -> Path:
    """``<folder>/<name>-<key>.npy``: the key hashes the source's path, the size and mtime of each of
    its files, and the preprocessing, so that any change to them decodes again."""
    key = hashlib.sha256(f"v{CACHE_VERSION}|{prep.tag()}|{source.path.resolve()}".encode())
    try:
        for file in source.images or (source.path,):
            stat = file.stat()
            key.update(f"|{file.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    except OSError as err:
        raise UserError(f"{source.path}: cannot be read ({err}); check the file's permissions") from None
    slug = re.sub(r"[^A-Za-z0-9]+", "_", source.name).strip("_")[-80:]
    return folder / f"{slug}-{key.hexdigest()[:16]}.npy"


def cached_frames(source: Source, prep: Preprocess, folder: Path) -> tuple[np.ndarray, Path]:
    """The preprocessed frames of ``source`` [N, C, S, S], memory-mapped from the cache (decoded and
    written there first on a miss, or when the cached file is damaged), and the cache file."""
    path = cache_file(source, prep, folder)
    try:
        frames = np.load(path, mmap_mode="r")
        if frames.dtype == np.uint8 and frames.shape[1:] == (prep.channels, prep.size, prep.size):
            return frames, path
    except (OSError, ValueError):
        pass
    frames = decode(source, prep)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            np.save(f, frames)
        os.replace(partial, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise UserError(f"cannot write the frame cache in {folder} ({err}); "
                        "set dataset.cache_dir or $VPBENCH_CACHE to a writable folder") from None
    return np.load(path, mmap_mode="r"), path


# -- videos of a dataset, and their clips ---------------------------------------------------------


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
    """The videos of one dataset found in a data directory, split by subject."""

    dataset: str
    root: Path
    prep: Preprocess
    videos: dict[str, list[Video]]  # "train", "test"
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
        """The subjects of ``split``: ``person17-person25``, ``S9, S11``."""
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
                test_sequences: int | None) -> tuple[list[Loaded], dict[str, np.ndarray]]:
    """The videos in (train, val, test) order and each split's clips [N, 2] (video index, first frame).

    Validation holds out whole training videos, chosen in a fixed random order until they give
    ``val_sequences`` clips (never the last training video); its clips are cut like the test's.
    The test set takes ``test_sequences`` clips evenly spaced over all test clips (None: all)."""
    counts = [len(clip_starts(v, length, step, v.video.eval_stride)) for v in train]
    held, total = [], 0
    for i in np.random.default_rng(VAL_SEED).permutation(len(train)):
        if total >= val_sequences or len(held) == len(train) - 1:
            break
        held.append(int(i))
        total += counts[i]
    val = [train[i] for i in sorted(held)]
    fit = [v for i, v in enumerate(train) if i not in held]
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


def positive_int(config: Mapping[str, Any], key: str) -> int:
    """``config[key]``, checked to be an integer >= 1."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"invalid value dataset.{key}={value!r}: must be an integer >= 1")
    return value


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
        videos, clips = make_splits(train, test, length, step, int(config["val_sequences"]),
                                    config.get("test_sequences"))
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
            self._frames = [np.load(p, mmap_mode="r") for p in self._paths]
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
