"""Golden files of three of OpenSTL's recurrent methods: PhyDNet, MAU and SwinLSTM-D.

Writes ``tests/golden/{phydnet,mau,mau_recall,swinlstm}.pt`` (checked by
``tests/parity/test_parity_phydnet_mau_swinlstm.py``) from a clone of github.com/chengtan9907/OpenSTL (branch
OpenSTL-Lightning; the MAU and PhyDNet model and module files are the same in v0.3.0 but for device handling):
``openstl/models/{phydnet,mau,swinlstm}_model.py``, ``openstl/modules/{phydnet,mau,swinlstm}_modules.py`` and
``openstl/utils/predrnn_utils.py`` (patching), each model run by its own forward. SwinLSTM's modules import timm:
timm 0.6.11 (OpenSTL pins ``timm<=0.6.11``) must be on the path, e.g. ``pip install --no-deps --target DIR
timm==0.6.11`` and ``PYTHONPATH=DIR``; vpbench's loader (``vpbench.reference.openstl_clone.openstl_timm``) imports
its model files without its package ``__init__`` files (timm 0.6.11's model zoo does not import on Python 3.11),
torchvision standing in.

Tiny configurations in float64, every GroupNorm and LayerNorm affine moved away from (1, 0):

* ``phydnet.pt``: 2 sequences of 3 + 2 frames, 1 x 16 x 12 (a 4 x 3 latent grid), patch 4. PhyDNet_Model
  hard-codes its widths (64 latent channels, ConvLSTM 128, 128, 64), so its encoder, PhyCell and ConvLSTM are
  replaced after construction by the reference's own classes at width 1 (latent 2 channels), ConvLSTM hidden
  (3, 2), PhyCell 7 x 7 with 49 filters; the reference's ``dcgan_conv``/``dcgan_upconv`` hard-code
  GroupNorm(16, .), which 1 and 2 channels cannot hold, so the module's ``nn`` is given a GroupNorm of 1 group
  where it asks for 16 (vpbench's ``norm_groups=1``; PhyCell's GroupNorm(7, 49) is kept). Two training
  forwards, teacher forcing off (ratio 0) and on (ratio 1), each with its per-step outputs and the authors'
  loss (the sum of the per-step MSEs of the reference forward, plus the moment loss of the reference's K2M in
  float64: OpenSTL and the authors cast the moments to float32 before the MSE) and its gradients; and
  ``inference``'s predictions.
* ``phydnet_gn16.pt``: the same at the reference's own GroupNorm(16, .) (no GroupNorm replaced): width 16 (16
  and 32 channels), ConvLSTM hidden (3, 32), 1 x 8 x 8 frames (a 2 x 2 latent grid); vpbench's default
  ``norm_groups=16``. Its 0.2 M weights are drawn from a seed (``tests/helpers/parity.py``'s ``seeded_weights``;
  the file holds their shapes) and its gradients kept as ``sketch``es.
* ``mau.pt``: 2 sequences of 3 + 4 frames, 1 x 16 x 12, patch 1, hidden 4 x 2 layers, kernel 3, sr_size 4
  (two down-samplings, both decoder kinds), tau 2, normal cells and model. ``mau_recall.pt``: patch 2 (the
  reference's ``reshape_patch``), sr_size 2, tau 3, ``cell_mode="residual"``, ``model_mode="recall"``. The
  scheduled-sampling mask is drawn as vpbench draws it: seed :data:`SEED`, then per step past the input
  window one ``torch.rand(B, 1, 1, 1)`` (float32) < 0.5. The loss is the reference's MSE over all outputs.
* ``swinlstm.pt``: 2 sequences of 2 + 2 frames, 1 x 16 x 16 (OpenSTL's SwinLSTM needs square frames), patch 2,
  embed 4, depths down (3, 1), up (2, 1), heads (1, 2), window 4: a shifted 8 x 8 level with its mask, a third
  block fusing the cell's input, 4 x 4 and 2 x 2 levels where timm clamps the window and drops the shift, the up
  levels' reversed drop-path rates; OpenSTL's stochastic depth 0.1 (rates from a float32 linspace, as OpenSTL
  builds them with torch's default dtype). Outputs in eval mode, and outputs and gradients of the reference's loss
  in training mode from seed :data:`SEED` (vpbench draws its drop-path masks in the same order); the file holds
  the parameters only (the buffers are constants of the configuration).

Each file also holds ``flops``: the reference's fvcore count at the same configuration with OpenSTL's dummy
inputs (its ``display_method_info``), and ``full``: the reference's parameter count and fvcore FLOPs at
OpenSTL's Moving MNIST configuration.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import torch
from golden_files import ROOT, default_dtype, gradients, save
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import seeded_weights, sketch  # noqa: E402  the tests regenerate the weights and sketches

from vpbench.reference.clones import commit_of, load_file
from vpbench.reference.openstl_clone import load_model_class, openstl_timm

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
SEED = 20240917
BATCH = 2


@torch.no_grad()
def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """Norm affines away from (1, 0), so that a mapping that swaps two norms is caught."""
    for module in model.modules():
        if isinstance(module, (nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
            module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))


def fvcore_flops(model: nn.Module, inputs: tuple) -> tuple[int, dict[str, int]]:
    """fvcore's total and per-module counts of ``model(*inputs)``, as OpenSTL's ``display_method_info``."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total()), {k: int(v) for k, v in analysis.by_module().items()}


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# -- PhyDNet ---------------------------------------------------------------------------------------------------

