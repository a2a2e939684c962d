"""Golden files for OpenSTL's SimVP frame with each of its translators, and for TAU's loss.

    pip install --no-deps --target /work/refdeps timm==0.6.11
    PYTHONPATH=/work/refdeps python tools/golden/make.py --openstl PATH/TO/OpenSTL --only simvp_translators_tau

Reference: ``openstl/models/simvp_model.py`` (``SimVP_Model``), ``openstl/modules/simvp_modules.py`` and
``openstl/modules/layers/`` of github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning), and the loss of
``openstl/methods/tau.py`` (``TAU.diff_div_reg``), run with timm 0.6.11. Those files are the v0.3.0 files that
produced OpenSTL's published tables (same code; only timm's import path moved, from ``timm.models.layers``
to ``timm.layers``), and the published runs used timm <= 0.6.11 (OpenSTL v0.3.0's requirement). Newer timm
cannot build OpenSTL's ViT and Swin blocks as this code calls them (timm 0.9 renamed their ``drop`` argument;
OpenSTL's PR #116, after this clone's commit, passes ``drop`` as both ``attn_drop`` and ``proj_drop``, which
changes nothing at OpenSTL's drop 0), so timm 0.6.11 it is, loaded by vpbench's loader
(``vpbench.reference.openstl_clone.openstl_timm``) with ``timm.layers`` pointed at its ``timm.models.layers``.
timm imports torchvision (whose CPU-less wheels do not load here); the few torchvision names timm's data modules
import at load time stand in, and timm's ``timm/models/__init__.py`` (which imports every timm model, one of
which fails on Python 3.11 in 0.6.11) is not run: only the four model files OpenSTL imports are.

Writes, in float64:

* ``simvp2_<translator>.pt`` for each of OpenSTL's 13 translators (model_type incepu, gsta, convmixer,
  convnext, hornet, mlp, moga, poolformer, swin, uniformer, van, vit, tau): ``SimVP_Model`` at in_shape
  (T=2, C=2, 16, 16), hid_S 4, hid_T 16, N_S 2 (8x8 features), N_T 3 (a block that widens, one at hid_T,
  one that narrows: UniFormer's convolutional and attention blocks, Swin's shifted and unshifted windows),
  mlp_ratio 2, encoder/decoder kernels 3/5 (for incepu 3/3, as the ``simvp`` model's openstl form that its file
  also checks, and N_T 2 to keep the file small). Every parameter that starts constant (norm affines, biases,
  layer scales, MogaNet's sigmas) is redrawn, linear weights at std 1/sqrt(fan_in) and Swin's relative position
  biases at std 0.5 (timm's std 0.02 leaves attention nearly uniform), batch-norm running statistics drawn,
  and the readout scaled so that about half the raw output lies in [0, 1]. Weights, inputs and loss weights
  are float32 values (stored as float32; half the bytes), everything computed in float64. Stored: the weights
  and buffers (``state_dict``), a fixed input, ``output_eval`` (eval mode), ``output`` (training mode with every
  DropPath off: OpenSTL's schedule draws branches even at drop_path 0), ``grads`` of
  ``(output * loss_weights).mean()``, ``running_stats`` (the batch-norm buffers after that forward) and
  ``drop_path_rates`` (each block's DropPath probability as built).
* ``tau_loss.pt``: ``diff_div_reg`` of a random prediction and target (B 2, T 4, C 2, 8x8): its value and
  gradient with respect to the prediction (and its value at T = 2: 0); and TAU's training loss
  ``MSE + 0.1 diff_div_reg`` of a TAU ``SimVP_Model`` (T = 3 so that the regulariser is not 0, C = 1; about a
  fifth of the raw output outside [0, 1], so that a clamp before the loss changes it) on a fixed batch: its value
  and parameter gradients.
"""
from __future__ import annotations

import copy
import importlib
import types
from pathlib import Path

import torch
from golden_files import gradients, save
from torch import nn

from vpbench.reference.clones import commit_of
from vpbench.reference.openstl_clone import load_model_class, openstl_timm, tau_regulariser

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
TRANSLATORS = ("incepu", "gsta", "convmixer", "convnext", "hornet", "mlp", "moga", "poolformer", "swin", "uniformer",
               "van", "vit", "tau")
SEED = 20230401
# SimVP_Model's arguments (in_shape = T, C, H, W) and vpbench's options for the same model.
REFERENCE = {"in_shape": (2, 2, 16, 16), "hid_S": 4, "hid_T": 16, "N_S": 2, "N_T": 3, "mlp_ratio": 2.0, "drop": 0.0,
             "drop_path": 0.0, "spatio_kernel_enc": 3, "spatio_kernel_dec": 5}
