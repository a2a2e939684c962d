"""Parity of MMVP, DMVFN and PredFormer with their reference code, in float64 (golden files:
tools/golden/mmvp_dmvfn_predformer.py).

* ``mmvp.pt`` / ``mmvp_shallow.pt``: OpenSTL's ``MMVP_Model`` (three scales, 3 -> 2 frames, 32x16; two scales,
  3 -> 1 frame, 2 channels): the evaluation-mode output (BatchNorm running statistics), the training-mode output
  (batch statistics) and its gradients, the running statistics after it.
* ``dmvfn.pt``: OpenSTL v0.3.0's ``DMVFN_Model`` (checked against the authors' ``DMVFN`` when the file was made):
  every block's training-mode prediction, the routing draws, the training loss (Laplacian L1 over the blocks)
  and its gradients, the evaluation-mode prediction of one sequence whose routing draws some blocks and of one
  that draws none. The routing's Bernoulli draws are reproduced by seeding torch before each forward.
* ``predformer.pt``: the authors' ``PredFormer_Model`` (Quadruplet-TSST): output and gradients.

Each test loads the reference's weights into vpbench's model through the package's name mappings
(:mod:`vpbench.reference.mappings` ``mmvp``, ``dmvfn``, ``predformer``, which ``bench import`` uses; the layouts
are the same), runs the same input and compares outputs and gradients to 1e-10. vpbench clamps MMVP's and
PredFormer's predictions to [0, 1] with a straight-through gradient: they are compared with the reference's
clamped. Their training loss (the recipe's, ``mse_raw``) is that of the unbounded output, as the references
train: the gradients of the MSE against a target at which the reference's gradients are the golden file's
(:func:`squared_loss_target`; the reference's output leaves [0, 1], so a clamp before the loss changes them). Parameter
counts at the full configurations and fvcore FLOPs at the files' are compared with the reference's too.
"""
from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from helpers.parity import (
    assert_close,
    assert_grads,
    by_reference,
    grads_of,
    load_golden,
    load_mapped,
    squared_loss_target,
)

from vpbench.datasets import DataSpec
from vpbench.losses import get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create, get_entry
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")
CODES = {"mmvp": "openstl", "dmvfn": "openstl", "predformer": "predformer"}


def mapping(file: str, golden: dict, model: torch.nn.Module) -> WeightMap:
    """The package's mapping of the reference's model at the golden configuration; the parameters it declares
    unused are the ones the golden file lists."""
    name = file.split("_")[0]
    weights = mapping_for(CODES[name], name)(golden["state_dict"], model.state_dict(), golden["config"]["vpbench"])
    assert set(golden.get("unused", ())) <= weights.unused
    assert not {n for n in weights.unused if n in golden["grads"]} - set(golden.get("unused", ()))
    return weights


def load_model(file: str, golden: dict) -> tuple[torch.nn.Module, WeightMap]:
    """vpbench's model at the golden file's configuration, in float64, with the reference's (used) weights."""
    model = create(file.split("_")[0], **golden["config"]["vpbench"]).double()
    weights = mapping(file, golden, model)
    return load_mapped(model, weights, golden["state_dict"]), weights  # every weight, each once


def used_grads(golden: dict, weights: WeightMap) -> dict[str, torch.Tensor]:
    """The reference's gradients of the parameters its forward uses (the others' are zeros: checked)."""
    for name in weights.unused & set(golden["grads"]):
        assert not golden["grads"][name].any(), f"{name} is listed unused but has a gradient"
    return {k: v for k, v in golden["grads"].items() if k not in weights.unused}


def openstl_channels(frames: torch.Tensor) -> torch.Tensor:
    """MMVP's frames [B, K, C, H, W] as OpenSTL's output reshape lays them out (``permute(0, 2, 3, 1)`` of each
    [C, H, W] frame, read back as [C, H, W]: the channels mixed when C > 1)."""
    b, k, c, h, w = frames.shape
    return frames.reshape(b * k, c, h, w).permute(0, 2, 3, 1).reshape(b, k, c, h, w)