PHYDNET = {"frames": (3, 2), "shape": (1, 16, 12), "patch_size": 4, "width": 1, "convlstm_hidden": [3, 2],
           "phycell_kernel": 7, "norm_groups": 1}
# The reference's own GroupNorm(16, .): width 16 (16 and 32 channels; the ConvLSTM's top layer as wide as the latent
# 32), on 8 x 8 frames (a 2 x 2 latent grid).
PHYDNET_GN16 = {**PHYDNET, "shape": (1, 8, 8), "width": 16, "convlstm_hidden": [3, 32], "norm_groups": 16}
SKETCH_SEED = 11  # PHYDNET_GN16's 0.2 M weights are drawn from SEED and its gradients kept as sketches


def constraints(k: int) -> torch.Tensor:
    """OpenSTL's ``PhyDNet._get_constraints`` (methods/phydnet.py) for k x k kernels: k^2 one-hot k x k matrices."""
    out = torch.zeros(k * k, k, k)
    for i in range(k):
        for j in range(k):
            out[i * k + j, i, j] = 1
    return out


def phydnet_nn(groups: int) -> types.ModuleType:
    """torch.nn with a GroupNorm of ``groups`` groups where the reference asks for 16."""
    shim = types.ModuleType("nn_with_small_groupnorm")
    shim.__dict__.update(vars(nn))
    shim.GroupNorm = lambda num_groups, channels: nn.GroupNorm(groups if num_groups == 16 else num_groups, channels)
    return shim