VPBENCH = {"in_channels": 2, "input_frames": 2, "img_size": [16, 16], "spatial_hidden": 4, "temporal_hidden": 16,
           "spatial_layers": 2, "temporal_layers": 3, "encoder_kernel": 3, "decoder_kernel": 5, "mlp_ratio": 2.0,
           "drop": 0.0, "drop_path": 0.0, "drop_path_start": 0.0}


def reference(clone: Path, timm: str) -> types.SimpleNamespace:
    """OpenSTL's ``SimVP_Model`` (``model``), ``TAU.diff_div_reg`` (``diff_div_reg``) and timm's ``DropPath``, under
    :func:`openstl_timm`; ``timm``: its version."""
    return types.SimpleNamespace(model=load_model_class(clone, "simvp_model", "SimVP_Model", ("simvp_modules",)),
                                 diff_div_reg=tau_regulariser(clone), timm=timm,
                                 DropPath=importlib.import_module("timm.models.layers").DropPath)


@torch.no_grad()
def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """Redraw every parameter that starts constant (norm affines about 1 or 0, biases, layer scales, sigmas),
    and the batch-norm running statistics, so that each is told apart from the others; linear weights and
    Swin's relative position biases at the scale of unit activations (timm starts them at std 0.02, which
    leaves attention nearly uniform and a wrong scale or bias layout hard to see)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.in_features**0.5)
        if hasattr(module, "relative_position_bias_table"):
            table = module.relative_position_bias_table
            table.copy_(0.5 * torch.randn(table.shape, generator=generator))
    for param in model.parameters():
        if param.numel() == 1 or bool((param == param.flatten()[0]).all()):
            centre = 1.0 if bool((param == 1).all()) else 0.0
            param.copy_(centre + 0.3 * torch.randn(param.shape, generator=generator))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))


@torch.no_grad()
def float32_grid(model: nn.Module) -> None:
    """Round every floating parameter and buffer to a float32 value (stored as float32: the same values in
    half the bytes)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            tensor.copy_(tensor.float())


