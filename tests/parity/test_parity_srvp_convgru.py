"""vpbench's SRVP and ConvGRU against the official SRVP code (golden files from ``tools/golden/srvp_convgru.py``).

The golden files hold the official code (github.com/yuseonk/SRVP) run in float64 at a tiny
configuration with every dropout off (see the generator's docstring):

* ``srvp.pt`` (M=8, L=2) and ``srvp_layers1.pt`` (M=4, L=1): ``EncoderDecoder``'s weights, a fixed
  input, its output in eval mode and in training mode, the parameter gradients of a fixed loss of the
  training-mode output and the batch-norm running statistics after that forward pass;
* ``convgru.pt``: one official ``Conv2DGRUCell`` for 3 steps from a random state, and a 2-layer
  ``RecurrentBlock`` (SRVP's encoder) from the zero state;
* ``srvp_training.pt``: three steps of the official ``Estimator`` (BCELoss, RMSprop, cosine annealing
  stepped once per epoch), one batch per epoch, from ``srvp.pt``'s weights.

Here vpbench's model gets the official weights through the package's mapping
(:mod:`vpbench.reference.mappings.srvp`, which ``bench import srvp`` uses: the official separate 1x1
projections and the GRU's input convolutions stacked into vpbench's fused convolutions), runs the
same input, and its outputs, gradients (mapped back to the official names) and batch-norm statistics
must equal the official ones to 1e-10. The official model shares one ConvNet among the N frames
(``LinearProjection`` appends the same module N times), so its state dict names the same tensors N
times (``enc_sc.lpconv.layers.0`` ... ``layers.N-1``); ``layers.0`` is the one mapped.
Training mode: vpbench's ConvGRU dropout is ``dropout=0.0`` and the AddNorm dropouts (fixed at 0.2 in
``srvp_modules``) are set to p=0, as every ``nn.Dropout`` was in the official model.

Training: vpbench's loss, optimiser and schedule (``get_loss``, ``make_optimizer``, ``Schedule`` with the
paper recipe written out in ``PAPER_TRAIN``) reproduce the official three steps to 1e-10.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Mapping

import pytest
import torch
from helpers.parity import TOLERANCE, assert_close, assert_grads, grads_of, load_golden
from helpers.recipes import assert_steps_match, train_like_bench
from torch import Tensor, nn

from vpbench.config import load_preset, train_config
from vpbench.harness.recipes import Schedule, make_optimizer
from vpbench.losses import get_loss
from vpbench.models import create
from vpbench.models.convgru import ConvGRUCell
from vpbench.models.layers.dropout import Dropout
from vpbench.reference.mappings.srvp import Table, authors_srvp, convgru_table, srvp_table, table_map

pytestmark = pytest.mark.usefixtures("one_thread")

# The paper's recipe (Sec. 4.3, official utils.py/train.sh) for Moving MNIST, written out rather than read
# from the presets. Cosine annealing stepped once per epoch with T_max = 23,400 epochs: the official
# T_max of 156 iterations x 150 epochs, stepped once per epoch.
PAPER_TRAIN = {
    "epochs": 150,
    "batch_size": 8,
    "loss": "bce",
    "optimizer": "rmsprop",
    "lr": 1e-5,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": "cosine",
    "eta_min": 1e-7,
    "t_max_epochs": 23400,
}


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# -- the weight mapping (the package's) ------------------------------------------------------------
def to_official(ours: Mapping[str, Tensor], table: Table, official: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """vpbench tensors (weights, gradients, buffers) by the official names, split as ``official`` is."""
    return table_map(table, official).to_reference(ours, official)


def load_official(model: nn.Module, official: Mapping[str, Tensor], table: Table) -> None:
    """The official weights into ``model``, every one of its tensors from the table (strict)."""
    model.load_state_dict(table_map(table, official).to_vpbench(official), strict=True)


def dropout_off(model: nn.Module) -> nn.Module:
    """Every dropout of a vpbench model at p=0 (the ConvGRU's is built with dropout=0.0)."""
    for module in model.modules():
        if isinstance(module, (Dropout, nn.Dropout)):
            module.p = 0.0
        if isinstance(module, ConvGRUCell):
            assert module.dropout == 0.0
    return model


def build_srvp(golden: Mapping) -> nn.Module:
    """vpbench's SRVP at the golden file's configuration, with the official weights."""
    state = golden["state_dict"]
    for key in state:  # one ConvNet shared by the frames: the official names it once per frame
        if key.startswith("enc_sc.lpconv.layers."):
            shared = "enc_sc.lpconv.layers.0." + key.split(".", 4)[4]
            assert torch.equal(state[key], state[shared]), key
    model = create("srvp", preset="tiny", **golden["config"]["vpbench"])
    weights = authors_srvp(state, model.state_dict(), golden["config"]["vpbench"])  # what bench import srvp reads
    model.load_state_dict(weights.to_vpbench(state), strict=True)
    return dropout_off(model)


def fingerprint(state: Mapping[str, Tensor]) -> str:
    """SHA-256 of a state's names and values (as float32), in name order (as the generator's)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


RELATIVE = 1e-9  # gradients, per tensor, relative to the tensor's largest reference value (seen: 5e-15)


def assert_all_grads(ours: Mapping[str, Tensor], golden: Mapping, table: Table) -> None:
    """Every gradient to 1e-10 absolute (parity.assert_grads), and to 1e-9 of its tensor's scale: many
    gradients here are ~1e-5, where 1e-10 absolute alone would pass a 1e-5 relative error. The conv
    biases before a training-mode batch norm have a zero gradient (up to rounding, < 1e-15), which
    only the absolute check covers."""
    assert_grads(ours, golden["grads"], lambda grads: to_official(grads, table, golden["state_dict"]))
    mapped = to_official(ours, table, golden["state_dict"])
    for name, expected in golden["grads"].items():
        scale = expected.abs().max().item()
        if scale > 1e-15:
            assert_close(mapped[name] / scale, expected / scale, f"gradient of {name} / its largest value", RELATIVE)


def bn_buffers(model: nn.Module) -> dict[str, Tensor]:
    return {k: v for k, v in model.named_buffers() if "running_" in k or "num_batches" in k}


# -- SRVP -----------------------------------------------------------------------------------------
SRVP_FILES = ["srvp", "srvp_layers1"]  # M=8, L=2; M=4, L=1 (temporal attention without the L-axis norm)


@pytest.mark.parametrize("name", SRVP_FILES)
def test_srvp_eval_output_equals_the_official(name):
    golden = load_golden(name)
    model = build_srvp(golden).eval()
    with torch.no_grad():
        output = model(golden["inputs"], golden["config"]["output_frames"])
    assert_close(output, golden["output_eval"], f"{name}: eval-mode output")


@pytest.mark.parametrize("name", SRVP_FILES)
def test_srvp_training_mode_output_gradients_and_bn_statistics_equal_the_official(name):
    golden = load_golden(name)
    table = srvp_table(golden["config"]["vpbench"]["layers"])
    model = build_srvp(golden).train()
    output = model(golden["inputs"], golden["config"]["output_frames"])
    assert_close(output, golden["output"], f"{name}: training-mode output")
    stats = to_official(bn_buffers(model), table, golden["state_dict"])
    assert sorted(stats) == sorted(golden["bn_stats"])
    for key, expected in golden["bn_stats"].items():
        assert_close(stats[key], expected, f"{name}: batch-norm buffer {key}")
    (output * golden["loss_weights"]).mean().backward()
    assert_all_grads(grads_of(model), golden, table)


# -- ConvGRU --------------------------------------------------------------------------------------
def test_convgru_cell_equals_the_official_cell():
    golden = load_golden("convgru")["cell"]
    config = golden["config"]
    cell = ConvGRUCell(config["input_channels"], config["hidden_channels"], config["kernel_size"], dropout=0.0)
    table = convgru_table()
    load_official(cell, golden["state_dict"], table)
    cell.train()
    inputs = golden["inputs"].clone().requires_grad_()
    state0 = golden["state0"].clone().requires_grad_()
    state, outputs = {"h": state0}, []
    for x in inputs.unbind(1):
        state = cell.step(cell.input_conv(x), state, {})
        outputs.append(state["h"])
    output = torch.stack(outputs, dim=1)
    assert_close(output, golden["output"], "ConvGRU cell: hidden states")
    (output * golden["loss_weights"]).mean().backward()
    assert_all_grads(grads_of(cell), golden, table)
    assert_close(inputs.grad, golden["input_grads"]["inputs"], "ConvGRU cell: gradient of the inputs")
    assert_close(state0.grad, golden["input_grads"]["state0"], "ConvGRU cell: gradient of the initial state")


def test_convgru_encoder_equals_the_official_recurrent_block():
    golden = load_golden("convgru")["block"]
    config = golden["config"]
    layers = len(config["hidden_channels"])
    model = create("convgru", preset="tiny", hidden=config["hidden_channels"][0], layers=layers,
                   kernel_size=config["kernel_size"][0], patch_size=1, in_channels=config["input_channels"],
                   img_size=config["img_size"], dropout=0.0)
    encoder = dropout_off(model.encoder).train()
    table = [entry for i in range(layers) for entry in convgru_table(str(i), f"cell{i}")]
    load_official(encoder, golden["state_dict"], table)
    inputs = golden["inputs"].clone().requires_grad_()
    states, _, output = model.encode(inputs)
    states = torch.stack([s["h"] for s in states])
    assert_close(output, golden["output"], "ConvGRU encoder: top-layer outputs")
    assert_close(states, golden["states"], "ConvGRU encoder: final states")
    ((output * golden["loss_weights"]).mean() + (states * golden["state_weights"]).mean()).backward()
    assert_all_grads(grads_of(encoder), golden, table)
    assert_close(inputs.grad, golden["input_grads"]["inputs"], "ConvGRU encoder: gradient of the inputs")


# -- the training protocol ------------------------------------------------------------------------
def test_paper_recipe_is_the_official_one():
    """The literal recipe above against what the official Estimator built (recorded in the golden file)."""
    official = load_golden("srvp_training")["config"]
    optimizer, scheduler = official["optimizer"], official["scheduler"]
    assert official["loss"] == "BCELoss" and PAPER_TRAIN["loss"] == "bce"
    assert optimizer["name"] == "RMSprop" and PAPER_TRAIN["optimizer"] == "rmsprop"
    assert (optimizer["lr"], optimizer["momentum"], optimizer["weight_decay"]) == (
        PAPER_TRAIN["lr"], PAPER_TRAIN["momentum"], PAPER_TRAIN["weight_decay"])
    defaults = torch.optim.RMSprop([nn.Parameter(torch.zeros(1))]).defaults  # vpbench sets neither
    assert (optimizer["alpha"], optimizer["eps"], optimizer["centered"]) == (
        defaults["alpha"], defaults["eps"], defaults["centered"])
    assert scheduler["name"] == "CosineAnnealingLR" and PAPER_TRAIN["scheduler"] == "cosine"
    assert scheduler["eta_min"] == PAPER_TRAIN["eta_min"]
    # The official scheduler steps once per epoch; its T_max (in steps of the scheduler) is vpbench's
    # t_max_epochs (len(loader) // bs * epochs = 1250 // 8 * 150).
    assert scheduler["T_max"] == PAPER_TRAIN["t_max_epochs"]
    assert official["estimator"]["epoch"] == PAPER_TRAIN["epochs"]
    assert official["estimator"]["bs"] == PAPER_TRAIN["batch_size"]


def train_three_steps(loss_fn: Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]):
    """vpbench's recipe (optimiser, schedule; ``loss_fn``) for 3 epochs of one batch each, as the golden
    run: returns the golden file, the model after the steps, the rate and loss of each step, and the
    rate after the third epoch. The schedule steps once per epoch in both, so the three steps run at
    the rates of epochs 1-3."""
    golden, start = load_golden("srvp_training"), load_golden("srvp")
    assert fingerprint(start["state_dict"]) == golden["initial_sha256"], "srvp.pt is not the training run's start"
    model = build_srvp(start).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, PAPER_TRAIN)
    schedule = Schedule(optimizer, PAPER_TRAIN, steps_per_epoch=1)
    lrs, losses = [], []
    for batch in golden["batches"]:  # one epoch each
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model, batch["input"], batch["label"])
        loss.backward()
        optimizer.step()
        schedule.after_batch()
        losses.append(loss.detach())
        schedule.after_epoch()
    return golden, model, torch.tensor(lrs), torch.stack(losses), torch.tensor(optimizer.param_groups[0]["lr"])


def assert_trained_like_the_official(golden: Mapping, model: nn.Module, tol: float) -> None:
    """Every weight and batch-norm buffer after the three steps, by the official names."""
    table = srvp_table(golden["config"]["vpbench"]["layers"])
    final = to_official(model.state_dict(), table, golden["final_state_dict"])
    for key, expected in golden["final_state_dict"].items():
        if key.startswith("enc_sc.lpconv.layers.") and not key.startswith("enc_sc.lpconv.layers.0."):
            continue  # the same tensors as layers.0 (one ConvNet shared by the frames)
        assert_close(final[key], expected, f"after 3 steps: {key}", tol)


def test_three_training_steps_equal_the_official_estimator():
    """vpbench's loss, optimiser and schedule, from the same weights on the same batches, to 1e-10."""
    golden, model, lrs, losses, lr_after = train_three_steps(get_loss(PAPER_TRAIN["loss"]))
    relative = 1e-12  # the rates differ from 1e-5 by 5e-9 relative at most: compare them relatively
    assert_close(lrs / golden["lrs"], torch.ones(len(lrs)), "learning rate of each step (relative)", relative)
    assert_close(lr_after / golden["lr_after"], torch.tensor(1.0), "learning rate after the third epoch (relative)",
                 relative)
    assert_close(losses, golden["losses"], "loss of each step")
    assert_trained_like_the_official(golden, model, TOLERANCE)


# -- the recipe golden: vpbench's trainer against the official Estimator, step by step --------------
def srvp_recipe_run(**changes):
    """``fit`` (what ``bench run`` trains with) of vpbench's SRVP from ``srvp.pt``'s weights on the golden's batches,
    under the paper protocol's recipe as ``bench run`` resolves it, at the golden's length, batch, peak rate and
    T_max (``changes``: one more key changed)."""
    golden, start = load_golden("recipe_srvp"), load_golden("srvp")
    assert fingerprint(start["state_dict"]) == golden["initial_sha256"], "srvp.pt is not the recipe run's start"
    model = build_srvp(start)
    train = train_config(load_preset("paper"), "srvp", "mmnist", {**golden["config"]["train"], **changes}, None)
    table = srvp_table(golden["config"]["vpbench"]["layers"])
    recorder = train_like_bench(model, golden, train)
    return recorder, golden, lambda ours: to_official(ours, table, start["state_dict"])


def test_srvp_recipe_matches_the_official_estimator():
    """RMSprop (momentum 0.9, weight decay 1e-4) + cosine annealing stepped per epoch (T_max 3 epochs, down to
    1e-7) + BCE, 6 steps over 3 epochs: rate, loss and every weight's and batch-norm buffer's sketch at each step."""
    assert_steps_match(*srvp_recipe_run())


@pytest.mark.parametrize("changes", [{"t_max_epochs": 4}, {"eta_min": 1e-5}, {"momentum": 0.0},
                                     {"weight_decay": 0.0}, {"loss": "mse"}])
def test_srvp_recipe_golden_sees_a_changed_recipe(changes):
    """One thing of the recipe changed (the cosine's length or floor, RMSprop's momentum or weight decay, the
    loss): the steps no longer match."""
    with pytest.raises(AssertionError, match="differs from the reference"):
        assert_steps_match(*srvp_recipe_run(**changes))
