"""SRVP (paper Sec. 3.3): the ConvGRU encoder-forecaster with its SA and RFA modules, and the ablations of Table 4."""
from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import Tensor

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.convgru import convgru_layers
from vpbench.models.layers.encoder_forecaster import EncoderForecaster
from vpbench.models.layers.recurrent_forms import RNN_PRESETS
from vpbench.models.layers.srvp_blocks import ReinforcedFeatureAttention, StandardAttention
from vpbench.models.registry import register_model

Context = tuple[Tensor | None, Tensor | None]  # (h^E for SA, h'^E for RFA), each [B, N, M*h*w]


class SRVP(EncoderForecaster):
    """SRVP: each forecast step, X_{t+1} = sigmoid(conv3x3([h_t^D, F1, F2])) (Eq. 11), where the SA module
    gives F1 (2M channels) and the RFA module gives F2 (M/2 channels). ``sa``, ``rfa`` and
    ``cross_attention`` switch off one module each for the ablations of Table 4 (cross-attention in
    both SA and RFA); the output convolution then reads only what is left.

    Where the paper leaves a detail open or differs from the official code (yuseonk/SRVP), this
    follows the code:

    * Eq. 2: Norm(omega) is the L2 norm over the L axis, which leaves a single row of N scores, so A^T
      is one M x HW map (taken after the division by sqrt(MHW), which is the same, the norm being
      homogeneous). With L = 1, and in RFA, whose query is the single map h'^D, there is no norm:
      the signed score goes to the softmax.
    * SA's temporal attention reads the raw encoder outputs h^E, not the reinforced h'^E that the
      paper's output-layer paragraph names; only RFA uses h'^E.
    * Eq. 3: "normalised along the L axis" is the element-wise L2 norm over the L layers' states.
      The spatial attentions (Eqs. 4, 5) attend over channels (an M x M map) with d_k = sqrt(HW);
      all projections are 1x1 convolutions with bias.
    * Eqs. 7, 9: P = X' Softmax(X')^T is divided by the size of the other axis (MHW, resp. HW), Norm is
      the L2 norm over the softmax axis, and psi is the rank-1 product of the column norms of P and X'.
      psi^S has LM channels, not M.
    * Eqs. 8, 10: "LayerNorm" is GroupNorm(N, N) (each frame over its M*H*W values) and GroupNorm(LM, LM)
      (each channel over H*W), with affine weights; dropout 0.2 acts on the residual input (h^E, h^D)
      in training, not on psi. Eq. 10's ConvNet is a 3x3 conv (LM -> M) + tanh.
    * Eq. 6's ConvNet is conv3x3 (C -> M/2), BN, ReLU, conv3x3 (M/2 -> M), BN, ReLU, shared by all
      frames, with batch statistics per frame in training (N running-statistics updates per step).
    * RFA: A2^T and A2^S each pass a conv3x3 (M -> M/2) + tanh before the cross-attention (at width
      M/2), and each fused map a conv3x3 (M/2 -> M/4) + tanh after it: F2 has M/2 channels (M' = M/4).
    * Eq. 11's ConvNet is a 3x3 conv + sigmoid. The ConvGRU has dropout 0.5 on its gates' input.
    * Ablations (not in the official code): Without-SA drops F1, Without-RFA drops F2 (and h'^E),
      Without-CrossAtt uses [A^T, A^S] as F1 and the conv'd [A2^T, A2^S] as F2.

    Checked against the official code: at the paper's configuration the parameter count is the same
    (18,309,525) and fvcore's FLOPs are within 0.004%; with the official weights loaded (fused 1x1
    projections = their stacked weights), outputs, gradients and batch-norm statistics agree to
    float32 rounding (outputs within 6e-8), in eval and in training mode (dropout off).
    """

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 1,
                 hidden: int = 128, layers: int = 4, kernel_size: int = 5, dropout: float = 0.5,
                 input_frames: int = 10, sa: bool = True, rfa: bool = True, cross_attention: bool = True) -> None:
        if hidden < 4:
            raise UserError(f"SRVP needs hidden >= 4 (its RFA features have hidden/4 channels), got {hidden}")
        if input_frames < 1:
            raise UserError(f"input_frames must be positive, got {input_frames}")
        frame_channels = in_channels * patch_size**2
        sa_module = StandardAttention(hidden, layers, cross_attention) if sa else None
        rfa_module = (ReinforcedFeatureAttention(frame_channels, hidden, layers, input_frames, cross_attention)
                      if rfa else None)
        extra = (2 * hidden if sa else 0) + (rfa_module.out_channels if rfa_module else 0)
        super().__init__(functools.partial(convgru_layers, dropout=dropout), in_channels=in_channels, img_size=img_size,
                         patch_size=patch_size, hidden=hidden, layers=layers, kernel_size=kernel_size,
                         extra_out_channels=extra)
        self.input_frames = input_frames
        self.sa, self.rfa = sa_module, rfa_module

    def prepare(self, x: Tensor, enc_out: Tensor) -> Context:
        """h^E for SA and h'^E for RFA (Eqs. 6-8), once per sequence."""
        if x.shape[1] != self.input_frames:
            raise UserError(f"this SRVP was built for {self.input_frames} input frames (its Eq. 8 norm has one "
                            f"weight per frame), got {x.shape[1]}; build it with input_frames={x.shape[1]}")
        ref_sa = enc_out.flatten(2) if self.sa is not None else None
        ref_rfa = self.rfa.reference(x, enc_out) if self.rfa is not None else None
        return ref_sa, ref_rfa

    def readout(self, hiddens: list[Tensor], context: Context) -> Tensor:
        """Eq. 11: the next (patched) frame from [h_t^D, F1, F2]."""
        states = torch.cat(hiddens, dim=1)  # h_t^D [B, L*M, h, w]
        ref_sa, ref_rfa = context
        features = [states]
        if self.sa is not None:
            features += self.sa(states, ref_sa)
        if self.rfa is not None:
            features += self.rfa(states, ref_rfa)
        return self.output(torch.cat(features, dim=1))


