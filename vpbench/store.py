"""The results store: one self-contained folder per run, written atomically.

    results/<dataset>/<model>/<run-id>/
        config.yaml        resolved configuration (preset, seed, dataset, model, train)
        environment.json   versions, device, threads, git commit
        status.json        running | finished | diverged | failed, with the epoch reached
        train_log.csv      one row per epoch: losses, validation MSE, learning rate, seconds
        log.txt            what the run printed
        checkpoints/       last.pt (resumable), best.pt (best validation loss)
        metrics.json       means over test sequences and frames (mse, mae, psnr, ssim), status,
                           provenance, params, flops
        framewise.csv      the metrics per predicted frame (means over test sequences)
        per_sequence.npz   the per-sequence-per-frame array [N, T_out, 4] everything derives from
        samples.npz        inputs, targets and predictions (uint8) of a few fixed test sequences

A new run never overwrites an earlier one: run ids are unique, files are replaced atomically. Torch files are read
with ``weights_only=True`` only (tensors, dicts, lists, numbers, strings): a run folder copied from elsewhere never
runs code.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
import yaml

from vpbench.errors import UserError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process's umask (os.umask can only read it by setting it)
DONE = ("finished", "diverged")  # the statuses of a run that ended (status.json), its results written


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RunDir:
    """One run's folder."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return self.file(name).is_file()

    # -- writers (atomic) ------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> None:
        atomic_write_bytes(self.file(name), text.encode())

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")

    def write_yaml(self, name: str, obj: Any) -> None:
        self.write_text(name, yaml.safe_dump(obj, sort_keys=False))

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        self.write_text(name, frame.to_csv(index=False))

    def write_npz(self, name: str, **arrays: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.file(name), buffer.getvalue())

    def save_torch(self, name: str, obj: Any) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        atomic_write_bytes(self.file(name), buffer.getvalue())

    def append_log(self, line: str) -> None:
        with open(self.file("log.txt"), "a") as f:
            f.write(line.rstrip("\n") + "\n")

    # -- readers ---------------------------------------------------------------------------------
    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def read_yaml(self, name: str) -> Any:
        return yaml.safe_load(self.file(name).read_text())

    def load_torch(self, name: str, fix: str = "copy the run folder again from where it was trained, or train "
                                                "it again") -> Any:
        """The torch file ``name`` (tensors and plain containers only; see :func:`load_tensors`)."""
        return load_tensors(self.file(name), fix)

    def status(self) -> dict[str, Any]:
        return self.read_json("status.json") if self.exists("status.json") else {"status": "unknown"}

    def set_status(self, status: str, **extra: Any) -> None:
        """Replace status.json; ``epochs`` (the epoch reached) is kept from the previous one when not given."""
        try:
            reached = {k: v for k, v in self.status().items() if k == "epochs"}
        except (OSError, ValueError, AttributeError):  # a damaged status.json is replaced
            reached = {}
        self.write_json("status.json", {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **reached,
                                        **extra})


def load_tensors(path: Path, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, dicts, lists, tuples, numbers and strings, never a pickled
    object (its loading could run any code). Anything else is a one-line :class:`UserError` naming the file and
    ending with ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe is None:
            raise UserError(f"{path}: not a checkpoint torch can read (damaged, or not a torch file); {fix}") from None
        raise UserError(f"{path}: holds Python objects besides tensors ({unsafe[1]}), which vpbench does not "
                        f"unpickle; {fix}") from None
    except Exception as err:  # noqa: BLE001  torch raises several types for a damaged file
        detail = (str(err).strip().splitlines() or [""])[0]
        raise UserError(f"{path}: not a checkpoint torch can read ({type(err).__name__}: {detail}); {fix}") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def writable_results_dir(results_dir: str | Path) -> Path:
    """``results_dir`` created if needed, or a clear error when it cannot be written."""
    path = Path(results_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(f"results directory {str(path)!r} is not writable ({err.strerror}); pass --results-dir DIR") from None
    return path


def new_run(results_dir: Path, dataset: str, model: str, preset: str, seed: int) -> RunDir:
    """Create a fresh, uniquely named run folder: ``<time>-<preset>-s<seed>[-k]``."""
    parent = results_dir / dataset / model
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{preset}-s{seed}"
    for k in range(1000):
        path = parent / (base if k == 0 else f"{base}-{k}")
        try:
            path.mkdir()
            (path / "checkpoints").mkdir()
            return RunDir(path)
        except FileExistsError:
            continue
    raise UserError(f"too many runs named {base} in {parent}")


def iter_runs(results_dir: str | Path) -> Iterator[RunDir]:
    """Every run folder under ``results_dir`` (any depth of <dataset>/<model>/<run-id>)."""
    root = Path(results_dir)
    if not root.is_dir():
        return
    for config in sorted(root.glob("*/*/*/config.yaml")):
        yield RunDir(config.parent)
