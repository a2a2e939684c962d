"""Moving MNIST-CIFAR (OpenSTL's ``mmnist_cifar``): Moving MNIST's two digits over a CIFAR-10 image, 10 -> 10,
RGB 64x64.

Each sequence has one CIFAR-10 image as a still background, resized from 32x32 to 64x64 (bicubic: PIL's
here, OpenCV's in OpenSTL: close, not equal); the digits, binarised as OpenSTL does (pixels above 1 become
255), move as in Moving MNIST (:mod:`vpbench.datasets.moving_mnist`) and are drawn over it by pixel-wise
max on every channel.

``--data-dir`` holds CIFAR-10's python batches ``cifar-10-batches-py/`` (also found in ``cifar10/``, OpenSTL's
layout, or as ``data_batch_1`` ... in ``--data-dir`` itself; read with a pickle reader that builds only
arrays: :mod:`vpbench.datasets.formats.cifar`) and, as for ``mmnist``, the MNIST IDX files (else the
embedded digits) and OpenSTL's fixed test set ``mnist_cifar_test_seq.npy`` (uint8 [20, N, 64, 64, 3]) when
there. Training and validation backgrounds come from ``data_batch_1`` ... ``data_batch_5``; a generated
test set takes ``test_batch``'s (OpenSTL draws from all 60,000).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from vpbench.datasets.base import DataSpec, Option, ReferenceTable
from vpbench.datasets.formats.cifar import load_batch
from vpbench.datasets.moving_mnist import CANVAS, OPTIONS, MovingMNIST, generate, inspector
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError

BATCHES = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
STANDARD_TEST = "mnist_cifar_test_seq.npy"


def find_batches(data_dir: Path | None) -> Path:
    """The folder of CIFAR-10's python batches under ``data_dir``."""
    if data_dir is None:
        raise UserError(f"mmnist_cifar needs --data-dir: the folder with CIFAR-10's {BATCHES}/ (and MNIST's IDX "
                        "files when you have them)")
    for folder in (data_dir / BATCHES, data_dir / "cifar10" / BATCHES, data_dir):
        if (folder / TRAIN_BATCHES[0]).is_file():
            missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / name).is_file()]
            if missing:
                raise UserError(f"{folder}: no {', '.join(missing)}; expected CIFAR-10's python batches "
                                f"{TRAIN_BATCHES[0]} ... {TRAIN_BATCHES[-1]} and {TEST_BATCH}")
            return folder
    raise UserError(f"no {BATCHES}/ with CIFAR-10's python batches in {data_dir} or {data_dir / 'cifar10'}; "
                    "unpack cifar-10-python.tar.gz there")


def upscale(images: np.ndarray) -> np.ndarray:
    """CIFAR images uint8 [n, 32, 32, 3] -> backgrounds uint8 [n, 3, 64, 64] (bicubic)."""
    out = np.empty((len(images), 3, CANVAS, CANVAS), np.uint8)
    for i, image in enumerate(images):
        big = Image.fromarray(image).resize((CANVAS, CANVAS), Image.Resampling.BICUBIC)
        out[i] = np.asarray(big).transpose(2, 0, 1)
    return out


class MovingMNISTCIFAR(MovingMNIST):
    standard_test = STANDARD_TEST

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        folder = find_batches(data_dir)
        self.backgrounds = {"train": np.concatenate([load_batch(folder / name) for name in TRAIN_BATCHES]),
                            "test": load_batch(folder / TEST_BATCH)}
        super().__init__(spec, config, data_dir, seed)
        self.provenance["backgrounds"] = f"CIFAR-10 ({folder})"

    def sequences(self, rng: np.random.Generator, pool: np.ndarray, n: int, split: str) -> np.ndarray:
        """Binarised digits over a still CIFAR-10 background: uint8 [n, T, 3, 64, 64]."""
        digits = generate(rng, np.where(pool > 1, 255, pool).astype(np.uint8), n, self.spec.total_frames)
        images = self.backgrounds["test" if split == "test" else "train"]
        backgrounds = upscale(images[rng.integers(0, len(images), n)])
        return np.maximum(backgrounds[:, None], digits)

    def read_standard(self, path: Path, frames: int, count: int) -> np.ndarray:
        """OpenSTL's ``mnist_cifar_test_seq.npy`` (uint8 [20, N, 64, 64, 3]) as [N, T, 3, 64, 64]."""
        expected = "OpenSTL's uint8 array of shape (20, N, 64, 64, 3)"
        try:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:  # numpy raises several types for a damaged file
            raise UserError(f"{path}: cannot be read as .npy ({err}); expected {expected}") from None
        if data.dtype != np.uint8 or data.ndim != 5 or data.shape[0] < frames or data.shape[2:] != (CANVAS, CANVAS, 3):
            raise UserError(f"{path}: holds a {data.dtype} array of shape {data.shape}; expected {expected}")
        return np.ascontiguousarray(np.asarray(data[:frames, :count]).transpose(1, 0, 4, 2, 3))


