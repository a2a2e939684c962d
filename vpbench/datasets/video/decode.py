"""Reading real videos: finding them in a data directory, decoding them with PyAV, preprocessing frames.

A data directory holds each video either as a file (decoded with PyAV) or as numbered frame images
(one folder per video, or a shared folder with the video's name before the frame number).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vpbench.errors import UserError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INTERPOLATIONS = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR}
_NUMBERED = re.compile(r"^(.*?)(\d+)$")  # an image name ending in its frame number


@dataclass(frozen=True)
class Preprocess:
    """Keep every ``step``-th frame, center-crop it to the largest square (``crop="center"``; ``"none"``
    squashes the whole frame to a square, as OpenSTL's KTH loader does), make it gray or RGB and resize it
    to ``size`` x ``size`` (``area``: PIL box filter; ``bilinear``: PIL's antialiased bilinear)."""

    size: int
    gray: bool
    interpolation: str = "area"
    step: int = 1
    crop: str = "center"

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
        fit = "center-crop" if self.crop == "center" else "squash"
        return f"{mode} {fit} {self.size}x{self.size} {self.interpolation} step {self.step}"

    def __call__(self, image: Image.Image) -> np.ndarray:
        """A frame of any size -> uint8 [C, size, size]."""
        w, h = image.size
        if self.crop == "center":
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
        image = image.convert("L" if self.gray else "RGB")
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
