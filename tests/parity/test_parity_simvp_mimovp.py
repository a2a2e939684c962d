"""Parity of the RNN-free baselines with their official code, in float64 (golden files: tools/golden/simvp_mimovp.py).

* ``simvp.pt``: A4Bio/SimVP's ``SimVP`` (hid_S 4, hid_T 16, N_S 4, N_T 3, kernels 3 and 5 in 4 groups;
  2 sequences of 3 frames, 2 channels, 16x16).
* ``mimovp_frames.pt``: ningshuliang/MIMO-VP's current ``Transformer`` (decoder queries from a second
  conv embedding of the frames), vpbench's ``queries="frames"``; every decoder layer's output.
* ``mimovp_positions.pt``: its first release (learned position queries), ``queries="positions"``.

Each test loads the reference's weights into vpbench's model through the name mappings below (the
layouts are the same: only the module paths differ), runs the same input and compares the output and
every parameter's gradient with the reference's to 1e-10.
"""
from __future__ import annotations

import pytest
import torch
from helpers.parity import Rules, assert_close, assert_grads, grads_of, load_golden, to_reference, to_vpbench

from vpbench.models import create

pytestmark = pytest.mark.usefixtures("one_thread")

# Reference (A4Bio/SimVP model.py) -> vpbench (vpbench/models/simvp.py). ConvSC wraps a BasicConv2d
# (``.conv``) holding ``conv`` and ``norm``; an Inception holds ``conv1`` and GroupConv2d ``layers``
# (each ``conv``, ``norm``); Mid_Xnet's ``enc``/``dec`` are the translator's ``down``/``up``.
SIMVP_RULES: Rules = [
    (r"^enc\.enc\.(\d+)\.conv\.(conv|norm)\.", r"encoder.\1.\2."),
    (r"^dec\.dec\.(\d+)\.conv\.(conv|norm)\.", r"decoder.\1.\2."),
    (r"^dec\.readout\.", r"readout."),
    (r"^hid\.enc\.", r"translator.down."),
    (r"^hid\.dec\.", r"translator.up."),
    (r"^(translator\.\w+\.\d+)\.conv1\.", r"\1.reduce."),
    (r"^(translator\.\w+\.\d+)\.layers\.(\d+)\.conv\.", r"\1.branches.\2.0."),
    (r"^(translator\.\w+\.\d+)\.layers\.(\d+)\.norm\.", r"\1.branches.\2.1."),
]

# Reference (ningshuliang/MIMO-VP Models.py, Layers.py, Sublayers.py) -> vpbench (vpbench/models/mimovp.py).
# The decoder's readout is ``decoder.conv``; the current version's query embedding is the top-level
# ``conv``, the first release's position embedding ``pos_emb``. In a layer, ``attn_1`` is the self- and
# ``attn_2`` the cross-attention, ``norm_k`` the k-th post-norm, ``ff.ff1``/``ff.ff2`` the two conv +
# norm (+ SiLU) stages of the feed-forward (one Sequential of 6 modules in vpbench).
MIMOVP_RULES: Rules = [
    (r"^encoder\.conv\.", r"embed."),
    (r"^conv\.", r"query_embed."),
    (r"^pos_emb\.", r"positions."),
    (r"^decoder\.conv\.", r"readout."),
    (r"^(encoder|decoder)\.layers\.", r"\1."),
    (r"\.attn_1\.", r".self_attention."),
    (r"\.attn_2\.", r".cross_attention."),
    (r"\.(q|k|v)_Conv\.", r".\1."),
    (r"\.v_post_f\.", r".merge."),
    (r"\.ff\.ff1\.(\d)\.", lambda m: f".feed_forward.net.{int(m[1])}."),
    (r"\.ff\.ff2\.(\d)\.", lambda m: f".feed_forward.net.{3 + int(m[1])}."),
    (r"\.norm_(\d)\.", lambda m: f".norms.{int(m[1]) - 1}."),
]


def load_model(golden: dict, name: str, rules: Rules) -> torch.nn.Module:
    """vpbench's model at the golden file's configuration, in float64, with the reference's weights."""
    options = dict(golden["config"]["vpbench"])
    model = create(name, **options).double()
    model.load_state_dict(to_vpbench(golden["state_dict"], rules), strict=True)  # every weight, each once
    return model


def test_simvp_matches_the_official_code():
    golden = load_golden("simvp")
    model = load_model(golden, "simvp", SIMVP_RULES)
    x, w = golden["inputs"], golden["loss_weights"]
    out = model(x, x.shape[1])
    # vpbench clamps the official (raw) output to [0, 1] with a straight-through gradient. The fixed loss
    # mean(y * w) is linear in y, so its gradient with respect to y is w / y.numel() whatever y is; the
    # straight-through clamp passes that gradient on unchanged, so vpbench's loss on its clamped output
    # and the reference's loss on its raw output give the same parameter gradients.
    assert_close(out, golden["output"].clamp(0, 1), "SimVP output (the reference's, clamped to [0, 1])")
    (out * w).mean().backward()
    assert_grads(grads_of(model), golden["grads"], to_reference(golden["grads"], SIMVP_RULES))


@pytest.mark.parametrize("queries", ["frames", "positions"])
def test_mimovp_matches_the_official_code(queries):
    golden = load_golden(f"mimovp_{queries}")
    assert golden["config"]["vpbench"]["queries"] == queries
    model = load_model(golden, "mimovp", MIMOVP_RULES)
    x, w = golden["inputs"], golden["loss_weights"]
    layers = model(x, x.shape[1], all_layers=True)  # [L, B, T, C, H, W]
    # The reference concatenates the layers' frames on the channel axis: [B, T, L*C, H, W].
    out = layers.permute(1, 2, 0, 3, 4, 5).flatten(2, 3)
    if queries == "positions":  # that golden file keeps the last decoder layer's output only
        out = out[:, :, -x.shape[2]:]
        assert_close(model(x, x.shape[1]), out, "MIMO-VP prediction (the last decoder layer's)", tol=0.0)
    assert_close(out, golden["output"], f"MIMO-VP ({queries}) decoder outputs")
    (out * w).mean().backward()
    assert_grads(grads_of(model), golden["grads"], to_reference(golden["grads"], MIMOVP_RULES))


def test_mappings_cover_every_parameter():
    """Every vpbench parameter receives a reference weight (``strict`` loading also checks this) and the
    mapping tables name modules that exist in both codes."""
    for name, files, rules in [("simvp", ["simvp"], SIMVP_RULES),
                               ("mimovp", ["mimovp_frames", "mimovp_positions"], MIMOVP_RULES)]:
        for file in files:
            golden = load_golden(file)
            model = create(name, **golden["config"]["vpbench"])
            assert set(to_vpbench(golden["state_dict"], rules)) == set(model.state_dict()), file
