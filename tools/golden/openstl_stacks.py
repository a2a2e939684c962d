"""Golden files of OpenSTL's four recurrent models as whole models: ConvLSTM, PredRNN, PredRNN++ and MIM.

Writes ``tests/golden/stack_{convlstm,stlstm,causallstm,mim}.pt`` (read by
``tests/parity/test_parity_openstl_stacks.py``) from a clone of github.com/chengtan9907/OpenSTL (branch
OpenSTL-Lightning): ``openstl/models/{convlstm,predrnn,predrnnpp,mim}_model.py`` over the cells of
``openstl/modules/``, fed as OpenSTL's ``methods/predrnn.py`` feeds them (``reshape_patch`` of
``openstl/utils/predrnn_utils.py``, a scheduled-sampling mask).

Each model runs in float64 on one fixed 20-frame input in [0, 1] (B=2, 2 channels, 8x4 frames: non-square, so
that a swapped height and width fails; patch 2, so that the patch channels' order matters), 10 -> 10 frames,
hidden 3, filter 3, layer_norm off. All weights are redrawn uniformly in [-0.3, 0.3] (OpenSTL starts MIM's
peepholes at zero and the GHU at +-0.001, which would leave them untested), then the readout is scaled so that
the teacher-forced predictions have a standard deviation of 0.5 (about 0.03 before: fed back, they would differ
too little from zeros), some of them below 0 and above 1. PredRNN++ and MIM have 3 layers (PredRNN++'s third
reads the second's hidden state, not the GHU's; MIM's second MIM-N reads the first's output), the others 2.
Three cases, each from a fresh model (MIM's blocks keep their stationary cell S on the module, ``convlstm_c``:
it is reset to ``None`` before each case):

* ``mask1``: the training forward with a mask of ones (the true frame at every step) and its loss;
* ``mask0``: the training forward with a mask of zeros (the model's own prediction at every step past the
  input window) and its loss;
* ``test``: OpenSTL's test-time forward (``PredRNN.forward``: a mask of zeros, ``return_loss=False``) and
  OpenSTL's validation loss on it (``validation_step``: the MSE of the last 10 predictions).

Each case holds ``output`` (all 19 next-frame predictions, raw, unpatched by OpenSTL's ``reshape_patch_back``
to [B, 19, C, H, W]), ``loss`` (OpenSTL's, a 0-d tensor) and, for the two training cases, ``grads`` (the
parameter gradients of that loss; zeros for the parameters OpenSTL's cells define and never use, listed in
``unused``). ``flops`` is fvcore's count at this configuration, traced as OpenSTL does (``openstl/api/exp.py``:
batch 1, the patched 20 frames and a mask of ones, the whole 19-step forward); ``full`` holds OpenSTL's parameter
count, its unused parameters and fvcore's FLOPs (so traced) at OpenSTL's Moving MNIST configuration
(configs/mmnist: 4 x 128, filter 5, patch 4, 64x64, 10 -> 10; float32).
"""
from __future__ import annotations

import logging
import types
import warnings
from pathlib import Path

import torch
from golden_files import default_dtype, gradients, save
from torch import nn

from vpbench.reference.clones import commit_of, load_file
from vpbench.reference.openstl_clone import load_model_class

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
# vpbench name -> (OpenSTL model file, model class, layers in the golden file)
MODELS = {"convlstm": ("convlstm_model", "ConvLSTM_Model", 2), "stlstm": ("predrnn_model", "PredRNN_Model", 2),
          "causallstm": ("predrnnpp_model", "PredRNNpp_Model", 3), "mim": ("mim_model", "MIM_Model", 3)}
MODULE_FILES = {"convlstm": "convlstm_modules", "stlstm": "predrnn_modules", "causallstm": "predrnnpp_modules",
                "mim": "mim_modules"}
