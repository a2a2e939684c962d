"""Perceptual metrics: LPIPS per predicted frame and FVD per run. Opt-in; nothing is ever downloaded.

**LPIPS** (Zhang et al., CVPR 2018, version 0.1 of the ``lpips`` package): frames on [-1, 1] go through
the ScalingLayer ((x - shift) / scale per channel), a frozen ImageNet backbone (AlexNet, the standard
one, or VGG16), whose five ReLU outputs are each unit-normalised over channels
(``f / (||f|| + 1e-10)``), differenced, squared, weighted per channel by the learned calibration
(``lin0..lin4``, 1x1 convolutions without bias), averaged over space and summed over the five layers.
Grayscale frames are repeated to 3 channels (what ``lpips`` computes for 1-channel input: its
ScalingLayer broadcasts the one channel to three). The backbones are defined here (torchvision's
``features`` layout, so a torchvision state_dict loads as it is); the calibration weights are read
from the installed ``lpips`` distribution's files (``lpips/weights/v0.1/alex.pth``, ``vgg.pth``)
without importing the package (it imports torchvision). Install it with
``pip install --no-deps lpips==0.1.4``.

**FVD** (Unterthiner et al. 2019): the Frechet distance between Gaussians fitted to I3D features of
the predicted clips and of the ground-truth clips, with the TorchScript I3D that StyleGAN-V and most
PyTorch FVD code load (``i3d_torchscript.pt``; ``forward(x, rescale=False, resize=False,
return_features=False)``; ``return_features=True`` gives the 400 logits before the softmax, as the
TensorFlow original). Clips are prepared as PredBench (OpenEarthLab/PredBench, ``fvd.py``) and
fvd-comparison/common_metrics_on_video_quality do: 8-bit frames to [-1, 1], each frame resized
bilinearly to 224x224 (``align_corners=False``), grayscale repeated to 3 channels, clips shorter
than 10 frames (what the I3D's temporal downsampling needs) padded at the end with zeros (mid-gray)
to 10 frames, then ``detector(x, rescale=False, resize=False, return_features=True)`` (StyleGAN-V
instead hands the detector 8-bit clips with ``rescale=True, resize=True`` and lets it scale them,
``x / 255 * 2 - 1``, and resize them to 224x224 itself). By default the clips are the predicted
frames and the corresponding ground-truth frames (PredBench); with ``context`` the input frames are
prepended to both (the BAIR/MCVD convention of scoring context + prediction). Covariances are sample covariances
(``np.cov``, N - 1) as PredBench and fvd-comparison; StyleGAN-V divides by N. FVD needs at least 2
clips; with fewer clips than features (400) the covariances are rank-deficient and FVD is biased
upwards, so FVDs compare only between runs on the same test set (same clips, same count); below
``RECOMMENDED_CLIPS`` the run's notes say so.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.metrics import registry
from vpbench.models.layers.vgg import VGG16_WIDTHS, vgg_features

# ---------------------------------------------------------------------------------------------------
# LPIPS

LPIPS_NETS = ("alex", "vgg")
LPIPS_VERSION = "0.1"
LPIPS_REQUIREMENT = "lpips==0.1.4"
NET_LABELS = {"alex": "AlexNet", "vgg": "VGG16"}
TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor


def _brief(err: BaseException) -> str:
    """An exception's first sentence, without terminal colours, for a one-line message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    text = text.splitlines()[0].split(". ")[0].strip() if text else ""
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of a file's SHA-256: which weights produced a value."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _describe(source: str | Path | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(source, Mapping):
        return {"file": "(given in memory)"}
    return {"file": str(Path(source).expanduser().resolve()), "sha256": file_digest(Path(source).expanduser())}


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` without its last max-pool (LPIPS stops at the fifth ReLU)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


def _vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (its last max-pool is not needed)."""
    return vgg_features(VGG16_WIDTHS)


# net -> (builder, indices of the tapped ReLUs in ``features``, their channels, smallest frame side)
_NETS: dict[str, tuple[Callable[[], nn.Sequential], tuple[int, ...], tuple[int, ...], int]] = {
    "alex": (_alexnet_features, (1, 4, 7, 9, 11), (64, 192, 384, 256, 256), 31),
    "vgg": (_vgg16_features, (3, 8, 15, 22, 29), (64, 128, 256, 512, 512), 16),
}


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise UserError(f"metrics.lpips_net={net!r}: choose from {', '.join(LPIPS_NETS)}")


def _load_state_dict(source: str | Path | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """A state_dict given as a mapping or as a file saved with ``torch.save`` (tensors only)."""
    if isinstance(source, Mapping):
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"{what}: no file {str(source)!r}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch.save's format, holding more than tensors: a whole pickled model
        raise UserError(f"{what}: {path} holds pickled Python objects (a whole model?), not a state_dict; "
                        "save one with torch.save(model.state_dict(), FILE)") from None
    except Exception as err:  # noqa: BLE001  not written by torch.save, or damaged
        raise UserError(f"{what}: {path} is not a state_dict file that torch.load reads ({_brief(err)}); "
                        "save one with torch.save(model.state_dict(), FILE)") from None
    if not isinstance(loaded, Mapping) or not any(isinstance(v, Tensor) for v in loaded.values()):
        raise UserError(f"{what}: {path} holds a {type(loaded).__name__}, not a state_dict (a dict of tensors); "
                        "save one with torch.save(model.state_dict(), FILE)")
    return loaded


def find_lpips_backbone(net: str = "alex", path: str | Path | None = None) -> tuple[Path | None, str]:
    """The backbone's weight file and ``""``, or ``None`` and a one-line reason saying how to enable LPIPS.

    ``path`` (``metrics.lpips_weights``) wins and must exist; else torchvision's cache,
    ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``: ``$TORCH_HOME`` defaults to
    ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``). Nothing is downloaded."""
    _check_net(net)
    if path is not None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise UserError(f"metrics.lpips_weights={str(path)!r}: no such file")
        return given, ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
    if cached.is_file():
        return cached, ""
    return None, (f"LPIPS not computed: no {NET_LABELS[net]} weights; give --set metrics.lpips_weights=FILE "
                  f"(torchvision's {TORCHVISION_FILES[net]}) or put that file in {cached.parent} "
                  "(vpbench downloads nothing)")


def find_lpips_calibration(net: str = "alex") -> Path | None:
    """``lpips/weights/v0.1/<net>.pth`` of the installed ``lpips`` distribution (the package is not
    imported), or None when it is not installed."""
    _check_net(net)
    relative = f"lpips/weights/v{LPIPS_VERSION}/{net}.pth"
    try:
        dist = importlib.metadata.distribution("lpips")
    except importlib.metadata.PackageNotFoundError:
        return None
    for item in dist.files or ():
        if str(item).replace("\\", "/") == relative:
            located = Path(str(dist.locate_file(item)))
            if located.is_file():
                return located
    spec = importlib.util.find_spec("lpips")  # a top-level package: found, not imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
        if candidate.is_file():
            return candidate
    return None


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet (``net="alex"``) or VGG16 (``"vgg"``) backbone.

    ``backbone``: a torchvision state_dict (a file or a mapping) with at least the ``features.*`` keys
    of ``alexnet``/``vgg16`` (a full model's state_dict works too). ``calibration``: the ``lpips``
    package's ``lin0..lin4`` weights (a file or a mapping), by default those of the installed package.
    ``swap_rb`` reverses the channel order of RGB frames before scoring (RGB -> BGR), which reproduces
    OpenSTL's LPIPS on Human3.6M (OpenSTL reads its frames with OpenCV, in BGR order).

    ``model(x, y)`` takes float frames [N, 3, H, W] on [-1, 1]; :meth:`score` takes 8-bit frames.
    """

    def __init__(self, net: str = "alex", backbone: str | Path | Mapping[str, Any] | None = None,
                 calibration: str | Path | Mapping[str, Any] | None = None, *, swap_rb: bool = False):
        super().__init__()
        _check_net(net)
        build, self.taps, channels, self.min_size = _NETS[net]
        self.net, self.swap_rb = net, swap_rb
        self.features = build()
        if backbone is None:
            found, reason = find_lpips_backbone(net)
            if found is None:
                raise UserError(reason)
            backbone = found
        self._load_backbone(_load_state_dict(backbone, "metrics.lpips_weights"))
        if calibration is None:
            calibration = find_lpips_calibration(net)
            if calibration is None:
                raise UserError(f"LPIPS needs the calibration weights of the lpips package: "
                                f"pip install --no-deps {LPIPS_REQUIREMENT}")
        lins = _load_state_dict(calibration, "LPIPS calibration")
        # What produced the values, for metrics.json: the net, and each weight file with its digest.
        self.provenance: dict[str, Any] = {"net": net, "version": LPIPS_VERSION, "channels": "bgr" if swap_rb else "rgb",
                                           "backbone": _describe(backbone), "calibration": _describe(calibration)}
        for k, width in enumerate(channels):
            key = next((f"lin{k}.model.{i}.weight" for i in (1, 0) if f"lin{k}.model.{i}.weight" in lins), None)
            weight = lins.get(key) if key else None
            if not isinstance(weight, Tensor) or tuple(weight.shape) != (1, width, 1, 1):
                raise UserError(f"LPIPS calibration: lin{k}.model.1.weight of shape (1, {width}, 1, 1) expected "
                                f"for {NET_LABELS[net]} (the lpips package's weights/v{LPIPS_VERSION}/{net}.pth)")
            self.register_buffer(f"lin{k}", weight.detach().float().clone())
        self.requires_grad_(False)
        self.eval()

    def _load_backbone(self, state: Mapping[str, Any]) -> None:
        label = f"metrics.lpips_weights ({NET_LABELS[self.net]}, torchvision's {TORCHVISION_FILES[self.net]})"
        ours = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        expected = self.features.state_dict()
        missing = [k for k in expected if k not in ours]
        if missing:
            raise UserError(f"{label}: the file lacks features.{missing[0]} (and {len(missing) - 1} more); "
                            "it must be a torchvision state_dict of that network")
        for key, value in expected.items():
            if not isinstance(ours[key], Tensor) or ours[key].shape != value.shape:
                got = tuple(ours[key].shape) if isinstance(ours[key], Tensor) else type(ours[key]).__name__
                raise UserError(f"{label}: features.{key} has shape {got}, expected {tuple(value.shape)}; "
                                "is it the other network's file?")
        self.features.load_state_dict({k: ours[k] for k in expected})

    def layers(self, x: Tensor) -> list[Tensor]:
        """The five tapped ReLU outputs of frames on [-1, 1] (after the ScalingLayer)."""
        # The ScalingLayer's constants in the frames' dtype: lpips' float32 values, exact ones in float64.
        shift = torch.tensor(SHIFT, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        scale = torch.tensor(SCALE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        h = (x - shift) / scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i == self.taps[-1]:
                break
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS of float frames [N, 3, H, W] on [-1, 1] -> [N]."""
        n = len(x)
        total = x.new_zeros(n)
        for k, both in enumerate(self.layers(torch.cat([x, y]))):
            both = both / (both.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            diff = (both[:n] - both[n:]).pow(2)
            total = total + F.conv2d(diff, getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return total

    def prepare(self, frames: Tensor) -> Tensor:
        """8-bit frames [N, C, H, W] (C = 1 or 3) -> float frames [N, 3, H, W] on [-1, 1] on this module's
        device and in its dtype."""
        x = frames.to(self.lin0.device, self.lin0.dtype) / 127.5 - 1
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif self.swap_rb:
            x = x.flip(1)
        return x

    @torch.no_grad()
    def score(self, pred: Tensor, target: Tensor, batch_size: int = 32) -> Tensor:
        """LPIPS of each pair of 8-bit frames: [N, C, H, W] x2 (uint8, C = 1 or 3) -> [N] float64 on the CPU."""
        if pred.dtype != torch.uint8 or target.dtype != torch.uint8:
            raise TypeError(f"LPIPS takes 8-bit frames, got {pred.dtype} and {target.dtype}")
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS takes two uint8 [N, C, H, W] batches with C = 1 or 3, got {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        if min(pred.shape[-2:]) < self.min_size:
            raise ValueError(f"LPIPS with {NET_LABELS[self.net]} needs frames of at least {self.min_size}x"
                             f"{self.min_size}, got {tuple(pred.shape[-2:])}")
        out = [self(self.prepare(pred[s:s + batch_size]), self.prepare(target[s:s + batch_size])).double().cpu()
               for s in range(0, len(pred), batch_size)]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def load_lpips(net: str = "alex", weights: str | Path | None = None, device: torch.device | str = "cpu", *,
               swap_rb: bool = False) -> tuple[LPIPS | None, str]:
    """The LPIPS model on ``device`` and ``""``, or None and the one-line reason (with how to enable it).
    A file that is given but unusable is a :class:`UserError`."""
    backbone, reason = find_lpips_backbone(net, weights)
    if backbone is None:
        return None, reason
    calibration = find_lpips_calibration(net)
    if calibration is None:
        return None, (f"LPIPS not computed: the calibration weights of the lpips package are missing; "
                      f"pip install --no-deps {LPIPS_REQUIREMENT}")
    return LPIPS(net, backbone, calibration, swap_rb=swap_rb).to(device), ""


# ---------------------------------------------------------------------------------------------------
# FVD

I3D_SIZE = 224
I3D_MIN_FRAMES = 10  # the TorchScript I3D's temporal downsampling fails on fewer (PredBench pads to 10)
MIN_CLIPS = 2  # a covariance needs two clips; the value is only meaningful with many more
RECOMMENDED_CLIPS = 256  # the original FVD evaluation's sample size; fewer clips bias FVD upwards
I3D_ARGUMENTS = ("rescale", "resize", "return_features")


def prepare_clips(clips: Tensor, *, size: int = I3D_SIZE, min_frames: int = I3D_MIN_FRAMES,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """8-bit clips [B, T, C, H, W] (C = 1 or 3) -> the I3D's input [B, 3, max(T, min_frames), size, size]
    on [-1, 1]: each frame resized bilinearly (align_corners=False) to size x size, grayscale repeated
    to 3 channels, short clips padded at the end with zeros (mid-gray), as PredBench does."""
    if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[2] not in (1, 3):
        raise ValueError(f"FVD takes uint8 clips [B, T, C, H, W] with C = 1 or 3, got {clips.dtype} "
                         f"{tuple(clips.shape)}")
    b, t, _, h, w = clips.shape
    x = clips.flatten(0, 1).to(dtype) / 127.5 - 1
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.unflatten(0, (b, t)).expand(-1, -1, 3, -1, -1)
    if t < min_frames:
        x = torch.cat([x, x.new_zeros(b, min_frames - t, 3, size, size)], dim=1)
    return x.permute(0, 2, 1, 3, 4).contiguous()


def load_i3d(path: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript I3D feature extractor (``metrics.fvd_weights``), or a one-line :class:`UserError`."""
    what = f"metrics.fvd_weights={str(path)!r}"
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{what}: no such file")
    hint = ("FVD needs the TorchScript I3D that StyleGAN-V uses (i3d_torchscript.pt), whose forward takes "
            "(x, rescale, resize, return_features)")
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the I3D exists only as one
            warnings.simplefilter("ignore", DeprecationWarning)
            detector = torch.jit.load(str(file), map_location=device)
    except Exception as err:  # noqa: BLE001  not a TorchScript archive
        raise UserError(f"{what}: not a TorchScript file ({_brief(err)}); {hint}") from None
    try:
        names = [a.name for a in detector.forward.schema.arguments]
    except (AttributeError, RuntimeError):
        names = []
    if not set(I3D_ARGUMENTS) <= set(names):
        raise UserError(f"{what}: its forward takes ({', '.join(names[1:]) or '?'}); {hint}")
    return detector.eval()


class FVD:
    """FVD with a TorchScript I3D: ``fvd(pred, real)`` on 8-bit clips [N, T, C, H, W], or
    :meth:`features` per batch and :func:`fvd_from_features` at the end."""

    def __init__(self, weights: str | Path | torch.jit.ScriptModule, device: torch.device | str = "cpu", *,
                 batch_size: int = 8):
        self.device = torch.device(device)
        if isinstance(weights, torch.jit.ScriptModule):
            self.detector, self.provenance = weights, {"file": "(given in memory)"}
        else:
            self.detector, self.provenance = load_i3d(weights, self.device), _describe(weights)
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, clips: Tensor) -> np.ndarray:
        """I3D features of 8-bit clips [B, T, C, H, W] -> [B, D] float64."""
        out = []
        for start in range(0, len(clips), self.batch_size):
            x = prepare_clips(clips[start:start + self.batch_size].to(self.device))
            f = self.detector(x, rescale=False, resize=False, return_features=True)
            if not isinstance(f, Tensor) or f.dim() != 2 or len(f) != len(x):
                shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
                raise UserError(f"the I3D returned {shape} for {len(x)} clips, expected [clips, features]")
            out.append(f.double().cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, 0))

    def __call__(self, pred: Tensor, real: Tensor) -> float:
        return fvd_from_features(self.features(pred), self.features(real))


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (N - 1) of features [N, D]."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < MIN_CLIPS:
        raise ValueError(f"FVD needs features [N, D] of at least {MIN_CLIPS} clips, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1).reshape(features.shape[1], -1)


def _roots(values: np.ndarray) -> np.ndarray:
    """Square roots of a PSD matrix's eigenvalues, those below its rounding level (zero in exact arithmetic, +-1e-15
    in floats, whose roots of ~3e-8 would add up) taken as zero."""
    tolerance = values.max(initial=0.0) * len(values) * np.finfo(values.dtype).eps
    return np.sqrt(np.where(values > tolerance, values, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) for covariances S1, S2.

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), which
    is symmetric positive semi-definite: two symmetric eigen-decompositions, no complex parts and no
    ill-conditioned ``sqrtm``, so it stays exact with few clips (rank-deficient covariances)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * _roots(values)) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = _roots(np.linalg.eigvalsh((middle + middle.T) / 2)).sum()
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root), 0.0)


def fvd_from_features(fake: np.ndarray, real: np.ndarray) -> float:
    """The Frechet distance between the Gaussians fitted to two sets of features [N, D]."""
    return frechet_distance(*gaussian_stats(fake), *gaussian_stats(real))


# ---------------------------------------------------------------------------------------------------
# The ``metrics`` section of a run's configuration, and what evaluate() calls

METRIC_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "lpips": ("true or false", lambda v: isinstance(v, bool)),
    "lpips_net": ("alex or vgg", lambda v: v in LPIPS_NETS),
    "lpips_weights": ("a file or null", lambda v: v is None or isinstance(v, str)),
    "lpips_bgr": ("true or false", lambda v: isinstance(v, bool)),
    "fvd": ("true or false", lambda v: isinstance(v, bool)),
    "fvd_weights": ("a file or null", lambda v: v is None or isinstance(v, str)),
    "fvd_context": ("true or false", lambda v: isinstance(v, bool)),
    "samples": ("an integer >= 1 (--samples K: the futures drawn per test sequence of a stochastic model)",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "names": ("comma-separated metric names or module:function, or null (every registered metric)",
              lambda v: v is None or isinstance(v, str) or (isinstance(v, list) and all(isinstance(n, str) for n in v))),
}
METRIC_DEFAULTS: dict[str, Any] = {"lpips": False, "lpips_net": "alex", "lpips_weights": None, "lpips_bgr": False,
                                   "fvd": False, "fvd_weights": None, "fvd_context": False, "names": None,
                                   "samples": 1}


def metrics_config(sets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``metrics`` section: defaults, then ``--set metrics.*``. Giving a weight file turns its metric on;
    ``names`` (``--metrics``) are the registered metrics to compute, checked here (a bad one is an error)."""
    config = {**METRIC_DEFAULTS, **(sets or {})}
    for key, value in config.items():
        if key not in METRIC_KEYS:
            raise UserError(f"unknown metrics option metrics.{key}; known: {', '.join(METRIC_KEYS)}")
        description, check = METRIC_KEYS[key]
        if not check(value):
            raise UserError(f"invalid value metrics.{key}={value!r}: must be {description}")
    if config["names"] is not None:
        registry.select(config["names"])
    config["lpips"] = config["lpips"] or config["lpips_weights"] is not None
    config["fvd"] = config["fvd"] or config["fvd_weights"] is not None
    return config


class PerceptualMetrics:
    """The perceptual metrics a run asked for (its ``metrics`` section), built once per evaluation.

    ``columns``: the per-frame columns it adds (``("lpips",)`` or ``()``); :meth:`update` scores one
    batch (and keeps its I3D features); :meth:`summary` gives the per-run values for metrics.json;
    ``notes``: one line for each metric that was asked for but cannot be computed (no weights)."""

    def __init__(self, config: Mapping[str, Any] | None, device: torch.device | str = "cpu", *,
                 lpips_batch: int = 32, fvd_batch: int = 8):
        config = metrics_config(config)
        self.notes: list[str] = []
        self.lpips: LPIPS | None = None
        self.fvd: FVD | None = None
        self.context = bool(config["fvd_context"])
        self.lpips_batch = lpips_batch
        if config["lpips"]:
            self.lpips, reason = load_lpips(config["lpips_net"], config["lpips_weights"], device,
                                            swap_rb=config["lpips_bgr"])
            if reason:
                self.notes.append(reason)
        if config["fvd"]:
            if config["fvd_weights"] is None:
                self.notes.append("FVD not computed: give --set metrics.fvd_weights=FILE, the TorchScript I3D "
                                  "i3d_torchscript.pt that StyleGAN-V uses (vpbench downloads nothing)")
            else:
                self.fvd = FVD(config["fvd_weights"], device, batch_size=fvd_batch)
        self.requested_fvd = bool(config["fvd"])
        self.columns: tuple[str, ...] = ("lpips",) if self.lpips is not None else ()
        self._fake: list[np.ndarray] = []
        self._real: list[np.ndarray] = []
        self._frames = 0

    def update(self, inputs: Tensor, targets: Tensor, pred: Tensor) -> np.ndarray:
        """One batch of 8-bit sequences (inputs [B, T_in, C, H, W], targets and predictions
        [B, T_out, C, H, W]) -> its per-frame columns [B, T_out, len(columns)]; FVD features are kept."""
        b, t = pred.shape[:2]
        out = np.empty((b, t, len(self.columns)))
        if self.lpips is not None:
            out[..., 0] = self.lpips.score(pred.flatten(0, 1), targets.flatten(0, 1),
                                           self.lpips_batch).view(b, t).numpy()
        if self.fvd is not None:
            fake, real = (torch.cat([inputs, pred], 1), torch.cat([inputs, targets], 1)) if self.context \
                else (pred, targets)
            self._frames = fake.shape[1]
            self._fake.append(self.fvd.features(fake))
            self._real.append(self.fvd.features(real))
        return out

    def summary(self) -> dict[str, Any]:
        """What metrics.json gets: ``fvd`` (None when asked for but not computed) when FVD was asked for,
        and ``perceptual``, what produced the values (weight files and their SHA-256, the clips) and the
        notes, when any perceptual metric was; nothing otherwise."""
        out: dict[str, Any] = {}
        described: dict[str, Any] = {}
        notes = list(self.notes)
        if self.lpips is not None:
            described["lpips"] = self.lpips.provenance
        if self.requested_fvd:
            out["fvd"] = None
            if self.fvd is not None:
                described["fvd"] = {**self.fvd.provenance, "clips": 0,
                                    "frames": "inputs + predictions" if self.context else "predictions"}
            if self.fvd is not None and self._fake:
                fake, real = np.concatenate(self._fake), np.concatenate(self._real)
                out["fvd"] = fvd_from_features(fake, real) if len(fake) >= MIN_CLIPS else None
                described["fvd"].update(clips=len(fake), clip_frames=self._frames,
                                        padded_to=max(self._frames, I3D_MIN_FRAMES), size=I3D_SIZE)
                if len(fake) < RECOMMENDED_CLIPS:
                    notes.append(f"FVD from {len(fake)} clips (fewer than {RECOMMENDED_CLIPS}): biased upwards; "
                                 "compare it only with runs on the same test set")
        if described or notes:
            out["perceptual"] = {**described, "notes": notes}
        return out
