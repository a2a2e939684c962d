"""Parity of the RNN-free baselines with their official code, in float64 (golden files: tools/golden/simvp_mimovp.py).

* ``simvp.pt``: A4Bio/SimVP's ``SimVP`` (hid_S 4, hid_T 16, N_S 4, N_T 3, kernels 3 and 5 in 4 groups;
  2 sequences of 3 frames, 2 channels, 16x16).
* ``mimovp_frames.pt``: ningshuliang/MIMO-VP's current ``Transformer`` (decoder queries from a second
  conv embedding of the frames), vpbench's ``queries="frames"``; every decoder layer's output.
* ``mimovp_positions.pt``: its first release (learned position queries), ``queries="positions"``.

Each test loads the reference's weights into vpbench's model through name mappings (the layouts are the
same: only the module paths differ; SimVP's is the package's, :mod:`vpbench.reference.mappings.simvp`, which
``bench import simvp`` uses), runs the same input and compares the output and
every parameter's gradient with the reference's to 1e-10.
"""
from __future__ import annotations

import pytest
import torch
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped

from vpbench.models import create
from vpbench.reference.mappings.links import Rules, WeightMap, renamed
from vpbench.reference.mappings.simvp import A4BIO

pytestmark = pytest.mark.usefixtures("one_thread")

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


def load_model(golden: dict, name: str, rules: Rules) -> tuple[torch.nn.Module, WeightMap]:
    """vpbench's model at the golden file's configuration, in float64, with the reference's weights."""
    model = create(name, **dict(golden["config"]["vpbench"])).double()
    weights = WeightMap(renamed(golden["state_dict"], rules))
    return load_mapped(model, weights, golden["state_dict"]), weights  # every weight, each once


def test_simvp_matches_the_official_code():
    golden = load_golden("simvp")
    model, weights = load_model(golden, "simvp", A4BIO)
    x, w = golden["inputs"], golden["loss_weights"]
    out = model(x, x.shape[1])
    # vpbench clamps the official (raw) output to [0, 1] with a straight-through gradient. The fixed loss
    # mean(y * w) is linear in y, so its gradient with respect to y is w / y.numel() whatever y is; the
    # straight-through clamp passes that gradient on unchanged, so vpbench's loss on its clamped output
    # and the reference's loss on its raw output give the same parameter gradients.
    assert_close(out, golden["output"].clamp(0, 1), "SimVP output (the reference's, clamped to [0, 1])")
    (out * w).mean().backward()
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))


@pytest.mark.parametrize("queries", ["frames", "positions"])
def test_mimovp_matches_the_official_code(queries):
    golden = load_golden(f"mimovp_{queries}")
    assert golden["config"]["vpbench"]["queries"] == queries
    model, weights = load_model(golden, "mimovp", MIMOVP_RULES)
    x, w = golden["inputs"], golden["loss_weights"]
    layers = model(x, x.shape[1], all_layers=True)  # [L, B, T, C, H, W]
    # The reference concatenates the layers' frames on the channel axis: [B, T, L*C, H, W].
    out = layers.permute(1, 2, 0, 3, 4, 5).flatten(2, 3)
    if queries == "positions":  # that golden file keeps the last decoder layer's output only
        out = out[:, :, -x.shape[2]:]
        assert_close(model(x, x.shape[1]), out, "MIMO-VP prediction (the last decoder layer's)", tol=0.0)
    assert_close(out, golden["output"], f"MIMO-VP ({queries}) decoder outputs")
    (out * w).mean().backward()
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))


def test_mappings_cover_every_parameter():
    """Every vpbench parameter receives a reference weight (``strict`` loading also checks this) and the
    mapping tables name modules that exist in both codes."""
    for name, files, rules in [("simvp", ["simvp"], A4BIO),
                               ("mimovp", ["mimovp_frames", "mimovp_positions"], MIMOVP_RULES)]:
        for file in files:
            golden = load_golden(file)
            model = create(name, **golden["config"]["vpbench"])
            assert set(WeightMap(renamed(golden["state_dict"], rules)).to_vpbench(golden["state_dict"])) == set(
                model.state_dict()), file
