"""MCVD (Voleti, Jolicoeur-Martineau & Pal, NeurIPS 2022, voletiv/mcvd-pytorch): masked conditional video
diffusion, a stochastic model.

A DDPM denoiser (NCSN++ UNet, :mod:`vpbench.models.layers.diffusion_blocks`) predicts the noise of a block of
``block_frames`` future frames stacked in channels, given the ``cond_frames`` previous frames concatenated to its
input ("concat" conditioning; the counts of the authors' configuration ``config``, SMMNIST's 5 and 5, KTH's 10 and
5, BAIR's 2 and 5, fewer when the data has fewer input or output frames; frames are padded to a multiple of the
UNet's down-sampling and cropped back); during training the past frames are zeroed with probability ``mask_past``
(MCVD's masking, which lets one model also generate unconditionally). The denoiser sees frames on [-1, 1] (the
authors' ``data.rescaled``, in every configuration of theirs) or, with ``rescaled=False``, on [0, 1] as given.

Prediction (``forward(frames, horizon)``) draws one future: block after block, each sampled from noise by DDPM
ancestral sampling (``sampler="ddpm"``, Ho et al. Eq. 11 through the x0 estimate, clipped) or DDIM's
deterministic steps (``sampler="ddim"``, Song et al. Eq. 12 with eta 0), over every one of the ``diffusion_steps``
or over ``sample_steps`` evenly skipped ones, then a last denoising step; each block conditions on the last
``cond_frames`` frames known or sampled so far (MCVD's autoregressive rollout). Registered ``stochastic``: the
harness evaluates it on ``--samples K`` futures per sequence.

Training owns its loss (``train.loss=mcvd``): the denoising score matching loss of MCVD's ``losses/dsm.py``,
1/2 ||eps - eps_theta(sqrt(a) x0 + sqrt(1 - a) eps, t | past)||^2 summed over the block's pixels and averaged over
the batch (DDPM Eq. 14 up to its constant), on one random window of ``cond_frames + block_frames`` consecutive
frames of each training sequence (MCVD trains on random clips).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.diffusion_blocks import (
    AdaGroupNormAct,
    BigGANResBlock,
    SelfAttention2d,
    conv,
    ddpm_init_,
    linear_schedule,
    step_embedding,
)
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.registry import register_model

SAMPLERS = ("ddpm", "ddim")


class NCSNppUNet(nn.Module):
    """MCVD's denoiser (``UNetMore_DDPM`` with ``arch: unetmore``): x [B, in_ch, H, W] (noisy block and past frames
    in channels), steps [B] -> the noise [B, out_ch, H, W].

    Down path: conv 3x3, then per resolution ``res_blocks`` BigGAN blocks (attention after each where the side is
    in ``attn_resolutions``) and a down-sampling BigGAN block (not after the last); middle: block, attention, block;
    up path: per resolution ``res_blocks + 1`` blocks on [h, skip] (attention after them where due) and an
    up-sampling block; GroupNorm, SiLU, conv 3x3. The step embedding: sinusoids (``ngf``), Linear, SiLU, Linear
    (4 ``ngf``)."""

    def __init__(self, in_ch: int, out_ch: int, img_size: int, *, ngf: int, ch_mult: list[int], res_blocks: int,
                 attn_resolutions: list[int], head_channels: int, dropout: float):
        super().__init__()
        self.ngf = ngf
        emb_dim = 4 * ngf
        self.embed = nn.Sequential(nn.Linear(ngf, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        for layer in (self.embed[0], self.embed[2]):
            ddpm_init_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.stem = conv(in_ch, ngf, 3)

        def block(i: int, o: int | None = None, **kw: bool) -> BigGANResBlock:
            return BigGANResBlock(i, o, emb_dim, dropout=dropout, **kw)

        skips, ch, side = [ngf], ngf, img_size
        self.down = nn.ModuleList()
        for level, mult in enumerate(ch_mult):
            for _ in range(res_blocks):
                stage = nn.ModuleList([block(ch, ngf * mult)])
                ch = ngf * mult
                if side in attn_resolutions:
                    stage.append(SelfAttention2d(ch, head_channels))
                self.down.append(stage)
                skips.append(ch)
            if level < len(ch_mult) - 1:
                self.down.append(nn.ModuleList([block(ch, down=True)]))
                skips.append(ch)
                side //= 2
        self.middle = nn.ModuleList([block(ch), SelfAttention2d(ch, head_channels), block(ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for i in range(res_blocks + 1):
                stage = nn.ModuleList([block(ch + skips.pop(), ngf * mult)])
                ch = ngf * mult
                if i == res_blocks and side in attn_resolutions:
                    stage.append(SelfAttention2d(ch, head_channels))
                self.up.append(stage)
            if level:
                self.up.append(nn.ModuleList([block(ch, up=True)]))
                side *= 2
        self.head_norm = AdaGroupNormAct(ch, None)
        self.head = conv(ch, out_ch, 3, init_scale=0.0)

    @staticmethod
    def _stage(stage: nn.ModuleList, h: Tensor, emb: Tensor) -> Tensor:
        h = stage[0](h, emb)
        return stage[1](h) if len(stage) > 1 else h

    def forward(self, x: Tensor, steps: Tensor) -> Tensor:
        emb = self.embed(step_embedding(steps, self.ngf).to(x.dtype))  # sinusoids in float32, as the authors
        hs = [self.stem(x)]
        for stage in self.down:
            hs.append(self._stage(stage, hs[-1], emb))
        h = self.middle[2](self.middle[1](self.middle[0](hs[-1], emb)), emb)
        for stage in self.up:
            if not stage[0].resample:
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._stage(stage, h, emb)
        return self.head(self.head_norm(h))


# The authors' configurations (configs/smmnist_DDPM_big5.yml, kth64_big.yml, bair_big.yml: the model sections and
# the past and block frames; 64 x 64 frames, 1 channel, 3 for BAIR). ``model.config`` picks one; every option left
# unset takes its value.
SMMNIST = {"ngf": 64, "ch_mult": [1, 2, 3, 4], "res_blocks": 2, "attn_resolutions": [8, 16, 32], "head_channels": 64,
           "dropout": 0.1, "diffusion_steps": 1000, "beta_first": 0.02, "beta_last": 0.0001, "cond_frames": 5,
           "block_frames": 5}
CONFIGS = {"smmnist": SMMNIST, "kth": {**SMMNIST, "ngf": 96, "head_channels": 96, "cond_frames": 10},
           "bair": {**SMMNIST, "ngf": 96, "head_channels": 96, "cond_frames": 2}}


def configured(config: str, **given: Any) -> dict[str, Any]:
    """The authors' configuration ``config`` with the options ``given`` (those not None) over it."""
    if config not in CONFIGS:
        raise UserError(f"model.config={config!r}: MCVD has the authors' configurations {', '.join(CONFIGS)}")
    return {**CONFIGS[config], **{k: v for k, v in given.items() if v is not None}}


