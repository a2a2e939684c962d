"""Predict a split and score every predicted frame of every sequence."""
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


@dataclass
class Evaluation:
    """per_frame: [N, T_out, len(columns)] (the selected registered metrics, then ``lpips`` when computed);
    samples: uint8 arrays of a few sequences; extra: per-run values for metrics.json (``fvd``, ``perceptual``,
    ``metric_warnings`` when a plug-in metric failed)."""

    per_frame: np.ndarray
    samples: dict[str, np.ndarray]
    columns: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Means over test sequences and predicted frames, and the per-run values."""
        return {**summarize(self.per_frame, self.columns), **self.extra}


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


@torch.no_grad()
def evaluate(model: nn.Module, sequences: np.ndarray, spec: DataSpec, *, device: torch.device,
             batch_size: int, samples: int = 0, desc: str = "test",
             perceptual: PerceptualMetrics | None = None, scorer: MetricScorer | None = None) -> Evaluation:
    """Predict ``sequences`` (uint8 [N, T, C, H, W]) and compute every frame's metrics: those of ``scorer``
    (default: every registered metric, with the dataset's name only as context), then the perceptual ones that
    ``perceptual`` holds."""
    flush_denormals()
    model.eval()
    n = len(sequences)
    scorer = scorer or MetricScorer(None, MetricContext(spec.name))
    registered = len(scorer.columns)
    columns = scorer.columns + (perceptual.columns if perceptual is not None else ())
    per_frame = np.empty((n, spec.output_frames, len(columns)))
    keep = sample_indices(samples, n) if samples else np.empty(0, np.int64)
    kept = []
    name = getattr(model, "registry_name", type(model).__name__)
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(sequences[start : start + batch_size]).to(device)
        inputs, targets = split_batch(batch, spec)
        pred = model(inputs, spec.output_frames)
        check_prediction(pred, tuple(targets.shape), name)
        pred8 = to_uint8(pred)
        span = slice(start, start + len(batch))
        per_frame[span, :, :registered] = scorer.score(unit_interval(pred.clamp(0, 1)), unit_interval(targets))
        if perceptual is not None:
            per_frame[span, :, registered:] = perceptual.update(batch[:, : spec.input_frames], targets, pred8)
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
    extra = perceptual.summary() if perceptual is not None else {}
    if scorer.warnings:
        extra["metric_warnings"] = scorer.warnings
    return Evaluation(per_frame, result_samples, columns, extra)
