"""Golden file of MCVD's denoiser and training loss as its authors build them.

Writes ``tests/golden/mcvd.pt`` (read by ``tests/parity/test_parity_mcvd.py``) from an export of
github.com/voletiv/mcvd-pytorch (``--mcvd``, the folder holding its ``models/``; ``git archive HEAD models``):
``models/better/ncsnpp_more.py`` ``UNetMore_DDPM`` (``arch: unetmore``, concat conditioning) and
``losses/dsm.py``'s loss, written out here as the authors' ``anneal_dsm_score_estimation`` computes it for DDPM
(``losses/`` imports nothing vpbench lacks, but the function is five lines: the golden file records its terms).

Tiny configuration (float64): 1 x 16 x 16 frames, 2 past frames and blocks of 2, ngf 4, ch_mult (1, 2), 2 residual
blocks, attention at 8 x 8 with heads of 4 channels (2 heads), 10 linear steps 0.02 -> 0.0001, dropout 0 (the
authors' 0.1 draws at random). The weights are the authors' initialisation from ``SEED`` with every zero- or
near-zero-initialised tensor (biases, the last convolutions, the attention outputs, GroupNorm affines) redrawn, so
that every path carries signal, and the attention's queries and keys at unit scale. The authors' step embedding is computed in float32 whatever the model's dtype (as
vpbench's) and its FIR kernel is a float32 tensor (exact values): both are cast to float64 for the float64 model,
the only changes made to their code. It holds

* ``outputs``: the denoiser's noise prediction for ``noisy`` blocks and ``past`` frames at the steps ``steps``;
* ``clip``, ``loss_steps``, ``noise``, ``loss``, ``grads``: a training clip on [0, 1] (past then block), the steps
  and noise of the loss (the noise the authors' ``torch.randn_like`` drew, injected into vpbench's loss), the loss
  1/2 ||z - eps_theta(sqrt(a) x + sqrt(1 - a) z, t | past)||^2 summed over pixels and averaged over the batch, and
  every parameter's gradient;
* ``params``: the parameters at each of the authors' published configurations (``PUBLISHED``: their SMMNIST, KTH
  and BAIR models);
* ``schedule``: the authors' ``betas``, ``alphas`` and ``alphas_prev`` of the 10 linear steps (the sampler's
  coefficients).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from golden_files import default_dtype, gradients, save
from torch import nn

from vpbench.reference.clones import commit_of, restored_modules
from vpbench.reference.mcvd import authors_config

SOURCES = ("mcvd",)
REPOSITORY = "github.com/voletiv/mcvd-pytorch"
SEED = 20261207
TINY = {"ngf": 4, "ch_mult": [1, 2], "num_res_blocks": 2, "attn_resolutions": [8], "n_head_channels": 4,
        "num_classes": 10, "dropout": 0.0}
# Their published configurations (configs/smmnist_DDPM_big5.yml, kth64_big.yml, bair_big.yml): (model, data).
SMMNIST = {"ngf": 64, "ch_mult": [1, 2, 3, 4], "num_res_blocks": 2, "attn_resolutions": [8, 16, 32],
           "n_head_channels": 64, "num_classes": 1000, "dropout": 0.1}
BIG = {**SMMNIST, "ngf": 96, "n_head_channels": 96}
PUBLISHED = {"smmnist": (SMMNIST, {"channels": 1, "image_size": 64, "num_frames": 5, "num_frames_cond": 5}),
             "kth": (BIG, {"channels": 1, "image_size": 64, "num_frames": 5, "num_frames_cond": 10}),
             "bair": (BIG, {"channels": 3, "image_size": 64, "num_frames": 5, "num_frames_cond": 2})}
DATA = {"channels": 1, "image_size": 16, "num_frames": 2, "num_frames_cond": 2}


def vpbench_config() -> dict:
    return {"in_channels": DATA["channels"], "img_size": DATA["image_size"], "input_frames": DATA["num_frames_cond"],
            "output_frames": DATA["num_frames"], "cond_frames": DATA["num_frames_cond"],
            "block_frames": DATA["num_frames"], "ngf": TINY["ngf"], "ch_mult": TINY["ch_mult"],
            "res_blocks": TINY["num_res_blocks"], "attn_resolutions": TINY["attn_resolutions"],
            "head_channels": TINY["n_head_channels"], "dropout": 0.0, "diffusion_steps": TINY["num_classes"],
            "beta_first": 0.02, "beta_last": 0.0001, "sample_steps": None}


@torch.no_grad()
def redraw_small(model: nn.Module, generator: torch.Generator) -> None:
    """Biases, GroupNorm affines and the near-zero-initialised layers at random (scale 0.1 around 0 or 1); the
    attention's query and key projections at unit scale."""
    for name, p in model.named_parameters():
        if name.endswith(("NIN_0.W", "NIN_1.W")):  # queries and keys at unit scale: attention far from uniform
            p.copy_(torch.randn(p.shape, generator=generator))
        elif p.abs().max() < 1e-6 or (name.endswith(".weight") and p.dim() == 1):
            base = 1.0 if name.endswith(".weight") and p.dim() == 1 else 0.0
            p.copy_(base + 0.1 * torch.randn(p.shape, generator=generator))