# OpenSTL's published Moving MNIST-CIFAR benchmark (docs/en/model_zoos/video_benchmarks.md, "STL Benchmarks on
# MMNIST-CIFAR": 10 -> 10, 200 epochs; MSE and MAE per frame summed over pixels on [0, 1]). Rows by model name
# (ConvLSTM-S; OpenSTL's ConvLSTM-L is another size).
OPENSTL_ROWS = {
    "convlstm": {"mse": 73.31, "mae": 338.56, "ssim": 0.9204, "psnr": 23.09, "params": 15.5e6, "flops": 58.8e9,
                 "fps": 113},
    "prednet": {"mse": 286.70, "mae": 514.14, "ssim": 0.8139, "psnr": 17.49, "params": 12.5e6, "flops": 8.6e9,
                "fps": 945},
    "phydnet": {"mse": 142.54, "mae": 700.37, "ssim": 0.8276, "psnr": 19.92, "params": 3.1e6, "flops": 15.3e9,
                "fps": 182},
    "stlstm": {"mse": 50.09, "mae": 225.04, "ssim": 0.9499, "psnr": 24.90, "params": 23.8e6, "flops": 116.0e9,
               "fps": 54},
    "causallstm": {"mse": 44.19, "mae": 198.27, "ssim": 0.9567, "psnr": 25.60, "params": 38.6e6, "flops": 171.7e9,
                   "fps": 38},
    "mim": {"mse": 48.63, "mae": 213.44, "ssim": 0.9521, "psnr": 25.08, "params": 38.8e6, "flops": 183.0e9,
            "fps": 37},
    "mau": {"mse": 58.84, "mae": 255.76, "ssim": 0.9408, "psnr": 24.19, "params": 4.5e6, "flops": 17.8e9, "fps": 201},
    "e3dlstm": {"mse": 80.79, "mae": 214.86, "ssim": 0.9314, "psnr": 22.89, "params": 52.8e6, "flops": 306.0e9,
                "fps": 18},
    "predrnnv2": {"mse": 57.27, "mae": 252.29, "ssim": 0.9419, "psnr": 24.24, "params": 23.9e6, "flops": 116.6e9,
                  "fps": 52},
    "dmvfn": {"mse": 298.73, "mae": 606.92, "ssim": 0.7765, "psnr": 17.07, "params": 3.6e6, "flops": 0.2e9,
              "fps": 960},
    "simvp": {"mse": 59.83, "mae": 214.54, "ssim": 0.9414, "psnr": 24.15, "params": 58.0e6, "flops": 19.4e9,
              "fps": 209},
    "simvp2": {"mse": 51.13, "mae": 185.13, "ssim": 0.9512, "psnr": 24.93, "params": 46.8e6, "flops": 16.5e9,
               "fps": 282},
    "tau": {"mse": 48.17, "mae": 177.35, "ssim": 0.9539, "psnr": 25.21, "params": 44.7e6, "flops": 16.0e9, "fps": 275},
}
CIFAR_OPTIONS = {**OPTIONS, "test_set": Option("auto", f"auto: {STANDARD_TEST} from --data-dir when there, else "
                                                        "generated; standard requires it; generated ignores it",
                                                choices=("auto", "standard", "generated"))}
OPENSTL_TABLE = ReferenceTable("openstl-mmnist-cifar-200", "OpenSTL's Moving MNIST-CIFAR benchmark, 200 epochs",
                               (10, 10), columns=("mse", "mae", "ssim", "psnr"), protocol="openstl",
                               convention="openstl", rows=OPENSTL_ROWS)

register_dataset("mmnist_cifar", description="Moving MNIST-CIFAR 10->10, 64x64 RGB: two digits over a CIFAR-10 "
                                             "image (needs --data-dir with cifar-10-batches-py/)",
                 frames=(10, 10), shape=(3, CANVAS, CANVAS), options=CIFAR_OPTIONS, tables=(OPENSTL_TABLE,),
                 rank=26, inspect=inspector(MovingMNISTCIFAR))(MovingMNISTCIFAR)
