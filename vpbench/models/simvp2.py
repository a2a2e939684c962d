"""SimVP in OpenSTL's form (``openstl/models/simvp_model.py``): SimVP v2 with any of OpenSTL's translators,
and TAU with its loss.

* SimVP v2 (Tan et al., "SimVP: Towards Simple yet Powerful Spatiotemporal Predictive Learning", 2022):
  a per-frame CNN encoder, a translator over the frames' features stacked as channels, a CNN decoder;
  T frames in, the next T out, at once. Its translator is the gated spatiotemporal attention (gSTA).
* The MetaVP study (Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks) puts MetaFormer blocks
  in its place (``translator``: convmixer, convnext, hornet, mlp, moga, poolformer, swin, uniformer, van,
  vit; see :mod:`vpbench.models.metaformer_blocks`), or SimVP v1's Inception U-Net (``incepu``, the
  translator of :mod:`vpbench.models.simvp`).
* TAU (Tan et al., "Temporal Attention Unit", CVPR 2023): the same frame with the temporal attention
  translator (``tau``), trained with MSE + 0.1 x its differential divergence regularisation (loss
  ``mse_ddr``).

Registered: ``simvp2`` (translator gsta) and ``tau`` (translator tau, loss mse_ddr). Each of OpenSTL's
translators trains under ``--set model.translator=NAME``; OpenSTL's Moving MNIST rate for it is
:data:`OPENSTL_LR` (the recipe carries gSTA's and TAU's 1e-3: add ``--set train.lr=...`` for the others),
and its published values are :data:`TRANSLATOR_REFERENCES`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.metaformer_blocks import BLOCKS, BlockSpec
from vpbench.models.multiframe import chunked_rollout
from vpbench.models.registry import register_model
from vpbench.models.simvp import Translator as InceptionUNet
from vpbench.models.simvp import encode_translate_decode

TRANSLATORS = ("incepu", *BLOCKS)


class ConvSC(nn.Module):
    """OpenSTL's ``ConvSC``: a k x k conv (stride 2 when ``downsample``; to 4 C_out channels and a
    PixelShuffle(2) when ``upsample``), GroupNorm(2), SiLU. Conv weights start truncated N(0, 0.02^2),
    biases 0. [N, C_in, H, W] -> [N, C_out, H', W'], H' = H / 2, 2 H or H."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
                 upsample: bool = False) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        padding = (kernel_size - stride + 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels * (4 if upsample else 1), kernel_size, stride, padding)
        self.shuffle = nn.PixelShuffle(2) if upsample else nn.Identity()
        self.norm = nn.GroupNorm(2, out_channels)
        self.act = nn.SiLU()
        nn.init.trunc_normal_(self.conv.weight, std=0.02)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.shuffle(self.conv(x))))


def drop_path_rates(layers: int, drop_path: float, start: float) -> list[float]:
    """Stochastic-depth rates of the translator's blocks as OpenSTL sets them (``MidMetaNet``): the first
    layers - 1 evenly spaced from ``start`` (OpenSTL's 0.01) to ``drop_path``, the last ``drop_path``.
    At OpenSTL's drop_path 0 the first blocks still drop their branches (0.01 down to 0.01 / (layers - 1));
    ``start`` = 0 with drop_path 0 turns stochastic depth off."""
    spaced = [start + (drop_path - start) * i / (layers - 1) for i in range(layers)]
    return [*spaced[:-1], drop_path]


