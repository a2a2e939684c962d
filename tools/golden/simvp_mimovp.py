"""Golden files of the RNN-free baselines: SimVP (A4Bio/SimVP) and MIMO-VP (ningshuliang/MIMO-VP), both versions.

Writes ``simvp.pt``, ``mimovp_frames.pt`` and ``mimovp_positions.pt`` (read by
``tests/parity/test_parity_simvp_mimovp.py``). The reference files are taken at pinned commits with ``git show`` into
a temporary folder, so that one clone of each repository serves every version (an exported copy without git's
history, with a ``.commit`` file naming its commit, serves the version of that commit):

* SimVP: ``model.py`` + ``modules.py`` at :data:`SIMVP_COMMIT`.
* MIMO-VP, ``queries="frames"``: ``Models.py`` + ``Layers.py`` + ``Sublayers.py`` at :data:`MIMOVP_FRAMES_COMMIT`
  (the current code; ``Models.py`` took this form in 66dfe25, January 2024).
* MIMO-VP, ``queries="positions"``: the same files at :data:`MIMOVP_POSITIONS_COMMIT` (the first release,
  February 2023; the three files are unchanged up to 875c9ff, December 2023).

Tiny configurations (float64, seeded). The official MIMO-VP hard-codes a 16x16 token grid and a 32x32
readout, so its input is 32x32 patched frames: here patch size 1 on 32x32 frames (the model sees
patched frames in both codes; patching happens outside the model). Its first release also hard-codes
10 input frames, 20 positions and 10 decoder layers; its decoder is cut to its first two layers after
construction (``decoder.layers`` and ``decoder.N``), the same code path with fewer layers. To keep each
file under 300 KB (10 frames of 32x32 in float64 are 80 KB a sequence), that file has batch 1,
d_model 2 and the last decoder layer's output only (the loss is on it), while the current version's
file has batch 2, 2 frames, d_model 4 and every decoder layer's output (the loss is on all of them).

All weights are randomised beyond the references' initialisations (GroupNorm affines away from 1 and
0, position embedding rows on both sides of the max norm 1), so that a mapping that swaps two norms
or drops the max norm is caught.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from argparse import Namespace
from pathlib import Path

import torch
from golden_files import gradients, save

from vpbench.reference.clones import commit_of, load_file, restored_modules

SOURCES = ("simvp", "mimovp")

SIMVP_REPO = "github.com/A4Bio/SimVP"
MIMOVP_REPO = "github.com/ningshuliang/MIMO-VP"
SIMVP_COMMIT = "4dcd4451282e014573ca4346ced8223e342f7893"
MIMOVP_FRAMES_COMMIT = "744b06b9e0a099802e0c240a84535b0a1032f897"
MIMOVP_POSITIONS_COMMIT = "f0c64f09b1e83a15597a4e14f154939c71bd7921"
MIMOVP_FILES = ("Sublayers.py", "Layers.py", "Models.py")  # in import order


def extract(clone: Path, commit: str, files: tuple[str, ...], folder: Path) -> None:
    """Write ``files`` as they are at ``commit`` of ``clone`` into ``folder``: from git's history, or from an exported
    copy of that commit."""
    for name in files:
        out = subprocess.run(["git", "-C", str(clone), "show", f"{commit}:{name}"], capture_output=True)
        if out.returncode == 0:
            (folder / name).write_bytes(out.stdout)
        elif commit_of(clone) == commit:
            shutil.copyfile(clone / name, folder / name)
        else:
            raise SystemExit(f"{clone}: cannot read {name} at {commit} ({out.stderr.decode().strip()}); give a full "
                             "git clone (git fetch --unshallow) or an exported copy of that commit")


def import_files(folder: Path, files: tuple[str, ...]) -> dict:
    """Import ``files`` (which import each other by their top-level names), unloaded again after."""
    with restored_modules(*(Path(name).stem for name in files)):
        return {name: load_file(folder, name, name=Path(name).stem) for name in files}


@torch.no_grad()
def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """GroupNorm affines away from (1, 0), so that each norm's weights are told apart from the others'."""
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))


def run(model: torch.nn.Module, inputs: torch.Tensor, loss_weights: torch.Tensor,
        select=lambda y: y) -> tuple[dict, torch.Tensor, dict]:
    """(weights before the call, ``select(model(inputs))``, gradients of mean(select(output) * loss_weights))."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # before max_norm renormalises
    model.zero_grad(set_to_none=True)
    output = select(model(inputs))
    (output * loss_weights).mean().backward()
    return state, output.detach().clone(), gradients(model)


