"""``bench run``: train, evaluate and record each model of a sweep in its own run folder."""
from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vpbench import config as cfg
from vpbench import presets
from vpbench.datasets import SequenceSource, build_dataset
from vpbench.environment import describe
from vpbench.errors import UserError
from vpbench.harness import distributed
from vpbench.harness.checkpoints import initial_weights
from vpbench.harness.evaluate import Evaluation, evaluate, framewise_table
from vpbench.harness.loggers import Tracker, open_tracker, parse_loggers
from vpbench.harness.steps import place
from vpbench.harness.trainer import Runtime, fit
from vpbench.locks import RunLock
from vpbench.metrics.cost import count_flops, count_params
from vpbench.metrics.perceptual import PerceptualMetrics
from vpbench.metrics.scoring import MetricScorer, context_of
from vpbench.models import build_model, registry
from vpbench.store import DONE, RunDir, iter_runs, new_run, writable_results_dir


def identity(config: Mapping[str, Any]) -> dict[str, str]:
    """Model name and a digest of the protocol part of a configuration."""
    protocol = json.dumps({k: config[k] for k in cfg.RUN_KEYS}, sort_keys=True, default=str)
    return {"model": config["model"]["name"], "config": hashlib.sha256(protocol.encode()).hexdigest()[:16]}


def run_to_resume(results_dir: Path, config: Mapping[str, Any]) -> RunDir | None:
    """The newest run of this model, preset and seed (exactly: seed 1 is not seed 10), if it has the same
    configuration.

    A newest run with another configuration is an error: resuming it would mix two protocols."""
    name, preset, seed = config["model"]["name"], config["preset"], config["seed"]
    folder = results_dir / config["dataset"]["name"] / name
    named = re.compile(rf"\d{{8}}-\d{{6}}-{re.escape(str(preset))}-s{seed}(-\d+)?")
    candidates = [r for r in iter_runs(results_dir) if r.path.parent == folder and named.fullmatch(r.run_id)]
    if not candidates:
        return None
    newest = candidates[-1]
    stored = newest.read_yaml("config.yaml")
    if identity(stored) != identity(config):
        raise UserError(f"cannot resume {name}: its newest run {newest.path} has another configuration "
                        f"({cfg.difference(stored, config)}); run without --resume to start a new run")
    return newest


