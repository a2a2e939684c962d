"""Golden files for SRVP and ConvGRU from the official SRVP code (github.com/yuseonk/SRVP).

    PYTHONPATH=/work/refdeps python tools/golden/make.py --srvp PATH/TO/SRVP --only srvp_convgru

(the official code imports ``einops``; put it on PYTHONPATH if it is not installed). Everything runs
in float64 from fixed seeds, at a tiny configuration: kernel 3, batch 2, 4 -> 3 frames of 1x12x16
(non-square, so that a swapped height and width shows), emb_dim = M/2 as the official ``main.py``.
Four files:

* ``srvp.pt`` (M=8, L=2) and ``srvp_layers1.pt`` (M=4, L=1, where the temporal attention takes the
  signed score instead of the L2 norm over the layers' scores): the official ``model/SRVP.py``
  ``EncoderDecoder``, built as ``main.py``'s ``get_model`` (dropout 0.5), then every ``nn.Dropout``
  set to p=0. Its weights (``state_dict``), with the norms' affine weights and the batch-norm running
  statistics drawn at random (their constant initial values would hide a mis-mapped norm), all
  rounded to float32 values and stored as float32 (the same float64 values, half the bytes); a fixed
  input; ``output_eval`` (eval mode); ``output`` (training mode, dropout off, batch statistics);
  ``grads`` after backpropagating ``(output * loss_weights).mean()``; ``bn_stats`` (the batch-norm
  buffers after that training-mode forward).
* ``convgru.pt``: the official ``model/ConvGRU.py`` on 6x8 frames: ``cell``, one ``Conv2DGRUCell``
  (3 -> 5 channels) run for 3 steps from a random state; ``block``, a 2-layer ``RecurrentBlock``
  (1 -> 8 channels, zero initial state, as SRVP's encoder) over 4 frames. Outputs, final states,
  parameter gradients and input gradients. The official code has no plain ConvGRU
  encoder-forecaster (only inside ``EncoderDecoder``), so none is compared.
* ``recipe_srvp.pt``: the recipe golden (``tests/helpers/recipes.py``): the official ``Estimator`` again, from
  ``srvp.pt``'s weights, for ``RECIPE_EPOCHS`` epochs of ``RECIPE_BATCHES`` batches of uint8 frames (/ 255 in
  float32, as vpbench's trainer reads them, then float64), at ``lr=RECIPE_LR`` and with a loader whose length is
  its number of batches (a DataLoader's), so that ``init_net``'s T_max is len // bs x epochs = 3: the cosine
  falls to eta_min over the run and each epoch's rate differs. Per optimiser step: the rate it used, its loss and
  the sketch of every weight and batch-norm buffer after it (``helpers.parity.sketch``, seed ``SKETCH_SEED``;
  the frame ConvNet once, as ``layers.0``). Dropout off, as in the other cases (the official dropout draws
  torch's masks, vpbench's its own: the two never draw the same).
* ``srvp_training.pt``: the official training loop, ``utils.py``'s ``Estimator``. Its ``init_net``
  builds the loss (``BCELoss()``), the optimiser (``RMSprop(lr, weight_decay=1e-4, momentum=0.9)``)
  and the schedule (``CosineAnnealingLR(T_max=len(train_set) // bs * epochs, eta_min=1e-7)``); its
  ``training`` runs one epoch (zero_grad, forward, loss, backward, step for each batch, then one
  ``scheduler.step()``). Run with ``lr=1e-5`` (``train.sh``), ``epoch=150``, ``bs=8`` and a train
  set that reports the official loader's length (10,000 sequences / 8 = 1,250 batches), so T_max is
  1250 // 8 * 150 = 23,400 as in the paper's runs; three epochs of one fixed batch each, so that the
  schedule steps between the three optimiser steps. The run starts from ``srvp.pt``'s weights (not
  stored again: ``initial_sha256`` is their ``fingerprint``). Stored: the official settings
  (``config``), the batches, the learning rate and the loss of each step, the rate after the third
  epoch and the weights and batch-norm buffers after the three steps (``final_state_dict``).

What differs from running the official code as it is, all needed for float64 and nothing else:
``Conv2DGRUCell.init_state`` returns its zeros cast to float64 (the official casts them to float32);
``Estimator.training`` calls ``.float()`` on each batch, which here returns the float64 batch; the
official ``utils.py`` is imported with torchvision standing in (it imports ``transforms`` and never
uses it) and matplotlib's style call skipped (seaborn's style is named differently in recent
matplotlib). Validation, checkpoint files and logging of ``Estimator.do`` are not run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from golden_files import ROOT, gradients, save
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import sketch  # noqa: E402  the tests sketch their weights the same way

from vpbench.reference.clones import commit_of, folder_module, load_file, stand_in

SOURCES = ("srvp",)
REPO = "github.com/yuseonk/SRVP"

B, N, T, C, H, W = 2, 4, 3, 1, 12, 16  # batch, input frames, output frames, channels, height, width
M, L, K = 8, 2, 3  # hidden channels, layers, kernel
M1 = 4  # hidden channels of the L=1 case (the smallest SRVP: RFA has M/4 channels)
HG, WG = 6, 8  # frame size of the ConvGRU cases
DROPOUT = 0.5  # main.py's, set to 0 in every nn.Dropout after construction
LR, EPOCHS, BS, LOADER_BATCHES = 1e-5, 150, 8, 1250  # train.sh; 10,000 sequences in batches of 8
RECIPE_LR, RECIPE_EPOCHS, RECIPE_BATCHES, SKETCH_SEED = 1e-3, 3, 2, 11  # recipe_srvp.pt: 6 steps, T_max 3


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    clone = Path(clones["srvp"]).expanduser().resolve()
    srvp, convgru = _import_model(clone)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        reference = {"repository": REPO, "commit": commit_of(clone)}
        model_case = _srvp_case(srvp, L, M, seed=0)
        paths = [
            save(out / "srvp.pt", reference={**reference, "file": "model/SRVP.py"}, **model_case),
            save(out / "srvp_layers1.pt", reference={**reference, "file": "model/SRVP.py"},
                 **_srvp_case(srvp, 1, M1, seed=1)),
            save(out / "convgru.pt", reference={**reference, "file": "model/ConvGRU.py"},
                 cell=_cell_case(convgru), block=_block_case(convgru)),
            save(out / "srvp_training.pt", reference={**reference, "file": "utils.py (Estimator), model/SRVP.py"},
                 **_training_case(clone, srvp, model_case["state_dict"])),
            save(out / "recipe_srvp.pt", reference={**reference, "file": "utils.py (Estimator), model/SRVP.py"},
                 **_recipe_case(clone, srvp, model_case["state_dict"])),
        ]
    finally:
        torch.set_default_dtype(previous)
    return paths


# -- importing the official code ------------------------------------------------------------------
def _import_model(clone: Path):
    """The official model/SRVP.py and model/ConvGRU.py, with float64 initial states."""
    if not (clone / "model" / "SRVP.py").is_file():
        raise SystemExit(f"--srvp {clone}: no model/SRVP.py there; give a clone of {REPO}")
    if importlib.util.find_spec("einops") is None:
        raise SystemExit("the official SRVP code imports einops: pip install --target DIR einops and put DIR "
                         "on PYTHONPATH")
    srvp, convgru = folder_module(clone / "model", "SRVP"), folder_module(clone / "model", "ConvGRU")
    official_init_state = convgru.Conv2DGRUCell.init_state

    def init_state(self, *args, **kwargs):  # the official zeros, which it casts to float32, in float64
        return official_init_state(self, *args, **kwargs).to(torch.get_default_dtype())

    convgru.Conv2DGRUCell.init_state = init_state
    return srvp, convgru


def _import_utils(clone: Path):
    """The official utils.py (Estimator), without torchvision and without its plot style."""
    import matplotlib

    matplotlib.use("Agg")
    stand_in("torchvision")
    filters = warnings.filters[:]  # utils.py silences every warning of the process
    try:
        with mock.patch("matplotlib.pyplot.style.use"):
            return load_file(clone, "utils.py")
    finally:
        warnings.filters[:] = filters


# -- building ---------------------------------------------------------------------------------------
def _official_model(srvp, layers: int, hidden: int, seed: int) -> nn.Module:
    """EncoderDecoder as main.py's get_model builds it, dropout off, random norm weights and statistics."""
    torch.manual_seed(seed)
    net = srvp.EncoderDecoder(hidden // 2, N, C, [hidden] * layers, [K] * layers, (H, W), DROPOUT, T, C,
                              torch.device("cpu"))
    _dropout_off(net)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    _float32_grid(net)
    return net


