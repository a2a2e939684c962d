"""The OpenSTL timing harness (``bench speed --parts openstl``): its pairs, and, where clones of the references are at
hand ($VPBENCH_OPENSTL, $VPBENCH_OPENSTL_V030, $VPBENCH_PREDFORMER, or their folders under /work/ref), timing each
newer pair against them at openstl-tiny (Earthformer: against its authors' code, $VPBENCH_EARTHFORMER or
/work/ref/earthformer, at openstl-quick); the IAM4VP and VMRNN authors' models ($VPBENCH_IAM4VP, $VPBENCH_VMRNN with
$VPBENCH_MAMBA, or /work/ref/IAM4VP, VMRNN-PyTorch, mamba) built and stepped once, untimed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vpbench import config as cfg
from vpbench.datasets import dataset_entry
from vpbench.errors import UserError
from vpbench.harness.recipes import make_optimizer
from vpbench.harness.steps import train_step_fn
from vpbench.metrics.cost import dummy_batch
from vpbench.models import build_model, model_names
from vpbench.models.layers.openstl_stack import sampling_probabilities
from vpbench.models.phydnet import teacher_forcing_ratio
from vpbench.models.tau import DDR_ALPHA, differential_divergence
from vpbench.reference import openstl as official_openstl
from vpbench.reference.mappings import mapping_for
from vpbench.reference.openstl_clone import timm_folder

CLONE = Path(os.environ.get("VPBENCH_OPENSTL", "/work/ref/OpenSTL"))
CLONES = {"openstl": CLONE, "openstl-v030": Path(os.environ.get("VPBENCH_OPENSTL_V030", "/work/ref/OpenSTL-v030")),
          "predformer": Path(os.environ.get("VPBENCH_PREDFORMER", "/work/ref/PredFormer"))}
AUTHORS = {"iam4vp": Path(os.environ.get("VPBENCH_IAM4VP", "/work/ref/IAM4VP")),
           "vmrnn": Path(os.environ.get("VPBENCH_VMRNN", "/work/ref/VMRNN-PyTorch")),
           "mamba": Path(os.environ.get("VPBENCH_MAMBA", "/work/ref/mamba"))}
MCVD = Path(os.environ.get("VPBENCH_MCVD", "/work/ref/mcvd-pytorch"))
NEW_PAIRS = ["predrnnv2", "mau", "simvp2", "tau", "mmvp", "e3dlstm", "phydnet", "dmvfn", "prednet", "crevnet", "wast",
             "predformer"]
OWN_LOSS = {"mcvd": ("mcvd",), "swinlstm": ("mse_all_frames",), "vmrnn": ("mse_all_frames",), "dmvfn": ("dmvfn",), "prednet": ("prednet",), "crevnet": ("crevnet",),
            "wast": ("wast",)}
# OpenSTL's MAU and MMVP hold modules their forward never calls
SAME_SIZE = {"predrnnv2", "simvp2", "tau", "e3dlstm", "phydnet", "dmvfn", "prednet", "crevnet", "predformer"}


@pytest.mark.parametrize("preset", ["openstl-tiny", "openstl-quick"])  # quick: the README's table
def test_every_pair_is_a_registered_model_sampled_as_openstl_is_at_the_timed_step(preset):
    assert set(NEW_PAIRS) < set(official_openstl.PAIRS)
    for name, pair in official_openstl.PAIRS.items():
        assert name in model_names()
        train = cfg.resolve(preset, name, "mmnist", sets=cfg.parse_sets(list(pair.sets)))["train"]
        if pair.step is official_openstl.recurrent_step:  # P(true frame) where OpenSTL's mask samples
            p = official_openstl.SAMPLING
            expected = (p, p) if train["sampling"] == "reverse" else (1.0, p)
            assert sampling_probabilities(official_openstl.VPBENCH_STEP, train) == expected, name
        elif pair.step is official_openstl.phydnet_step:  # OpenSTL's side runs without teacher forcing
            assert train["loss"] == "phydnet" and teacher_forcing_ratio(official_openstl.VPBENCH_STEP, train) == 0
        else:  # the loss each reference step computes
            assert train["loss"] in OWN_LOSS.get(name, ("mse", "mse_ddr", "mse_raw")), name


def test_models_without_an_openstl_counterpart_are_an_error_alone(tmp_path):
    with pytest.raises(UserError, match="none of persistence, convgru has an OpenSTL counterpart.*predrnnv2"):
        official_openstl.compare({"openstl": tmp_path}, ["persistence", "convgru"], preset="openstl-tiny",
                                 dataset="mmnist", batch=2, repeats=1)
    with pytest.raises(UserError, match="train.loss='l1'"):
        official_openstl.criterion("l1", tmp_path)


@pytest.mark.skipif(not all((c / "openstl" / "models").is_dir() for c in CLONES.values()),
                    reason=f"no clones of the references at {', '.join(map(str, CLONES.values()))}")
def test_the_newer_openstl_methods_are_timed_against_the_reference_code(fresh_imports):
    pytest.importorskip("einops")  # PredFormer's
    rows = official_openstl.compare(CLONES, [*NEW_PAIRS, "persistence"], preset="openstl-tiny", dataset="mmnist",
                                    batch=2, repeats=1)
    assert [r["model"] for r in rows] == NEW_PAIRS
    for r in rows:
        ours, theirs = r["params"]["vpbench"], r["params"]["reference"]
        assert ours == theirs if r["model"] in SAME_SIZE else ours < theirs, r
        assert all(s > 0 for s in r["seconds"].values())
    table = "\n".join(official_openstl.markdown(rows, "openstl-tiny", 1))
    assert all(f"| {name} | " in table for name in NEW_PAIRS)


def test_iam4vp_and_vmrnn_rows_name_the_clones_they_lack(tmp_path):
    rows = official_openstl.compare({"vmrnn": tmp_path}, ["iam4vp", "vmrnn"], preset="openstl-tiny", dataset="mmnist",
                                    batch=2, repeats=1)
    assert [r["seconds"] for r in rows] == [None, None]
    assert rows[0]["missing"] == "give --iam4vp PATH, a clone of github.com/seominseok0429/Implicit-Stacked-" \
                                 "Autoregressive-Model-for-Video-Prediction"
    assert rows[1]["missing"].startswith("give --mamba PATH, a clone of github.com/state-spaces/mamba")
    rows = official_openstl.compare({}, ["vmrnn"], preset="openstl-tiny", dataset="mmnist", batch=2, repeats=1)
    assert rows[0]["missing"].startswith("give --vmrnn PATH, a clone of github.com/yyyujintang/VMRNN-PyTorch and "
                                         "give --mamba PATH")
    table = "\n".join(official_openstl.markdown(rows, "openstl-tiny", 1))
    assert "| vmrnn |" not in table and "Not timed: vmrnn (give --vmrnn PATH" in table
    with pytest.raises(UserError, match="--iam4vp .*: no model.py and modules.py there"):
        official_openstl.PAIRS["iam4vp"].load(tmp_path)
    with pytest.raises(UserError, match="--vmrnn .*: no openstl/models/VMRNN_model.py there"):
        official_openstl.PAIRS["vmrnn"].load(tmp_path, tmp_path)


def test_the_mcvd_row_names_the_clone_it_lacks(tmp_path):
    rows = official_openstl.compare({}, ["mcvd"], preset="openstl-tiny", dataset="mmnist", batch=2, repeats=1)
    assert rows[0]["seconds"] is None
    assert rows[0]["missing"] == "give --mcvd PATH, a clone of github.com/voletiv/mcvd-pytorch"
    with pytest.raises(UserError, match="--mcvd .*: no models/better/ncsnpp_more.py there"):
        official_openstl.PAIRS["mcvd"].load(tmp_path)


@pytest.mark.skipif(not MCVD.is_dir(), reason=f"no clone at {MCVD} (VPBENCH_MCVD)")
def test_the_mcvd_authors_denoiser_is_vpbenchs_configuration_and_trains(one_thread):
    """Untimed: the authors' denoiser built as `bench speed` builds it holds vpbench's weights under the golden
    parity test's mapping, and its training step (one batch) changes the weights vpbench's own step changes from
    the same weights (those behind the zero-initialised output layers keep a zero gradient at the first step)."""
    pair = official_openstl.PAIRS["mcvd"]
    config = cfg.resolve("openstl-tiny", "mcvd", "mmnist")
    spec = dataset_entry("mmnist").spec(config["dataset"])
    ours = build_model(config).state_dict()
    theirs = pair.build(pair.load(MCVD), config, spec)
    weights = mapping_for("mcvd", "mcvd")(theirs.state_dict(), ours, {})
    mapped = {k: v.clone() for k, v in weights.to_vpbench(theirs.state_dict()).items()}
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in ours.items()}
    model = build_model(config)
    model.load_state_dict(mapped)
    train_step_fn(model, spec, config["train"], torch.device("cpu"), 2)()
    ours_changed = {k for k, v in model.state_dict().items() if not torch.equal(v, mapped[k])}
    x, y = dummy_batch(spec, 2)
    pair.step(theirs, config, x, y, MCVD)()
    moved = weights.to_vpbench(theirs.state_dict())
    assert {k for k, v in moved.items() if not torch.equal(v, mapped[k])} == ours_changed
    assert len(ours_changed) > len(mapped) // 2


def test_bench_speed_passes_the_authors_clones_to_the_harness(bench, tmp_path):
    """``--vmrnn`` without ``--mamba``, no ``--iam4vp``: neither row is timed, each says what it lacks."""
    code, out, err = bench("speed", "--parts", "openstl", "--models", "iam4vp,vmrnn", "--vmrnn", tmp_path,
                           "--preset", "openstl-tiny")
    assert code == 0, err
    assert "Not timed: iam4vp (give --iam4vp PATH, a clone of github.com/seominseok0429/" in out
    assert "Not timed: vmrnn (give --mamba PATH, a clone of github.com/state-spaces/mamba" in out
    code, _, err = bench("speed", "--parts", "openstl", "--models", "vmrnn")
    assert code == 2 and "--vmrnn with --mamba" in err


def authors_models_importable() -> bool:
    try:
        timm_folder()  # VMRNN's modules: timm 0.6
        import einops  # noqa: F401  both codes'
    except (UserError, ImportError):
        return False
    return all(path.is_dir() for path in AUTHORS.values())


@pytest.mark.skipif(not authors_models_importable(), reason=f"no clones at {', '.join(map(str, AUTHORS.values()))}, "
                                                            "or no timm 0.6 / einops on the path")
@pytest.mark.parametrize(("name", "dataset", "sets"), [("iam4vp", "mmnist", ["model.spatial_layers=4"]),
                                                       ("vmrnn", "taxibj", [])])
def test_the_iam4vp_and_vmrnn_authors_models_are_vpbenchs_configuration_and_train(name, dataset, sets, fresh_imports,
                                                                                  one_thread):
    """Untimed: the reference built as `bench speed` builds it holds vpbench's weights under the golden parity
    tests' mapping (and the modules its forward never uses), and its step (one batch) trains every weight it uses."""
    pair = official_openstl.PAIRS[name]
    config = cfg.resolve("openstl-tiny", name, dataset, sets=cfg.parse_sets(sets))
    spec = dataset_entry(dataset).spec(config["dataset"])
    ours = build_model(config).state_dict()
    theirs = pair.build(pair.load(AUTHORS[pair.source], *(AUTHORS[s] for s in pair.needs)), config, spec)
    weights = mapping_for(name, name)(theirs.state_dict(), ours, {})
    mapped = weights.to_vpbench(theirs.state_dict())
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in ours.items()}
    before = {n: p.detach().clone() for n, p in theirs.named_parameters()}
    x, y = dummy_batch(spec, 2)
    pair.step(theirs, config, x, y, AUTHORS[pair.source])()
    changed = {n for n, p in theirs.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before) - weights.unused and weights.unused


