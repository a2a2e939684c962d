"""KittiCaltech (PredNet, Lotter et al. 2017), as OpenSTL sets it up: ``kitticaltech`` (10 -> 1) and
``kitticaltech-long`` (10 -> 5, PredNet's extrapolation horizon), RGB frames of 128x160; trained on KITTI,
tested on Caltech Pedestrian.

``--data-dir`` is OpenSTL's data root:

* ``kitti_hkl/`` (or ``--data-dir`` itself): PredNet's preprocessed KITTI files ``X_train.hkl`` and
  ``X_val.hkl`` (uint8 [N, 128, 160, 3], hickle files written by hickle 2.x, read with h5py: see
  :mod:`vpbench.datasets.formats.hickle`) and ``sources_train.hkl``, ``sources_val.hkl`` (the recording of
  each frame);
* ``caltech/``: OpenSTL's Caltech test set ``data_cache.npy`` (uint8 [N, 128, 160, 3]: every third frame of
  the Caltech Pedestrian test videos set06-set10, resized to height 128 and centre-cropped to width 160 as
  PredNet's ``process_im``) and ``indices_cache.npy`` (the first frame of each test clip).

Clips (PredNet's and OpenSTL's rule): T consecutive frames of one recording, counted back from the end of
each recording, one after the other. Training uses X_train; validation X_val (PredNet's validation
recordings; OpenSTL validates on its test set); the test set is OpenSTL's Caltech clips as its cache lists
them. For another clip length than the one the cache was written for (11 frames for 10 -> 1), clips are cut
the same way within the stretches of frames its clips cover. OpenSTL decodes the Caltech videos with OpenCV,
so the frames its loader caches are in BGR order while KITTI's are RGB; they are read as stored (as OpenSTL
evaluates), and ``caltech_bgr=true`` reverses their channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, Option, ReferenceTable, array_digest, positive_int
from vpbench.datasets.formats import hickle
from vpbench.datasets.indexed import IndexedClips
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import spread
from vpbench.errors import UserError

FRAME = (128, 160, 3)  # H, W, C as stored
KITTI = {"train": ("X_train.hkl", "sources_train.hkl"), "val": ("X_val.hkl", "sources_val.hkl")}
CALTECH = ("data_cache.npy", "indices_cache.npy")
LAYOUT = ("kitti_hkl/ (PredNet's X_train.hkl, sources_train.hkl, X_val.hkl, sources_val.hkl) and caltech/ "
          "(OpenSTL's data_cache.npy, indices_cache.npy)")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Files:
    """Where the files are: the KITTI hickle files and OpenSTL's Caltech cache."""

    kitti: Path
    caltech: Path

    @property
    def paths(self) -> list[Path]:
        """Every file read: the KITTI frames and sources of each split, then the Caltech frames and index."""
        return [*(self.kitti / name for names in KITTI.values() for name in names),
                *(self.caltech / name for name in CALTECH)]


def locate(root: Path | None) -> Files:
    """The files under OpenSTL's data root ``root``; a one-line error naming every missing one."""
    if root is None:
        raise UserError(f"kitticaltech needs --data-dir: OpenSTL's data root with {LAYOUT}")
    kitti = root / "kitti_hkl" if (root / "kitti_hkl").is_dir() else root
    files = Files(kitti, root / "caltech")
    missing = [str(p.relative_to(root)) for p in files.paths if not p.is_file()]
    if missing:
        raise UserError(f"kitticaltech: {', '.join(missing)} not found in {root}; expected {LAYOUT}")
    return files


