"""Human3.6M (Ionescu et al. 2014): ``human36m`` (4->4, RGB); Walking and WalkTogether at 100x100 under the SRVP
paper's protocol, every action at 256x256 (OpenSTL's resolution) under OpenSTL's.

Layouts, under ``--data-dir`` (the folder holding ``S1``, ``S5``, ...):

* the videos ``S<k>/Videos/<Action>.<camera>.mp4`` as distributed, read with PyAV;
* pre-extracted frames, either one folder per video (``S1/Images/Walking 1.54138969/frame_000001.jpg``)
  or OpenSTL's flat folder (``images/S9_Walking.54138969_000001.jpg``).

Only ``Walking`` and ``WalkTogether`` and their numbered variants (``Walking 1``, ``WalkTogether_2``)
are used, from all four cameras; ``WalkDog``/``WalkingDog`` and the other actions are not (option
``actions=all``: every action, as OpenSTL). Under OpenSTL's protocol the frames are 256x256, but the
split stays by subject: OpenSTL's clip lists (STRPM's ``train.txt``/``test.txt``) split clips of the same
838 videos between training and test, so nearly every test clip starts within 40 frames of a training
clip; vpbench does not reproduce that split.
Preprocessing (paper Sec. 4.1): every ``frame_step``-th frame (5: 50 fps -> 10 fps, as OpenSTL and
STRPM), center crop to the largest square (1000x1002 -> 1000x1000; a no-op at 1000x1000), resize
to 100x100, RGB. Splits: S1, S5, S6, S7, S8 train, S9, S11 test; validation holds out whole training
videos (see :func:`vpbench.datasets.video.catalogue.make_splits`). Clips: T = 8 consecutive kept frames
counted back from the end of each video, ``train_stride`` kept frames apart in training and
``test_stride`` apart in validation and test.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from vpbench import presets
from vpbench.datasets.base import DataSpec, Option, ReferenceTable, SequenceSource, positive_int
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import Catalog, Video
from vpbench.datasets.video.clip_source import VideoClips, inspector
from vpbench.datasets.video.decode import INTERPOLATIONS, Preprocess, find_sources
from vpbench.errors import UserError

ACTIONS = {"walking": ("Walking", "WalkTogether"), "all": ("[A-Za-z]+",)}  # option dataset.actions -> patterns
CAMERAS = ("54138969", "55011271", "58860488", "60457274")
SUBJECTS = {"train": [1, 5, 6, 7, 8], "test": [9, 11]}
HINT = "S<k>/Videos/Walking.<camera>.mp4 (and WalkTogether, numbered variants) or their frames"


def name_pattern(actions: str) -> re.Pattern:
    """S<k>, then folders or "_", then the action, an optional variant number and the 8-digit camera."""
    names = "|".join(ACTIONS[actions])
    return re.compile(rf"(?:^|/)S(\d+)[/_](?:[^/]+/)*?({names})(?:[ _](\d+))?\.(\d{{8}})(?=$|/)")


def catalog(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> Catalog:
    """The Walking and WalkTogether videos of Human3.6M under ``root``, split by subject."""
    if root is None:
        raise UserError(f"human36m needs --data-dir: the folder holding S1, S5, ... with {HINT}")
    prep = Preprocess(spec.height, gray=False, interpolation=config["interpolation"],
                      step=config["frame_step"])
    train_stride, test_stride = config["train_stride"], config["test_stride"]
    pattern = name_pattern(config["actions"])
    found: dict[str, Video] = {}
    duplicates = 0
    for source in find_sources(root):
        match = pattern.search(source.name)
        if match is None:
            continue
        subject, action, variant, camera = match.groups()
        action = f"{action} {variant}" if variant else action
        key = f"S{int(subject)} {action}.{camera}"
        if key in found:  # the same video as a file and as frames: the file wins
            duplicates += 1
            continue
        found[key] = Video(source, key, int(subject), action, train_stride, test_stride)
    videos = {split: [v for v in found.values() if v.subject in ids] for split, ids in SUBJECTS.items()}
    missing: dict[str, list[str]] = {}
    for subject in SUBJECTS["train"] + SUBJECTS["test"]:
        actions = sorted({v.action for v in found.values() if v.subject == subject})
        if not actions:
            missing[f"S{subject}"] = ["no Walking or WalkTogether video"]
        for action in actions:
            absent = [c for c in CAMERAS if f"S{subject} {action}.{c}" not in found]
            if absent:
                missing.setdefault(f"S{subject}", []).append(f"{action} (cameras {', '.join(absent)})")
    notes = [f"frames: one in {prep.step} kept; clips {train_stride} (train) and {test_stride} (val, test) kept "
             "frames apart"]
    if duplicates:
        notes.append(f"{duplicates} videos found both as a file and as frames: the files are used")
    return Catalog("human36m", root, prep, videos, SUBJECTS, lambda s: f"S{s}", HINT, missing, notes)


OPTIONS = {
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "val_sequences": positive_int({"paper": 128, "quick": 64, "tiny": 1},
                                  "validation clips, of whole training videos held out"),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 2},
                                   "test clips, evenly spaced over all of them (null: every clip)", nullable=True),
    "frame_step": positive_int(5, "one frame kept in this many (5: 50 fps -> 10 fps, as OpenSTL and STRPM)"),
    "train_stride": positive_int(1, "kept frames between the starts of training clips"),
    "test_stride": positive_int(8, "kept frames between the starts of validation and test clips (8: no overlap)"),
    # The paper's setup (100x100, Walking and WalkTogether) under the srvp protocol; OpenSTL's resolution and
    # actions (256x256, every action) under its own.
    "frame_size": positive_int(presets.by_protocol(100, 256), "frame side after resizing"),
    "actions": Option(presets.by_protocol("walking", "all"), "walking: Walking and WalkTogether (the paper, STRPM); "
                      "all: every action (OpenSTL)", choices=tuple(ACTIONS)),
    "interpolation": Option("area", "resize filter: area (box) or bilinear", choices=tuple(INTERPOLATIONS)),
    "cache_dir": Option(None, "decoded frames; null: $VPBENCH_CACHE, else ~/.cache/vpbench", kind=str, nullable=True),
}


# OpenSTL's published Human3.6M benchmark (4 -> 4 at 256x256; MSE and MAE per frame on [0, 1], 50 epochs).
OPENSTL_TABLE = ReferenceTable("openstl-human36m-50", "OpenSTL's Human3.6M benchmark (4 → 4, 256x256), 50 epochs",
                               (4, 4), columns=("mse", "mae", "ssim", "psnr"), protocol="openstl",
                               convention="openstl")


@register_dataset("human36m", description="Human3.6M 4->4 RGB, S1,S5-S8 train / S9,S11 test (needs --data-dir): "
                                          "Walking/WalkTogether at 100x100 (paper), every action at 256x256 (openstl)",
                  frames=(4, 4), shape=lambda config: (3, config["frame_size"], config["frame_size"]),
                  options=OPTIONS, train={"paper": {"lr": 1.0e-4}}, rank=40, inspect=inspector(catalog),
                  tables=[ReferenceTable("table3", "Table 3 (Human3.6M, 4 → 4): SSIM per horizon step", (4, 4),
                                         metric="ssim", steps=(1, 2, 3, 4)), OPENSTL_TABLE])
def build(spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int) -> SequenceSource:
    return VideoClips(spec, catalog(data_dir, config, spec), config, seed)
