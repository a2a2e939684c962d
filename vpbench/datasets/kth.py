"""KTH Action (Schuldt et al. 2004) as distributed: ``kth``, grayscale; 10->10 at 64x64 under the SRVP paper's
protocol, 10->20 at 128x128 as OpenSTL sets it up under OpenSTL's.

Layouts, anywhere under ``--data-dir`` (folder names are free):

* the AVI files ``personNN_<action>_dK_uncomp.avi`` (usually one folder per action), read with PyAV;
* pre-extracted frames, one folder per video named after it
  (``boxing/person01_boxing_d1_uncomp/image_0001.png``, PredRNN's and OpenSTL's ``kth_action``).

With ``00sequences.txt`` (in ``--data-dir`` or a folder below it) only its annotated frame ranges are
used and no clip spans two ranges; without it every frame is used (as PredRNN and OpenSTL do).

Preprocessing (paper Sec. 4.1): gray (ITU-R 601 luma), center crop to the largest square
(160x120 -> 120x120), resize to 64x64. OpenSTL's (``--protocol openstl``): every frame (no
``00sequences.txt``), the whole 160x120 frame squashed to 128x128, bilinear (OpenSTL uses OpenCV's
bilinear, PIL's here: close, not equal). Splits: subjects 1-16 train, 17-25 test; validation holds out
whole training videos (see :func:`vpbench.datasets.video.catalogue.make_splits`; OpenSTL validates on its test
set). Clips (PredRNN/OpenSTL): T = T_in + T_out consecutive frames counted back from the end of each run of
frames, stride T (clips one after the other) for boxing, handclapping, handwaving and walking, stride 3
for jogging and running; the same rule in every split.
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

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
FAST_ACTIONS, FAST_STRIDE = ("jogging", "running"), 3
SCENARIOS = (1, 2, 3, 4)
SUBJECTS = {"train": list(range(1, 17)), "test": list(range(17, 26))}
SEQUENCES = "00sequences.txt"
NAME = re.compile(rf"person(\d\d)_({'|'.join(ACTIONS)})_d([1-4])")
HINT = "personNN_<action>_dK_uncomp.avi files or frame folders named after them"


def read_sequences(path: Path) -> dict[str, tuple[tuple[int, int], ...]]:
    """``00sequences.txt``: video key -> its frame ranges (1-based, inclusive). Lines look like
    ``person01_boxing_d1<tabs>frames<tab>1-95, 96-185, 186-245, 246-360``; others are ignored."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err}); check the file or remove it") from None
    out = {}
    for line in text.splitlines():
        head, sep, rest = line.partition("frames")
        match = NAME.search(head.lower())
        if sep and match:
            out[match.group(0)] = tuple((int(a), int(b)) for a, b in re.findall(r"(\d+)\s*-\s*(\d+)", rest))
    return out


def find_sequences(root: Path) -> Path | None:
    """``00sequences.txt`` in ``root`` or in a folder below it."""
    found = [root / SEQUENCES] if (root / SEQUENCES).is_file() else sorted(root.rglob(SEQUENCES))
    return found[0] if found else None