def check_frames(frames: np.ndarray, path: Path) -> np.ndarray:
    """``frames`` if they are uint8 [N, 128, 160, 3]; a one-line error naming ``path`` otherwise."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != FRAME:
        raise UserError(f"{path}: holds {frames.dtype} frames of shape {frames.shape}; expected uint8 [N, 128, 160, 3]")
    return frames


def read_kitti(files: Files, split: str) -> tuple[np.ndarray, list[str]]:
    """A KITTI split: frames uint8 [N, 128, 160, 3] (memory-mapped) and the recording of each frame."""
    frames_path, sources_path = (files.kitti / name for name in KITTI[split])
    frames = check_frames(hickle.read_array(frames_path), frames_path)
    sources = hickle.read_strings(sources_path)
    if len(sources) != len(frames):
        raise UserError(f"{sources_path}: names {len(sources)} frames, but {frames_path.name} holds {len(frames)}; "
                        "they must come from the same download")
    return frames, sources


def read_caltech(files: Files) -> tuple[np.ndarray, np.ndarray]:
    """OpenSTL's Caltech test set: frames uint8 [N, 128, 160, 3] (memory-mapped) and its clips' first frames."""
    frames_path, index_path = (files.caltech / name for name in CALTECH)
    try:
        frames = np.load(frames_path, mmap_mode="r", allow_pickle=False)
        starts = np.load(index_path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for a damaged file
        raise UserError(f"{files.caltech}: cannot read {CALTECH[0]} and {CALTECH[1]} ({err}); "
                        "re-download them") from None
    check_frames(frames, frames_path)
    if starts.ndim != 1 or starts.dtype.kind not in "iu" or not len(starts):
        raise UserError(f"{index_path}: holds {starts.dtype} values of shape {starts.shape}; expected the clips' "
                        "first frames, integers [N]")
    if starts.min() < 0 or starts.max() >= len(frames):
        raise UserError(f"{index_path}: clip starts range over [{starts.min()}, {starts.max()}], outside the "
                        f"{len(frames)} frames of {CALTECH[0]}; both files must come from the same download")
    return frames, starts.astype(np.int64)


def recording_runs(sources: list[str]) -> list[tuple[int, int]]:
    """[first, end) of each run of consecutive frames of the same recording."""
    names = np.asarray(sources)
    cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
    return list(zip([0, *cuts.tolist()], [*cuts.tolist(), len(names)]))


def clip_starts(runs: list[tuple[int, int]], length: int) -> np.ndarray:
    """First frames of the clips of ``length`` frames: in each run, counted back from its end, one after the
    other (PredNet's and OpenSTL's rule), ascending."""
    starts = [np.arange(end - length, first - 1, -length) for first, end in runs]
    return np.sort(np.concatenate([np.zeros(0, np.int64), *starts]))


def cache_spacing(starts: np.ndarray) -> int | None:
    """The clip length OpenSTL's Caltech index was written for: the most common gap between its starts."""
    gaps = np.diff(np.sort(starts))
    gaps = gaps[gaps > 0]
    return int(np.bincount(gaps).argmax()) if len(gaps) else None


def caltech_starts(starts: np.ndarray, length: int, frames: int) -> tuple[np.ndarray, str]:
    """The test clips' first frames for clips of ``length`` frames, and how they were found."""
    spacing = cache_spacing(starts)
    if spacing in (None, length) and starts.max() + length <= frames:
        return starts, f"the {len(starts)} clips of {CALTECH[1]}"
    ordered = np.sort(starts)
    cuts = np.flatnonzero(np.diff(ordered) != spacing) + 1
    runs = [(int(run[0]), min(int(run[-1]) + spacing, frames)) for run in np.split(ordered, cuts)]
    return clip_starts(runs, length), (f"clips of {length} frames cut within the stretches covered by the clips "
                                       f"of {spacing} frames of {CALTECH[1]}")


