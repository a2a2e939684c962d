"""PredRNN.V2 (``predrnnv2``) and E3D-LSTM (``e3dlstm``): registration, contract, losses, sampling schedules and
the two E3D-LSTM variants. Parity with OpenSTL's code is in ``tests/parity/test_parity_predrnnv2_e3dlstm.py``."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from vpbench import presets
from vpbench.losses import LossContext, get_loss
from vpbench.models import create, get_entry, group_members
from vpbench.models.e3dlstm import Eidetic3DLSTMCell, WindowConv
from vpbench.models.layers.openstl_stack import RecurrentStack, sampling_probabilities
from vpbench.models.stlstm import STLSTMCell

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ["predrnnv2", "e3dlstm"]
SMALL = {"hidden": 4, "layers": 2, "kernel_size": 3, "patch_size": 2, "img_size": (8, 12)}


def small(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create(name, preset="openstl-tiny", **{**SMALL, **overrides})


def clip(batch: int = 2, t: int = 4, channels: int = 1, size: tuple[int, int] = (8, 12), seed: int = 1) -> Tensor:
    return torch.rand(batch, t, channels, *size, generator=torch.Generator().manual_seed(seed))


# -- registration -------------------------------------------------------------------------------------------
def test_registration() -> None:
    for name, label, in_group in (("predrnnv2", "PredRNN.V2", True), ("e3dlstm", "E3D-LSTM", True)):
        entry = get_entry(name)
        assert entry.label == label and entry.tags == {"openstl"} and 100 <= entry.rank < 200
        assert set(entry.references) == {"openstl-mmnist-200", "openstl-mmnist-2000"}
        assert (name in group_members("all", "openstl")) == in_group and name not in group_members("all")
    assert get_entry("predrnnv2").references["openstl-mmnist-200"]["mse"] == 24.13
    assert get_entry("e3dlstm").references["openstl-mmnist-200"]["mse"] == 35.97


def test_openstl_recipes_are_openstls_configs() -> None:
    v2 = get_entry("predrnnv2").recipe_for("openstl")
    assert v2 == {**presets.protocol_recipe("openstl"), "loss": "mse_decoupling", "lr": 5.0e-4, "sampling": "reverse",
                  "r_sampling_step_1": 25000, "r_sampling_step_2": 50000, "r_exp_alpha": 5000}
    e3d = get_entry("e3dlstm").recipe_for("openstl")
    assert e3d == {**presets.protocol_recipe("openstl"), "loss": "mse_l1_all_frames", "lr": 1.0e-4,
                   "sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 2.0e-5}
    assert get_entry("predrnnv2").kwargs_for("openstl") == {"hidden": 128, "layers": 4, "kernel_size": 5,
                                                            "patch_size": 4, "decouple_beta": 0.1}
    assert get_entry("e3dlstm").kwargs_for("openstl") == {"hidden": 128, "layers": 4, "kernel_size": 5,
                                                          "patch_size": 4, "variant": "openstl"}
    assert get_entry("e3dlstm").kwargs_for("paper")["variant"] == "authors"


@pytest.mark.parametrize("preset, steps", [("openstl", 125000), ("openstl-quick", 100), ("quick", 200)])
def test_reverse_sampling_keeps_openstls_fractions_of_the_run(preset: str, steps: int) -> None:
    """0.5 / 0.5 for the first 20% of the run, then (rising to 1, falling to 0) until 40%, then (1, 0)."""
    recipe = get_entry("predrnnv2").recipe_for(preset)
    s1, s2 = recipe["r_sampling_step_1"], recipe["r_sampling_step_2"]
    if preset != "paper":
        assert (s1, s2) == (steps // 5, 2 * steps // 5)
    assert sampling_probabilities(0, recipe) == (0.5, 0.5)
    p_in, p_out = sampling_probabilities((s1 + s2) // 2, recipe)
    assert 0.5 < p_in < 1 and p_out == pytest.approx(0.25)
    assert sampling_probabilities(s2, recipe) == (1.0, 0.0)


# -- contract -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_contract_at_every_horizon(name: str) -> None:
    model = small(name).eval()
    frames = clip()
    with torch.no_grad():
        outs = {h: model(frames, h) for h in (1, 3, 6)}
    for h, out in outs.items():
        assert out.shape == (2, h, 1, 8, 12) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(outs[6][:, :3], outs[3])  # a prefix does not see the future


@pytest.mark.parametrize("name", NAMES)
def test_rgb_frames_of_another_size(name: str) -> None:
    model = small(name, in_channels=3, img_size=(20, 12), patch_size=4).eval()
    with torch.no_grad():
        assert model(clip(1, 3, 3, (20, 12)), 2).shape == (1, 2, 3, 20, 12)


# -- PredRNN.V2 ---------------------------------------------------------------------------------------------
def test_predrnnv2_predicts_as_predrnn_with_the_same_weights() -> None:
    """V2 changes training only: its stack is OpenSTL's PredRNN (``stlstm``), plus the loss's adapter."""
    v2 = small("predrnnv2").eval()
    predrnn = create("stlstm", preset="openstl-tiny", **SMALL).eval()
    predrnn.load_state_dict({k: v for k, v in v2.state_dict().items() if not k.startswith("adapter")})
    frames = clip()
    with torch.no_grad():
        assert torch.equal(v2(frames, 3), predrnn(frames, 3))


def test_st_lstm_increments_are_what_the_memories_gain() -> None:
    torch.manual_seed(0)
    cell = STLSTMCell(3, 4, 3, increments=True)
    x, h, c, m = (torch.randn(2, n, 5, 5) for n in (3, 4, 4, 4))
    xf, xf2 = cell.input_conv(x).chunk(7, dim=1)[1::3][:2]  # [i, f, g, i', f', g', o]: f and f'
    hf, mf = cell.h_conv(h).chunk(4, dim=1)[1], cell.m_conv(m).chunk(3, dim=1)[1]
    carry = {"m": m}
    state = cell.step(cell.input_conv(x), {"h": h, "c": c}, carry)
    (delta_c, delta_m), = carry["increments"]
    torch.testing.assert_close(state["c"], torch.sigmoid(xf + hf + 1) * c + delta_c)
    torch.testing.assert_close(carry["m"], torch.sigmoid(xf2 + mf + 1) * m + delta_m)
    plain = STLSTMCell(3, 4, 3)
    plain.load_state_dict(cell.state_dict())
    carry_plain = {"m": m}
    assert torch.equal(plain.step(plain.input_conv(x), {"h": h, "c": c}, carry_plain)["h"], state["h"])
    assert set(carry_plain) == {"m"}


def test_decoupling_term_is_the_mean_absolute_cosine_of_adapted_increments() -> None:
    model = small("predrnnv2", decouple_beta=0.5)
    frames, targets = clip(t=3), clip(t=2, seed=2)
    out, weighted = model(frames, 2, targets=targets, sampling=(1.0, 1.0), all_frames=True, decoupling=True)
    _, sent = RecurrentStack.forward(model, frames, 2, targets=targets, sampling=(1.0, 1.0), all_frames=True,
                                     signals=True)
    terms = []
    for signals in sent:  # OpenSTL's loop: per step and layer, the mean over sequences and channels
        assert len(signals["increments"]) == 2
        for delta_c, delta_m in signals["increments"]:
            a, b = (F.normalize(model.adapter(d).flatten(2), dim=2) for d in (delta_c, delta_m))
            terms.append(torch.cosine_similarity(a, b, dim=2).abs().mean())
    assert len(sent) == 4 and out.shape == (2, 4, 1, 8, 12)
    torch.testing.assert_close(weighted, 0.5 * torch.stack(terms).mean())


def test_predrnnv2_loss_in_training_and_in_evaluation() -> None:
    model = small("predrnnv2")
    recipe = get_entry("predrnnv2").recipe_for("openstl-tiny")
    frames, targets = clip(t=3), clip(t=2, seed=2)
    context = LossContext(recipe["r_sampling_step_2"], recipe)  # (1, 0): deterministic
    loss, pred = get_loss("mse_decoupling")(model, frames, targets, context)
    out, weighted = model(frames, 2, targets=targets, sampling=(1.0, 0.0), all_frames=True, decoupling=True)
    torch.testing.assert_close(loss, F.mse_loss(out, torch.cat([frames, targets], 1)[:, 1:]) + weighted)
    loss.backward()
    assert model.adapter.weight.grad.abs().sum() > 0  # the adapter learns through the decoupling term only
    model.eval()
    with torch.no_grad():
        val, pred = get_loss("mse_decoupling")(model, frames, targets, context)
        torch.testing.assert_close(val, F.mse_loss(model(frames, 2, all_frames=True)[:, -2:], targets))
        assert torch.equal(pred, model(frames, 2))


# -- E3D-LSTM -----------------------------------------------------------------------------------------------
def test_window_conv_variants() -> None:
    """openstl: one valid slice, repeated; authors: TensorFlow's 'same', one zero slice after the window."""
    torch.manual_seed(0)
    conv = WindowConv(3, 5, 3, variant="openstl")
    authors = WindowConv(3, 5, 3, variant="authors")
    authors.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 2, 6, 4)
    w = conv.conv.weight

    def plane(inp: Tensor, k: int) -> Tensor:
        return F.conv2d(inp, w[:, :, k], padding=1)

    both = plane(x[:, :, 0], 0) + plane(x[:, :, 1], 1)
    torch.testing.assert_close(conv(x), torch.stack([both, both], dim=2))
    torch.testing.assert_close(authors(x), torch.stack([both, plane(x[:, :, 1], 0)], dim=2))


