"""Training steps of vpbench's models side by side with OpenSTL's (github.com/chengtan9907/OpenSTL).

vpbench never ships or fetches OpenSTL: the user points ``bench speed --parts openstl --openstl PATH`` at
a clone (branch OpenSTL-Lightning). For each model both suites have (:data:`PAIRS`), both are built at the
same configuration (vpbench's preset, e.g. ``openstl-quick``), trained on the same random batch with Adam
and the loss of vpbench's recipe, and timed alternately (OpenSTL, vpbench, OpenSTL, ...) so that a change
of machine load affects both alike. Each side's training step is its suite's own:

* recurrent models (ConvLSTM, PredRNN, PredRNN++, MIM, MAU, PredRNN.V2): OpenSTL's model takes the patched
  sequence and a scheduled-sampling mask and returns its loss (the MSE over every predicted frame; PredRNN.V2
  adds its decoupling term), as OpenSTL's PredRNN method calls it; both sides read the true frame with
  probability :data:`SAMPLING` wherever they sample (PredRNN.V2: inside the input window too);
* block predictors: SimVP v2 (gSTA) and TAU called as OpenSTL's SimVP method calls them (on the input frames,
  rolled out on its own output when T_out > T_in), with MSE, and for TAU MSE + 0.1 x the differential
  divergence regulariser of OpenSTL's TAU method; MMVP on the whole sequence as OpenSTL's MMVP method feeds
  it (vpbench's reads the input frames only), with MSE.

OpenSTL's package imports timm at import time; where timm does not import (torchvision wheels that do not
load beside a CPU torch), a stand-in for the few timm names OpenSTL's files import lets them load: its
DropPath and trunc_normal_ are torch's, anything else fails if called (the models timed here never call it).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import config as cfg
from vpbench.benchmarks.profiling import count_params, dummy_batch, train_step_fn
from vpbench.benchmarks.runner import build_model
from vpbench.datasets import dataset_entry
from vpbench.datasets.base import DataSpec
from vpbench.errors import UserError
from vpbench.models.registry import get_entry
from vpbench.models.simvp2 import DDR_ALPHA

SAMPLING = 0.5  # P(true frame) where the timed steps sample: both models read both kinds
VPBENCH_STEP = 999_999  # the optimiser step vpbench's timed step takes itself to be
# vpbench's sampling rate at VPBENCH_STEP is SAMPLING: linear, 1 - rate * (step + 1); reverse, before its first step
LINEAR_SAMPLING = ("train.sampling_stop_iter=1000000", f"train.sampling_changing_rate={(1 - SAMPLING) / 1e6}")
REVERSE_SAMPLING = ("train.r_sampling_step_1=2000000", "train.r_sampling_step_2=3000000")
# vpbench's options that OpenSTL's recurrent models read from their configs under the same name
RECURRENT_OPTIONS = ("sr_size", "tau", "cell_mode", "model_mode", "decouple_beta")

Builder = Callable[[type[nn.Module], dict[str, Any], DataSpec], nn.Module]
StepMaker = Callable[[nn.Module, dict[str, Any], Tensor, Tensor, Path], Callable[[], None]]


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


def mmvp_model(cls: type[nn.Module], config: dict[str, Any], spec: DataSpec) -> nn.Module:
    """OpenSTL's ``MMVP_Model`` predicting the dataset's T_out frames, downsampling by 2 at each of vpbench's scales."""
    o = model_options(config)
    return cls(in_shape=_in_shape(spec), aft_seq_length=spec.output_frames, hid_S=o["spatial_hidden"],
               hid_T=o["temporal_hidden"], rrdb_encoder_num=o["encoder_blocks"], rrdb_decoder_num=o["decoder_blocks"],
               rrdb_enhance_num=o["enhance_blocks"], downsample_setting=",".join(["2"] * o["scales"]))


def recurrent_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor, clone: Path) -> Callable[[], None]:
    """One training step of OpenSTL's recurrent model on (x, y), as its PredRNN method takes it: the sequence
    patched [B, T, H/p, W/p, p^2 C], a mask drawn at :data:`SAMPLING` for each step it samples (past the input
    window; with reverse scheduled sampling, steps 1..T-2), the loss the model returns."""
    options, p = model.configs, model.configs.patch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=config["train"]["lr"])
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
    optimizer = torch.optim.Adam(model.parameters(), lr=config["train"]["lr"])
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(predict(model, x, y), y).backward()
        optimizer.step()

    return step


@dataclass(frozen=True)
class Pair:
    """How to build OpenSTL's counterpart of a vpbench model and time its training step."""

    module: str  # openstl.models.<module>
    cls: str
    parts: tuple[str, ...]  # the openstl.modules.<part> files it imports from openstl.modules
    utils: tuple[str, ...] = ()  # the openstl.utils.<file> files it imports from openstl.utils
    build: Builder = recurrent_model
    step: StepMaker = recurrent_step
    sets: tuple[str, ...] = LINEAR_SAMPLING  # vpbench's options for its timed step


