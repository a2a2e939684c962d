"""TAU (Tan et al., "Temporal Attention Unit: Towards Efficient Spatiotemporal Predictive Learning", CVPR 2023):
OpenSTL's SimVP frame (:mod:`vpbench.models.layers.simvp_frame`) with the temporal attention translator
(``tau``), trained with MSE + 0.1 x its differential divergence regularisation (loss ``mse_ddr``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.simvp_frame import SimVPv2
from vpbench.models.registry import register_model
from vpbench.models.simvp2 import OPENSTL_LR, TRANSLATOR_REFERENCES, simvp2_presets, simvp2_recipe

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
    in evaluation the MSE alone, as OpenSTL validates; both on the unbounded output (``raw``), as OpenSTL's.
    The predictions returned are clamped to [0, 1] (and detached)."""
    pred = model(inputs, targets.shape[1], raw=True)
    with full_precision(pred.device):
        pred_wide, targets_wide = wide(pred), wide(targets)
        loss = F.mse_loss(pred_wide, targets_wide)
        if model.training:
            loss = loss + DDR_ALPHA * differential_divergence(pred_wide, targets_wide)
    return loss, pred.detach().clamp(0, 1)



register_model("tau", label="TAU", tags=("openstl", "rnn-free"), rank=220, defaults=simvp2_presets("tau"),
               recipe=simvp2_recipe("mse_ddr", OPENSTL_LR["tau"]), references=TRANSLATOR_REFERENCES["tau"])(SimVPv2)
