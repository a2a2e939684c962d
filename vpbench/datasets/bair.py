"""BAIR robot pushing (Ebert et al. 2017) as distributed, read without TensorFlow: ``bair`` (2 -> 14) and
``bair-long`` (2 -> 28), RGB frames of 64x64, as OpenSTL (and PredRNN) set it up.

``--data-dir`` holds ``softmotion30_44k/`` (OpenSTL's data root), or is that folder: ``train/*.tfrecords`` and
``test/*.tfrecords`` as unpacked from ``bair_robot_pushing_dataset_v0.tar``. Each record is a
``tf.train.Example`` holding one video of 30 frames; frame t is ``<t>/image_aux1/encoded``, 64x64x3 raw RGB
bytes (also ``<t>/image_main/encoded``, ``<t>/action`` and ``<t>/endeffector_pos``, not used). Records are
read with :mod:`vpbench.datasets.formats.tfrecord`, their checksums checked.

Clips (OpenSTL's): every run of T consecutive frames of a video (stride 1), in training and test: 15 per video
for T = 16 (OpenSTL's 3,840 test clips of 256 test videos), one for T = 30. Validation holds out whole training
videos (a fixed choice; OpenSTL validates on its test set). The number of frames of a file's videos is read
from its first record; a record read later that lacks a frame a clip needs is a one-line error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, array_digest, positive_int
from vpbench.datasets.formats import tfrecord
from vpbench.datasets.indexed import IndexedClips
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import spread
from vpbench.errors import UserError

SIZE = 64
FRAME_BYTES = SIZE * SIZE * 3
FOLDER = "softmotion30_44k"
IMAGE = "{}/image_aux1/encoded"
VAL_SEED = 20172  # fixed: every run holds out the same training videos


def find_root(data_dir: Path | None) -> Path:
    """The folder holding ``train/`` and ``test/``: ``data_dir/softmotion30_44k`` or ``data_dir`` itself."""
    if data_dir is None:
        raise UserError(f"bair needs --data-dir: the folder with {FOLDER}/train and {FOLDER}/test (*.tfrecords)")
    root = data_dir / FOLDER if (data_dir / FOLDER).is_dir() else data_dir
    for split in ("train", "test"):
        if not sorted((root / split).glob("*.tfrecords")):
            raise UserError(f"bair: no {split}/*.tfrecords in {root}; expected BAIR's {FOLDER}/train and "
                            f"{FOLDER}/test folders of TFRecord files (bair_robot_pushing_dataset_v0.tar)")
    return root


def read_frames(path: Path, span: tuple[int, int], first: int, end: int) -> np.ndarray:
    """Frames [first, end) of the video in the record at ``span``: uint8 [end - first, 3, 64, 64]."""
    keys = {IMAGE.format(t) for t in range(first, end)}
    try:
        features = tfrecord.parse_example(tfrecord.read_record(path, span), keys)
    except ValueError as err:
        raise UserError(f"{path}: the record at byte {span[0] - tfrecord.HEADER} is no tf.train.Example ({err}); "
                        "re-download the file") from None
    out = np.empty((end - first, 3, SIZE, SIZE), np.uint8)
    for t in range(first, end):
        values = features.get(IMAGE.format(t))
        if not values:
            raise UserError(f"{path}: the record at byte {span[0] - tfrecord.HEADER} has no frame {t} "
                            f"({IMAGE.format(t)}); expected BAIR's videos of 30 frames")
        if len(values[0]) != FRAME_BYTES:
            raise UserError(f"{path}: frame {t} of the record at byte {span[0] - tfrecord.HEADER} has "
                            f"{len(values[0])} bytes; expected {FRAME_BYTES} (a raw 64x64 RGB image)")
        out[t - first] = np.frombuffer(values[0], np.uint8).reshape(SIZE, SIZE, 3).transpose(2, 0, 1)
    return out


def count_frames(path: Path, span: tuple[int, int]) -> int:
    """The number of frames of the video in one record (its consecutive ``<t>/image_aux1/encoded`` from 0)."""
    try:
        keys = set(tfrecord.parse_example(tfrecord.read_record(path, span)))
    except ValueError as err:
        raise UserError(f"{path}: its first record is no tf.train.Example ({err}); expected BAIR's TFRecords") from None
    count = 0
    while IMAGE.format(count) in keys:
        count += 1
    return count


class BAIR(IndexedClips):
    """BAIR's videos indexed by (file, record): clips are read from the TFRecords when asked for."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        self.root = find_root(data_dir)
        length = spec.total_frames
        self.files: list[Path] = []
        self.spans: list[list[tuple[int, int]]] = []
        videos: dict[str, list[np.ndarray]] = {"train": [], "test": []}  # per video: [file, record, frames]
        self.frame_counts: dict[str, set[int]] = {"train": set(), "test": set()}
        for split in videos:
            for path in sorted((self.root / split).glob("*.tfrecords")):
                spans = tfrecord.record_spans(path)
                if not spans:
                    continue
                frames = count_frames(path, spans[0])
                self.frame_counts[split].add(frames)
                index = len(self.files)
                self.files.append(path)
                self.spans.append(spans)
                videos[split] += [np.array([index, r, frames]) for r in range(len(spans))]
        per_video = {split: max(self.frame_counts[split] or {0}) - length + 1 for split in videos}
        for split, count in per_video.items():
            if count < 1:
                raise UserError(f"bair: the {split} videos have {max(self.frame_counts[split] or {0})} frames, fewer "
                                f"than input_frames + output_frames = {length}; lower dataset.input_frames/"
                                "output_frames")
        order = np.random.default_rng(VAL_SEED).permutation(len(videos["train"]))
        held = min(len(order) - 1, -(-int(config["val_sequences"]) // per_video["train"]))
        val, train = sorted(order[:held]), sorted(order[held:])
        self.videos = {"train": len(train), "val": len(val), "test": len(videos["test"])}
        self.clips = {
            "train": self.windows([videos["train"][i] for i in train], length),
            "val": spread(self.windows([videos["train"][i] for i in val], length), config["val_sequences"]),
            "test": spread(self.windows(videos["test"], length), config["test_sequences"]),
        }
        if not len(self.clips["val"]):
            raise UserError(f"bair: {len(videos['train'])} training video(s) leave none to hold out for validation; "
                            "add training files")
        self.train_sequences = config["train_sequences"]
        digest = array_digest(self.split("test"))
        self.provenance = {
            "kind": "bair", "data_dir": str(self.root), "videos": self.videos,
            "clips": {s: len(c) for s, c in self.clips.items()}, "test_sequences": len(self.clips["test"]),
            "test_sha256": digest,
            "label": f"bair test set [{digest[:8]}]: {len(self.clips['test'])} clips of {self.videos['test']} "
                     f"test videos ({FOLDER}/test)",
        }

    @staticmethod
    def windows(videos: list[np.ndarray], length: int) -> np.ndarray:
        """Clips [N, 3] (file, record, first frame): every run of ``length`` consecutive frames of each video."""
        rows = [np.zeros((0, 3), np.int64)]
        for file, record, frames in videos:
            starts = np.arange(frames - length + 1)
            rows.append(np.stack([np.full(len(starts), file), np.full(len(starts), record), starts], axis=1))
        return np.concatenate(rows)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        length = self.spec.total_frames
        out = np.empty((len(rows), length, 3, SIZE, SIZE), np.uint8)
        videos = {}
        for file, record in {(int(f), int(r)) for f, r, _ in rows}:  # each record read once
            mine = rows[(rows[:, 0] == file) & (rows[:, 1] == record), 2]
            first, end = int(mine.min()), int(mine.max()) + length
            videos[file, record] = (first, read_frames(self.files[file], self.spans[file][record], first, end))
        for i, (file, record, start) in enumerate(rows):
            first, frames = videos[int(file), int(record)]
            out[i] = frames[start - first : start - first + length]
        return out


def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
    """``bench data check``: the files, videos, frames per video and clips of each split."""
    source = BAIR(spec, config, root, 0)
    lines = [f"{spec.name} in {source.root}: clips of {spec.total_frames} frames ({spec.input_frames} -> "
             f"{spec.output_frames}), 3x64x64, every run of {spec.total_frames} frames",
             "", f"{'split':<6} {'files':>6} {'videos':>7} {'frames':>7} {'clips':>8}"]
    for split in ("train", "val", "test"):
        folder = "test" if split == "test" else "train"
        files = sum(1 for f in source.files if f.parent.name == folder)
        frames = ",".join(map(str, sorted(source.frame_counts[folder])))
        lines.append(f"{split:<6} {files if split != 'val' else '-':>6} {source.videos[split]:>7} {frames:>7} "
                     f"{len(source.clips[split]):>8}")
    lines.append("val    whole training videos held out (a fixed choice)")
    return lines, []


OPTIONS = {
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training clips per epoch, a new "
                                    "random subset each epoch (null: every clip)", nullable=True),
    "val_sequences": positive_int({"paper": 256, "quick": 64, "tiny": 2}, "validation clips, of whole training "
                                  "videos held out"),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4}, "test clips, evenly spaced over all "
                                   "of them (null: every clip)", nullable=True),
}

for _name, _frames, _rank in (("bair", (2, 14), 47), ("bair-long", (2, 28), 48)):
    register_dataset(
        _name, description=f"BAIR robot pushing {_frames[0]}->{_frames[1]}, 64x64 RGB (needs --data-dir with "
                           f"{FOLDER}/train and test TFRecords)",
        frames=_frames, shape=(3, SIZE, SIZE), options=OPTIONS, inspect=inspect, rank=_rank,
    )(BAIR)