def _dropout_off(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state's names and values (as float32), in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _float32_grid(net: nn.Module) -> None:
    """Round every floating parameter and buffer to a float32 value (stored as float32, exactly)."""
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.is_floating_point():
                t.copy_(t.float())


def _compact(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state on the float32 grid stored in float32 (the same values; half the bytes)."""
    compact = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    assert all(torch.equal(compact[k].to(v.dtype), v) for k, v in state.items())
    return compact


def _bn_stats(net: nn.Module) -> dict[str, torch.Tensor]:
    """The batch-norm buffers (running_mean, running_var, num_batches_tracked) by name."""
    return {k: v.detach().clone() for k, v in net.named_buffers() if "running_" in k or "num_batches" in k}


def _config(layers: int, hidden: int) -> dict[str, Any]:
    return {
        "official": {"emb_dim": hidden // 2, "input_time": N, "input_channels": C, "hidden_channels": [hidden] * layers,
                     "kernel_size": [K] * layers, "img_size": (H, W), "dropout": DROPOUT, "horizon": T,
                     "output_channels": C, "dropout_set_to": 0.0},
        "vpbench": {"hidden": hidden, "layers": layers, "kernel_size": K, "patch_size": 1, "in_channels": C,
                    "img_size": (H, W), "input_frames": N, "dropout": 0.0},
        "batch": B, "output_frames": T,
    }


# -- the cases ------------------------------------------------------------------------------------
def _srvp_case(srvp, layers: int, hidden: int, seed: int) -> dict[str, Any]:
    net = _official_model(srvp, layers, hidden, seed)
    state = _state(net)
    g = torch.Generator().manual_seed(100 + seed)
    inputs = torch.rand(B, N, C, H, W, generator=g)
    loss_weights = torch.randn(B, T, C, H, W, generator=g)
    net.eval()
    with torch.no_grad():
        output_eval = net(inputs)
    net.train()
    output = net(inputs)
    bn_stats = _bn_stats(net)
    (output * loss_weights).mean().backward()
    return {"config": _config(layers, hidden), "state_dict": _compact(state), "inputs": inputs,
            "output_eval": output_eval, "output": output.detach(), "loss_weights": loss_weights,
            "grads": gradients(net), "bn_stats": bn_stats}


def _cell_case(convgru) -> dict[str, Any]:
    """One Conv2DGRUCell (3 -> 5 channels) for 3 steps from a random state."""
    torch.manual_seed(2)
    cell = convgru.Conv2DGRUCell(3, 5, K, DROPOUT)
    _dropout_off(cell)
    cell.train()
    g = torch.Generator().manual_seed(102)
    inputs = torch.rand(B, 3, 3, HG, WG, generator=g).requires_grad_()
    state0 = torch.randn(B, 5, HG, WG, generator=g).requires_grad_()
    loss_weights = torch.randn(B, 3, 5, HG, WG, generator=g)
    state, outputs = state0, []
    for t in range(inputs.shape[1]):
        state = cell(inputs[:, t], state)
        outputs.append(state)
    output = torch.stack(outputs, dim=1)
    (output * loss_weights).mean().backward()
    return {"config": {"input_channels": 3, "hidden_channels": 5, "kernel_size": K, "dropout": DROPOUT,
                       "dropout_set_to": 0.0},
            "state_dict": _state(cell), "inputs": inputs.detach(), "state0": state0.detach(),
            "output": output.detach(), "loss_weights": loss_weights, "grads": gradients(cell),
            "input_grads": {"inputs": inputs.grad.clone(), "state0": state0.grad.clone()}}


def _block_case(convgru) -> dict[str, Any]:
    """A RecurrentBlock of L layers (C -> M channels) over N frames from the zero state (SRVP's encoder).

    Loss: (outputs * loss_weights).mean() + (final states * state_weights).mean()."""
    torch.manual_seed(3)
    block = convgru.RecurrentBlock(1, (HG, WG), C, [M] * L, [K] * L, DROPOUT)
    _dropout_off(block)
    block.train()
    g = torch.Generator().manual_seed(103)
    inputs = torch.rand(B, N, C, HG, WG, generator=g).requires_grad_()
    loss_weights = torch.randn(B, N, M, HG, WG, generator=g)
    state_weights = torch.randn(L, B, M, HG, WG, generator=g)
    output, states = block(inputs)
    states = torch.stack(states)
    ((output * loss_weights).mean() + (states * state_weights).mean()).backward()
    return {"config": {"input_channels": C, "hidden_channels": [M] * L, "kernel_size": [K] * L,
                       "img_size": (HG, WG), "dropout": DROPOUT, "dropout_set_to": 0.0},
            "state_dict": _state(block), "inputs": inputs.detach(), "output": output.detach(),
            "states": states.detach(), "loss_weights": loss_weights, "state_weights": state_weights,
            "grads": gradients(block), "input_grads": {"inputs": inputs.grad.clone()}}


class _Batch:
    """A batch tensor for Estimator.training: its ``.float()`` keeps float64, ``.to`` gives the tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def float(self) -> "_Batch":
        return self

    def to(self, device) -> torch.Tensor:
        return self.tensor.to(device)


class _Epochs:
    """The train loader: one fixed batch per epoch; its length is the official loader's (for T_max)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches, self.epoch = batches, 0

    def __len__(self) -> int:
        return LOADER_BATCHES

    def __iter__(self):
        batch = self.batches[self.epoch]
        yield {"input": _Batch(batch["input"]), "label": _Batch(batch["label"])}


def _training_case(clone: Path, srvp, initial: dict[str, torch.Tensor]) -> dict[str, Any]:
    utils = _import_utils(clone)
    net = _official_model(srvp, L, M, seed=0)
    net.load_state_dict(initial)
    g = torch.Generator().manual_seed(104)
    batches = [{"input": torch.rand(B, N, C, H, W, generator=g), "label": torch.rand(B, T, C, H, W, generator=g)}
               for _ in range(3)]
    loader = _Epochs(batches)
    estimator = utils.Estimator(epoch=EPOCHS, bs=BS, net=net, train_set=loader, val_set=None, ctx=0, dst_path=".")
    estimator.init_net(LR)
    official_loss, losses = estimator.loss_fn, []

    def loss_fn(pred, label):
        loss = official_loss(pred, label)
        losses.append(loss.detach().clone())
        return loss

    estimator.loss_fn = loss_fn
    logger = logging.getLogger("golden.srvp")  # Estimator.training logs its epoch loss
    lrs = []
    for epoch in range(len(batches)):
        loader.epoch = epoch
        lrs.append(estimator.optimizer.param_groups[0]["lr"])
        estimator.training(logger)
    optimizer, scheduler = estimator.optimizer, estimator.scheduler
    group = optimizer.param_groups[0]
    return {
        "config": {**_config(L, M), "loss": type(official_loss).__name__,
                   "optimizer": {"name": type(optimizer).__name__,
                                 **{k: optimizer.defaults[k] for k in ("lr", "alpha", "eps", "weight_decay",
                                                                        "momentum", "centered")}},
                   "scheduler": {"name": type(scheduler).__name__, "T_max": scheduler.T_max,
                                 "eta_min": scheduler.eta_min, "base_lr": LR, "stepped": "once per epoch"},
                   "estimator": {"epoch": EPOCHS, "bs": BS, "len_train_set": LOADER_BATCHES},
                   "protocol": "3 epochs of one batch each: one optimiser step per epoch, then scheduler.step()"},
        "initial_sha256": fingerprint(initial), "batches": batches, "lrs": torch.tensor(lrs),
        "losses": torch.stack(losses), "lr_after": torch.tensor(group["lr"]),
        "final_state_dict": _state(net),
    }


class _RecipeEpochs:
    """The train loader of ``recipe_srvp.pt``: epoch ``epoch``'s batches (uint8 [B, N + T, C, H, W] each, as frames
    / 255 in float32, then float64); its length is its number of batches, as a DataLoader's."""

    def __init__(self, batches: torch.Tensor) -> None:
        self.batches, self.epoch = batches, 0

    def __len__(self) -> int:
        return self.batches.shape[1]

    def __iter__(self):
        for batch in self.batches[self.epoch]:
            frames = batch.float().div(255).double()
            yield {"input": _Batch(frames[:, :N]), "label": _Batch(frames[:, N:])}


def _recipe_case(clone: Path, srvp, initial: dict[str, torch.Tensor]) -> dict[str, Any]:
    utils = _import_utils(clone)
    net = _official_model(srvp, L, M, seed=0)
    net.load_state_dict(initial)
    g = torch.Generator().manual_seed(105)
    batches = torch.randint(0, 256, (RECIPE_EPOCHS, RECIPE_BATCHES, B, N + T, C, H, W), generator=g,
                            dtype=torch.uint8)
    loader = _RecipeEpochs(batches)
    estimator = utils.Estimator(epoch=RECIPE_EPOCHS, bs=B, net=net, train_set=loader, val_set=None, ctx=0,
                                dst_path=".")
    estimator.init_net(RECIPE_LR)
    official_loss, optimizer = estimator.loss_fn, estimator.optimizer
    lrs, losses, sketches = [], [], []
    shared = [k for k in net.state_dict() if k.startswith("enc_sc.lpconv.layers.")
              and not k.startswith("enc_sc.lpconv.layers.0.")]  # the same tensors as layers.0

    def loss_fn(pred, label):  # the official BCELoss, each step's rate and loss recorded
        lrs.append(optimizer.param_groups[0]["lr"])
        loss = official_loss(pred, label)
        losses.append(loss.detach().clone())
        return loss

    def after_step(*args: Any, **kwargs: Any) -> None:  # the weights after each optimiser step, sketched
        state = {k: v for k, v in net.state_dict().items() if v.is_floating_point() and k not in shared}
        sketches.append(sketch(state, SKETCH_SEED))

    estimator.loss_fn = loss_fn
    optimizer.register_step_post_hook(after_step)
    logger = logging.getLogger("golden.srvp")
    for epoch in range(RECIPE_EPOCHS):
        loader.epoch = epoch
        estimator.training(logger)
    scheduler = estimator.scheduler
    return {
        "config": {**_config(L, M), "input_frames": N, "sketch_seed": SKETCH_SEED,
                   "optimizer": {k: optimizer.defaults[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum")},
                   "scheduler": {"T_max": scheduler.T_max, "eta_min": scheduler.eta_min},
                   "train": {"epochs": RECIPE_EPOCHS, "batch_size": B, "lr": RECIPE_LR,
                             "t_max_epochs": scheduler.T_max}},
        "initial_sha256": fingerprint(initial), "batches": batches, "lr": torch.tensor(lrs, dtype=torch.float64),
        "loss": torch.stack(losses), "weight_sketches": sketches,
    }