class MetaBlock(nn.Module):
    """One translator block at the width of its input, then a 1x1 conv to ``out_channels`` where that differs
    (OpenSTL's ``MetaBlock``). [B, C_in, h, w] -> [B, C_out, h, w]."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, index: int, resolution: tuple[int, int],
                 mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        spec = BlockSpec(in_channels, index, in_channels == out_channels, resolution, mlp_ratio, drop, drop_path)
        self.block = BLOCKS[kind](spec)
        self.reduction = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.reduction(self.block(x))


class MetaTranslator(nn.Module):
    """OpenSTL's ``MidMetaNet``: ``layers`` blocks over the stacked frame features [B, T hid_S, h, w]; the first
    works at T hid_S channels and maps to ``hidden`` (hid_T), the middle ones at hid_T, the last maps back."""

    def __init__(self, kind: str, channels: int, hidden: int, layers: int, resolution: tuple[int, int],
                 mlp_ratio: float, drop: float, drop_path: float, drop_path_start: float) -> None:
        super().__init__()
        if layers < 2 or mlp_ratio <= 1:
            raise UserError(f"SimVP's {kind} translator needs temporal_layers >= 2 and mlp_ratio > 1, got {layers} "
                            f"and {mlp_ratio}")
        rates = drop_path_rates(layers, drop_path, drop_path_start)
        widths = [channels, *[hidden] * (layers - 1), channels]
        self.blocks = nn.Sequential(*(
            MetaBlock(kind, widths[i], widths[i + 1], i, resolution, mlp_ratio, drop, rates[i]) for i in range(layers)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class SimVPv2(nn.Module):
    """SimVP v2 in OpenSTL's form (``SimVP_Model``), with any of its translators.

    * Encoder: ``spatial_layers`` (N_S, even) ConvSC blocks of ``spatial_hidden`` (hid_S) channels, kernel
      ``encoder_kernel``, down-sampling by 2 in every second block (64x64 -> 16x16 at N_S = 4); per frame.
    * Translator over the T frames' features stacked as T hid_S channels: ``translator`` blocks of
      ``temporal_hidden`` (hid_T) channels, ``temporal_layers`` (N_T) of them (:class:`MetaTranslator`), or
      for ``incepu`` SimVP v1's Inception U-Net of N_T down and N_T up blocks (``kernels``, ``groups``).
    * Decoder: the mirrored ConvSC blocks (up-sampling by PixelShuffle), the last one reading the sum of the
      translated features and the first encoder block's output, then a 1x1 conv to C channels.

    ``mlp_ratio``, ``drop`` and ``drop_path`` are the MetaFormer blocks' MLP expansion, dropout and
    stochastic depth (see :func:`drop_path_rates` for OpenSTL's schedule and ``drop_path_start``). The
    MLP-Mixer and Swin blocks are built for the feature grid of ``img_size`` frames. OpenSTL's output has
    no activation; here it is clamped to [0, 1] with a straight-through gradient. Frames whose sides do not
    divide by 2^(N_S / 2) are replicate-padded and the prediction cropped; horizons other than T are rolled
    out in chunks of T. Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W].
    """

    def __init__(self, *, translator: str = "gsta", in_channels: int = 1, input_frames: int = 10,
                 img_size: Sequence[int] = (64, 64), spatial_hidden: int = 64, temporal_hidden: int = 512,
                 spatial_layers: int = 4, temporal_layers: int = 8, encoder_kernel: int = 3, decoder_kernel: int = 3,
                 mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0, drop_path_start: float = 0.01,
                 kernels: Sequence[int] = (3, 5, 7, 11), groups: int = 8) -> None:
        super().__init__()
        if translator not in TRANSLATORS:
            raise UserError(f"invalid value model.translator={translator!r}: must be one of {', '.join(TRANSLATORS)}")
        if spatial_layers < 2 or spatial_layers % 2 or spatial_hidden < 2 or spatial_hidden % 2:
            raise UserError(f"SimVP needs an even spatial_layers >= 2 (its blocks go in pairs) and an even "
                            f"spatial_hidden (GroupNorm of 2 groups), got {spatial_layers} and {spatial_hidden}")
        if input_frames < 1:
            raise UserError(f"input_frames must be positive, got {input_frames}")
        self.input_frames = input_frames
        self.size_multiple = 2 ** (spatial_layers // 2)
        resolution = (math.ceil(img_size[0] / self.size_multiple), math.ceil(img_size[1] / self.size_multiple))
        self.encoder = nn.ModuleList(
            ConvSC(in_channels if i == 0 else spatial_hidden, spatial_hidden, encoder_kernel, downsample=i % 2 == 1)
            for i in range(spatial_layers))
        channels = input_frames * spatial_hidden
        if translator == "incepu":
            self.translator: nn.Module = InceptionUNet(channels, temporal_hidden, temporal_layers, kernels, groups)
        else:
            self.translator = MetaTranslator(translator, channels, temporal_hidden, temporal_layers, resolution,
                                             mlp_ratio, drop, drop_path, drop_path_start)
        self.decoder = nn.ModuleList(
            ConvSC(spatial_hidden, spatial_hidden, decoder_kernel, upsample=i % 2 == 0) for i in range(spatial_layers))
        self.readout = nn.Conv2d(spatial_hidden, in_channels, 1)

    def block(self, frames: Tensor) -> Tensor:
        """The next T frames: [B, T, C, H, W] -> [B, T, C, H, W] in [0, 1]; the skip is added, not concatenated."""
        return encode_translate_decode(self, frames, torch.add)

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1]."""
        return chunked_rollout(self.block, frames, horizon)


