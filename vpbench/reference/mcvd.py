"""The MCVD authors' denoiser (github.com/voletiv/mcvd-pytorch, ``models/better/ncsnpp_more.py``
``UNetMore_DDPM``, concat conditioning) from a clone, at vpbench's options, and their training step
(``losses/dsm.py`` for DDPM). Used by ``bench speed --parts openstl --mcvd PATH`` (:mod:`vpbench.reference.openstl`'s
pair) and by the golden generator ``tools/golden/mcvd.py``."""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.reference.clones import Unavailable

MODULE = "models.better.ncsnpp_more"


def authors_config(model: dict[str, Any], data: dict[str, Any]) -> types.SimpleNamespace:
    """The authors' config namespace (the keys ``NCSNpp`` and ``UNetMore_DDPM`` read): ``model`` holds ``ngf``,
    ``ch_mult``, ``num_res_blocks``, ``attn_resolutions``, ``n_head_channels``, ``num_classes`` (steps), ``dropout``
    and optionally ``sigma_begin``/``sigma_end`` (0.02/0.0001); ``data`` ``channels``, ``image_size``, ``num_frames``
    (the block) and ``num_frames_cond`` (the past)."""
    ns = types.SimpleNamespace
    model = {"sigma_begin": 0.02, "sigma_end": 0.0001, **model}
    return ns(device="cpu", data=ns(num_frames_future=0, **data),
              model=ns(arch="unetmore", version="DDPM", time_conditional=True, cond_emb=False, spade=False,
                       gamma=False, noise_in_cond=False, output_all_frames=False, nonlinearity="swish",
                       sigma_dist="linear", type="v1", **model))


def model_class(clone: str | Path) -> type[nn.Module]:
    """``UNetMore_DDPM`` of the clone (its ``models`` package imported from the clone's folder)."""
    clone = Path(clone).expanduser()
    if not (clone / "models" / "better" / "ncsnpp_more.py").is_file():
        raise UserError(f"--mcvd {clone}: no models/better/ncsnpp_more.py there; give the folder of a clone of "
                        "github.com/voletiv/mcvd-pytorch (or an export of its models/ folder)")
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]  # another clone's models package
    sys.path.insert(0, str(clone))
    try:
        return importlib.import_module(MODULE).UNetMore_DDPM
    except ImportError as err:
        raise Unavailable(f"the MCVD authors' models/ does not import here ({err})") from None
    finally:
        sys.path.remove(str(clone))


def authors_model(cls: type[nn.Module], options: dict[str, Any], channels: int, side: int, cond_frames: int,
                  block_frames: int) -> nn.Module:
    """``cls`` (``UNetMore_DDPM``) at vpbench's ``mcvd`` options on frames of ``channels`` x ``side`` x ``side``."""
    model = {"ngf": options["ngf"], "ch_mult": list(options["ch_mult"]), "num_res_blocks": options["res_blocks"],
             "attn_resolutions": list(options["attn_resolutions"]), "n_head_channels": options["head_channels"],
             "num_classes": options["diffusion_steps"], "dropout": options["dropout"],
             "sigma_begin": options["beta_first"], "sigma_end": options["beta_last"]}
    data = {"channels": channels, "image_size": side, "num_frames": block_frames, "num_frames_cond": cond_frames}
    return cls(authors_config(model, data))


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, sequence: Tensor, cond_frames: int,
                  block_frames: int, grad_clip: float) -> Callable[[], None]:
    """One batch of the authors' DDPM training on ``sequence`` [B, T, C, H, W] in [0, 1]: a random window of
    past + block frames rescaled to [-1, 1], random steps and noise, 1/2 ||z - eps_theta||^2 summed over pixels and
    averaged over the batch, gradients clipped at ``grad_clip`` (their ``optim.grad_clip``), an optimiser step."""
    def step() -> None:
        start = int(torch.randint(0, sequence.shape[1] - cond_frames - block_frames + 1, ()))
        clip = sequence[:, start : start + cond_frames + block_frames] * 2 - 1
        cond, x = clip[:, :cond_frames].flatten(1, 2), clip[:, cond_frames:].flatten(1, 2)
        steps = torch.randint(0, len(model.alphas), (len(x),))
        alphas = model.alphas[steps].view(-1, 1, 1, 1)
        noise = torch.randn_like(x)
        predicted = model(alphas.sqrt() * x + (1 - alphas).sqrt() * noise, steps, cond=cond)
        loss = (0.5 * (noise - predicted).square()).reshape(len(x), -1).sum(dim=-1).mean(dim=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

    return step
