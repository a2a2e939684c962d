"""The IAM4VP and VMRNN authors' codes, and mamba-ssm's reference selective scan, imported from a user's clones.

For ``bench speed --parts openstl`` (:mod:`vpbench.reference.openstl`) and the golden-file generators of
``tools/golden``; nothing here is shipped or fetched:

* IAM4VP (github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction): ``model.py`` over
  ``modules.py``, each a single file at the clone's root (:func:`iam4vp_files`; ``modules.py`` needs einops). The
  code fixes Moving MNIST's shapes (:data:`IAM4VP_SHAPE`, a 16 x 16 latent: ``N_S`` 4) and 64 channels for its step
  embedding, merge, attention and head: :func:`iam4vp_reference` rebuilds those at other widths with its own classes.
* VMRNN (github.com/yyyujintang/VMRNN-PyTorch, built on OpenSTL): ``openstl/models/VMRNN_model.py`` over
  ``openstl/modules/vmamba.py`` and ``VMRNN_modules.py`` (:func:`vmrnn_model_class`; timm 0.6.11, einops and fvcore).
  Its SS2D calls mamba-ssm's fused ``selective_scan_fn``, a CUDA kernel; on a CPU it scans with mamba-ssm's own
  pure-PyTorch ``selective_scan_ref`` from a clone of github.com/state-spaces/mamba (:func:`mamba_reference_scan`).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Callable

from torch import nn

from vpbench.errors import UserError
from vpbench.reference.clones import Unavailable, load_file, restored_modules, stand_in
from vpbench.reference.openstl_clone import SOURCES, load_model_class, openstl_timm

IAM4VP_SHAPE = (10, 1, 64, 64)  # (T, C, H, W): the authors' Decoder reshapes to it, mask_token is 16 x 16
IAM4VP_SPATIAL_LAYERS = 4  # N_S that takes 64 x 64 frames to the 16 x 16 latent


def iam4vp_files(clone: str | Path) -> tuple[types.ModuleType, types.ModuleType]:
    """The authors' ``modules.py`` and ``model.py`` (which imports it as ``modules``), each imported alone; timm's
    ``trunc_normal_`` is torch's where timm does not import. :class:`Unavailable` where einops does not import."""
    clone = Path(clone).expanduser()
    if not (clone / "model.py").is_file() or not (clone / "modules.py").is_file():
        raise UserError(f"--iam4vp {clone}: no model.py and modules.py there; give the folder of a clone of "
                        f"{SOURCES['iam4vp'][1]}")
    try:
        with restored_modules("modules", "timm"):
            stand_in("timm.models.layers", trunc_normal_=nn.init.trunc_normal_)
            modules = load_file(clone, "modules.py", "modules")
            return modules, load_file(clone, "model.py")
    except ImportError as err:
        raise Unavailable(f"the IAM4VP authors' modules.py does not import here ({err})") from None


def iam4vp_reference(model_file: types.ModuleType, *, time_dim: int, readout_dim: int, hid_S: int, N_S: int,
                     N_T: int, hid_T: int = 512) -> nn.Module:
    """The authors' ``IAM4VP(IAM4VP_SHAPE, hid_S, hid_T, N_S, N_T)`` of ``model_file`` with the modules it fixes at 64
    channels rebuilt from its own classes: the step embedding (``Time_MLP``) and each translator block's projection
    of it at ``time_dim``, the merge of the decoded frames (``dec.readout``, 640 -> 64 in their code), the attention
    and the head at ``readout_dim``. ``hid_T``: main.py's default, which their translator does not read."""
    t, channels = IAM4VP_SHAPE[:2]
    model = model_file.IAM4VP(IAM4VP_SHAPE, hid_S=hid_S, hid_T=hid_T, N_S=N_S, N_T=N_T)
    model.time_mlp = model_file.Time_MLP(dim=time_dim)
    for block in model.hid.st_block:
        block.mlp[1] = nn.Linear(time_dim, block.mlp[1].out_features)
    model.dec.readout = nn.Conv2d(t * hid_S, readout_dim, 1)
    model.attn = model_file.Attention(readout_dim)
    model.readout = nn.Conv2d(readout_dim, channels, 1)
    return model


def mamba_reference_scan(clone: str | Path) -> Callable:
    """``selective_scan_ref`` of mamba-ssm's ``mamba_ssm/ops/selective_scan_interface.py`` in the clone, imported
    alone: its package's compiled kernels, Triton layer norm and autocast helpers stand in (the function uses none).
    :class:`Unavailable` where einops does not import."""
    clone = Path(clone).expanduser()
    relative = "mamba_ssm/ops/selective_scan_interface.py"
    if not (clone / relative).is_file():
        raise UserError(f"--mamba {clone}: no {relative} there; give the folder of a clone of "
                        f"{SOURCES['mamba'][1]}")
    try:
        with restored_modules("mamba_ssm"):
            stand_in("mamba_ssm.utils.torch", custom_fwd=lambda f: f, custom_bwd=lambda f: f)
            stand_in("mamba_ssm.ops.triton.layer_norm")
            return load_file(clone, relative).selective_scan_ref
    except ImportError as err:
        raise Unavailable(f"mamba-ssm's selective_scan_interface.py does not import here ({err})") from None


def vmrnn_model_class(clone: str | Path, mamba: str | Path) -> type[nn.Module]:
    """The authors' ``VMRNN_D_Model`` from the clone at ``clone`` (its files imported alone, with timm 0.6.x as
    :func:`~vpbench.reference.openstl_clone.openstl_timm` provides it), its SS2D scanning with
    :func:`mamba_reference_scan` of the clone at ``mamba``. :class:`Unavailable` where timm 0.6, einops or fvcore
    do not import."""
    root = Path(clone).expanduser()
    if not (root / "openstl" / "models" / "VMRNN_model.py").is_file():
        raise UserError(f"--vmrnn {clone}: no openstl/models/VMRNN_model.py there; give the folder of a clone of "
                        f"{SOURCES['vmrnn'][1]}")
    scan = mamba_reference_scan(mamba)
    try:
        with openstl_timm():
            model_class = load_model_class(root, "VMRNN_model", "VMRNN_D_Model", ("vmamba", "VMRNN_modules"),
                                           source="vmrnn")
            sys.modules["openstl.modules.vmamba"].selective_scan_fn = scan  # read when SS2D runs
    except UserError as err:  # timm 0.6 not found, or a file that does not import
        raise Unavailable(f"the VMRNN authors' modules do not import here ({err})") from None
    return model_class
