"""MCVD: its blocks (FIR resampling, step embedding, schedule), the denoising loss, the DDPM and DDIM samplers
against an oracle denoiser, the autoregressive rollout, registration and option errors."""
from __future__ import annotations

import pytest
import torch

from vpbench import config as cfg
from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import build_model, create, get_entry
from vpbench.models.layers.diffusion_blocks import fir_downsample, fir_upsample, linear_schedule, step_embedding

TINY = {"in_channels": 1, "img_size": 16, "input_frames": 4, "output_frames": 5, "cond_frames": 2, "block_frames": 2}


def test_fir_resampling_keeps_a_constant_inside_and_filters_a_pixel_with_1_3_3_1():
    ones = torch.ones(1, 1, 8, 8)
    assert torch.allclose(fir_downsample(ones)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    assert torch.allclose(fir_upsample(ones)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[..., 4, 4] = 64.0
    down = fir_downsample(impulse)[0, 0]  # output m reads inputs 2m-1 .. 2m+2 through taps 1 3 3 1 (over 8)
    assert torch.allclose(down[1:3, 1:3], torch.tensor([[1.0, 3.0], [3.0, 9.0]]))
    assert down.sum() == pytest.approx(16.0)  # a quarter of the pixels at the same level
    assert fir_upsample(impulse).sum() == pytest.approx(4 * 64.0)  # gain 4: the mean level is kept


def test_step_embedding_is_sin_then_cos_of_the_step_times_geometric_frequencies():
    emb = step_embedding(torch.tensor([0, 3]), 8)
    assert emb.shape == (2, 8)
    assert emb[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    frequencies = 10000 ** (-torch.arange(4) / 3)
    assert torch.allclose(emb[1], torch.cat([(3 * frequencies).sin(), (3 * frequencies).cos()]))


def test_the_schedule_runs_from_the_noisiest_step_to_the_cleanest():
    betas, alphas, alphas_prev = linear_schedule(10, 0.2, 0.01)
    assert betas[0] == pytest.approx(0.2) and betas[-1] == pytest.approx(0.01)
    assert alphas[-1] == pytest.approx(0.99) and alphas_prev[-1] == 1
    assert torch.allclose(alphas[:-1], alphas_prev[:-1] * (1 - betas[:-1]))


def test_the_loss_is_half_the_squared_noise_error_summed_over_pixels_and_averaged_over_the_batch(monkeypatch):
    model = create("mcvd", preset="tiny", **TINY).train()
    monkeypatch.setattr(model, "noise_prediction", lambda noisy, steps, past: torch.zeros_like(noisy))
    inputs, targets = torch.rand(3, 4, 1, 16, 16), torch.rand(3, 4, 1, 16, 16)
    torch.manual_seed(5)
    loss, x0 = get_loss("mcvd")(model, inputs, targets, LossContext())
    torch.manual_seed(5)
    torch.randint(0, 5, ())  # the window's start
    torch.randint(0, 100, (3,))  # the steps
    noise = torch.randn(3, 2, 1, 16, 16)
    assert loss.item() == pytest.approx(0.5 * noise.square().flatten(1).sum(1).mean().item(), rel=1e-6)
    assert x0.shape == (3, 2, 1, 16, 16) and x0.min() >= 0 and x0.max() <= 1


@pytest.mark.parametrize("rescaled", [True, False])
def test_the_denoiser_is_trained_on_the_block_noised_in_its_range(monkeypatch, rescaled):
    seen = []
    model = create("mcvd", preset="tiny", **TINY, rescaled=rescaled).train()
    monkeypatch.setattr(model, "noise_prediction",
                        lambda noisy, steps, past: seen.append((noisy, past)) or torch.zeros_like(noisy))
    clip, noise, steps = torch.rand(2, 4, 1, 16, 16), torch.randn(2, 2, 1, 16, 16), torch.tensor([0, 60])
    model.denoising_loss(clip, steps=steps, noise=noise)
    data = clip * 2 - 1 if rescaled else clip
    alpha = model.alphas[steps].view(-1, 1, 1, 1, 1).float()
    assert torch.allclose(seen[0][0], alpha.sqrt() * data[:, 2:] + (1 - alpha).sqrt() * noise, atol=1e-6)
    assert torch.equal(seen[0][1], data[:, :2])


def test_validation_is_the_seeded_denoising_loss_over_every_window_with_a_sampled_future(monkeypatch):
    """Validation picks the best checkpoint on the denoising loss (the same steps and noise at every call, no past
    masked), not on the MSE of one sampled future; the prediction returned is a sampled future."""
    model = create("mcvd", preset="tiny", **TINY, mask_past=0.5).eval()
    inputs, targets = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 5, 1, 16, 16)
    loss_fn = get_loss("mcvd")
    first, pred = loss_fn(model, inputs, targets, LossContext())
    again, other = loss_fn(model, inputs, targets, LossContext())
    assert first.item() == again.item() and pred.shape == targets.shape and not torch.equal(pred, other)
    seen = []
    monkeypatch.setattr(model, "noise_prediction",
                        lambda noisy, steps, past: seen.append(past) or torch.zeros_like(noisy))
    model.validation_loss(torch.cat([inputs, targets], dim=1))
    frames = model.to_model(torch.cat([inputs, targets], dim=1))
    assert len(seen) == 9 - 4 + 1  # windows of 2 past + 2 block frames
    assert all(torch.equal(past, frames[:, start : start + 2]) for start, past in enumerate(seen))


def test_masking_the_past_zeroes_whole_pasts_at_its_rate(monkeypatch):
    seen = []
    model = create("mcvd", preset="tiny", **TINY, mask_past=0.5).train()
    monkeypatch.setattr(model, "noise_prediction",
                        lambda noisy, steps, past: seen.append(past) or torch.zeros_like(noisy))
    model.denoising_loss(torch.rand(400, 4, 1, 16, 16) + 0.5)
    zeroed = (seen[0].flatten(1) == 0).all(dim=1).float()
    assert 0.4 < zeroed.mean() < 0.6 and (seen[0].flatten(1)[zeroed == 0] != 0).all()


@pytest.mark.parametrize("sampler, steps", [("ddpm", None), ("ddpm", 10), ("ddim", 5)])
def test_an_oracle_denoiser_samples_its_one_block(monkeypatch, sampler, steps):
    """When the data is one block x*, the exact noise is (x - sqrt(a) x*) / sqrt(1 - a): both samplers reach x*
    (up to MCVD's last denoising step, which moves it by 1 - sqrt(a_last))."""
    model = create("mcvd", preset="tiny", **TINY, sampler=sampler, sample_steps=steps).eval()
    target = torch.rand(2, 2, 1, 16, 16) * 2 - 1

    def oracle(noisy, step, past):
        alpha = model.alphas[step].view(-1, 1, 1, 1, 1).to(noisy.dtype)
        return (noisy - alpha.sqrt() * target) / (1 - alpha).sqrt()

    monkeypatch.setattr(model, "noise_prediction", oracle)
    torch.manual_seed(0)
    block = model.sample_block(torch.zeros(2, 2, 1, 16, 16))
    assert torch.allclose(block, target, atol=2e-3)


@pytest.mark.parametrize("rescaled", [True, False])
def test_the_rollout_conditions_each_block_on_the_last_frames_known_or_sampled(monkeypatch, rescaled):
    """The denoiser works on [-1, 1] (``rescaled``, the authors' default) or on the frames' own [0, 1]."""
    model = create("mcvd", preset="tiny", **TINY, rescaled=rescaled).eval()
    pasts = []

    def sample_block(past):
        pasts.append(past)
        return torch.full_like(past, float(len(pasts)) / 10)

    monkeypatch.setattr(model, "sample_block", sample_block)
    frames = torch.rand(1, 4, 1, 16, 16)
    out = model(frames, 5)
    assert out.shape == (1, 5, 1, 16, 16) and len(pasts) == 3
    assert torch.allclose(pasts[0], frames[:, 2:] * 2 - 1 if rescaled else frames[:, 2:])
    assert torch.allclose(pasts[1], torch.full_like(pasts[1], 0.1))
    assert torch.allclose(pasts[2], torch.full_like(pasts[2], 0.2))
    sampled = torch.tensor([0.1, 0.1, 0.2, 0.2, 0.3])
    assert torch.allclose(out[0, :, 0, 0, 0], (sampled + 1) / 2 if rescaled else sampled)


def test_frames_of_any_size_are_padded_to_the_unets_multiple_and_cropped_back():
    model = create("mcvd", preset="tiny", in_channels=3, img_size=(10, 14), input_frames=3, output_frames=2).eval()
    assert (model.cond_frames, model.block_frames) == (3, 2)  # the default 5 lowered to the data's
    with torch.no_grad():
        assert model(torch.rand(1, 3, 3, 10, 14), 3).shape == (1, 3, 3, 10, 14)


def test_registration_and_sampling_are_seeded_and_stochastic():
    entry = get_entry("mcvd")
    assert entry.stochastic and not get_entry("persistence").stochastic
    model = build_model(cfg.resolve("tiny", "mcvd", "mmnist")).eval()
    frames = torch.rand(1, 10, 1, 64, 64)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(frames, 10)
        torch.manual_seed(1)
        again = model(frames, 10)
        other = model(frames, 10)
    assert first.shape == (1, 10, 1, 64, 64) and torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("config, frames", [("smmnist", (5, 5)), ("kth", (10, 5)), ("bair", (2, 5))])
def test_a_configuration_sets_the_network_and_frame_counts_and_given_options_win(config, frames):
    with torch.device("meta"):
        model = create("mcvd", preset="paper", config=config, input_frames=10, output_frames=20)
        assert (model.cond_frames, model.block_frames) == frames
        assert model.denoiser.ngf == (64 if config == "smmnist" else 96)
        smaller = create("mcvd", preset="paper", config=config, input_frames=10, output_frames=20, ngf=16,
                         cond_frames=3)
    assert smaller.denoiser.ngf == 16 and (smaller.cond_frames, smaller.block_frames) == (3, 5)


@pytest.mark.parametrize("options, needle", [
    ({"sampler": "euler"}, "model.sampler='euler': choose ddpm or ddim"),
    ({"sample_steps": 500}, "model.sample_steps=500: must be between 1 and diffusion_steps (100)"),
    ({"cond_frames": 9}, "model.cond_frames=9: must be between 1 and the 4 input frames"),
    ({"block_frames": 0}, "model.block_frames=0: sample at least 1 frame per block"),
    ({"mask_past": 1.0}, "model.mask_past=1.0: a probability in [0, 1)"),
    ({"config": "ucf"}, "model.config='ucf': MCVD has the authors' configurations smmnist, kth, bair"),
])
def test_bad_options_are_user_errors(options, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        create("mcvd", preset="tiny", **{**TINY, **options})


def test_the_recipe_is_mcvds_own_under_both_protocols():
    entry = get_entry("mcvd")
    for scale in ("full", "quick", "tiny"):
        srvp, openstl = (entry.recipe_for(presets.NAMES[(p, scale)]) for p in ("srvp", "openstl"))
        assert srvp["loss"] == openstl["loss"] == "mcvd" and srvp["grad_clip"] == openstl["grad_clip"] == 1.0
        assert srvp["lr"] == openstl["lr"] == (2e-4 if scale == "full" else 1e-3)
