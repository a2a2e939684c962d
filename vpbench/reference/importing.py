"""``bench import openstl|srvp|predformer|simvp|iam4vp|vmrnn|earthformer CHECKPOINT --model NAME --dataset NAME``: a
checkpoint of a reference code (released, or trained by you with that code) as a vpbench run folder. ``--model`` may
be left out for a released file (the catalogue names it) and for a code of one model (every code but OpenSTL's).

The checkpoint is read with ``torch.load(weights_only=True)``: a plain state dict (OpenSTL's released ``.pth``
files, the SRVP, PredFormer, SimVP, IAM4VP and VMRNN codes' ``checkpoint.pth``/``best_loss.pt``, IAM4VP's
``checkpoints/<epoch>.pth``, VMRNN's ``trained_model_state_dict``, Earthformer's released ``earthformer_sevir.pt``),
a dict holding one under ``state_dict`` (OpenSTL v0.3's ``latest.pth``, and that of the codes built on it, as
VMRNN's; a Lightning ``.ckpt``, whose method keeps the model as ``model.``), or either with DataParallel's
``module.`` prefix. Where OpenSTL's ``EMAHook`` trained the model, the state dict also holds its moving averages
(``ema_<name>``, dots as underscores): those are imported, as OpenSTL evaluates and tests them (the hook swaps them
in before each validation). Its tensors go through the weight mapping that the golden parity tests hold
(:mod:`vpbench.reference.mappings`) into vpbench's model built with that code's configuration for the model and data
set (:mod:`vpbench.reference.configs`, on the code's full preset: ``openstl`` for OpenSTL's and the codes that follow
its conventions (PredFormer's, IAM4VP's, VMRNN's), ``paper`` for the others; ``--preset`` for another scale, ``--set
model.KEY=VALUE`` where the checkpoint was trained otherwise). A file of another model or size is a one-line error
naming the missing, unexpected or misshapen tensors.

The run folder (``results/<dataset>/<model>/<time>-<preset>-imported``) holds config.yaml (with an ``imported``
section: the code, file name, SHA-256, source address, epochs and whether EMA averages were taken), status.json
(finished), log.txt and checkpoints/best.pt, and no metrics: ``bench eval RUN`` measures it on its test set and
records them as the run's (``bench report`` then shows it, labelled), ``bench predict`` runs it on your frames and
``bench run --init RUN`` fine-tunes it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from vpbench import config as cfg
from vpbench import presets
from vpbench.environment import describe
from vpbench.errors import UserError
from vpbench.fetch.download import file_hashes
from vpbench.harness.runner import identity
from vpbench.models import build_model
from vpbench.reference.configs import openstl_options
from vpbench.reference.mappings import mapping_for, models_of
from vpbench.reference.mappings.links import MappingError
from vpbench.reference.weights import find_released
from vpbench.store import RunDir, load_tensors, writable_results_dir

# code -> (what it is called, the protocol of its configuration, where it is published)
CODES = {"openstl": ("OpenSTL", "openstl", "github.com/chengtan9907/OpenSTL"),
         "srvp": ("the SRVP authors' code", "srvp", "github.com/yuseonk/SRVP"),
         "predformer": ("PredFormer's code", "openstl", "github.com/yyyujintang/PredFormer"),  # OpenSTL's metrics
         "simvp": ("A4Bio's SimVP code", "srvp", "github.com/A4Bio/SimVP"),
         "iam4vp": ("the IAM4VP authors' code", "openstl",  # its published MSE is tabled in OpenSTL's conventions
                    "github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction"),
         "vmrnn": ("the VMRNN authors' code", "openstl", "github.com/yyyujintang/VMRNN-PyTorch"),  # built on OpenSTL
         "earthformer": ("the Earthformer authors' code", "srvp",
                         "github.com/amazon-science/earth-forecasting-transformer")}
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")  # buffers a checkpoint must provide
EMA_PREFIX = "ema_"  # OpenSTL's EMAHook: a buffer ema_<name, dots as underscores> beside each tensor it averages


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The model's state dict in the checkpoint at ``path`` (see the module docstring for the formats)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the checkpoint's path (released ones: bench weights download "
                        "NAME)")
    found = load_tensors(path, "save the state dict alone, e.g. torch.save(torch.load(FILE)['state_dict'], "
                               "'model.pth') where you trust the file")
    state = found.get("state_dict", found) if isinstance(found, dict) else found
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: holds no state dict (a mapping of names to tensors, alone or under 'state_dict')")
    if "state_dict" in found and any(k.startswith("model.") for k in state):  # Lightning: the method's model
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def with_moving_averages(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], int]:
    """``state`` with each tensor that OpenSTL's ``EMAHook`` averaged replaced by its average (the weights OpenSTL
    validates and tests), the hook's buffers dropped; and how many tensors were replaced (0: no hook)."""
    averages = {f"{EMA_PREFIX}{name.replace('.', '_')}": name for name in state if not name.startswith(EMA_PREFIX)}
    averaged = {averages[key]: value for key, value in state.items() if key in averages}
    kept = {name: value for name, value in state.items() if name not in averages}
    return {**kept, **averaged}, len(averaged)


