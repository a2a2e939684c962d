"""SimVP (Gao et al., CVPR 2022): a CNN spatial encoder, an Inception U-Net translator over the stacked
frames, and a CNN spatial decoder; T frames in, the next T frames out, all at once."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.multiframe import chunked_rollout
from vpbench.models.layers.simvp_blocks import ConvSC, Translator, encode_translate_decode
from vpbench.models.layers.simvp_frame import SimVPv2
from vpbench.models.registry import register_model


class SimVP(nn.Module):
    """SimVP, as the official code (A4Bio/SimVP) builds it.

    * Spatial encoder: ``spatial_layers`` ConvSC blocks of ``spatial_hidden`` channels (hid_S, N_S),
      strides 1, 2, 1, 2, ...; per frame.
    * Translator: the encoder's features of the T frames stacked as T x hid_S channels, through the
      Inception U-Net of ``temporal_layers`` (N_T) down and up blocks of ``temporal_hidden`` (hid_T) channels.
    * Spatial decoder: the mirrored ConvSC blocks (transposed convs where the encoder strides), the last
      one reading the first encoder block's output as a skip, and a 1x1 conv to C channels.

    The official output has no activation and is clipped only when scored; here it is clamped to
    [0, 1] with a straight-through gradient (:func:`clamp_straight_through`). Frames whose sides do
    not divide by 2^(strided blocks) (4 at N_S = 4: 64 and 100 do) are replicate-padded and the
    prediction cropped. One call maps T_in frames to the next T_in; other horizons are rolled out in
    chunks (:func:`~vpbench.models.layers.multiframe.chunked_rollout`). Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, spatial_hidden: int = 64,
                 temporal_hidden: int = 256, spatial_layers: int = 4, temporal_layers: int = 8,
                 kernels: Sequence[int] = (3, 5, 7, 11), groups: int = 8) -> None:
        super().__init__()
        if spatial_layers < 1 or spatial_hidden < 2 or spatial_hidden % 2:
            raise UserError(f"SimVP needs spatial_layers >= 1 and an even spatial_hidden (GroupNorm of 2 groups), "
                            f"got {spatial_layers} and {spatial_hidden}")
        if input_frames < 1:
            raise UserError(f"input_frames must be positive, got {input_frames}")
        strides = [1 + i % 2 for i in range(spatial_layers)]
        self.input_frames = input_frames
        self.size_multiple = 2 ** strides.count(2)
        self.encoder = nn.ModuleList(
            ConvSC(in_channels if i == 0 else spatial_hidden, spatial_hidden, s) for i, s in enumerate(strides)
        )
        self.translator = Translator(input_frames * spatial_hidden, temporal_hidden, temporal_layers, kernels, groups)
        self.decoder = nn.ModuleList(
            ConvSC((2 if i == spatial_layers - 1 else 1) * spatial_hidden, spatial_hidden, s, upsample=True)
            for i, s in enumerate(reversed(strides))
        )
        self.readout = nn.Conv2d(spatial_hidden, in_channels, 1)

    def block(self, frames: Tensor) -> Tensor:
        """The next T frames: [B, T, C, H, W] -> [B, T, C, H, W] in [0, 1]."""
        return encode_translate_decode(self, frames, lambda x, skip: torch.cat([x, skip], dim=1))

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1]."""
        return chunked_rollout(self.block, frames, horizon)


FORMS = ("a4bio", "openstl")


def simvp(*, form: str = "a4bio", in_channels: int = 1, input_frames: int = 10, spatial_hidden: int = 64,
          temporal_hidden: int = 256, spatial_layers: int = 4, temporal_layers: int = 8,
          kernels: Sequence[int] = (3, 5, 7, 11), groups: int = 8) -> nn.Module:
    """SimVP in one of two forms, with the same Inception U-Net translator:

    * ``a4bio``: the official code's (:class:`SimVP`), the model the SRVP paper compares;
    * ``openstl``: OpenSTL's SimVP+IncepU, the translator in OpenSTL's frame (SiLU, PixelShuffle up-sampling,
      the skip added rather than concatenated, encoder/decoder kernels 3; ``SimVPv2`` with translator
      ``incepu`` of :mod:`vpbench.models.layers.simvp_frame`)."""
    options = {"in_channels": in_channels, "input_frames": input_frames, "spatial_hidden": spatial_hidden,
               "temporal_hidden": temporal_hidden, "spatial_layers": spatial_layers,
               "temporal_layers": temporal_layers, "kernels": kernels, "groups": groups}
    if form == "a4bio":
        return SimVP(**options)
    if form == "openstl":
        return SimVPv2(translator="incepu", **options)
    raise UserError(f"invalid value model.form={form!r}: must be {' or '.join(FORMS)}")


SIMVP_PRESETS: dict[str, dict] = {
    # The official Moving MNIST configuration (A4Bio/SimVP main.py): hid_S 64, hid_T 256, N_S 4, N_T 8.
    "paper": {"spatial_hidden": 64, "temporal_hidden": 256, "spatial_layers": 4, "temporal_layers": 8},
    # About one ConvGRU quick step per step on a CPU: narrower, with half the translator's blocks.
    "quick": {"spatial_hidden": 8, "temporal_hidden": 32, "spatial_layers": 4, "temporal_layers": 4},
    "tiny": {"spatial_hidden": 4, "temporal_hidden": 16, "spatial_layers": 2, "temporal_layers": 2,
             "kernels": [3, 5], "groups": 4},
}
# OpenSTL's SimVP+IncepU (configs/mmnist/simvp/SimVP_IncepU.py: hid_S 64, hid_T 512, N_S 4, N_T 8) under its
# protocol, and the smaller scales in OpenSTL's form.
SIMVP_PRESETS.update({
    "openstl": {"form": "openstl", "spatial_hidden": 64, "temporal_hidden": 512, "spatial_layers": 4,
                "temporal_layers": 8},
    "openstl-quick": {"form": "openstl", **SIMVP_PRESETS["quick"]},
    "openstl-tiny": {"form": "openstl", **SIMVP_PRESETS["tiny"]},
})

# The official recipe (A4Bio/SimVP main.py, exp.py): MSE, Adam with a one-cycle schedule stepped every batch,
# peaking at lr 0.01, batch 16. The smaller presets keep their own batch size. On a CPU its convolutions run in
# channels-last layout (measured on the quick preset: a training step 1.45x faster).
SIMVP_RECIPE = {"loss": "mse", "optimizer": "adam", "lr": 1.0e-2, "scheduler": "onecycle", "cpu_channels_last": True}
OPENSTL_QUICK_LR = 5.0e-3
# quick: 1 epoch (measured on Moving MNIST, one thread beside another run: 54 s, MSE 2115, SSIM 0.481, pixel std 0.415
# of the ground truth's; 2 epochs: 90 s, 2050, 0.504, 0.462; 3 epochs: 140 s, 1995, 0.511, 0.486).
QUICK_EPOCHS = 1
PAPER_VALUES = {
    "table1-10": {"mse": 673.01, "ssim": 0.8283},
    "table1-30": {"mse": 1280.05, "ssim": 0.5167},
    "table2": {"mse": 452.65, "psnr": 21.4365, "ssim": 0.7179},
    "table3": {1: 0.9415, 2: 0.9286, 3: 0.9194, 4: 0.9122},
    # OpenSTL's SimVP+IncepU (its PSNR from the MetaVP table: the STL table's 37.97 used an obsolete formula).
    "openstl-mmnist-200": {"mse": 32.15, "mae": 89.05, "ssim": 0.9268, "psnr": 21.84, "params": 58.0e6,
                           "flops": 19.4e9, "fps": 209},
    "openstl-mmnist-2000": {"mse": 21.15, "mae": 64.15, "ssim": 0.9536, "psnr": 23.99, "params": 58.0e6,
                            "flops": 19.4e9, "fps": 209},
    "openstl-kth-100": {"mse": 41.11, "mae": 397.1, "ssim": 0.9065, "psnr": 27.46, "params": 12.2e6,
                      "flops": 62.8e9, "fps": 77},
    "openstl-human36m-50": {"mse": 115.8, "mae": 1511.5, "ssim": 0.9822, "psnr": 33.73, "params": 41.2e6,
                          "flops": 197.0e9, "fps": 26},
}
# Under OpenSTL's protocol its recipe (MSE, Adam, one-cycle per batch, batch 16, peak 1e-3 as SimVP_IncepU.py);
# the smaller scales peak higher, so that a short run learns.
OPENSTL_RECIPE = {preset: {**presets.protocol_recipe(preset), "lr": OPENSTL_QUICK_LR, "cpu_channels_last": True}
                  for preset in ("openstl-quick", "openstl-tiny")}
register_model("simvp", label="SimVP", labels={"openstl": "SimVP+IncepU"}, tags=("paper", "rnn-free", "openstl"),
               defaults=SIMVP_PRESETS, rank=70, references=PAPER_VALUES,
               recipe={"paper": {**SIMVP_RECIPE, "batch_size": 16}, "quick": {**SIMVP_RECIPE, "epochs": QUICK_EPOCHS},
                       "tiny": SIMVP_RECIPE,
                       **OPENSTL_RECIPE},
               )(simvp)
