"""Training steps of vpbench's models side by side with OpenSTL's (github.com/chengtan9907/OpenSTL).

vpbench never ships or fetches OpenSTL: the user points ``bench speed --parts openstl --openstl PATH`` at
a clone (branch OpenSTL-Lightning). For each model both suites have, both are built at the same
configuration (vpbench's preset, e.g. ``openstl-quick``; same parameter count, checked), trained on the
same random batch with OpenSTL's recipe (Adam; the recurrent models with scheduled sampling at a true-frame
rate of 0.5 and the loss over every predicted frame), and timed alternately (OpenSTL, vpbench, OpenSTL,
...) so that a change of machine load affects both alike.

OpenSTL's package imports timm at import time; where timm does not import (torchvision wheels that do not
load beside a CPU torch), a stand-in for the few timm names OpenSTL's files import lets them load: its
DropPath and trunc_normal_ are torch's, anything else fails if called (the models timed here never call it).
"""
from __future__ import annotations

import importlib
import os
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from vpbench import config as cfg
from vpbench.benchmarks.profiling import count_params, dummy_batch, train_step_fn
from vpbench.benchmarks.runner import build_model
from vpbench.datasets import dataset_entry
from vpbench.errors import UserError

SAMPLING = 0.5  # P(true frame) past the input window in the timed steps: both models read both kinds


@dataclass(frozen=True)
class Pair:
    """How to build OpenSTL's counterpart of a vpbench model and run its training forward."""

    module: str  # openstl.models.<module>
    cls: str
    parts: tuple[str, ...]  # the openstl.modules.<part> files it imports from openstl.modules


PAIRS = {
    "convlstm": Pair("convlstm_model", "ConvLSTM_Model", ("convlstm_modules",)),
    "stlstm": Pair("predrnn_model", "PredRNN_Model", ("predrnn_modules",)),
    "causallstm": Pair("predrnnpp_model", "PredRNNpp_Model", ("predrnnpp_modules",)),
    "mim": Pair("mim_model", "MIM_Model", ("predrnn_modules", "mim_modules")),
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


def load_model_class(path: str | Path, pair: Pair) -> type[nn.Module]:
    """OpenSTL's model class of ``pair`` from the clone at ``path``; each file it needs is imported alone."""
    root = Path(path).expanduser() / "openstl"
    if not (root / "models" / f"{pair.module}.py").is_file():
        raise UserError(f"--openstl {path}: no openstl/models/{pair.module}.py there; give the folder of a clone of "
                        "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)")
    _timm_stand_in()
    _package("openstl", root)
    parts = _package("openstl.modules", root / "modules")
    _package("openstl.models", root / "models")
    try:
        for part in pair.parts:  # what the model file imports "from openstl.modules"
            module = importlib.import_module(f"openstl.modules.{part}")
            vars(parts).update({k: v for k, v in vars(module).items() if not k.startswith("_")})
        return getattr(importlib.import_module(f"openstl.models.{pair.module}"), pair.cls)
    except ImportError as err:
        raise UserError(f"--openstl {path}: {pair.module} does not import ({err}); install what it needs") from None


def _openstl_config(config: dict[str, Any]) -> types.SimpleNamespace:
    """OpenSTL's ``configs`` object for a vpbench configuration of a recurrent model."""
    model, data = config["model"], config["dataset"]
    t_in, t_out = data["input_frames"], data["output_frames"]
    return types.SimpleNamespace(
        in_shape=(t_in, model["in_channels"], *model["img_size"]), patch_size=model["patch_size"],
        filter_size=model["kernel_size"], stride=1, layer_norm=0, pre_seq_length=t_in, aft_seq_length=t_out,
        total_length=t_in + t_out, reverse_scheduled_sampling=0)


def _openstl_step(model: nn.Module, config: dict[str, Any], x: Tensor, y: Tensor) -> Callable[[], None]:
    """One training step of OpenSTL's recurrent model on (x, y), as its PredRNN method takes it."""
    options, p = model.configs, model.configs.patch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=config["train"]["lr"])
    frames = torch.cat([x, y], dim=1).permute(0, 1, 3, 4, 2)
    b, t, h, w, c = frames.shape
    patched = frames.reshape(b, t, h // p, p, w // p, p, c).transpose(3, 4).reshape(b, t, h // p, w // p, p * p * c)
    model.train()

    def step() -> None:
        mask = (torch.rand(b, options.aft_seq_length - 1) < SAMPLING).float()[:, :, None, None, None]
        mask = mask.expand(-1, -1, *patched.shape[2:]).contiguous()
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(patched, mask)
        loss.backward()
        optimizer.step()

    return step


def compare(openstl_path: str | Path, models: list[str], *, preset: str, dataset: str, batch: int,
            repeats: int = 5) -> list[dict[str, Any]]:
    """Median seconds of a training step of each model and of OpenSTL's, timed alternately after a warm-up."""
    rows = []
    for name in models:
        if name not in PAIRS:
            continue
        pair = PAIRS[name]
        # vpbench's sampling rate at the timed step is SAMPLING too: 1 - rate * (step + 1) with step 999,999.
        config = cfg.resolve(preset, name, dataset, sets=cfg.parse_sets([
            "train.sampling_stop_iter=1000000", f"train.sampling_changing_rate={(1 - SAMPLING) / 1e6}"]))
        config["train"]["batch_size"] = batch
        spec = dataset_entry(dataset).spec(config["dataset"])
        torch.manual_seed(0)
        ours = build_model(config)
        layers = config["model"]["layers"]
        torch.manual_seed(0)
        theirs = load_model_class(openstl_path, pair)(layers, [config["model"]["hidden"]] * layers,
                                                      _openstl_config(config))
        params = {"vpbench": count_params(ours), "openstl": count_params(theirs)}
        x, y = dummy_batch(spec, batch)
        steps = {"openstl": _openstl_step(theirs, config, x, y),
                 "vpbench": train_step_fn(ours, spec, {**config["train"], "batch_size": batch}, torch.device("cpu"),
                                          batch, step=999_999)}
        for step in steps.values():
            step()  # warm-up
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
    lines += ["", f"Medians of {repeats} steps each after a warm-up, timed alternately; torch threads: "
              f"{torch.get_num_threads()}; 1-minute load average {os.getloadavg()[0]:.2f}. OpenSTL's ConvLSTM and "
              "PredRNN++ define convolutions their forward never uses (more parameters, same work).", ""]
    return lines
