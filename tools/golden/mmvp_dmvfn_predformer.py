"""Golden files of three RNN-free models: MMVP (OpenSTL), DMVFN (the authors' and OpenSTL v0.3.0's) and PredFormer
(the authors').

Writes ``tests/golden/{mmvp,mmvp_shallow,dmvfn,predformer}.pt`` (read by
``tests/parity/test_parity_mmvp_dmvfn_predformer.py``) from clones of github.com/chengtan9907/OpenSTL (``--openstl``,
branch OpenSTL-Lightning: MMVP), the same repository at branch OpenSTLv0.3.0 (``--openstl-v030``: DMVFN's port),
github.com/hzwer/CVPR2023-DMVFN (``--dmvfn``) and github.com/yyyujintang/PredFormer (``--predformer``). Single files
are imported by vpbench's loader (``vpbench.reference.openstl_clone.load_model_class``), with what they import only
for other purposes standing in: OpenSTL's ``openstl.modules``/``openstl.utils`` hold the files each model needs,
torchvision (VGG, for DMVFN's perceptual loss) stands in, and so do PredFormer's three timm helpers where timm does
not import (``trunc_normal_``, torch's, only draws the initial weights, which are stored; ``DropPath`` is never built
at drop_path 0; ``to_2tuple`` is unused there).

Every file is float64 at a tiny configuration, seeded: the reference's weights (``state_dict``, before the
training forward), a fixed input, its outputs, and its parameter gradients (``grads``) after one backward pass of
a loss (``loss_weights``: the mean of ``output * loss_weights``; DMVFN: its own training loss). ``full`` holds the
reference's parameter count, the parameters its forward never uses (``unused``) and fvcore's FLOPs at its Moving
MNIST configuration (float32; traced as OpenSTL's ``display_method_info`` or the authors' script traces it), and
``flops`` the same count at the file's configuration (each a dict: ``total`` and the count of each operator).

* ``mmvp.pt``: ``MMVP_Model`` with OpenSTL's downsample '2,2,2' (three scales: the stem's features are dropped
  and the decoder's last up-block has no skip), hid_S 2, hid_T 2, one RRDB each, 3 -> 2 frames, 1 channel, 32x16
  frames (non-square: 4x2 and 2x1 matrix grids), batch 1; ``mmvp_shallow.pt``: downsample '2,2' (two scales),
  3 -> 1 frame (the predictor's one-frame temporal layer), 2 channels, 16x16, batch 2. Each holds the output in
  evaluation mode (BatchNorm running statistics drawn at random), then in training mode (batch statistics) with
  its gradients (``loss_weights`` broadcast over the batch and time), and ``buffers``: the running statistics
  after that training forward. OpenSTL's output reshape mixes the channels for C > 1 (``permute(0, 2, 3, 1)``
  then ``reshape(B, -1, C, H, W)``): the outputs are stored as the reference returns them. The raw outputs lie
  partly in [0, 1] (the enhancer's readout is scaled to an output standard deviation of 0.5, its bias set to 0.5).
* ``dmvfn.pt``: OpenSTL v0.3.0's ``DMVFN_Model`` (3 blocks of 8, 4 and 4 features at scales 4, 2, 1, routing width 4,
  2 channels, 16x16, batch 2): the training-mode forward of one window (I_0, I_1 -> I_2) with every block's
  prediction, its training loss (sum_i 0.8^(n-1-i) LapL1(block i, I_2), OpenSTL's ``_predict`` without the VGG
  term; 3 pyramid levels, as OpenSTL for frames 32 wide or less) and gradients; and the evaluation-mode
  prediction of single sequences (``training=False``; the authors test one sequence at a time) for seeds whose
  Bernoulli routing draws some blocks and, in ``eval_none``, none. ``torch.manual_seed(seed)`` precedes each
  forward: the routing's one ``torch.bernoulli`` call then draws the same numbers in vpbench. Before writing,
  the authors' ``model/arch.py`` ``DMVFN`` (9 blocks, 3 channels as it hard-codes) is checked against OpenSTL's
  port with the same weights: training-mode outputs, gradients and the evaluation-mode prediction agree to 1e-12.
* ``predformer.pt``: ``PredFormer_Quadruplet_TSST`` (patch 4, dim 6, 2 heads of 2 channels, so that the heads'
  width differs from dim, SwiGLU x2, depth 2, Ndepth 2; 3 frames, 2 channels, 16x8 (a 4x2 patch grid), batch 2).
  Its weights are redrawn (linear weights N(0, 0.3^2), layer-norm affines away from (1, 0)) so that every part of
  the attention matters; the head's bias is 0.5.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import types
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch
from golden_files import default_dtype, gradients
from torch import nn

from vpbench.reference.clones import commit_of, load_file
from vpbench.reference.openstl_clone import load_model_class

SOURCES = ("openstl", "openstl_v030", "dmvfn", "predformer")
OPENSTL = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
OPENSTL_V030 = "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"
DMVFN_REPO = "github.com/hzwer/CVPR2023-DMVFN"
PREDFORMER_REPO = "github.com/yyyujintang/PredFormer"
SEED = 20240901
OUTPUT_STD = 0.5


# -- importing the references ----------------------------------------------------------------------------------


def mmvp_reference(clone: Path) -> types.ModuleType:
    """``openstl/models/mmvp_model.py``, over ``openstl/modules/mmvp_modules.py`` and
    ``openstl/utils/mmvp_utils.py``."""
    load_model_class(clone, "mmvp_model", "MMVP_Model", ("mmvp_modules",), ("mmvp_utils",))
    return importlib.import_module("openstl.models.mmvp_model")


def dmvfn_port(clone: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """OpenSTL v0.3.0's ``dmvfn_model.py`` (over ``dmvfn_modules.py``) and ``dmvfn_utils.py`` (LapLoss)."""
    load_model_class(clone, "dmvfn_model", "DMVFN_Model", ("dmvfn_modules",), ("dmvfn_utils",), source="openstl-v030")
    return importlib.import_module("openstl.models.dmvfn_model"), importlib.import_module("openstl.utils.dmvfn_utils")


