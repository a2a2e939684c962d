"""PhyDNet (Le Guen & Thome, *Disentangling Physical Dynamics from Unknown Factors for Unsupervised Video
Prediction*, CVPR 2020), as its authors' code (vincent-leguen/PhyDNet) and OpenSTL build it.

Every frame goes through a shared image encoder E to a latent map (64 x 16 x 16 on Moving MNIST), which two
branches read through encoders of their own: PhyCell, a recurrent cell whose prediction step is a learnt
convolutional "physical" model corrected by the observation (paper Sec. 3.2), and a ConvLSTM stack for
what physics does not explain (the residual). Their states are decoded by decoders of their own, added
and decoded by the shared image decoder D, with a sigmoid, into the next frame.

Training (loss ``phydnet``, the authors' ``train_on_batch``): the model reads the input frames 1..T_in-1
and predicts each next one, then predicts the ``horizon`` future frames starting from the last input frame;
with probability ``ratio`` (one coin per batch) every future step reads the true previous frame (teacher
forcing), else its own prediction. The loss is the sum over steps of each step's MSE plus the moment loss,
which pulls the k x k moments of PhyCell's k^2 filters of each input channel towards the k^2 one-hot
matrices (each filter approximates one partial derivative). The ratio falls linearly with training, as
the authors' ``1 - 0.003 * epoch``. OpenSTL's ``training_step`` instead optimises ``MSELoss(L, batch_y)``
of that scalar sum L against the frames (a bug that pulls L towards the mean pixel, not towards 0);
vpbench follows the authors.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, draw_uniform, full_precision, register_loss, wide
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.openstl_stack import sampling_probabilities
from vpbench.models.registry import register_model

PATCH_SIZES = (2, 4)  # the total down-sampling of the image encoder (OpenSTL's patch_size)
Latent = tuple[Tensor, list[tuple[Tensor, Tensor]]]  # PhyCell's H; (H, C) of every ConvLSTM layer


def conv_block(in_channels: int, out_channels: int, stride: int, groups: int) -> nn.Sequential:
    """3x3 convolution + GroupNorm + LeakyReLU(0.2) (the authors' ``dcgan_conv``)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, padding=1),
                         nn.GroupNorm(groups, out_channels), nn.LeakyReLU(0.2))


