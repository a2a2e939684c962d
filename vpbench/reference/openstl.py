"""Training steps of vpbench's models side by side with OpenSTL's (github.com/chengtan9907/OpenSTL), with the
reference codes built on it and with IAM4VP's.

vpbench never ships or fetches these codes: the user points ``bench speed --parts openstl`` at clones with
``--openstl PATH`` (branch OpenSTL-Lightning), ``--openstl-v030 PATH`` (branch OpenSTLv0.3.0: DMVFN, PredNet,
CrevNet), ``--predformer PATH`` (github.com/yyyujintang/PredFormer, built on OpenSTL), ``--vmrnn PATH``
(github.com/yyyujintang/VMRNN-PyTorch, built on OpenSTL) with ``--mamba PATH`` (github.com/state-spaces/mamba) and
``--iam4vp PATH`` (github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction). For each
model that vpbench and a given clone both have (:data:`PAIRS`), both are built at the same configuration (vpbench's
preset, e.g. ``openstl-quick``), trained on the same random batch with the loss and optimiser of vpbench's recipe
(each side with its own optimiser kernels: the references' torch defaults, vpbench's fused), and timed alternately
(reference, vpbench, reference, ...) so that a change of machine load affects both alike. Each side's training step
is its suite's own, over one batch of sequences:

* recurrent models (ConvLSTM, PredRNN, PredRNN++, MIM, MAU, PredRNN.V2, E3D-LSTM): OpenSTL's model takes the
  patched sequence and a scheduled-sampling mask and returns its loss (the MSE over every predicted frame;
  PredRNN.V2 adds its decoupling term), as OpenSTL's PredRNN method calls it; both sides read the true frame with
  probability :data:`SAMPLING` wherever they sample (PredRNN.V2: inside the input window too);
* PhyDNet: OpenSTL's model returns its loss (every predicted frame's MSE plus the moment loss) without teacher
  forcing, vpbench's loss likewise; SwinLSTM and VMRNN: OpenSTL's (the VMRNN authors') model on the whole sequence
  returns its MSE. The VMRNN authors' SS2D scans with mamba-ssm's fused CUDA kernel: here with that package's own
  pure-PyTorch ``selective_scan_ref`` (from the ``--mamba`` clone), vpbench's with its own loop;
* block predictors: SimVP (IncepU, in OpenSTL's form), SimVP v2 (gSTA), TAU and PredFormer called as OpenSTL's
  SimVP method (and PredFormer's authors) call them (on the input frames, rolled out on their own output when
  T_out > T_in), with MSE, and for TAU MSE + 0.1 x the differential divergence regulariser of OpenSTL's TAU
  method; MMVP on the whole sequence as OpenSTL's MMVP method feeds it (vpbench's reads the input frames only),
  with MSE;
* PredNet: OpenSTL v0.3.0's method reads the whole sequence (no extrapolation) and takes the weighted mean of its
  errors (``TrainLossCalculator``), vpbench's ``prednet`` loss the same;
* CrevNet: OpenSTL v0.3.0's method: the model's teacher-forced loss (the sum of every window's MSE), stepped by
  its two optimisers, vpbench's ``crevnet`` loss the same;
* WaST: OpenSTL's WaST method, as its SimVP method calls the model, with MSE plus its high focal frequency loss
  (its modules need timm 0.9, pywt and einops: without them its row says why it was not timed);
* Earthformer: its authors' ``CuboidTransformerModel`` (``--earthformer PATH``), built from their configuration
  file of vpbench's ``model.config`` at vpbench's sizes, on the input frames channels-last, with MSE;
* DMVFN: OpenSTL v0.3.0's method takes one optimiser step per window of three consecutive frames (18 for Moving
  MNIST), each on the Laplacian loss of every block's output, and so does vpbench's recipe (``window_frames``).
  Neither side adds the VGG perceptual term (vpbench leaves it out);
* IAM4VP: the authors' training loop (``exp.py``) takes an optimiser step per predicted frame, each on that frame's
  MSE (the model on the input frames, the earlier predictions detached, and step 100 s); vpbench's recipe one step
  per batch on the mean of the frames' MSEs. Their code fixes Moving MNIST's shapes and ``N_S`` 4: elsewhere its
  row says why it was not timed (:class:`Incomparable`).

How the single files are imported: :mod:`vpbench.reference.openstl_clone` (IAM4VP's and VMRNN's:
:mod:`vpbench.reference.authors_clones`).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import statistics
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import config as cfg
from vpbench.datasets import dataset_entry
from vpbench.datasets.base import DataSpec
from vpbench.errors import UserError
from vpbench.harness.steps import train_step_fn
from vpbench.metrics.cost import alternating_seconds, count_params, dummy_batch
from vpbench.models import build_model
from vpbench.models.dmvfn import GAMMA
from vpbench.models.iam4vp import STEP_SCALE
from vpbench.models.mcvd import configured, frame_counts
from vpbench.models.registry import get_entry
from vpbench.models.tau import DDR_ALPHA
from vpbench.reference import earthformer, mcvd
from vpbench.reference.authors_clones import (
    IAM4VP_SHAPE,
    IAM4VP_SPATIAL_LAYERS,
    iam4vp_files,
    iam4vp_reference,
    vmrnn_model_class,
)
from vpbench.reference.clones import Unavailable
from vpbench.reference.openstl_clone import (
    SOURCES,
    cuda_is_identity,
    load_model_class,
    prednet_loss_class,
    tau_regulariser,
    wast_modules,
)

SAMPLING = 0.5  # P(true frame) where the timed steps sample: both models read both kinds
VPBENCH_STEP = 999_999  # the optimiser step vpbench's timed step takes itself to be
# vpbench's sampling rate at VPBENCH_STEP is SAMPLING: linear, 1 - rate * (step + 1); reverse, before its first step
LINEAR_SAMPLING = ("train.sampling_stop_iter=1000000", f"train.sampling_changing_rate={(1 - SAMPLING) / 1e6}")
REVERSE_SAMPLING = ("train.r_sampling_step_1=2000000", "train.r_sampling_step_2=3000000")
# vpbench's options that OpenSTL's recurrent models read from their configs under the same name
RECURRENT_OPTIONS = ("sr_size", "tau", "cell_mode", "model_mode", "decouple_beta")

Builder = Callable[[type[nn.Module], dict[str, Any], DataSpec], nn.Module]
StepMaker = Callable[[nn.Module, dict[str, Any], Tensor, Tensor, Path], Callable[[], None]]


class Incomparable(Exception):
    """The reference code fixes what this configuration changes (a shape, a depth): its row says why it was not
    timed."""


def model_options(config: dict[str, Any]) -> dict[str, Any]:
    """The arguments vpbench's model of ``config`` is built with: its factory's defaults, then the configuration's."""
    parameters = inspect.signature(get_entry(config["model"]["name"]).factory).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **config["model"]}


