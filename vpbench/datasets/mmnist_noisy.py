"""Noisy Moving MNIST (OpenSTL's ``noisymmnist``): ``mmnist_noisy``, Moving MNIST 10 -> 10 whose training
inputs carry one of OpenSTL's three noise types (option ``noise``):

* ``perceptual``: in every input frame a black 24x24 square at a uniform position hides what is under it;
* ``missing``: every input frame is blanked with probability ``missing_prob`` (0.2);
* ``dynamic``: the digits' velocity over the input frames gets Gaussian noise of standard deviation ``sigma``
  (0.2, in units of the velocity) per frame and axis; the predicted frames move at the clean velocity.

The predicted frames are never noisy. As in OpenSTL, validation and test sequences are clean: the standard
``mnist_test_seq.npy`` when it is in ``--data-dir``, else Moving MNIST's generated set (see
:mod:`vpbench.datasets.moving_mnist`, whose digits, options and test set it shares).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, Option
from vpbench.datasets.moving_mnist import CANVAS, OPTIONS, MovingMNIST, bounce, generate, inspector
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError

NOISES = ("perceptual", "missing", "dynamic")
OCCLUDER = 24  # side of the perceptual noise's black square


class NoisyMovingMNIST(MovingMNIST):
    """Moving MNIST whose training inputs are noisy (see the module's docstring)."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.noise, self.sigma, self.missing_prob = config["noise"], config["sigma"], config["missing_prob"]
        if self.missing_prob > 1:
            raise UserError(f"invalid value dataset.missing_prob={self.missing_prob!r}: must be a number in [0, 1]")
        super().__init__(spec, config, data_dir, seed)
        self.provenance["noise"] = f"{self.noise} on the training inputs ({self.describe_noise()})"

    def describe_noise(self) -> str:
        return {"perceptual": f"a black {OCCLUDER}x{OCCLUDER} square per input frame",
                "missing": f"input frames blanked with probability {self.missing_prob:g}",
                "dynamic": f"velocity noise of sigma {self.sigma:g} over the input frames"}[self.noise]

    def sequences(self, rng: np.random.Generator, pool: np.ndarray, n: int, split: str) -> np.ndarray:
        """Clean sequences for validation and test; noisy inputs for training: uint8 [n, T, 1, 64, 64]."""
        length, inputs = self.spec.total_frames, self.spec.input_frames
        if split != "train":
            return generate(rng, pool, n, length)
        if self.noise == "dynamic":
            return generate(rng, pool, n, length, paths=self.jittered_paths)
        seqs = generate(rng, pool, n, length)
        if self.noise == "perceptual":
            corners = rng.integers(0, CANVAS - OCCLUDER, size=(n, inputs, 2))
            for i, t in np.ndindex(n, inputs):
                top, left = corners[i, t]
                seqs[i, t, :, top : top + OCCLUDER, left : left + OCCLUDER] = 0
        else:
            seqs[:, :inputs][rng.random((n, inputs)) < self.missing_prob] = 0
        return seqs

    def jittered_paths(self, rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Corners [n, length] of digits whose velocity carries Gaussian noise over the input frames."""
        y, x = rng.random(n), rng.random(n)
        theta = rng.random(n) * 2 * np.pi
        jitter = np.zeros((2, n, length))
        jitter[:, :, : self.spec.input_frames] = rng.normal(0, self.sigma, (2, n, self.spec.input_frames))
        return bounce(y, x, theta, length, jitter=(jitter[0], jitter[1]))


NOISE_OPTIONS = {
    **OPTIONS,
    "noise": Option("perceptual", "the noise of the training inputs: perceptual (a black 24x24 square per frame), "
                    "missing (frames blanked) or dynamic (velocity noise)", choices=NOISES),
    "sigma": Option(0.2, "dynamic noise: standard deviation of the velocity noise", kind=float, minimum=0),
    "missing_prob": Option(0.2, "missing noise: probability that an input frame is blanked", kind=float, minimum=0),
}

register_dataset("mmnist_noisy", description="noisy Moving MNIST 10->10, 64x64 grayscale: OpenSTL's perceptual, "
                                             "missing or dynamic noise on the training inputs, clean test set",
                 frames=(10, 10), shape=(1, CANVAS, CANVAS), options=NOISE_OPTIONS, rank=27,
                 inspect=inspector(NoisyMovingMNIST))(NoisyMovingMNIST)
