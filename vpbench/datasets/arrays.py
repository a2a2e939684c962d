"""Sequences of your own, no code: ``arrays`` reads ``--data-dir`` holding ``train.npy`` and ``test.npy`` (and
optionally ``val.npy``), or one ``.npz`` file with arrays ``train``, ``test`` (and ``val``).

Each array is [N, T, H, W] (one channel) or [N, T, C, H, W], uint8 on 0-255 or float in [0, 1] (turned into
8-bit frames, as every dataset's sequences are). Every sequence gives ``T // (input_frames + output_frames)``
clips, one after the other from its first frame; the lengths default to half and half of the shortest
sequence. Without a ``val`` array, a fixed ``val_fraction`` of the training sequences is held out. Each
bad array (dtype, shape, range, length, an empty split) is a one-line error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, InMemorySource, Option, SequenceSource, array_digest, positive_int
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError

SPLITS = ("train", "val", "test")
VAL_SEED = 20170  # fixed: every run, whatever its seed, holds out the same validation sequences
FORMATS = "train.npy and test.npy (and val.npy), or one .npz with arrays train, test (and val)"
SHAPES = "[N, T, H, W] or [N, T, C, H, W], uint8 (0-255) or float in [0, 1]"


def _files(root: Path | None) -> dict[str, Any]:
    """The split arrays of ``root``, memory-mapped where they can be (npy files)."""
    if root is None:
        raise UserError(f"arrays needs --data-dir: the folder with {FORMATS}")
    npz = sorted(root.glob("*.npz"))
    if (root / "train.npy").is_file() or not npz:
        found = {s: root / f"{s}.npy" for s in SPLITS if (root / f"{s}.npy").is_file()}
        missing = [s for s in ("train", "test") if s not in found]
        if missing:
            raise UserError(f"no {' or '.join(f'{s}.npy' for s in missing)} in {root}; arrays needs {FORMATS}")
        return {s: _load(path, np.load, path.name) for s, path in found.items()}
    if len(npz) > 1:
        raise UserError(f"{root} holds {len(npz)} .npz files ({', '.join(p.name for p in npz)}); keep one")
    archive = _load(npz[0], lambda path: np.load(path, allow_pickle=False), npz[0].name)
    missing = [s for s in ("train", "test") if s not in archive.files]
    if missing:
        raise UserError(f"{npz[0]} has no array {' or '.join(missing)} (it has: {', '.join(archive.files)}); "
                        f"arrays needs {FORMATS}")
    return {s: _load(npz[0], lambda path: archive[s], f"{npz[0].name}[{s}]") for s in SPLITS if s in archive.files}


def _load(path: Path, reader: Any, name: str) -> Any:
    """``reader(path)``, never unpickling (an object array is refused), or a one-line error naming ``name``."""
    try:
        return reader(path, mmap_mode="r", allow_pickle=False) if path.suffix == ".npy" else reader(path)
    except Exception as err:  # numpy raises several types for a damaged file, ValueError for an object array
        detail = (str(err).splitlines() or [""])[0]
        raise UserError(f"{path.parent / name}: cannot be read ({type(err).__name__}: {detail}); write numeric "
                        "arrays with numpy.save or numpy.savez") from None


def _check(name: str, array: np.ndarray) -> tuple[int, int, int, int]:
    """(T, C, H, W) of a valid split array; a one-line error naming what is wrong otherwise."""
    if not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        raise UserError(f"{name}: holds {array.dtype} values; expected {SHAPES}")
    if array.ndim not in (4, 5):
        raise UserError(f"{name}: has shape {array.shape}; expected {SHAPES}")
    if array.shape[0] == 0:
        raise UserError(f"{name}: holds no sequence; every split needs at least one")
    if array.dtype != np.uint8:
        low, high = float(np.min(array)), float(np.max(array))
        if not (0 <= low and high <= 1):
            raise UserError(f"{name}: float values in [{low:.3g}, {high:.3g}], outside [0, 1]; scale them to [0, 1] "
                            "or save uint8 frames")
    _, t, *rest = array.shape
    c, h, w = (1, *rest) if array.ndim == 4 else rest
    return t, c, h, w


def probe(root: Path | None, config: Mapping[str, Any]) -> dict[str, Any]:
    """The lengths (half and half of the shortest sequence unless set) and frame shape of the arrays."""
    arrays = _files(root)
    shapes = {s: _check(f"{s} array", a) for s, a in arrays.items()}
    if len({shape[1:] for shape in shapes.values()}) > 1:
        raise UserError("the splits have different frame shapes ("
                        + ", ".join(f"{s}: {c}x{h}x{w}" for s, (_, c, h, w) in shapes.items()) + "); they must agree")
    shortest = min(t for t, *_ in shapes.values())
    t_in = config["input_frames"] or max(1, shortest // 2)
    t_out = config["output_frames"] or max(1, shortest - t_in)
    for split, (t, *_) in shapes.items():
        if t < t_in + t_out:
            raise UserError(f"{split} array: sequences of {t} frames are shorter than input_frames + output_frames = "
                            f"{t_in} + {t_out}; lower dataset.input_frames/output_frames")
    _, c, h, w = shapes["train"]
    return {"input_frames": t_in, "output_frames": t_out, "channels": c, "height": h, "width": w}


def _clips(array: np.ndarray, length: int) -> np.ndarray:
    """uint8 [N * (T // length), length, C, H, W]: each sequence's clips, one after the other."""
    if array.ndim == 4:
        array = array[:, :, None]
    n, t = array.shape[:2]
    per = t // length
    clips = np.asarray(array[:, : per * length]).reshape(n * per, length, *array.shape[2:])
    if clips.dtype != np.uint8:
        clips = np.round(clips.astype(np.float32) * 255).astype(np.uint8)
    return np.ascontiguousarray(clips)


class Arrays(InMemorySource):
    """The clips of the split arrays, in memory: training clips in a new order each epoch."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        arrays = _files(data_dir)
        clips = {s: _clips(a, spec.total_frames) for s, a in arrays.items()}
        if "val" not in clips:
            order = np.random.default_rng(VAL_SEED).permutation(len(clips["train"]))
            held = max(1, round(config["val_fraction"] * len(order))) if len(order) > 1 else 0
            clips["val"], clips["train"] = clips["train"][np.sort(order[:held])], clips["train"][np.sort(order[held:])]
        for split in SPLITS:
            if len(clips[split]) == 0:
                raise UserError(f"no {split} clips of {spec.total_frames} frames in {data_dir}: add sequences to that "
                                "split or lower dataset.input_frames/output_frames")
        self.train, self.val = clips["train"], clips["val"]
        self.test = clips["test"][: config["test_sequences"]] if config["test_sequences"] else clips["test"]
        self.train_sequences = config["train_sequences"]
        digest = array_digest(self.test)
        self.provenance = {
            "kind": "arrays", "data_dir": str(data_dir), "clips": {s: len(c) for s, c in clips.items()},
            "test_sequences": len(self.test), "test_sha256": digest,
            "label": f"arrays test set [{digest[:8]}]: {len(self.test)} clips from {data_dir}",
        }


def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
    """``bench data check``: each split's sequences, frames and clips."""
    arrays = _files(root)
    lines = [f"arrays in {root}: clips of {spec.total_frames} frames ({spec.input_frames} -> {spec.output_frames}), "
             f"{spec.channels}x{spec.height}x{spec.width}", "", f"{'split':<6} {'sequences':>9} {'frames':>7} "
             f"{'clips':>7}  dtype"]
    for split, array in arrays.items():
        lines.append(f"{split:<6} {array.shape[0]:>9} {array.shape[1]:>7} "
                     f"{array.shape[0] * (array.shape[1] // spec.total_frames):>7}  {array.dtype}")
    if "val" not in arrays:
        lines.append(f"val    held out from train: {config['val_fraction']:.0%} of its clips")
    return lines, []


OPTIONS = {
    "val_fraction": Option(0.1, "fraction of the training clips held out for validation when there is no val array",
                           kind=float, minimum=0),
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 8}, "test clips, the first ones (null: "
                                   "every clip)", nullable=True),
    "channels": positive_int(None, "read from the data", nullable=True),
    "height": positive_int(None, "read from the data", nullable=True),
    "width": positive_int(None, "read from the data", nullable=True),
}


@register_dataset("arrays", description=f"your own sequences: --data-dir with {FORMATS}", frames=(None, None),
                  shape=lambda config: (config["channels"], config["height"], config["width"]), options=OPTIONS,
                  rank=50, inspect=inspect, probe=probe)
def build(spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int) -> SequenceSource:
    return Arrays(spec, config, data_dir, seed)
