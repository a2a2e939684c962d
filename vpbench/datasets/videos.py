"""Videos of your own, no code: ``videos`` reads ``--data-dir`` with ``train/`` and ``test/`` (and optionally
``val/``) folders of videos (any format PyAV decodes: ``.avi``, ``.mp4``, ``.mkv``, ``.mov``, ``.webm``) or
of frame folders (numbered images, one folder per video).

Frames are decoded once and cached like KTH's (see :mod:`vpbench.datasets.video.frame_cache`), every
``frame_step``-th frame kept, centre-cropped to a square (or squashed: ``crop=none``), resized to
``frame_size``, gray or RGB. Clips of ``input_frames + output_frames`` frames are cut counted back from the
end of each video, ``train_stride`` frames apart in training and ``test_stride`` apart in validation and
test (default: one after the other). Without ``val/``, validation holds out whole training videos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from vpbench.datasets.base import DataSpec, Option, SequenceSource, positive_int
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import Catalog, Video
from vpbench.datasets.video.clip_source import VideoClips, inspector
from vpbench.datasets.video.decode import INTERPOLATIONS, Preprocess, find_sources
from vpbench.errors import UserError

SPLITS = ("train", "val", "test")
HINT = "train/ and test/ folders (and optionally val/) of videos or of frame folders"


def catalog(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> Catalog:
    """The videos of each split folder under ``root``."""
    if root is None:
        raise UserError(f"videos needs --data-dir: the folder with {HINT}")
    prep = Preprocess(config["frame_size"], gray=config["grayscale"], interpolation=config["interpolation"],
                      step=config["frame_step"], crop=config["crop"])
    total = spec.total_frames
    train_stride, test_stride = config["train_stride"] or total, config["test_stride"] or total
    videos: dict[str, list[Video]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            if split == "val":
                continue
            raise UserError(f"{root} has no {split}/ folder; videos needs {HINT}")
        videos[split] = [Video(source, f"{split}/{source.name}", 0, split, train_stride, test_stride)
                         for source in find_sources(folder)]
    notes = [f"validation: {'the val/ folder' if 'val' in videos else 'whole training videos held out'}; "
             f"clips {train_stride} (train) and {test_stride} (val, test) frames apart"]
    return Catalog("videos", root, prep, videos, {}, str, HINT, {}, notes)


OPTIONS = {
    "frame_size": positive_int(64, "frame side after resizing"),
    "grayscale": Option(True, "true: one gray channel; false: RGB", kind=bool),
    "crop": Option("center", "center: crop the largest centred square first; none: squash the whole frame",
                   choices=("center", "none")),
    "frame_step": positive_int(1, "keep one frame in this many"),
    "train_stride": positive_int(None, "kept frames between the starts of training clips (null: a clip's length)",
                                 nullable=True),
    "test_stride": positive_int(None, "kept frames between the starts of validation and test clips (null: a "
                                "clip's length)", nullable=True),
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "val_sequences": positive_int({"paper": 500, "quick": 64, "tiny": 2}, "validation clips"),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4}, "test clips, evenly spaced over all "
                                   "of them (null: every clip)", nullable=True),
    "interpolation": Option("area", "resize filter: area (box) or bilinear", choices=tuple(INTERPOLATIONS)),
    "cache_dir": Option(None, "decoded frames; null: $VPBENCH_CACHE, else ~/.cache/vpbench", kind=str, nullable=True),
}


@register_dataset("videos", description="your own videos: --data-dir with train/, test/ (and val/) folders of "
                                        "videos or frame folders", frames=(10, 10),
                  shape=lambda config: (1 if config["grayscale"] else 3, config["frame_size"], config["frame_size"]),
                  options=OPTIONS, rank=60, inspect=inspector(catalog))
def build(spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int) -> SequenceSource:
    return VideoClips(spec, catalog(data_dir, config, spec), config, seed)
