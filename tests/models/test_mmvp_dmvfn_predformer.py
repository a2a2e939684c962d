"""MMVP, DMVFN and PredFormer: contract shapes, rollouts past one call, DMVFN's routing and loss, recipes and
registry entries (fidelity to the reference code: test_parity_mmvp_dmvfn_predformer.py)."""
from __future__ import annotations

import math

import pytest
import torch

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.losses import get_loss
from vpbench.models import build_model, create, expand, get_entry
from vpbench.models.dmvfn import laplacian_l1, pyramid_levels
from vpbench.models.mmvp import chain_matrices, compose, softmax_matrices
from vpbench.models.predformer import sinusoidal_positions

pytestmark = pytest.mark.usefixtures("one_thread")
MODELS = ("mmvp", "dmvfn", "predformer")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dataset, t_in, horizon, shape", [
    ("mmnist-long", 10, 30, (1, 64, 64)),
    ("human36m", 4, 9, (3, 100, 100)),  # 100 is padded to the models' multiples (16, 16 and 4) and cropped back
])
def test_openstl_tiny_models_honour_the_contract_on_64_and_100_rgb_frames(name, dataset, t_in, horizon, shape):
    torch.manual_seed(0)
    model = build_model(cfg.resolve("openstl-tiny", name, dataset)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, t_in, *shape), horizon)
    assert out.shape == (1, horizon, *shape)
    assert out.min() >= 0 and out.max() <= 1


def test_mmvp_rolls_out_blocks_of_k_frames_from_the_last_t_in_frames_known():
    torch.manual_seed(0)
    model = create("mmvp", preset="tiny", input_frames=3, output_frames=2).eval()
    x = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        out = model(x, 5)
        first = model.block(x)
        second = model.block(torch.cat([x, first], 1)[:, -3:])
        third = model.block(torch.cat([first, second], 1)[:, -3:])
        assert out.shape == (2, 5, 1, 16, 16) and first.shape == (2, 2, 1, 16, 16)
        assert torch.allclose(out, torch.cat([first, second, third[:, :1]], 1), atol=1e-6)
        assert torch.allclose(model(x, 1), first[:, :1], atol=1e-6)
    with pytest.raises(UserError, match="built for 3 input frames"):
        model(torch.rand(1, 4, 1, 16, 16), 2)
    with pytest.raises(UserError, match="at least 2 input frames"):
        create("mmvp", preset="tiny", input_frames=1)


def test_mmvp_composes_future_features_by_the_chained_motion_matrices():
    """Paper Sec. 3.4: feature k at q = sum_i sum_p (A_i ... A_{T-2} P_k)[p, q] F_i(p) / (sum of those weights + 1e-6),
    written out with one chain per (i, k), as OpenSTL computes it."""
    torch.manual_seed(0)
    b, t, k, c, h, w = 2, 3, 2, 4, 2, 3
    n = h * w
    feats = torch.rand(b, t, c, h, w, dtype=torch.float64)
    observed = softmax_matrices(torch.randn(b, t - 1, n, n, dtype=torch.float64))
    future = softmax_matrices(torch.randn(b, k, n, n, dtype=torch.float64))
    expected = torch.empty(b, k, c, n, dtype=torch.float64)
    for j in range(k):
        num, den = 0, 0
        for i in range(t):
            chain = future[:, j]
            for m in reversed(range(i, t - 1)):
                chain = observed[:, m] @ chain
            num = num + chain.transpose(1, 2) @ feats[:, i].flatten(2).transpose(1, 2)  # [B, n, c]
            den = den + chain.sum(1)  # [B, n]
        expected[:, j] = (num / (den[..., None] + 1e-6)).transpose(1, 2)
    assert torch.allclose(compose(feats, chain_matrices(observed), future), expected.reshape(b, k, c, h, w),
                          rtol=1e-12, atol=0)


