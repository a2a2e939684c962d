"""The frame cache: each video decoded once, its preprocessed frames in one memory-mapped ``.npy`` file.

The cache file of a video is keyed by the source (resolved path, size and mtime of every file) and the
preprocessing, so that any change to them decodes again; later epochs and later runs decode nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import numpy as np

from vpbench.datasets.video import decode as video_files
from vpbench.datasets.video.decode import Preprocess, Source
from vpbench.errors import UserError

CACHE_VERSION = 1  # bump when decoding or preprocessing changes what a cache file holds


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
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
        if frames.dtype == np.uint8 and frames.shape[1:] == (prep.channels, prep.size, prep.size):
            return frames, path
    except (OSError, ValueError):
        pass
    frames = video_files.decode(source, prep)
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
    return np.load(path, mmap_mode="r", allow_pickle=False), path