def load_checkpoint(run: RunDir, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """``last.pt`` of ``run``, checked to belong to this model and configuration."""
    if not run.exists("checkpoints/last.pt"):
        return None
    checkpoint = run.load_torch("checkpoints/last.pt", "delete the run folder or run without --resume")
    if checkpoint.get("identity") != identity(config):
        raise UserError(f"{run.file('checkpoints/last.pt')} was written by {checkpoint.get('identity')}, "
                        f"not by {identity(config)}; it cannot be resumed here")
    return checkpoint


def _prepare(results_dir: Path, config: Mapping[str, Any], resume: bool) -> tuple[RunLock | None, tuple[str, Any, Any]]:
    """Rank 0's decision: the run folder's lock (held from here on; None for a run already done) and (run folder,
    checkpoint to resume or None, metrics if already done). A folder another process holds is an error."""
    run = run_to_resume(results_dir, config) if resume else None
    if run is None:
        run = new_run(results_dir, config["dataset"]["name"], config["model"]["name"], config["preset"],
                      config["seed"])
        return RunLock(run.path).acquire(), (str(run.path), None, None)
    if run.status().get("status") in DONE and run.exists("metrics.json"):
        return None, (str(run.path), None, run.read_json("metrics.json"))
    lock = RunLock(run.path).acquire()
    try:
        if run.status().get("status") in DONE and run.exists("metrics.json"):  # finished while we waited
            lock.release()
            return None, (str(run.path), None, run.read_json("metrics.json"))
        return lock, (str(run.path), load_checkpoint(run, config), None)
    except BaseException:
        lock.release()
        raise


def _echo(run: RunDir | None, active: bool) -> Callable[[str], None]:
    def log(line: str) -> None:
        if active:
            tqdm.write(line)
        if run is not None:
            run.append_log(line)

    return log


def run_one(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, results_dir: Path,
            runtime: Runtime, *, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate one model in its run folder; returns its metrics.json content.

    With ``resume``, a finished run of the same configuration is skipped and an unfinished one is
    continued from its last checkpoint. A failure is recorded in the folder (status ``failed`` or
    ``interrupted``, traceback in log.txt) before it propagates."""
    dist = runtime.dist
    decision: Any = None
    lock = None
    if dist.is_main:
        try:
            lock, decision = _prepare(results_dir, config, resume)
        except UserError as err:
            decision = err
    decision = distributed.broadcast(decision, dist)
    if isinstance(decision, UserError):
        raise decision
    try:
        return _run_in(decision, model, config, source, runtime)
    finally:
        if lock is not None:
            lock.release()


def _run_in(decision: tuple[str, Any, Any], model: nn.Module, config: Mapping[str, Any], source: SequenceSource,
            runtime: Runtime) -> dict[str, Any]:
    """:func:`run_one` once the run folder is decided (and, on rank 0, held)."""
    dist = runtime.dist
    path, checkpoint, done = decision
    if done is not None:
        if dist.is_main:
            print(f"{config['model']['name']}: already {done['status']} in {path}, skipped")
        return done
    run = RunDir(Path(path)) if dist.is_main else None
    log = _echo(run, dist.is_main)
    if run is not None:
        run.write_yaml("config.yaml", dict(config))
        run.write_json("environment.json", {**describe(runtime.device), "world_size": dist.world})
        run.set_status("running", epochs=checkpoint["epoch"] if checkpoint is not None else 0)
        log(f"{config['model']['name']}: run folder {run.path}")
    try:
        return _train_and_evaluate(model, config, source, run, runtime, log, checkpoint)
    except KeyboardInterrupt:
        if run is not None:
            run.set_status("interrupted")
        raise
    except Exception as err:
        if run is not None:
            run.append_log(traceback.format_exc())
            run.set_status("failed", error=f"{type(err).__name__}: {err}")
        raise


def _train_and_evaluate(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, run: RunDir | None,
                        runtime: Runtime, log: Callable[[str], None],
                        checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Train (from ``checkpoint`` when resuming), then, on rank 0, test the best checkpoint and write the results."""
    name = config["model"]["name"]
    metrics = describe_run(model, config, source, run)
    if checkpoint is not None:
        load_weights(model, checkpoint["model"], name)
    elif config.get("init"):
        load_weights(model, initial_weights(config["init"], name), name)
        log(f"{name}: starting from the weights of {config['init']}")
    place(model, runtime.device, config["train"])
    tracker = open_tracker(run, config, log) if run is not None else Tracker([], log)
    try:
        return _tracked(model, config, source, run, runtime, log, checkpoint, metrics, tracker)
    finally:
        tracker.close()


def _tracked(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, run: RunDir | None,
             runtime: Runtime, log: Callable[[str], None], checkpoint: Mapping[str, Any] | None,
             metrics: dict[str, Any], tracker: Tracker) -> dict[str, Any]:
    """Training and testing with ``tracker`` open; ``metrics``: the head of metrics.json."""
    name = config["model"]["name"]
    started = time.time()
    outcome = fit(model, source, config["train"], run, runtime=runtime, seed=config["seed"], log=log, name=name,
                  identity=identity(config), resume=checkpoint, tracker=tracker)
    metrics.update(status=outcome.status, epochs=outcome.epochs_done, best_epoch=outcome.best_epoch,
                   train_seconds=round(time.time() - started, 1))
    if outcome.message:
        metrics["message"] = outcome.message
    if run is not None:  # other ranks: rank 0 tests and writes
        metrics.update(_test_best(model, config, source, run, runtime, log, evaluated=outcome.best_epoch is not None
                                  or outcome.status != "diverged", tracker=tracker))
        run.write_json("metrics.json", metrics)
        run.set_status(outcome.status, epochs=outcome.epochs_done)
        if metrics.get("eval_seconds") is not None:
            log(f"{name}: test {test_line(metrics)} ({outcome.status})")
    distributed.barrier(runtime.dist)
    return metrics


def describe_run(model: nn.Module, config: Mapping[str, Any], source: SequenceSource,
                 run: RunDir | None) -> dict[str, Any]:
    """The head of metrics.json: what was run on which data, and the model's cost (FLOPs on rank 0 only)."""
    name = config["model"]["name"]
    entry = registry.get_entry(name)
    return {
        "model": name,
        "label": stochastic_label(entry.label_for(presets.get(config["preset"]).protocol), draws_of(config)),
        "origin": dict(entry.origin),
        "dataset": config["dataset"]["name"],
        "preset": config["preset"],
        "seed": config["seed"],
        "run_id": run.run_id if run else None,
        "provenance": source.provenance,
        "shape": [source.spec.channels, source.spec.height, source.spec.width],
        "params": count_params(model),
        "flops": count_flops(model, source.spec) if run else None,
    }


def draws_of(config: Mapping[str, Any]) -> int | None:
    """The futures drawn per test sequence (``--samples K``) for a stochastic model; None for a deterministic one."""
    if not registry.get_entry(config["model"]["name"]).stochastic:
        return None
    return int((config.get("metrics") or {}).get("samples", 1))


def stochastic_label(label: str, draws: int | None) -> str:
    """A model's row label: ``MCVD (best of K=4)`` for a stochastic model's, the label itself otherwise."""
    return label if draws is None else f"{label} (best of K={draws})"


def check_samples(configs: list[dict[str, Any]]) -> None:
    """``--samples K`` > 1 is for stochastic models: an error when no model of the sweep is one (a deterministic
    model draws one future whatever K)."""
    asked = {int((c.get("metrics") or {}).get("samples", 1)) for c in configs}
    if max(asked, default=1) > 1 and all(draws_of(c) is None for c in configs):
        names = ", ".join(dict.fromkeys(c["model"]["name"] for c in configs))
        stochastic = ", ".join(n for n, e in registry.entries().items() if e.stochastic) or "none"
        raise UserError(f"--samples {max(asked)}: {names} {'is' if ',' not in names else 'are'} deterministic (one "
                        f"future per sequence); drop --samples or add a stochastic model ({stochastic})")


def load_weights(model: nn.Module, state_dict: Mapping[str, Any], name: str) -> None:
    """A checkpoint's weights into ``model``, or a clear error when they do not fit it."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise UserError(f"the checkpoint does not fit model {name} ({str(err).splitlines()[0]})") from None


def _test_best(model: nn.Module, config: Mapping[str, Any], source: SequenceSource, run: RunDir, runtime: Runtime,
               log: Callable[[str], None], *, evaluated: bool, tracker: Tracker) -> dict[str, Any]:
    """The test metrics of the run's best checkpoint (None each when training diverged before any), written
    into the run folder as per_sequence.npz, framewise.csv and samples.npz, and given to ``tracker``."""
    selected = (config.get("metrics") or {}).get("names")  # configs of older runs have no metrics section
    scorer = MetricScorer(selected, context_of(source))
    if not evaluated:
        return {m: None for m in scorer.columns}
    if run.exists("checkpoints/best.pt"):
        model.load_state_dict(run.load_torch("checkpoints/best.pt")["model"])
    started = time.time()
    perceptual = PerceptualMetrics(config.get("metrics"), runtime.device)
    for note in perceptual.notes:
        log(f"{config['model']['name']}: {note}")
    result = evaluate(model, source.split("test"), source.spec, device=runtime.device,
                      batch_size=config["train"]["eval_batch_size"], samples=config["train"]["samples"],
                      desc=f"{config['model']['name']} test", perceptual=perceptual, scorer=scorer,
                      draws=draws_of(config), seed=config["seed"])
    for warning in result.extra.get("metric_warnings", []):
        log(f"{config['model']['name']}: warning: {warning}")
    write_evaluation(run, result)
    summary = result.summary()
    tracker.test(summary, result.per_frame, result.columns)
    return {"eval_seconds": round(time.time() - started, 1), **summary}


LINE_METRICS = (("mse", "MSE", 1), ("mae", "MAE", 1), ("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("lpips", "LPIPS", 4),
                ("fvd", "FVD", 1))  # what a run's last line shows, of what it computed


def test_line(metrics: Mapping[str, Any]) -> str:
    """``MSE 123.4, MAE 56.7, PSNR 18.20, SSIM 0.8123``: the test metrics of a run or an evaluation that it has;
    for a stochastic model, those of the best of K, then the mean of K's and the spread."""
    line = ", ".join(f"{label} {metrics[key]:.{digits}f}" for key, label, digits in LINE_METRICS
                     if metrics.get(key) is not None)
    stochastic = metrics.get("stochastic")
    if not stochastic:
        return line
    mean = test_line(stochastic["mean_of_k"])
    return f"best of K={stochastic['samples']}: {line}; mean of K: {mean}; spread {stochastic['spread']:.4f}"


def write_evaluation(folder: RunDir, result: Evaluation) -> None:
    """An evaluation's files: per_sequence.npz (everything derives from it; for a stochastic model ``per_frame`` is
    the best of K, beside ``per_frame_mean_of_k`` [N, T_out, metrics] and ``spread`` [N, T_out]), framewise.csv,
    samples.npz."""
    stochastic = {} if result.draws is None else {"per_frame_mean_of_k": result.draws.mean_per_frame,
                                                  "spread": result.draws.spread}
    folder.write_npz("per_sequence.npz", per_frame=result.per_frame, metrics=np.array(result.columns), **stochastic)
    folder.write_csv("framewise.csv", framewise_table(result.per_frame, result.columns))
    if result.samples:
        folder.write_npz("samples.npz", **result.samples)


def plan(models: list[str], dataset: str, *, preset: str, seeds: list[int], epochs: int | None,
         sets: Mapping[str, Mapping[str, Any]], dist: distributed.Dist,
         data_dir: str | Path | None = None, init: str | Path | None = None,
         loggers: str | None = None) -> list[dict[str, Any]]:
    """The resolved configuration of every (seed, model) run, seed by seed, with the checks that need no
    training data: run before anything is written or a process group is joined, so that a bad option fails
    at once. ``init``: the run folder whose weights every run starts from (``--init``; its model checked);
    ``loggers``: ``--logger``'s trackers (their packages checked)."""
    use = parse_loggers(loggers)
    configs = [cfg.resolve(preset, m, dataset, seed=seed, epochs=epochs, sets=sets, data_dir=data_dir)
               for seed in seeds for m in models]
    for config in configs:
        config["logger"]["use"] = use or config["logger"]["use"]
    check_samples(configs)
    for config in configs:
        distributed.check_batch(config["train"]["batch_size"], dist)
        if config["train"]["epochs"] == 0 and init is None:
            raise UserError("--epochs 0 trains nothing: an untrained model would be recorded as finished; give "
                            "--epochs 1 or more (0 only with --init RUN, to test that run's weights)")
        if init is not None:
            initial_weights(init, config["model"]["name"])
            config["init"] = str(Path(init).expanduser().resolve())
    return configs


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-2"`` (or a mix: ``"0-2,7"``) -> [0, 1, 2(, 7)], without repeats."""
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, dash, high = part.partition("-")
            seeds += range(int(low), int(high) + 1) if dash else [int(part)]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds {text!r}: expected seeds >= 0 as a list or a range, e.g. --seeds 0,1,2 or 0-2")
    return list(dict.fromkeys(seeds))


RunHook = Callable[[str, Mapping[str, Any]], None]


def run_sweep(configs: list[dict[str, Any]], *, data_dir: str | None, results_dir: str | Path, runtime: Runtime,
              resume: bool = False, sources: Mapping[int, SequenceSource] | None = None,
              on_run: RunHook | None = None) -> list[dict[str, Any]]:
    """Run every configuration of :func:`plan` in turn, seed by seed on that seed's data. The models of a
    seed are built before any of them trains; a model that fails or diverges later is recorded and the
    sweep goes on. ``sources``: each seed's data when already built (see :func:`build_sources`); ``on_run``:
    called with ``("start", config)`` and ``("end", config)`` around each run (progress lines)."""
    out_dir = writable_results_dir(results_dir) if runtime.dist.is_main else Path(results_dir)
    for config in configs:
        config["runtime"] = {"device": str(runtime.device), "precision": runtime.precision,
                             "compile": runtime.compile, "world_size": runtime.dist.world}
    seeds = list(dict.fromkeys(c["seed"] for c in configs))
    results, failures = [], []
    for seed in seeds:
        mine = [c for c in configs if c["seed"] == seed]
        source = (sources or {}).get(seed) or build_sources(mine, data_dir)[seed]
        for config in mine:  # what `bench eval` finds the data by again
            config["data"] = {"dir": str(Path(data_dir).expanduser().resolve()) if data_dir else None,
                              "digest": source.provenance.get("test_sha256")}
        results += _run_seed(mine, source, out_dir, runtime, resume, failures, len(seeds) > 1, on_run)
    if failures:
        what = "runs" if len(seeds) > 1 else "models"
        raise UserError(f"{len(failures)} of {len(configs)} {what} failed: {'; '.join(failures)}")
    return results


def build_sources(configs: list[dict[str, Any]], data_dir: str | Path | None) -> dict[int, SequenceSource]:
    """Each seed's data for these configurations (one per seed: every run of a seed trains on the same data)."""
    sources = {}
    for config in configs:
        if config["seed"] not in sources:
            sources[config["seed"]] = build_dataset(config["dataset"]["name"], config["dataset"], data_dir,
                                                    config["seed"])
    return sources


def _run_seed(configs: list[dict[str, Any]], source: SequenceSource, out_dir: Path, runtime: Runtime, resume: bool,
              failures: list[str], name_seed: bool, on_run: RunHook | None) -> list[dict[str, Any]]:
    """The runs of one seed on its data; each failure is added to ``failures`` (its model named with the seed
    when ``name_seed``)."""
    built = []
    for config in configs:  # each model's initialisation depends on the seed only, not on the sweep
        torch.manual_seed(config["seed"])
        built.append(build_model(config))
    seed = configs[0]["seed"]
    if runtime.dist.is_main:
        print(f"data: {source.provenance['label']}")
    results = []
    for model, config in zip(built, configs):
        name = config["model"]["name"] + (f" seed {seed}" if name_seed else "")
        if on_run is not None:
            on_run("start", config)
        try:
            results.append(run_one(model, config, source, out_dir, runtime, resume=resume))
        except UserError as err:
            failures.append(f"{name} ({err})")
        except Exception as err:  # noqa: BLE001  any failure of one model (a plug-in's, say) is recorded
            detail = f"{type(err).__name__}: {str(err).splitlines()[0]}" if str(err) else type(err).__name__
            failures.append(f"{name} ({detail}; traceback in its run folder's log.txt)")
            print(f"{name}: failed: {detail}")
        if on_run is not None:
            on_run("end", config)
    return results