def test_predformer_position_embedding_is_the_sinusoid_and_the_model_is_built_for_its_frames():
    table = sinusoidal_positions(20, 8)
    p, i = 7, 3  # odd column: cos(p / 10000^(2 * (i // 2) / d))
    assert table.dtype == torch.float32 and table.shape == (20, 8)
    assert table[p, i].item() == pytest.approx(math.cos(p / 10000 ** (2 * (i // 2) / 8)), abs=1e-6)
    assert table[p, i - 1].item() == pytest.approx(math.sin(p / 10000 ** (2 * (i // 2) / 8)), abs=1e-6)
    model = create("predformer", preset="tiny", input_frames=4)
    with pytest.raises(UserError, match="built for 4 input frames"):
        model(torch.rand(1, 3, 1, 16, 16), 3)


def saturated_router(model: torch.nn.Module, logit: float) -> torch.nn.Module:
    """The routing module's sigmoids all at sigmoid(logit): with logit -50 no block is ever drawn; with +50 and
    beta x blocks > blocks every block always is (probability 1 after the clip)."""
    with torch.no_grad():
        model.router.linear.weight.zero_()
        model.router.linear.bias.fill_(logit)
    return model


def test_dmvfn_rolls_out_from_the_last_two_frames():
    torch.manual_seed(0)
    model = create("dmvfn", preset="tiny", routing="round").eval()
    x = torch.rand(2, 5, 1, 16, 16)
    with torch.no_grad():
        out = model(x, 3)
        first = model.step(x[:, -2], x[:, -1])
        second = model.step(x[:, -1], first)
        third = model.step(first, second)
        assert torch.allclose(out, torch.stack([first, second, third], 1), atol=1e-6)
        changed = torch.cat([torch.rand(2, 3, 1, 16, 16), x[:, -2:]], 1)
        assert torch.equal(model(changed, 3), out)  # only the last two frames are read
    with pytest.raises(UserError, match="last two frames"):
        model(x[:, :1], 2)


def test_dmvfn_routing_is_a_bernoulli_draw_that_a_seed_reproduces():
    torch.manual_seed(0)
    model = create("dmvfn", preset="tiny").eval()
    x = torch.rand(4, 2, 1, 16, 16)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x, 4)
        torch.manual_seed(1)
        assert torch.equal(model(x, 4), first)
        draws = torch.stack([model.router(x.flatten(1, 2)) for _ in range(50)])
    assert set(draws.unique().tolist()) == {0.0, 1.0} and 0 < draws.mean() < 1


def test_dmvfn_gives_the_earlier_frame_in_evaluation_when_no_block_is_drawn():
    """The authors' test code: no block drawn -> I_{t-1}; in training the fused frames with zero flow and mask,
    the average of the two."""
    torch.manual_seed(0)
    model = saturated_router(create("dmvfn", preset="tiny"), -50.0)
    x = torch.rand(2, 2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x, 1)[:, 0], x[:, 0])
        assert torch.allclose(model.train()(x, 1)[:, 0], (x[:, 0] + x[:, 1]) / 2, atol=1e-6)


def test_dmvfn_loss_is_the_block_weighted_laplacian_l1_over_every_window():
    torch.manual_seed(0)
    model = saturated_router(create("dmvfn", preset="tiny", beta=1.5), 50.0).train()  # every block, every time
    inputs, targets = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 2, 1, 16, 16)
    seq = torch.cat([inputs, targets], 1)
    loss, pred = get_loss("dmvfn")(model, inputs, targets)
    expected = 0
    for i in range(seq.shape[1] - 2):  # the authors step the optimiser after each window; here one mean
        blocks = model.step(seq[:, i], seq[:, i + 1], every_block=True)  # [blocks, B, C, H, W]
        expected = expected + sum(0.8 ** (len(blocks) - 1 - j) * laplacian_l1(out, seq[:, i + 2])
                                  for j, out in enumerate(blocks)) / (seq.shape[1] - 2)
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert pred.shape == targets.shape
    assert torch.allclose(pred, model(inputs, 2, targets=targets)[-1, :, -2:])
    model.eval()
    loss, pred = get_loss("dmvfn")(model, inputs, targets)  # validation: the rolled-out predictions
    assert torch.allclose(loss, laplacian_l1(pred.flatten(0, 1), targets.flatten(0, 1)))
    with pytest.raises(UserError, match="loss dmvfn needs a DMVFN"):
        get_loss("dmvfn")(create("predformer", preset="tiny", input_frames=3).train(), inputs, targets)


def test_laplacian_loss_levels_and_values():
    assert [pyramid_levels(s, s) for s in (64, 32, 16, 100, 128)] == [5, 3, 3, 2, 5]
    torch.manual_seed(0)
    a, b, c = torch.rand(3, 4, 2, 100, 100).unbind(0)
    assert laplacian_l1(a, a) == 0 and laplacian_l1(a, b) > 0
    both = laplacian_l1(torch.stack([a, c]), b)
    assert both.shape == (2,) and torch.allclose(both, torch.stack([laplacian_l1(a, b), laplacian_l1(c, b)]))


def test_recipes_follow_the_references_under_both_protocols():
    def train(preset, name):
        t = cfg.resolve(preset, name, "mmnist")["train"]
        return {k: t.get(k) for k in ("loss", "optimizer", "weight_decay", "scheduler", "lr", "batch_size", "eta_min")}

    assert train("openstl", "mmvp") == {"loss": "mse_raw", "optimizer": "adam", "weight_decay": 0.0,
                                        "scheduler": "onecycle", "lr": 1e-3, "batch_size": 16, "eta_min": None}
    assert train("paper", "mmvp") == train("openstl", "mmvp")
    assert train("openstl", "dmvfn") == {"loss": "dmvfn", "optimizer": "adam", "weight_decay": 0.0,
                                         "scheduler": "onecycle", "lr": 1e-4, "batch_size": 16, "eta_min": None}
    assert train("paper", "dmvfn") == {"loss": "dmvfn", "optimizer": "adamw", "weight_decay": 1e-3,
                                       "scheduler": "cosine", "lr": 1e-4, "batch_size": 8, "eta_min": 1e-5}
    own = {"loss": "mse_raw", "optimizer": "adamw", "weight_decay": 1e-2, "scheduler": "onecycle", "lr": 1e-3,
           "batch_size": 16, "eta_min": None}
    assert train("openstl", "predformer") == train("paper", "predformer") == own
    for preset in ("quick", "openstl-quick", "tiny", "openstl-tiny"):
        for name in MODELS:
            assert train(preset, name)["lr"] == 3e-3
            assert train(preset, name)["loss"] == ("dmvfn" if name == "dmvfn" else "mse_raw")


def test_registry_entries():
    assert {"mmvp", "dmvfn"} <= set(expand("openstl", protocol="openstl"))
    assert "predformer" not in expand("all", protocol="openstl") and "predformer" not in expand("all")
    for name in MODELS:
        entry = get_entry(name)
        assert "rnn-free" in entry.tags and 200 <= entry.rank < 300
        assert entry.kwargs_for("openstl") == entry.kwargs_for("paper")
    assert get_entry("dmvfn").references["openstl-mmnist-200"]["mse"] == 123.67
    assert get_entry("predformer").references["predformer-mmnist"] == {
        "mse": 12.4, "mae": 44.6, "ssim": 0.973, "params": 25.3e6, "flops": 16.5e9, "fps": 302}
    with pytest.raises(UserError, match="model.routing"):
        create("dmvfn", preset="tiny", routing="threshold")
    with pytest.raises(UserError, match="one scale per block"):
        create("dmvfn", preset="tiny", features=[8, 8], scales=[1])
