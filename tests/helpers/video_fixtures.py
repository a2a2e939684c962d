"""Small real videos and frame folders in KTH's and Human3.6M's naming schemes, written with PyAV and PIL.

Every frame carries its number: frame i has level ``level(i)`` in a known region, so tests can tell
which frames a clip holds. KTH frames are 160x120 gray with white side bars outside the central
120x120 square (gone after the center crop); Human3.6M frames are RGB quadrants.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

KTH_W, KTH_H = 160, 120
H36M_SIDE = 200
RED, GREEN, BLUE = (220, 30, 30), (30, 220, 30), (30, 30, 220)


def level(i: int) -> int:
    """Gray level of frame i (0-based)."""
    return 20 + 4 * i


def luma(rgb: tuple[int, int, int]) -> int:
    """ITU-R 601 luma as 8-bit integers (the gray level of an RGB colour)."""
    r, g, b = rgb
    return (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16


def kth_frame(i: int, colour: tuple[int, int, int] = (200, 100, 50)) -> np.ndarray:
    """[120, 160, 3]: white bars at x < 16 and x >= 144; in the central square (x 20..139) the
    top-left 60x60 quadrant is ``colour``, the rest ``level(i)``."""
    frame = np.full((KTH_H, KTH_W, 3), level(i), np.uint8)
    frame[:, :16] = frame[:, 144:] = 255
    frame[:60, 20:80] = colour
    return frame


def h36m_frame(i: int, height: int = H36M_SIDE, width: int = H36M_SIDE) -> np.ndarray:
    """[H, W, 3]: quadrants red, green / blue, gray ``level(i)`` around the center."""
    frame = np.zeros((height, width, 3), np.uint8)
    cy, cx = height // 2, width // 2
    frame[:cy, :cx], frame[:cy, cx:], frame[cy:, :cx] = RED, GREEN, BLUE
    frame[cy:, cx:] = level(i)
    return frame


def write_video(path: Path, frames: np.ndarray, codec: str) -> Path:
    """Encode uint8 [N, H, W, 3] frames with PyAV (``mpeg4`` in AVI like KTH, ``libx264`` in MP4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        else:
            stream.bit_rate = 4_000_000
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def write_frames(folder: Path, frames: np.ndarray, name: str = "image_{:04d}.png", first: int = 1) -> Path:
    """Frames [N, H, W, 3] as numbered images ``folder/name.format(first + i)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name.format(first + i))
    return folder


# KTH: video key -> number of frames. Subjects 1-16 train, 17-25 test.
KTH_VIDEOS = {
    "person01_boxing_d1": 45,
    "person02_boxing_d1": 45,
    "person03_jogging_d2": 30,
    "person16_walking_d4": 40,
    "person17_boxing_d1": 45,
    "person25_running_d3": 30,
}
# 00sequences.txt in the real format: a header, then tab-separated lines; ranges 1-based inclusive.
KTH_SEQUENCES = """\
Sequences of the KTH action database (frame numbers of the subsequences)

Training:       person11, person12, person13, person14, person15, person16, person17, person18

person01_boxing_d1\t\tframes\t1-22, 23-45
person13_handclapping_d3\t\tframes\t1-80, 81-160
person17_boxing_d1\t\tframes\t1-20,21-45
person25_running_d3\tframes  5 - 30
"""


def make_kth(root: Path, videos: dict[str, int] = KTH_VIDEOS, layout: str = "avi") -> Path:
    """KTH as distributed (``<action>/<key>_uncomp.avi``) or as frame folders (``<action>/<key>_uncomp/``)."""
    for key, count in videos.items():
        frames = np.stack([kth_frame(i) for i in range(count)])
        action = key.split("_")[1]
        if layout == "avi":
            write_video(root / action / f"{key}_uncomp.avi", frames, "mpeg4")
        else:
            write_frames(root / action / f"{key}_uncomp", frames)
    return root


# Human3.6M: video path -> (frames, height). Walking/WalkTogether of S1, S5 (train) and S9, S11 (test),
# one 200x208 video (center crop), and a WalkDog video that must be ignored.
H36M_VIDEOS = {
    "S1/Videos/Walking.54138969.mp4": (45, 200),
    "S1/Videos/WalkTogether 1.55011271.mp4": (45, 200),
    "S5/Videos/Walking 1.58860488.mp4": (45, 208),
    "S1/Videos/WalkDog.54138969.mp4": (45, 200),
    "S9/Videos/Walking.60457274.mp4": (45, 200),
    "S11/Videos/WalkTogether.54138969.mp4": (45, 200),
}


def make_h36m(root: Path, videos: dict[str, tuple[int, int]] = H36M_VIDEOS) -> Path:
    """Human3.6M videos ``S<k>/Videos/<Action>.<camera>.mp4`` (H.264)."""
    for name, (count, height) in videos.items():
        write_video(root / name, np.stack([h36m_frame(i, height) for i in range(count)]), "libx264")
    return root


def make_h36m_openstl(root: Path, names: tuple[str, ...] = ("S1_Walking.54138969", "S9_WalkTogether_1.55011271"),
                      count: int = 45) -> Path:
    """OpenSTL's flat frame folder: ``images/S1_Walking.54138969_000001.jpg``."""
    frames = np.stack([h36m_frame(i) for i in range(count)])
    for name in names:
        write_frames(root / "images", frames, name=name + "_{:06d}.jpg")
    return root
