"""Golden files of OpenSTL's training recipes: several optimiser steps of OpenSTL's own training code.

Writes ``tests/golden/recipe_{predrnn,simvp,predrnnv2}.pt`` (read by ``tests/parity/test_parity_openstl_recipes.py``) from a clone of
github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning). The one-step goldens hold a model's forward and
backward; these hold its recipe: OpenSTL's method class (``openstl/methods/predrnn.py``: its ``training_step``,
which draws the scheduled-sampling mask with ``schedule_sampling`` of ``openstl/utils/predrnn_utils.py``, or for
PredRNN.V2, ``methods/predrnnv2.py``, with ``reserve_schedule_sampling_exp``; ``methods/simvp.py``), the
optimiser and schedule of ``Base_method.configure_optimizers`` (``openstl/core/optim_scheduler.py``'s
``get_optim_scheduler`` at OpenSTL's defaults: Adam, weight decay 0, OneCycleLR with final_div_factor 1e4 stepped
every batch) and the model's loss, run for ``EPOCHS`` x ``BATCHES`` steps on fixed batches.

What is not OpenSTL's own code: Lightning. Lightning is not installed here, so a stand-in ``LightningModule`` gives
the methods what they read of it (``hparams`` from ``save_hyperparameters``, ``global_step``, ``device``, ``log``)
and :func:`lightning_steps` runs Lightning's automatic optimisation as it does for one optimiser with a scheduler of
interval ``step``: zero the gradients, ``training_step``, backward, ``optimizer.step()``, ``scheduler.step()``, with
``global_step`` the optimiser steps done. The numpy draws of the sampling function (``np.random.random_sample``,
seeded) are recorded as it makes them, so that vpbench's trainer can be given the same ones.

Everything runs in float64 (weights and frames; the frames are uint8 / 255 in float32 first, as vpbench's trainer
reads them). Each file holds ``batches`` (uint8 [epochs, batches, B, T, C, H, W]), ``draws`` (per step, what the
sampling function drew), ``state_dict`` (OpenSTL's initial weights, its default initialisation from ``SEED``) and per
step ``lr`` (the rate the step used), ``loss`` (the training step's loss) and ``weights`` (the weights after it, by
OpenSTL's names; SimVP's as ``weight_sketches``, see :func:`make_simvp`); ``config`` holds OpenSTL's hyperparameters and vpbench's model options and ``train.*`` keys for
the same recipe.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from golden_files import ROOT, default_dtype, save
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import sketch  # noqa: E402  the tests sketch their weights the same way

from vpbench.reference.clones import commit_of, import_into, package, restored_modules, stand_in
from vpbench.reference.openstl_clone import load_model_class

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
SEED = 20261207
SKETCH_SEED = 7
EPOCHS, BATCHES, BATCH = 2, 3, 2  # 6 optimiser steps, OneCycle over all of them
PRE, AFT, CHANNELS, FRAME, PATCH = 4, 4, 1, (8, 8), 2
# OpenSTL's defaults (openstl/utils/parser.py default_parser) that its optimiser and scheduler builder reads
OPENSTL_DEFAULTS = {"opt": "adam", "opt_eps": None, "opt_betas": None, "momentum": 0.9, "weight_decay": 0.0,
                    "filter_bias_and_bn": False, "final_div_factor": 1e4, "gpus": [0], "min_lr": 1e-6,
                    "warmup_lr": 1e-5, "warmup_epoch": 0, "metrics": ["mse", "mae"], "dataname": "mmnist"}


class LightningStandIn(nn.Module):
    """What OpenSTL's methods read of ``pytorch_lightning.LightningModule``: ``save_hyperparameters`` (the
    ``**args`` of the method's ``__init__`` as ``hparams``), ``global_step``, ``device`` and ``log``."""

    global_step = 0

    def save_hyperparameters(self) -> None:
        caller = inspect.currentframe().f_back
        self.hparams = types.SimpleNamespace(**caller.f_locals["args"])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