def test_the_iam4vp_authors_model_is_not_timed_where_their_code_fixes_otherwise(monkeypatch):
    """Their code fixes Moving MNIST's 10 -> 10 frames of 64 x 64, and N_S 4 (openstl-tiny's IAM4VP has 2)."""
    pair = official_openstl.PAIRS["iam4vp"]
    monkeypatch.setitem(official_openstl.PAIRS, "iam4vp", official_openstl.Pair(
        "", "IAM4VP", (), build=pair.build, step=pair.step, sets=(), source="iam4vp", loader=lambda clone: object))
    rows = official_openstl.compare({"iam4vp": Path("unused")}, ["iam4vp"], preset="openstl-tiny", dataset="mmnist",
                                    batch=2, repeats=1)
    assert rows[0]["seconds"] is None and rows[0]["missing"] == (
        "the IAM4VP authors' code fixes 10 -> 10 frames of 1 x 64 x 64 and 4 spatial layers; here 10 -> 10 of "
        "1 x 64 x 64 and 2")


@pytest.mark.skipif(not (CLONE / "openstl" / "models").is_dir(), reason=f"no clone of OpenSTL at {CLONE}")
def test_taus_loss_on_openstls_side_is_openstls_regulariser_as_vpbench_computes_it(fresh_imports):
    official_openstl.PAIRS["tau"].load(CLONE)
    generator = torch.Generator().manual_seed(0)
    pred, target = (torch.rand(2, 4, 1, 8, 8, generator=generator, dtype=torch.float64) for _ in range(2))
    expected = F.mse_loss(pred, target) + DDR_ALPHA * differential_divergence(pred, target)
    torch.testing.assert_close(official_openstl.criterion("mse_ddr", CLONE)(pred, target), expected, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_vpbench_steps_adam_fused_and_the_references_with_torchs_defaults_to_the_same_weights(optimizer):
    train = {"optimizer": optimizer, "lr": 1e-2, "weight_decay": 1e-2}
    models = [torch.nn.Conv2d(3, 4, 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    ours = make_optimizer(models[0].parameters(), train)
    theirs = official_openstl.reference_optimizer(models[1], train)
    assert ours.defaults["fused"] and not theirs.defaults["fused"]
    for _ in range(3):
        for model, step in zip(models, (ours, theirs)):
            model.zero_grad()
            model(torch.ones(1, 3, 5, 5)).square().sum().backward()
            step.step()
    for a, b in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert make_optimizer(models[0].parameters(), {**train, "optimizer": "rmsprop"}).defaults.get("fused") is None
    with pytest.raises(UserError, match="train.optimizer='rmsprop': the reference codes train with adam or adamw"):
        official_openstl.reference_optimizer(models[1], {**train, "optimizer": "rmsprop"})


EARTHFORMER = Path(os.environ.get("VPBENCH_EARTHFORMER", "/work/ref/earthformer"))


@pytest.mark.skipif(not (EARTHFORMER / "src" / "earthformer").is_dir(), reason=f"no Earthformer clone at {EARTHFORMER}")
def test_earthformer_is_timed_against_the_authors_model_of_the_same_size(fresh_imports):
    rows = official_openstl.compare({"earthformer": EARTHFORMER}, ["earthformer"], preset="openstl-quick",
                                    dataset="mmnist", batch=1, repeats=1)
    assert rows[0]["params"]["vpbench"] == rows[0]["params"]["reference"] == 116_149
    assert all(s > 0 for s in rows[0]["seconds"].values())
    with pytest.raises(UserError, match="16 GroupNorm groups"):  # the tiny preset's 4 groups: no counterpart
        official_openstl.compare({"earthformer": EARTHFORMER}, ["earthformer"], preset="openstl-tiny",
                                 dataset="mmnist", batch=1, repeats=1)
