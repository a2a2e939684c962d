"""PredNet (Lotter, Kreiman & Cox, *Deep Predictive Coding Networks for Video Prediction and Unsupervised
Learning*, ICLR 2017), as OpenSTL v0.3.0 builds and trains it (``openstl/models/prednet_model.py``,
``openstl/methods/prednet.py``; the authors' Keras code, coxlab/prednet, ported).

A stack of L layers. Layer l holds a representation R_l (a ConvLSTM), a prediction Ahat_l of its target A_l and
the error E_l between them. One time step (paper Eq. 1-4, Algorithm 1), from the top layer down::

    R_l  = ConvLSTM([R_l, E_l, Upsample(R_{l+1})])     gates i, f, o: Keras' hard sigmoid clip(0.2 x + 0.5, 0, 1)
                                                     (no peepholes); candidate and output: tanh; the upsampled
                                                     R_{l+1} (nearest, x2) is the new one, E_l the previous step's

then from the bottom up::

    A_0 = the frame,  Ahat_l = ReLU(conv(R_l))         (Ahat_0 clipped at 1: the frame predicted)
    E_l = [ReLU(Ahat_l - A_l), ReLU(A_l - Ahat_l)]      A_{l+1} = MaxPool2(ReLU(conv(E_l)))

Ahat_0 of step t predicts frame t from the frames before it. Past the input frames the model extrapolates:
step t reads the prediction of the step before as its frame (so the error of a future step compares two of the
model's own predictions), as OpenSTL's ``extrapolation=True`` and the authors' ``extrap_start_time``.

Training (loss ``prednet``, OpenSTL's ``TrainLossCalculator``): every frame of the sequence, input and target, is
read (no extrapolation), and the loss is the mean over the steps but the first of the layer-weighted errors,
sum_l w_l mean(E_l) with w_0 = 1 and w_l = ``upper_layer_weight`` (OpenSTL's ``weight_mode``: 0 is ``L_0``, the
configurations' choice; 0.1 is ``L_all``), averaged over the batch. In evaluation the loss is the MSE of the
extrapolated frames, as OpenSTL validates.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.registry import register_model

State = tuple[list[Tensor], list[Tensor], list[Tensor], Tensor]  # R, C, E of every layer; the last prediction


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras' hard sigmoid, clip(0.2 x + 0.5, 0, 1) (not torch's, whose slope is 1/6)."""
    return (0.2 * x + 0.5).clamp(0, 1)