def predformer_reference(clone: Path) -> types.ModuleType:
    """``PredFormer_Quadruplet_TSST.py`` over ``PredFormer_modules.py`` (einops; timm's helpers)."""
    load_model_class(clone, "PredFormer_Quadruplet_TSST", "PredFormer_Model", ("PredFormer_modules",),
                     source="predformer", placeholders=("measure_throughput",))
    return importlib.import_module("openstl.models.PredFormer_Quadruplet_TSST")


# -- shared steps ------------------------------------------------------------------------------------------------


def fvcore_flops(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """fvcore's count of ``model(*inputs)`` (one multiply-add = one FLOP), as OpenSTL's ``display_method_info``, by
    operator and in ``total``."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    dtype = next(model.parameters()).dtype
    inputs = tuple(x.to(dtype) for x in inputs)
    with warnings.catch_warnings(), torch.no_grad(), default_dtype(dtype):
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return {"total": int(analysis.total()), **{k: int(v) for k, v in analysis.by_operator().items()}}


def full_size(build: Callable[[], nn.Module], unused: list[str], *dummy: torch.Tensor) -> dict:
    """The reference's parameters, those its forward never uses, and fvcore's FLOPs at full size (float32)."""
    with default_dtype(torch.float32):
        model = build().eval()
        sizes = dict(model.named_parameters())
        return {"params": sum(p.numel() for p in model.parameters()),
                "unused": {n: sizes[n].numel() for n in unused}, "flops": fvcore_flops(model, *dummy)}


def save_compact(path: Path, **content) -> Path:
    """``torch.save`` in the legacy (non-zip) format: about 80 bytes per tensor instead of 300, which keeps these
    files of a few hundred small tensors under 300 KB. ``torch.load`` reads both formats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path, _use_new_zipfile_serialization=False)
    return path


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def perturb_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Norm affines away from (1, 0) and BatchNorm running statistics at random, so that each norm is told apart."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)):
            m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=generator))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=generator))
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))


def inside_share(output: torch.Tensor) -> float:
    """The share of ``output`` inside [0, 1] (the clamp of vpbench's output is tested only if it is neither 0 nor 1)."""
    return ((output > 0) & (output < 1)).double().mean().item()


# -- MMVP --------------------------------------------------------------------------------------------------------

# Unused by MMVP_Model.forward: MidMotionMatrix's scale fusers and PredictModel's fuse_conv (res is None).
MMVP_UNUSED_PREFIXES = ("hid.scale_fuser_1.", "hid.scale_fuser_2.", "hid.predictor.fuse_conv.")
MMVP_FULL = {"in_shape": (10, 1, 64, 64), "aft_seq_length": 10, "hid_S": 32, "hid_T": 192, "rrdb_encoder_num": 2,
             "rrdb_decoder_num": 2, "rrdb_enhance_num": 2, "downsample_setting": "2,2,2"}  # configs/mmnist/MMVP.py