def upconv_block(in_channels: int, out_channels: int, stride: int, groups: int) -> nn.Sequential:
    """3x3 transposed convolution (doubling the size at stride 2) + GroupNorm + LeakyReLU(0.2) (``dcgan_upconv``)."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 3, stride, padding=1, output_padding=stride - 1),
                         nn.GroupNorm(groups, out_channels), nn.LeakyReLU(0.2))


def moment_matrix(k: int) -> Tensor:
    """M [k, k] in float64 with M[i, j] = (j - (k - 1) // 2)^i / i!: ``M K M^T`` holds the moments of a k x k
    kernel K (the authors' ``K2M``)."""
    offsets = torch.arange(k, dtype=torch.float64) - (k - 1) // 2
    return torch.stack([offsets**i / math.factorial(i) for i in range(k)])


class PhyCell(nn.Module):
    """PhyCell (paper Sec. 3.2), one layer as the authors use it. With E(u_t) the encoded frame and H the state::

        H~ = H + Phi(H)                                  prediction: Phi = conv k x k -> GroupNorm -> conv 1x1
        K  = sigmoid(conv([E(u_t), H]))                  the gain
        H' = H~ + K o (E(u_t) - H~)                      correction by the observation

    Phi's first convolution has k^2 filters per input channel, constrained by :meth:`moment_loss`.
    Shapes: x, h [B, C, h, w].
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        filters = kernel_size**2
        # GroupNorm(7, 49) in the authors' code: k groups of k filters.
        self.physics = nn.Sequential(nn.Conv2d(channels, filters, kernel_size, padding=kernel_size // 2),
                                     nn.GroupNorm(kernel_size, filters), nn.Conv2d(filters, channels, 1))
        self.gain = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        gain = torch.sigmoid(self.gain(torch.cat([x, h], dim=1)))
        predicted = h + self.physics(h)
        return predicted + gain * (x - predicted)

    def moment_loss(self) -> Tensor:
        """Sum over input channels b of MSE(moments of the k^2 filters W[:, b], the k^2 one-hot k x k matrices),
        the constraint that makes filter 7i + j approximate d^(i+j) / dx^i dy^j. The moments are computed in
        float64 (as the authors' code), the error in the weights' precision (float32 or wider)."""
        weight = self.physics[0].weight  # [k^2, C, k, k]
        k = weight.shape[-1]
        m = moment_matrix(k).to(weight.device)
        moments = m @ weight.double().transpose(0, 1) @ m.T  # [C, k^2, k, k]
        moments = moments.to(torch.promote_types(weight.dtype, torch.float32))
        constraints = torch.eye(k * k, dtype=moments.dtype, device=moments.device).view(k * k, k, k)
        return (moments - constraints).square().mean(dim=(1, 2, 3)).sum()


class ConvLSTMCell(nn.Module):
    """The ConvLSTM of PhyDNet's residual branch: one biased convolution of [X, H] gives the gates
    i, f, o, g, in that order; no forget bias and no peepholes (unlike vpbench's ``convlstm`` cell)::

        C' = sigma(f) o C + sigma(i) o tanh(g),   H' = sigma(o) o tanh(C')

    Shapes: x [B, C_in, h, w]; h, c [B, M, h, w].
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class PhyDNet(nn.Module):
    """PhyDNet: image encoder E, physical (PhyCell) and residual (ConvLSTM) branches, image decoder D.

    ``forward(frames, horizon)`` honours the contract. For training, ``forward(frames, horizon, targets=...,
    teacher_forcing=..., all_frames=True)`` returns the predictions of frames 2..T_in+horizon [B, T_in+horizon-1,
    C, H, W]; with ``teacher_forcing`` each future step reads the true previous frame. Frames whose sides do
    not divide by ``patch_size`` are replicate-padded and the predictions cropped.
    Shapes: frames [B, T_in, C, H, W], targets [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 4,
                 width: int = 32, convlstm_hidden: Sequence[int] = (128, 128, 64), phycell_kernel: int = 7,
                 norm_groups: int = 16) -> None:
        super().__init__()
        latent = 2 * width
        _check_options(patch_size, width, latent, list(convlstm_hidden), phycell_kernel, norm_groups)
        self.patch_size = patch_size
        self.encoder = nn.Sequential(conv_block(in_channels, width, 2, norm_groups),  # E: down by patch_size
                                     conv_block(width, width, 1, norm_groups),
                                     conv_block(width, latent, patch_size // 2, norm_groups))
        self.physics_encoder = nn.Sequential(*(conv_block(latent, latent, 1, norm_groups) for _ in range(2)))
        self.residual_encoder = nn.Sequential(*(conv_block(latent, latent, 1, norm_groups) for _ in range(2)))
        self.phycell = PhyCell(latent, phycell_kernel)
        sizes = [latent, *convlstm_hidden]
        self.convlstm = nn.ModuleList(ConvLSTMCell(sizes[i], sizes[i + 1]) for i in range(len(convlstm_hidden)))
        self.physics_decoder = nn.Sequential(*(upconv_block(latent, latent, 1, norm_groups) for _ in range(2)))
        self.residual_decoder = nn.Sequential(*(upconv_block(latent, latent, 1, norm_groups) for _ in range(2)))
        self.decoder = nn.Sequential(upconv_block(latent, width, 2, norm_groups),  # D: up by patch_size
                                     upconv_block(width, width, 1, norm_groups),
                                     nn.ConvTranspose2d(width, in_channels, 3, patch_size // 2, padding=1,
                                                        output_padding=patch_size // 2 - 1))

    def step(self, frame: Tensor, state: Latent | None) -> tuple[Tensor, Latent]:
        """One time step: the prediction of the next frame [B, C, H, W] from ``frame`` and the state (None: zeros)."""
        z = self.encoder(frame)
        physical, residual = self.physics_encoder(z), self.residual_encoder(z)
        if state is None:
            zeros = [residual.new_zeros(residual.shape[0], c.hidden, *residual.shape[2:]) for c in self.convlstm]
            state = (torch.zeros_like(physical), [(z, z) for z in zeros])
        h_phys = self.phycell(physical, state[0])
        layers, x = [], residual
        for cell, (h, c) in zip(self.convlstm, state[1]):
            h, c = cell(x, h, c)
            layers.append((h, c))
            x = h
        decoded = self.physics_decoder(h_phys) + self.residual_decoder(x)
        return torch.sigmoid(self.decoder(decoded)), (h_phys, layers)

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None, teacher_forcing: bool = False,
                all_frames: bool = False) -> Tensor:
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        if teacher_forcing and (targets is None or targets.shape[1] < horizon - 1):
            raise UserError("teacher forcing needs the true future frames: targets [B, horizon, C, H, W]")
        height, width = frames.shape[-2:]
        x = pad_to_multiple(frames.flatten(0, 1), self.patch_size).unflatten(0, frames.shape[:2])
        preds, state = [], None
        for t in range(x.shape[1] - 1):  # the input frames 1..T_in-1 read in turn, each predicting the next
            out, state = self.step(x[:, t], state)
            preds.append(out)
        frame = x[:, -1]
        for t in range(horizon):  # the future, from the last input frame
            frame, state = self.step(frame, state)
            preds.append(frame)
            if teacher_forcing and t + 1 < horizon:
                frame = pad_to_multiple(targets[:, t], self.patch_size)
        out = torch.stack(preds, dim=1)[..., :height, :width]
        return out if all_frames else out[:, -horizon:]


def _check_options(patch_size: int, width: int, latent: int, hidden: list[int], kernel: int, groups: int) -> None:
    if patch_size not in PATCH_SIZES:
        raise UserError(f"PhyDNet's patch_size (its encoder's down-sampling) must be 2 or 4, got {patch_size}")
    if width < 1 or groups < 1 or width % groups:
        raise UserError(f"PhyDNet's width ({width}) must be a positive multiple of norm_groups ({groups})")
    if not hidden or hidden[-1] != latent:
        raise UserError(f"PhyDNet's last ConvLSTM layer must have 2 x width = {latent} channels (its state is "
                        f"decoded like PhyCell's), got convlstm_hidden={hidden}")
    if kernel < 1 or kernel % 2 != 1:
        raise UserError(f"phycell_kernel must be odd, got {kernel}")


def teacher_forcing_ratio(step: int, train: Mapping[str, Any]) -> float:
    """The probability that a batch is trained with teacher forcing at optimiser step ``step``: falling
    linearly by ``sampling_changing_rate`` per step (``train.sampling: linear``), 0 from ``sampling_stop_iter``
    on; 0 without a schedule."""
    return sampling_probabilities(step, train)[1] if train.get("sampling", "none") == "linear" else 0.0


@register_loss("phydnet")
def phydnet_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                 context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """The authors' objective: in training, the sum over every predicted frame (inside the input window too) of
    its MSE, plus PhyCell's moment loss, with teacher forcing of the whole batch with probability
    :func:`teacher_forcing_ratio`; in evaluation, the MSE of the predicted frames."""
    context = context or LossContext()
    horizon = targets.shape[1]
    if not model.training:
        pred = model(inputs, horizon)
        with full_precision(pred.device):
            return F.mse_loss(wide(pred), wide(targets)), pred
    forced = bool(draw_uniform(()) < teacher_forcing_ratio(context.step, context.train))
    out = model(inputs, horizon, targets=targets, teacher_forcing=forced, all_frames=True)
    truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    phycell = getattr(model, "module", model).phycell  # under DDP the model is wrapped
    with full_precision(out.device):
        per_step = (wide(out) - wide(truth)).square().mean(dim=(0, 2, 3, 4))
        loss = per_step.sum() + phycell.moment_loss()
    return loss, out[:, -horizon:].detach()


# OpenSTL's PhyDNet (configs/mmnist/PhyDNet.py: patch_size 4; the rest hard-coded as in the authors' code).
FULL = {"patch_size": 4, "width": 32, "convlstm_hidden": [128, 128, 64], "phycell_kernel": 7, "norm_groups": 16}
PHYDNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    # A 2-core CPU: a quarter of the widths, PhyCell's 7x7 moments kept.
    "quick": {"patch_size": 4, "width": 8, "convlstm_hidden": [16, 16], "phycell_kernel": 7, "norm_groups": 8},
    "tiny": {"patch_size": 4, "width": 4, "convlstm_hidden": [8], "phycell_kernel": 3, "norm_groups": 4},
}
PHYDNET_PRESETS.update({"openstl-quick": PHYDNET_PRESETS["quick"], "openstl-tiny": PHYDNET_PRESETS["tiny"]})

# Teacher forcing: the authors' ratio 1 - 0.003 * epoch, stepped per optimiser step over OpenSTL's Moving MNIST
# epoch of 625 steps (0.003 / 625 per step; 0.403 after 200 epochs, 0 at epoch 334); the smaller presets reach the
# same 0.403 at the end of their runs (100 and 4 steps). The quick scale peaks at lr 1e-2: its 100 steps at 3e-3
# left PhyDNet behind persistence on Moving MNIST (test MSE 5089 against 4528; 2557 at 1e-2).
TEACHER_FORCING = {"full": (1.0e-3, 0.003 / 625), "quick": (1.0e-2, 0.006), "tiny": (3.0e-3, 0.15)}


def phydnet_recipe(preset: str) -> dict[str, Any]:
    """Adam (weight decay 0) with OpenSTL's one-cycle schedule per step at lr 1e-3 (the authors: Adam at 1e-3,
    reduced on plateaus), batch 16, the ``phydnet`` loss with its teacher-forcing schedule."""
    scale = presets.get(preset).scale
    lr, rate = TEACHER_FORCING[scale]
    openstl = presets.NAMES[("openstl", scale)]
    recipe = {**presets.protocol_recipe(openstl), "loss": "phydnet", "lr": lr, "sampling": "linear",
              "sampling_changing_rate": rate, "sampling_stop_iter": math.ceil(1 / rate)}
    return {**recipe, "batch_size": 16} if preset == "paper" else recipe


PUBLISHED = {"params": 3.1e6, "flops": 15.3e9, "fps": 182}  # OpenSTL's count (its FLOPs trace the training forward)
register_model(
    "phydnet", label="PhyDNet", tags=("openstl",), rank=120, defaults=PHYDNET_PRESETS,
    recipe={preset: phydnet_recipe(preset) for preset in presets.PRESETS},
    references={"openstl-mmnist-200": {"mse": 28.19, "mae": 78.64, "ssim": 0.9374, "psnr": 22.62, **PUBLISHED},
                "openstl-mmnist-2000": {"mse": 20.35, "mae": 61.47, "ssim": 0.9559, "psnr": 24.21, **PUBLISHED}},
)(PhyDNet)