def catalog(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> Catalog:
    """The KTH videos under ``root``, split by subject."""
    if root is None:
        raise UserError(f"kth needs --data-dir: the folder with KTH's {HINT}")
    prep = Preprocess(spec.height, gray=True, interpolation=config["interpolation"], crop=config["crop"])
    sequences_file = find_sequences(root) if config["annotations"] else None
    sequences = read_sequences(sequences_file) if sequences_file else {}
    found: dict[str, Video] = {}
    duplicates = 0
    for source in find_sources(root):
        match = NAME.search(source.name.lower())
        if match is None:
            continue
        if match.group(0) in found:  # the same video as a file and as frames: the file wins
            duplicates += 1
            continue
        stride = FAST_STRIDE if match.group(2) in FAST_ACTIONS else spec.total_frames
        found[match.group(0)] = Video(source, match.group(0), int(match.group(1)), match.group(2), stride, stride,
                                      sequences.get(match.group(0)) if sequences_file else None)
    videos = {split: [v for v in found.values() if v.subject in ids] for split, ids in SUBJECTS.items()}
    expected = set(sequences) or {f"person{p:02d}_{a}_d{d}" for p in range(1, 26) for a in ACTIONS for d in SCENARIOS}
    missing: dict[str, list[str]] = {}
    for key in sorted(expected - set(found)):
        missing.setdefault(key[:8], []).append(key[9:])
    for person, names in missing.items():
        if not sequences and len(names) == len(ACTIONS) * len(SCENARIOS):
            missing[person] = [f"all {len(names)} videos"]
    if sequences_file is None:
        notes = [f"{SEQUENCES}: not found, every frame of every video is used"]
    else:
        unlisted = sum(key not in sequences for key in found)
        notes = [f"{SEQUENCES}: {sequences_file} ({len(sequences)} videos listed), only its frame ranges are used"
                 + (f"; {unlisted} videos it does not list are used whole" if unlisted else "")]
    if duplicates:
        notes.append(f"{duplicates} videos found both as a file and as frames: the files are used")
    return Catalog("kth", root, prep, videos, SUBJECTS, lambda s: f"person{s:02d}", HINT, missing, notes)


OPTIONS = {
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "val_sequences": positive_int({"paper": 500, "quick": 64, "tiny": 2},
                                  "validation clips, of whole training videos held out (subjects 1-16)"),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4},
                                   "test clips, evenly spaced over all of them (null: every clip)", nullable=True),
    # The paper's setup (64x64, centre crop, 10 -> 10) under the srvp protocol; OpenSTL's (openstl/datasets/
    # dataloader_kth.py: 128x128 squashed from 160x120 without a crop, bilinear, every frame, 10 -> 20) under its own.
    "frame_size": positive_int(presets.by_protocol(64, 128), "frame side after resizing"),
    "crop": Option(presets.by_protocol("center", "none"), "center: crop the largest centred square first; none: "
                   "squash the whole frame (as OpenSTL)", choices=("center", "none")),
    "interpolation": Option(presets.by_protocol("area", "bilinear"), "resize filter: area (box) or bilinear",
                            choices=tuple(INTERPOLATIONS)),
    "annotations": Option(presets.by_protocol(True, False), f"use the frame ranges of {SEQUENCES} when it is there "
                          "(OpenSTL and PredRNN use every frame)", kind=bool),
    "cache_dir": Option(None, "decoded frames; null: $VPBENCH_CACHE, else ~/.cache/vpbench", kind=str, nullable=True),
}
# OpenSTL's published KTH benchmark (10 -> 20 at 128x128; MSE and MAE per frame on [0, 1], 100 epochs).
OPENSTL_TABLE = ReferenceTable("openstl-kth-100", "OpenSTL's KTH benchmark (10 → 20, 128x128), 100 epochs", (10, 20),
                               columns=("mse", "mae", "ssim", "psnr"), protocol="openstl", convention="openstl")


@register_dataset("kth", description="KTH Action, subjects 1-16 train / 17-25 test (needs --data-dir): 10->10 at "
                                     "64x64 (paper), 10->20 at 128x128 (openstl)",
                  frames=presets.by_protocol((10, 10), (10, 20)),
                  shape=lambda config: (1, config["frame_size"], config["frame_size"]), options=OPTIONS,
                  train={"paper": {"lr": 1.0e-4}}, rank=30, inspect=inspector(catalog),
                  tables=[ReferenceTable("table2", "Table 2 (KTH, 10 → 10)", (10, 10), columns=("mse", "psnr", "ssim")),
                          OPENSTL_TABLE])
def build(spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int) -> SequenceSource:
    return VideoClips(spec, catalog(data_dir, config, spec), config, seed)
