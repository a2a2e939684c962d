"""Predict a split and score every predicted frame of every sequence.

A stochastic model (registry flag ``stochastic``) is evaluated on ``draws`` futures per test sequence (``bench run
--samples K``), drawn from a seeded generator: the run's main per-frame metrics are those of the best of the K
futures per sequence (the one of least MSE over its predicted frames, as the stochastic-prediction literature
reports), beside the mean of K (each metric averaged over the K futures) and the spread (per-pixel standard
deviation across the futures, on [0, 1], averaged over pixels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vpbench.datasets import DataSpec
from vpbench.environment import flush_denormals
from vpbench.errors import UserError
from vpbench.metrics.frames import to_uint8
from vpbench.metrics.perceptual import PerceptualMetrics
from vpbench.metrics.registry import MetricContext
from vpbench.metrics.scoring import MetricScorer

SELECTION = "per test sequence, the future of least MSE over its predicted frames"


@dataclass
class Draws:
    """A stochastic model's ``count`` futures per test sequence: ``mean_per_frame`` [N, T_out, columns] (each metric
    averaged over the futures) and ``spread`` [N, T_out] (per-pixel std across the futures on [0, 1], averaged over
    C x H x W; 0 for one future)."""

    count: int
    mean_per_frame: np.ndarray
    spread: np.ndarray


@dataclass
class Evaluation:
    """per_frame: [N, T_out, len(columns)] (the selected registered metrics, then ``lpips`` when computed);
    samples: uint8 arrays of a few sequences; extra: per-run values for metrics.json (``fvd``, ``perceptual``,
    ``metric_warnings`` when a plug-in metric failed)."""

    per_frame: np.ndarray
    samples: dict[str, np.ndarray]
    columns: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    draws: Draws | None = None  # a stochastic model's K futures; None for a deterministic model

    def summary(self) -> dict[str, Any]:
        """Means over test sequences and predicted frames, and the per-run values (for a stochastic model,
        ``per_frame`` is the best of K and ``stochastic`` holds the sample count, the mean of K and the spread)."""
        out = {**summarize(self.per_frame, self.columns), **self.extra}
        if self.draws is not None:
            out["stochastic"] = {"samples": self.draws.count, "selection": SELECTION,
                                 "mean_of_k": summarize(self.draws.mean_per_frame, self.columns),
                                 "spread": float(self.draws.spread.mean())}
        return out


def summarize(per_frame: np.ndarray, columns: tuple[str, ...]) -> dict[str, float | None]:
    """Each column's mean over sequences and frames (None for a metric that failed: NaN)."""
    means = per_frame.reshape(-1, len(columns)).mean(axis=0)
    return {name: None if np.isnan(v) else float(v) for name, v in zip(columns, means)}


def framewise_table(per_frame: np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
    """One row per predicted frame (1-based): the metrics averaged over test sequences."""
    means = per_frame.mean(axis=0)
    table = pd.DataFrame(means, columns=list(columns))
    table.insert(0, "frame", np.arange(1, len(table) + 1))
    return table


def unit_interval(frames: Tensor) -> np.ndarray:
    """Frames [..., C, H, W] as float32 in [0, 1] on the CPU, as metrics take them: 8-bit frames / 255, float
    frames as they are."""
    array = frames.detach().cpu().numpy()
    return array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32, copy=False)


def sample_indices(count: int, total: int) -> np.ndarray:
    """``count`` fixed test sequences spread over the split (the same for every model)."""
    return np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(np.int64))


def evaluation_bytes(spec: DataSpec, sequences: int, batch_size: int) -> int:
    """A lower bound on the memory an evaluation of ``sequences`` test clips takes: the clips (uint8
    [N, T_in + T_out, C, H, W]) and, per batch, inputs, predictions and targets as float32 (model activations
    come on top)."""
    frames = spec.total_frames * spec.channels * spec.height * spec.width
    return sequences * frames + 3 * 4 * min(batch_size, sequences) * frames


def check_memory(spec: DataSpec, sequences: int, batch_size: int, available: int | None, fix: str) -> None:
    """A one-line error, before anything is built, when the evaluation cannot fit in ``available`` bytes."""
    needed = evaluation_bytes(spec, sequences, batch_size)
    if available is not None and needed > available:
        raise UserError(f"predicting {spec.output_frames} frames of {spec.channels}x{spec.height}x{spec.width} from "
                        f"{spec.input_frames} for {sequences} sequence{'s' * (sequences != 1)} needs at least "
                        f"{needed / 2**30:.1f} GiB of memory, {available / 2**30:.1f} GiB are available; {fix}")


def split_batch(batch: Tensor, spec: DataSpec) -> tuple[Tensor, Tensor]:
    """uint8 [B, T, C, H, W] -> inputs in [0, 1] (float) and uint8 targets."""
    return batch[:, : spec.input_frames].float().div_(255), batch[:, spec.input_frames :]


