"""Each fast path of the recurrent models and of SRVP against a plain reference, on random inputs.

The references are written the obvious way (separate convolutions, per-frame loops, explicit matrix
products, as the official SRVP code computes them); the fast versions must compute the same function.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models import create
from vpbench.models.layers.dropout import Dropout, dropout
from vpbench.models.layers.srvp_blocks import (
    AddNorm,
    CrossAttention,
    FrameBatchNorm,
    FrameMatmul,
    SelfAttention,
    TemporalSelfCorrelation,
    l2_norm,
    self_correlation,
    temporal_attention,
)

B, N, C, H, W = 3, 5, 6, 7, 9


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def plain_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax(Q K^T / sqrt(hw)) V over channels, for q, k, v [B, C, h, w]."""
    b, c, h, w = q.shape
    q, k, v = q.reshape(b, c, h * w), k.reshape(b, c, h * w), v.reshape(b, c, h * w)
    return (torch.softmax(q @ k.transpose(1, 2) / math.sqrt(h * w), dim=-1) @ v).reshape(b, c, h, w)


def conv_part(conv: nn.Conv2d, x: Tensor, part: int, parts: int = 3) -> Tensor:
    """The ``part``-th of ``parts`` equal output groups of ``conv``, as a convolution of its own."""
    weight, bias = conv.weight.chunk(parts)[part], conv.bias.chunk(parts)[part]
    return F.conv2d(x, weight, bias, padding=conv.padding)


def test_l2_norm_equals_torch_norm_in_value_and_gradient():
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(B, N, C, H, dtype=dtype, requires_grad=True)
        expected = torch.linalg.vector_norm(x, dim=1)
        actual = l2_norm(x, dim=1)
        assert actual.dtype == dtype
        torch.testing.assert_close(actual, expected)
        g = torch.randn_like(expected)
        torch.testing.assert_close(torch.autograd.grad(actual, x, g)[0], torch.autograd.grad(expected, x, g)[0])