def from_openstl_channels(frames: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`openstl_channels`: OpenSTL's layout [B, K, C, H, W] back to vpbench's frames."""
    b, k, c, h, w = frames.shape
    return frames.reshape(b * k, h, w, c).permute(0, 3, 1, 2).reshape(b, k, c, h, w)


def train_on_squared_loss(model: torch.nn.Module, name: str, preset: str, x: torch.Tensor, target: torch.Tensor,
                          expected_loss: torch.Tensor) -> torch.Tensor:
    """The training loss of ``name``'s recipe under ``preset`` (which must be ``mse_raw``) on (x, target),
    checked against ``expected_loss`` and backpropagated; returns the predictions it gave."""
    loss_name = get_entry(name).recipe_for(preset)["loss"]
    assert loss_name == "mse_raw", f"{name} under {preset} trains with {loss_name}, not the reference's raw MSE"
    loss, pred = get_loss(loss_name)(model, x, target)
    assert_close(loss, expected_loss, f"{name}'s training loss (MSE of the unbounded output)")
    loss.backward()
    return pred


@pytest.mark.parametrize("file", ["mmvp", "mmvp_shallow"])
def test_mmvp_matches_openstl(file):
    golden = load_golden(file)
    model, weights = load_model(file, golden)
    x, w = golden["inputs"], golden["loss_weights"]
    horizon = golden["config"]["vpbench"]["output_frames"]
    with torch.no_grad():
        out = model.eval()(x, horizon)
    assert_close(openstl_channels(out), golden["eval_output"].clamp(0, 1), "MMVP evaluation-mode output")
    reference = golden["output"]
    assert ((reference < 0) | (reference > 1)).any(), "the golden output must leave [0, 1] for the loss to see a clamp"
    target = from_openstl_channels(squared_loss_target(reference, w))
    pred = train_on_squared_loss(model.train(), "mmvp", "openstl", x, target, (w.expand_as(reference) ** 2 / 4).mean())
    assert_close(openstl_channels(pred), reference.clamp(0, 1), "MMVP training-mode output (the reference's, clamped)")
    assert_grads(grads_of(model), used_grads(golden, weights), by_reference(weights, golden["state_dict"]))
    buffers = weights.to_reference(model.state_dict(), golden["state_dict"])
    for name, value in golden["buffers"].items():
        if name not in weights.unused:
            assert_close(buffers[name], value, f"running statistic {name} after the training step")


def test_dmvfn_matches_openstl_port_and_the_authors():
    golden = load_golden("dmvfn")
    model, weights = load_model("dmvfn", golden)
    model.train()
    x = golden["inputs"]
    torch.manual_seed(golden["train_seed"])
    draws = model.router(x[:, :2].flatten(1, 2))
    assert torch.equal(draws, golden["train_draws"]), "routing draws differ"
    torch.manual_seed(golden["train_seed"])
    blocks = model(x[:, :2], 1, targets=x[:, 2:])  # [blocks, B, 1, C, H, W]
    assert_close(blocks[:, :, 0], golden["output"], "DMVFN's training-mode predictions of every block")
    torch.manual_seed(golden["train_seed"])
    loss, _ = get_loss("dmvfn")(model, x[:, :2], x[:, 2:])
    assert_close(loss, golden["loss"], "DMVFN's training loss (Laplacian L1 of every block)")
    loss.backward()
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))
    model.eval()
    for case in ("eval", "eval_none"):
        torch.manual_seed(golden[case]["seed"])
        with torch.no_grad():
            out = model(x[:1, :2], 1)[:, 0]
        assert_close(out, golden[case]["output"], f"DMVFN's evaluation-mode prediction ({case})")


def test_predformer_matches_the_authors():
    golden = load_golden("predformer")
    model, weights = load_model("predformer", golden)
    x, w, reference = golden["inputs"], golden["loss_weights"], golden["output"]
    assert ((reference < 0) | (reference > 1)).any(), "the golden output must leave [0, 1] for the loss to see a clamp"
    pred = train_on_squared_loss(model, "predformer", "paper", x, squared_loss_target(reference, w), (w**2 / 4).mean())
    assert_close(pred, reference.clamp(0, 1), "PredFormer output (the reference's, clamped)")
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))


class _Training(torch.nn.Module):
    """DMVFN's training-mode forward of one window, as OpenSTL traces it for its FLOPs: x [1, 3, C, H, W]."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x[:, :2], 1, targets=x[:, 2:])


class _Horizon(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, horizon: int) -> None:
        super().__init__()
        self.model, self.horizon = model, horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.horizon)


def fvcore_by_operator(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return {"total": int(analysis.total()), **{k: int(v) for k, v in analysis.by_operator().items()}}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("file", ["mmvp", "mmvp_shallow", "dmvfn", "predformer"])
def test_params_and_flops_match_the_reference(file):
    """Parameters at the full configuration: the reference's less the ones its forward never uses. fvcore FLOPs at
    the golden configuration: the reference's. MMVP's differ in two operators only: its composition sums the
    chained matrices once (matmul) where OpenSTL chains them anew for each future frame (bmm: fewer operations
    for K = 1, many more for K = 10), and it skips OpenSTL's same-size bilinear resize of the mid features."""
    golden = load_golden(file)
    name = file.split("_")[0]
    full = golden["full"]
    assert count_params(create(name, preset="paper")) == full["params"] - sum(full["unused"].values())
    model = load_model(file, golden)[0].float()
    options = golden["config"]["vpbench"]
    shape = golden["inputs"].shape
    if name == "dmvfn":
        ours = fvcore_by_operator(_Training(model), torch.ones(1, 3, *shape[2:]))
        assert ours == golden["flops"]
        paper = _Training(create("dmvfn", preset="paper"))
        assert fvcore_by_operator(paper, torch.ones(1, 3, 1, 64, 64)) == full["flops"]
        return
    spec = DataSpec("golden", shape[1], options.get("output_frames", shape[1]), *shape[2:])
    if name == "predformer":
        assert count_flops(model, spec) == golden["flops"]["total"]
        return
    ours = fvcore_by_operator(_Horizon(model, spec.output_frames).eval(), torch.ones(1, *shape[1:]))
    reference = golden["flops"]
    different = {"total", "bmm", "matmul", "upsample_bilinear2d"}
    assert {k: v for k, v in ours.items() if k not in different} == {
        k: v for k, v in reference.items() if k not in different}
    assert ours["upsample_bilinear2d"] < reference["upsample_bilinear2d"]


def test_mappings_cover_every_parameter():
    """Every vpbench tensor receives a reference tensor, and every reference tensor the forward uses has a place."""
    for file in ("mmvp", "mmvp_shallow", "dmvfn", "predformer"):
        golden = load_golden(file)
        model = create(file.split("_")[0], **golden["config"]["vpbench"])
        weights = mapping(file, golden, model)
        used = {k for k in golden["state_dict"] if k not in weights.unused}
        assert {rename_of(weights, k) for k in used} == set(model.state_dict()), file


def rename_of(weights: WeightMap, reference_name: str) -> str:
    return next(link.ours for link in weights.links if reference_name in link.refs)
