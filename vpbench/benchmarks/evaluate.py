"""Predict a split and score every predicted frame of every sequence."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vpbench.benchmarks.metrics import METRICS, frame_metrics, to_uint8
from vpbench.datasets import DataSpec
from vpbench.environment import flush_denormals
from vpbench.errors import UserError


@dataclass
class Evaluation:
    """per_frame: [N, T_out, 4] (columns ``METRICS``); samples: uint8 arrays of a few sequences."""

    per_frame: np.ndarray
    samples: dict[str, np.ndarray]

    def summary(self) -> dict[str, float]:
        """Means over test sequences and predicted frames."""
        return summarize(self.per_frame)


def summarize(per_frame: np.ndarray) -> dict[str, float]:
    means = per_frame.reshape(-1, len(METRICS)).mean(axis=0)
    return {name: float(v) for name, v in zip(METRICS, means)}


def framewise_table(per_frame: np.ndarray) -> pd.DataFrame:
    """One row per predicted frame (1-based): the metrics averaged over test sequences."""
    means = per_frame.mean(axis=0)
    table = pd.DataFrame(means, columns=list(METRICS))
    table.insert(0, "frame", np.arange(1, len(table) + 1))
    return table


def sample_indices(count: int, total: int) -> np.ndarray:
    """``count`` fixed test sequences spread over the split (the same for every model)."""
    return np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(np.int64))


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
             batch_size: int, samples: int = 0, desc: str = "test") -> Evaluation:
    """Predict ``sequences`` (uint8 [N, T, C, H, W]) and compute every frame's metrics."""
    flush_denormals()
    model.eval()
    n = len(sequences)
    per_frame = np.empty((n, spec.output_frames, len(METRICS)))
    keep = sample_indices(samples, n) if samples else np.empty(0, np.int64)
    kept = []
    name = getattr(model, "registry_name", type(model).__name__)
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(sequences[start : start + batch_size]).to(device)
        inputs, targets = split_batch(batch, spec)
        pred = model(inputs, spec.output_frames)
        check_prediction(pred, tuple(targets.shape), name)
        pred8 = to_uint8(pred)
        per_frame[start : start + len(batch)] = frame_metrics(pred8, targets).cpu().numpy()
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
    return Evaluation(per_frame, result_samples)
