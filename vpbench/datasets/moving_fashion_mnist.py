"""Moving Fashion-MNIST (OpenSTL's ``mfmnist``): Moving MNIST's generator over Fashion-MNIST's 28x28 images.

The images are read from ``--data-dir``: Fashion-MNIST's ``train-images-idx3-ubyte`` (or ``.gz``), and
``t10k-images-idx3-ubyte`` for the images of the generated test set (without it, the last 10,000 training
images are held out). OpenSTL's fixed test set ``fmnist_test_seq.npy`` (uint8 [20, 10000, 64, 64], as
``mnist_test_seq.npy``) is used when it is there. Everything else is Moving MNIST's (see
:mod:`vpbench.datasets.moving_mnist`): two images, 64x64, 10 -> 10, new training sequences every epoch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vpbench.datasets.moving_mnist import CANVAS, OPTIONS, MovingMNIST
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError


@register_dataset("mfmnist", description="Moving Fashion-MNIST 10->10, 64x64 grayscale, two images (needs "
                                         "--data-dir with Fashion-MNIST's IDX files)",
                  frames=(10, 10), shape=(1, CANVAS, CANVAS), options=OPTIONS, train={"paper": {"lr": 1.0e-5}},
                  rank=25)
class MovingFashionMNIST(MovingMNIST):
    images = "Fashion-MNIST"
    standard_test = "fmnist_test_seq.npy"

    @staticmethod
    def embedded_images(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
        raise UserError("mfmnist needs --data-dir: the folder with Fashion-MNIST's train-images-idx3-ubyte(.gz) "
                        "(and t10k-images-idx3-ubyte(.gz), fmnist_test_seq.npy when you have them)")
