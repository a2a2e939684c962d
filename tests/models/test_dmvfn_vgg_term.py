"""DMVFN's VGG-19 perceptual term from the user's torchvision weights (``train.vgg_weights``), as the authors'
``VGGPerceptualLoss``: ImageNet-normalised frames, L1 of the features after relu1_1 .. relu5_1, weighted, x 0.1 each,
added to the Laplacian loss x 0.5."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import create
from vpbench.models.layers.vgg import VGG19_WIDTHS, VGGPerceptualTerm, perceptual_term

POOLS = (4, 9, 18, 27)  # torchvision vgg19().features' max-pools before relu5_1


def torchvision_vgg19_state() -> dict[str, torch.Tensor]:
    """A random state dict with torchvision's ``vgg19()`` keys (features and a classifier, as saved)."""
    gen = torch.Generator().manual_seed(0)
    state, index, channels = {}, 0, 3
    for width in VGG19_WIDTHS:
        if width == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=gen) * (2 / (9 * channels)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(width, generator=gen) * 0.01
        index, channels = index + 2, width
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


def written_out(state: dict[str, torch.Tensor], pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The authors' loss, layer by layer from torchvision's indices."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, y = ((f.repeat(1, 3, 1, 1) - mean) / std for f in (pred, truth))
    weights, loss, k = [1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10 / 1.5], 0.0, 0
    for i in range(30):
        if f"features.{i}.weight" in state:
            x, y = (F.conv2d(t, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1) for t in (x, y))
        elif i in POOLS:
            x, y = F.max_pool2d(x, 2), F.max_pool2d(y, 2)
        else:
            x, y = F.relu(x), F.relu(y)
        if i + 1 in (2, 7, 12, 21, 30):
            loss = loss + weights[k] * (x - y).abs().mean() * 0.1
            k += 1
    return loss


def test_the_term_is_the_authors_loss_on_torchvision_weights():
    state = torchvision_vgg19_state()
    gen = torch.Generator().manual_seed(1)
    pred, truth = torch.rand(2, 1, 32, 32, generator=gen), torch.rand(2, 1, 32, 32, generator=gen)
    term = VGGPerceptualTerm(state)
    torch.testing.assert_close(term(pred, truth), written_out(state, pred, truth), rtol=1e-5, atol=1e-7)
    assert not any(p.requires_grad for p in term.parameters())


def test_dmvfn_loss_adds_half_the_term_of_its_last_blocks_prediction(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision_vgg19_state(), path)
    torch.manual_seed(0)
    model = create("dmvfn", features=[8, 4], scales=[2, 1], routing_hidden=4, in_channels=1).train()
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(1, 2, 1, 32, 32, generator=gen), torch.rand(1, 2, 1, 32, 32, generator=gen)
    loss_fn = get_loss("dmvfn")
    torch.manual_seed(3)
    plain, _ = loss_fn(model, x, y, LossContext(0, {}))
    torch.manual_seed(3)
    with_vgg, _ = loss_fn(model, x, y, LossContext(0, {"vgg_weights": str(path)}))
    torch.manual_seed(3)
    blocks = model(x, 2, targets=y)
    truth = torch.cat([x, y], dim=1)[:, 2:]
    term = perceptual_term(path, torch.device("cpu"), torch.float32)
    expected = 0.5 * term(blocks[-1].flatten(0, 1), truth.flatten(0, 1))
    torch.testing.assert_close(with_vgg - plain, expected, rtol=1e-4, atol=1e-6)
    assert expected > 0
    with_vgg.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_bad_weights_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no file"):
        perceptual_term(tmp_path / "missing.pth", torch.device("cpu"), torch.float32)
    vgg16_like = {k: v for k, v in torchvision_vgg19_state().items() if not k.startswith("features.2")}
    with pytest.raises(UserError, match="not torchvision's VGG-19"):
        VGGPerceptualTerm(vgg16_like)
