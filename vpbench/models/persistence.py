"""``persistence``: the zero-parameter baseline that repeats the last input frame."""
from __future__ import annotations

from torch import Tensor, nn

from vpbench.models.registry import register_model


class Persistence(nn.Module):
    """Predicts X_{t+k} = X_t for every k: the floor any trained model must beat."""

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """frames: [B, T_in, C, H, W] -> [B, horizon, C, H, W]."""
        return frames[:, -1:].expand(-1, horizon, -1, -1, -1).contiguous()


@register_model("persistence", label="Persistence", tags=("baseline",), rank=1000)
def persistence() -> Persistence:
    return Persistence()