class PredNet(nn.Module):
    """PredNet's stack of ``1 + len(widths)`` layers: layer 0's target is the frame (``in_channels``), layer l's
    has ``widths[l - 1]`` channels at 1/2^l of the frame's size, and its representation as many (OpenSTL's
    ``R_stack_sizes = stack_sizes``).

    ``forward(frames, horizon)`` honours the contract; with ``every_step=True`` it returns the predictions of the
    input frames but the first too, [B, T_in - 1 + horizon, C, H, W] (the extrapolation fine-tuning's outputs).
    ``forward(frames, horizon, targets=...)`` reads the targets too (training) and returns the predictions of the
    target frames, each made from the true frames before it [B, horizon, C, H, W], and every step's errors,
    mean(E_l) per layer [B, T_in + horizon, L].
    Frames whose sides do not divide by 2^(L-1) are replicate-padded and the predictions cropped.
    """

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64),
                 widths: Sequence[int] = (32, 64, 128, 256), kernel_size: int = 3,
                 upper_layer_weight: float = 0.0) -> None:
        super().__init__()
        _check_options(list(widths), kernel_size, upper_layer_weight)
        channels = [in_channels, *widths]
        self.levels = len(channels)
        self.upper_layer_weight = upper_layer_weight
        pad = kernel_size // 2
        # gates[l]: the ConvLSTM's four gates i, f, c, o (in that order) from [R_l, E_l, Upsample(R_{l+1})]
        self.gates = nn.ModuleList(
            nn.Conv2d(3 * c + (channels[l + 1] if l + 1 < self.levels else 0), 4 * c, kernel_size, padding=pad)
            for l, c in enumerate(channels))
        self.predictions = nn.ModuleList(nn.Conv2d(c, c, kernel_size, padding=pad) for c in channels)  # R_l -> Ahat_l
        self.targets = nn.ModuleList(nn.Conv2d(2 * c, channels[l + 1], kernel_size, padding=pad)  # E_l -> A_{l+1}
                                     for l, c in enumerate(channels[:-1]))
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.zeros_(conv.bias)  # as OpenSTL

    def initial_state(self, frame: Tensor) -> State:
        """Zeros for R, C and E of every layer and for the last prediction; frame [B, C, H, W]."""
        b, _, h, w = frame.shape
        sizes = [(conv.out_channels // 4, h >> l, w >> l) for l, conv in enumerate(self.gates)]
        r = [frame.new_zeros(b, c, y, x) for c, y, x in sizes]
        return r, [torch.zeros_like(z) for z in r], [frame.new_zeros(b, 2 * c, y, x) for c, y, x in sizes], \
            torch.zeros_like(frame)

    def step(self, frame: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step: Ahat_0 [B, C, H, W], the prediction of ``frame`` made before reading it, and the new
        state (whose last prediction is Ahat_0)."""
        r_prev, c_prev, e_prev, _ = state
        r, c = [None] * self.levels, [None] * self.levels
        for l in reversed(range(self.levels)):
            inputs = [r_prev[l], e_prev[l]]
            if l + 1 < self.levels:
                inputs.append(F.interpolate(r[l + 1], scale_factor=2, mode="nearest"))
            i, f, g, o = self.gates[l](torch.cat(inputs, dim=1)).chunk(4, dim=1)
            c[l] = hard_sigmoid(f) * c_prev[l] + hard_sigmoid(i) * torch.tanh(g)
            r[l] = hard_sigmoid(o) * torch.tanh(c[l])
        errors, target = [], frame
        for l in range(self.levels):
            predicted = F.relu(self.predictions[l](r[l]))
            if l == 0:
                predicted = predicted.clamp(max=1.0)
                frame_prediction = predicted
            errors.append(torch.cat([F.relu(predicted - target), F.relu(target - predicted)], dim=1))
            if l + 1 < self.levels:
                target = F.max_pool2d(F.relu(self.targets[l](errors[l])), 2)
        return frame_prediction, (r, c, errors, frame_prediction)

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None, every_step: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        t_in, (height, width) = frames.shape[1], frames.shape[-2:]
        x = frames if targets is None else torch.cat([frames, targets[:, :horizon]], dim=1)
        x = pad_to_multiple(x.flatten(0, 1), 2 ** (self.levels - 1)).unflatten(0, x.shape[:2])
        state = self.initial_state(x[:, 0])
        preds, errors = [], []
        for t in range(t_in + horizon):
            frame = x[:, t] if t < x.shape[1] else state[3]  # extrapolating: the previous step's prediction
            pred, state = self.step(frame, state)
            preds.append(pred)
            errors.append(torch.stack([e.mean(dim=(1, 2, 3)) for e in state[2]], dim=1))
        out = torch.stack(preds[1 if every_step else t_in:], dim=1)[..., :height, :width]
        return out if targets is None else (out, torch.stack(errors, dim=1))


def _check_options(widths: list[int], kernel_size: int, upper_layer_weight: float) -> None:
    if any(w < 1 for w in widths):
        raise UserError(f"PredNet's widths must be positive channel counts, got {widths}")
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise UserError(f"kernel_size must be odd to keep the frame size, got {kernel_size}")
    if upper_layer_weight < 0:
        raise UserError(f"upper_layer_weight weighs the errors of the layers above the frame; it must be >= 0 "
                        f"(0: OpenSTL's L_0, 0.1: L_all), got {upper_layer_weight}")


@register_loss("prednet")
def prednet_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                 context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """In training, OpenSTL's PredNet loss: with e [B, T, L] the errors of every step read from the true frames,
    sum_l w_l e[b, t, l] averaged over the steps t >= 1 and the batch (w_0 = 1, w_l = ``upper_layer_weight``);
    returns the next-frame predictions of the targets. In evaluation, the MSE of the extrapolated frames."""
    horizon = targets.shape[1]
    if not model.training:
        pred = model(inputs, horizon)
        with full_precision(pred.device):
            return F.mse_loss(wide(pred), wide(targets)), pred
    pred, errors = model(inputs, horizon, targets=targets)
    upper = getattr(model, "module", model).upper_layer_weight  # under DDP the model is wrapped
    with full_precision(errors.device):
        errors = wide(errors)
        weights = torch.full((errors.shape[-1],), upper, dtype=errors.dtype, device=errors.device)
        weights[0] = 1.0
        loss = (errors[:, 1:] * weights).sum(dim=2).mean()
    return loss, pred.detach()


@register_loss("prednet_extrap")
def prednet_extrap_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                        context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """In training, the authors' extrapolation fine-tuning objective (coxlab/prednet ``kitti_extrap_finetune.py``,
    ``extrap_loss``): the model reads the input frames and extrapolates the targets from its own predictions
    (``extrap_start_time`` = T_in), and the loss is 0.5 x the mean absolute error of every prediction but the
    first frame's, [frames 1 .. T_in + horizon - 1]. Returns the extrapolated targets' predictions. In evaluation,
    the MSE of the extrapolated frames, as :func:`prednet_loss`."""
    if not model.training:
        return prednet_loss(model, inputs, targets, context)
    horizon = targets.shape[1]
    pred = model(inputs, horizon, every_step=True)
    truth = torch.cat([inputs[:, 1:], targets], dim=1)
    with full_precision(pred.device):
        loss = 0.5 * (wide(pred) - wide(truth)).abs().mean()
    return loss, pred[:, -horizon:].detach()


# OpenSTL's configs/*/PredNet.py: stack_sizes (C, 32, 64, 128, 256), every filter 3 x 3, weight_mode L_0.
FULL = {"widths": [32, 64, 128, 256], "kernel_size": 3, "upper_layer_weight": 0.0}
PREDNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {**FULL, "widths": [16, 32]},
    "tiny": {**FULL, "widths": [4]},
}
PREDNET_PRESETS.update({"openstl-quick": PREDNET_PRESETS["quick"], "openstl-tiny": PREDNET_PRESETS["tiny"]})
QUICK_LR = 3.0e-3


def prednet_recipe() -> dict[str, dict[str, Any]]:
    """Every preset: OpenSTL's (configs/mmnist/PredNet.py): the ``prednet`` loss, Adam with the one-cycle schedule
    stepped per batch, peak lr 1e-4, batch 16; the smaller scales peak at :data:`QUICK_LR`. The quick scale trains
    on the authors' extrapolation fine-tuning objective (``prednet_extrap``) instead: measured on Moving MNIST
    (README: PredNet, CrevNet and WaST), 600 steps of the next-frame loss leave a model whose extrapolation is
    a black frame (pixel std 0.000 of the truth's)."""
    recipes = {}
    for scale, lr in (("full", 1.0e-4), ("quick", QUICK_LR), ("tiny", QUICK_LR)):
        openstl = presets.NAMES[("openstl", scale)]
        loss = "prednet_extrap" if scale == "quick" else "prednet"
        recipe = {**presets.protocol_recipe(openstl), "loss": loss, "lr": lr}
        recipes[openstl] = recipe
        recipes[presets.NAMES[("srvp", scale)]] = {**recipe, "batch_size": 16} if scale == "full" else recipe
    return recipes


# OpenSTL v0.3.0's tables (docs/en/model_zoos/video_benchmarks.md; its KittiCaltech and Moving MNIST-CIFAR rows are
# in those datasets' files). MSE and MAE per frame summed over pixels on [0, 1]. Its FLOPs are not one count:
# OpenSTL's own trace of one step (its dummy input is one frame) gives 0.84 G at 64 x 64, where it publishes 8.6 G.
PUBLISHED = {"params": 12.5e6, "flops": 8.6e9, "fps": 659}
REFERENCES = {
    "openstl-mmnist-200": {"mse": 161.38, "mae": 201.16, "ssim": 0.7783, "psnr": 14.33, **PUBLISHED},
    "openstl-mmnist-2000": {"mse": 31.85, "mae": 90.01, "ssim": 0.9273, "psnr": 21.85, **PUBLISHED},
    "openstl-kth-100": {"mse": 152.11, "mae": 783.1, "ssim": 0.8094, "psnr": 22.45, "params": 12.5e6,
                        "flops": 3.4e9, "fps": 399},
    "openstl-human36m-50": {"mse": 261.9, "mae": 1625.3, "ssim": 0.9786, "psnr": 31.76, "params": 12.5e6,
                            "flops": 13.7e9, "fps": 176},
}
register_model("prednet", label="PredNet", tags=("openstl",), rank=205, defaults=PREDNET_PRESETS,
               recipe=prednet_recipe(), references=REFERENCES)(PredNet)
