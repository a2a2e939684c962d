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

Each test loads the reference's weights into vpbench's model through the name mappings below (the layouts are
the same), runs the same input and compares outputs and gradients to 1e-10. vpbench clamps MMVP's and
PredFormer's outputs to [0, 1] with a straight-through gradient: their outputs are compared with the
reference's clamped, their gradients (of a loss linear in the output) with the reference's unchanged. Parameter
counts at the full configurations and fvcore FLOPs at the files' are compared with the reference's too.
"""
from __future__ import annotations

import re

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from helpers.parity import Rules, assert_close, assert_grads, grads_of, load_golden, rename, to_reference, to_vpbench

from vpbench.datasets import DataSpec
from vpbench.losses import get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create

pytestmark = pytest.mark.usefixtures("one_thread")

# OpenSTL's MMVP_Model (modules mmvp_modules.py) -> vpbench (vpbench/models/mmvp.py). Its predictor's layers and
# their vpbench names; its filter blocks are flat Sequentials of (conv, BN, LReLU) x 3, vpbench's nested.
MMVP_PREDICTOR = [("conv_pre_1", "pre.0.0"), ("bn_pre_1", "pre.0.1"), ("conv_pre_2", "pre.1.0"),
                  ("bn_pre_2", "pre.1.1"), ("conv1_1", "down1.0"), ("bn1_1", "down1.1"),
                  ("conv3d_1.conv3d", "temporal1.conv"),
                  ("conv3d_1.bn3d", "temporal1.norm"), ("conv_translate.0", "translate.0"),
                  ("bn_translate", "translate.2"), ("conv2_1", "down2.0"), ("bn2_1", "down2.1"),
                  ("temporal_layer.conv3d", "temporal2.conv"), ("temporal_layer.bn3d", "temporal2.norm"),
                  ("temporal_layer.0", "temporal2.0"), ("conv3_1", "fuse.0"), ("bn3_1", "fuse.1"), ("conv4_1", "up.0"),
                  ("bn4_1", "up.1")]


def mmvp_rules(scales: int, enhance_blocks: int) -> Rules:
    return [
        (r"^enc\.inconv\.", "encoder.stem.0."),
        (r"^enc\.block_rrdb\.(\d+)\.", lambda m: f"encoder.stem.{int(m[1]) + 1}."),
        (r"^enc\.pre_downsample_block\.", "encoder.down."),
        (r"^enc\.downsample_high\.", f"encoder.down.{scales - 2}."),
        (r"^enc\.downsample_low\.", f"encoder.down.{scales - 1}."),
        (r"^filter\.filter_block\.0\.(\d+)\.", lambda m: f"filter_high.{int(m[1]) // 3}.{int(m[1]) % 3}."),
        (r"^filter\.filter_block\.1\.(\d+)\.", lambda m: f"filter_low.{int(m[1]) // 3}.{int(m[1]) % 3}."),
        (r"^dec\.upsample_block_low2high\.", "decoder.up.0."),
        (r"^dec\.upsample_block\.(\d+)\.", lambda m: f"decoder.up.{int(m[1]) + 1}."),
        (r"^(decoder\.up\.\d+)\.conv\.conv\.0\.", r"\1.conv."),
        (r"^dec\.rrdb_block\.", "decoder.refine."),
        (r"^dec\.outc\.", "decoder.readout."),
        (r"^enhance\.model\.", "enhance."),
        (r"^enhance\.outconv\.", f"enhance.{enhance_blocks + 1}."),
        (r"\.RDB(\d)\.", lambda m: f".blocks.{int(m[1]) - 1}."),
        (r"(\.blocks\.\d)\.conv(\d)\.", lambda m: f"{m[1]}.convs.{int(m[2]) - 1}."),
        (r"^hid\.predictor\.conv1\.", "predictor.embed."),
        (r"^hid\.predictor\.out_conv\.", "predictor.readout."),
        *((rf"^hid\.predictor\.predictor\.{re.escape(theirs)}\.", f"predictor.{ours}.")
          for theirs, ours in MMVP_PREDICTOR),
    ]


# OpenSTL v0.3.0's DMVFN_Model (dmvfn_modules.py) -> vpbench (vpbench/models/dmvfn.py): an MVFB's conv0, convblock,
# conv_sq, lastconv are coarse, body, squeeze, head; its conv1 and convblock1 (one conv-PReLU each) the fine branch.
DMVFN_RULES: Rules = [
    (r"^stu\.", "blocks."),
    (r"^routing\.routing\.", "router.features."),
    (r"^l1\.", "router.linear."),
    (r"\.conv0\.", ".coarse."),
    (r"\.convblock\.", ".body."),
    (r"\.conv_sq\.", ".squeeze."),
    (r"\.conv1\.0\.", ".fine.0."),
    (r"\.convblock1\.0\.", ".fine.1."),
    (r"\.lastconv\.", ".head."),
]

# The authors' PredFormer_Model -> vpbench (vpbench/models/predformer.py): a PredFormerLayer's four transformers
# (ts_temporal, ts_space, st_space, st_temporal) are ``blocks.0..3``; a GatedTransformer's layers are lists of
# (PreNorm(Attention), PreNorm(SwiGLU), DropPath, DropPath).
PREDFORMER_RULES: Rules = [
    (r"^to_patch_embedding\.1\.", "embed."),
    (r"^mlp_head\.0\.", "head_norm."),
    (r"^mlp_head\.1\.", "head."),
    (r"^blocks\.(\d+)\.ts_temporal_transformer\.", r"layers.\1.blocks.0."),
    (r"^blocks\.(\d+)\.ts_space_transformer\.", r"layers.\1.blocks.1."),
    (r"^blocks\.(\d+)\.st_space_transformer\.", r"layers.\1.blocks.2."),
    (r"^blocks\.(\d+)\.st_temporal_transformer\.", r"layers.\1.blocks.3."),
    (r"\.layers\.(\d+)\.0\.norm\.", r".attn_norms.\1."),
    (r"\.layers\.(\d+)\.0\.fn\.to_qkv\.", r".attns.\1.qkv."),
    (r"\.layers\.(\d+)\.0\.fn\.to_out\.", r".attns.\1.out."),
    (r"\.layers\.(\d+)\.1\.norm\.", r".ff_norms.\1."),
    (r"\.layers\.(\d+)\.1\.fn\.", r".ffs.\1."),
]


def rules_of(name: str, golden: dict) -> Rules:
    if name.startswith("mmvp"):
        options = golden["config"]["vpbench"]
        return mmvp_rules(options["scales"], options["enhance_blocks"])
    return {"dmvfn": DMVFN_RULES, "predformer": PREDFORMER_RULES}[name]


def unused_modules(golden: dict) -> tuple[str, ...]:
    """Prefixes of the reference's modules that its forward never calls (their parameters are in ``unused``)."""
    return tuple({name.rsplit(".", 1)[0] + "." for name in golden.get("unused", ())})