def compact(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state on the float32 grid, stored in float32."""
    out = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    assert all(torch.equal(out[k].to(v.dtype), v) for k, v in state.items())
    return out


def float32_values(shape: tuple[int, ...], generator: torch.Generator, draw=torch.rand) -> torch.Tensor:
    """Random float64 values on the float32 grid."""
    return draw(shape, generator=generator).float().double()


def drop_paths(model: nn.Module, drop_path_class: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, drop_path_class)]


def block_rates(model: nn.Module, drop_path_class: type) -> list[float]:
    """Each translator block's DropPath probability as built (0 where it has none)."""
    blocks = getattr(model.hid, "enc")
    return [max([m.drop_prob for m in drop_paths(block, drop_path_class)], default=0.0) for block in blocks]


def train_forward(model: nn.Module, inputs: torch.Tensor, drop_path_class: type) -> torch.Tensor:
    """Training-mode output with every DropPath off (batch statistics in the norms)."""
    for module in drop_paths(model, drop_path_class):
        module.drop_prob = 0.0
    model.train()
    return model(inputs)


@torch.no_grad()
def calibrate_readout(model: nn.Module, inputs: torch.Tensor, drop_path_class: type, spread: float) -> None:
    """Scale and shift the 1x1 readout so that the training-mode raw output has mean 0.5 and std ``spread``."""
    probe = copy.deepcopy(model)
    out = train_forward(probe, inputs, drop_path_class)
    scale, readout = spread / out.std(), model.dec.readout
    readout.weight.mul_(scale)
    readout.bias.copy_(scale * (readout.bias - out.mean()) + 0.5)


def make_translator(ref: types.SimpleNamespace, translator: str, commit: str | None, out: Path) -> Path:
    generator = torch.Generator().manual_seed(SEED + TRANSLATORS.index(translator))
    config = {**REFERENCE, "model_type": translator}
    vpbench = {**VPBENCH, "translator": translator}
    if translator == "incepu":  # OpenSTL's kernels 3/3, as the simvp model's openstl form; N_T 2 keeps it small
        config["spatio_kernel_dec"] = vpbench["decoder_kernel"] = 3
        config["N_T"] = vpbench["temporal_layers"] = 2
    torch.manual_seed(0)
    model = ref.model(**config)
    rates = block_rates(model, ref.DropPath) if translator != "incepu" else []
    perturb(model, generator)
    inputs = float32_values((2, *config["in_shape"]), generator)
    calibrate_readout(model, inputs, ref.DropPath, spread=0.5)
    float32_grid(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        output_eval = model(inputs)
    output = train_forward(model, inputs, ref.DropPath)
    inside = ((output > 0) & (output < 1)).double().mean().item()
    assert 0.2 < inside < 0.8, f"simvp2 {translator}: {inside:.0%} of the raw output in [0, 1]"
    loss_weights = float32_values(output.shape, generator, torch.randn)
    (output * loss_weights).mean().backward()
    running = {k: v.detach().clone() for k, v in model.state_dict().items() if "running_" in k}
    return save(out / f"simvp2_{translator}.pt",
                reference={"repository": REPOSITORY, "commit": commit, "timm": ref.timm,
                           "file": "openstl/models/simvp_model.py (SimVP_Model), openstl/modules/simvp_modules.py, "
                                   "openstl/modules/layers/"},
                config={"reference": config, "vpbench": vpbench}, translator=translator, state_dict=compact(state),
                inputs=inputs.float(), output=output.detach().clone(), output_eval=output_eval,
                loss_weights=loss_weights.float(),
                grads=gradients(model), running_stats=running, drop_path_rates=rates,
                notes="output: training mode, every DropPath off, raw (unclamped) [B, T, C, H, W]; "
                      f"{inside:.0%} of it in [0, 1]; output_eval: eval mode with the stored running statistics; "
                      "drop_path_rates: the DropPath probability of each translator block as OpenSTL builds it at "
                      "drop_path 0")


def make_tau_loss(ref: types.SimpleNamespace, commit: str | None, out: Path) -> Path:
    generator = torch.Generator().manual_seed(SEED - 1)
    pred = float32_values((2, 4, 2, 8, 8), generator).requires_grad_()
    target = float32_values((2, 4, 2, 8, 8), generator)
    ddr = ref.diff_div_reg(pred, target)
    (ddr_grad,) = torch.autograd.grad(ddr, pred)
    ddr_short = float(ref.diff_div_reg(pred[:, :2], target[:, :2]))

    config = {**REFERENCE, "in_shape": (3, 1, 16, 16), "model_type": "tau"}
    vpbench = {**VPBENCH, "in_channels": 1, "input_frames": 3, "translator": "tau"}
    torch.manual_seed(1)
    model = ref.model(**config)
    perturb(model, generator)
    inputs = float32_values((2, *config["in_shape"]), generator)
    targets = float32_values((2, *config["in_shape"]), generator)
    calibrate_readout(model, inputs, ref.DropPath, spread=0.4)
    float32_grid(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    output = train_forward(model, inputs, ref.DropPath)
    assert output.min() < 0 and output.max() > 1, "TAU loss golden: the raw output must leave [0, 1]"
    alpha = 0.1  # configs/mmnist/TAU.py
    loss = nn.MSELoss()(output, targets) + alpha * ref.diff_div_reg(output, targets)
    loss.backward()
    return save(out / "tau_loss.pt",
                reference={"repository": REPOSITORY, "commit": commit, "timm": ref.timm,
                           "file": "openstl/methods/tau.py (TAU.diff_div_reg, training_step), "
                                   "openstl/models/simvp_model.py"},
                config={"reference": config, "vpbench": vpbench, "alpha": alpha},
                ddr={"pred": pred.detach().float(), "target": target.float(), "value": ddr.detach(), "grad": ddr_grad,
                     "value_two_frames": ddr_short},
                state_dict=compact(state), inputs=inputs.float(), targets=targets.float(),
                output=output.detach().clone(),
                loss=loss.detach(), grads=gradients(model),
                notes="ddr: diff_div_reg(pred, target) and its gradient with respect to pred; loss: "
                      "MSELoss()(output, targets) + 0.1 diff_div_reg(output, targets) in training mode, every "
                      "DropPath off, output partly outside [0, 1]")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    clone = clones["openstl"]
    commit = commit_of(clone)
    default, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # float64 depthwise convs crawl when their threads wait for busy cores
    try:
        with openstl_timm() as timm:
            ref = reference(clone, timm)
            return [*(make_translator(ref, t, commit, out) for t in TRANSLATORS), make_tau_loss(ref, commit, out)]
    finally:
        torch.set_default_dtype(default)
        torch.set_num_threads(threads)
