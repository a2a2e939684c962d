"""Models from outside the package: module:factory specs, entry points and `bench check-model`."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.models import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_model"
_counter = itertools.count()

# Factories that break the contract in one way each (mmnist: 10 frames in, 10 out, 1x64x64).
BAD_MODELS = '''
import torch
from torch import nn


class Model(nn.Module):
    """One parameter; ``fn(frames, horizon, w)`` makes the prediction."""

    def __init__(self, fn):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.fn = fn

    def forward(self, frames, horizon):
        return self.fn(frames, horizon, self.w)


def repeat_last(frames, horizon):
    return frames[:, -1:].repeat(1, horizon, 1, 1, 1)


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no backward here")


def boom(frames, horizon, w):
    raise RuntimeError("boom")


def good():
    return Model(lambda x, h, w: torch.sigmoid(w + repeat_last(x, h)))

def wrong_shape():
    return Model(lambda x, h, w: torch.sigmoid(w + repeat_last(x, h)[..., ::2, ::2]))

def out_of_range():
    return Model(lambda x, h, w: w + 2 * repeat_last(x, h))

def nan():
    return Model(lambda x, h, w: w + repeat_last(x, h) * float("nan"))

def ignores_horizon():
    return Model(lambda x, h, w: torch.sigmoid(w + x))

def raises():
    return Model(boom)

def detached():
    return Model(lambda x, h, w: (w + repeat_last(x, h)).detach())

def backward_fails():
    return Model(lambda x, h, w: FailingBackward.apply(w + repeat_last(x, h)))

def not_a_module():
    return 42

def factory_raises():
    raise ValueError("bad option")

not_callable = 42
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write a module into a folder on sys.path; returns its (unique) name. The registry and
    sys.modules are restored afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.entries()))
    names: list[str] = []

    def write(source: str) -> str:
        name = f"vpb_plugin_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2
    assert err.startswith("bench check-model: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def test_spec_registers_an_undecorated_factory(plugin):
    module = plugin('''
        from torch import nn
        __version__ = "1.2"

        def make_model(*, in_channels: int = 1, hidden: int = 4) -> nn.Module:
            return nn.Conv2d(in_channels, hidden, 3)
    ''')
    (name,) = registry.expand(f"{module}:make_model")
    assert name == f"{module}.make_model" and registry.expand(f"{module}:make_model,{name}") == [name]
    entry = registry.get_entry(name)
    assert entry.origin == {"kind": "external", "source": f"{module}:make_model", "package": None, "version": "1.2"}
    config = cfg.resolve("tiny", name, "mmnist", sets=cfg.parse_sets(["model.hidden=3"]))
    assert config["model"] == {"name": name, "in_channels": 1, "hidden": 3}


def test_spec_keeps_the_name_defaults_and_recipe_of_register_model(plugin):
    module = plugin('''
        from torch import nn
        from vpbench.models import register_model

        @register_model("mynet", label="MyNet", defaults={"paper": {"hidden": 64}, "tiny": {"hidden": 2}},
                        recipe={"paper": "paper", "quick": "paper", "tiny": {"loss": "mse", "optimizer": "adam"}})
        def make(*, in_channels: int = 1, img_size=(64, 64), hidden: int = 8) -> nn.Module:
            return nn.Conv2d(in_channels, hidden, 3)
    ''')
    assert registry.expand(f"{module}:make") == ["mynet"]
    entry = registry.get_entry("mynet")
    assert entry.label == "MyNet" and entry.origin["source"] == f"{module}:make"
    config = cfg.resolve("tiny", "mynet", "mmnist")
    assert config["model"] == {"name": "mynet", "hidden": 2, "in_channels": 1, "img_size": [64, 64]}
    assert config["train"]["loss"] == "mse" and config["train"]["optimizer"] == "adam"
    assert cfg.resolve("paper", "mynet", "mmnist")["model"]["hidden"] == 64


def test_check_model_passes_a_good_model(plugin, bench):
    module = plugin(BAD_MODELS)
    code, out, err = bench("check-model", f"{module}:good", "--preset", "tiny")
    assert code == 0, err
    assert "forward    eval mode, horizon 1: [2, 1, 1, 64, 64]" in out
    assert "backward   1/1 parameter tensors receive gradients" in out
    assert "  params     1\n" in out and out.endswith(f"{module}.good honours the contract\n")


@pytest.mark.parametrize("factory, message", [
    ("wrong_shape", "returned shape (2, 10, 1, 32, 32), expected (2, 10, 1, 64, 64)"),
    ("out_of_range", "outside [0, 1]; end it with a sigmoid or a clamp"),
    ("nan", "returned NaN or Inf"),
    ("ignores_horizon", "ignores the horizon: forward(frames, horizon=1) returned 10 frames"),
    ("raises", "forward(frames, horizon=10) raised RuntimeError: boom"),
    ("detached", "its output does not depend on its parameters"),
    ("backward_fails", "backward failed: RuntimeError: no backward here"),
    ("not_a_module", "its factory returned an object of type int, not an nn.Module"),
    ("factory_raises", "its factory raised ValueError: bad option"),
    ("not_callable", "an object of type int is not a factory"),
    ("missing", "has no attribute 'missing'"),
])
def test_check_model_names_each_contract_violation(plugin, bench, factory, message):
    module = plugin(BAD_MODELS)
    one_line_error(*bench("check-model", f"{module}:{factory}", "--preset", "tiny")[::2], message)


@pytest.mark.parametrize("source, message", [
    ("import vpb_no_such_dependency\n", "importing '{module}' failed: ModuleNotFoundError: No module named "
                                        "'vpb_no_such_dependency'"),
    ("raise RuntimeError('config missing')\n", "importing '{module}' failed: RuntimeError: config missing"),
    ("from vpbench.models import register_model\n\n@register_model('convgru')\ndef make():\n    pass\n",
     "model name 'convgru' is already taken by a built-in model"),
])
def test_check_model_names_import_errors_and_name_clashes(plugin, bench, source, message):
    module = plugin(source)
    one_line_error(*bench("check-model", f"{module}:make", "--preset", "tiny")[::2], message.format(module=module))


def test_spec_of_a_missing_module_or_bad_form(bench):
    one_line_error(*bench("check-model", "vpb_nowhere.nets:make")[::2], "no module named 'vpb_nowhere.nets'")
    one_line_error(*bench("check-model", "vpb_nowhere:")[::2], "expected module:factory")
    with pytest.raises(UserError, match="invalid model name 'my net'"):
        registry.register_model("my net")(lambda: None)


def _pythonpath(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """The example package, installed offline into a folder of its own (a copy, so the tree stays clean)."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(root / "site"), str(root / "src")], check=True, timeout=120)
    return root / "site"