# -- TAU's loss -------------------------------------------------------------------------------------------------

DDR_ALPHA = 0.1  # configs/mmnist/TAU.py: alpha
DDR_TAU = 0.1  # openstl/methods/tau.py: diff_div_reg(tau=0.1)


def differential_divergence(pred: Tensor, target: Tensor, tau: float = DDR_TAU, eps: float = 1e-12) -> Tensor:
    """TAU's differential divergence regularisation (Tan et al. 2023, Eq. 7) as OpenSTL computes it: the
    frame differences of each sequence [B, T - 1, C H W] turned into distributions over the pixels by
    softmax(diff / tau), and sum p log(p / (q + eps) + eps) between prediction (p) and truth (q), divided by
    C H W and averaged over B (T - 1). Like OpenSTL, 0 for T <= 2. pred, target [B, T, C, H, W] -> scalar."""
    b, t = pred.shape[:2]
    if t <= 2:
        return pred.new_zeros(())
    p = F.softmax((pred[:, 1:] - pred[:, :-1]).reshape(b, t - 1, -1) / tau, dim=-1)
    q = F.softmax((target[:, 1:] - target[:, :-1]).reshape(b, t - 1, -1) / tau, dim=-1)
    return (p * torch.log(p / (q + eps) + eps)).mean()


@register_loss("mse_ddr")
def mse_ddr_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                 context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """TAU's loss (Eq. 8): MSE + 0.1 x the differential divergence of the predicted frames, in training;
    in evaluation the MSE alone, as OpenSTL validates. Unlike OpenSTL's, the predictions are clamped to
    [0, 1] (straight-through) before the loss, as every SimVP prediction is here."""
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        pred_wide, targets_wide = wide(pred), wide(targets)
        loss = F.mse_loss(pred_wide, targets_wide)
        if model.training:
            loss = loss + DDR_ALPHA * differential_divergence(pred_wide, targets_wide)
    return loss, pred


# -- presets, recipes, published values ---------------------------------------------------------------------------

# OpenSTL's Moving MNIST peak rates per translator (configs/mmnist/simvp/SimVP_*.py, TAU.py).
OPENSTL_LR: dict[str, float] = {"incepu": 1e-3, "gsta": 1e-3, "tau": 1e-3, "convmixer": 1e-2, "convnext": 1e-2,
                                "hornet": 1e-3, "mlp": 1e-3, "moga": 1e-3, "poolformer": 1e-3, "swin": 1e-3,
                                "uniformer": 5e-4, "van": 1e-3, "vit": 5e-4}
# OpenSTL's Moving MNIST configuration (configs/mmnist/simvp/SimVP_gSTA.py and the others; mlp_ratio 8 and
# drop 0 are SimVP_Model's defaults).
FULL = {"spatial_hidden": 64, "temporal_hidden": 512, "spatial_layers": 4, "temporal_layers": 8, "encoder_kernel": 3,
        "decoder_kernel": 3, "mlp_ratio": 8.0, "drop": 0.0, "drop_path": 0.0}
# Small enough to train 100 steps on a 2-core CPU in a minute or two: 8 x T channels (every translator's
# widths divide by its 8 heads or groups), 4 blocks.
QUICK = {"spatial_hidden": 8, "temporal_hidden": 32, "spatial_layers": 4, "temporal_layers": 4, "mlp_ratio": 4.0}
TINY = {"spatial_hidden": 4, "temporal_hidden": 16, "spatial_layers": 2, "temporal_layers": 2, "mlp_ratio": 2.0,
        "kernels": [3, 5], "groups": 4}  # the kernels and groups of incepu
QUICK_LR = 5e-3  # a short one-cycle run learns more at 5e-3 than at OpenSTL's 1e-3


def simvp2_presets(translator: str) -> dict[str, dict[str, Any]]:
    """Hyperparameters per preset: OpenSTL's Moving MNIST configuration at full scale under both protocols
    (the SRVP protocol has no other for SimVP v2)."""
    scales = {"paper": FULL, "quick": QUICK, "tiny": TINY,
              "openstl": FULL, "openstl-quick": QUICK, "openstl-tiny": TINY}
    return {preset: {"translator": translator, **options} for preset, options in scales.items()}


