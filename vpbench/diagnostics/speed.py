"""``bench speed``: re-runnable timings on the current machine, as a markdown table.

Every timing is the median of ``repeats`` runs after a warm-up. Parts:

* ``models``: training step and inference per model at a preset and batch size;
* ``metrics``: the metrics engine on 10,000 sequences x 10 frames of 64x64 against a loop of
  ``skimage.metrics.structural_similarity`` (timed on a subset, per frame, and scaled);
* ``generation``: Moving MNIST sequences per second against the per-sequence generator;
* ``srvp-official``: SRVP's training step and the Moving MNIST generator against the official code
  from the user's own clone
  (``--official-srvp PATH``, see :mod:`vpbench.reference.srvp`).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpbench import config as cfg
from vpbench import presets
from vpbench.datasets import dataset_entry
from vpbench.datasets.mnist_digits import embedded_digits
from vpbench.datasets.moving_mnist import generate
from vpbench.environment import cpu_name
from vpbench.errors import UserError
from vpbench.harness.steps import train_step_fn
from vpbench.metrics.cost import count_params, dummy_batch, median_seconds, series_seconds
from vpbench.metrics.frames import frame_metrics
from vpbench.reference import per_sequence_generator as reference
from vpbench.reference.openstl_clone import SOURCES

SPEED_PARTS = ("models", "metrics", "generation", "srvp-official", "openstl", "sweep")


def machine() -> str:
    import numba
    import skimage

    return (f"{platform.platform()}, {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, numpy {np.__version__}, numba {numba.__version__} "
            f"({numba.get_num_threads()} threads), scikit-image {skimage.__version__}")


GROWTH_WARNING = 1.5  # later training steps this much slower than the first ones: a warning line
WINDOW = 10  # steps at each end of the training-step series whose medians are compared


def time_models(models: list[str], dataset: str, preset: str, batch: int | None, device: torch.device,
                repeats: int, steps: int = 50) -> list[dict[str, Any]]:
    """Per model: the median training step of the first and of the last ``WINDOW`` of ``steps``
    consecutive training steps, and the median inference over ``repeats`` (random batches of the
    dataset's shape)."""
    from vpbench.models import build_model

    rows = []
    for name in models:
        config = cfg.resolve(preset, name, dataset)
        train = {**config["train"], "batch_size": batch or config["train"]["batch_size"]}
        spec = dataset_entry(dataset).spec(config["dataset"])
        torch.manual_seed(0)
        model = build_model(config).to(device)
        series = series_seconds(train_step_fn(model, spec, train, device, train["batch_size"]), steps,
                                device=device)
        window = min(WINDOW, max(1, steps // 2))
        first, last = statistics.median(series[:window]), statistics.median(series[-window:])
        model.eval()
        x, _ = dummy_batch(spec, train["batch_size"], device)
        with torch.no_grad():
            infer_s = median_seconds(lambda: model(x, spec.output_frames), repeats=repeats, device=device)
        rows.append({"model": name, "params": count_params(model), "batch": train["batch_size"],
                     "first_steps_ms": first * 1e3, "train_step_ms": last * 1e3, "growth": last / first,
                     "inference_ms": infer_s * 1e3})
    return rows


def prediction_like_frames(sequences: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Moving MNIST targets and blurred, shifted predictions: uint8 [N, T, 1, 64, 64] each."""
    target = generate(np.random.default_rng(0), embedded_digits()[1], sequences, frames)
    t = torch.from_numpy(target).float()
    blurred = torch.nn.functional.avg_pool2d(t.flatten(0, 1), 3, stride=1, padding=1).view_as(t)
    pred = torch.roll(blurred, shifts=2, dims=-1).round().to(torch.uint8)
    return pred, torch.from_numpy(target)


def time_metrics(sequences: int, frames: int, reference_frames: int, repeats: int) -> dict[str, Any]:
    """The batched engine (MSE, MAE, PSNR, SSIM) against skimage's SSIM frame by frame."""
    from skimage.metrics import structural_similarity

    pred, target = prediction_like_frames(sequences, frames)
    ours = median_seconds(lambda: frame_metrics(pred, target), repeats=repeats)
    p = pred.reshape(-1, 64, 64)[:reference_frames].numpy()
    t = target.reshape(-1, 64, 64)[:reference_frames].numpy()
    loop = median_seconds(lambda: [structural_similarity(b, a, data_range=255) for a, b in zip(p, t)],
                          repeats=repeats)
    ref_values = np.array([structural_similarity(b, a, data_range=255) for a, b in zip(p, t)])
    ours_values = frame_metrics(pred, target)[..., 3].reshape(-1)[:reference_frames].numpy()
    n = sequences * frames
    return {"frames": n, "ours_s": ours, "skimage_s": loop / reference_frames * n,
            "reference_frames": reference_frames, "max_abs_diff": float(np.abs(ours_values - ref_values).max())}


def time_generation(sequences: int, reference_sequences: int, repeats: int) -> dict[str, Any]:
    """Sequences per second: vpbench's generator and the per-sequence one (20 frames each)."""
    pool = embedded_digits()[0]
    ours = median_seconds(lambda: generate(np.random.default_rng(0), pool, sequences, 20), repeats=repeats)
    slow = median_seconds(lambda: reference.generate_per_sequence(np.random.default_rng(0), pool,
                                                                  reference_sequences, 20), repeats=repeats)
    return {"ours_per_s": sequences / ours, "reference_per_s": reference_sequences / slow}


def speed_markdown(parts: list[str], *, models: list[str], dataset: str, preset: str, batch: int | None,
                   device: torch.device, repeats: int, official_path: str | None = None, steps: int = 50,
                   clones: dict[str, str] | None = None) -> str:
    lines = ["# vpbench speed", "",
             f"Machine: {machine()}; device {device}; medians of {repeats} runs after a warm-up.", ""]
    if "models" in parts:
        rows = time_models(models, dataset, preset, batch, device, repeats, steps)
        window = min(WINDOW, max(1, steps // 2))
        lines += [f"## Models ({dataset}, {preset} preset)", "",
                  f"{steps} consecutive training steps per model: the medians of the first and of the last {window}.",
                  "", "| Model | Params | Batch | Train step, first (ms) | Train step, last (ms) | Last / first | "
                  "Inference (ms) |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['params']:,} | {r['batch']} | {r['first_steps_ms']:.1f} | "
                         f"{r['train_step_ms']:.1f} | {r['growth']:.2f} | {r['inference_ms']:.1f} |")
        lines.append("")
        for r in rows:
            if r["growth"] > GROWTH_WARNING:
                lines += [f"warning: {r['model']}'s training steps slow down as it trains ({r['growth']:.1f}x over "
                          f"{steps} steps); denormal floats or memory growth are the usual causes", ""]
    if "metrics" in parts:
        m = time_metrics(10000, 10, 2000, repeats)
        lines += ["## Metrics engine (10,000 sequences x 10 frames of 64x64)", "",
                  "| Engine | Seconds | Per frame (us) | Speed-up |", "|---|---:|---:|---:|",
                  f"| vpbench: MSE, MAE, PSNR and SSIM, one compiled pass per frame | {m['ours_s']:.2f} | "
                  f"{m['ours_s'] / m['frames'] * 1e6:.1f} | {m['skimage_s'] / m['ours_s']:.1f}x |",
                  f"| loop of skimage structural_similarity (SSIM only; timed on {m['reference_frames']:,} frames) | "
                  f"{m['skimage_s']:.2f} | {m['skimage_s'] / m['frames'] * 1e6:.1f} | 1.0x |",
                  "", f"Largest SSIM difference from skimage on those frames: {m['max_abs_diff']:.1e}.", ""]
    if "generation" in parts:
        g = time_generation(10000, 500, repeats)
        lines += ["## Moving MNIST generation (20 frames per sequence)", "",
                  "| Generator | Sequences / s | Speed-up |", "|---|---:|---:|",
                  f"| vpbench, compiled, parallel over sequences | {g['ours_per_s']:,.0f} | "
                  f"{g['ours_per_s'] / g['reference_per_s']:.1f}x |",
                  f"| per sequence and frame, as the standard generator | {g['reference_per_s']:,.0f} | 1.0x |", ""]
    if "srvp-official" in parts:  # on the CPU, at a batch of 4 unless --batch-size says otherwise
        from vpbench.reference import srvp as official_srvp

        lines += official_srvp.markdown(official_srvp.compare(official_path, batch=batch or 4, repeats=repeats))
    if "sweep" in parts:  # the whole quick sweep of `make demo`, before and now (minutes)
        from vpbench.diagnostics import sweep_speed

        lines += sweep_speed.markdown()
    if "openstl" in parts:  # at the preset's configuration and batch (OpenSTL's: 16), on the CPU; clones by source
        from vpbench.reference import openstl as official_openstl

        rows = official_openstl.compare(clones or {}, models, preset=preset, dataset=dataset, batch=batch or 16,
                                        repeats=repeats)
        lines += official_openstl.markdown(rows, preset, repeats)
    return "\n".join(lines)


def command(args: argparse.Namespace) -> None:
    """``bench speed``: check the options, time the parts, print the table (and write it with ``--out``)."""
    from vpbench.environment import resolve_device
    from vpbench.models import expand
    from vpbench.store import atomic_write_bytes

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(SPEED_PARTS))
    if unknown or not parts:
        raise UserError(f"--parts {args.parts!r}: choose from {', '.join(SPEED_PARTS)}")
    if args.repeats < 5:
        raise UserError(f"--repeats {args.repeats}: use at least 5 so the median means something")
    if args.steps < 10:
        raise UserError(f"--steps {args.steps}: use at least 10, to compare the first training steps with the last")
    if "srvp-official" in parts and not args.official_srvp:
        raise UserError("--parts srvp-official needs --official-srvp PATH, the folder of your clone of "
                        "github.com/yuseonk/SRVP")
    given = {source: getattr(args, option.lstrip("-").replace("-", "_"), None) for source, (option, _) in SOURCES.items()}
    clones = {source: path for source, path in given.items() if path}
    if "openstl" in parts and not clones:
        raise UserError("--parts openstl needs --openstl PATH, the folder of your clone of "
                        "github.com/chengtan9907/OpenSTL (or --openstl-v030, --predformer, --vmrnn with --mamba, "
                        "--iam4vp, --earthformer, --mcvd PATH)")
    preset = presets.choose(args.preset, args.protocol, "cpu")
    text = speed_markdown(parts, models=expand(args.models, preset.protocol), dataset=args.dataset, preset=preset.name,
                          batch=args.batch_size, device=resolve_device(args.device), repeats=args.repeats,
                          official_path=args.official_srvp, steps=args.steps, clones=clones)
    print(text)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
