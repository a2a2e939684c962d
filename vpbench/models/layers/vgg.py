"""VGG feature stacks (torchvision's ``vgg16().features`` / ``vgg19().features`` layouts, so that their state dicts
load as they are) and DMVFN's VGG-19 perceptual loss term, from weights the user gives.

Nothing here downloads weights: the user saves torchvision's ImageNet VGG (``torch.save(vgg19(weights=...)
.state_dict(), FILE)``) and names the file; it is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.store import load_tensors

VGG16_WIDTHS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG19_WIDTHS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg_features(widths: Sequence[int | str]) -> nn.Sequential:
    """Conv 3x3 + ReLU per width, a 2x2 max-pool per ``"M"``: torchvision's ``features`` indices."""
    layers: list[nn.Module] = []
    channels = 3
    for width in widths:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.ReLU()]
            channels = int(width)
    return nn.Sequential(*layers)


class VGGPerceptualTerm(nn.Module):
    """DMVFN's perceptual loss (the authors' ``loss/loss.py`` ``VGGPerceptualLoss``): frames normalised by ImageNet's
    mean and std, VGG-19 features after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1, and
    sum_k 0.1 w_k mean|phi_k(pred) - phi_k(truth)| with w = (1/2.6, 1/4.8, 1/3.7, 1/5.6, 10/1.5), the truth's features
    detached. One-channel frames are repeated to three. pred, truth [N, C, H, W] in [0, 1] -> a scalar. Frozen."""

    TAPS = (1, 6, 11, 20, 29)  # indices of the tapped ReLUs in ``vgg19().features``
    WEIGHTS = (1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5)
    SCALE = 0.1

    def __init__(self, state_dict: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.features = vgg_features(VGG19_WIDTHS)[: self.TAPS[-1] + 1]
        wanted = self.features.state_dict()
        found = {k.removeprefix("features."): v for k, v in state_dict.items() if k.removeprefix("features.") in wanted}
        missing = sorted(set(wanted) - set(found), key=lambda k: int(k.split(".")[0]))
        if missing or any(found[k].shape != wanted[k].shape for k in wanted):
            raise UserError("train.vgg_weights: not torchvision's VGG-19 weights (missing or misshapen "
                            f"{', '.join(missing[:3]) or 'tensors'}); save them with torch.save(torchvision.models."
                            "vgg19(weights='IMAGENET1K_V1').state_dict(), FILE)")
        self.features.load_state_dict(found)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: Tensor, truth: Tensor) -> Tensor:
        if pred.shape[1] not in (1, 3):
            raise UserError(f"train.vgg_weights: the VGG term needs frames of 1 or 3 channels, not {pred.shape[1]}; "
                            "set train.vgg_weights=null")
        x, y = (((f.expand(-1, 3, -1, -1) if f.shape[1] == 1 else f) - self.mean) / self.std for f in (pred, truth))
        y = y.detach()
        loss = pred.new_zeros(())
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i in self.TAPS:
                loss = loss + self.WEIGHTS[self.TAPS.index(i)] * self.SCALE * (x - y).abs().mean()
        return loss


_LOADED: dict[tuple[str, str, torch.dtype], VGGPerceptualTerm] = {}


def perceptual_term(path: str | Path, device: torch.device, dtype: torch.dtype) -> VGGPerceptualTerm:
    """The VGG-19 term of the weights at ``path`` on ``device`` (loaded once per process)."""
    key = (str(Path(path).expanduser().resolve()), str(device), dtype)
    if key not in _LOADED:
        file = Path(key[0])
        if not file.is_file():
            raise UserError(f"train.vgg_weights: no file {str(path)!r}; give torchvision's VGG-19 state dict "
                            "(torch.save(vgg19(weights='IMAGENET1K_V1').state_dict(), FILE))")
        state = load_tensors(file, "give torchvision's VGG-19 state dict saved with torch.save")
        if not isinstance(state, Mapping):
            raise UserError(f"train.vgg_weights: {file} holds a {type(state).__name__}, not a state dict")
        _LOADED[key] = VGGPerceptualTerm(state).to(device=device, dtype=dtype)
    return _LOADED[key]