def test_recall_tokens_per_variant() -> None:
    """authors: a token per (slice, row, column) of each memory, its M channels as features; openstl: raw
    reshapes of the channel-first tensors (a token is M consecutive values of one channel's array)."""
    torch.manual_seed(0)
    m, grid, earlier = 3, (4, 2), 3
    cells = {v: Eidetic3DLSTMCell(5, m, 3, grid, reads_frames=True, variant=v) for v in ("openstl", "authors")}
    r = torch.rand(2, m, 2, *grid)
    memories = [torch.randn(2, m, 2, *grid) for _ in range(earlier)]
    history = torch.cat([c.flatten(1, 2) for c in memories], dim=1)
    keys = torch.cat([c.flatten(2).transpose(1, 2) for c in memories], dim=1)  # [B, 3 * 2 * 4 * 2, M]
    query = r.flatten(2).transpose(1, 2)
    for b in range(2):
        weights = torch.softmax(query[b] @ keys[b].T, dim=1)
        expected = (weights @ keys[b]).T.reshape(m, 2, *grid)
        torch.testing.assert_close(cells["authors"].recall(r, history)[b], expected)
    raw_keys = torch.cat(memories, dim=1).reshape(2, -1, m)
    raw = torch.softmax(r.reshape(2, -1, m) @ raw_keys.transpose(1, 2), dim=2) @ raw_keys
    torch.testing.assert_close(cells["openstl"].recall(r, history), raw.reshape(r.shape))


