"""SEVIR's radar VIL (Veillette et al. 2020) as Earthformer sets it up: ``sevir``, 13 -> 12 frames of 384x384
vertically integrated liquid, 5 minutes apart.

``--data-dir`` is SEVIR's root (or holds ``sevir/``): ``CATALOG.csv`` and ``data/``, where the catalogue's
``file_name`` column names each event's HDF5 file relative to ``data/`` (``vil/2019/SEVIR_VIL_STORMEVENTS_
2019_0101_0630.h5``) and ``file_index`` its row in the file's dataset ``vil`` (uint8 [N, 384, 384, 49]: 49
frames over 4 hours). Read with h5py.

Earthformer's setup (``cfg_sevir.yaml`` and its data loader): the catalogue rows of image type ``vil`` with
``pct_missing == 0``, an event listed more than once left out; training events up to 2019-01-01, validation
events after it up to 2019-06-01, test events after that (by ``time_utc``); each event gives the windows of T
frames starting every ``stride`` = 12 frames (three of 25 frames per event). ``downsample=k`` averages k x k
blocks (384/k pixels a side, as Earthformer's SEVIR-LR does with k = 3) for small machines; published values
match ``downsample=1`` only. VIL pixel values (0-255) are the frames, so metrics see them unchanged
(:meth:`Sevir.metric_context`) and score predictions unquantised, as Earthformer does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, Option, ReferenceTable, array_digest, positive_int
from vpbench.datasets.indexed import IndexedClips
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import spread
from vpbench.errors import UserError

CATALOG = "CATALOG.csv"
SIZE, RAW_FRAMES = 384, 49
FRAME_MINUTES = 5
SPLIT_DATES = ("2019-01-01", "2019-06-01")  # Earthformer's train/val and val/test boundaries
SPLITS = ("train", "val", "test")
SPLIT_TEXT = {"train": f"up to {SPLIT_DATES[0]}", "val": f"{SPLIT_DATES[0]} to {SPLIT_DATES[1]}",
              "test": f"after {SPLIT_DATES[1]}"}
VIL_THRESHOLDS = (16, 74, 133, 160, 181, 219)  # on VIL's 0-255 pixel scale


def _h5py():
    import h5py

    return h5py


def find_root(data_dir: Path | None) -> Path:
    """The folder holding ``CATALOG.csv`` and ``data/``: ``data_dir`` or ``data_dir/sevir``."""
    if data_dir is None:
        raise UserError(f"sevir needs --data-dir: SEVIR's folder with {CATALOG} and data/vil/<year>/*.h5")
    for root in (data_dir, data_dir / "sevir"):
        if (root / CATALOG).is_file():
            if not (root / "data").is_dir():
                raise UserError(f"sevir: no data/ folder beside {root / CATALOG}; expected SEVIR's data/vil/<year>/"
                                "*.h5 files")
            return root
    raise UserError(f"sevir: no {CATALOG} in {data_dir} (nor in its sevir/); expected SEVIR's {CATALOG} and data/")


def read_events(root: Path) -> dict[str, list[tuple[str, int]]]:
    """The VIL events of each split in id order, as Earthformer: (file name under ``data/``, row in its ``vil``
    dataset)."""
    import pandas as pd

    path = root / CATALOG
    try:
        catalog = pd.read_csv(path, low_memory=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read as CSV ({err}); re-download it") from None
    missing = [c for c in ("id", "file_name", "file_index", "img_type", "time_utc", "pct_missing")
               if c not in catalog.columns]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)}; expected SEVIR's {CATALOG}")
    vil = catalog[(catalog.img_type == "vil") & (catalog.pct_missing == 0)]
    vil = vil[~vil.id.duplicated(keep=False)]  # SEVIR lists some events twice: Earthformer drops them
    times = pd.to_datetime(vil.time_utc)
    bounds = [pd.Timestamp.min, *map(pd.Timestamp, SPLIT_DATES), pd.Timestamp.max]
    out = {}
    for split, (start, end) in zip(SPLITS, zip(bounds, bounds[1:])):
        chosen = vil[(times > start) & (times <= end)].sort_values("id", kind="stable")
        out[split] = list(zip(chosen.file_name.astype(str), chosen.file_index.astype(int)))
        if not out[split]:
            raise UserError(f"sevir: {CATALOG} in {root} lists no complete VIL event for {split} ({SPLIT_TEXT[split]} "
                            "by time_utc); expected SEVIR's full catalogue")
    return out


def open_vil(path: Path):
    """The ``vil`` dataset of a SEVIR file, checked: uint8 [N, 384, 384, 49]."""
    h5py = _h5py()
    if not path.is_file():
        raise UserError(f"sevir: {path} not found; {CATALOG} lists it: download SEVIR's VIL files into data/vil/")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path}: cannot be read as HDF5 ({err}); re-download it") from None
    if "vil" not in handle or handle["vil"].ndim != 4 or handle["vil"].shape[1:] != (SIZE, SIZE, RAW_FRAMES):
        found = f"vil of shape {handle['vil'].shape}" if "vil" in handle else f"no vil ({', '.join(handle)})"
        handle.close()
        raise UserError(f"{path}: holds {found}; expected SEVIR's VIL events uint8 [N, {SIZE}, {SIZE}, {RAW_FRAMES}]")
    return handle


def block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [..., H, W] -> uint8 [..., H/k, W/k]: means of k x k blocks, rounded (k = ``factor``)."""
    if factor == 1:
        return frames
    *lead, h, w = frames.shape
    blocks = frames.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))
    return np.round(blocks).astype(np.uint8)