def method_class(clone: Path, method: str, cls: str, model_file: str, model_class: str,
                 module_files: tuple[str, ...]) -> type:
    """OpenSTL's method class ``cls`` of ``openstl/methods/<method>.py`` over the stand-in Lightning, with the
    model, ``openstl.utils``' sampling functions and ``openstl.core``'s optimiser builder it imports."""
    root = Path(clone) / "openstl"
    load_model_class(clone, model_file, model_class, module_files)
    utils = sys.modules["openstl.utils"]
    import_into(utils, ("predrnn_utils",))
    vars(utils).update(print_log=print, check_dir=lambda path: path)  # logging helpers (main_utils needs cv2)
    core = package("openstl.core", root / "core")
    import_into(core, ("optim_constant",))
    for name in ("timm.optim.adafactor", "timm.optim.adahessian", "timm.optim.adamp", "timm.optim.lookahead",
                 "timm.optim.nadam", "timm.optim.nvnovograd", "timm.optim.radam", "timm.optim.rmsprop_tf",
                 "timm.optim.sgdp", "timm.scheduler.cosine_lr", "timm.scheduler.multistep_lr",
                 "timm.scheduler.step_lr", "timm.scheduler.tanh_lr"):  # optimisers the recipes do not use
        stand_in(name)
    import_into(core, ("optim_scheduler",))
    vars(core).update(metric=None)  # the test metrics (metrics.py needs cv2); training never calls them
    stand_in("pytorch_lightning", LightningModule=LightningStandIn)
    package("openstl.methods", root / "methods")
    return getattr(importlib.import_module(f"openstl.methods.{method}"), cls)


