"""Parity of OpenSTL's SimVP frame with each translator, and of TAU's loss, with OpenSTL's code in float64
(golden files: tools/golden/simvp_translators_tau.py, OpenSTL-Lightning's simvp_model.py, simvp_modules.py, layers/ and
methods/tau.py, run with timm 0.6.11).

* ``simvp2_<translator>.pt``: ``SimVP_Model`` (T 2, C 2, 16x16, hid_S 4, hid_T 16, N_S 2, N_T 3, mlp_ratio 2);
  each test loads its weights into vpbench's ``simvp2`` with that translator and compares the eval-mode
  output, the training-mode output (DropPath off, batch statistics), every gradient and the batch-norm running
  statistics after the training-mode forward, to 1e-10; and the stochastic-depth rates vpbench builds at
  OpenSTL's settings with those OpenSTL built. ``simvp2_incepu.pt`` also checks the ``simvp`` model's
  ``openstl`` form.
* ``tau_loss.pt``: TAU's ``diff_div_reg`` (value and gradient) and its training loss MSE + 0.1 diff_div_reg of
  a TAU model whose raw output leaves [0, 1] (value and parameter gradients) against vpbench's ``mse_ddr``
  loss, which reads the unbounded output as OpenSTL's.

Reference names map to vpbench's through the package's rules (:mod:`vpbench.reference.mappings.simvp`, which
``bench import openstl`` uses; same layouts, but for MogaNet's layer scales, [1, C, 1, 1] in OpenSTL, and HorNet's
linear MLP, whose weights vpbench reads as the same [out, in] matrices); Swin's index and mask buffers are not
loaded (vpbench derives the index, and OpenSTL never uses the mask).
"""
from __future__ import annotations

import pytest
import torch
from helpers.parity import TOLERANCE, assert_close, load_golden, load_mapped

from vpbench.losses import get_loss
from vpbench.models import create
from vpbench.models.layers.vision_blocks import DropPath, relative_position_index
from vpbench.models.tau import differential_divergence
from vpbench.reference.mappings.links import rename
from vpbench.reference.mappings.simvp import frame_map, rules_for

pytestmark = pytest.mark.usefixtures("one_thread")

TRANSLATORS = ("incepu", "gsta", "convmixer", "convnext", "hornet", "mlp", "moga", "poolformer", "swin", "uniformer",
               "van", "vit", "tau")


def load_model(golden: dict, name: str = "simvp2", **options) -> torch.nn.Module:
    """vpbench's model at the golden file's configuration, in float64, with the reference's weights."""
    translator = golden["config"]["vpbench"]["translator"]
    model = create(name, **{**golden["config"]["vpbench"], **options}).double()
    state = {k: v.double() if v.is_floating_point() else v for k, v in golden["state_dict"].items()}
    return load_mapped(model, frame_map(state, model.state_dict(), rules_for(translator)), state)


def check_against(golden: dict, model: torch.nn.Module) -> None:
    """Eval output, training output, gradients and batch-norm statistics against the golden file's."""
    translator = golden["translator"]
    rules = rules_for(translator)
    x, w = golden["inputs"].double(), golden["loss_weights"].double()
    model.eval()
    with torch.no_grad():
        assert_close(model(x, x.shape[1]), golden["output_eval"].clamp(0, 1), f"{translator}: eval-mode output")
    model.train()
    out = model(x, x.shape[1])
    # The raw reference output clamped: vpbench clamps with a straight-through gradient, so that the gradients of
    # the linear loss mean(y * w) are the reference's (see test_parity_simvp_mimovp.py).
    assert_close(out, golden["output"].clamp(0, 1), f"{translator}: training-mode output")
    (out * w).mean().backward()
    ours = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
    for name, grad in golden["grads"].items():
        mine = ours[rename(name, rules)].reshape(grad.shape)
        assert_close(mine, grad, f"{translator}: gradient of {name}")
    buffers = dict(model.named_buffers())
    for name, value in golden["running_stats"].items():
        assert_close(buffers[rename(name, rules)], value, f"{translator}: {name} after the training-mode forward")


