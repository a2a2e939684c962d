"""Figures: frame-wise metrics (the paper's Fig. 6), qualitative grids (Figs. 5, 7-9) and animations.

Drawn on matplotlib ``Figure`` objects (Agg canvas, no pyplot state), written in each of the formats asked
for (PNG; PDF and SVG for papers); lines differ by marker and dash as well as colour, so the plots read
in grayscale and in print. Animations are GIFs written with Pillow.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from vpbench.store import atomic_write_bytes

GAP = 2  # pixels between frames in a grid row
MOST_COLUMNS = 10  # frames shown per grid row; longer rows show evenly spaced frames
DPI = 150
FORMATS = ("png", "pdf", "svg")


def save_figure(fig: Figure, path: Path, formats: Sequence[str]) -> None:
    """``path`` with the suffix of each format in ``formats``."""
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=DPI, facecolor="white")
        atomic_write_bytes(path.with_suffix(f".{fmt}"), buffer.getvalue())


# One style per model, fixed by the model's place in its group, so a model looks the same in every plot.
MARKERS = ("o", "X", "s", "P", "D", "^", "v", "*", "p", "<", ">", "h")
DASHES = ("", (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1), (2, 2), (6, 2, 2, 2), (1, 2), (8, 2),
          (3, 1, 1, 1, 1, 1), (4, 3), (2, 1, 2, 3))


MOST_PANELS_PER_ROW = 4  # more metrics than this wrap onto further rows


def framewise_figure(long: pd.DataFrame, styles: Sequence[str], panels: Sequence[tuple[str, str]], path: Path,
                     title: str, formats: Sequence[str] = ("png",)) -> None:
    """One panel per ``(metric, y label)``: the metric per predicted frame, one line per model.

    long: columns label, seed, frame, metric, value (one row per run, frame and metric); with
    several seeds the line is their mean and the band their standard deviation. ``styles``: every
    label of the group, in order; a label's colour, marker and dash follow from its place there."""
    order = [label for label in styles if label in set(long["label"])]
    colours = sns.color_palette("colorblind", len(styles))
    style = {label: i for i, label in enumerate(styles)}
    several = long.groupby("label")["seed"].nunique().max() > 1
    frames = long["frame"].nunique()
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.2):
        columns = min(len(panels), MOST_PANELS_PER_ROW)
        rows = -(-len(panels) // columns)
        fig = Figure(figsize=(5.2 * columns, 4.6 * rows), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            ax.remove()
        for ax, (metric, ylabel) in zip(axes, panels):
            sns.lineplot(data=long[long["metric"] == metric], x="frame", y="value", hue="label", style="label",
                         hue_order=order, style_order=order, palette={k: colours[style[k]] for k in order},
                         markers={k: MARKERS[style[k] % len(MARKERS)] for k in order},
                         dashes={k: DASHES[style[k] % len(DASHES)] for k in order}, markersize=7, linewidth=1.6,
                         errorbar="sd" if several else None, markevery=max(1, frames // 10), ax=ax)
            ax.set(xlabel="Predicted frame", ylabel=ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            handles, labels = ax.get_legend_handles_labels()
            ax.get_legend().remove()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(order), 5), frameon=False)
        fig.suptitle(title)
        save_figure(fig, path, formats)


def shown_frames(count: int, most: int = MOST_COLUMNS) -> np.ndarray:
    """0-based indices of the frames a grid row shows: all, or ``most`` evenly spaced ending at the last."""
    if count <= most:
        return np.arange(count)
    return np.round(np.linspace(count / most, count, most)).astype(int) - 1


def rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, C, H, W] -> [T, 3, H, W]: gray repeated, RGB as it is, other channel counts (TaxiBJ's two
    flows) as their first channel in gray."""
    if frames.shape[1] == 3:
        return frames
    return np.repeat(frames[:, :1], 3, axis=1)


def _strip(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, C, H, W] -> one RGB image [H, T*W + gaps, 3], white between frames."""
    frames = rgb(frames)
    t, _, h, w = frames.shape
    strip = np.full((h, t * (w + GAP) - GAP, 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        strip[:, i * (w + GAP) : i * (w + GAP) + w] = frame.transpose(1, 2, 0)
    return strip


def difference(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """|GT - P| averaged over channels, drawn dark on white (255 - |GT - P|): uint8 [T, 1, H, W]."""
    diff = np.abs(targets.astype(np.int16) - predictions.astype(np.int16)).mean(axis=1, keepdims=True)
    return (255 - np.round(diff)).astype(np.uint8)


def row_label(label: str, width: int = 14) -> str:
    """A grid row's label, its parenthesis on a second line when it is longer than ``width`` characters (the
    label column is about that wide: ``MCVD (best of K=4)`` would be cut at the figure's edge)."""
    return label.replace(" (", "\n(", 1) if len(label) > width else label


def sample_grid(inputs: np.ndarray, targets: np.ndarray, predictions: Sequence[tuple[str, np.ndarray]],
                path: Path, title: str, formats: Sequence[str] = ("png",)) -> None:
    """Rows: inputs, ground truth, then each model's prediction and its |GT - P|.

    inputs: uint8 [T_in, C, H, W]; targets and each prediction: uint8 [T_out, C, H, W]."""
    t_in = len(inputs)
    show_in, show_out = shown_frames(t_in), shown_frames(len(targets))
    rows = [("Inputs", inputs[show_in], show_in + 1), ("Ground truth", targets[show_out], show_out + t_in + 1)]
    for label, pred in predictions:
        rows += [(label, pred[show_out], None), ("|GT − P|", difference(targets, pred)[show_out], None)]
    h, w = inputs.shape[-2:]
    columns = max(len(show_in), len(show_out))
    cell = 0.75  # inches per frame
    fig = Figure(figsize=(1.9 + columns * cell, 0.9 + len(rows) * cell * h / w * 1.08), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, frames, times) in zip(axes, rows):
        strip = _strip(frames)
        ax.imshow(strip, interpolation="nearest", extent=(0, strip.shape[1], strip.shape[0], 0))
        ax.set_xlim(0, columns * (w + GAP) - GAP)
        for i in range(len(frames)):  # a thin outline, so that white-background frames keep their edges
            ax.add_patch(Rectangle((i * (w + GAP) - 0.5, -0.5), w, h, fill=False, edgecolor="0.6", linewidth=0.6))
        ax.set_yticks([])
        ax.set_ylabel(row_label(label), rotation=0, ha="right", va="center", fontsize=10)
        ax.set_xticks([i * (w + GAP) + w / 2 for i in range(len(frames))] if times is not None else [])
        if times is not None:
            ax.set_xticklabels([f"t={t}" for t in times], fontsize=8)
            ax.xaxis.tick_top()
            ax.tick_params(length=0, pad=1)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path, formats)


ANIMATION_SIDE = 128  # pixels: small frames are scaled up (nearest) to at least this side
FRAME_MS = 250


def animation(inputs: np.ndarray, targets: np.ndarray, predictions: Sequence[tuple[str, np.ndarray]],
              path: Path) -> None:
    """An animated GIF, panels side by side: the ground truth, then each model's prediction; every panel
    shows the input frames first, then its own frames. inputs: uint8 [T_in, C, H, W]; targets and each
    prediction: uint8 [T_out, C, H, W]."""
    h, w = inputs.shape[-2:]
    scale = max(1, -(-ANIMATION_SIDE // max(h, w)))
    labels = ["Ground truth", *[label for label, _ in predictions]]
    clips = [np.concatenate([inputs, frames]) for frames in (targets, *[p for _, p in predictions])]
    header, gap = 14, 4
    width = len(clips) * (w * scale + gap) - gap
    pictures = []
    for t in range(len(clips[0])):
        canvas = Image.new("RGB", (width, h * scale + header), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (label, clip) in enumerate(zip(labels, clips)):
            frame = Image.fromarray(rgb(clip[t : t + 1])[0].transpose(1, 2, 0)).resize((w * scale, h * scale),
                                                                                       Image.Resampling.NEAREST)
            canvas.paste(frame, (i * (w * scale + gap), header))
            text = f"t={t + 1} input" if t < len(inputs) else (f"t={t + 1} {label}" if i == 0 else label)
            draw.text((i * (w * scale + gap) + 2, 1), text, fill="black")
        pictures.append(canvas.convert("P", palette=Image.Palette.ADAPTIVE))
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=FRAME_MS, loop=0)
    atomic_write_bytes(path, buffer.getvalue())