SIMVP = Pair("simvp_model", "SimVP_Model", ("simvp_modules",), build=simvp_model,
             step=functools.partial(block_step, simvp_prediction), sets=())  # the translator from vpbench's options
PAIRS = {
    "convlstm": Pair("convlstm_model", "ConvLSTM_Model", ("convlstm_modules",)),
    "stlstm": Pair("predrnn_model", "PredRNN_Model", ("predrnn_modules",)),
    "causallstm": Pair("predrnnpp_model", "PredRNNpp_Model", ("predrnnpp_modules",)),
    "mim": Pair("mim_model", "MIM_Model", ("predrnn_modules", "mim_modules")),
    "mau": Pair("mau_model", "MAU_Model", ("mau_modules",)),
    "predrnnv2": Pair("predrnnv2_model", "PredRNNv2_Model", ("predrnnv2_modules",), sets=REVERSE_SAMPLING),
    "simvp2": SIMVP,
    "tau": SIMVP,
    "mmvp": Pair("mmvp_model", "MMVP_Model", ("mmvp_modules",), ("mmvp_utils",), build=mmvp_model,
                 step=functools.partial(block_step, mmvp_prediction), sets=()),
}


class _TimmStandIn(types.ModuleType):
    """``timm`` and its submodules: DropPath and trunc_normal_ from torch; any other name a stub."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []
        self.trunc_normal_ = nn.init.trunc_normal_
        self.DropPath = _DropPath

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = f"{self.__name__}.{attr}"
        if module in sys.modules:
            return sys.modules[module]

        def unavailable(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"{module} is not available: timm does not import here")

        return type(attr, (), {"__init__": unavailable})


class _DropPath(nn.Module):
    """Stochastic depth (the identity in evaluation, and when ``drop_prob`` is 0)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0:
            return x
        keep = x.new_empty(x.shape[0], *(1,) * (x.ndim - 1)).bernoulli_(1 - self.drop_prob)
        return x * keep / (1 - self.drop_prob)


def _timm_stand_in() -> None:
    try:
        import timm  # noqa: F401
    except Exception:  # noqa: BLE001  not installed, or torchvision beside a CPU torch
        for name in ("timm", "timm.layers", "timm.models", "timm.models.layers", "timm.models.convnext",
                     "timm.models.mlp_mixer", "timm.models.swin_transformer", "timm.models.vision_transformer"):
            sys.modules[name] = _TimmStandIn(name)


def _package(name: str, folder: Path) -> types.ModuleType:
    """An empty package ``name`` over ``folder``: its ``__init__.py`` (which imports every model and the
    training API, with their requirements) is not run."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        if list(getattr(loaded, "__path__", [])) != [str(folder)]:
            raise UserError(f"another {name} package is imported already ({getattr(loaded, '__path__', '?')}); "
                            "run bench speed in a fresh process")
        return loaded
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    sys.modules[name] = package
    return package


def _import_into(package: types.ModuleType, files: tuple[str, ...]) -> None:
    """Import ``<package>.<file>`` for each file and give the package their public names, as its
    ``__init__.py`` would."""
    for file in files:
        module = importlib.import_module(f"{package.__name__}.{file}")
        vars(package).update({k: v for k, v in vars(module).items() if not k.startswith("_")})


def load_model_class(path: str | Path, pair: Pair) -> type[nn.Module]:
    """OpenSTL's model class of ``pair`` from the clone at ``path``; each file it needs is imported alone."""
    root = Path(path).expanduser() / "openstl"
    if not (root / "models" / f"{pair.module}.py").is_file():
        raise UserError(f"--openstl {path}: no openstl/models/{pair.module}.py there; give the folder of a clone of "
                        "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)")
    _timm_stand_in()
    _package("openstl", root)
    models = _package("openstl.models", root / "models")
    try:
        _import_into(_package("openstl.modules", root / "modules"), pair.parts)
        _import_into(_package("openstl.utils", root / "utils"), pair.utils)
        model_class = getattr(importlib.import_module(f"openstl.models.{pair.module}"), pair.cls)
    except ImportError as err:
        raise UserError(f"--openstl {path}: {pair.module} does not import ({err}); install what it needs") from None
    setattr(models, pair.cls, model_class)  # as openstl/models/__init__.py exports it, for the methods' files
    return model_class


