"""TaxiBJ (Zhang et al. 2017) as OpenSTL distributes it: ``taxibj``, 4 -> 4 frames of 2x32x32 crowd flows.

``--data-dir`` holds OpenSTL's ``dataset.npz`` (or a ``taxibj/`` folder with it, as OpenSTL's data root),
with arrays ``X_train``, ``Y_train``, ``X_test``, ``Y_test`` of shape [N, 4, 2, 32, 32] (inflow and outflow)
on [-1, 1]. They are normalised as OpenSTL does, (x + 1) / 2 to [0, 1], then stored as 8-bit frames like
every dataset's sequences (a quantisation error of at most 1/510 per value; OpenSTL keeps floats). A fixed
``val_fraction`` of the training sequences is held out for validation (OpenSTL validates on its test set).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, InMemorySource, Option, SequenceSource, array_digest, positive_int
from vpbench.datasets.registry import register_dataset
from vpbench.errors import UserError

FILE = "dataset.npz"
KEYS = ("X_train", "Y_train", "X_test", "Y_test")
SHAPE = (4, 2, 32, 32)
VAL_SEED = 20171


def read(root: Path | None) -> dict[str, np.ndarray]:
    """``{"train": [N, 8, 2, 32, 32], "test": ...}`` uint8, from OpenSTL's dataset.npz under ``root``."""
    if root is None:
        raise UserError(f"taxibj needs --data-dir: the folder with OpenSTL's {FILE}")
    path = next((p for p in (root / FILE, root / "taxibj" / FILE) if p.is_file()), None)
    if path is None:
        raise UserError(f"no {FILE} in {root} or {root / 'taxibj'}; taxibj needs OpenSTL's {FILE}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise UserError(f"{path}: no array {', '.join(missing)} (it has: {', '.join(data.files)}); expected "
                                f"OpenSTL's {FILE}")
            arrays = {k: data[k] for k in KEYS}
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read ({err}); re-download it") from None
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"X_{split}"], arrays[f"Y_{split}"]
        if x.shape[1:] != SHAPE or y.shape[1:] != SHAPE or len(x) != len(y) or not len(x):
            raise UserError(f"{path}: X_{split} {x.shape} and Y_{split} {y.shape}; expected [N, 4, 2, 32, 32] each")
        frames = (np.concatenate([x, y], axis=1).astype(np.float32) + 1) / 2  # OpenSTL's normalisation
        out[split] = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    return out


class TaxiBJ(InMemorySource):
    """TaxiBJ's sequences in memory: training sequences in a new order each epoch."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        data = read(data_dir)
        order = np.random.default_rng(VAL_SEED).permutation(len(data["train"]))
        held = max(1, round(config["val_fraction"] * len(order)))
        self.val, self.train = data["train"][np.sort(order[:held])], data["train"][np.sort(order[held:])]
        self.test = data["test"][: config["test_sequences"]] if config["test_sequences"] else data["test"]
        self.train_sequences = config["train_sequences"]
        digest = array_digest(self.test)
        self.provenance = {"kind": "taxibj", "data_dir": str(data_dir), "test_sequences": len(self.test),
                           "test_sha256": digest,
                           "label": f"taxibj test set [{digest[:8]}]: {len(self.test)} sequences of OpenSTL's {FILE}"}


OPTIONS = {
    "val_fraction": Option(0.05, "fraction of the training sequences held out for validation", kind=float,
                           minimum=0),
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training sequences per epoch, a "
                                    "new random subset each epoch (null: every one)", nullable=True),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 8}, "test sequences, the first ones "
                                   "(null: every one)", nullable=True),
}


@register_dataset("taxibj", description=f"TaxiBJ 4->4, 2x32x32 crowd flows (needs --data-dir with OpenSTL's {FILE})",
                  frames=(4, 4), shape=(2, 32, 32), options=OPTIONS, rank=45)
def build(spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int) -> SequenceSource:
    if spec.input_frames + spec.output_frames != 8:
        raise UserError(f"taxibj holds sequences of 4 + 4 frames; got input_frames={spec.input_frames}, "
                        f"output_frames={spec.output_frames}")
    return TaxiBJ(spec, config, data_dir, seed)