def _in_shape(spec: DataSpec) -> tuple[int, int, int, int]:
    """OpenSTL's ``in_shape``: (T_in, C, H, W)."""
    return spec.input_frames, spec.channels, spec.height, spec.width


def _openstl_config(config: dict[str, Any], spec: DataSpec) -> types.SimpleNamespace:
    """OpenSTL's ``configs`` object for a vpbench configuration of a recurrent model (layer norm off, as in
    OpenSTL's Moving MNIST configs; reverse scheduled sampling where vpbench's recipe samples that way)."""
    options = model_options(config)
    return types.SimpleNamespace(
        in_shape=_in_shape(spec), patch_size=options["patch_size"], filter_size=options["kernel_size"], stride=1,
        layer_norm=0, pre_seq_length=spec.input_frames, aft_seq_length=spec.output_frames,
        total_length=spec.total_frames, reverse_scheduled_sampling=int(config["train"].get("sampling") == "reverse"),
        **{key: options[key] for key in RECURRENT_OPTIONS if key in options})


def recurrent_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's recurrent model of L layers of M channels: ``cls(L, [M] * L, configs)``."""
    options = model_options(config)
    layers = options["layers"]
    return cls(layers, [options["hidden"]] * layers, _openstl_config(config, spec))


def simvp_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``SimVP_Model`` with vpbench's translator (``model_type``) and sizes."""
    o = model_options(config)
    return cls(in_shape=_in_shape(spec), hid_S=o["spatial_hidden"], hid_T=o["temporal_hidden"],
               N_S=o["spatial_layers"], N_T=o["temporal_layers"], model_type=o["translator"], mlp_ratio=o["mlp_ratio"],
               drop=o["drop"], drop_path=o["drop_path"], spatio_kernel_enc=o["encoder_kernel"],
               spatio_kernel_dec=o["decoder_kernel"])


def simvp_incepu_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``SimVP_Model`` with its IncepU translator (SimVP v1; its Inception kernels 3, 5, 7, 11 in 8
    groups are fixed)."""
    o = model_options(config)
    return cls(in_shape=_in_shape(spec), hid_S=o["spatial_hidden"], hid_T=o["temporal_hidden"],
               N_S=o["spatial_layers"], N_T=o["temporal_layers"], model_type="incepu")


def mmvp_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``MMVP_Model`` predicting the dataset's T_out frames, downsampling by 2 at each of vpbench's scales."""
    o = model_options(config)
    return cls(in_shape=_in_shape(spec), aft_seq_length=spec.output_frames, hid_S=o["spatial_hidden"],
               hid_T=o["temporal_hidden"], rrdb_encoder_num=o["encoder_blocks"], rrdb_decoder_num=o["decoder_blocks"],
               rrdb_enhance_num=o["enhance_blocks"], downsample_setting=",".join(["2"] * o["scales"]))