def simvp2_recipe(loss: str, lr: float) -> dict[str, dict[str, Any]]:
    """OpenSTL's training (the authors' own: MSE or TAU's loss, Adam without weight decay, one-cycle schedule
    per batch peaking at ``lr``, batch 16) under both protocols; the smaller scales peak at :data:`QUICK_LR`
    with their own batch sizes."""
    own = {"loss": loss, "optimizer": "adam", "weight_decay": 0.0, "scheduler": "onecycle"}
    recipes = {"paper": {**own, "lr": lr, "batch_size": 16}, "quick": {**own, "lr": QUICK_LR},
               "tiny": {**own, "lr": QUICK_LR}}
    for name, rate in (("openstl", lr), ("openstl-quick", QUICK_LR), ("openstl-tiny", QUICK_LR)):
        recipes[name] = {**presets.protocol_recipe(name), "loss": loss, "lr": rate}
    return recipes


def _row(params: float, flops: float, fps: float, mse: float, mae: float, ssim: float, psnr: float) -> dict:
    return {"mse": mse, "mae": mae, "ssim": ssim, "psnr": psnr, "params": params, "flops": flops, "fps": fps}


# OpenSTL's MetaVP table on Moving MNIST (docs/en/model_zoos/video_benchmarks.md:109-136; MSE and MAE per frame
# summed over pixels on [0, 1]): each translator in OpenSTL's SimVP frame after 200 and 2,000 epochs. The rows of
# simvp2 (gSTA), tau and simvp (IncepU) are their registered references; the others wait for a report that
# runs `simvp2` with `--set model.translator=NAME`.
TRANSLATOR_REFERENCES: dict[str, dict[str, dict[str, float]]] = {
    translator: {"openstl-mmnist-200": _row(*size, *epochs200), "openstl-mmnist-2000": _row(*size, *epochs2000)}
    for translator, size, epochs200, epochs2000 in (
        ("incepu", (58.0e6, 19.4e9, 209), (32.15, 89.05, 0.9268, 21.84), (21.15, 64.15, 0.9536, 23.99)),
        ("gsta", (46.8e6, 16.5e9, 282), (26.69, 77.19, 0.9402, 22.78), (15.05, 49.80, 0.9675, 25.97)),
        ("vit", (46.1e6, 16.9e9, 290), (35.15, 95.87, 0.9139, 21.67), (19.74, 61.65, 0.9539, 24.59)),
        ("swin", (46.1e6, 16.4e9, 294), (29.70, 84.05, 0.9331, 22.22), (19.11, 59.84, 0.9584, 24.53)),
        ("uniformer", (44.8e6, 16.5e9, 296), (30.38, 85.87, 0.9308, 22.13), (18.01, 57.52, 0.9609, 24.92)),
        ("mlp", (38.2e6, 14.7e9, 334), (29.52, 83.36, 0.9338, 22.22), (18.85, 59.86, 0.9589, 24.58)),
        ("convmixer", (3.9e6, 5.5e9, 658), (32.09, 88.93, 0.9259, 21.93), (22.30, 67.37, 0.9507, 23.73)),
        ("poolformer", (37.1e6, 14.1e9, 341), (31.79, 88.48, 0.9271, 22.03), (20.96, 64.31, 0.9539, 24.15)),
        ("convnext", (37.3e6, 14.1e9, 344), (26.94, 77.23, 0.9397, 22.74), (17.58, 55.76, 0.9617, 25.06)),
        ("van", (44.5e6, 16.0e9, 288), (26.10, 76.11, 0.9417, 22.89), (16.21, 53.57, 0.9646, 25.49)),
        ("hornet", (45.7e6, 16.3e9, 287), (29.64, 83.26, 0.9331, 22.26), (17.40, 55.70, 0.9624, 25.14)),
        ("moga", (46.8e6, 16.5e9, 255), (25.57, 75.19, 0.9429, 22.99), (15.67, 51.84, 0.9661, 25.70)),
        ("tau", (44.7e6, 16.0e9, 283), (24.60, 71.93, 0.9454, 23.19), (15.69, 51.46, 0.9661, 25.71)),
    )
}

register_model("simvp2", label="SimVP v2", labels={"openstl": "SimVP+gSTA"}, tags=("openstl", "rnn-free"), rank=210,
               defaults=simvp2_presets("gsta"), recipe=simvp2_recipe("mse", OPENSTL_LR["gsta"]),
               references=TRANSLATOR_REFERENCES["gsta"])(SimVPv2)
register_model("tau", label="TAU", tags=("openstl", "rnn-free"), rank=220, defaults=simvp2_presets("tau"),
               recipe=simvp2_recipe("mse_ddr", OPENSTL_LR["tau"]), references=TRANSLATOR_REFERENCES["tau"])(SimVPv2)