def build_phydnet(clone: Path, shape: tuple[int, int, int], frames: tuple[int, int],
                  small: dict[str, Any] | None) -> nn.Module:
    """OpenSTL's PhyDNet_Model; ``small`` (PHYDNET or PHYDNET_GN16): its parts replaced by the reference's classes at
    those widths, its GroupNorm(16, .) given ``norm_groups`` groups."""
    configs = types.SimpleNamespace(pre_seq_length=frames[0], aft_seq_length=frames[1], in_shape=(frames[0], *shape),
                                    patch_size=PHYDNET["patch_size"], device="cpu")
    model_class = load_model_class(clone, "phydnet_model", "PhyDNet_Model", ("phydnet_modules",))
    mod = sys.modules["openstl.modules.phydnet_modules"]
    if small:
        mod.nn = phydnet_nn(small["norm_groups"])
    try:
        with contextlib.redirect_stdout(None):  # PhyD_ConvLSTM prints its layers
            model = model_class(configs)
            if small:
                p, width = small["patch_size"], small["width"]
                grid, latent, k = (shape[1] // p, shape[2] // p), 2 * width, small["phycell_kernel"]
                hidden = small["convlstm_hidden"]
                phycell = mod.PhyCell(grid, latent, [k * k], 1, (k, k), "cpu")
                convcell = mod.PhyD_ConvLSTM(grid, latent, hidden, len(hidden), (3, 3), "cpu")
                encoder = mod.PhyD_EncoderRNN(phycell, convcell, in_channel=shape[0], patch_size=p)
                encoder.encoder_E = mod.encoder_E(nc=shape[0], nf=width, patch_size=p)
                encoder.encoder_Ep, encoder.encoder_Er = (mod.encoder_specific(latent, latent) for _ in range(2))
                encoder.decoder_Dp, encoder.decoder_Dr = (mod.decoder_specific(latent, latent) for _ in range(2))
                encoder.decoder_D = mod.decoder_D(nc=shape[0], nf=width, patch_size=p)
                model.phycell, model.convcell, model.encoder = phycell, convcell, encoder
                model.k2m = mod.K2M([k, k])
    finally:
        mod.nn = nn
    return model


def phydnet_training(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, ratio: float) -> dict[str, Any]:
    """One training forward of the reference (teacher-forcing ratio 0 or 1, so the coin is fixed): per-step
    outputs, the authors' loss and its gradients. The reference's own moment loop is skipped (its PhyCell cell's
    ``input_dim`` set to 0 for the call) and run again in float64, without the cast to float32."""
    outputs: list[torch.Tensor] = []
    handle = model.encoder.register_forward_hook(lambda m, a, out: outputs.append(out[2]))
    cell = model.encoder.phycell.cell_list[0]
    channels, cell.input_dim = cell.input_dim, 0
    model.zero_grad(set_to_none=True)
    try:
        frames_loss = model(inputs, targets, None, teacher_forcing_ratio=ratio)
    finally:
        cell.input_dim = channels
        handle.remove()
    k = cell.F.conv1.weight.shape[-1]
    moment_loss = sum(model.criterion(model.k2m(cell.F.conv1.weight[:, b].double()), constraints(k))
                      for b in range(channels))
    loss = frames_loss + moment_loss
    loss.backward()
    return {"output": torch.stack(outputs, dim=1).detach().clone(), "loss": loss.detach().clone(),
            "moment_loss": moment_loss.detach().clone(), "grads": gradients(model)}


def make_phydnet(clone: Path, out: Path, settings: dict[str, Any] = PHYDNET, name: str = "phydnet") -> Path:
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    shape, frames = settings["shape"], settings["frames"]
    model = build_phydnet(clone, shape, frames, small=settings)
    perturb(model, generator)
    seeded = settings is PHYDNET_GN16
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    if seeded:
        with torch.no_grad():
            for n, value in seeded_weights(shapes, SEED).items():
                model.get_parameter(n).copy_(value)
    model.train()
    inputs = torch.rand(BATCH, frames[0], *shape, generator=generator)
    targets = torch.rand(BATCH, frames[1], *shape, generator=generator)
    state = parameters(model)
    runs = {"free": phydnet_training(model, inputs, targets, 0.0),
            "forced": phydnet_training(model, inputs, targets, 1.0)}
    weights: dict[str, Any] = {"state_dict": state}
    if seeded:
        weights = {"parameter_shapes": shapes, "weight_seed": SEED, "sketch_seed": SKETCH_SEED}
        for run in runs.values():
            run["grads"] = sketch(run["grads"], SKETCH_SEED)
    model.eval()
    predictions, _ = model.inference(inputs, targets, constraints(settings["phycell_kernel"]), return_loss=False)
    dummies = (torch.ones(1, frames[0], *shape), torch.ones(1, frames[1], *shape),
               torch.zeros(49, 7, 7, dtype=torch.float32))  # the moments are cast to float32
    total, by_module = fvcore_flops(model, dummies)
    flops = {"total": total, "k2m": by_module["k2m"]}
    return save(out / f"{name}.pt",
                reference={"repository": REPOSITORY, "commit": commit_of(clone),
                           "files": ["openstl/models/phydnet_model.py", "openstl/modules/phydnet_modules.py"],
                           "model": "PhyDNet_Model with its encoder, PhyCell and ConvLSTM rebuilt small (see config)"},
                config={"vpbench": {key: settings[key] for key in ("patch_size", "width", "convlstm_hidden",
                                                                  "phycell_kernel", "norm_groups")},
                        "frames": frames, "shape": shape, "seed": SEED},
                **weights, inputs=inputs, targets=targets, runs=runs, predictions=predictions.detach().clone(),
                flops=flops, full=phydnet_full(clone),
                notes="runs[free|forced]: teacher forcing off / on; output [B, T_in - 1 + T_out, C, H, W] the "
                      "predictions of frames 2..T_in+T_out; loss = sum of the per-step MSEs + moment_loss (float64); "
                      "predictions: inference's [B, T_out, C, H, W]; flops: fvcore of the training forward on "
                      "OpenSTL's dummies (ones, ratio 0), and its K2M's share (the moments)")


@default_dtype(torch.float32)
def phydnet_full(clone: Path) -> dict[str, Any]:
    """The reference at OpenSTL's Moving MNIST configuration: parameters and fvcore FLOPs of its training forward."""
    model = build_phydnet(clone, (1, 64, 64), (10, 10), small=None)
    dummies = (torch.ones(1, 10, 1, 64, 64), torch.ones(1, 10, 1, 64, 64), torch.zeros(49, 7, 7))
    with torch.no_grad():
        total, by_module = fvcore_flops(model, dummies)
    return {"params": sum(p.numel() for p in model.parameters()), "flops": total, "flops_k2m": by_module["k2m"]}


# -- MAU -------------------------------------------------------------------------------------------------------

MAU = {"normal": {"frames": (3, 4), "shape": (1, 16, 12), "patch_size": 1, "hidden": 4, "layers": 2,
                  "kernel_size": 3, "sr_size": 4, "tau": 2, "cell_mode": "normal", "model_mode": "normal"},
       "recall": {"frames": (3, 4), "shape": (1, 16, 12), "patch_size": 2, "hidden": 4, "layers": 2,
                  "kernel_size": 3, "sr_size": 2, "tau": 3, "cell_mode": "residual", "model_mode": "recall"}}
MODEL_KEYS = ("patch_size", "hidden", "layers", "kernel_size", "sr_size", "tau", "cell_mode", "model_mode")


def build_mau(clone: Path, config: dict[str, Any]) -> nn.Module:
    frames = config["frames"]
    configs = types.SimpleNamespace(
        in_shape=(frames[0], *config["shape"]), patch_size=config["patch_size"], tau=config["tau"],
        cell_mode=config["cell_mode"], model_mode=config["model_mode"], sr_size=config["sr_size"],
        filter_size=config["kernel_size"], stride=1, total_length=sum(frames), pre_seq_length=frames[0],
        aft_seq_length=frames[1], device="cpu")
    model_class = load_model_class(clone, "mau_model", "MAU_Model", ("mau_modules",))
    return model_class(config["layers"], [config["hidden"]] * config["layers"], configs)


def make_mau(clone: Path, out: Path, variant: str) -> Path:
    config = MAU[variant]
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = build_mau(clone, config)
    perturb(model, generator)
    patching = load_file(clone, "openstl/utils/predrnn_utils.py")
    (t_in, t_out), p, shape = config["frames"], config["patch_size"], config["shape"]
    frames = torch.rand(BATCH, t_in + t_out, *shape, generator=generator)
    torch.manual_seed(SEED)  # the mask as vpbench draws it (float32, one draw per step past the input window)
    use_true = torch.stack([torch.rand(BATCH, 1, 1, 1, dtype=torch.float32) < 0.5 for _ in range(t_out - 1)], dim=1)
    assert 0 < use_true.sum() < use_true.numel(), "the mask should mix true frames and predictions"
    patched = patching.reshape_patch(frames.permute(0, 1, 3, 4, 2), p)
    mask = use_true.double().expand(-1, -1, *patched.shape[2:]).contiguous()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
    output, loss = model(patched, mask)
    loss.backward()
    # MAU_Model returns channel-first outputs [B, T - 1, p^2 C, H/p, W/p] (OpenSTL's MAU never patches: patch 1)
    as_frames = patching.reshape_patch_back(output.detach().permute(0, 1, 3, 4, 2), p).permute(0, 1, 4, 2, 3)
    dummies = (torch.ones(1, t_in + t_out, *patched.shape[2:]), torch.ones(1, t_out - 1, *patched.shape[2:]))
    flops, _ = fvcore_flops(model, dummies)
    return save(out / ("mau.pt" if variant == "normal" else f"mau_{variant}.pt"),
                reference={"repository": REPOSITORY, "commit": commit_of(clone),
                           "files": ["openstl/models/mau_model.py", "openstl/modules/mau_modules.py",
                                     "openstl/utils/predrnn_utils.py"],
                           "model": f"MAU_Model({config['layers']}, {[config['hidden']] * config['layers']}, configs)"},
                config={"vpbench": {key: config[key] for key in MODEL_KEYS}, "frames": config["frames"],
                        "shape": shape, "seed": SEED, "p_true": 0.5},
                state_dict=state, inputs=frames[:, :t_in], targets=frames[:, t_in:], use_true=use_true.flatten(1),
                output=as_frames.clone(), loss=loss.detach().clone(), grads=gradients(model),
                flops={"total": flops}, full=mau_full(clone),
                notes="output: the raw predictions of frames 2..T [B, T - 1, C, H, W]; use_true [B, T_out - 1]: the "
                      "mask (1: the true frame) of the steps past the input window; loss: MSE(output, frames[:, 1:])")


@default_dtype(torch.float32)
def mau_full(clone: Path) -> dict[str, Any]:
    config = {**MAU["normal"], "frames": (10, 10), "shape": (1, 64, 64), "hidden": 64, "layers": 4,
              "kernel_size": 5, "sr_size": 4, "tau": 5}
    model = build_mau(clone, config)
    dummies = (torch.ones(1, 20, 64, 64, 1), torch.ones(1, 9, 64, 64, 1))
    with torch.no_grad():
        total, _ = fvcore_flops(model, dummies)
    unused = ("merge", "conv_last_sr")
    return {"params": sum(p.numel() for p in model.parameters()), "flops": total,
            "params_unused": {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in unused}}


# -- SwinLSTM --------------------------------------------------------------------------------------------------

SWINLSTM = {"frames": (2, 2), "shape": (1, 16, 16), "patch_size": 2, "embed_dim": 4, "depths_down": [3, 1],
            "depths_up": [2, 1], "heads": [1, 2], "window_size": 4}


def build_swinlstm(clone: Path, config: dict[str, Any]) -> nn.Module:
    configs = types.SimpleNamespace(in_shape=(config["frames"][0], *config["shape"]), patch_size=config["patch_size"],
                                    embed_dim=config["embed_dim"], window_size=config["window_size"])
    with openstl_timm():
        model_class = load_model_class(clone, "swinlstm_model", "SwinLSTM_D_Model", ("swinlstm_modules",))
        return model_class(config["depths_down"], config["depths_up"], config["heads"], configs)


def make_swinlstm(clone: Path, out: Path) -> Path:
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    with default_dtype(torch.float32):  # OpenSTL's drop-path rates come from a float32 linspace
        model = build_swinlstm(clone, SWINLSTM).double()
    perturb(model, generator)
    (t_in, t_out), shape = SWINLSTM["frames"], SWINLSTM["shape"]
    frames = torch.rand(BATCH, t_in + t_out, *shape, generator=generator)
    channels_last = frames.permute(0, 1, 3, 4, 2)
    model.eval()
    with torch.no_grad():
        eval_output, _ = model(channels_last)
    dropped = []
    hooks = [m.register_forward_hook(lambda m, a, out: dropped.append(int((out == 0).flatten(1).all(1).sum())))
             for m in model.modules() if type(m).__name__ == "DropPath"]
    model.train()
    torch.manual_seed(SEED)
    output, loss = model(channels_last)
    loss.backward()
    for hook in hooks:
        hook.remove()
    assert sum(dropped) > 0, "no residual branch was dropped: choose another seed"
    dummies = (torch.ones(1, t_in + t_out, *shape[1:], shape[0]),)
    model.eval()
    flops, _ = fvcore_flops(model, dummies)
    return save(out / "swinlstm.pt",
                reference={"repository": REPOSITORY, "commit": commit_of(clone),
                           "files": ["openstl/models/swinlstm_model.py", "openstl/modules/swinlstm_modules.py",
                                     "timm 0.6.11 timm/models/swin_transformer.py, timm/models/layers"],
                           "model": "SwinLSTM_D_Model(depths_down, depths_up, heads, configs)"},
                config={"vpbench": {k: SWINLSTM[k] for k in ("patch_size", "embed_dim", "depths_down", "depths_up",
                                                             "heads", "window_size")} | {"drop_path": 0.1},
                        "frames": SWINLSTM["frames"], "shape": shape, "seed": SEED},
                state_dict=parameters(model), inputs=frames[:, :t_in], targets=frames[:, t_in:],
                eval_output=eval_output.permute(0, 1, 4, 2, 3).clone(),
                output=output.detach().permute(0, 1, 4, 2, 3).clone(), loss=loss.detach().clone(),
                grads=gradients(model), dropped_paths=sum(dropped), flops={"total": flops}, full=swinlstm_full(clone),
                notes="eval_output / output: the predictions of frames 2..T [B, T - 1, C, H, W] in eval mode / in "
                      "training mode (drop path on, torch seeded with SEED just before); loss: MSE(output, "
                      "frames[:, 1:]) of the training run; grads after it")


@default_dtype(torch.float32)
def swinlstm_full(clone: Path) -> dict[str, Any]:
    config = {**SWINLSTM, "frames": (10, 10), "shape": (1, 64, 64), "embed_dim": 128, "depths_down": [2, 6],
              "depths_up": [6, 2], "heads": [4, 8]}
    model = build_swinlstm(clone, config).eval()
    with torch.no_grad():
        total, _ = fvcore_flops(model, (torch.ones(1, 20, 64, 64, 1),))
    unused = {"Upsample.patch_embed": sum(p.numel() for p in model.Upsample.patch_embed.parameters()),
              "red of odd blocks": sum(p.numel() for n, p in model.named_parameters()
                                       if ".red." in n and int(n.split(".STBs.")[1].split(".")[0]) % 2 == 1)}
    return {"params": sum(p.numel() for p in model.parameters()), "flops": total, "params_unused": unused}


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    clone = clones["openstl"]
    with default_dtype(torch.float64):
        return [make_phydnet(clone, out), make_phydnet(clone, out, PHYDNET_GN16, "phydnet_gn16"),
                make_mau(clone, out, "normal"), make_mau(clone, out, "recall"),
                make_swinlstm(clone, out)]