def check_prediction(pred: Tensor, expected: tuple[int, ...], model_name: str) -> None:
    if tuple(pred.shape) != expected:
        raise UserError(
            f"model {model_name!r} returned shape {tuple(pred.shape)}, expected {expected} "
            "([B, horizon, C, H, W]); it must honour forward(frames, horizon)"
        )


def selection_mse(preds: Tensor, targets: Tensor) -> Tensor:
    """preds [K, B, T, C, H, W] in [0, 1], uint8 targets [B, T, C, H, W] -> [K, B]: each future's per-pixel MSE on
    0-255 over its predicted frames, of the 8-bit frames that are scored (what picks the best of K)."""
    error = to_uint8(preds).double() - targets.double()
    return error.square().flatten(2).mean(dim=2)


def draw_futures(model: nn.Module, inputs: Tensor, horizon: int, draws: int | None, name: str,
                 expected: tuple[int, ...]) -> Tensor:
    """[K, B, horizon, C, H, W]: ``draws`` futures of ``inputs`` [B, T_in, C, H, W] (one for a deterministic
    model: ``draws`` None)."""
    futures = []
    for _ in range(draws or 1):
        futures.append(model(inputs, horizon))
        check_prediction(futures[-1], expected, name)
    return torch.stack(futures)


@torch.no_grad()
def evaluate(model: nn.Module, sequences: np.ndarray, spec: DataSpec, *, device: torch.device,
             batch_size: int, samples: int = 0, desc: str = "test",
             perceptual: PerceptualMetrics | None = None, scorer: MetricScorer | None = None,
             draws: int | None = None, seed: int = 0) -> Evaluation:
    """Predict ``sequences`` (uint8 [N, T, C, H, W]) and compute every frame's metrics: those of ``scorer``
    (default: every registered metric, with the dataset's name only as context), then the perceptual ones that
    ``perceptual`` holds. ``draws``: for a stochastic model, the futures drawn per sequence (from torch's generator
    seeded with ``seed``, the caller's own generator state left as it was); the stored samples are each sequence's
    best future (FVD, when asked for, is over every future)."""
    if draws is None:
        return _evaluate(model, sequences, spec, device, batch_size, samples, desc, perceptual, scorer, None)
    if draws < 1:
        raise UserError(f"--samples {draws}: draw at least 1 future per test sequence")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _evaluate(model, sequences, spec, device, batch_size, samples, desc, perceptual, scorer, draws)


def _evaluate(model: nn.Module, sequences: np.ndarray, spec: DataSpec, device: torch.device, batch_size: int,
              samples: int, desc: str, perceptual: PerceptualMetrics | None, scorer: MetricScorer | None,
              draws: int | None) -> Evaluation:
    """:func:`evaluate` once the generator is seeded."""
    flush_denormals()
    model.eval()
    n = len(sequences)
    scorer = scorer or MetricScorer(None, MetricContext(spec.name))
    registered = len(scorer.columns)
    columns = scorer.columns + (perceptual.columns if perceptual is not None else ())
    per_frame = np.empty((n, spec.output_frames, len(columns)))
    mean_per_frame = np.empty_like(per_frame)
    spread = np.empty((n, spec.output_frames))
    keep = sample_indices(samples, n) if samples else np.empty(0, np.int64)
    kept = []
    name = getattr(model, "registry_name", type(model).__name__)
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(sequences[start : start + batch_size]).to(device)
        inputs, targets = split_batch(batch, spec)
        futures = draw_futures(model, inputs, spec.output_frames, draws, name, tuple(targets.shape))
        scores = np.empty((len(futures), len(batch), spec.output_frames, len(columns)))
        for k, pred in enumerate(futures):
            scores[k, ..., :registered] = scorer.score(unit_interval(pred.clamp(0, 1)), unit_interval(targets))
            if perceptual is not None:
                scores[k, ..., registered:] = perceptual.update(batch[:, : spec.input_frames], targets, to_uint8(pred))
        best = selection_mse(futures, targets).argmin(dim=0).cpu()  # [B]
        span = slice(start, start + len(batch))
        per_frame[span] = scores[best.numpy(), np.arange(len(batch))]
        mean_per_frame[span] = scores.mean(axis=0)
        spread[span] = futures.clamp(0, 1).std(dim=0, correction=0).flatten(2).mean(dim=2).cpu().double().numpy()
        pred8 = to_uint8(futures[best.to(futures.device), torch.arange(len(batch), device=futures.device)])
        rows = keep[(keep >= start) & (keep < start + len(batch))] - start
        kept.extend(pred8[rows].cpu().numpy())
    result_samples = {}
    if len(keep):
        result_samples = {
            "indices": keep,
            "inputs": sequences[keep, : spec.input_frames],
            "targets": sequences[keep, spec.input_frames :],
            "predictions": np.stack(kept),
        }
    scorer.blank_failed(per_frame)
    scorer.blank_failed(mean_per_frame)
    extra = perceptual.summary() if perceptual is not None else {}
    if scorer.warnings:
        extra["metric_warnings"] = scorer.warnings
    stochastic = Draws(draws, mean_per_frame, spread) if draws is not None else None
    return Evaluation(per_frame, result_samples, columns, extra, stochastic)
