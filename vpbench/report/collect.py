"""Read result folders into runs, and runs into groups that may share a table.

A group is one (dataset, preset, test set): runs of different presets or of different test data
(``provenance.test_sha256``) never meet in one table. Within a group the newest run of each
(model, seed) counts. A folder that cannot be read is skipped with a warning, never fatal.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vpbench import config as cfg
from vpbench import presets
from vpbench.datasets import dataset_entry
from vpbench.errors import UserError
from vpbench.models import registry
from vpbench.store import DONE, RunDir, iter_runs


@dataclass(frozen=True)
class StoredMetrics:
    """What a run folder's per_sequence.npz holds: ``per_frame`` [N, T_out, len(metrics)] (MSE and MAE on 0-255),
    one column per stored metric, named by ``metrics`` (whatever the run computed, plug-ins included)."""

    per_frame: np.ndarray | None
    metrics: tuple[str, ...]

    def values(self, metric: str) -> np.ndarray | None:
        """[N, T_out] of ``metric``, or None when it was not stored (or did not compute: all NaN)."""
        if self.per_frame is None or metric not in self.metrics:
            return None
        column = self.per_frame[..., self.metrics.index(metric)]
        return None if np.isnan(column).all() else column


@dataclass(frozen=True)
class Run(StoredMetrics):
    """One finished (or diverged) run. ``per_frame`` is None when a diverged run has no evaluation."""

    path: Path
    dataset: str
    model: str
    label: str
    preset: str
    seed: int
    run_id: str
    status: str
    epochs: int
    frames: tuple[int, int]  # (input, output)
    shape: tuple[int, int, int]  # (C, H, W)
    provenance: str
    test_sha256: str
    test_kind: str  # the provenance's kind: "standard" for mnist_test_seq.npy, "embedded", "kth-avi", ...
    origin: dict[str, Any]
    params: int | None
    flops: int | None
    overrides: str = ""  # settings that differ from the preset's (``--set``), as "key: preset -> run"
    evaluations: tuple["Evaluation", ...] = ()  # later evaluations of its checkpoint (``bench eval``)
    fvd: float | None = None  # one value per run, when it was computed
    imported: dict[str, Any] | None = None  # `bench import`'s provenance: code, file, sha256, source, description
    epoch_seconds: float | None = None  # mean training time of an epoch (train_log.csv); None without training
    stochastic: dict[str, Any] | None = None  # a stochastic model's K futures: metrics.json's ``stochastic``
    note_cleared: bool = False  # trained with its model's ``training_note_unless`` option: the note does not apply

    @property
    def external(self) -> bool:
        return self.origin.get("kind") == "external"


@dataclass(frozen=True)
class Evaluation(StoredMetrics):
    """A later evaluation of a run's checkpoint (``bench eval``): on ``dataset`` with ``frames`` (input,
    output), its metrics stored as a run's."""

    path: Path
    dataset: str
    frames: tuple[int, int]
    provenance: str


def read_evaluations(run: RunDir, warnings: list[str]) -> tuple[Evaluation, ...]:
    """The run's evaluations, oldest first; an unreadable one is left out with a line in ``warnings``."""
    found = []
    for folder in sorted(run.path.glob("evaluations/*/metrics.json")):
        evaluation = RunDir(folder.parent)
        try:
            metrics = evaluation.read_json("metrics.json")
            found.append(Evaluation(*_per_frame(evaluation), evaluation.path, metrics["dataset"],
                                    tuple(metrics["frames"]), metrics["provenance"]["label"]))
        except Exception as err:  # noqa: BLE001  a damaged evaluation (any file, any way) leaves the run in
            warnings.append(f"left out {evaluation.path}: unreadable evaluation ({_brief(err)})")
    return tuple(found)


def _brief(err: Exception) -> str:
    """``Type: first line of the message``."""
    return f"{type(err).__name__}: {str(err).splitlines()[0]}" if str(err) else type(err).__name__


@dataclass
class Group:
    """The runs of one (dataset, preset, test set), newest per (model, seed), models in registry order."""

    dataset: str
    preset: str
    test_sha256: str
    provenance: str
    frames: tuple[int, int]
    shape: tuple[int, int, int]
    runs: list[Run] = field(default_factory=list)

    @property
    def test_kind(self) -> str:
        return self.runs[0].test_kind if self.runs else ""

    @property
    def protocol(self) -> str:
        """The training protocol of the group's preset (``srvp`` for a preset this vpbench does not know)."""
        return presets.PRESETS[self.preset].protocol if self.preset in presets.PRESETS else presets.DEFAULT_PROTOCOL

    @property
    def slug(self) -> str:
        """File-name stem of this group's figures: ``<dataset>-<preset>-<test hash>``."""
        return f"{self.dataset}-{self.preset}-{self.test_sha256[:8]}"

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.runs))

    def runs_of(self, model: str) -> list[Run]:
        """The model's runs, one per seed, by seed."""
        return sorted((r for r in self.runs if r.model == model), key=lambda r: r.seed)

    def label(self, model: str) -> str:
        return self.runs_of(model)[0].label

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})


@dataclass
class Collection:
    groups: list[Group]
    warnings: list[str]


