"""``bench eval RUN_DIR``: a finished run's best checkpoint on its own test set again, or on another dataset,
horizon or data directory (e.g. trained on ``mmnist`` 10 -> 10, tested on ``mmnist-long`` 10 -> 30).

The first evaluation of an imported run (``bench import``) on its own test set is the run's own: its files go
into the run folder as a trained run's do, and ``bench report`` shows it. Every other evaluation gets a folder of
its own inside the run, ``evaluations/<time>-<dataset>-h<horizon>[-k]/``
(never overwriting one), with the files a run's evaluation has: ``evaluation.yaml`` (what was evaluated
on what), ``metrics.json``, ``per_sequence.npz``, ``framewise.csv`` and ``samples.npz``. ``bench report``
shows them in a table of their own.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from vpbench import config as cfg
from vpbench.datasets import build_dataset, dataset_entry
from vpbench.environment import available_memory, describe, resolve_device
from vpbench.errors import UserError
from vpbench.harness.checkpoints import checkpoint_of, finished_run
from vpbench.harness.evaluate import check_memory, evaluate
from vpbench.harness.runner import check_samples, describe_run, draws_of, load_weights, test_line, write_evaluation
from vpbench.harness.steps import place
from vpbench.metrics.perceptual import PerceptualMetrics, metrics_config
from vpbench.metrics.scoring import MetricScorer, context_of
from vpbench.models import build_model
from vpbench.store import RunDir

EVALUATIONS = "evaluations"


def evaluation_config(trained: Mapping[str, Any], dataset: str | None, horizon: int | None,
                      data_dir: str | None, sets: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset section to test on: the run's own (its test set), or ``dataset``'s at the run's preset,
    with ``horizon`` predicted frames and ``sets`` (``--set dataset.*``)."""
    name = dataset or trained["dataset"]["name"]
    if name == trained["dataset"]["name"]:
        own = {k: v for k, v in trained["dataset"].items() if k != "name"}
        data = dataset_entry(name).config(trained["preset"], {**own, **sets}, data_dir)
    else:
        data = cfg.dataset_config(cfg.load_preset(trained["preset"]), name, sets, data_dir)
    if horizon is not None:
        if horizon < 1:
            raise UserError(f"--horizon {horizon}: must be at least 1 frame")
        data = dataset_entry(name).config(trained["preset"], {**{k: v for k, v in data.items()}, "output_frames":
                                                              horizon}, data_dir)
    if data["input_frames"] != trained["dataset"]["input_frames"]:
        raise UserError(f"the run was trained on {trained['dataset']['input_frames']} input frames, the test data has "
                        f"{data['input_frames']}; set --set dataset.input_frames={trained['dataset']['input_frames']}")
    return {"name": name, **data}


def remembered_data_dir(trained: Mapping[str, Any], log: Callable[[str], None]) -> str | None:
    """The data folder the run was trained on (its ``--data-dir``, recorded in config.yaml) while it is still
    there, said in a line; None when the run recorded none or it is gone (said too)."""
    recorded = (trained.get("data") or {}).get("dir")
    if not recorded:
        return None
    if not Path(recorded).is_dir():
        log(f"data: the run's data folder {recorded} is gone; pass --data-dir where its data is now")
        return None
    log(f"data: {recorded} (the run's --data-dir)")
    return recorded


def new_evaluation(run: RunDir, dataset: str, horizon: int) -> RunDir:
    """A fresh, uniquely named evaluation folder inside the run."""
    parent = run.path / EVALUATIONS
    parent.mkdir(exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}-h{horizon}"
    for k in range(1000):
        path = parent / (base if k == 0 else f"{base}-{k}")
        try:
            path.mkdir()
            return RunDir(path)
        except FileExistsError:
            continue
    raise UserError(f"too many evaluations named {base} in {parent}")


