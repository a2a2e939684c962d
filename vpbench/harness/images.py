"""Frames as pictures: one frame as a PIL image, rows of frames as one strip (``bench predict``, the loggers)."""
from __future__ import annotations

import numpy as np
from PIL import Image

GAP = 2  # pixels of white between frames


def frame_image(frame: np.ndarray) -> Image.Image:
    """uint8 [C, H, W] -> a PIL image."""
    return Image.fromarray(frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0))


def strip(rows: list[np.ndarray]) -> Image.Image:
    """Rows of frames (each uint8 [T, C, H, W]) as one image, white between frames."""
    h, w = rows[0].shape[-2:]
    columns = max(len(r) for r in rows)
    canvas = Image.new("RGB", (columns * (w + GAP) - GAP, len(rows) * (h + GAP) - GAP), "white")
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            canvas.paste(frame_image(frame).convert("RGB"), (j * (w + GAP), i * (h + GAP)))
    return canvas