@pytest.mark.slow
def test_example_package_is_found_run_and_reported(example_site, bench_subprocess, tmp_path):
    env = _pythonpath(example_site)
    listed = bench_subprocess("list", env=env)
    assert listed.returncode == 0 and listed.stderr == ""
    assert "tinyconv           TinyConv (example)     example  [external: vpbench_example:tinyconv]" in listed.stdout
    checked = bench_subprocess("check-model", "tinyconv", "--preset", "tiny", env=env)
    assert checked.returncode == 0 and "tinyconv honours the contract" in checked.stdout
    results = tmp_path / "results"
    ran = bench_subprocess("run", "--models", "vpbench_example:tinyconv,convgru", "--dataset", "mmnist",
                           "--preset", "tiny", "--results-dir", results, env=env)
    assert ran.returncode == 0, ran.stderr
    (metrics_file,) = results.glob("mmnist/tinyconv/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["origin"] == {"kind": "external", "source": "vpbench_example:tinyconv",
                                 "package": "vpbench-example-model", "version": "0.1.0"}
    assert metrics["status"] == "finished" and metrics["params"] > 0
    reported = bench_subprocess("report", "--results-dir", results, "--out", tmp_path / "report", env=env)
    assert reported.returncode == 0, reported.stderr
    report = (tmp_path / "report" / "README.md").read_text()
    assert "TinyConv (example)" in report and "ConvGRU" in report


def test_broken_entry_points_leave_the_others_working(tmp_path, bench_subprocess):
    site = tmp_path / "site"
    info = site / "vpb_broken-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vpb-broken\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[vpbench.models]\nconvgru = vpb_clash:make\n"
                                           "gone = vpb_gone_module:make\n")
    (site / "vpb_clash.py").write_text("def make():\n    pass\n")
    env = _pythonpath(site)
    listed = bench_subprocess("list", env=env)
    assert listed.returncode == 0 and "  convgru            ConvGRU" in listed.stdout
    warnings = listed.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("vpbench: warning: skipped plug-in model") for w in warnings)
    assert "'convgru' (vpb_clash:make from vpb-broken 0.3): model name 'convgru' is already taken" in warnings[0]
    checked = bench_subprocess("check-model", "gone", "--preset", "tiny", env=env)
    assert checked.returncode == 2
    assert checked.stderr.splitlines()[-1] == (
        "bench check-model: error: plug-in model 'gone' (vpb_gone_module:make from vpb-broken 0.3): no module "
        "named 'vpb_gone_module'; install its package, add its folder to PYTHONPATH or run from the folder that "
        "holds it; fix or uninstall that package")