class Sevir(IndexedClips):
    """SEVIR's VIL events, read from their HDF5 files when a batch needs them; a clip is (event, first frame)."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        self.root = find_root(data_dir)
        self.factor = int(config["downsample"])
        events = read_events(self.root)
        self.events = [event for split in SPLITS for event in events[split]]
        for name in dict.fromkeys(name for name, _ in self.events):
            with open_vil(self.root / "data" / name) as handle:
                rows = len(handle["vil"])
            bad = sorted({index for n, index in self.events if n == name and not 0 <= index < rows})
            if bad:
                raise UserError(f"sevir: {CATALOG} lists rows {bad[:3]} of {name}, which holds {rows} events; the "
                                "catalogue and the files must come from one download")
        length, stride = spec.total_frames, int(config["stride"])
        if length > RAW_FRAMES:
            raise UserError(f"sevir events hold {RAW_FRAMES} frames; got input_frames + output_frames = {length}")
        offsets = np.arange(0, RAW_FRAMES - length + 1, stride)
        counts = {"train": None, "val": config["val_sequences"], "test": config["test_sequences"]}
        self.clips, first = {}, 0
        for split in SPLITS:
            index = np.arange(first, first + len(events[split]))
            first += len(events[split])
            rows = np.stack(np.meshgrid(index, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
            self.clips[split] = spread(rows, counts[split])
        self.train_sequences = config["train_sequences"]
        self._files: dict[str, Any] = {}
        digest = array_digest(self.split("test"))
        side = SIZE // self.factor
        self.provenance = {
            "kind": "sevir", "data_dir": str(self.root), "downsample": self.factor, "stride": stride,
            "frame_minutes": FRAME_MINUTES, "units": "VIL (0-255)", "frames": [spec.input_frames, spec.output_frames],
            "events": {s: len(e) for s, e in events.items()}, "clips": {s: len(c) for s, c in self.clips.items()},
            "test_sequences": len(self.clips["test"]), "test_sha256": digest,
            "label": f"sevir test set [{digest[:8]}]: {len(self.clips['test'])} VIL windows of {side}x{side} from "
                     f"{len(events['test'])} events after {SPLIT_DATES[1]}",
        }

    def gather(self, rows: np.ndarray) -> np.ndarray:
        length = self.spec.total_frames
        out = []
        for event, start in rows:
            name, index = self.events[event]
            if name not in self._files:
                self._files[name] = open_vil(self.root / "data" / name)
            frames = self._files[name]["vil"][index, :, :, start : start + length]  # [H, W, T]
            out.append(block_mean(np.moveaxis(frames, -1, 0), self.factor)[:, None])
        return np.stack(out)

    def metric_context(self) -> dict[str, Any]:
        """VIL pixel values (0-255), scored unquantised; ``extra["nowcasting"]`` opts into the CSI family."""
        return {"channels": ("vil",), "units": self.provenance["units"], "eight_bit": False, "offset": 0.0,
                "scale": 255.0, "extra": {"nowcasting": "vil"}}

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_files": {}}  # open HDF5 files travel as names


def shape(config: Mapping[str, Any]) -> tuple[int, int, int]:
    factor = config["downsample"]
    if SIZE % factor:
        raise UserError(f"invalid value dataset.downsample={factor}: must divide {SIZE} (e.g. 2, 3, 4, 6, 8, 12)")
    return 1, SIZE // factor, SIZE // factor


def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
    """``bench data check``: the catalogue, the files, and the events and windows of each split."""
    source = Sevir(spec, config, root, 0)
    files = sorted({name for name, _ in source.events})
    lines = [f"{spec.name} in {source.root}: {spec.input_frames} -> {spec.output_frames} VIL frames of "
             f"{spec.height}x{spec.width} (downsample {source.factor}), windows every {config['stride']} frames",
             f"  {CATALOG}: {len(source.events)} complete VIL events in {len(files)} files under data/",
             "", f"{'split':<6} {'events':>7} {'windows':>8}  dates (time_utc)"]
    for split in SPLITS:
        lines.append(f"{split:<6} {source.provenance['events'][split]:>7} {len(source.clips[split]):>8}  "
                     f"{SPLIT_TEXT[split]}")
    return lines, []


OPTIONS = {
    "downsample": Option({"paper": 1, "quick": 4, "tiny": 12}, "average k x k pixel blocks (384/k a side; 3 is "
                         "Earthformer's SEVIR-LR size); published values are for 1", kind=int, minimum=1),
    "stride": positive_int(12, "frames between the windows of an event (Earthformer: 12)"),
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training windows per epoch, a new "
                                    "random subset each epoch (null: every window)", nullable=True),
    "val_sequences": positive_int({"paper": None, "quick": 64, "tiny": 2}, "validation windows, evenly spaced "
                                  "(null: every window)", nullable=True),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4}, "test windows, evenly spaced (null: "
                                   "every window, as Earthformer)", nullable=True),
}

# Earthformer's published SEVIR test scores (Gao et al. 2022, the SEVIR table: 13 -> 12 at 384x384, the
# contingency counts summed over the test set), as PaddleScience's documentation of Earthformer's released
# checkpoint repeats them. Only Earthformer's own row is stored: the baselines' rows could not be checked
# against a second source. Keyed by label: the SEVIR report prints it beside runs of any model, the `earthformer`
# model's (vpbench.models.earthformer, model.config=sevir) among them.
EARTHFORMER_TABLE = ReferenceTable(
    "earthformer-sevir", "Earthformer's SEVIR test scores (13 → 12, 384x384; Gao et al. 2022)", (13, 12),
    columns=("csi_m", "csi_219", "csi_181", "csi_160", "csi_133", "csi_74", "csi_16"), protocol="earthformer",
    convention="physical",
    rows={"Earthformer": {"csi_m": 0.4419, "csi_219": 0.1791, "csi_181": 0.2848, "csi_160": 0.3232,
                          "csi_133": 0.4271, "csi_74": 0.6860, "csi_16": 0.7513}},
)

register_dataset("sevir", description="SEVIR radar VIL nowcasting 13->12, 384x384 every 5 min (needs --data-dir with "
                                      f"SEVIR's {CATALOG} and data/vil/)",
                 frames=(13, 12), shape=shape, options=OPTIONS, inspect=inspect, rank=47)(Sevir)