def frames_of(batch: np.ndarray, pre: int = PRE) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, T, C, H, W] -> (inputs, targets) as vpbench's trainer reads them (uint8 / 255 in float32), in
    float64."""
    frames = torch.from_numpy(batch).float().div(255).double()
    return frames[:, :pre].contiguous(), frames[:, pre:].contiguous()  # as its data loader gives them


def recorded_draws(draws: list[np.ndarray]) -> contextlib.AbstractContextManager:
    """``np.random.random_sample`` as it is, each draw also appended to ``draws``."""
    original = np.random.random_sample

    def record(*args: Any, **kwargs: Any) -> np.ndarray:
        draws.append(np.array(original(*args, **kwargs)))
        return draws[-1]

    return mock.patch.object(np.random, "random_sample", record)


def lightning_steps(method: nn.Module, batches: np.ndarray, pre: int = PRE) -> dict[str, Any]:
    """Lightning's automatic optimisation of ``method`` over ``batches`` (uint8 [epochs, batches, B, T, C, H, W]):
    per step the rate used, the loss, the draws made and the weights after the step."""
    config = method.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    per_step = config["lr_scheduler"]["interval"] == "step"
    lrs, losses, weights, draws = [], [], [], []
    np.random.seed(SEED)
    for epoch in batches:
        for index, batch in enumerate(epoch):
            method.global_step = len(losses)
            optimizer.zero_grad()
            step_draws: list[np.ndarray] = []
            with recorded_draws(step_draws):
                loss = method.training_step(frames_of(batch, pre), index)
            lrs.append(optimizer.param_groups[0]["lr"])
            loss.backward()
            optimizer.step()
            if per_step:
                scheduler.step()
            losses.append(loss.detach().clone())
            draws.append([torch.from_numpy(d) for d in step_draws])
            weights.append({n: q.detach().clone() for n, q in method.model.state_dict().items()})
        if not per_step:
            scheduler.step()
    return {"lr": torch.tensor(lrs, dtype=torch.float64), "loss": torch.stack(losses), "weights": weights,
            "draws": draws}


# The recurrent recipes: OpenSTL method, its model, and its sampling settings (OpenSTL's and vpbench's keys)
STACKS = {
    "predrnn": {"method": ("predrnn", "PredRNN"), "model": ("predrnn_model", "PredRNN_Model", "predrnn_modules"),
                "sampling": {"reverse_scheduled_sampling": 0, "scheduled_sampling": 1, "sampling_stop_iter": 3,
                             "sampling_start_value": 1.0, "sampling_changing_rate": 0.25},
                "train": {"sampling_stop_iter": 3, "sampling_changing_rate": 0.25}},
    "predrnnv2": {"method": ("predrnnv2", "PredRNNv2"),
                  "model": ("predrnnv2_model", "PredRNNv2_Model", "predrnnv2_modules"),
                  "sampling": {"reverse_scheduled_sampling": 1, "scheduled_sampling": 1, "r_sampling_step_1": 1,
                               "r_sampling_step_2": 4, "r_exp_alpha": 2, "decouple_beta": 0.1},
                  "train": {"r_sampling_step_1": 1, "r_sampling_step_2": 4, "r_exp_alpha": 2}},
}


def make_stack(clone: Path, out: Path, name: str) -> Path:
    """``recipe_<name>.pt``: OpenSTL's method of ``name`` (2 ST-LSTM layers of 4, filter 3) with its sampling
    (``STACKS``: PredRNN's falling by 0.25 a step until step 3; PredRNN.V2's reverse schedule from step 1 to 4,
    alpha 2, and its decoupling term at beta 0.1), Adam + OneCycle at peak rate 0.01."""
    spec = STACKS[name]
    hparams = {**OPENSTL_DEFAULTS, "method": name, "num_hidden": "4,4", "filter_size": 3, "stride": 1,
               "patch_size": PATCH, "layer_norm": 0, "in_shape": (PRE + AFT, CHANNELS, *FRAME),
               "pre_seq_length": PRE, "aft_seq_length": AFT, "total_length": PRE + AFT, **spec["sampling"],
               "lr": 1e-2, "sched": "onecycle", "epoch": EPOCHS, "steps_per_epoch": BATCHES, "batch_size": BATCH,
               "device": "cpu"}
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    batches = rng.integers(0, 256, (EPOCHS, BATCHES, BATCH, PRE + AFT, CHANNELS, *FRAME), dtype=np.uint8)
    model_file, model_class, modules = spec["model"]
    with restored_modules("openstl", "timm", "pytorch_lightning"):
        load_model_class(clone, "predrnn_model", "PredRNN_Model", ("predrnn_modules",))  # methods/predrnn.py's
        method = method_class(clone, *spec["method"], model_file, model_class, (modules,))(**hparams)
        state = {n: q.detach().clone() for n, q in method.model.state_dict().items()}
        steps = lightning_steps(method, batches)
    reference = {"repository": REPOSITORY, "commit": commit_of(clone),
                 "files": list(dict.fromkeys([
                     f"openstl/methods/{spec['method'][0]}.py", "openstl/methods/predrnn.py",
                     "openstl/methods/base_method.py", "openstl/core/optim_scheduler.py",
                     "openstl/utils/predrnn_utils.py", f"openstl/models/{model_file}.py",
                     f"openstl/modules/{modules}.py"]))}
    config = {"reference": hparams,
              "vpbench": {"model": {"in_channels": CHANNELS, "img_size": FRAME, "patch_size": PATCH, "hidden": 4,
                                    "layers": 2, "kernel_size": 3},
                          "train": {"epochs": EPOCHS, "batch_size": BATCH, "lr": 1e-2, **spec["train"]}},
              "input_frames": PRE, "output_frames": AFT, "seed": SEED}
    return save(out / f"recipe_{name}.pt", reference=reference, config=config, state_dict=state,
                batches=torch.from_numpy(batches), **steps)


SIMVP = {"in_shape": (2, 1, 16, 16), "hid_S": 4, "hid_T": 8, "N_S": 2, "N_T": 2, "model_type": "gSTA",
         "mlp_ratio": 2.0, "drop": 0.0, "drop_path": 0.0, "spatio_kernel_enc": 3, "spatio_kernel_dec": 3}
SIMVP_VPBENCH = {"in_channels": 1, "input_frames": 2, "img_size": [16, 16], "spatial_hidden": 4, "temporal_hidden": 8,
                 "spatial_layers": 2, "temporal_layers": 2, "encoder_kernel": 3, "decoder_kernel": 3,
                 "mlp_ratio": 2.0, "drop": 0.0, "drop_path": 0.0, "drop_path_start": 0.0}


def make_simvp(clone: Path, out: Path) -> Path:
    """``recipe_simvp.pt``: OpenSTL's SimVP method (gSTA, hid_S 4, hid_T 8, N_S 2, N_T 2; 2 -> 2 frames of 16x16)
    with Adam + OneCycle at peak rate 0.01, on its raw output. The stochastic depth OpenSTL keeps at drop_path 0 (its
    first block drops its branch with probability 0.01: ``torch.linspace(1e-2, drop_path, N_T)``) is set to 0 after
    building: its draws come from torch's generator, which vpbench's trainer also draws from for its data loader, so
    the two would not see the same draws (the rates themselves are checked by the one-step goldens). Its weights are
    OpenSTL's initialisation from ``SEED`` but for the readout, scaled so that the first raw output spreads over
    [-0.5, 1.5] and a loss on the clamped output would differ. Per step: the sketch of every weight and batch-norm
    statistic (``helpers.parity.sketch``, seed ``SKETCH_SEED``) instead of the weights."""
    pre, channels, *frame = SIMVP["in_shape"]
    hparams = {**OPENSTL_DEFAULTS, **SIMVP, "method": "simvp", "pre_seq_length": pre, "aft_seq_length": pre,
               "total_length": 2 * pre, "lr": 1e-2, "sched": "onecycle", "epoch": EPOCHS, "steps_per_epoch": BATCHES,
               "batch_size": BATCH, "device": "cpu"}
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 1)
    batches = rng.integers(0, 256, (EPOCHS, BATCHES, BATCH, 2 * pre, channels, *frame), dtype=np.uint8)
    with restored_modules("openstl", "timm", "pytorch_lightning"):
        method = method_class(clone, "simvp", "SimVP", "simvp_model", "SimVP_Model", ("simvp_modules",))(**hparams)
        for module in method.model.modules():
            if hasattr(module, "drop_prob"):
                module.drop_prob = 0.0
        with torch.no_grad():
            first = method(*frames_of(batches[0, 0], pre))
            readout = method.model.dec.readout
            readout.weight.mul_(1.0 / first.std())
            readout.bias.add_(0.5 - readout(torch.zeros(1, readout.in_channels, 1, 1)).mean())
        state = {n: q.detach().clone() for n, q in method.model.state_dict().items()}
        steps = lightning_steps(method, batches, pre)
    weights = steps.pop("weights")
    steps["weight_sketches"] = [sketch({n: w[n] for n in state if w[n].is_floating_point()}, SKETCH_SEED)
                                for w in weights]
    reference = {"repository": REPOSITORY, "commit": commit_of(clone),
                 "files": ["openstl/methods/simvp.py", "openstl/methods/base_method.py",
                           "openstl/core/optim_scheduler.py", "openstl/models/simvp_model.py",
                           "openstl/modules/simvp_modules.py"]}
    config = {"reference": hparams,
              "vpbench": {"model": SIMVP_VPBENCH, "train": {"epochs": EPOCHS, "batch_size": BATCH, "lr": 1e-2}},
              "input_frames": pre, "output_frames": pre, "seed": SEED, "sketch_seed": SKETCH_SEED}
    return save(out / "recipe_simvp.pt", reference=reference, config=config, state_dict=state,
                batches=torch.from_numpy(batches), **steps)


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_stack(clones["openstl"], out, "predrnn"), make_simvp(clones["openstl"], out),
                make_stack(clones["openstl"], out, "predrnnv2")]
