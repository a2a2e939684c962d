"""SRVP (paper Sec. 3.3): its SA and RFA modules, the ablations of Table 4, and training."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vpbench.errors import UserError
from vpbench.models import create, expand, get_entry
from vpbench.models.layers.srvp_blocks import (
    CrossAttention,
    ReinforcedFeatureAttention,
    SelfAttention,
    SpatialSelfCorrelation,
    StandardAttention,
    TemporalSelfCorrelation,
    temporal_attention,
)

# B sequences of N frames; M hidden channels in L layers on an h x w grid (16x16 frames in 2x2 patches).
B, N, M, L, H, W = 2, 4, 8, 2, 8, 8
SMALL = {"hidden": M, "layers": L, "kernel_size": 3, "patch_size": 2, "img_size": (16, 16), "input_frames": N}
ABLATIONS = ["srvp", "srvp-no-sa", "srvp-no-rfa", "srvp-no-crossatt"]


pytestmark = pytest.mark.usefixtures("one_thread")


def small(name: str = "srvp", **overrides) -> nn.Module:
    torch.manual_seed(0)
    return create(name, preset="tiny", **{**SMALL, **overrides})


def count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def moving_squares(t: int) -> torch.Tensor:
    """A 6x6 square moving 2 px per frame on 16x16 frames: [B, t, 1, 16, 16] in {0, 1}."""
    x = torch.zeros(B, t, 1, 16, 16)
    for b in range(B):
        for k in range(t):
            r, c = (1 + 3 * b + 2 * k) % 10, (2 + 5 * b + k) % 10
            x[b, k, 0, r:r + 6, c:c + 6] = 1
    return x


# -- each module's output shape -------------------------------------------------------------------
def test_temporal_attention_gives_one_map_for_any_number_of_queries():
    ref = torch.randn(B, N, M * H * W)
    for queries in (1, L):
        assert temporal_attention(torch.randn(B, queries, M * H * W), ref).shape == (B, M * H * W)


def test_spatial_and_cross_attention_keep_the_feature_shape():
    x = torch.randn(B, M, H, W)
    assert SelfAttention(M)(x).shape == (B, M, H, W)
    fused = CrossAttention(M)(x, torch.randn(B, M, H, W))
    assert [f.shape for f in fused] == [(B, M, H, W)] * 2


def test_self_correlations_give_the_reinforced_features():
    x, enc_out = torch.rand(B, N, 1, H, W), torch.randn(B, N, M, H, W)
    assert TemporalSelfCorrelation(1, M, N)(x, enc_out).shape == (B, N, M * H * W)  # h'^E (Eq. 8)
    assert SpatialSelfCorrelation(L * M, M)(torch.randn(B, L * M, H, W)).shape == (B, M, H, W)  # h'^D (Eq. 10)


def test_sa_gives_f1_and_rfa_gives_f2():
    states = torch.randn(B, L * M, H, W)
    f1 = StandardAttention(M, L)(states, torch.randn(B, N, M * H * W))
    assert [f.shape for f in f1] == [(B, M, H, W)] * 2  # F1: 2M channels
    rfa = ReinforcedFeatureAttention(1, M, L, N)
    f2 = rfa(states, rfa.reference(torch.rand(B, N, 1, H, W), torch.randn(B, N, M, H, W)))
    assert [f.shape for f in f2] == [(B, M // 4, H, W)] * 2  # F2: 2M' = M/2 channels
    assert rfa.out_channels == M // 2


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_variant_honours_the_contract(name):
    model = small(name)
    for horizon in (1, 3):
        out = model(torch.rand(B, N, 1, 16, 16), horizon)
        assert out.shape == (B, horizon, 1, 16, 16)
        assert 0 <= out.min() and out.max() <= 1


# -- computed once per sequence --------------------------------------------------------------------
def test_temporal_self_correlation_is_computed_once_per_sequence():
    model = small().eval()
    calls = {"temporal": 0, "spatial": 0}
    model.rfa.temporal_corr.register_forward_hook(lambda *_: calls.__setitem__("temporal", calls["temporal"] + 1))
    model.rfa.spatial_corr.register_forward_hook(lambda *_: calls.__setitem__("spatial", calls["spatial"] + 1))
    with torch.no_grad():
        for horizon in (1, 4, 7):
            model(torch.rand(B, N, 1, 16, 16), horizon)
    assert calls == {"temporal": 3, "spatial": 1 + 4 + 7}  # h'^E once per forward, h'^D once per step


# -- ablations ---------------------------------------------------------------------------------------
def test_ablation_group_is_srvp_and_its_three_ablations():
    assert expand("ablation") == ABLATIONS
    assert [get_entry(n).label for n in ABLATIONS] == ["SRVP", "Without-SA", "Without-RFA", "Without-CrossAtt"]
    assert "srvp" in expand("paper") and "srvp-no-sa" not in expand("all")


def test_each_ablation_removes_exactly_its_module():
    full = small()
    reads = lambda channels: channels * 9 * full.frame_channels  # weights of the output conv (Eq. 11) reading them
    assert count(full) - count(small("srvp-no-sa")) == count(full.sa) + reads(2 * M)
    assert count(full) - count(small("srvp-no-rfa")) == count(full.rfa) + reads(M // 2)
    assert count(full) - count(small("srvp-no-crossatt")) == count(full.sa.cross) + count(full.rfa.cross)
    assert small("srvp-no-sa").sa is None and small("srvp-no-rfa").rfa is None
    no_cross = small("srvp-no-crossatt")
    assert no_cross.sa.cross is None and no_cross.rfa.cross is None


def test_without_sa_and_rfa_srvp_is_the_convgru_encoder_forecaster():
    bare = small(sa=False, rfa=False)
    torch.manual_seed(0)
    convgru = create("convgru", preset="tiny", **{k: v for k, v in SMALL.items() if k != "input_frames"})
    assert count(bare) == count(convgru)
    convgru.load_state_dict(bare.state_dict())
    frames = torch.rand(B, N, 1, 16, 16)
    torch.testing.assert_close(bare.eval()(frames, 3), convgru.eval()(frames, 3))


def test_srvp_takes_the_encoder_forecaster_overrides():
    model = small(in_channels=3, hidden=12, layers=3, kernel_size=5, patch_size=4, img_size=(32, 16))
    assert model.frame_channels == 48 and model.grid == (8, 4) and len(model.forecaster) == 3
    assert model(torch.rand(1, N, 3, 32, 16), 2).shape == (1, 2, 3, 32, 16)


def test_bad_srvp_configurations_are_clear_errors():
    with pytest.raises(UserError, match="hidden >= 4"):
        small(hidden=2)
    with pytest.raises(UserError, match="built for 4 input frames.*input_frames=5"):
        small()(torch.rand(1, 5, 1, 16, 16), 1)


# -- training --------------------------------------------------------------------------------------
# Biases that a batch norm follows: their gradient is zero by construction (up to rounding).
BEFORE_BATCH_NORM = {"rfa.temporal_corr.conv1.bias", "rfa.temporal_corr.conv2.bias"}


def test_every_parameter_gets_a_gradient_in_a_training_step():
    model = small().train()
    frames = moving_squares(N + 3)
    loss = nn.functional.binary_cross_entropy(model(frames[:, :N], 3), frames[:, N:])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name in BEFORE_BATCH_NORM:
            assert p.grad.abs().max() < 1e-6, name
        else:
            assert p.grad.abs().max() > 0, name


def test_trains_under_bf16_autocast():  # the default on CUDA; the CPU runs the same dtype rules
    model = small().train()
    frames = moving_squares(N + 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(frames[:, :N], 3)
    nn.functional.binary_cross_entropy(pred.float(), frames[:, N:]).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.rfa.temporal_corr.bn1.running_mean.dtype == torch.float32


def test_overfits_one_batch():
    model = small(dropout=0.0).train()
    frames = moving_squares(N + 3)
    inputs, targets = frames[:, :N], frames[:, N:]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy(model(inputs, 3), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10  # from about 0.70 (chance) to below 0.07


# -- the side-by-side timing against the user's copy of the official code --------------------------
def test_speed_against_the_official_code_needs_its_path(bench, tmp_path):
    code, _, err = bench("speed", "--parts", "srvp-official")
    assert code == 2 and "needs --official-srvp PATH" in err
    code, _, err = bench("speed", "--parts", "srvp-official", "--official-srvp", tmp_path)
    assert code == 2 and "no model/SRVP.py there" in err


def test_the_official_model_folder_is_imported_with_its_relative_imports(tmp_path, monkeypatch):
    import importlib.util

    from vpbench.reference import srvp as official_srvp

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "Blocks.py").write_text("import torch\nWIDTH = 3\n")
    (tmp_path / "model" / "SRVP.py").write_text(
        "from torch import nn\nfrom .Blocks import *\n\n"
        "class EncoderDecoder(nn.Module):\n"
        "    def __init__(self, *args):\n"
        "        super().__init__()\n"
        "        self.layer = nn.Linear(WIDTH, WIDTH)\n")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "einops" else find_spec(name, *a))
    assert count(official_srvp.load_official(tmp_path)()) == 12
    with pytest.raises(UserError, match="12 parameters and vpbench's 517,045 at the same configuration"):
        official_srvp.compare(tmp_path, repeats=5)