def _defaults(**flags: bool) -> dict[str, dict]:
    """The paper's hyperparameters per preset (those of the RNN models, dropout 0.5) plus ablation flags."""
    return {preset: {**kw, "dropout": 0.5, **flags} for preset, kw in RNN_PRESETS.items()}


# quick: the protocol's recipe (Adam, one-cycle) over 1 epoch peaking at 3e-3 (measured on Moving MNIST, one thread
# beside another run: 49 s, MSE 2216, pixel std 0.359 of the ground truth's; at 2e-3: 2229, 0.358; 2 epochs at 2e-3:
# 96 s, 2173, 0.380; 3 epochs at 1e-3: 142 s, 2138, 0.375, at 3e-4: 2216, 0.352; M=16 over 3 epochs: 0.304).
RECIPE = {"quick": {**presets.protocol_recipe("quick"), "lr": 3.0e-3, "epochs": 1}}
PAPER_VALUES = {
    "table1-10": {"mse": 935.02, "ssim": 0.7474},
    "table1-30": {"mse": 1173.18, "ssim": 0.5533},
    "table2": {"mse": 383.16, "psnr": 22.0322, "ssim": 0.7360},
    "table3": {1: 0.9659, 2: 0.9512, 3: 0.9386, 4: 0.9272},
    "table4": {"mse": 935.02, "psnr": 18.6160, "ssim": 0.7474},
}
register_model("srvp", label="SRVP", tags=("paper", "ablation"), defaults=_defaults(), recipe=RECIPE, rank=80,
               references=PAPER_VALUES)(SRVP)
register_model("srvp-no-sa", label="Without-SA", tags=("ablation",), defaults=_defaults(sa=False), recipe=RECIPE,
               rank=81, references={"table4": {"mse": 968.64, "psnr": 18.4719, "ssim": 0.7365}})(SRVP)
register_model("srvp-no-rfa", label="Without-RFA", tags=("ablation",), defaults=_defaults(rfa=False), recipe=RECIPE,
               rank=82, references={"table4": {"mse": 1023.84, "psnr": 18.2027, "ssim": 0.6983}})(SRVP)
register_model("srvp-no-crossatt", label="Without-CrossAtt", tags=("ablation",),
               defaults=_defaults(cross_attention=False), recipe=RECIPE, rank=83,
               references={"table4": {"mse": 973.16, "psnr": 18.4690, "ssim": 0.7314}})(SRVP)