@pytest.mark.parametrize("queries", [1, 4])
def test_temporal_attention_equals_frame_by_frame_scores(queries):
    d = C * H * W
    query, ref = torch.randn(B, queries, d), torch.randn(B, N, d)
    scores = torch.stack([torch.stack([(query[:, l] * ref[:, i]).sum(-1) for i in range(N)], -1)
                          for l in range(queries)], 1) / math.sqrt(d)  # omega [B, Q, N] (Eq. 2)
    if queries > 1:
        scores = scores.square().sum(1).sqrt()  # Norm over the L axis
    weights = torch.softmax(scores.reshape(B, N), dim=-1)
    expected = sum(weights[:, i, None] * ref[:, i] for i in range(N))
    torch.testing.assert_close(temporal_attention(query, ref), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inner", [1, 2, 10])
def test_frame_matmul_has_the_value_and_gradients_of_bmm(inner):
    a = torch.randn(B, 3, inner, dtype=torch.float64, requires_grad=True)
    b = torch.randn(B, inner, 50, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B, 3, 50, dtype=torch.float64)
    fast, plain = FrameMatmul.apply(a, b), torch.bmm(a, b)
    torch.testing.assert_close(fast, plain)
    for x, y in zip(torch.autograd.grad(fast, (a, b), g), torch.autograd.grad(plain, (a, b), g)):
        torch.testing.assert_close(x, y)


def test_fused_qkv_self_attention_equals_three_projections():
    attention, x = SelfAttention(C), torch.randn(B, C, H, W)
    q, k, v = (conv_part(attention.qkv, x, i) for i in range(3))
    torch.testing.assert_close(attention(x), plain_attention(q, k, v))


def test_cross_attention_equals_the_official_pair_of_spatial_attentions():
    cross, a_t, a_s = CrossAttention(C), torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    # proj_t = [Q_T; K_T; V_T] reads A^T, proj_s = [Q_S; K_S; V_S] reads A^S (Eq. 5).
    q_t, k_t, v_t = (conv_part(cross.proj_t, a_t, i) for i in range(3))
    q_s, k_s, v_s = (conv_part(cross.proj_s, a_s, i) for i in range(3))
    spatially_fused, temporally_fused = cross(a_t, a_s)
    torch.testing.assert_close(spatially_fused, plain_attention(q_t, k_s, v_s))
    torch.testing.assert_close(temporally_fused, plain_attention(q_s, k_t, v_t))


def test_rank_one_self_correlation_and_add_norm_equal_the_explicit_map():
    x, residual = torch.randn(B, N, C * H), torch.randn(B, N, C * H)
    p = x @ torch.softmax(x, dim=1).transpose(1, 2) / x.shape[-1]  # [B, N, N] (Eqs. 7, 9)
    psi = torch.linalg.vector_norm(p, dim=1, keepdim=True).transpose(1, 2) @ torch.linalg.vector_norm(
        x, dim=1, keepdim=True)  # Norm(P)^T (x) Norm(X): [B, N, C*H]
    a, b = self_correlation(x)
    torch.testing.assert_close(a[:, :, None] * b[:, None, :], psi)
    add_norm = AddNorm(N).eval()  # eval: no dropout
    with torch.no_grad():
        add_norm.norm.weight.uniform_(0.5, 1.5)
        add_norm.norm.bias.uniform_(-1, 1)
    torch.testing.assert_close(add_norm(residual, a, b), add_norm.norm(residual + psi), rtol=1e-5, atol=1e-5)


def test_frame_batch_norm_equals_a_batch_norm_applied_frame_by_frame():
    fast, plain = FrameBatchNorm(C), nn.BatchNorm2d(C)
    with torch.no_grad():
        fast.weight.uniform_(0.5, 1.5)
        fast.bias.uniform_(-1, 1)
    plain.load_state_dict(fast.state_dict())
    for _ in range(2):  # training: each frame its own batch statistics, N running-statistics updates
        x = torch.randn(B, N, C, H, W) * 3 + 1
        expected = torch.stack([plain(x[:, t]) for t in range(N)], dim=1)
        torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    fast.eval(), plain.eval()
    x = torch.randn(B, N, C, H, W)
    torch.testing.assert_close(fast(x), torch.stack([plain(x[:, t]) for t in range(N)], dim=1))


def test_temporal_feature_convnet_runs_all_frames_at_once_like_a_loop():
    corr = TemporalSelfCorrelation(2, C, N).eval()
    x = torch.rand(B, N, 2, H, W)
    def frame(f: Tensor) -> Tensor:  # Eq. 6 on one frame [B, 2, h, w], BatchNorm2d as the official code
        f = F.relu(nn.BatchNorm2d.forward(corr.bn1, corr.conv1(f)))
        return F.relu(nn.BatchNorm2d.forward(corr.bn2, corr.conv2(f)))

    torch.testing.assert_close(corr.features(x), torch.stack([frame(x[:, t]) for t in range(N)], dim=1))


@pytest.mark.parametrize("name", ["convgru", "srvp"])
def test_layer_major_encoder_has_the_gradients_of_the_time_major_loop(name):
    model = create(name, preset="tiny", hidden=6, layers=2, kernel_size=3, patch_size=2, img_size=(16, 16),
                   **({"input_frames": 4} if name == "srvp" else {}))
    model.eval()  # no dropout: both paths see the same function
    frames, target = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    params = list(model.parameters())
    fast = torch.autograd.grad(F.mse_loss(model(frames, 3), target), params)
    model.layer_major = False  # one input convolution per step, all layers per step
    plain = torch.autograd.grad(F.mse_loss(model(frames, 3), target), params)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_keeps_each_element_independently_with_probability_one_minus_p(p):
    x = torch.rand(1000, 1000, dtype=torch.float64) + 0.5
    out = dropout(x, p)
    kept = out != 0
    # 1e6 elements: the keep rate's standard deviation is 5e-4.
    assert abs(kept.double().mean().item() - (1 - p)) < 3e-3
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    # Neighbours (which share one 64-bit random number) are independent: both kept with probability (1-p)^2.
    pairs = kept.view(-1, 2)
    assert abs(pairs.all(dim=1).double().mean().item() - (1 - p) ** 2) < 3e-3
    assert not torch.equal(kept, dropout(x, p) != 0)  # a fresh mask per call


def test_dropout_gradient_is_the_scaled_mask_and_eval_is_the_identity():
    x = torch.randn(3, 7, 5, requires_grad=True)  # an odd number of elements
    torch.manual_seed(1)
    out = dropout(x, 0.3)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    torch.testing.assert_close(grad, (out != 0).float() / 0.7)
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.3), out)  # reproducible from the seed
    assert not dropout(x, 1 - 1e-11).any()  # p so close to 1 that its threshold leaves int32
    module = Dropout(0.3).eval()
    assert module(x) is x and dropout(x, 0.0) is x
    assert dropout(x.bfloat16(), 0.3).dtype == torch.bfloat16