BATCH, CHANNELS, FRAME, PATCH, HIDDEN, KERNEL = 2, 2, (8, 4), 2, 3, 3
PRE, AFT = 10, 10
FULL = {"channels": 1, "frame": (64, 64), "patch": 4, "hidden": 128, "layers": 4, "kernel": 5}  # configs/mmnist
SEED = 20240612
INIT_RANGE = 0.3
OUTPUT_STD = 0.5


def configs(channels: int, frame: tuple[int, int], patch: int, kernel: int) -> types.SimpleNamespace:
    """The ``configs`` OpenSTL's models read (plain scheduled sampling, layer_norm off, 10 -> 10)."""
    return types.SimpleNamespace(in_shape=(PRE + AFT, channels, *frame), patch_size=patch, filter_size=kernel,
                                 stride=1, layer_norm=0, pre_seq_length=PRE, aft_seq_length=AFT,
                                 reverse_scheduled_sampling=0)


def build(clone: Path, family: str, layers: int, hidden: int, cfg: types.SimpleNamespace) -> nn.Module:
    """OpenSTL's model of ``family``, as its method's ``_build_model`` builds it."""
    model_file, model_class, _ = MODELS[family]
    return load_model_class(clone, model_file, model_class, tuple(MODULE_FILES.values()))(layers, [hidden] * layers,
                                                                                          cfg)


def reset_stationary(model: nn.Module) -> None:
    """A fresh MIM: no stationary cell S left on its blocks from an earlier forward."""
    for module in model.modules():
        if hasattr(module, "convlstm_c"):
            module.convlstm_c = None


