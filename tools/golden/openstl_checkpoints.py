"""Checkpoints written as OpenSTL (and PredFormer's code, built on it) writes them, for the tests of ``bench import``.

    python tools/golden/make.py --openstl ~/src/OpenSTL --openstl-v030 ~/src/OpenSTL-v030 \
        --predformer ~/src/PredFormer --only openstl_checkpoints

(with timm 0.6.11 importable for SwinLSTM and the MetaVP translators: ``pip install --no-deps --target DIR
timm==0.6.11`` and ``PYTHONPATH=DIR``, loaded by ``vpbench.reference.openstl_clone.openstl_timm``; and for WaST's
modules timm 0.9.12, PyWavelets and einops in another folder named by ``WAST_PYTHONPATH=DIR2``, put first on the path
for WaST alone: ``pip install --no-deps --target DIR2 timm==0.9.12 PyWavelets einops``).

For each model vpbench imports from OpenSTL (and PredFormer), the reference's own model class is built from the
clone at vpbench's ``openstl-tiny`` configuration of it on TaxiBJ's shape (2 x 32 x 32, 4 -> 4; at Moving MNIST's,
1 x 64 x 64, 10 -> 10: CrevNet, whose width is 32 x the channels, with its input, and one ConvLSTM without its
prediction), with its own random initialisation moved off its defaults (:func:`perturb`; WaST's and PredNet's
output biases then raised: :data:`OUTPUT_BIAS`), and saved the way its code saves checkpoints:
``torch.save(model.state_dict(), ...)`` as OpenSTL's and PredFormer's ``Recorder`` write ``checkpoint.pth`` (the
released ``.pth`` files), and once as a Lightning ``.ckpt`` (OpenSTL-Lightning's ``best.ckpt``: the method's state
dict, the model under ``model.``).
``predictions.pt`` holds a fixed input and each model's test-time prediction as its method's ``forward`` computes
it (the recurrent models on the patched sequence with a mask of zeros past the input window, PredRNN.V2's
reverse-sampling mask of ones inside it; MAU on the raw sequence; PhyDNet's ``inference``; SwinLSTM on the whole
sequence; the block models, WaST among them, on the input frames; DMVFN v0.3.0's frame-by-frame ``_inference``
from a fixed seed; PredNet v0.3.0's extrapolating ``_predict``; CrevNet v0.3.0's ``_predict``), in float32 as
released checkpoints run. ``tests/published/test_import_checkpoints.py`` imports each file with ``bench import``
and compares.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from vpbench import config as cfg
from vpbench.datasets import dataset_entry
from vpbench.errors import UserError
from vpbench.reference.clones import commit_of
from vpbench.reference.openstl import PAIRS, SIMVP, model_options
from vpbench.reference.openstl_clone import cuda_is_identity, openstl_timm, wast_timm

SOURCES = ("openstl", "openstl_v030", "predformer")
WAST_PATH = "WAST_PYTHONPATH"  # the environment variable naming the folder of WaST's timm 0.9, PyWavelets and einops
SEED = 20240701
FOLDER = "openstl_checkpoints"
TRANSLATORS = ("convmixer", "convnext", "hornet", "mlp", "moga", "poolformer", "swin", "uniformer", "van", "vit")
# (file stem, vpbench model, its options beyond the openstl-tiny preset, dataset, the code that writes it)
CASES: list[tuple[str, str, tuple[str, ...], str, str]] = [
    ("convlstm", "convlstm", (), "taxibj", "openstl"),
    ("predrnn", "stlstm", (), "taxibj", "openstl"),
    ("predrnnpp", "causallstm", ("model.layers=2",), "taxibj", "openstl"),
    ("mim", "mim", ("model.layers=2",), "taxibj", "openstl"),
    ("mau", "mau", (), "taxibj", "openstl"),
    ("predrnnv2", "predrnnv2", ("model.layers=2",), "taxibj", "openstl"),
    ("e3dlstm", "e3dlstm", ("model.patch_size=4", "model.kernel_size=5"), "taxibj", "openstl"),  # OpenSTL: 5 x 5
    ("phydnet", "phydnet", (), "taxibj", "openstl"),
    ("swinlstm", "swinlstm", (), "taxibj", "openstl"),
    ("simvp_incepu", "simvp", ("model.kernels=[3,5,7,11]", "model.groups=8"), "taxibj", "openstl"),  # OpenSTL's
    ("simvp_gsta", "simvp2", (), "taxibj", "openstl"),
    *((f"simvp_{t}", "simvp2", (f"model.translator={t}",), "taxibj", "openstl") for t in TRANSLATORS),
    ("tau", "tau", (), "taxibj", "openstl"),
    ("mmvp", "mmvp", (), "taxibj", "openstl"),
    ("dmvfn", "dmvfn", (), "taxibj", "openstl"),
    ("predformer", "predformer", (), "taxibj", "predformer"),
    ("mmnist_convlstm", "convlstm", (), "mmnist", "openstl"),
    ("prednet", "prednet", (), "taxibj", "openstl"),  # OpenSTL v0.3.0
    ("crevnet", "crevnet", (), "mmnist", "openstl"),  # v0.3.0; one channel: its width is 32 C at any preset
    ("wast", "wast", (), "taxibj", "openstl"),
]
# vpbench model -> the reference's output bias, raised by 0.5 after perturb: these outputs start near 0, where the
# clamp both sides are compared after (WaST) or a ReLU (PredNet) would hide most of the prediction
OUTPUT_BIAS = {"wast": "conv_out.2.bias", "prednet": "Ahat.0.bias"}
CLONE_OF = {"openstl": "openstl", "openstl-v030": "openstl_v030", "predformer": "predformer"}


def patched(frames: Tensor, p: int) -> Tensor:
    """OpenSTL's ``reshape_patch`` of frames [B, T, C, H, W]: [B, T, H/p, W/p, p*p*C], channels (py, px, c)."""
    b, t, c, h, w = frames.shape
    x = frames.permute(0, 1, 3, 4, 2).reshape(b, t, h // p, p, w // p, p, c)
    return x.transpose(3, 4).reshape(b, t, h // p, w // p, p * p * c)


def unpatched(x: Tensor, p: int, c: int) -> Tensor:
    """OpenSTL's ``reshape_patch_back``, then channels first: [B, T, h, w, p*p*C] -> [B, T, C, H, W]."""
    b, t, h, w, _ = x.shape
    x = x.reshape(b, t, h, w, p, p, c).transpose(3, 4).reshape(b, t, h * p, w * p, c)
    return x.permute(0, 1, 4, 2, 3)


def recurrent(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's PredRNN method's forward (its recurrent models'): the patched sequence, a mask of zeros past the
    input window (with reverse scheduled sampling, ones for the first T_in - 1 steps)."""
    configs, p = model.configs, model.configs.patch_size
    frames = patched(torch.cat([x, y], dim=1), p)
    reverse = configs.reverse_scheduled_sampling == 1
    steps = configs.total_length - (1 if reverse else configs.pre_seq_length) - 1
    mask = torch.zeros(x.shape[0], steps, *frames.shape[2:])
    if reverse:
        mask[:, :configs.pre_seq_length - 1] = 1.0
    out, _ = model(frames, mask, return_loss=False)
    return unpatched(out, p, x.shape[2])[:, -y.shape[1]:]


def mau(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's MAU method's forward: the raw sequence [B, T, H, W, C] and a mask of zeros past the input window."""
    configs, p = model.configs, model.configs.patch_size
    frames = torch.cat([x, y], dim=1).permute(0, 1, 3, 4, 2)
    mask = torch.zeros(x.shape[0], configs.total_length - configs.pre_seq_length - 1, x.shape[3] // p,
                       x.shape[4] // p, p * p * x.shape[2])
    out, _ = model(frames, mask, return_loss=False)
    return out[:, -y.shape[1]:]


def phydnet(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's PhyDNet method's forward: ``inference`` with the one-hot moment constraints."""
    k = model.phycell.cell_list[0].F.conv1.weight.shape[-1]
    constraints = torch.eye(k * k).view(k * k, k, k)
    out, _ = model.inference(x, y, constraints, return_loss=False)
    return out


def swinlstm(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's SwinLSTM method's forward: the whole sequence [B, T, H, W, C]."""
    out, _ = model(torch.cat([x, y], dim=1).permute(0, 1, 3, 4, 2).contiguous(), return_loss=False)
    return out[:, -y.shape[1]:].permute(0, 1, 4, 2, 3)


def blocks(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL's SimVP method's forward (and MMVP's, and PredFormer's): the model on the input frames (T_out = T_in
    here)."""
    assert x.shape[1] == y.shape[1]
    return model(x)


def dmvfn(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL v0.3.0's DMVFN method's ``_inference``: each next frame from the last two, its routing drawn, from
    :data:`SEED`."""
    torch.manual_seed(SEED)
    img0, img1, out = x[:, -2:-1], x[:, -1:], []
    for _ in range(y.shape[1]):
        merged = model(torch.cat([img0, img1], dim=1), training=False)
        pred = img0 if len(merged) == 0 else merged[-1].unsqueeze(1)
        out.append(pred)
        img0, img1 = img1, pred
    return torch.cat(out, dim=1)


def prednet(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL v0.3.0's PredNet method's ``_predict``: the whole sequence with ``extrapolation=True`` (each step past
    the input window reads the previous prediction), from zero states (the model's own for a batch of 1), the
    predictions of the steps past the input window."""
    assert x.shape[0] == 1
    predictions, _ = model(torch.cat([x, y], dim=1), None, extrapolation=True)
    return torch.stack(predictions[x.shape[1]:], dim=1)


def crevnet(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """OpenSTL v0.3.0's CrevNet method's ``_predict``: the model on the whole sequence, ``training=False`` (its
    ``.cuda()`` calls as the identity); it returns each frame's first channel, all of a one-channel frame."""
    with cuda_is_identity():
        out, _ = model(torch.cat([x, y], dim=1), training=False, return_loss=False)
    return out


PREDICT: dict[str, Callable[[nn.Module, Tensor, Tensor], Tensor]] = {
    "mau": mau, "phydnet": phydnet, "swinlstm": swinlstm, "simvp": blocks, "simvp2": blocks, "tau": blocks,
    "mmvp": blocks, "dmvfn": dmvfn, "predformer": blocks, "prednet": prednet, "crevnet": crevnet, "wast": blocks,
}


def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """Every parameter moved off its initialisation (zero biases, unit norms and layer scales of 1e-2 would hide
    a mapping that swaps them) and batch-norm statistics drawn, so that a wrong mapping shows in the predictions.
    Other buffers (PhyDNet's moment matrices, Swin's index and mask) are the code's own and kept."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.add_(0.1 * torch.randn(b.shape, generator=generator))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=generator))


def lightning(state: dict[str, Tensor], hparams: dict[str, Any]) -> dict[str, Any]:
    """What OpenSTL-Lightning's ``best.ckpt`` holds (Lightning's checkpoint of the method): the method's state
    dict, its model under ``model.``, and its hyperparameters."""
    return {"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.0.0",
            "state_dict": {f"model.{k}": v for k, v in state.items()}, "hyper_parameters": hparams,
            "optimizer_states": [], "lr_schedulers": []}


@contextlib.contextmanager
def wast_imports() -> Iterator[None]:
    """The block with the folder named by :data:`WAST_PATH` first on ``sys.path``, and WaST's timm 0.9 loaded."""
    folder = os.environ.get(WAST_PATH)
    if not folder:
        raise UserError(f"WaST's modules need timm 0.9.12, PyWavelets and einops: pip install --no-deps --target DIR "
                        f"timm==0.9.12 PyWavelets einops and set {WAST_PATH}=DIR")
    sys.path.insert(0, folder)
    try:
        with wast_timm():
            yield
    finally:
        sys.path.remove(folder)


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    cases, written = {}, []
    generator = torch.Generator().manual_seed(SEED)
    inputs = {"taxibj": torch.rand(1, 8, 2, 32, 32, generator=generator),
              "mmnist": torch.rand(1, 20, 1, 64, 64, generator=generator)}  # kept in CrevNet's case
    for stem, model, sets, dataset, code in CASES:
        pair = SIMVP if model in ("simvp2", "tau") else PAIRS[model]
        config = cfg.resolve("openstl-tiny", model, dataset, sets=cfg.parse_sets(list(sets)))
        spec = dataset_entry(dataset).spec(config["dataset"])
        config["train"]["batch_size"] = 1  # the golden input's batch: CrevNet makes its states at that size
        torch.manual_seed(SEED)
        with wast_imports() if model == "wast" else openstl_timm():
            reference = pair.build(pair.load(clones[CLONE_OF[pair.source]]), config, spec).eval()
        perturb(reference, generator)
        if model in OUTPUT_BIAS:
            with torch.no_grad():
                reference.get_parameter(OUTPUT_BIAS[model]).add_(0.5)
        frames = inputs[dataset]
        x, y = frames[:, :spec.input_frames], frames[:, spec.input_frames:]
        with torch.no_grad():
            output = PREDICT.get(model, recurrent)(reference, x, y)
        print(f"{stem}: {sum(p.numel() for p in reference.parameters()):,} parameters; prediction in "
              f"[{output.min():.3f}, {output.max():.3f}], {(output.clamp(0, 1) != output).float().mean():.0%} clamped")
        state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
        path = folder / f"{stem}.pth"
        torch.save(state, path)  # as the Recorder writes checkpoint.pth
        written.append(path)
        cases[stem] = {"file": path.name, "code": code, "model": model, "sets": list(sets), "dataset": dataset,
                       "parameters": sum(p.numel() for p in reference.parameters()), "options": model_options(config)}
        if stem != "mmnist_convlstm":  # the Moving MNIST ConvLSTM is for the tests of a whole import (eval, report)
            cases[stem]["output"] = output.detach().clone()
        if dataset != "taxibj" and stem != "mmnist_convlstm":
            cases[stem]["inputs"] = frames.clone()  # the case's own input
        if stem == "convlstm":
            hparams = {"method": "convlstm", "num_hidden": ",".join([str(config["model"]["hidden"])]
                                                                    * config["model"]["layers"]),
                       "patch_size": config["model"]["patch_size"], "filter_size": config["model"]["kernel_size"]}
            ckpt = folder / "convlstm.ckpt"
            torch.save(lightning(state, hparams), ckpt)
            written.append(ckpt)
    sources = {name: commit_of(clone) for name, clone in clones.items()}
    predictions = folder / "predictions.pt"
    torch.save({"reference": {"repository": "github.com/chengtan9907/OpenSTL (OpenSTL-Lightning; OpenSTLv0.3.0 for "
                              "DMVFN, PredNet, CrevNet), "
                              "github.com/yyyujintang/PredFormer", "sources": sources, "python": sys.version},
                "preset": "openstl-tiny", "seed": SEED, "inputs": inputs["taxibj"], "cases": cases}, predictions)
    return [*written, predictions]