def _per_frame(run: RunDir) -> tuple[np.ndarray, tuple[str, ...]]:
    """per_sequence.npz's array [N, T_out, K] and the names of its K metrics (all it stored: a metric added
    to vpbench after the run, such as ``ssim_openstl``, is simply not among them)."""
    with np.load(run.file("per_sequence.npz"), allow_pickle=False) as data:
        names = tuple(str(n) for n in data["metrics"])
        array = np.asarray(data["per_frame"], dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != len(names):
        raise ValueError(f"per_frame has shape {array.shape} for metrics {list(names)}")
    return array, names


def read_run(run: RunDir, warnings: list[str]) -> Run | None:
    """The run, or None when it has not finished (still running, failed, interrupted).
    Raises (whatever the reader meets) when a file of the run is damaged; a damaged evaluation of it is left
    out with a line in ``warnings``."""
    if not run.exists("metrics.json"):
        return None
    metrics = run.read_json("metrics.json")
    if metrics.get("status") not in DONE:
        return None
    config = run.read_yaml("config.yaml")
    data = config["dataset"]
    evaluated = metrics.get("mse") is not None or run.exists("per_sequence.npz")  # --metrics may leave out MSE
    if evaluated and not run.exists("per_sequence.npz"):
        raise ValueError("per_sequence.npz is missing")
    per_frame, stored = _per_frame(run) if evaluated else (None, ())
    frames = (int(data["input_frames"]), int(data["output_frames"]))
    if per_frame is not None and per_frame.shape[1] != frames[1]:
        raise ValueError(f"per_sequence.npz holds {per_frame.shape[1]} frames, config.yaml says {frames[1]}")
    return Run(
        per_frame=per_frame, metrics=stored, path=run.path, dataset=metrics["dataset"], model=metrics["model"],
        label=metrics.get("label") or metrics["model"],
        preset=metrics["preset"], seed=int(metrics["seed"]), run_id=run.run_id, status=metrics["status"],
        epochs=int(metrics.get("epochs") if metrics.get("epochs") is not None else config["train"]["epochs"]),
        frames=frames, shape=_shape(metrics, config),
        provenance=metrics["provenance"]["label"], test_sha256=metrics["provenance"]["test_sha256"],
        test_kind=metrics["provenance"].get("kind", ""),
        origin=dict(metrics.get("origin") or {"kind": "builtin"}),
        params=metrics.get("params"), flops=metrics.get("flops"), overrides=_overrides(config),
        evaluations=read_evaluations(run, warnings), fvd=metrics.get("fvd"), imported=metrics.get("imported"),
        epoch_seconds=_epoch_seconds(run), stochastic=metrics.get("stochastic"), note_cleared=_note_cleared(config),
    )


def _note_cleared(config: dict[str, Any]) -> bool:
    """Whether the run set its model's ``training_note_unless`` train option (False for a model not installed)."""
    entry = registry.entries().get(config["model"]["name"])
    return bool(entry and entry.training_note_unless and config["train"].get(entry.training_note_unless))


def _epoch_seconds(run: RunDir) -> float | None:
    """The mean of train_log.csv's ``seconds`` (an epoch's training and validation); None when nothing trained."""
    log = pd.read_csv(run.file("train_log.csv")) if run.exists("train_log.csv") else pd.DataFrame()
    return float(log["seconds"].mean()) if "seconds" in log and len(log) else None


def _shape(metrics: dict[str, Any], config: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of the run's frames: stored in metrics.json, or (runs made before it was) the dataset's."""
    if metrics.get("shape"):
        return tuple(metrics["shape"])
    spec = dataset_entry(metrics["dataset"]).spec(config["dataset"])
    return spec.channels, spec.height, spec.width


def _overrides(config: dict[str, Any]) -> str:
    """How the run's configuration differs from its preset's for the same model, dataset, seed and
    epochs; "" when it does not, or when the model is not installed here to tell."""
    try:
        default = cfg.resolve(config["preset"], config["model"]["name"], config["dataset"]["name"],
                              seed=config["seed"], epochs=config["train"]["epochs"])
    except UserError:
        return ""
    return cfg.difference(default, config)


def _model_order(model: str) -> tuple[int, str]:
    names = registry.model_names()
    return (names.index(model), "") if model in names else (len(names), model)


def collect(results_dir: str | Path) -> Collection:
    """Every finished run under ``results_dir``, grouped; damaged folders become warnings."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"results directory {str(root)!r} does not exist; pass --results-dir DIR "
                        "(the folder given to `bench run --results-dir`)")
    newest: dict[tuple, Run] = {}
    warnings = []
    for folder in iter_runs(root):
        try:
            run = read_run(folder, warnings)
        except Exception as err:  # noqa: BLE001  a damaged folder (any file, any way) must not stop the report
            warnings.append(f"skipped {folder.path}: unreadable run ({_brief(err)})")
            continue
        if run is None:
            continue
        key = (run.dataset, run.preset, run.test_sha256, run.model, run.seed)
        if key not in newest or run.run_id > newest[key].run_id:
            newest[key] = run
    groups: dict[tuple, Group] = {}
    for run in sorted(newest.values(), key=lambda r: (_model_order(r.model), r.seed)):
        key = (run.dataset, run.preset, run.test_sha256)
        if key not in groups:
            groups[key] = Group(run.dataset, run.preset, run.test_sha256, run.provenance, run.frames, run.shape)
        groups[key].runs.append(run)
    ordered = sorted(groups.values(), key=lambda g: (g.dataset, g.preset, g.test_sha256))
    return Collection(ordered, warnings)


def read_profiles(results_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of every ``<results_dir>/profiles/*.json`` written by ``bench profile``, and warnings."""
    rows, warnings = [], []
    for path in sorted(Path(results_dir, "profiles").glob("*.json")):
        try:
            found = json.loads(path.read_text())
            if not isinstance(found, list) or not all(isinstance(r, dict) and "model" in r for r in found):
                raise ValueError("expected a list of objects with a model")
        except (OSError, ValueError) as err:
            warnings.append(f"skipped {path}: unreadable profile ({type(err).__name__}: {err})")
            continue
        rows.extend(found)
    return rows, warnings
