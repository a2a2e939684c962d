"""What the report says about the quality of the predictions beyond the tables: collapsed models (predicted
frames far flatter than the ground truth), models no better than persistence, and why persistence can win SSIM
while losing MSE."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vpbench.report.collect import Group
from vpbench.report.tables import measured_estimates

# A model whose predicted frames have less than this fraction of the ground truth's pixel standard deviation
# (over the stored samples) predicts a near-uniform frame: the report warns beside it.
COLLAPSE_RATIO = 0.35
BASELINE = "persistence"


def std_ratio(run_path: Path) -> float | None:
    """Pixel standard deviation of a run's stored predicted frames over the ground truth's (``samples.npz``:
    uint8 [S, T_out, C, H, W] ``predictions`` and ``targets``); None without samples or with flat targets."""
    path = Path(run_path) / "samples.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as samples:
            truth = samples["targets"].astype(np.float64).std()
            predicted = samples["predictions"].astype(np.float64).std()
    except (OSError, KeyError, ValueError):
        return None  # the figures' loader warns about an unreadable samples file
    return float(predicted / truth) if truth > 0 else None


def collapse_notes(group: Group, models: Sequence[str]) -> list[str]:
    """One line per run whose predictions collapsed (std ratio under :data:`COLLAPSE_RATIO`)."""
    notes = []
    for model in models:
        if model == BASELINE:
            continue
        for run in group.runs_of(model):
            ratio = std_ratio(run.path)
            if ratio is not None and ratio < COLLAPSE_RATIO:
                notes.append(f"- ⚠ {group.label(model)} seed {run.seed}: its predicted frames have {ratio:.2f} of the "
                             f"ground truth's pixel standard deviation (under {COLLAPSE_RATIO}): it predicts a "
                             "near-uniform frame; its metrics describe a collapsed model (train it longer or at "
                             "another learning rate).")
    return notes


def unbeaten_baseline_notes(group: Group, models: Sequence[str], convention: str) -> list[str]:
    """One line per model whose mean test MSE is not below persistence's (none without a persistence run)."""
    if BASELINE not in models:
        return []
    mse = dict(zip(models, measured_estimates(group, models, "mse", convention)))
    if mse[BASELINE] is None:
        return []
    return [f"- ⚠ {group.label(m)}: its test MSE ({mse[m].mean:.1f}) is not below persistence's "
            f"({mse[BASELINE].mean:.1f}), which repeats the last input frame: at this scale it has not learned to "
            "predict this data (train it longer, or see its README section for what its short runs need)."
            for m in models if m != BASELINE and mse[m] is not None and mse[m].mean >= mse[BASELINE].mean]


def persistence_note(group: Group, models: Sequence[str], convention: str) -> list[str]:
    """Where persistence has the best SSIM, the sentence that says why (one line; none otherwise)."""
    if BASELINE not in models or len(models) < 2:
        return []
    ssim = dict(zip(models, measured_estimates(group, models, "ssim", convention)))
    mse = dict(zip(models, measured_estimates(group, models, "mse", convention)))
    others = [m for m in models if m != BASELINE and ssim[m] is not None]
    if ssim[BASELINE] is None or not others or ssim[BASELINE].mean < max(ssim[m].mean for m in others):
        return []
    beaten = [m for m in others if mse[m] is not None and mse[BASELINE] is not None and mse[m].mean < mse[BASELINE].mean]
    mse_text = (f"; by MSE, which measures where the content is, {len(beaten)} of {len(others)} models beat it"
                if beaten else "")
    return [f"- Persistence (the last input frame, repeated) has the best SSIM here: SSIM rewards its sharp "
            "structure even where the digits have moved away, while a model trained on a pixel loss predicts "
            f"blurred content in the right place{mse_text}."]