@pytest.mark.parametrize("translator", TRANSLATORS)
def test_simvp2_matches_openstl(translator):
    golden = load_golden(f"simvp2_{translator}")
    assert golden["translator"] == translator
    check_against(golden, load_model(golden))


def test_simvp_openstl_form_is_openstls_simvp_incepu():
    golden = load_golden("simvp2_incepu")
    options = {k: golden["config"]["vpbench"][k] for k in ("in_channels", "input_frames", "spatial_hidden",
                                                           "temporal_hidden", "spatial_layers", "temporal_layers")}
    model = create("simvp", form="openstl", **options).double()
    state = {k: v.double() for k, v in golden["state_dict"].items()}
    load_mapped(model, frame_map(state, model.state_dict(), rules_for("incepu")), state)
    check_against(golden, model)


@pytest.mark.parametrize("translator", [t for t in TRANSLATORS if t != "incepu"])
def test_stochastic_depth_rates_are_openstls(translator):
    """At drop_path 0 OpenSTL's blocks still drop their branches (0.01, 0.005, then 0 at N_T 3)."""
    golden = load_golden(f"simvp2_{translator}")
    options = {**golden["config"]["vpbench"], "drop_path_start": 0.01}
    model = create("simvp2", **options)
    rates = [max([m.p for m in block.modules() if isinstance(m, DropPath)], default=0.0)
             for block in model.translator.blocks]
    if translator == "convmixer":  # OpenSTL builds ConvMixer blocks without stochastic depth
        assert golden["drop_path_rates"] == [0.0, 0.0, 0.0] and rates == [0.0, 0.0, 0.0]
    else:
        assert rates == pytest.approx(golden["drop_path_rates"], abs=1e-8)
        assert golden["drop_path_rates"] == pytest.approx([0.01, 0.005, 0.0], abs=1e-8)


def test_swin_windows_and_relative_positions_are_openstls():
    golden = load_golden("simvp2_swin")
    model = load_model(golden)
    for i, block in enumerate(model.translator.blocks):
        attention = block.block.mixer
        assert (attention.window, attention.shift) == (4, 2 * (i % 2))  # 8x8 features: window 4, shifted in odd blocks
        index = golden["state_dict"][f"hid.enc.{i}.block.attn.relative_position_index"]
        assert torch.equal(attention.attention.relative_position_index, index)
        assert torch.equal(relative_position_index(4), index)


def test_tau_regulariser_matches_openstls():
    golden = load_golden("tau_loss")["ddr"]
    pred = golden["pred"].double().requires_grad_()
    value = differential_divergence(pred, golden["target"].double())
    assert_close(value, golden["value"], "diff_div_reg")
    (grad,) = torch.autograd.grad(value, pred)
    assert_close(grad, golden["grad"], "gradient of diff_div_reg with respect to the prediction")
    assert golden["value_two_frames"] == 0.0
    assert differential_divergence(pred[:, :2], golden["target"].double()[:, :2]).item() == 0.0


def test_tau_training_loss_matches_openstls():
    golden = load_golden("tau_loss")
    model = load_model(golden, name="tau").train()
    x, y = golden["inputs"].double(), golden["targets"].double()
    reference = golden["output"]
    assert ((reference < 0) | (reference > 1)).any(), "the golden output must leave [0, 1] for the loss to see a clamp"
    loss, pred = get_loss("mse_ddr")(model, x, y)
    assert_close(pred, reference.clamp(0, 1), "TAU predictions (the reference's output, clamped)")
    assert_close(loss, golden["loss"], "TAU loss: MSE + 0.1 diff_div_reg of the unbounded output")
    loss.backward()
    rules = rules_for("tau")
    for name, grad in golden["grads"].items():
        param = dict(model.named_parameters())[rename(name, rules)]
        assert_close(param.grad.reshape(grad.shape), grad, f"TAU loss: gradient of {name}")
    model.eval()  # validation: the MSE alone, as OpenSTL's
    with torch.no_grad():
        loss, pred = get_loss("mse_ddr")(model, x, y)
    assert_close(loss, torch.nn.functional.mse_loss(model(x, y.shape[1], raw=True), y), "TAU validation loss",
                 tol=TOLERANCE)
