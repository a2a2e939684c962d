"""Plain reference implementations: the slow, obvious versions that the fast paths are tested
against and that ``bench speed`` times them against.

The Moving MNIST generator here works one sequence and one frame at a time with Python scalars, as
the standard generator (and the official SRVP and MIMO-VP loaders) does.
"""
from __future__ import annotations

import math

import numpy as np

from vpbench.datasets.moving_mnist import CANVAS, DIGIT, STEP


def bounce_one(y: float, x: float, theta: float, length: int) -> tuple[list[int], list[int]]:
    """Corners of one digit, frame by frame, with scalar arithmetic."""
    vy, vx = math.sin(theta), math.cos(theta)
    tops, lefts = [], []
    for _ in range(length):
        y, x = y + vy * STEP, x + vx * STEP
        if x <= 0:
            x, vx = 0.0, -vx
        if x >= 1.0:
            x, vx = 1.0, -vx
        if y <= 0:
            y, vy = 0.0, -vy
        if y >= 1.0:
            y, vy = 1.0, -vy
        tops.append(int((CANVAS - DIGIT) * y))
        lefts.append(int((CANVAS - DIGIT) * x))
    return tops, lefts


def draw_one(digits: np.ndarray, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
    """One sequence: digits [K, 28, 28] at corners [K, T], drawn frame by frame with slicing."""
    frames = np.zeros((tops.shape[1], CANVAS, CANVAS), dtype=np.uint8)
    for digit, top, left in zip(digits, tops, lefts):
        for t in range(len(top)):
            window = frames[t, top[t] : top[t] + DIGIT, left[t] : left[t] + DIGIT]
            np.maximum(window, digit, out=window)
    return frames


def generate_per_sequence(rng: np.random.Generator, pool: np.ndarray, n: int, length: int,
                          num_digits: int = 2) -> np.ndarray:
    """n sequences, one at a time: uint8 [n, T, 1, 64, 64]."""
    out = np.empty((n, length, 1, CANVAS, CANVAS), dtype=np.uint8)
    for i in range(n):
        paths = [bounce_one(rng.random(), rng.random(), rng.random() * 2 * math.pi, length) for _ in range(num_digits)]
        digits = pool[rng.integers(0, len(pool), size=num_digits)]
        out[i, :, 0] = draw_one(digits, np.array([p[0] for p in paths]), np.array([p[1] for p in paths]))
    return out