def fvcore_flops(model: nn.Module, cfg: types.SimpleNamespace) -> int:
    """fvcore's count for OpenSTL's FLOPs dummies (``openstl/api/exp.py`` ``display_method_info``)."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    _, c, h, w = cfg.in_shape
    p = cfg.patch_size
    frames = torch.ones(1, PRE + AFT, h // p, w // p, p * p * c)
    mask = torch.ones(1, AFT - 1, h // p, w // p, p * p * c)
    reset_stationary(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, (frames, mask))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = int(analysis.total())
    reset_stationary(model)
    return total


def unused_parameters(clone: Path, family: str, layers: int, hidden: int, cfg: types.SimpleNamespace) -> list[str]:
    """The parameters a training forward's loss never reaches (found at a tiny size, named as at any size)."""
    model = build(clone, family, layers, hidden, cfg)
    _, c, h, w = cfg.in_shape
    p = cfg.patch_size
    patched = (h // p, w // p, p * p * c)
    _, loss = model(torch.rand(1, PRE + AFT, *patched), torch.rand(1, AFT - 1, *patched))
    loss.backward()
    return sorted(n for n, q in model.named_parameters() if q.grad is None)


def full_size(clone: Path, family: str) -> dict:
    """OpenSTL's parameters (all, and those its forward never uses) and fvcore FLOPs at configs/mmnist's sizes,
    in float32."""
    cfg = configs(FULL["channels"], FULL["frame"], FULL["patch"], FULL["kernel"])
    with default_dtype(torch.float32):
        unused = unused_parameters(clone, family, FULL["layers"], 2, cfg)
        model = build(clone, family, FULL["layers"], FULL["hidden"], cfg)
        sizes = dict(model.named_parameters())
        return {"config": {**FULL, "pre": PRE, "aft": AFT}, "params": sum(q.numel() for q in model.parameters()),
                "unused": {n: sizes[n].numel() for n in unused}, "flops": fvcore_flops(model, cfg)}


def make_family(clone: Path, family: str, out: Path) -> Path:
    """``stack_<family>.pt``: OpenSTL's model at the golden size, its three cases, and its size at full scale."""
    torch.manual_seed(SEED)
    layers = MODELS[family][2]
    cfg = configs(CHANNELS, FRAME, PATCH, KERNEL)
    utils = load_file(clone, "openstl/utils/predrnn_utils.py")
    model = build(clone, family, layers, HIDDEN, cfg)
    frames = torch.rand(BATCH, PRE + AFT, CHANNELS, *FRAME)
    # methods/predrnn.py: [B, T, C, H, W] -> [B, T, H, W, C] -> reshape_patch -> [B, T, H/p, W/p, p*p*C]
    patched = utils.reshape_patch(frames.permute(0, 1, 3, 4, 2).contiguous(), PATCH)
    mask_shape = (BATCH, AFT - 1, *patched.shape[2:])
    with torch.no_grad():
        for q in model.parameters():
            q.uniform_(-INIT_RANGE, INIT_RANGE)
        # The readout scaled so that the teacher-forced predictions have a standard deviation of OUTPUT_STD
        # (a few hundredths without), so that feeding them back matters as much as feeding the true frames.
        next_frames, _ = model(patched, torch.ones(mask_shape), return_loss=False)
        model.conv_last.weight.mul_(OUTPUT_STD / next_frames.std())
    state = {n: q.detach().clone() for n, q in model.state_dict().items()}

    def unpatch(x: torch.Tensor) -> torch.Tensor:  # OpenSTL's reshape_patch_back, then to [B, T, C, H, W]
        return utils.reshape_patch_back(x, PATCH).permute(0, 1, 4, 2, 3).contiguous()

    cases = {}
    for name, value in (("mask1", 1.0), ("mask0", 0.0)):
        reset_stationary(model)
        model.zero_grad(set_to_none=True)
        next_frames, loss = model(patched, torch.full(mask_shape, value))
        loss.backward()
        cases[name] = {"mask": value, "output": unpatch(next_frames).detach().clone(),
                       "loss": loss.detach().clone(), "grads": gradients(model)}
    reset_stationary(model)
    with torch.no_grad():  # PredRNN.forward (the test mask: zeros), then validation_step's MSE
        next_frames, _ = model(patched, torch.zeros(mask_shape), return_loss=False)
        output = unpatch(next_frames)
        loss = nn.MSELoss()(output[:, -AFT:], frames[:, PRE:])
    cases["test"] = {"mask": 0.0, "output": output.clone(), "loss": loss.clone()}
    unused = unused_parameters(clone, family, layers, HIDDEN, cfg)
    model_file, model_class, _ = MODELS[family]
    reference = {"repository": REPOSITORY, "commit": commit_of(clone),
                 "files": [f"openstl/models/{model_file}.py", f"openstl/modules/{MODULE_FILES[family]}.py",
                           "openstl/utils/predrnn_utils.py", "openstl/methods/predrnn.py (its data path)"],
                 "model": f"{model_class}(num_layers={layers}, num_hidden={[HIDDEN] * layers}, configs)"}
    config = {"reference": {"in_shape": cfg.in_shape, "patch_size": PATCH, "filter_size": KERNEL, "stride": 1,
                            "layer_norm": 0, "pre_seq_length": PRE, "aft_seq_length": AFT,
                            "reverse_scheduled_sampling": 0, "num_hidden": [HIDDEN] * layers},
              "vpbench": {"in_channels": CHANNELS, "img_size": FRAME, "patch_size": PATCH, "hidden": HIDDEN,
                          "layers": layers, "kernel_size": KERNEL},
              "batch": BATCH, "input_frames": PRE, "output_frames": AFT, "init_range": INIT_RANGE, "seed": SEED,
              "inputs": "frames [B, 20, C, H, W] in [0, 1]; the reference read reshape_patch(frames.permute(0, 1, 3, "
                        "4, 2), patch)",
              "output": "[B, 19, C, H, W]: the predictions of frames 1..19, raw"}
    return save(out / f"stack_{family}.pt", reference=reference, config=config, state_dict=state, inputs=frames,
                cases=cases, unused=unused, flops=fvcore_flops(model, cfg), full=full_size(clone, family))


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_family(clones["openstl"], family, out) for family in MODELS]