def frame_counts(input_frames: int, output_frames: int, cond_frames: int | None = None,
                 block_frames: int | None = None, config: str = "smmnist") -> tuple[int, int]:
    """(past frames, block frames): those given, else the configuration's, or fewer where the data has fewer."""
    c = configured(config)
    return (min(c["cond_frames"], input_frames) if cond_frames is None else cond_frames,
            min(c["block_frames"], output_frames) if block_frames is None else block_frames)


class MCVD(nn.Module):
    """MCVD: frames [B, T_in, C, H, W] in [0, 1], horizon -> one sampled future [B, horizon, C, H, W] in [0, 1]."""

    def __init__(self, in_channels: int = 1, img_size: int | tuple[int, int] = 64, input_frames: int = 10,
                 output_frames: int = 10, *, config: str = "smmnist", cond_frames: int | None = None,
                 block_frames: int | None = None, ngf: int | None = None, ch_mult: list[int] | None = None,
                 res_blocks: int | None = None, attn_resolutions: list[int] | None = None,
                 head_channels: int | None = None, dropout: float | None = None, diffusion_steps: int | None = None,
                 beta_first: float | None = None, beta_last: float | None = None, mask_past: float = 0.0,
                 sampler: str = "ddpm", sample_steps: int | None = None, rescaled: bool = True):
        super().__init__()
        c = configured(config, ngf=ngf, ch_mult=ch_mult, res_blocks=res_blocks, attn_resolutions=attn_resolutions,
                       head_channels=head_channels, dropout=dropout, diffusion_steps=diffusion_steps,
                       beta_first=beta_first, beta_last=beta_last)
        ch_mult, diffusion_steps = c["ch_mult"], c["diffusion_steps"]
        self.multiple = 2 ** (len(ch_mult) - 1)  # frames are padded to it (replicating the border), then cropped
        side = -(-(img_size if isinstance(img_size, int) else img_size[0]) // self.multiple) * self.multiple
        cond_frames, block_frames = frame_counts(input_frames, output_frames, cond_frames, block_frames, config)
        if not 1 <= cond_frames <= input_frames:
            raise UserError(f"model.cond_frames={cond_frames}: must be between 1 and the {input_frames} input frames")
        if block_frames < 1:
            raise UserError(f"model.block_frames={block_frames}: sample at least 1 frame per block")
        if sampler not in SAMPLERS:
            raise UserError(f"model.sampler={sampler!r}: choose {' or '.join(SAMPLERS)}")
        if sample_steps is not None and not 1 <= sample_steps <= diffusion_steps:
            raise UserError(f"model.sample_steps={sample_steps}: must be between 1 and diffusion_steps "
                            f"({diffusion_steps}), or null for every step")
        if not 0 <= mask_past < 1:
            raise UserError(f"model.mask_past={mask_past}: a probability in [0, 1)")
        self.channels, self.cond_frames, self.block_frames = in_channels, cond_frames, block_frames
        self.mask_past, self.sampler, self.sample_steps, self.rescaled = mask_past, sampler, sample_steps, rescaled
        self.denoiser = NCSNppUNet(in_channels * (cond_frames + block_frames), in_channels * block_frames, side,
                                   ngf=c["ngf"], ch_mult=list(ch_mult), res_blocks=c["res_blocks"],
                                   attn_resolutions=list(c["attn_resolutions"]), head_channels=c["head_channels"],
                                   dropout=c["dropout"])
        betas, alphas, alphas_prev = linear_schedule(diffusion_steps, c["beta_first"], c["beta_last"])
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas", alphas, persistent=False)
        self.register_buffer("alphas_prev", alphas_prev, persistent=False)

    def to_model(self, frames: Tensor) -> Tensor:
        """Frames on [0, 1] -> the denoiser's range: [-1, 1] where ``rescaled`` (the authors' ``data_transform``)."""
        return frames * 2 - 1 if self.rescaled else frames

    def from_model(self, frames: Tensor) -> Tensor:
        """The denoiser's range -> frames on [0, 1] (the authors' ``inverse_data_transform``, then clamped)."""
        return ((frames + 1) / 2 if self.rescaled else frames).clamp(0, 1)

    def noise_prediction(self, noisy: Tensor, steps: Tensor, past: Tensor) -> Tensor:
        """eps_theta: noisy block [B, F, C, H, W] and past [B, P, C, H, W] in the denoiser's range, steps [B] ->
        [B, F, C, H, W]."""
        b, f, _, h, w = noisy.shape
        x = pad_to_multiple(torch.cat([noisy.flatten(1, 2), past.flatten(1, 2)], dim=1), self.multiple)
        return self.denoiser(x, steps)[..., :h, :w].reshape(noisy.shape)

    def denoising_loss(self, clip: Tensor, steps: Tensor | None = None,
                       noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """clip [B, cond_frames + block_frames, C, H, W] on [0, 1] -> (MCVD's DSM loss, the x0 estimate of the
        block on [0, 1], detached). ``steps`` [B] and ``noise`` (the block's shape) are drawn when not given."""
        clip = self.to_model(clip)
        past, block = clip[:, : self.cond_frames], clip[:, self.cond_frames :]
        if self.mask_past > 0 and self.training:  # MCVD's conditioning_fn: drop the whole past of a sample
            keep = torch.rand(len(clip), device=clip.device) > self.mask_past
            past = past * keep.view(-1, 1, 1, 1, 1)
        if steps is None:
            steps = torch.randint(0, len(self.alphas), (len(clip),), device=clip.device)
        alpha = self.alphas[steps].view(-1, 1, 1, 1, 1).to(clip.dtype)
        noise = torch.randn_like(block) if noise is None else noise
        predicted = self.noise_prediction(alpha.sqrt() * block + (1 - alpha).sqrt() * noise, steps, past)
        with full_precision(clip.device):
            loss = 0.5 * (wide(noise) - wide(predicted)).square().flatten(1).sum(dim=1).mean()
        # the x0 estimate (x_t - sqrt(1 - a) eps_theta) / sqrt(a)
        x0 = block + ((1 - alpha) / alpha).sqrt() * (noise - predicted.detach())
        return loss, self.from_model(x0.clamp(-1, 1)).detach()

    @torch.no_grad()
    def validation_loss(self, sequence: Tensor) -> Tensor:
        """sequence [B, T, C, H, W] on [0, 1] -> the denoising loss averaged over every window of ``cond_frames +
        block_frames`` frames (the held-out DSM loss the authors' runner logs), at steps and noise drawn from a
        generator seeded at 0: the same draws at every call, so that epochs compare on them."""
        generator = torch.Generator(sequence.device).manual_seed(0)
        length = self.cond_frames + self.block_frames
        losses = []
        for start in range(sequence.shape[1] - length + 1):
            clip = sequence[:, start : start + length]
            steps = torch.randint(0, len(self.alphas), (len(clip),), generator=generator, device=clip.device)
            noise = torch.randn(clip[:, self.cond_frames :].shape, generator=generator, device=clip.device,
                                dtype=clip.dtype)
            losses.append(self.denoising_loss(clip, steps, noise)[0])
        return torch.stack(losses).mean()

    def schedule(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(steps, betas, alphas, alphas_prev) sampled: all of them, or ``sample_steps`` every
        ``diffusion_steps // sample_steps``, the last the cleanest, betas recomputed from the kept alphas (MCVD's
        subsampling keeps steps 0, skip, ... and so never the cleanest: its last denoising step then scales the
        sample by about sqrt(alpha) of a noisy step)."""
        total = len(self.alphas)
        if self.sample_steps is None or self.sample_steps >= total:
            return torch.arange(total, device=self.alphas.device), self.betas, self.alphas, self.alphas_prev
        skip = total // self.sample_steps  # the kept steps end at the cleanest, as DDIM's (MCVD's end at T - skip)
        steps = torch.arange(total - 1 - (self.sample_steps - 1) * skip, total, skip, device=self.alphas.device)
        alphas = self.alphas[steps]
        alphas_prev = torch.cat([alphas[1:], alphas.new_ones(1)])
        return steps, 1 - alphas / alphas_prev, alphas, alphas_prev

    def sample_block(self, past: Tensor) -> Tensor:
        """past [B, cond_frames, C, H, W] in the denoiser's range -> a sampled block [B, block_frames, C, H, W]."""
        steps, betas, alphas, alphas_prev = self.schedule()
        x = torch.randn(past.shape[0], self.block_frames, *past.shape[2:], device=past.device, dtype=past.dtype)
        for i, step in enumerate(steps):
            eps = self.noise_prediction(x, step.expand(len(x)), past)
            x0 = ((x - (1 - alphas[i]).sqrt() * eps) / alphas[i].sqrt()).clamp(-1, 1)
            if self.sampler == "ddim":  # DDIM Eq. 12, eta 0
                x = alphas_prev[i].sqrt() * x0 + (1 - alphas_prev[i]).sqrt() * eps
                continue
            # DDPM posterior mean (Ho et al. Eq. 7) through the x0 estimate, then its noise but at the last step
            x = (alphas_prev[i].sqrt() * betas[i] / (1 - alphas[i]) * x0
                 + (1 - betas[i]).sqrt() * (1 - alphas_prev[i]) / (1 - alphas[i]) * x)
            if i < len(steps) - 1:
                x = x + ((1 - alphas_prev[i]) / (1 - alphas[i]) * betas[i]).sqrt() * torch.randn_like(x)
        eps = self.noise_prediction(x, steps[-1].expand(len(x)), past)  # MCVD's final denoising step
        return x - (1 - alphas[-1]).sqrt() * eps

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        known = self.to_model(frames[:, -self.cond_frames :])
        blocks = []
        for _ in range(-(-horizon // self.block_frames)):
            blocks.append(self.sample_block(known[:, -self.cond_frames :]))
            known = torch.cat([known, blocks[-1]], dim=1)
        return self.from_model(torch.cat(blocks, dim=1)[:, :horizon])


@register_loss("mcvd")
def mcvd_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
              context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """In training, MCVD's denoising loss on one random window of ``cond_frames + block_frames`` consecutive frames
    of the sequences (returns the block's one-step x0 estimate); in evaluation (validation: it picks the best
    checkpoint), the seeded denoising loss over every window (:meth:`MCVD.validation_loss`), with one sampled
    future as the prediction. The MSE of a sampled future is a poor choice of checkpoint: at the quick scale it
    wanders by 15% from epoch to epoch while the denoising loss falls."""
    net = getattr(model, "module", model)
    sequence = torch.cat([inputs, targets], dim=1)
    length = net.cond_frames + net.block_frames
    if length > sequence.shape[1]:
        raise UserError(f"mcvd trains on windows of {length} frames (cond_frames + block_frames); the sequences have "
                        f"{sequence.shape[1]}")
    if not model.training:
        return net.validation_loss(sequence), model(inputs, targets.shape[1])
    start = int(torch.randint(0, sequence.shape[1] - length + 1, ()))
    return net.denoising_loss(sequence[:, start : start + length])


# The paper scale is the configuration's network (``model.config``, SMMNIST's by default); the smaller scales set
# their own sizes over it, and keep the frames on [0, 1] (``rescaled=False``): a denoiser trained for minutes
# predicts the noise of the noisiest steps too imprecisely, its clamped x0 estimates there average mid-grey, and on
# [-1, 1] that grey is an offset from the black background that every later step amplifies (quick, 2026-12-07:
# validation MSE 13,660 -> 3,607 after 600 steps, grey noise -> dark frames with strokes).
PAPER = {"config": "smmnist", "mask_past": 0.0, "sampler": "ddpm", "sample_steps": 100, "rescaled": True}
MCVD_PRESETS: dict[str, dict[str, Any]] = {
    "paper": PAPER,
    "quick": {**PAPER, "ngf": 16, "ch_mult": [1, 2, 2], "res_blocks": 1, "attn_resolutions": [16],
              "head_channels": 16, "dropout": 0.1, "diffusion_steps": 200, "beta_first": 0.1, "beta_last": 0.0005,
              "sampler": "ddim", "sample_steps": 10, "rescaled": False},
    "tiny": {**PAPER, "ngf": 8, "ch_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [], "head_channels": 8,
             "dropout": 0.1, "diffusion_steps": 100, "beta_first": 0.2, "beta_last": 0.001, "sampler": "ddim",
             "sample_steps": 4, "rescaled": False},
}


def mcvd_recipe() -> dict[str, dict[str, Any]]:
    """The authors' optimiser under both protocols: Adam at lr 2e-4, gradients clipped at norm 1, batch 64 (their
    1,000-step warm-up not kept); the smaller scales at lr 1e-3, the quick one over 3,000 steps of batch 8 (30
    epochs; a diffusion model needs many more updates than the other models' 600 of batch 4: after those its
    samples are noise)."""
    own = {"loss": "mcvd", "optimizer": "adam", "weight_decay": 0.0, "grad_clip": 1.0}
    recipes = {}
    quick = {"lr": 1e-3, "batch_size": 8, "epochs": 30}
    for scale, extra in (("full", {"lr": 2e-4, "batch_size": 64}), ("quick", quick), ("tiny", {"lr": 1e-3})):
        for protocol in ("srvp", "openstl"):  # the same under both protocols: MCVD trains on its own loss
            name = presets.NAMES[(protocol, scale)]
            recipes[name] = {**presets.protocol_recipe(name), **own, **extra}
    return recipes


register_model("mcvd", label="MCVD", rank=297, defaults=MCVD_PRESETS, recipe=mcvd_recipe(),
               stochastic=True,
               training_note="DDPM sampling with 100 of the 1,000 steps at the paper scale (the authors' SMMNIST "
                             "configuration samples all 1,000); DDIM with fewer steps at the quick and tiny scales; "
                             "no EMA weights")(MCVD)
