"""``bench run``: train, evaluate and record each model of a sweep in its own run folder."""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vpbench import config as cfg
from vpbench.benchmarks.evaluate import evaluate, framewise_table
from vpbench.benchmarks.metrics import METRICS
from vpbench.benchmarks.profiling import count_flops, count_params
from vpbench.benchmarks.trainer import fit
from vpbench.datasets import SequenceSource, build_dataset
from vpbench.environment import describe
from vpbench.errors import UserError
from vpbench.models import registry
from vpbench.store import RunDir, new_run, writable_results_dir


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The model of a resolved run configuration."""
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    if "img_size" in kwargs:
        kwargs["img_size"] = tuple(kwargs["img_size"])
    model = registry.get_entry(config["model"]["name"]).factory(**kwargs)
    model.registry_name = config["model"]["name"]
    return model


def _echo(run: RunDir | None) -> Callable[[str], None]:
    def log(line: str) -> None:
        tqdm.write(line)
        if run is not None:
            run.append_log(line)

    return log


def run_one(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, results_dir: Path,
            device: torch.device) -> dict[str, Any]:
    """Train and evaluate one model in a new run folder; returns its metrics.json content.

    A failure is recorded in the folder (status ``failed`` or ``interrupted``, traceback in log.txt)
    before it propagates."""
    name, dataset = config["model"]["name"], config["dataset"]["name"]
    run = new_run(results_dir, dataset, name, config["preset"], config["seed"])
    log = _echo(run)
    run.write_yaml("config.yaml", dict(config))
    run.write_json("environment.json", describe(device))
    run.set_status("running")
    log(f"{name}: run folder {run.path}")
    try:
        return _train_and_evaluate(model, config, source, run, device, log)
    except KeyboardInterrupt:
        run.set_status("interrupted")
        raise
    except Exception as err:
        run.append_log(traceback.format_exc())
        run.set_status("failed", error=f"{type(err).__name__}: {err}")
        raise


def _train_and_evaluate(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, run: RunDir,
                        device: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    name = config["model"]["name"]
    entry = registry.get_entry(name)
    metrics: dict[str, Any] = {
        "model": name,
        "label": entry.label,
        "origin": dict(entry.origin),
        "dataset": config["dataset"]["name"],
        "preset": config["preset"],
        "seed": config["seed"],
        "run_id": run.run_id,
        "provenance": source.provenance,
        "params": count_params(model),
        "flops": count_flops(model, source.spec),
    }
    model.to(device)
    started = time.time()
    outcome = fit(model, source, config["train"], run, device=device, seed=config["seed"], log=log, name=name)
    metrics.update(status=outcome.status, epochs=outcome.epochs_done, best_epoch=outcome.best_epoch,
                   train_seconds=round(time.time() - started, 1))
    if outcome.message:
        metrics["message"] = outcome.message
    if run.exists("checkpoints/best.pt"):
        model.load_state_dict(run.load_torch("checkpoints/best.pt")["model"])
    if outcome.status == "diverged" and outcome.best_epoch is None:
        metrics.update({m: None for m in METRICS})
    else:
        started = time.time()
        result = evaluate(model, source.split("test"), source.spec, device=device,
                          batch_size=config["train"]["eval_batch_size"], samples=config["train"]["samples"],
                          desc=f"{name} test")
        metrics["eval_seconds"] = round(time.time() - started, 1)
        metrics.update(result.summary())
        run.write_npz("per_sequence.npz", per_frame=result.per_frame, metrics=np.array(METRICS))
        run.write_csv("framewise.csv", framewise_table(result.per_frame))
        if result.samples:
            run.write_npz("samples.npz", **result.samples)
    run.write_json("metrics.json", metrics)
    run.set_status(outcome.status, epochs=outcome.epochs_done)
    if metrics["mse"] is not None:
        log(f"{name}: test MSE {metrics['mse']:.1f}, MAE {metrics['mae']:.1f}, PSNR {metrics['psnr']:.2f}, "
            f"SSIM {metrics['ssim']:.4f} ({outcome.status})")
    return metrics


def run_sweep(models: list[str], dataset: str, *, preset: str, seed: int, epochs: int | None,
              data_dir: str | None, results_dir: str | Path, device: torch.device,
              sets: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run every model in turn. Every configuration and model is built before any training starts,
    so a bad option fails at once; a model that fails later is recorded and the sweep goes on."""
    out_dir = writable_results_dir(results_dir)
    configs = [cfg.resolve(preset, m, dataset, seed=seed, epochs=epochs, sets=sets) for m in models]
    built = []
    for config in configs:  # each model's initialisation depends on the seed only, not on the sweep
        torch.manual_seed(config["seed"])
        built.append(build_model(config))
    source = build_dataset(dataset, configs[0]["dataset"], data_dir, seed)
    print(f"data: {source.provenance['label']}")
    results, failures = [], []
    for model, config in zip(built, configs):
        name = config["model"]["name"]
        try:
            results.append(run_one(model, config, source, out_dir, device))
        except (UserError, RuntimeError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            failures.append(f"{name} ({detail})")
            print(f"{name}: failed: {detail} (traceback in its run folder's log.txt)")
    if failures:
        raise UserError(f"{len(failures)} of {len(configs)} models failed: {'; '.join(failures)}")
    return results