class KittiCaltech(IndexedClips):
    """KITTI training and validation clips and Caltech test clips, read from memory-mapped frames."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        self.files = locate(data_dir)
        self.bgr = bool(config["caltech_bgr"])
        length = spec.total_frames
        (train, train_sources), (val, val_sources) = read_kitti(self.files, "train"), read_kitti(self.files, "val")
        test, cache = read_caltech(self.files)
        test_starts, self.test_rule = caltech_starts(cache, length, len(test))
        self._frames: list[np.ndarray] | None = [train, val, test]
        starts = {"train": clip_starts(recording_runs(train_sources), length),
                  "val": spread(clip_starts(recording_runs(val_sources), length), config["val_sequences"]),
                  "test": spread(test_starts, config["test_sequences"])}
        for split, found in starts.items():
            if not len(found):
                raise UserError(f"kitticaltech: no {split} clips of {length} frames in {data_dir} (recordings "
                                "too short); lower dataset.input_frames/output_frames")
        self.clips = {split: np.stack([np.full(len(s), i), s], axis=1) for i, (split, s) in enumerate(starts.items())}
        self.recordings = {"train": len(recording_runs(train_sources)), "val": len(recording_runs(val_sources))}
        self.train_sequences = config["train_sequences"]
        digest = array_digest(self.split("test"))
        self.provenance = {
            "kind": "kitticaltech", "data_dir": str(data_dir), "test_rule": self.test_rule,
            "caltech_channels": "reversed (caltech_bgr)" if self.bgr else "as stored",
            "clips": {s: len(c) for s, c in self.clips.items()}, "test_sequences": len(self.clips["test"]),
            "test_sha256": digest,
            "label": f"kitticaltech test set [{digest[:8]}]: {len(self.clips['test'])} Caltech clips of OpenSTL's "
                     f"{CALTECH[0]}",
        }

    @property
    def frames(self) -> list[np.ndarray]:
        """The frames of (KITTI train, KITTI val, Caltech test), re-opened after unpickling."""
        if self._frames is None:
            self._frames = [hickle.read_array(self.files.kitti / KITTI[s][0]) for s in ("train", "val")]
            self._frames.append(np.load(self.files.caltech / CALTECH[0], mmap_mode="r", allow_pickle=False))
        return self._frames

    def gather(self, rows: np.ndarray) -> np.ndarray:
        frames, length = self.frames, self.spec.total_frames
        out = np.empty((len(rows), length, FRAME[2], *FRAME[:2]), np.uint8)
        for i, (which, start) in enumerate(rows):
            clip = frames[which][start : start + length]
            out[i] = (clip[..., ::-1] if self.bgr and which == 2 else clip).transpose(0, 3, 1, 2)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_frames": None}  # memory maps travel as paths, not copies


def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
    """``bench data check``: the files, frames, recordings and clips of each split."""
    source = KittiCaltech(spec, config, root, 0)
    lines = [f"{spec.name} in {root}: clips of {spec.total_frames} frames ({spec.input_frames} -> "
             f"{spec.output_frames}), 3x128x160", f"  KITTI: {source.files.kitti}",
             f"  Caltech: {source.files.caltech}",
             f"  test clips: {source.test_rule}; channels {source.provenance['caltech_channels']}",
             "", f"{'split':<6} {'frames':>8} {'recordings':>10} {'clips':>7}  file"]
    for i, split in enumerate(SPLITS):
        recordings = source.recordings.get(split, "-")
        name = KITTI[split][0] if split in KITTI else CALTECH[0]
        lines.append(f"{split:<6} {len(source.frames[i]):>8} {recordings:>10} {len(source.clips[split]):>7}  {name}")
    return lines, []


OPTIONS = {
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "val_sequences": positive_int({"paper": None, "quick": 64, "tiny": 2}, "validation clips of X_val, evenly "
                                  "spaced (null: every clip)", nullable=True),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4}, "Caltech test clips, evenly spaced "
                                   "(null: every clip)", nullable=True),
    "caltech_bgr": Option(False, "reverse the channels of the Caltech frames (OpenSTL's OpenCV-decoded cache is BGR); "
                          "false: read as stored, as OpenSTL evaluates", kind=bool),
}
# OpenSTL's published KittiCaltech benchmark (docs/en/model_zoos/video_benchmarks.md, "STL Benchmarks on
# KittiCaltech": 10 -> 1, 100 epochs; MSE and MAE per frame summed over pixels on [0, 1]). Rows by model name;
# E3D-LSTM was trained on 4 GPUs.
OPENSTL_ROWS = {
    "convlstm": {"mse": 139.6, "mae": 1583.3, "ssim": 0.9345, "psnr": 27.46, "lpips": 0.08575, "params": 15.0e6,
                 "flops": 595.0e9, "fps": 33},
    "e3dlstm": {"mse": 200.6, "mae": 1946.2, "ssim": 0.9047, "psnr": 25.45, "lpips": 0.12602, "params": 54.9e6,
                "flops": 1004e9, "fps": 10},
    "prednet": {"mse": 159.8, "mae": 1568.9, "ssim": 0.9286, "psnr": 27.21, "lpips": 0.11289, "params": 12.5e6,
                "flops": 42.8e9, "fps": 94},
    "phydnet": {"mse": 312.2, "mae": 2754.8, "ssim": 0.8615, "psnr": 23.26, "lpips": 0.32194, "params": 3.1e6,
                "flops": 40.4e9, "fps": 117},
    "mau": {"mse": 177.8, "mae": 1800.4, "ssim": 0.9176, "psnr": 26.14, "lpips": 0.09673, "params": 24.3e6,
            "flops": 172.0e9, "fps": 16},
    "mim": {"mse": 125.1, "mae": 1464.0, "ssim": 0.9409, "psnr": 28.10, "lpips": 0.06353, "params": 49.2e6,
            "flops": 1858e9, "fps": 39},
    "stlstm": {"mse": 130.4, "mae": 1525.5, "ssim": 0.9374, "psnr": 27.81, "lpips": 0.07395, "params": 23.7e6,
               "flops": 1216e9, "fps": 17},
    "causallstm": {"mse": 125.5, "mae": 1453.2, "ssim": 0.9433, "psnr": 28.02, "lpips": 0.13210, "params": 38.5e6,
                   "flops": 1803e9, "fps": 12},
    "predrnnv2": {"mse": 147.8, "mae": 1610.5, "ssim": 0.9330, "psnr": 27.12, "lpips": 0.08920, "params": 23.8e6,
                  "flops": 1223e9, "fps": 52},
    "dmvfn": {"mse": 183.9, "mae": 1531.1, "ssim": 0.9314, "psnr": 26.95, "lpips": 0.04942, "params": 3.6e6,
              "flops": 1.2e9, "fps": 557},
    "simvp": {"mse": 160.2, "mae": 1690.8, "ssim": 0.9338, "psnr": 26.81, "lpips": 0.06755, "params": 8.6e6,
              "flops": 60.6e9, "fps": 57},
    "simvp2": {"mse": 129.7, "mae": 1507.7, "ssim": 0.9454, "psnr": 27.89, "lpips": 0.05736, "params": 15.6e6,
               "flops": 96.3e9, "fps": 40},
    "tau": {"mse": 131.1, "mae": 1507.8, "ssim": 0.9456, "psnr": 27.83, "lpips": 0.05494, "params": 44.7e6,
            "flops": 80.0e9, "fps": 55},
}
OPENSTL_TABLE = ReferenceTable("openstl-kitticaltech-100", "OpenSTL's KittiCaltech benchmark (10 → 1, 128x160), "
                               "100 epochs", (10, 1), columns=("mse", "mae", "ssim", "psnr", "lpips"),
                               protocol="openstl", convention="openstl", rows=OPENSTL_ROWS)

for _name, _frames, _tables, _rank in (("kitticaltech", (10, 1), (OPENSTL_TABLE,), 42),
                                       ("kitticaltech-long", (10, 5), (), 43)):
    register_dataset(
        _name, description=f"KittiCaltech {_frames[0]}->{_frames[1]}, 128x160 RGB: KITTI train, Caltech test "
                           "(needs --data-dir with OpenSTL's kitti_hkl/ and caltech/)",
        frames=_frames, shape=(FRAME[2], *FRAME[:2]), options=OPTIONS, tables=_tables, inspect=inspect, rank=_rank,
    )(KittiCaltech)