def make_simvp(clone: Path, out: Path) -> Path:
    generator = torch.Generator().manual_seed(20220601)
    config = {"shape_in": (3, 2, 16, 16), "hid_S": 4, "hid_T": 16, "N_S": 4, "N_T": 3, "incep_ker": [3, 5],
              "groups": 4}
    vpbench = {"preset": "tiny", "in_channels": 2, "input_frames": 3, "spatial_hidden": 4, "temporal_hidden": 16,
               "spatial_layers": 4, "temporal_layers": 3, "kernels": [3, 5], "groups": 4}
    with tempfile.TemporaryDirectory() as tmp:
        extract(clone, SIMVP_COMMIT, ("modules.py", "model.py"), Path(tmp))
        reference = import_files(Path(tmp), ("modules.py", "model.py"))["model.py"]
        torch.manual_seed(0)
        model = reference.SimVP(**config)
    perturb(model, generator)
    with torch.no_grad():  # centre the raw output on [0, 1] so that part of it lies inside, part outside
        model.dec.readout.bias.fill_(0.5)
    inputs = torch.rand(2, *config["shape_in"], generator=generator)
    loss_weights = torch.randn(inputs.shape, generator=generator)
    state, output, grads = run(model, inputs, loss_weights)
    inside = ((output > 0) & (output < 1)).double().mean().item()
    assert 0.2 < inside < 0.8, f"SimVP golden: {inside:.0%} of the raw output in [0, 1]; the clamp would go untested"
    return save(out / "simvp.pt",
                reference={"repository": SIMVP_REPO, "commit": SIMVP_COMMIT, "file": "model.py (SimVP), modules.py"},
                config={"reference": config, "vpbench": vpbench},
                state_dict=state, inputs=inputs, output=output, loss_weights=loss_weights, grads=grads,
                notes="output: the raw (unclamped) output [B, T, C, H, W]; inside [0, 1]: "
                      f"{inside:.0%} of its values")


def make_mimovp(clone: Path, out: Path, queries: str) -> Path:
    positions = queries == "positions"
    commit = MIMOVP_POSITIONS_COMMIT if positions else MIMOVP_FRAMES_COMMIT
    generator = torch.Generator().manual_seed(20230203 if positions else 20240124)
    batch, frames, layers, d_model = (1, 10, 2, 2) if positions else (2, 2, 2, 4)
    # Argument names of the official main.py; the first release has one n_layers (the encoder's).
    opt = {"patch_size": 1, "d_model": d_model, "heads": 2, "batch_size": batch}
    opt.update({"n_layers": 1} if positions else {"n_encoder_layers": 1, "n_decoder_layers": layers})
    vpbench = {"preset": "tiny", "in_channels": 1, "input_frames": frames, "patch_size": 1, "d_model": d_model,
               "heads": 2, "encoder_layers": 1, "decoder_layers": layers, "queries": queries}
    with tempfile.TemporaryDirectory() as tmp:
        extract(clone, commit, MIMOVP_FILES, Path(tmp))
        reference = import_files(Path(tmp), MIMOVP_FILES)["Models.py"]
        torch.manual_seed(0)
        model = reference.get_model(Namespace(**opt))
    if positions:  # hard-coded 10 decoder layers: keep the first two
        model.decoder.layers = model.decoder.layers[:layers]
        model.decoder.N = layers
        with torch.no_grad():  # rows of norm 1.5 and 0.6 in turn: the max norm renormalises every other one
            weight = model.pos_emb.weight
            weight.mul_(torch.tensor([1.5, 0.6]).repeat(10)[:, None] / weight.norm(dim=1, keepdim=True))
    perturb(model, generator)
    inputs = torch.rand(batch, frames, 1, 32, 32, generator=generator)
    # The reference returns every decoder layer's frames, concatenated on the channels: [B, T, L*C, 32, 32];
    # the first release's file keeps the last layer's, [B, T, C, 32, 32]. The weights broadcast over B and T.
    kept = 1 if positions else layers
    loss_weights = torch.randn(1, 1, kept, 32, 32, generator=generator)
    state, output, grads = run(model, inputs, loss_weights, select=lambda y: y[:, :, -kept:])
    return save(out / f"mimovp_{queries}.pt",
                reference={"repository": MIMOVP_REPO, "commit": commit, "file": "Models.py (get_model), Layers.py, "
                           "Sublayers.py"},
                config={"reference": {**opt, "decoder_layers": layers, "input_frames": frames,
                                      "frame_size": (32, 32)}, "vpbench": vpbench},
                state_dict=state, inputs=inputs, output=output, loss_weights=loss_weights, grads=grads,
                notes=("output: the last decoder layer's prediction after the sigmoid, [B, T, C, H, W]; the decoder "
                       "is cut to its first 2 of 10 layers" if positions else
                       "output: every decoder layer's prediction after the sigmoid, concatenated on the channel "
                       "axis as the reference returns them, [B, T, L*C, H, W] (layer l: channels l*C to (l+1)*C)")
                + "; inputs are already patched (patch size 1); loss_weights broadcast over the batch and time")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return [make_simvp(clones["simvp"], out), make_mimovp(clones["mimovp"], out, "frames"),
                make_mimovp(clones["mimovp"], out, "positions")]
    finally:
        torch.set_default_dtype(default)