def tau_regulariser(path: str | Path) -> Callable[[Tensor, Tensor], Tensor]:
    """``TAU.diff_div_reg`` of OpenSTL's ``openstl/methods/tau.py`` (pred, target [B, T, C, H, W] -> scalar).

    The file is imported alone, after :func:`load_model_class` has loaded ``SimVP_Model``; the SimVP method
    class it derives from (which imports Lightning) is an empty placeholder: the regulariser never reads ``self``."""
    methods = _package("openstl.methods", Path(path).expanduser() / "openstl" / "methods")
    if "openstl.methods.simvp" not in sys.modules:
        simvp = types.ModuleType("openstl.methods.simvp")
        simvp.SimVP = type("SimVP", (), {})  # type: ignore[attr-defined]
        sys.modules["openstl.methods.simvp"] = methods.simvp = simvp  # type: ignore[attr-defined]
    try:
        tau = importlib.import_module("openstl.methods.tau")
    except ImportError as err:
        raise UserError(f"--openstl {path}: openstl/methods/tau.py does not import ({err})") from None
    return functools.partial(tau.TAU.diff_div_reg, None)


def criterion(loss: str, clone: Path) -> Callable[[Tensor, Tensor], Tensor]:
    """OpenSTL's loss for vpbench's ``train.loss`` of a block predictor: ``mse``, or ``mse_ddr`` (TAU's MSE +
    alpha x OpenSTL's differential divergence regulariser, alpha 0.1 as in configs/mmnist/TAU.py)."""
    if loss == "mse":
        return F.mse_loss
    if loss == "mse_ddr":
        regulariser = tau_regulariser(clone)
        return lambda pred, target: F.mse_loss(pred, target) + DDR_ALPHA * regulariser(pred, target)
    raise UserError(f"train.loss={loss!r}: the OpenSTL timing knows no counterpart; use mse or mse_ddr")


def compare(openstl_path: str | Path, models: list[str], *, preset: str, dataset: str, batch: int,
            repeats: int = 5) -> list[dict[str, Any]]:
    """Median seconds of a training step of each model and of OpenSTL's, timed alternately after a warm-up.
    Models without an OpenSTL counterpart in :data:`PAIRS` are left out; none at all is an error."""
    paired = [name for name in models if name in PAIRS]
    if not paired:
        raise UserError(f"--parts openstl: none of {', '.join(models) or 'no models'} has an OpenSTL counterpart "
                        f"here; the paired models are {', '.join(PAIRS)}")
    rows = []
    for name in paired:
        pair = PAIRS[name]
        config = cfg.resolve(preset, name, dataset, sets=cfg.parse_sets(list(pair.sets)))
        config["train"]["batch_size"] = batch
        spec = dataset_entry(dataset).spec(config["dataset"])
        torch.manual_seed(0)
        ours = build_model(config)
        torch.manual_seed(0)
        theirs = pair.build(load_model_class(openstl_path, pair), config, spec)
        params = {"vpbench": count_params(ours), "openstl": count_params(theirs)}
        x, y = dummy_batch(spec, batch)
        steps = {"openstl": pair.step(theirs, config, x, y, Path(openstl_path)),
                 "vpbench": train_step_fn(ours, spec, config["train"], torch.device("cpu"), batch, step=VPBENCH_STEP)}
        try:
            steps["openstl"]()  # warm-up
        except Exception as err:  # noqa: BLE001  e.g. OpenSTL's PredRNN++ needs two layers
            raise UserError(f"OpenSTL's {pair.cls} does not train at {name}'s {preset} configuration "
                            f"({type(err).__name__}: {err})") from err
        steps["vpbench"]()
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(repeats):
            for key, step in steps.items():
                start = time.perf_counter()
                step()
                times[key].append(time.perf_counter() - start)
        rows.append({"model": name, "batch": batch, "params": params,
                     "seconds": {k: statistics.median(v) for k, v in times.items()}})
    return rows


def markdown(rows: list[dict[str, Any]], preset: str, repeats: int) -> list[str]:
    lines = [f"## Training step against OpenSTL's code ({preset} configuration, CPU)", "",
             "| Model | Params (vpbench / OpenSTL) | Batch | vpbench (s) | OpenSTL (s) | Speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["seconds"]
        lines.append(f"| {r['model']} | {r['params']['vpbench']:,} / {r['params']['openstl']:,} | {r['batch']} | "
                     f"{s['vpbench']:.3f} | {s['openstl']:.3f} | {s['openstl'] / s['vpbench']:.2f}x |")
    lines += ["", (f"Medians of {repeats} steps each after a warm-up, timed alternately; torch threads: "
                   f"{torch.get_num_threads()}; 1-minute load average {os.getloadavg()[0]:.2f}. OpenSTL's ConvLSTM, "
                   "PredRNN++, MIM, MAU and MMVP define modules their forward never uses (more parameters, no more "
                   "work). TAU: MSE + 0.1 x the differential divergence on both sides. MMVP: OpenSTL trains it on "
                   "the whole sequence (input and target frames encoded), vpbench on the input frames."), ""]
    return lines
