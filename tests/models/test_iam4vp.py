"""IAM4VP: its step embedding, its autoregressive use of the mask tokens and earlier predictions, recipes and
options. Its contract and horizons are tested with the other RNN-free models (tests/models/test_simvp_mimovp.py),
its fidelity to the authors' code in tests/parity/test_parity_iam4vp.py."""
from __future__ import annotations

import math

import pytest
import torch

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.models import create, get_entry
from vpbench.models.iam4vp import step_embedding

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("iam4vp", preset="tiny", **{"in_channels": 1, "input_frames": 3, "img_size": (8, 8), **overrides})


def test_registered_as_an_rnn_free_model_with_the_papers_moving_mnist_mse():
    entry = get_entry("iam4vp")
    assert (entry.label, entry.tags) == ("IAM4VP", {"rnn-free"})
    assert entry.references == {"iam4vp-mmnist": {"mse": 16.9}}


def test_step_embedding_is_sine_then_cosine_of_geometric_frequencies():
    emb = step_embedding(torch.tensor([0.0, 100.0], dtype=torch.float64), 8)
    assert emb.shape == (2, 8)
    assert emb[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    freqs = [10000 ** (-i / 3) for i in range(4)]  # from 1 down to 1e-4
    assert emb[1].tolist() == pytest.approx([math.sin(100 * f) for f in freqs] + [math.cos(100 * f) for f in freqs])


def test_frame_s_trains_the_mask_tokens_from_s_on_and_earlier_predictions_enter_detached():
    model = tiny()
    frames = torch.rand(2, 3, 1, 8, 8)
    model(frames, 3)[:, 2].square().sum().backward()  # the last frame's loss only
    token_grads = model.mask_tokens.grad.flatten(1).abs().sum(1)
    assert token_grads[:2].eq(0).all() and token_grads[2] > 0  # tokens 0 and 1 replaced by predictions at step 2
    assert any(p.grad.abs().sum() > 0 for p in model.feedback_encoder.parameters())
    model.zero_grad()
    model(frames, 3)[:, 0].square().sum().backward()  # step 0 reads no prediction
    assert all(p.grad is None or not p.grad.any() for p in model.feedback_encoder.parameters())
    assert model.mask_tokens.grad.flatten(1).abs().sum(1).gt(0).all()


def test_the_translator_reads_the_step_embedding():
    model = tiny().eval()
    frames = torch.rand(1, 3, 1, 8, 8)
    with torch.no_grad():
        for block in model.translator:
            block.layer_scale.fill_(1.0)  # from 1e-6, the blocks' branch would hide the change
        before = model(frames, 1)
        model.time_mlp[2].bias.add_(1.0)  # every step's embedding shifted
        assert not torch.allclose(model(frames, 1), before)


def test_the_recipe_is_the_authors_and_the_paper_preset_their_configuration():
    train = cfg.resolve("paper", "iam4vp", "mmnist")["train"]
    assert {k: train[k] for k in ("loss", "optimizer", "scheduler", "lr", "batch_size")} == {
        "loss": "mse", "optimizer": "adam", "scheduler": "onecycle", "lr": 1e-3, "batch_size": 16}
    model = cfg.resolve("paper", "iam4vp", "mmnist")["model"]
    assert {k: model[k] for k in ("hidden", "spatial_layers", "blocks", "time_dim", "readout_dim")} == {
        "hidden": 64, "spatial_layers": 4, "blocks": 8, "time_dim": 64, "readout_dim": 64}


def test_bad_options_and_inputs_are_user_errors():
    with pytest.raises(UserError, match="even time_dim"):
        tiny(time_dim=5)
    with pytest.raises(UserError, match="reads 3 frames at a time"):
        tiny()(torch.rand(1, 4, 1, 8, 8), 2)
    with pytest.raises(UserError, match="built for frames of 8 x 8"):
        tiny()(torch.rand(1, 3, 1, 16, 8), 2)