def make_mmvp(clone: Path, out: Path, name: str, batch: int, frames: tuple[int, int], channels: int,
              size: tuple[int, int], downsample: str) -> Path:
    """One MMVP golden file (see the module docstring)."""
    reference = mmvp_reference(clone)
    generator = torch.Generator().manual_seed(SEED)
    t_in, t_out = frames
    scales = len(downsample.split(","))
    config = {"in_shape": (t_in, channels, *size), "aft_seq_length": t_out, "hid_S": 2, "hid_T": 2,
              "rrdb_encoder_num": 1, "rrdb_decoder_num": 1, "rrdb_enhance_num": 1, "downsample_setting": downsample}
    vpbench = {"preset": "tiny", "in_channels": channels, "input_frames": t_in, "output_frames": t_out,
               "spatial_hidden": 2, "temporal_hidden": 2, "scales": scales, "encoder_blocks": 1, "decoder_blocks": 1,
               "enhance_blocks": 1}
    torch.manual_seed(SEED)
    model = reference.MMVP_Model(**config)
    perturb_norms(model, generator)
    inputs = torch.rand(batch, t_in, channels, *size, generator=generator)
    with torch.no_grad():  # the raw output centred on 0.5 with a standard deviation of 0.5
        readout = model.enhance.outconv
        readout.bias.zero_()
        readout.weight.mul_(OUTPUT_STD / model.eval()(inputs).std())
        readout.bias.fill_(0.5)
    loss_weights = torch.randn(1, 1, channels, *size, generator=generator)  # broadcast over the batch and time
    state = state_of(model)
    with torch.no_grad():
        eval_output = model.eval()(inputs)
    model.train()
    model.zero_grad(set_to_none=True)
    output = model(inputs)
    (output * loss_weights).mean().backward()
    grads = gradients(model)
    unused = sorted(n for n, p in model.named_parameters() if p.grad is None)
    assert all(n.startswith(MMVP_UNUSED_PREFIXES) for n in unused), unused
    buffers = {k: v.detach().clone() for k, v in model.state_dict().items() if "running" in k}
    share = inside_share(output)
    assert 0.1 < share < 0.9, f"MMVP golden: {share:.0%} of the raw output in [0, 1]"
    return save_compact(out / f"{name}.pt",
                reference={"repository": OPENSTL, "commit": commit_of(clone),
                           "file": "openstl/models/mmvp_model.py, openstl/modules/mmvp_modules.py, "
                                   "openstl/utils/mmvp_utils.py"},
                config={"reference": config, "vpbench": vpbench}, state_dict=state, inputs=inputs,
                eval_output=eval_output, output=output.detach(), loss_weights=loss_weights, grads=grads,
                unused=unused, buffers=buffers,
                flops=fvcore_flops(model.float().eval(), torch.ones(1, t_in, channels, *size)),
                full={**full_size(lambda: reference.MMVP_Model(**MMVP_FULL), unused,
                                  torch.ones(1, 10, 1, 64, 64)), "config": MMVP_FULL},
                notes=f"outputs raw, [B, K, C, H, W] as the reference returns them (channels mixed for C > 1); "
                      f"{share:.0%} of the training output in [0, 1]; flops: batch 1, ones, evaluation mode")


# -- DMVFN -------------------------------------------------------------------------------------------------------

DMVFN_FULL = {"num_block": 9, "routing_out_channels": 32, "scale": [4, 4, 4, 2, 2, 2, 1, 1, 1], "beta": 0.5,
              "num_features": [160, 160, 160, 80, 80, 80, 44, 44, 44]}  # configs/mmnist/DMVFN.py
GAMMA = 0.8


def dmvfn_configs(channels: int, size: int, num_block: int, routing: int, scale: list[int]) -> types.SimpleNamespace:
    return types.SimpleNamespace(in_shape=(10, channels, size, size), num_block=num_block, routing_out_channels=routing,
                                 scale=scale, beta=0.5)


def lap_loss(utils: types.ModuleType, pred: torch.Tensor, truth: torch.Tensor, levels: int) -> torch.Tensor:
    """OpenSTL's ``LapLoss.forward`` (its constructor puts the kernel on CUDA: built here on the tensors' device)."""
    kernel = utils.gauss_kernel(channels=pred.shape[1], device=pred.device)
    pyramids = (utils.laplacian_pyramid(img=x, kernel=kernel, max_levels=levels) for x in (pred, truth))
    return sum(torch.nn.functional.l1_loss(a, b) for a, b in zip(*pyramids))


