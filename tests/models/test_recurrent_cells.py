"""The five recurrent cells of the paper's RNN rows, each in the one encoder-forecaster."""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models import create, expand, get_entry
from vpbench.models.causallstm import CausalLSTMCell
from vpbench.models.convgru import ConvGRUCell
from vpbench.models.convlstm import ConvLSTMCell
from vpbench.models.layers.encoder_forecaster import RecurrentCell, patchify
from vpbench.models.layers.ghu import GHU
from vpbench.models.layers.recurrent_forms import RNN_PRESETS
from vpbench.models.mim import DifferencingSTLSTMCell, MIMBlock
from vpbench.models.stlstm import STLSTMCell

RNN = ["convlstm", "stlstm", "causallstm", "mim", "convgru"]
# 16x16 frames in 2x2 patches: 8x8 grids of 4 channels; two layers, so zigzags and signals cross layers.
TINY = {"hidden": 8, "layers": 2, "kernel_size": 3, "patch_size": 2, "img_size": (16, 16)}


def tiny(name: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return create(name, preset="tiny", **{**TINY, **overrides})


def frames(batch: int = 2, t: int = 3, seed: int = 1) -> Tensor:
    return torch.rand(batch, t, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def moving_squares(batch: int = 2, t: int = 6) -> Tensor:
    """8x8 squares moving 2 px per frame on 16x16 frames: [B, T, 1, 16, 16] in {0, 1}."""
    x = torch.zeros(batch, t, 1, 16, 16)
    for b in range(batch):
        for k in range(t):
            r, c = (1 + 3 * b + 2 * k) % 8, (2 + 5 * b + 2 * k) % 8
            x[b, k, 0, r:r + 8, c:c + 8] = 1
    return x


def test_rnn_group_is_the_five_cells_in_table_order():
    assert expand("rnn") == RNN
    assert set(RNN) <= set(expand("all"))
    assert [get_entry(n).label for n in RNN] == ["ConvLSTM", "ST-LSTM", "Causal LSTM", "MIM", "ConvGRU"]


@pytest.mark.parametrize("name", RNN)
def test_every_cell_shares_the_rnn_hyperparameters(name):
    """The same hyperparameters per preset, but for the sizes a model declares as its own at the quick preset
    (``QUICK_SIZE``: each measured in a `make demo` run)."""
    own = importlib.import_module(f"vpbench.models.{name}").QUICK_SIZE
    for preset, kwargs in RNN_PRESETS.items():
        expected = {**kwargs, **own} if preset == "quick" else kwargs
        assert {k: get_entry(name).kwargs_for(preset)[k] for k in kwargs} == expected


@pytest.mark.parametrize("name", RNN)
def test_shapes(name):
    model = tiny(name)
    out = model(frames(), 4)
    assert out.shape == (2, 4, 1, 16, 16)
    assert 0 <= out.min() and out.max() <= 1
    states, carry, enc_out = model.encode(patchify(frames(), 2))
    assert enc_out.shape == (2, 3, 8, 8, 8)
    for cell, state in zip(model.encoder, states):
        assert set(cell.state_names) <= set(state)
        assert all(state[k].shape == (2, 8, 8, 8) for k in cell.state_names)
    assert all(v.shape == (2, 8, 8, 8) for v in carry.values())


def test_stacks():
    names = lambda m: [type(c).__name__ for c in m.encoder]  # noqa: E731
    predrnnpp = tiny("causallstm", layers=4)
    assert names(predrnnpp) == ["CausalLSTMCell", "GHU", "CausalLSTMCell", "CausalLSTMCell", "CausalLSTMCell"]
    assert predrnnpp.output[0].in_channels == 5 * 8  # the paper's five recurrent layers all feed the output
    assert names(tiny("causallstm", layers=1)) == ["CausalLSTMCell"]
    assert names(tiny("mim", layers=4)) == ["DifferencingSTLSTMCell"] + ["MIMBlock"] * 3
    assert tiny("convlstm").layer_major  # no memory, no signals: the batched encoder path
    assert not tiny("stlstm").layer_major and not tiny("mim").layer_major


@pytest.mark.parametrize("name", RNN)
def test_each_cell_carries_its_own_state(name):
    """A cell's output at step t depends on its input at t-1 through its own state alone: the zigzag
    memory and upward signals are fresh at every step."""
    model = tiny(name)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # also wakes the GHU's tiny kernels and the zero peepholes
    g = torch.Generator().manual_seed(2)
    for cell in model.encoder:
        x0, x0_other, x1 = (torch.randn(2, cell.in_channels, 8, 8, generator=g) for _ in range(3))
        signals = {s: torch.randn(2, cell.hidden, 8, 8, generator=g) for s in cell.signals}

        def second_output(first: Tensor, cell: RecurrentCell = cell) -> Tensor:
            state = cell.init_state(torch.zeros(2, cell.hidden, 8, 8))
            for x in (first, x1):
                carry = {**signals, **({cell.memory: torch.zeros(2, cell.hidden, 8, 8)} if cell.memory else {})}
                state = cell.step(cell.input_conv(x), state, carry)
            return state["h"]

        assert (second_output(x0) - second_output(x0_other)).abs().max() > 1e-3, type(cell).__name__


@pytest.mark.parametrize("name", RNN)
def test_forecast_depends_on_the_first_input_frame(name):
    """The encoder's states reach the forecaster: changing X_1 alone changes the first prediction."""
    model = tiny(name).eval()
    x, y = frames(seed=1), frames(seed=5)
    y[:, 1:] = x[:, 1:]
    with torch.no_grad():
        assert (model(x, 1) - model(y, 1)).abs().max() > 1e-6


@pytest.mark.parametrize("name", RNN)
def test_gradients_reach_the_first_frame_and_every_weight(name):
    model = tiny(name)
    x = frames().requires_grad_()
    model(x, 3)[:, -1].sum().backward()  # the last prediction only: back through the whole rollout
    assert x.grad[:, 0].abs().sum() > 0
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


@pytest.mark.parametrize("name", RNN)
def test_repeated_calls_are_independent(name):
    """No state survives a forward pass (the original MIM kept MIM-S's cell on the module)."""
    model = tiny(name).eval()
    with torch.no_grad():
        first = model(frames(seed=3), 2)
        model(frames(seed=4), 2)
        assert torch.equal(model(frames(seed=3), 2), first)


@pytest.mark.parametrize("name", RNN)
def test_overfits_one_batch(name):
    """On one batch of moving squares the MSE falls far below what fitting a constant gives (x1.33)."""
    model = tiny(name, dropout=0.0) if name == "convgru" else tiny(name)
    seq = moving_squares()
    x, y = seq[:, :3], seq[:, 3:]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.mse_loss(model(x, 3), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


def test_mim_first_step_leaves_mim_n_and_mim_s_at_rest():
    """No H_0 exists before the first frame, so MIM sends no difference then (as the original, which
    skips MIM-N at t=1): MIM-N and MIM-S stay exactly zero after step 1 and wake up at step 2."""
    model = tiny("mim")
    block = model.encoder[1]
    assert isinstance(block, MIMBlock)
    x = patchify(frames(), 2)
    with torch.no_grad():
        one, _, _ = model.encode(x[:, :1])
        two, _, _ = model.encode(x[:, :2])
    assert all(one[1][k].abs().max() == 0 for k in ("d", "n", "s")) and one[1]["c"].abs().max() > 0
    assert all(two[1][k].abs().max() > 0 for k in ("d", "n", "s"))


# -- one gate of each cell against a hand computation (1x1 kernels: convolutions are matrix products) --

def lin(conv: nn.Conv2d, x: Tensor, chunks: int, k: int) -> Tensor:
    """Chunk k of conv(x) for a 1x1 conv, as an explicit matrix product (plus bias)."""
    out = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0].chunk(chunks)[k], x)
    return out if conv.bias is None else out + conv.bias.chunk(chunks)[k][:, None, None]


def convlstm_c(cell, x, s, carry, new, new_carry):
    w_ci, w_cf, _ = cell.peephole
    pre = lambda k: lin(cell.x_conv, x, 4, k) + lin(cell.h_conv, s["h"], 4, k)  # noqa: E731
    f = torch.sigmoid(pre(1) + w_cf * s["c"] + 1)
    i = torch.sigmoid(pre(0) + w_ci * s["c"])
    return new["c"], f * s["c"] + i * torch.tanh(pre(2))


def stlstm_m(cell, x, s, carry, new, new_carry):
    pre = lambda k: lin(cell.x_conv, x, 7, 3 + k) + lin(cell.m_conv, carry["m"], 3, k)  # noqa: E731
    return new_carry["m"], torch.sigmoid(pre(1) + 1) * carry["m"] + torch.sigmoid(pre(0)) * torch.tanh(pre(2))


def causal_c(cell, x, s, carry, new, new_carry):
    pre = lambda k: (lin(cell.x_conv, x, 7, k) + lin(cell.h_conv, s["h"], 4, k)  # noqa: E731
                     + lin(cell.c_conv, s["c"], 3, k))
    return new["c"], torch.sigmoid(pre(1) + 1) * s["c"] + torch.sigmoid(pre(0)) * torch.tanh(pre(2))


def ghu_z(cell, x, s, carry, new, new_carry):
    p = torch.tanh(lin(cell.x_conv, x, 2, 0) + lin(cell.z_conv, s["h"], 2, 0))
    u = torch.sigmoid(lin(cell.x_conv, x, 2, 1) + lin(cell.z_conv, s["h"], 2, 1))
    return new["h"], u * p + (1 - u) * s["h"]


def mim_m(cell, x, s, carry, new, new_carry):
    pre = lambda k: lin(cell.x_conv, x, 4, k) + lin(cell.m_conv, carry["m"], 4, k)  # noqa: E731
    return new_carry["m"], torch.sigmoid(pre(1) + 1) * carry["m"] + torch.sigmoid(pre(0)) * torch.tanh(pre(2))


def convgru_h(cell, x, s, carry, new, new_carry):
    h = s["h"]
    z = torch.sigmoid(lin(cell.x_conv, x, 3, 0) + lin(cell.h_conv, h, 2, 0))
    r = torch.sigmoid(lin(cell.x_conv, x, 3, 1) + lin(cell.h_conv, h, 2, 1))
    g = torch.tanh(lin(cell.x_conv, x, 3, 2) + lin(cell.hg_conv, r * h, 1, 0))
    return new["h"], (1 - z) * g + z * h


GATES = {
    "ConvLSTM C_t": (lambda: ConvLSTMCell(3, 4, 1, (5, 5)), convlstm_c),
    "ST-LSTM M_t": (lambda: STLSTMCell(3, 4, 1), stlstm_m),
    "MIM's ST-LSTM M_t": (lambda: DifferencingSTLSTMCell(3, 4, 1), stlstm_m),
    "Causal LSTM C_t": (lambda: CausalLSTMCell(3, 4, 1), causal_c),
    "GHU Z_t": (lambda: GHU(3, 4, 1), ghu_z),
    "MIM block M_t": (lambda: MIMBlock(3, 4, 1, (5, 5)), mim_m),
    "ConvGRU h_t": (lambda: ConvGRUCell(3, 4, 1), convgru_h),
}


@pytest.mark.parametrize("gate", GATES)
def test_gate_matches_hand_computation(gate):
    make, hand = GATES[gate]
    torch.manual_seed(0)
    cell = make().eval()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.5)
        x = torch.randn(2, 3, 5, 5)
        state = {k: torch.randn(2, 4, 5, 5) for k in cell.state_names}
        carry = {k: torch.randn(2, 4, 5, 5) for k in (cell.memory, *cell.signals) if k}
        new_carry = dict(carry)
        new = cell.step(cell.input_conv(x), state, new_carry)
        actual, expected = hand(cell, x, state, carry, new, new_carry)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