def import_config(code: str, model: str, dataset: str, preset: str | None,
                  sets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """That code's configuration of ``model`` on ``dataset`` at ``preset`` (default: its full one), with the user's
    ``--set`` model and dataset options on top."""
    protocol = CODES[code][1]
    chosen = presets.choose(preset or "full", protocol, "cuda")
    given = dict(sets.get("model", {}))
    options = openstl_options(model, dataset, given) if code == "openstl" and chosen.scale == "full" else {}
    return cfg.resolve(chosen.name, model, dataset, sets={"model": {**options, **given},
                                                          "dataset": dict(sets.get("dataset", {}))})


def vpbench_weights(code: str, config: Mapping[str, Any], state: Mapping[str, Tensor], what: str) -> dict[str, Tensor]:
    """``state`` mapped into the model of ``config``, checked to fit it; a one-line error naming what does not."""
    name, models = config["model"]["name"], models_of(code)
    builder = mapping_for(code, name)
    if builder is None:
        raise UserError(f"bench import {code} maps into {', '.join(models)}; not into {name}")
    model = build_model(config)
    ours = model.state_dict()
    if len(models) > 1:
        hint = f"is it a checkpoint of another model? give the --model it was trained as (bench import {code} maps " \
               f"into {', '.join(models)})"
    else:
        hint = f"is it a checkpoint of another code? bench import {code} reads {CODES[code][0]}'s {name} only"
    sizes = "; a checkpoint of another size? set --set model.KEY=VALUE as it was trained (see bench list)"
    try:
        mapped = builder(state, ours, config["model"]).to_vpbench(state)
    except MappingError as err:
        raise UserError(f"{what} is not {CODES[code][0]}'s {name}: {err}; {hint}") from None
    except ValueError as err:  # a tensor of another size where a mapping reorders it
        raise UserError(f"{what} does not fit {name} as configured here: {err}{sizes}") from None
    except (KeyError, IndexError, RuntimeError) as err:
        raise UserError(f"{what} does not fit {name} ({type(err).__name__}: {err}); {hint}") from None
    extra = sorted(set(mapped) - set(ours))
    parameters = dict(model.named_parameters())
    missing = [k for k in ours if k not in mapped and (k in parameters or k.endswith(STATISTICS))]
    if extra and missing:
        raise UserError(f"{what} is not {CODES[code][0]}'s {name}: it has {', '.join(extra[:3])}, ... and lacks "
                        f"{', '.join(missing[:3])}, ...; {hint}")
    if extra:
        raise UserError(f"{what} has more than {name} as configured here: {', '.join(extra[:4])}{sizes}")
    if missing:
        raise UserError(f"{what} lacks {', '.join(missing[:4])} of {name} as configured here{sizes}")
    wrong = [k for k in mapped if mapped[k].shape != ours[k].shape]
    if wrong:
        k = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise UserError(f"{what} does not fit {name} as configured here: {k} is {list(mapped[k].shape)} in the "
                        f"checkpoint, {list(ours[k].shape)} here{more}{sizes}")
    model.load_state_dict({**ours, **mapped}, strict=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def new_import_folder(results_dir: Path, dataset: str, model: str, preset: str) -> RunDir:
    """A fresh run folder ``<time>-<preset>-imported[-k]``: never one that ``bench run --resume`` would continue."""
    parent = results_dir / dataset / model
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{preset}-imported"
    for k in range(1000):
        path = parent / (base if k == 0 else f"{base}-{k}")
        try:
            path.mkdir()
            (path / "checkpoints").mkdir()
            return RunDir(path)
        except FileExistsError:
            continue
    raise UserError(f"too many imports named {base} in {parent}")


def import_checkpoint(code: str, checkpoint: str | Path, *, model: str | None = None, dataset: str | None = None,
                      preset: str | None = None, sets: Mapping[str, Mapping[str, Any]] | None = None,
                      results_dir: str | Path = "results", source: str | None = None) -> RunDir:
    """``bench import``: the run folder made from ``checkpoint`` (see the module docstring)."""
    if code not in CODES:
        raise UserError(f"unknown code {code!r}; bench import reads checkpoints of {', '.join(CODES)}")
    path = Path(checkpoint).expanduser()
    sets = {section: dict(values) for section, values in (sets or {}).items()}
    for section in ("train", "metrics"):
        if sets.get(section):
            raise UserError(f"bench import takes --set model.KEY=VALUE and dataset.KEY=VALUE only; {section} options "
                            "belong to bench run --init")
    released = find_released(path) if code == "openstl" else None
    if released is not None:
        model = model or released.model
        dataset = dataset or released.dataset
        if dataset is None:
            raise UserError(f"{path.name} was trained on OpenSTL's {released.data}, which vpbench does not read yet; "
                            "give --dataset NAME to import it anyway")
        catalogued = cfg.parse_sets(list(released.sets)) if model == released.model else {}
        sets["model"] = {**catalogued.get("model", {}), **sets.get("model", {})}
    if model is None and len(models_of(code)) == 1:  # a code of one model (all but OpenSTL's)
        model = models_of(code)[0]
    if model is None or dataset is None:
        raise UserError("give --model NAME and --dataset NAME: the vpbench model and dataset the checkpoint was trained "
                        "as (see bench list)")
    config = import_config(code, model, dataset, preset, sets)
    state, averaged = with_moving_averages(read_state_dict(path))
    weights = vpbench_weights(code, config, state, path.name)
    digest = file_hashes(path)[0]
    epochs = released.epochs if released is not None else None
    if epochs is not None:
        config["train"]["epochs"] = epochs
    name, _, repository = CODES[code]
    config["imported"] = {
        "code": code, "file": path.name, "sha256": digest,
        "source": source or (released.url if released is not None else f"a checkpoint of {repository}"),
        "released": released is not None, "epochs": epochs, "moving_averages": averaged > 0,
        "description": f"{name}'s released weights, {epochs} epochs" if released is not None
        else f"imported from {name}",
    }
    run = new_import_folder(writable_results_dir(results_dir), config["dataset"]["name"], model, config["preset"])
    run.write_yaml("config.yaml", config)
    run.write_json("environment.json", describe(torch.device("cpu")))
    run.save_torch("checkpoints/best.pt", {"model": weights, "epoch": epochs, "identity": identity(config)})
    averages = f" (the moving averages of OpenSTL's EMAHook for {averaged})" if averaged else ""
    run.append_log(f"{model}: imported {path.name} (sha256 {digest}) of {name} from {config['imported']['source']}, "
                   f"{len(state)} tensors{averages} through vpbench.reference.mappings")
    run.set_status("finished", epochs=epochs, imported=True)
    return run


def command(args: argparse.Namespace) -> None:
    """``bench import``."""
    run = import_checkpoint(args.code, args.checkpoint, model=args.model, dataset=args.dataset, preset=args.preset,
                            sets=cfg.parse_sets(args.sets), results_dir=args.results_dir, source=args.source)
    config = run.read_yaml("config.yaml")
    print(f"{config['model']['name']} on {config['dataset']['name']} (preset {config['preset']}): "
          f"{config['imported']['description']}, sha256 {config['imported']['sha256'][:16]}...")
    print(f"run folder: {run.path}")
    print(f"next: bench eval {run.path} --data-dir DIR (its test metrics, for bench report)")
