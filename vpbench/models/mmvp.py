"""MMVP (Zhong et al., ICCV 2023, "MMVP: Motion-Matrix-based Video Prediction"): the future is composed from the
observed frames' features by motion matrices, similarities between every pair of positions of consecutive
frames, the future ones predicted from the observed ones; T frames in, the next K out, all at once.

As OpenSTL builds it (``openstl/models/mmvp_model.py``, ``openstl/modules/mmvp_modules.py``,
``openstl/utils/mmvp_utils.py`` of the Lightning branch; configs/mmnist/MMVP.py):

1. Frames are space-to-depth'ed by 2 and encoded per frame: a conv and RRDBs, then ``scales`` stride-2 residual
   blocks doubling the channels; the last three scales' features are kept (mid, high, low).
2. Motion matrices (paper Sec. 3.2): a filter block maps the high and low features to hid_S and 2 hid_S channels;
   the cosine similarities of every position of frame t with every position of frame t+1 form the matrix
   A_t [hw, hw] at each of the two resolutions.
3. The observed high-resolution matrices A_0..A_{T-2} predict K future ones (a 2D/3D conv net over each
   position's similarity map; Sec. 3.3); the low-resolution future ones are interpolated from them. Every
   matrix is then a softmax over all its hw x hw entries.
4. Composition (Sec. 3.4): the feature of future frame k is the average of all observed frames' features
   weighted by the chained matrices A_i A_{i+1} ... A_{T-2} P_k (P_k maps the last observed frame to frame k),
   normalised by the weights' sums. This composes the mid, high and low features and the frames' pixel blocks.
5. A U-Net decoder of the composed features, depth-to-space by 2, and an RRDB enhancer of [decoded, composed
   pixels] give the frames.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.registry import register_model

# -- blocks ----------------------------------------------------------------------------------------------------


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block (Wang et al. 2018): x_k = LReLU_0.2(conv_k([x, x_1, ..., x_{k-1}])) for k = 1..3,
    out = x + 0.2 conv_4([x, x_1, x_2, x_3]). [N, C, h, w] -> [N, C, h, w]; ``growth`` channels per x_k."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + k * growth, growth if k < 3 else channels, 3, 1, 1)
                                   for k in range(4))

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.convs[-1](torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: x + 0.2 (three dense blocks of growth C/2)(x). [N, C, h, w] -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(channels, channels // 2) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x) * 0.2 + x


class DownBlock(nn.Module):
    """OpenSTL's downsampling ``ResBlock``: LReLU(ReLU(conv(ReLU(conv_s2(x)))) + conv1x1_s2(x)).
    [N, C_in, h, w] -> [N, C_out, h/2, w/2]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(F.relu(self.conv2(F.relu(self.conv1(x)))) + self.shortcut(x))


class UpBlock(nn.Module):
    """OpenSTL's ``Up``: a 2x2 stride-2 transposed conv, the skip (if any) concatenated before it, a bias-free
    3x3 conv + ReLU. [N, C_in, h, w] (+ skip [N, C_out, 2h, 2w]) -> [N, C_out, 2h, 2w]."""

    def __init__(self, in_channels: int, out_channels: int, skip: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, 2)
        self.conv = nn.Conv2d(out_channels * (2 if skip else 1), out_channels, 3, 1, 1, bias=False)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.up(x)
        return F.relu(self.conv(x if skip is None else torch.cat([skip, x], dim=1)))


def conv_bn_lrelu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + BatchNorm + LeakyReLU(0.01): [N, C_in, h, w] -> [N, C_out, h/stride, w/stride]."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.BatchNorm2d(out_channels),
                         nn.LeakyReLU())