def load_model(name: str, golden: dict) -> torch.nn.Module:
    """vpbench's model at the golden file's configuration, in float64, with the reference's (used) weights."""
    used = {k: v for k, v in golden["state_dict"].items() if not k.startswith(unused_modules(golden))}
    model = create(name.split("_")[0], **golden["config"]["vpbench"]).double()
    model.load_state_dict(to_vpbench(used, rules_of(name, golden)), strict=True)  # every weight, each once
    return model


def used_grads(golden: dict) -> dict[str, torch.Tensor]:
    """The reference's gradients of the parameters its forward uses (the others' are zeros: checked)."""
    unused = tuple(golden.get("unused", ()))
    for name in unused:
        assert not golden["grads"][name].any(), f"{name} is listed unused but has a gradient"
    return {k: v for k, v in golden["grads"].items() if not k.startswith(unused)}


def openstl_channels(frames: torch.Tensor) -> torch.Tensor:
    """MMVP's frames [B, K, C, H, W] as OpenSTL's output reshape lays them out (``permute(0, 2, 3, 1)`` of each
    [C, H, W] frame, read back as [C, H, W]: the channels mixed when C > 1)."""
    b, k, c, h, w = frames.shape
    return frames.reshape(b * k, c, h, w).permute(0, 2, 3, 1).reshape(b, k, c, h, w)


@pytest.mark.parametrize("file", ["mmvp", "mmvp_shallow"])
def test_mmvp_matches_openstl(file):
    golden = load_golden(file)
    model = load_model(file, golden)
    x, w = golden["inputs"], golden["loss_weights"]
    horizon = golden["config"]["vpbench"]["output_frames"]
    with torch.no_grad():
        out = model.eval()(x, horizon)
    assert_close(openstl_channels(out), golden["eval_output"].clamp(0, 1), "MMVP evaluation-mode output")
    out = openstl_channels(model.train()(x, horizon))
    assert_close(out, golden["output"].clamp(0, 1), "MMVP training-mode output (the reference's, clamped)")
    (out * w).mean().backward()
    rules = rules_of(file, golden)
    assert_grads(grads_of(model), used_grads(golden), to_reference(used_grads(golden), rules))
    buffers = model.state_dict()
    for name, value in golden["buffers"].items():
        if not name.startswith(unused_modules(golden)):
            assert_close(buffers[rename(name, rules)], value, f"running statistic {name} after the training step")


def test_dmvfn_matches_openstl_port_and_the_authors():
    golden = load_golden("dmvfn")
    model = load_model("dmvfn", golden).train()
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
    assert_grads(grads_of(model), golden["grads"], to_reference(golden["grads"], DMVFN_RULES))
    model.eval()
    for case in ("eval", "eval_none"):
        torch.manual_seed(golden[case]["seed"])
        with torch.no_grad():
            out = model(x[:1, :2], 1)[:, 0]
        assert_close(out, golden[case]["output"], f"DMVFN's evaluation-mode prediction ({case})")


def test_predformer_matches_the_authors():
    golden = load_golden("predformer")
    model = load_model("predformer", golden)
    x, w = golden["inputs"], golden["loss_weights"]
    out = model(x, x.shape[1])
    assert_close(out, golden["output"].clamp(0, 1), "PredFormer output (the reference's, clamped)")
    (out * w).mean().backward()
    assert_grads(grads_of(model), golden["grads"], to_reference(golden["grads"], PREDFORMER_RULES))


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
    model = load_model(file, golden).float()
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
    """Every vpbench parameter receives a reference weight, and every reference weight the forward uses has a place."""
    for file in ("mmvp", "mmvp_shallow", "dmvfn", "predformer"):
        golden = load_golden(file)
        used = {k for k in golden["state_dict"] if not k.startswith(unused_modules(golden))}
        model = create(file.split("_")[0], **golden["config"]["vpbench"])
        assert {rename(k, rules_of(file, golden)) for k in used} == set(model.state_dict()), file
