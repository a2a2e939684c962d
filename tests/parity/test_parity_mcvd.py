"""Parity of MCVD's denoiser and training loss with its authors' code, in float64 (golden file: tools/golden/mcvd.py).

``mcvd.pt``: the authors' ``UNetMore_DDPM`` (NCSN++ with BigGAN blocks, concat conditioning) at 1 x 16 x 16 frames,
2 past frames and blocks of 2, ngf 4, ch_mult (1, 2), 2 residual blocks, 2-head attention at 8 x 8, 10 steps. vpbench's
model loads its weights through the package's mapping (:mod:`vpbench.reference.mappings.mcvd`) and must give the same
noise predictions at three steps, and, with the authors' training steps and noise injected, the same denoising loss
and the same gradient of every parameter, to 1e-10. Its parameters at the authors' SMMNIST, KTH and BAIR
configurations equal theirs, and so does its noise schedule (betas and alpha-bars).
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped

from vpbench import config as cfg
from vpbench.metrics.cost import count_params
from vpbench.models import build_model, create
from vpbench.reference.mappings import mapping_for

pytestmark = pytest.mark.usefixtures("one_thread")


def mapped(golden: Mapping) -> tuple[torch.nn.Module, object]:
    model = create("mcvd", **golden["config"]["vpbench"]).double()
    weights = mapping_for("mcvd", "mcvd")(golden["state_dict"], model.state_dict(), {})
    load_mapped(model, weights, golden["state_dict"])
    return model, weights


def test_noise_predictions_equal_the_authors():
    golden = load_golden("mcvd")
    model, _ = mapped(golden)
    frames = golden["config"]["vpbench"]["block_frames"]
    noisy = golden["noisy"].view(len(golden["noisy"]), frames, 1, 16, 16)
    past = golden["past"].view(len(golden["past"]), -1, 1, 16, 16)
    with torch.no_grad():
        out = model.eval().noise_prediction(noisy, golden["steps"], past)
    assert_close(out.flatten(1, 2), golden["outputs"], "noise prediction")


def test_denoising_loss_and_gradients_equal_the_authors():
    golden = load_golden("mcvd")
    model, weights = mapped(golden)
    loss, _ = model.train().denoising_loss(golden["clip"], steps=golden["loss_steps"], noise=golden["noise"])
    assert_close(loss, golden["loss"], "loss")
    loss.backward()
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))


# The data of each published configuration: channels, past frames, future frames (their num_frames_pred).
PUBLISHED_DATA = {"smmnist": (1, 5, 20), "kth": (1, 10, 20), "bair": (3, 2, 28)}


@pytest.mark.parametrize("config", sorted(PUBLISHED_DATA))
def test_parameters_at_the_authors_published_configurations_equal_theirs(config):
    channels, past, future = PUBLISHED_DATA[config]
    with torch.device("meta"):
        model = create("mcvd", preset="paper", config=config, in_channels=channels, img_size=64, input_frames=past,
                       output_frames=future)
    assert count_params(model) == load_golden("mcvd")["params"][config]


def test_the_paper_preset_on_moving_mnist_is_the_authors_smmnist_model():
    with torch.device("meta"):
        model = build_model(cfg.resolve("paper", "mcvd", "mmnist"))
    assert count_params(model) == load_golden("mcvd")["params"]["smmnist"] == 27_941_765


def test_noise_schedule_equals_the_authors():
    """The 10 linear steps' betas, alpha-bars and next steps' alpha-bars: the training and sampling coefficients."""
    golden = load_golden("mcvd")
    model = create("mcvd", **golden["config"]["vpbench"])
    for name in ("betas", "alphas", "alphas_prev"):
        assert_close(getattr(model, name), golden["schedule"][name], name)