def evaluate_run(path: str | Path, *, dataset: str | None = None, horizon: int | None = None,
                 data_dir: str | None = None, sets: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None, device: torch.device = torch.device("cpu"),
                 samples: int | None = None, log: Callable[[str], None] = print) -> RunDir:
    """Evaluate a finished run's best checkpoint (with the ``metrics`` section asked for: ``names``, the
    registered metrics to compute (default: all), and the perceptual ones, e.g. LPIPS added to a finished run;
    ``metrics["samples"]``, the futures a stochastic model draws per sequence, default: the run's own);
    returns the evaluation folder."""
    run = finished_run(path)
    trained = run.read_yaml("config.yaml")
    own_futures = draws_of(trained) or 1  # a deterministic run of a sweep with --samples drew one
    metrics = metrics_config({"samples": own_futures, **(metrics or {})})  # a bad metric fails here
    evaluated = {**trained, "metrics": metrics}
    check_samples([evaluated])
    own_data = dataset in (None, trained["dataset"]["name"])
    if data_dir is None and own_data:
        data_dir = remembered_data_dir(trained, log)
    data = evaluation_config(trained, dataset, horizon, data_dir, sets or {})
    entry = dataset_entry(data["name"])
    spec = entry.spec(data)
    check_memory(spec, data.get("test_sequences") or 1, trained["train"]["eval_batch_size"], available_memory(),
                 "choose a shorter --horizon or fewer clips (--set dataset.test_sequences=N)")
    checkpoint_name, checkpoint = checkpoint_of(run)
    model = build_model(trained)
    load_weights(model, checkpoint["model"], trained["model"]["name"])
    place(model, device, trained["train"])
    source = build_dataset(entry.name, data, data_dir, trained["seed"])
    digest = (trained.get("data") or {}).get("digest")
    if own_data and horizon is None and not sets and digest and source.provenance.get("test_sha256") != digest:
        log(f"note: this test set [{source.provenance.get('test_sha256')}] differs from the one the run was tested "
            f"on [{digest}]: the data changed since")
    perceptual = PerceptualMetrics(metrics, device)
    for note in perceptual.notes:
        log(note)
    scorer = MetricScorer(metrics["names"], context_of(source))
    result = evaluate(model, source.split("test"), spec, device=device,
                      batch_size=trained["train"]["eval_batch_size"],
                      samples=trained["train"]["samples"] if samples is None else samples,
                      desc=f"{trained['model']['name']} eval", perceptual=perceptual, scorer=scorer,
                      draws=draws_of(evaluated), seed=trained["seed"])
    for warning in result.extra.get("metric_warnings", []):
        log(f"warning: {warning}")
    if "imported" in trained and not run.exists("metrics.json") and data["name"] == trained["dataset"]["name"] \
            and horizon is None and not sets:
        record_imported(run, trained, model, source, result)
        log("the imported run's first evaluation on its own test set: recorded as its test metrics (bench report)")
        return run
    folder = new_evaluation(run, entry.name, spec.output_frames)
    folder.write_yaml("evaluation.yaml", {"run": str(run.path), "checkpoint": checkpoint_name,
                                          "epoch": checkpoint.get("epoch"), "dataset": data,
                                          "trained_on": trained["dataset"], "metrics": metrics})
    write_evaluation(folder, result)
    folder.write_json("metrics.json", {
        "model": trained["model"]["name"], "dataset": entry.name, "frames": [spec.input_frames, spec.output_frames],
        "shape": [spec.channels, spec.height, spec.width], "provenance": source.provenance,
        "trained_on": {"dataset": trained["dataset"]["name"],
                       "frames": [trained["dataset"]["input_frames"], trained["dataset"]["output_frames"]]},
        "environment": describe(device), **result.summary()})
    return folder


def record_imported(run: RunDir, trained: Mapping[str, Any], model: torch.nn.Module, source: Any,
                    result: Any) -> None:
    """An imported run's (``bench import``) first evaluation on its own test set: its test metrics, written as a
    trained run's (metrics.json with the import's provenance, per_sequence.npz, framewise.csv, samples.npz)."""
    spec = source.spec
    metrics = describe_run(model, trained, source, run)
    metrics.update(status="finished", epochs=trained["imported"].get("epochs"), best_epoch=None,
                   imported=dict(trained["imported"]), frames=[spec.input_frames, spec.output_frames],
                   **result.summary())
    write_evaluation(run, result)
    run.write_json("metrics.json", metrics)


def command(args: argparse.Namespace) -> None:
    """``bench eval``: evaluate the run again and print the means."""
    sets = cfg.parse_sets(args.sets, args.metrics, args.samples)
    if sets["train"] or sets["model"]:
        raise UserError("bench eval takes --set dataset.KEY=VALUE and metrics.KEY=VALUE only: the model and its "
                        "training are the run's")
    folder = evaluate_run(args.run_dir, dataset=args.dataset, horizon=args.horizon, data_dir=args.data_dir,
                          sets=sets["dataset"], metrics=sets["metrics"], device=resolve_device(args.device))
    metrics = folder.read_json("metrics.json")
    print(f"{metrics['model']} on {metrics['dataset']} {metrics['frames'][0]} -> {metrics['frames'][1]}: "
          f"{test_line(metrics)}")
    print(f"evaluation: {folder.path}")