def make_mcvd(clone: Path, out: Path) -> Path:
    sys.path.insert(0, str(clone))
    try:
        with restored_modules("models"):
            from models.better import ncsnpp_more

            embedding = ncsnpp_more.layers.get_timestep_embedding  # computes in float32 whatever the model's dtype
            ncsnpp_more.layers.get_timestep_embedding = lambda *args, **kw: embedding(*args, **kw).double()
            sampling = ncsnpp_more.layerspp.up_or_down_sampling
            fir = sampling.upfirdn2d  # its FIR kernel is a float32 tensor (exact: eighths and sixty-fourths)
            sampling.upfirdn2d = lambda x, k, **kw: fir(x, k.to(x.dtype), **kw)
            torch.manual_seed(SEED)
            model = ncsnpp_more.UNetMore_DDPM(authors_config(TINY, DATA)).double()  # its init draws float32
            redraw_small(model, torch.Generator().manual_seed(SEED))
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            generator = torch.Generator().manual_seed(SEED + 1)
            b, frames = 3, DATA["num_frames"] + DATA["num_frames_cond"]
            shape = (DATA["channels"], DATA["image_size"], DATA["image_size"])

            def draw(*size):
                return torch.randn(*size, generator=generator)

            noisy, past = draw(b, DATA["num_frames"] * shape[0], *shape[1:]), draw(b, DATA["num_frames_cond"] * shape[0], *shape[1:])
            steps = torch.tensor([0, 4, 9])
            model.eval()
            outputs = model(noisy, steps, cond=past).detach()
            # the authors' training step: data on [-1, 1] (rescaled), the block as x, the past frames as cond
            clip = torch.rand(b, frames, *shape, generator=generator)
            scaled = clip * 2 - 1
            x = scaled[:, DATA["num_frames_cond"]:].flatten(1, 2)
            cond = scaled[:, : DATA["num_frames_cond"]].flatten(1, 2)
            loss_steps = torch.tensor([1, 5, 8])
            noise = draw(*x.shape)
            model.train()
            alphas = model.alphas[loss_steps].view(-1, 1, 1, 1)
            predicted = model(alphas.sqrt() * x + (1 - alphas).sqrt() * noise, loss_steps, cond=cond)
            loss = (0.5 * (noise - predicted).square()).reshape(b, -1).sum(dim=-1).mean(dim=0)
            loss.backward()
            grads = gradients(model)
            with default_dtype(torch.float32):
                params = {name: sum(p.numel() for p in ncsnpp_more.UNetMore_DDPM(authors_config(*c)).parameters())
                          for name, c in PUBLISHED.items()}
            schedule = {name: getattr(model, name).detach().clone() for name in ("betas", "alphas", "alphas_prev")}
    finally:
        sys.path.remove(str(clone))
    return save(out / "mcvd.pt",
                reference={"repository": REPOSITORY, "commit": commit_of(clone),
                           "file": "models/better/ncsnpp_more.py (UNetMore_DDPM), losses/dsm.py"},
                config={"reference": {**TINY, **DATA}, "vpbench": vpbench_config(), "seed": SEED},
                state_dict=state, noisy=noisy, past=past, steps=steps, outputs=outputs, clip=clip,
                loss_steps=loss_steps, noise=noise.view(b, DATA["num_frames"], *shape), loss=loss.detach(),
                grads=grads, params=params, schedule=schedule)


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_mcvd(clones["mcvd"], out)]
