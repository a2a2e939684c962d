"""TinyConv: a small CNN that predicts the next frame from the last two, rolled out ``horizon`` times.

An example of a model benchmarked with vpbench from its own package: ``@register_model`` declares
its name, defaults per preset and training recipe exactly as vpbench's built-in models do, and the
``vpbench.models`` entry point in ``pyproject.toml`` makes ``bench`` find it once installed.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from vpbench.models import register_model

__version__ = "0.1.0"


class TinyConv(nn.Module):
    """Next frame = sigmoid(CNN(last ``context`` frames stacked on channels)), autoregressively."""

    def __init__(self, in_channels: int, context: int, hidden: int) -> None:
        super().__init__()
        self.context = context
        self.net = nn.Sequential(
            nn.Conv2d(in_channels * context, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, in_channels, 3, padding=1),
        )

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> [B, horizon, C, H, W] in [0, 1]."""
        window = list(frames[:, -self.context :].unbind(1))
        for _ in range(horizon):
            window.append(torch.sigmoid(self.net(torch.cat(window[-self.context :], dim=1))))
        return torch.stack(window[len(window) - horizon :], dim=1)


@register_model(
    "tinyconv",
    label="TinyConv (example)",
    tags=("example",),
    defaults={"paper": {"hidden": 64}, "quick": {"hidden": 32}, "tiny": {"hidden": 8}},
    recipe="paper",  # the preset's recipe of the paper's models; or a dict of train options
)
def tinyconv(*, in_channels: int = 1, input_frames: int = 10, context: int = 2, hidden: int = 32) -> TinyConv:
    """vpbench passes the dataset's ``in_channels`` and ``input_frames``, the preset's ``hidden`` and
    any ``--set model.KEY=VALUE``."""
    return TinyConv(in_channels, min(context, input_frames), hidden)