def test_e3dlstm_variants_share_weights_and_differ() -> None:
    openstl = small("e3dlstm", variant="openstl").eval()
    authors = small("e3dlstm", variant="authors").eval()
    authors.load_state_dict(openstl.state_dict())
    frames = clip()
    with torch.no_grad():
        assert not torch.allclose(openstl(frames, 3), authors(frames, 3))
    with pytest.raises(Exception, match="variant"):
        small("e3dlstm", variant="tensorflow")


def test_e3dlstm_pads_frames_the_patch_does_not_divide() -> None:
    """8x8 patches (the small presets) on 20x12 frames: padded to 24x16 inside, predictions cropped back."""
    model = small("e3dlstm", patch_size=8, img_size=(20, 12)).eval()
    assert model.cells[0].norm.normalized_shape[-2:] == (3, 2)
    frames = clip(size=(20, 12))
    with torch.no_grad():
        assert model(frames, 2).shape == (2, 2, 1, 20, 12)
        out = model(frames, 2, targets=clip(t=2, size=(20, 12)), sampling=(1.0, 1.0), all_frames=True)
    assert out.shape == (2, 5, 1, 20, 12)


def test_e3dlstm_hands_on_the_global_memory_it_received() -> None:
    """As the authors' code and OpenSTL: M stays at zero, so its convolution gets no gradient."""
    model = small("e3dlstm")
    out = model(clip(), 3, targets=clip(t=3, seed=2), sampling=(1.0, 0.0), all_frames=True)
    out.square().mean().backward()
    for cell in model.cells:
        assert torch.count_nonzero(cell.m_conv.conv.weight.grad) == 0
        assert torch.count_nonzero(cell.x_conv.conv.weight.grad) > 0


def test_e3dlstm_loss_in_training_and_in_evaluation() -> None:
    model = small("e3dlstm")
    recipe = get_entry("e3dlstm").recipe_for("openstl-tiny")
    frames, targets = clip(t=3), clip(t=2, seed=2)
    context = LossContext(recipe["sampling_stop_iter"], recipe)  # (1, 0): deterministic
    loss, _ = get_loss("mse_l1_all_frames")(model, frames, targets, context)
    out = model(frames, 2, targets=targets, sampling=(1.0, 0.0), all_frames=True)
    truth = torch.cat([frames, targets], 1)[:, 1:]
    torch.testing.assert_close(loss, F.mse_loss(out, truth) + F.l1_loss(out, truth))
    model.eval()
    with torch.no_grad():
        val, _ = get_loss("mse_l1_all_frames")(model, frames, targets, context)
        torch.testing.assert_close(val, F.mse_loss(model(frames, 2, all_frames=True)[:, -2:], targets))