def reference_optimizer(model: nn.Module, train: dict[str, Any]) -> torch.optim.Optimizer:
    """The references' optimiser (OpenSTL's ``openstl/core/optim_scheduler.py``, PredFormer's alike): torch's Adam or
    AdamW with its default kernels, at the rate and weight decay of vpbench's recipe."""
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if train["optimizer"] not in optimizers:
        raise UserError(f"train.optimizer={train['optimizer']!r}: the reference codes train with adam or adamw")
    optimizer = optimizers[train["optimizer"]]
    return optimizer(model.parameters(), lr=train["lr"], weight_decay=train.get("weight_decay", 0.0))


def recurrent_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """One training step of OpenSTL's recurrent model on (x, y), as its PredRNN method takes it: the sequence
    patched [B, T, H/p, W/p, p^2 C], a mask drawn at :data:`SAMPLING` for each step it samples (past the input
    window; with reverse scheduled sampling, steps 1..T-2), the loss the model returns."""
    options, p = model.configs, model.configs.patch_size
    optimizer = reference_optimizer(model, config["train"])
    frames = torch.cat([x, y], dim=1).permute(0, 1, 3, 4, 2)
    b, t, h, w, c = frames.shape
    patched = frames.reshape(b, t, h // p, p, w // p, p, c).transpose(3, 4).reshape(b, t, h // p, w // p, p * p * c)
    sampled = options.aft_seq_length - 1
    if options.reverse_scheduled_sampling:
        sampled += options.pre_seq_length - 1
    model.train()

    def step() -> None:
        mask = (torch.rand(b, sampled) < SAMPLING).float()[:, :, None, None, None]
        mask = mask.expand(-1, -1, *patched.shape[2:]).contiguous()
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(patched, mask)
        loss.backward()
        optimizer.step()

    return step


def simvp_prediction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's SimVP method: the model on the input frames, called again on its own output until T_out frames."""
    blocks = [model(x)]
    while sum(block.shape[1] for block in blocks) < y.shape[1]:
        blocks.append(model(blocks[-1]))
    return torch.cat(blocks, dim=1)[:, :y.shape[1]]


def mmvp_prediction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's MMVP method in training: the model on the whole sequence (it composes from the first T_in frames)."""
    return model(torch.cat([x, y], dim=1))


def block_step(predict: Callable[[nn.Module, Tensor, Tensor], Tensor], model: nn.Module, config: dict[str, Any],
               x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """One training step of an OpenSTL model that predicts frames at once: ``predict(model, x, y)`` as its method
    calls the model in training, and the loss of vpbench's recipe as OpenSTL computes it (:func:`criterion`)."""
    loss_fn = criterion(config["train"]["loss"], clone)
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(predict(model, x, y), y).backward()
        optimizer.step()

    return step


def phydnet_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``PhyDNet_Model`` at vpbench's widths: OpenSTL hard-codes the authors' (encoder 32 channels, PhyCell
    7 x 7 in 7 groups, ConvLSTM 128-128-64, GroupNorm of 16 groups), so its encoder, PhyCell, ConvLSTM and moment
    module are rebuilt from OpenSTL's classes at the configuration's."""
    o, modules = model_options(config), sys.modules["openstl.modules.phydnet_modules"]
    p, width, k, channels = o["patch_size"], o["width"], o["phycell_kernel"], spec.channels
    grid, latent = (spec.height // p, spec.width // p), 2 * width
    configs = types.SimpleNamespace(pre_seq_length=spec.input_frames, aft_seq_length=spec.output_frames,
                                    in_shape=_in_shape(spec), patch_size=p, device="cpu")
    with contextlib.redirect_stdout(None):  # PhyD_ConvLSTM prints its layers
        model = cls(configs)
    groups = {16: o["norm_groups"], 7: k}  # OpenSTL's GroupNorm(16, .) of the encoder, GroupNorm(7, 49) of PhyCell
    modules.nn = types.SimpleNamespace(**{**vars(nn), "GroupNorm": lambda g, c: nn.GroupNorm(groups.get(g, g), c)})
    try:
        with contextlib.redirect_stdout(None):
            hidden = list(o["convlstm_hidden"])
            model.phycell = modules.PhyCell(grid, latent, [k * k], 1, (k, k), "cpu")
            model.convcell = modules.PhyD_ConvLSTM(grid, latent, hidden, len(hidden), (3, 3), "cpu")
            encoder = modules.PhyD_EncoderRNN(model.phycell, model.convcell, in_channel=channels, patch_size=p)
            encoder.encoder_E = modules.encoder_E(nc=channels, nf=width, patch_size=p)
            encoder.encoder_Ep, encoder.encoder_Er = (modules.encoder_specific(latent, latent) for _ in range(2))
            encoder.decoder_Dp, encoder.decoder_Dr = (modules.decoder_specific(latent, latent) for _ in range(2))
            encoder.decoder_D = modules.decoder_D(nc=channels, nf=width, patch_size=p)
            model.encoder, model.k2m = encoder, modules.K2M([k, k])
    finally:
        modules.nn = nn
    return model


def phydnet_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """One training step of OpenSTL's PhyDNet: the loss its model returns, with the one-hot moment constraints of
    OpenSTL's PhyDNet method, teacher forcing ratio 0."""
    k = model_options(config)["phycell_kernel"]
    constraints = torch.eye(k * k).view(k * k, k, k)
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(x, y, constraints, 0.0).backward()
        optimizer.step()

    return step


def _swin_configs(options: dict[str, Any], spec: DataSpec) -> types.SimpleNamespace:
    """The ``configs`` object of OpenSTL's SwinLSTM-D and the VMRNN authors' VMRNN-D."""
    return types.SimpleNamespace(in_shape=_in_shape(spec), patch_size=options["patch_size"],
                                 embed_dim=options["embed_dim"], window_size=options["window_size"])


def swinlstm_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``SwinLSTM_D_Model(depths_downsample, depths_upsample, num_heads, configs)``."""
    o = model_options(config)
    return cls(list(o["depths_down"]), list(o["depths_up"]), list(o["heads"]), _swin_configs(o, spec))


def vmrnn_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """The VMRNN authors' ``VMRNN_D_Model(depths_downsample, depths_upsample, num_heads, configs)`` at vpbench's
    sizes, state size (``d_state``) and stochastic depth; their cells take heads but read none (one per level)."""
    o = model_options(config)
    heads = [1] * len(o["depths_down"])
    return cls(list(o["depths_down"]), list(o["depths_up"]), heads, _swin_configs(o, spec), d_state=o["d_state"],
               drop_path_rate=o["drop_path"])


def swinlstm_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """One training step of OpenSTL's SwinLSTM method: the model on the whole sequence [B, T, H, W, C] returns the
    MSE of its predictions of frames 2..T."""
    frames = torch.cat([x, y], dim=1).permute(0, 1, 3, 4, 2).contiguous()
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(frames)[1].backward()
        optimizer.step()

    return step


def dmvfn_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL v0.3.0's ``DMVFN_Model(in_planes, num_features, configs)``; in_planes 4C + 5 as its config's 13
    for one channel (both frames, both warped frames, the mask and the 4 flow channels)."""
    o = model_options(config)
    configs = types.SimpleNamespace(in_shape=_in_shape(spec), num_block=len(o["features"]),
                                    routing_out_channels=o["routing_hidden"], scale=list(o["scales"]), beta=o["beta"])
    return cls(4 * spec.channels + 5, list(o["features"]), configs)


def dmvfn_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of OpenSTL v0.3.0's DMVFN method: for each window of three consecutive frames, the model on the
    three (routing drawn, as in training), sum_i GAMMA^(blocks-1-i) x LapLoss(block i's frame, the third frame),
    and an optimiser step. Its ``LapLoss`` puts its kernel on CUDA when built: its forward is taken here over its
    own ``laplacian_pyramid`` and ``gauss_kernel`` on the CPU."""
    utils, frames = sys.modules["openstl.utils.dmvfn_utils"], torch.cat([x, y], dim=1)
    levels = 5 if frames.shape[-1] > 32 else 3  # as its method
    kernel = utils.gauss_kernel(channels=frames.shape[2], device="cpu")

    def lap(pred: Tensor, truth: Tensor) -> Tensor:  # its LapLoss.forward on frames [B, C, H, W]
        pyramids = (utils.laplacian_pyramid(img=z, kernel=kernel, max_levels=levels) for z in (pred, truth))
        return sum(F.l1_loss(a, b) for a, b in zip(*pyramids))

    blocks = model.configs.num_block
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        for t in range(frames.shape[1] - 2):
            optimizer.zero_grad(set_to_none=True)
            merged = model(frames[:, t:t + 3], training=True)
            truth = frames[:, t + 2]
            sum(lap(m, truth).mean() * GAMMA ** (blocks - 1 - i) for i, m in enumerate(merged)).backward()
            optimizer.step()

    return step


def prednet_reference(cls: type[nn.Module], stack_sizes: tuple[int, ...], kernel_size: int,
                      in_shape: tuple[int, int, int, int]) -> nn.Module:
    """OpenSTL v0.3.0's ``PredNet_Model`` as its method builds it from its configs (``R_stack_sizes = stack_sizes``,
    every filter ``kernel_size``, ReLU errors and targets, hard-sigmoid gates); ``in_shape``: (T_in, C, H, W)."""
    layers = len(stack_sizes)
    args = types.SimpleNamespace(error_activation="relu", A_activation="relu", LSTM_activation="tanh",
                                 LSTM_inner_activation="hard_sigmoid", device="cpu", in_shape=in_shape)
    kernels = (kernel_size,) * layers
    return cls(stack_sizes, stack_sizes, kernels[1:], kernels, kernels, 1.0, args)


def prednet_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """:func:`prednet_reference` at vpbench's widths, the frame's channels first."""
    o = model_options(config)
    return prednet_reference(cls, (spec.channels, *o["widths"]), o["kernel_size"], _in_shape(spec))


def prednet_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of OpenSTL v0.3.0's PredNet method (``train_one_epoch``): zero states from its
    ``get_initial_states``, the model over the whole sequence without extrapolating, the loss of its
    ``TrainLossCalculator`` (weight mode ``L_all`` where vpbench's ``upper_layer_weight`` is not 0, else ``L_0``)."""
    loss_class = prednet_loss_class(clone)
    utils, frames, sizes = sys.modules["openstl.utils"], torch.cat([x, y], dim=1), model.stack_sizes
    mode = "L_all" if model_options(config)["upper_layer_weight"] else "L_0"
    calculator = loss_class(len(sizes), frames.shape[1], mode, "cpu")
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        states = utils.get_initial_states(frames.shape, -2, -1, len(sizes), model.R_stack_sizes, sizes, -3, "cpu")
        _, errors = model(frames, states, extrapolation=False)
        calculator.calculate_loss(errors).backward()
        optimizer.step()

    return step


def crevnet_reference(cls: type[nn.Module], spec: DataSpec, layers: int, blocks: list[int],
                      batch: int) -> nn.Module:
    """OpenSTL v0.3.0's ``CrevNet_Model`` as its method builds it (``pre_seq_length`` T_in - 2, ``n_eval`` T - 2,
    ``rnn_size`` 32 C), for batches of ``batch`` (its states are made at that size). It hard-codes its autoencoder's
    blocks (4, 5, 3) and its states' 8 x 8 grid: the autoencoder is rebuilt from its own class with ``blocks``, and
    the grid set to the frames' 1/8. Its ``.cuda()`` calls run as the identity (:func:`cuda_is_identity`)."""
    with cuda_is_identity():
        model = cls(in_shape=_in_shape(spec), rnn_size=32 * spec.channels, batch_size=batch,
                    predictor_rnn_layers=layers, pre_seq_length=spec.input_frames - 2,
                    aft_seq_length=spec.output_frames, n_eval=spec.total_frames - 2)
        model.encoder = type(model.encoder)(nBlocks=list(blocks), nStrides=[1, 2, 2], nChannels=None, init_ds=2,
                                            dropout_rate=0.0, affineBN=True,
                                            in_shape=[spec.channels, spec.height, spec.width], mult=2)
    model.frame_predictor.w, model.frame_predictor.h = spec.height // 8, spec.width // 8
    return model


def crevnet_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """:func:`crevnet_reference` at vpbench's sizes and the timed batch."""
    o = model_options(config)
    return crevnet_reference(cls, spec, o["layers"], o["blocks"], config["train"]["batch_size"])


def crevnet_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of OpenSTL v0.3.0's CrevNet method (``train_one_epoch``): the model's teacher-forced loss over the
    whole sequence, and a step of each of its two optimisers (the predictor's and the autoencoder's)."""
    frames = torch.cat([x, y], dim=1)
    optimizers = [reference_optimizer(part, config["train"]) for part in (model.frame_predictor, model.encoder)]
    model.train()

    def step() -> None:
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with cuda_is_identity():
            loss = model(frames, training=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()

    return step


def wast_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``WaST_level1`` at vpbench's sizes (``encoder_dim``: vpbench's ``hidden``)."""
    o = model_options(config)
    return cls(in_shape=_in_shape(spec), encoder_dim=o["hidden"], block_list=list(o["blocks"]),
               drop_path_rate=o["drop_path"], mlp_ratio=o["mlp_ratio"])


def wast_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of OpenSTL's WaST method (``training_step``): the model on the input frames as its SimVP method
    calls it, MSE plus its ``HighFocalFrequencyLoss`` at vpbench's ``frequency_weight`` (its ``.cuda()`` calls as
    the identity). Its drop-path update after the step is left out (it sets attributes only)."""
    with cuda_is_identity():
        frequency_loss = wast_modules(clone).HighFocalFrequencyLoss(loss_weight=config["train"]["frequency_weight"])
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        pred = simvp_prediction(model, x, y)
        with cuda_is_identity():
            loss = F.mse_loss(pred, y) + frequency_loss(pred, y, reshape=True)
        loss.backward()
        optimizer.step()

    return step


def iam4vp_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """The authors' IAM4VP at vpbench's sizes (:func:`~vpbench.reference.authors_clones.iam4vp_reference`, over the
    ``model.py`` that defines ``cls``); :class:`Incomparable` unless the frames and ``N_S`` are those it fixes."""
    o = model_options(config)
    shape = (*_in_shape(spec), spec.output_frames)
    if shape != (*IAM4VP_SHAPE, IAM4VP_SHAPE[0]) or o["spatial_layers"] != IAM4VP_SPATIAL_LAYERS:
        t, c, h, w = IAM4VP_SHAPE
        raise Incomparable(f"the IAM4VP authors' code fixes {t} -> {t} frames of {c} x {h} x {w} and "
                           f"{IAM4VP_SPATIAL_LAYERS} spatial layers; here {spec.input_frames} -> {spec.output_frames} "
                           f"of {spec.channels} x {spec.height} x {spec.width} and {o['spatial_layers']}")
    return iam4vp_reference(inspect.getmodule(cls), time_dim=o["time_dim"], readout_dim=o["readout_dim"],
                            hid_S=o["hidden"], N_S=o["spatial_layers"], N_T=o["blocks"])


def iam4vp_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of the IAM4VP authors' training (``exp.py``): for each frame s of the target, the model on the input
    frames, the earlier predictions (detached) and time 100 s, the MSE of frame s, and an optimiser step."""
    optimizer = reference_optimizer(model, config["train"])
    model.train()

    def step() -> None:
        predictions: list[Tensor] = []
        for s in range(y.shape[1]):
            optimizer.zero_grad(set_to_none=True)
            pred = model(x, predictions, torch.tensor(STEP_SCALE * s).repeat(x.shape[0]))
            F.mse_loss(pred, y[:, s]).backward()
            predictions.append(pred.detach())
            optimizer.step()

    return step
def earthformer_model(factory: Callable[..., nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """The authors' Earthformer at vpbench's options (``factory``: :func:`vpbench.reference.earthformer.authors_model`
    bound to the clone)."""
    return factory(model_options(config), spec)


def earthformer_prediction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The authors' training step's forward: the input frames channels-last [B, T, H, W, C] in, T_out frames out."""
    return model(x.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)


def mcvd_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """The MCVD authors' ``UNetMore_DDPM`` at vpbench's options (past and block frames as vpbench resolves them)."""
    o = model_options(config)
    frames = frame_counts(spec.input_frames, spec.output_frames, o["cond_frames"], o["block_frames"], o["config"])
    return mcvd.authors_model(cls, configured(**o), spec.channels, spec.height, *frames)


def mcvd_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """A batch of the MCVD authors' training on the whole sequence (:func:`vpbench.reference.mcvd.training_step`)."""
    model.train()
    frames = model.config.data
    return mcvd.training_step(model, reference_optimizer(model, config["train"]), torch.cat([x, y], dim=1),
                              frames.num_frames_cond, frames.num_frames, config["train"]["grad_clip"])


def predformer_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """The authors' ``PredFormer_Model(model_config)`` (Quadruplet-TSST) at vpbench's sizes."""
    o = model_options(config)
    return cls({"height": spec.height, "width": spec.width, "num_channels": spec.channels,
                "pre_seq": spec.input_frames, "after_seq": spec.input_frames, "patch_size": o["patch_size"],
                "dim": o["dim"], "heads": o["heads"], "dim_head": o["head_dim"], "dropout": o["dropout"],
                "attn_dropout": o["attn_dropout"], "drop_path": o["drop_path"], "scale_dim": o["mlp_ratio"],
                "depth": o["depth"], "Ndepth": o["layers"]})


@dataclass(frozen=True)
class Pair:
    """How to build the reference's counterpart of a vpbench model and time its training step."""

    module: str  # openstl.models.<module>
    cls: str
    parts: tuple[str, ...]  # the openstl.modules.<part> files it imports from openstl.modules
    utils: tuple[str, ...] = ()  # the openstl.utils.<file> files it imports from openstl.utils
    build: Builder = recurrent_model
    step: StepMaker = recurrent_step
    sets: tuple[str, ...] = LINEAR_SAMPLING  # vpbench's options for its timed step
    source: str = "openstl"  # the clone it is read from (a key of SOURCES)
    needs: tuple[str, ...] = ()  # the other clones its loader reads (keys of SOURCES), passed after ``source``'s
    placeholders: tuple[str, ...] = ()  # names the model file imports from openstl.utils, never called in training
    requires: str = "timm<=0.6.11 (OpenSTL's pin) and a torchvision that loads"  # what it needs that may not import
    loader: Callable[..., type[nn.Module]] | None = None  # for a class outside openstl/models: (clone, *needs)

    def load(self, clone: str | Path, *others: str | Path) -> type[nn.Module]:
        """The reference's model class, from the clone at ``clone`` (and those of :attr:`needs`, in order)."""
        if self.loader is not None:
            return self.loader(clone, *others)
        return load_model_class(clone, self.module, self.cls, self.parts, self.utils, self.source, self.placeholders)


SIMVP = Pair("simvp_model", "SimVP_Model", ("simvp_modules",), build=simvp_model,
             step=functools.partial(block_step, simvp_prediction), sets=())  # the translator from vpbench's options
PAIRS = {
    "convlstm": Pair("convlstm_model", "ConvLSTM_Model", ("convlstm_modules",)),
    "stlstm": Pair("predrnn_model", "PredRNN_Model", ("predrnn_modules",)),
    "causallstm": Pair("predrnnpp_model", "PredRNNpp_Model", ("predrnnpp_modules",)),
    "mim": Pair("mim_model", "MIM_Model", ("predrnn_modules", "mim_modules")),
    "mau": Pair("mau_model", "MAU_Model", ("mau_modules",)),
    "predrnnv2": Pair("predrnnv2_model", "PredRNNv2_Model", ("predrnnv2_modules",), sets=REVERSE_SAMPLING),
    "simvp": Pair("simvp_model", "SimVP_Model", ("simvp_modules",), build=simvp_incepu_model,
                  step=functools.partial(block_step, simvp_prediction), sets=("model.form=openstl",)),
    "simvp2": SIMVP,
    "tau": SIMVP,
    "mmvp": Pair("mmvp_model", "MMVP_Model", ("mmvp_modules",), ("mmvp_utils",), build=mmvp_model,
                 step=functools.partial(block_step, mmvp_prediction), sets=()),
    "e3dlstm": Pair("e3dlstm_model", "E3DLSTM_Model", ("e3dlstm_modules",),  # OpenSTL's kernels are 5 x 5 always
                    sets=(*LINEAR_SAMPLING, "model.kernel_size=5")),
    "phydnet": Pair("phydnet_model", "PhyDNet_Model", ("phydnet_modules",), build=phydnet_model, step=phydnet_step,
                    sets=("train.sampling=none",)),  # no teacher forcing on either side
    "swinlstm": Pair("swinlstm_model", "SwinLSTM_D_Model", ("swinlstm_modules",), build=swinlstm_model,
                     step=swinlstm_step, sets=()),
    "dmvfn": Pair("dmvfn_model", "DMVFN_Model", ("dmvfn_modules",), ("dmvfn_utils",), build=dmvfn_model,
                  step=dmvfn_step, sets=(), source="openstl-v030"),
    # OpenSTL's loss on both sides (vpbench's quick recipe trains on the extrapolation fine-tuning objective)
    "prednet": Pair("prednet_model", "PredNet_Model", (), ("prednet_utils",), build=prednet_model, step=prednet_step,
                    sets=("train.loss=prednet",), source="openstl-v030", placeholders=("reduce_tensor",)),
    "crevnet": Pair("crevnet_model", "CrevNet_Model", ("crevnet_modules",), build=crevnet_model, step=crevnet_step,
                    sets=(), source="openstl-v030"),
    "wast": Pair("", "WaST_level1", (), build=wast_model, step=wast_step, sets=(),
                 loader=lambda clone: wast_modules(clone).WaST_level1,
                 requires="timm 0.9.12, PyWavelets and einops (pip install --no-deps --target DIR timm==0.9.12 "
                          "PyWavelets einops; DIR on PYTHONPATH)"),
    "predformer": Pair("PredFormer_Quadruplet_TSST", "PredFormer_Model", ("PredFormer_modules",),
                       build=predformer_model, step=functools.partial(block_step, simvp_prediction), sets=(),
                       source="predformer", placeholders=("measure_throughput",)),
    # the authors' patch inflation (unused by their forward) builds GroupNorm(16, embed_dim): embed 16, not quick's 8
    "vmrnn": Pair("", "VMRNN_D_Model", (), build=vmrnn_model, step=swinlstm_step, sets=("model.embed_dim=16",),
                  source="vmrnn",
                  needs=("mamba",), loader=vmrnn_model_class,
                  requires="timm 0.6.11 (pip install --no-deps --target DIR timm==0.6.11; DIR on PYTHONPATH), einops "
                           "and fvcore"),
    "iam4vp": Pair("", "IAM4VP", (), build=iam4vp_model, step=iam4vp_step, sets=(), source="iam4vp",
                   loader=lambda clone: iam4vp_files(clone)[1].IAM4VP, requires="einops"),
    "earthformer": Pair("", "CuboidTransformerModel", (), build=earthformer_model,
                        step=functools.partial(block_step, earthformer_prediction), sets=(), source="earthformer",
                        loader=lambda clone: functools.partial(earthformer.authors_model, clone),
                        requires="PyYAML (the authors' configuration files)"),
    "mcvd": Pair("", "UNetMore_DDPM", (), build=mcvd_model, step=mcvd_step, sets=(), source="mcvd",
                 loader=mcvd.model_class, requires="what the authors' models/ imports (numpy, scipy)"),
}


def criterion(loss: str, clone: Path) -> Callable[[Tensor, Tensor], Tensor]:
    """OpenSTL's loss for vpbench's ``train.loss`` of a block predictor: ``mse``, or ``mse_ddr`` (TAU's MSE +
    alpha x OpenSTL's differential divergence regulariser, alpha 0.1 as in configs/mmnist/TAU.py)."""
    if loss == "mse":
        return F.mse_loss
    if loss == "mse_ddr":
        regulariser = tau_regulariser(clone)
        return lambda pred, target: F.mse_loss(pred, target) + DDR_ALPHA * regulariser(pred, target)
    raise UserError(f"train.loss={loss!r}: the OpenSTL timing knows no counterpart; use mse or mse_ddr")


def compare(clones: Mapping[str, str | Path], models: list[str], *, preset: str, dataset: str, batch: int,
            repeats: int = 5) -> list[dict[str, Any]]:
    """Median seconds of a training step of each model and of the reference's, timed alternately after a warm-up.
    ``clones``: the folder of each clone given, by source (a key of :data:`SOURCES`). Models without a counterpart
    in :data:`PAIRS` are left out; a model whose clone is not given, or whose reference cannot be built here (timm),
    gets a row without times that says why, as does one the reference cannot be built at (:class:`Incomparable`);
    none at all is an error."""
    paired = [name for name in models if name in PAIRS]
    if not paired:
        raise UserError(f"--parts openstl: none of {', '.join(models) or 'no models'} has an OpenSTL counterpart "
                        f"here; the paired models are {', '.join(PAIRS)}")
    rows = []
    for name in paired:
        pair = PAIRS[name]
        row = {"model": name, "source": pair.source, "batch": batch, "seconds": None}
        absent = [source for source in (pair.source, *pair.needs) if source not in clones]
        if absent:
            rows.append({**row, "missing": " and ".join(f"give {SOURCES[s][0]} PATH, a clone of {SOURCES[s][1]}"
                                                        for s in absent)})
            continue
        clone, *others = (Path(clones[source]).expanduser() for source in (pair.source, *pair.needs))
        config = cfg.resolve(preset, name, dataset, sets=cfg.parse_sets(list(pair.sets)))
        config["train"]["batch_size"] = batch
        spec = dataset_entry(dataset).spec(config["dataset"])
        torch.manual_seed(0)
        ours = build_model(config)
        torch.manual_seed(0)
        try:
            theirs = pair.build(pair.load(clone, *others), config, spec)
        except Unavailable as err:
            rows.append({**row, "missing": f"{err}; install {pair.requires}"})
            continue
        except Incomparable as err:
            rows.append({**row, "missing": str(err)})
            continue
        x, y = dummy_batch(spec, batch)
        steps = {"reference": pair.step(theirs, config, x, y, clone),
                 "vpbench": train_step_fn(ours, spec, config["train"], torch.device("cpu"), batch, step=VPBENCH_STEP)}
        try:
            steps["reference"]()  # warm-up
        except Exception as err:  # noqa: BLE001  e.g. OpenSTL's PredRNN++ needs two layers
            raise UserError(f"the reference's {pair.cls} does not train at {name}'s {preset} configuration "
                            f"({type(err).__name__}: {err})") from err
        steps["vpbench"]()  # warm-up
        times = alternating_seconds(steps, repeats, warmup=0)
        rows.append({**row, "params": {"vpbench": count_params(ours), "reference": count_params(theirs)},
                     "seconds": {k: statistics.median(wall for wall, _ in v) for k, v in times.items()}})
    return rows


def markdown(rows: list[dict[str, Any]], preset: str, repeats: int) -> list[str]:
    lines = [f"## Training step against the reference code ({preset} configuration, CPU)", "",
             "| Model | Reference | Params (vpbench / reference) | Batch | vpbench (s) | Reference (s) | Speed-up |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["seconds"] is None:
            continue
        s, params = r["seconds"], r["params"]
        lines.append(f"| {r['model']} | {r['source']} | {params['vpbench']:,} / {params['reference']:,} | "
                     f"{r['batch']} | {s['vpbench']:.3f} | {s['reference']:.3f} | "
                     f"{s['reference'] / s['vpbench']:.2f}x |")
    lines += ["", (f"Medians of {repeats} steps each after a warm-up, timed alternately; torch threads: "
                   f"{torch.get_num_threads()}; 1-minute load average {os.getloadavg()[0]:.2f}. A step is one batch "
                   "of sequences. OpenSTL's ConvLSTM, PredRNN++, MIM, MAU, MMVP and SwinLSTM and the VMRNN and "
                   "IAM4VP authors' models define modules their forward never uses (more parameters, no more work). "
                   "TAU: MSE + 0.1 x the differential divergence on both sides. MMVP: OpenSTL trains it on the whole "
                   "sequence (input and target frames encoded), vpbench on the input frames. DMVFN: both take an "
                   "optimiser step per window of three frames; its routing draws which blocks run, so its times vary "
                   "more. VMRNN: the reference scans with mamba-ssm's pure-PyTorch selective_scan_ref (its fused "
                   "kernel needs CUDA). IAM4VP: the authors take an optimiser step per predicted frame and encode the "
                   "input frames again for each, vpbench one step per batch and one encoding.")]
    lines += [f"\nNot timed: {r['model']} ({r['missing']})." for r in rows if r["seconds"] is None]
    return lines + [""]
