"""SRVP's training step and Moving MNIST generator side by side with the official implementation
(github.com/yuseonk/SRVP).

vpbench never ships or fetches the official code: the user points ``bench speed --parts srvp-official
--official-srvp PATH`` at their own clone. Both models are built at one identical configuration (same
parameter count, checked), trained on the same random batch with the official recipe (BCE, RMSProp with
lr 1e-5, momentum 0.9, weight decay 1e-4), and timed alternately (official, vpbench, official, ...) so
that a change of machine load affects both alike. The official generator (``datasets/moving_mnist.py``,
one sequence per call) is timed on the same digits as vpbench's.
"""
from __future__ import annotations

import importlib.util
import os
import random
import statistics
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.datasets.mnist_digits import embedded_digits
from vpbench.datasets.moving_mnist import CANVAS, DIGIT, STEP, generate
from vpbench.errors import UserError
from vpbench.metrics.cost import alternating_seconds, median_seconds
from vpbench.reference.clones import folder_module

# The comparison's configuration (issue 9): M=32, L=2, kernel 5, 10 -> 10 frames of 1x64x64.
HIDDEN, LAYERS, KERNEL, FRAMES, SIZE = 32, 2, 5, 10, 64


def _official_folder(path: str | Path, folder_name: str, module: str) -> Path:
    folder = Path(path).expanduser() / folder_name
    if not (folder / f"{module}.py").is_file():
        raise UserError(f"--official-srvp {path}: no {folder_name}/{module}.py there; give the folder of a clone of "
                        "github.com/yuseonk/SRVP")
    return folder


def _import_official(path: str | Path, folder_name: str, module: str) -> ModuleType:
    """``<path>/<folder_name>/<module>.py`` of a clone of yuseonk/SRVP (its folders have no __init__.py and import
    their siblings relatively)."""
    return folder_module(_official_folder(path, folder_name, module), module)


def load_official(path: str | Path) -> type[nn.Module]:
    """The official ``EncoderDecoder`` class from a clone of yuseonk/SRVP at ``path``."""
    _official_folder(path, "model", "SRVP")  # a wrong path is the first thing to report
    if importlib.util.find_spec("einops") is None:
        raise UserError("the official SRVP code imports einops, which is not installed: pip install einops")
    return _import_official(path, "model", "SRVP").EncoderDecoder


def compare_generation(official_path: str | Path, *, sequences: int = 2000, repeats: int = 5) -> dict[str, float]:
    """Sequences of 20 frames per second: the official per-sequence generator and vpbench's, same digits."""
    official = _import_official(official_path, "datasets", "moving_mnist").MovingMNIST
    pool = embedded_digits()[0]
    loader = official.__new__(official)  # its __init__ reads the MNIST file; give it the same digits instead
    loader.mnist, loader.n_frames_total = pool, 20
    loader.image_size_, loader.digit_size_, loader.step_length_ = CANVAS, DIGIT, STEP
    random.seed(0)
    runs = {"official": lambda: [loader.generate_moving_mnist(2) for _ in range(sequences)],
            "vpbench": lambda: generate(np.random.default_rng(0), pool, sequences, 20)}
    return {name: sequences / median_seconds(run, repeats=repeats) for name, run in runs.items()}


def build_pair(official_path: str | Path) -> tuple[nn.Module, nn.Module]:
    """(official, vpbench) SRVP at the comparison's configuration, each initialised from seed 0."""
    from vpbench.models import create

    encoder_decoder = load_official(official_path)
    torch.manual_seed(0)
    official = encoder_decoder(HIDDEN // 2, FRAMES, 1, [HIDDEN] * LAYERS, [KERNEL] * LAYERS, (SIZE, SIZE),
                               0.5, FRAMES, 1, torch.device("cpu"))
    torch.manual_seed(0)
    ours = create("srvp", hidden=HIDDEN, layers=LAYERS, kernel_size=KERNEL, patch_size=1, img_size=(SIZE, SIZE),
                  input_frames=FRAMES, dropout=0.5)
    return official, ours


def train_step(model: nn.Module, predict: Callable[[nn.Module, Tensor], Tensor], x: Tensor,
               y: Tensor) -> Callable[[], None]:
    """One step of the official recipe on the batch (x, y)."""
    model.train()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-5, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy(predict(model, x), y).backward()
        optimizer.step()

    return step


def compare(official_path: str | Path, *, batch: int = 4, repeats: int = 5) -> dict[str, Any]:
    """Median wall and CPU seconds of a training step of each, timed alternately after one warm-up each,
    and the sequences per second of each Moving MNIST generator."""
    official, ours = build_pair(official_path)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("official", official), ("vpbench", ours))}
    if params["official"] != params["vpbench"]:
        raise UserError(f"the official SRVP at {official_path} has {params['official']:,} parameters and vpbench's "
                        f"{params['vpbench']:,} at the same configuration; is it another version of the code?")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, FRAMES, 1, SIZE, SIZE, generator=g)
    y = torch.rand(batch, FRAMES, 1, SIZE, SIZE, generator=g)
    steps = {"official": train_step(official, lambda m, v: m(v), x, y),
             "vpbench": train_step(ours, lambda m, v: m(v, FRAMES), x, y)}
    load_before = os.getloadavg()[0]
    times = alternating_seconds(steps, repeats)
    wall = {name: [w for w, _ in calls] for name, calls in times.items()}
    cpu = {name: [c for _, c in calls] for name, calls in times.items()}
    return {
        "params": params["vpbench"], "batch": batch, "threads": torch.get_num_threads(), "repeats": repeats,
        "load": (load_before, os.getloadavg()[0]),
        "wall_s": {name: statistics.median(v) for name, v in wall.items()},
        "cpu_s": {name: statistics.median(v) for name, v in cpu.items()},
        "generation_per_s": compare_generation(official_path, repeats=repeats),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    wall, cpu = result["wall_s"], result["cpu_s"]
    lines = [f"## SRVP training step against the official code (M={HIDDEN}, L={LAYERS}, kernel {KERNEL}, "
             f"batch {result['batch']}, {SIZE}x{SIZE}, {FRAMES} -> {FRAMES}, CPU)", "",
             "| Implementation | Params | Train step, wall (s) | Train step, CPU (s) | Speed-up (wall) |",
             "|---|---:|---:|---:|---:|"]
    for name, label in (("vpbench", "vpbench `srvp`"), ("official", "official (yuseonk/SRVP)")):
        lines.append(f"| {label} | {result['params']:,} | {wall[name]:.2f} | {cpu[name]:.2f} | "
                     f"{wall['official'] / wall[name]:.2f}x |")
    lines += ["", f"Medians of {result['repeats']} steps each after a warm-up, timed alternately; "
              f"torch threads: {result['threads']}; 1-minute load average {result['load'][0]:.2f} before, "
              f"{result['load'][1]:.2f} after.", ""]
    gen = result["generation_per_s"]
    lines += ["## Moving MNIST generation against the official generator (20 frames, 2 digits)", "",
              "| Generator | Sequences / s | Speed-up |", "|---|---:|---:|",
              f"| vpbench, compiled, parallel over sequences | {gen['vpbench']:,.0f} | "
              f"{gen['vpbench'] / gen['official']:.1f}x |",
              f"| official `MovingMNIST.generate_moving_mnist`, one sequence per call | {gen['official']:,.0f} | "
              "1.0x |",
              ""]
    return lines
