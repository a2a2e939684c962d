"""``bench predict RUN_DIR --input PATH --out DIR``: a trained model's predictions for frames you give.

The input is a folder of images (PNG, JPG; in name order), a video (any format PyAV decodes) or a ``.npy``
array ([T, H, W], [T, C, H, W] or [T, H, W, C] with C <= 4; uint8 or float in [0, 1]). Its frames are
turned into the run's frames (gray or RGB, resized to the run's frame size), and the last T_in of them
are the input. The output folder gets the predicted frames as ``pred_001.png`` ..., ``strip.png`` (the
input frames above the predicted ones) and ``prediction.gif`` (the input frames, then the predicted ones).
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from vpbench.datasets import DataSpec
from vpbench.datasets.video.decode import IMAGE_SUFFIXES
from vpbench.environment import available_memory, resolve_device
from vpbench.errors import UserError
from vpbench.harness.checkpoints import checkpoint_of, finished_run
from vpbench.harness.evaluate import check_memory
from vpbench.harness.images import frame_image, strip
from vpbench.harness.runner import load_weights
from vpbench.metrics.frames import to_uint8
from vpbench.models import build_model
from vpbench.store import atomic_write_bytes

FRAME_MS = 250


def read_frames(path: Path) -> list[Image.Image]:
    """The frames of an image folder, a video or a .npy array, as PIL images."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: no image ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return [_image_file(p) for p in files]
    if path.suffix == ".npy":
        return _array_frames(path)
    try:
        with av.open(str(path)) as container:
            return [frame.to_image() for frame in container.decode(container.streams.video[0])]
    except (av.FFmpegError, OSError, IndexError) as err:
        raise UserError(f"{path}: not an image folder, a .npy array or a video PyAV decodes ({err})") from None


def _image_file(path: Path) -> Image.Image:
    """The image at ``path`` as RGB, or a one-line error naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise UserError(f"{path}: not an image PIL can read ({type(err).__name__}); replace or remove the "
                        "file") from None


def _array_frames(path: Path) -> list[Image.Image]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read as .npy ({err})") from None
    if array.ndim == 4 and array.shape[1] <= 4 < array.shape[-1]:  # [T, C, H, W] -> [T, H, W, C]
        array = array.transpose(0, 2, 3, 1)
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
        raise UserError(f"{path}: an array of shape {array.shape}; expected [T, H, W], [T, C, H, W] or [T, H, W, C] "
                        "with C 1 or 3")
    if array.size == 0:
        raise UserError(f"{path}: an empty array of shape {array.shape}; give at least the run's input frames")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{path}: {array.dtype} values; expected uint8 (0-255) or float in [0, 1]")
        if not np.isfinite(array).all():
            raise UserError(f"{path}: holds {int((~np.isfinite(array)).sum())} NaN or infinite values; expected "
                            "uint8 (0-255) or float in [0, 1]")
        if array.min() < 0 or array.max() > 1:
            raise UserError(f"{path}: {array.dtype} values in [{array.min():.3g}, {array.max():.3g}]; expected uint8 "
                            "(0-255) or float in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    return [Image.fromarray(frame) for frame in array]


def to_frames(images: list[Image.Image], channels: int, size: tuple[int, int]) -> np.ndarray:
    """PIL images -> uint8 [T, C, H, W] with the run's channels (1: gray; 3: RGB) and frame size (H, W)."""
    if channels not in (1, 3):
        raise UserError(f"bench predict reads gray or RGB frames; this run's frames have {channels} channels")
    mode = "L" if channels == 1 else "RGB"
    frames = [np.asarray(im.convert(mode).resize((size[1], size[0]), Image.Resampling.BOX)) for im in images]
    array = np.stack(frames)
    return array[:, None] if channels == 1 else array.transpose(0, 3, 1, 2)


def predict_run(run_dir: str | Path, source: str | Path, out: str | Path, *, horizon: int | None = None,
                device: torch.device = torch.device("cpu")) -> list[Path]:
    """Write the run's predictions for the frames at ``source`` into ``out``; returns the files written."""
    run = finished_run(run_dir)
    config = run.read_yaml("config.yaml")
    metrics = run.read_json("metrics.json") if run.exists("metrics.json") else {}
    t_in = config["dataset"]["input_frames"]
    horizon = config["dataset"]["output_frames"] if horizon is None else horizon
    if horizon < 1:
        raise UserError(f"--horizon {horizon}: must be at least 1 frame")
    images = read_frames(Path(source).expanduser())
    if len(images) < t_in:
        raise UserError(f"{source}: {len(images)} frames, but the run's model reads {t_in}; give at least {t_in}")
    shape = metrics.get("shape") or [config["model"].get("in_channels", 1), *config["model"]["img_size"]]
    check_memory(DataSpec(config["dataset"]["name"], t_in, horizon, *shape), 1, 1, available_memory(),
                 "choose a shorter --horizon")
    frames = to_frames(images[-t_in:], shape[0], (shape[1], shape[2]))
    model = build_model(config)
    load_weights(model, checkpoint_of(run)[1]["model"], config["model"]["name"])
    model.to(device).eval()
    with torch.no_grad():
        inputs = torch.from_numpy(frames).float().div(255)[None].to(device)
        pred = to_uint8(model(inputs, horizon))[0].cpu().numpy()
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t, frame in enumerate(pred):
        written.append(_write_image(frame_image(frame), out / f"pred_{t + 1:03d}.png"))
    written.append(_write_image(strip([frames, pred]), out / "strip.png"))
    sequence = [frame_image(f).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE) for f in [*frames, *pred]]
    buffer = io.BytesIO()
    sequence[0].save(buffer, format="GIF", save_all=True, append_images=sequence[1:], duration=FRAME_MS, loop=0)
    atomic_write_bytes(out / "prediction.gif", buffer.getvalue())
    return [*written, out / "prediction.gif"]


def _write_image(image: Image.Image, path: Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def command(args: argparse.Namespace) -> None:
    """``bench predict``: predict the frames given and write them."""
    files = predict_run(args.run_dir, args.input, args.out, horizon=args.horizon, device=resolve_device(args.device))
    print(f"wrote {len(files) - 2} predicted frames, strip.png and prediction.gif to {Path(args.out)}")