class TemporalConv(nn.Module):
    """3x3x3 conv over (time, height, width) + BatchNorm3d + LeakyReLU(0.01): [B, T, C, h, w] -> [B, T, C', h, w]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, 1, 1)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(x.transpose(1, 2)))).transpose(1, 2)


def per_frame(module: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """A 2D module on every frame of x [B, T, C, h, w] -> [B, T, C', h', w']."""
    out = module(x.flatten(0, 1))
    return out.reshape(*x.shape[:2], *out.shape[1:])


# -- motion matrices -------------------------------------------------------------------------------------------


def similarity_matrices(features: Tensor) -> Tensor:
    """A_t[p, q] = <f_t(p), f_{t+1}(q)> of the channel-normalised features (paper Eq. 1; ``build_similarity_matrix``).
    features [B, T, c, h, w] -> [B, T-1, hw, hw] (rows: positions of frame t, columns: of frame t+1)."""
    x = features.flatten(3).transpose(2, 3)  # [B, T, hw, c]
    x = x / (torch.norm(x, dim=-1, keepdim=True) + 1e-6)
    return x[:, :-1] @ x[:, 1:].transpose(-1, -2)


def softmax_matrices(matrices: Tensor) -> Tensor:
    """Each matrix [..., n, m] a softmax over all its n x m entries (``sim_matrix_postprocess``)."""
    return F.softmax(matrices.flatten(-2), dim=-1).reshape(matrices.shape)


def resize_matrices(matrices: Tensor, size: tuple[int, int], target: tuple[int, int]) -> Tensor:
    """Matrices [B, K, hw, hw] between grids of ``size`` resized to grids of ``target``: each row's map over the
    destination grid bilinearly, then each column's map over the source grid bicubically
    (``sim_matrix_interpolate``). -> [B, K, h'w', h'w']."""
    (h, w), (th, tw) = size, target
    b, k = matrices.shape[:2]
    x = F.interpolate(matrices.reshape(-1, 1, h, w), target, mode="bilinear")  # destination maps
    x = x.reshape(b, k, h, w, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(-1, 1, h, w)
    x = F.interpolate(x, target, mode="bicubic")  # source maps
    return x.reshape(b, k, th, tw, th, tw).permute(0, 1, 4, 5, 2, 3).reshape(b, k, th * tw, th * tw)


class MatrixPredictor(nn.Module):
    """The future motion matrices from the observed ones (paper Sec. 3.3; OpenSTL's ``PredictModel`` with its direct
    predictor, ``SimpleMatrixPredictor3DConv_direct``).

    Every row of a matrix (one source position's similarity map over the h x w grid) is embedded by a 3x3 conv to
    ``hidden`` channels; per source position, the T' = T-1 observed maps go through two conv-BN-LReLUs, a stride-2
    one, a 3D conv over time, a 1x1 conv from T' x hidden to K x hidden channels (+ LReLU, BatchNorm), a stride-2
    conv-BN-LReLU to 2 x hidden, a temporal layer over the K frames (a 3D conv; a conv + LReLU when K = 1), a
    conv-BN-LReLU of [upsampled, stride-2 features] and one more at full size; a 3x3 conv reads each future map out.
    observed [B, T', hw, hw] -> raw future matrices [B, K, hw, hw]."""

    def __init__(self, observed: int, future: int, hidden: int) -> None:
        super().__init__()
        self.future = future
        self.embed = nn.Conv2d(1, hidden, 3, 1, 1, bias=False)
        self.pre = nn.Sequential(conv_bn_lrelu(hidden, hidden), conv_bn_lrelu(hidden, hidden))
        self.down1 = conv_bn_lrelu(hidden, hidden, 2)
        self.temporal1 = TemporalConv(hidden, hidden)
        self.translate = nn.Sequential(nn.Conv2d(observed * hidden, future * hidden, 1), nn.LeakyReLU(),
                                       nn.BatchNorm2d(future * hidden))
        self.down2 = conv_bn_lrelu(hidden, 2 * hidden, 2)
        self.temporal2 = (TemporalConv(2 * hidden, 2 * hidden) if future > 1 else
                          nn.Sequential(nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1), nn.LeakyReLU()))
        self.fuse = conv_bn_lrelu(3 * hidden, hidden)
        self.up = conv_bn_lrelu(hidden, hidden)
        self.readout = nn.Conv2d(hidden, 1, 3, 1, 1, bias=False)

    def forward(self, observed: Tensor, grid: tuple[int, int]) -> Tensor:
        b, t, n, _ = observed.shape
        x = self.embed(observed.reshape(-1, 1, *grid))  # [B T' n, hid, h, w]
        x = x.reshape(b, t, n, *x.shape[1:]).transpose(1, 2).flatten(0, 2)  # [B n T', hid, h, w]
        x = self.pre(x)
        x1 = self.temporal1(self.down1(x).unflatten(0, (b * n, t)))  # [B n, T', hid, h/2, w/2]
        x1 = self.translate(x1.flatten(1, 2)).reshape(b * n * self.future, -1, *x1.shape[-2:])  # [B n K, hid, ...]
        x2 = self.down2(x1)
        if self.future > 1:
            x2 = self.temporal2(x2.unflatten(0, (b * n, self.future))).flatten(0, 1)
        else:
            x2 = self.temporal2(x2)
        x3 = self.fuse(torch.cat((F.interpolate(x2, size=x1.shape[-2:]), x1), dim=1))
        out = self.readout(self.up(F.interpolate(x3, size=grid)))  # [B n K, 1, h, w]
        return out.reshape(b, n, self.future, n).transpose(1, 2)


def chain_matrices(observed: Tensor) -> Tensor:
    """S_i = A_i A_{i+1} ... A_{T-2}, the motion from observed frame i to the last one (S_{T-1} = I).
    observed [B, T-1, n, n] -> [B, T, n, n]."""
    chains = [torch.eye(observed.shape[-1], dtype=observed.dtype, device=observed.device).expand_as(observed[:, 0])]
    for matrix in observed.unbind(1)[::-1]:
        chains.append(matrix @ chains[-1])
    return torch.stack(chains[::-1], dim=1)


def compose(features: Tensor, chains: Tensor, future: Tensor) -> Tensor:
    """The future frames' features composed from the observed ones (paper Sec. 3.4; ``Compose.feat_compose``).

    With the chains S_i (:func:`chain_matrices`) and P_k the k-th future matrix, frame k's feature at q is
    sum_i sum_p (S_i P_k)[p, q] F_i(p) / (sum_i sum_p (S_i P_k)[p, q] + 1e-6). OpenSTL chains the T matrices anew
    for each k; the sums over i are taken once here (the same numbers, up to rounding). features [B, T, c, h, w];
    chains [B, T, n, n], future [B, K, n, n] (softmaxed, n = hw) -> [B, K, c, h, w]."""
    b, _, c, h, w = features.shape
    chains_t = chains.transpose(-1, -2)
    pooled = (chains_t @ features.flatten(3).transpose(2, 3)).sum(1)  # sum_i S_i^T F_i [B, n, c]
    mass = chains_t.sum(-1).sum(1)  # sum_i S_i^T 1 [B, n]
    future_t = future.transpose(-1, -2)
    composed = (future_t @ pooled[:, None]) / (future_t @ mass[:, None, :, None] + 1e-6)  # [B, K, n, c]
    return composed.transpose(-1, -2).reshape(b, -1, c, h, w)


# -- the model ---------------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Per frame: a 3x3 conv to ``hidden`` channels and ``blocks`` RRDBs, then ``scales`` stride-2 residual blocks
    doubling the channels. [N, C_in, h, w] -> the last three scales' features (mid, high, low):
    [N, hidden 2^(s-2), h/2^(s-2), ...], [N, hidden 2^(s-1), h/2^(s-1), ...], [N, hidden 2^s, h/2^s, ...]."""

    def __init__(self, in_channels: int, hidden: int, scales: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, 1, 1), *(RRDB(hidden) for _ in range(blocks)))
        self.down = nn.ModuleList(DownBlock(hidden * 2**i, hidden * 2 ** (i + 1)) for i in range(scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return feats[-3:]


class Decoder(nn.Module):
    """U-Net decoder of the composed features: up-blocks from the low scale, the first reading the high features
    and the second the mid ones as skips, then ``blocks`` RRDBs and a 1x1 conv to ``out_channels``.
    (mid, high, low) [N, ...] as :class:`Encoder` returns them -> [N, out_channels, h, w]."""

    def __init__(self, out_channels: int, hidden: int, scales: int, blocks: int) -> None:
        super().__init__()
        self.up = nn.ModuleList(UpBlock(hidden * 2 ** (i + 1), hidden * 2**i, skip=i >= scales - 2)
                                for i in reversed(range(scales)))
        self.refine = nn.Sequential(*(RRDB(hidden) for _ in range(blocks)))
        self.readout = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, mid: Tensor, high: Tensor, low: Tensor) -> Tensor:
        x = self.up[1](self.up[0](low, high), mid)
        for block in self.up[2:]:
            x = block(x)
        return self.readout(self.refine(x))


def filter_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Three conv-BN-LReLUs: the features the motion matrices are built from (OpenSTL's ``filter_block``)."""
    return nn.Sequential(conv_bn_lrelu(in_channels, out_channels), conv_bn_lrelu(out_channels, out_channels),
                         conv_bn_lrelu(out_channels, out_channels))


class MMVP(nn.Module):
    """MMVP, as OpenSTL builds it (its Moving MNIST configuration: hid_S 32, hid_T 192, downsample '2,2,2', 2 RRDBs
    in the encoder, decoder and enhancer, the direct matrix predictor).

    * ``spatial_hidden`` (hid_S): the encoder's first width; ``scales``: its stride-2 stages (OpenSTL's
      ``downsample_setting`` '2,2,2' is 3; factors other than 2 are not supported); ``encoder_blocks``,
      ``decoder_blocks``, ``enhance_blocks``: RRDBs; ``temporal_hidden`` (hid_T): the matrix predictor's width.
    * ``output_frames`` (K, OpenSTL's aft_seq_length; default T_in): the frames one call predicts. Longer horizons
      are rolled out, each call reading the last T_in frames known (inputs, then predictions).

    OpenSTL trains MMVP on the 20-frame sequence (``cat(batch_x, batch_y)``) and tests it on the 10 input frames.
    Only the first T frames' matrices and features are composed, but the filter block's BatchNorm then normalises
    with statistics over all 20 frames in training, so the targets leak into the training forward (slightly:
    the outputs move when the target frames change) and the statistics differ from the test's. Here the model
    reads the T_in input frames in training as in testing. OpenSTL's output reshape
    (``permute(0, 2, 3, 1).reshape(B, -1, C, H, W)``) mixes the channels for C > 1; here frames keep their
    channels (the same for Moving MNIST's one channel). Two modules OpenSTL builds and never calls
    (``MidMotionMatrix.scale_fuser_1``, ``scale_fuser_2``, ``PredictModel.fuse_conv``) are left out.

    The output is unbounded in OpenSTL; here it is clamped to [0, 1] with a straight-through gradient unless
    ``raw``, which the loss ``mse_raw`` asks for to train on the unbounded output as OpenSTL does. Frames
    whose sides do not divide by 2^(scales + 1) are replicate-padded and the prediction cropped (OpenSTL
    interpolates features instead). Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, output_frames: int | None = None,
                 spatial_hidden: int = 32, temporal_hidden: int = 192, scales: int = 3, encoder_blocks: int = 2,
                 decoder_blocks: int = 2, enhance_blocks: int = 2) -> None:
        super().__init__()
        if input_frames < 2:
            raise UserError(f"MMVP needs at least 2 input frames (one observed motion matrix), got {input_frames}")
        if scales < 2 or spatial_hidden < 2 or temporal_hidden < 1:
            raise UserError(f"MMVP needs scales >= 2, spatial_hidden >= 2 and temporal_hidden >= 1, got {scales}, "
                            f"{spatial_hidden} and {temporal_hidden}")
        self.input_frames = input_frames
        self.output_frames = output_frames or input_frames
        self.scales, self.size_multiple = scales, 2 ** (scales + 1)
        hidden = spatial_hidden
        self.encoder = Encoder(4 * in_channels, hidden, scales, encoder_blocks)
        self.filter_high = filter_block(hidden * 2 ** (scales - 1), hidden)
        self.filter_low = filter_block(hidden * 2**scales, 2 * hidden)
        self.predictor = MatrixPredictor(input_frames - 1, self.output_frames, temporal_hidden)
        self.decoder = Decoder(4 * in_channels, hidden, scales, decoder_blocks)
        self.enhance = nn.Sequential(nn.Conv2d(2 * in_channels, hidden, 3, 1, 1),
                                     *(RRDB(hidden) for _ in range(enhance_blocks)), nn.Conv2d(hidden, in_channels, 1))

    def block(self, frames: Tensor, raw: bool = False) -> Tensor:
        """The next K frames: [B, T_in, C, H, W] -> [B, K, C, H, W] in [0, 1] (unbounded when ``raw``)."""
        b, t, c, h, w = frames.shape
        if t != self.input_frames:
            raise UserError(f"this MMVP was built for {self.input_frames} input frames (its matrix predictor stacks "
                            f"them), got {t}; build it with input_frames={t}")
        x = F.pixel_unshuffle(pad_to_multiple(frames.flatten(0, 1), self.size_multiple), 2)  # [B T, 4C, H/2, W/2]
        mid, high, low = (f.unflatten(0, (b, t)) for f in self.encoder(x))
        grid_high, grid_low = tuple(high.shape[-2:]), tuple(low.shape[-2:])
        observed_high = similarity_matrices(per_frame(self.filter_high, high))  # [B, T-1, n_high, n_high]
        observed_low = similarity_matrices(per_frame(self.filter_low, low))
        future = self.predictor(observed_high, grid_high)  # [B, K, n_high, n_high]
        matrices_high = chain_matrices(softmax_matrices(observed_high)), softmax_matrices(future)
        matrices_low = (chain_matrices(softmax_matrices(observed_low)),
                        softmax_matrices(resize_matrices(future, grid_high, grid_low)))
        mid = per_frame(lambda f: F.pixel_shuffle(f, 2),
                        compose(per_frame(lambda f: F.pixel_unshuffle(f, 2), mid), *matrices_high))
        decoded = self.decoder(mid.flatten(0, 1), compose(high, *matrices_high).flatten(0, 1),
                               compose(low, *matrices_low).flatten(0, 1))  # [B K, 4C, H/2, W/2]
        # The frames' pixel blocks on the high-resolution grid, composed the same way.
        cell = 2 ** (self.scales - 1)
        pixels = compose(per_frame(lambda f: F.pixel_unshuffle(f, cell), x.unflatten(0, (b, t))), *matrices_high)
        pixels = F.pixel_shuffle(F.pixel_shuffle(pixels.flatten(0, 1), cell), 2)  # [B K, C, H, W]
        out = self.enhance(torch.cat([F.pixel_shuffle(decoded, 2), pixels], dim=1))
        out = out[..., :h, :w].reshape(b, -1, c, h, w)
        return out if raw else clamp_straight_through(out)

    def forward(self, frames: Tensor, horizon: int, raw: bool = False) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1] (unbounded when
        ``raw``): one call per K frames, each reading the last T_in frames known."""
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        preds, known, done = [], frames, 0
        while done < horizon:
            preds.append(self.block(known, raw))
            done += preds[-1].shape[1]
            known = torch.cat([known, preds[-1]], dim=1)[:, -self.input_frames:]
        return torch.cat(preds, dim=1)[:, :horizon]


MMVP_PRESETS: dict[str, dict] = {
    # OpenSTL's configs/mmnist/MMVP.py.
    "paper": {"spatial_hidden": 32, "temporal_hidden": 192, "scales": 3, "encoder_blocks": 2, "decoder_blocks": 2,
              "enhance_blocks": 2},
    # A 2-core CPU: narrow, and no RRDBs (full-resolution dense blocks of a few channels are slow on a CPU).
    "quick": {"spatial_hidden": 4, "temporal_hidden": 4, "scales": 3, "encoder_blocks": 0, "decoder_blocks": 0,
              "enhance_blocks": 0},
    "tiny": {"spatial_hidden": 2, "temporal_hidden": 2, "scales": 3, "encoder_blocks": 1, "decoder_blocks": 1,
             "enhance_blocks": 1},
}
QUICK_LR = 3.0e-3
# OpenSTL's (configs/mmnist/MMVP.py): MSE on the unbounded output (``mse_raw``), Adam, one-cycle per batch peaking
# at 1e-3, batch 16; the protocol's recipe with that loss under OpenSTL's protocol, the same under the SRVP
# protocol. The smaller scales peak at QUICK_LR. On a CPU its convolutions run in channels-last layout (measured
# on the quick preset: a training step 1.3x faster).
_OWN = {"loss": "mse_raw", "optimizer": "adam", "weight_decay": 0.0, "scheduler": "onecycle", "cpu_channels_last": True}
MMVP_RECIPE = {"paper": {**_OWN, "lr": 1.0e-3, "batch_size": 16}, "quick": {**_OWN, "lr": QUICK_LR},
               "tiny": {**_OWN, "lr": QUICK_LR},
               "openstl": {**presets.protocol_recipe("openstl"), "loss": "mse_raw"},
               **{name: {**presets.protocol_recipe(name), "loss": "mse_raw", "lr": QUICK_LR}
                  for name in ("openstl-quick", "openstl-tiny")}}
register_model("mmvp", label="MMVP", tags=("openstl", "rnn-free"), rank=230, defaults=MMVP_PRESETS,
               recipe=MMVP_RECIPE)(MMVP)