def clear_grids(port: types.ModuleType, model: nn.Module) -> nn.Module:
    """``model``, its ``warp``'s sampling-grid cache emptied (keyed by device and size, not dtype)."""
    port.warp.__globals__["backwarp_tenGrid"].clear()
    return model


def routing_draws(model: nn.Module, pair: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return model.get_routing_vector(pair.flatten(1, 2))


@contextlib.contextmanager
def cuda_as_cpu() -> Iterator[None]:
    """The authors' ``arch.py`` moves its zero flow and mask with ``.cuda()``: a no-op here."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


def check_authors_dmvfn(authors_clone: Path, port: types.ModuleType) -> None:
    """The authors' DMVFN and OpenSTL's port, with the same weights, agree (training and evaluation mode)."""
    authors = load_file(authors_clone, "model/arch.py")
    torch.manual_seed(SEED)
    theirs = authors.DMVFN()
    cfg = dmvfn_configs(3, 32, 9, 32, DMVFN_FULL["scale"])
    ours = port.DMVFN_Model(4 * 3 + 1 + 4, DMVFN_FULL["num_features"], cfg)
    renamed = {}
    for key, value in theirs.state_dict().items():
        head, rest = key.split(".", 1)
        renamed[f"stu.{head[5:]}.{rest}" if head.startswith("block") else
                f"routing.routing.{rest}" if head == "routing" else key] = value
    ours.load_state_dict(renamed, strict=True)
    x = torch.rand(2, 3, 3, 32, 32)
    outputs, grads = [], []
    with cuda_as_cpu():
        for model, call in ((theirs, lambda: theirs(x.flatten(1, 2), scale=DMVFN_FULL["scale"])),
                            (ours, lambda: ours(x, training=True))):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(SEED)
            merged = call()
            sum(m.sum() for m in merged).backward()
            outputs.append(torch.stack(merged))
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        torch.manual_seed(SEED + 1)
        eval_theirs = theirs(x[:1, :2].flatten(1, 2), scale=DMVFN_FULL["scale"], training=False)[-1]
        torch.manual_seed(SEED + 1)
        eval_ours = ours(x[:1, :2], training=False)[-1]
    for a, b, what in ((*outputs, "outputs"), (*grads, "gradients"), (eval_theirs, eval_ours, "evaluation")):
        diff = (a - b).abs().max().item()
        assert diff < 1e-12, f"the authors' DMVFN and OpenSTL's port differ: {what} by {diff:.3g}"


def make_dmvfn(port_clone: Path, authors_clone: Path, out: Path) -> Path:
    port, utils = dmvfn_port(port_clone)
    check_authors_dmvfn(authors_clone, port)
    generator = torch.Generator().manual_seed(SEED)
    channels, size, batch, features, scale, routing = 2, 16, 2, [8, 4, 4], [4, 2, 1], 4
    cfg = dmvfn_configs(channels, size, len(features), routing, scale)
    vpbench = {"preset": "tiny", "in_channels": channels, "features": features, "scales": scale,
               "routing_hidden": routing, "beta": 0.5}
    torch.manual_seed(SEED)
    model = port.DMVFN_Model(4 * channels + 1 + 4, features, cfg)
    state = state_of(model)
    inputs = torch.rand(batch, 3, channels, size, size, generator=generator)
    levels = 5 if size > 32 else 3  # OpenSTL's DMVFN.__init__
    train_seed = next(s for s in range(SEED, SEED + 100)
                      if 0 < routing_draws(model, inputs[:, :2], s).sum() < batch * len(features))
    torch.manual_seed(train_seed)
    merged = model(inputs, training=True)
    loss = sum(lap_loss(utils, m, inputs[:, 2], levels).mean() * GAMMA ** (len(features) - 1 - i)
               for i, m in enumerate(merged))
    loss.backward()
    grads = gradients(model)
    evaluations = {}
    for key, wanted in (("eval", lambda n: 0 < n < len(features)), ("eval_none", lambda n: n == 0)):
        seed = next(s for s in range(SEED, SEED + 1000) if wanted(routing_draws(model, inputs[:1, :2], s).sum()))
        torch.manual_seed(seed)
        with torch.no_grad():
            found = model(inputs[:1, :2], training=False)
        evaluations[key] = {"seed": seed, "draws": routing_draws(model, inputs[:1, :2], seed)[0],
                            "output": found[-1] if found else inputs[:1, 0]}
    full_cfg = dmvfn_configs(1, 64, 9, 32, DMVFN_FULL["scale"])
    return save_compact(out / "dmvfn.pt",
                reference={"repository": OPENSTL_V030, "commit": commit_of(port_clone),
                           "file": "openstl/models/dmvfn_model.py, openstl/modules/dmvfn_modules.py, "
                                   "openstl/utils/dmvfn_utils.py (laplacian_pyramid)",
                           "checked_against": {"repository": DMVFN_REPO, "commit": commit_of(authors_clone),
                                               "file": "model/arch.py"}},
                config={"reference": {**vars(cfg), "num_features": features, "in_planes": 4 * channels + 5,
                                      "gamma": GAMMA, "lap_levels": levels}, "vpbench": vpbench},
                state_dict=state, inputs=inputs, train_seed=train_seed,
                train_draws=routing_draws(model, inputs[:, :2], train_seed), output=torch.stack(merged).detach(),
                loss=loss.detach(), grads=grads, **evaluations,
                flops=fvcore_flops(clear_grids(port, model.float()), torch.ones(1, 3, channels, size, size)),
                full={**full_size(lambda: clear_grids(port, port.DMVFN_Model(9, DMVFN_FULL["num_features"], full_cfg)),
                                  [],
                                  torch.ones(1, 3, 1, 64, 64)), "config": DMVFN_FULL},
                notes="output: every block's prediction of I_2 from (I_0, I_1) in training mode [blocks, B, C, H, W]; "
                      "loss: their LapL1 sum; flops: one training-mode forward (all blocks, one frame), batch 1, "
                      "ones, as OpenSTL traces it")


# -- PredFormer --------------------------------------------------------------------------------------------------

PREDFORMER_FULL = {"height": 64, "width": 64, "num_channels": 1, "pre_seq": 10, "after_seq": 10, "patch_size": 8,
                   "dim": 256, "heads": 8, "dim_head": 32, "dropout": 0.0, "attn_dropout": 0.0, "drop_path": 0.0,
                   "scale_dim": 4, "depth": 1, "Ndepth": 6}  # configs/mmnist/PredFormer.py


def make_predformer(clone: Path, out: Path) -> Path:
    reference = predformer_reference(clone)
    generator = torch.Generator().manual_seed(SEED)
    frames, channels, (height, width), batch = 3, 2, (16, 8), 2
    config = {"height": height, "width": width, "num_channels": channels, "pre_seq": frames, "after_seq": frames,
              "patch_size": 4, "dim": 6, "heads": 2, "dim_head": 2, "dropout": 0.0, "attn_dropout": 0.0,
              "drop_path": 0.0, "scale_dim": 2, "depth": 2, "Ndepth": 2}
    vpbench = {"preset": "tiny", "in_channels": channels, "input_frames": frames, "patch_size": 4, "dim": 6,
               "heads": 2, "head_dim": 2, "mlp_ratio": 2, "depth": 2, "layers": 2}
    torch.manual_seed(SEED)
    model = reference.PredFormer_Model(config)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.3, generator=generator)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=generator)
        perturb_norms(model, generator)
        model.mlp_head[1].bias.fill_(0.5)
    state = state_of(model)
    inputs = torch.rand(batch, frames, channels, height, width, generator=generator)
    loss_weights = torch.randn(inputs.shape, generator=generator)
    output = model(inputs)
    (output * loss_weights).mean().backward()
    share = inside_share(output)
    assert 0.1 < share < 0.9, f"PredFormer golden: {share:.0%} of the raw output in [0, 1]"
    return save_compact(out / "predformer.pt",
                reference={"repository": PREDFORMER_REPO, "commit": commit_of(clone),
                           "file": "openstl/models/PredFormer_Quadruplet_TSST.py, "
                                   "openstl/modules/PredFormer_modules.py"},
                config={"reference": config, "vpbench": vpbench}, state_dict=state, inputs=inputs,
                output=output.detach(), loss_weights=loss_weights, grads=gradients(model),
                flops=fvcore_flops(model.float(), torch.ones(1, frames, channels, height, width)),
                full={**full_size(lambda: reference.PredFormer_Model(PREDFORMER_FULL), [],
                                  torch.ones(1, 10, 1, 64, 64)), "config": PREDFORMER_FULL},
                notes=f"output: raw [B, T, C, H, W]; {share:.0%} of it in [0, 1]; flops: batch 1, ones")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_mmvp(clones["openstl"], out, "mmvp", 1, (3, 2), 1, (32, 16), "2,2,2"),
                make_mmvp(clones["openstl"], out, "mmvp_shallow", 2, (3, 1), 2, (16, 16), "2,2"),
                make_dmvfn(clones["openstl_v030"], clones["dmvfn"], out),
                make_predformer(clones["predformer"], out)]
