"""Perceptual metrics: LPIPS against the published formula written out with torch ops, the Frechet
distance against closed forms, and FVD's whole path with a tiny TorchScript feature extractor.
No network: backbones are randomly initialised state_dicts with torchvision's key names."""
from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.metrics import perceptual
from vpbench.metrics.perceptual import (
    FVD,
    LPIPS,
    PerceptualMetrics,
    find_lpips_backbone,
    find_lpips_calibration,
    frechet_distance,
    fvd_from_features,
    gaussian_stats,
    load_i3d,
    metrics_config,
    prepare_clips,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # the fake I3D is TorchScript

# torchvision's key names and shapes: features.<index>.weight [out, in, k, k]
ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG_BLOCKS = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
VGG_WIDTHS = [64, 128, 256, 512, 512]
ALEX_TAPS = [64, 192, 384, 256, 256]
SHIFT = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)


def _conv(gen: torch.Generator, out: int, inp: int, k: int) -> tuple[Tensor, Tensor]:
    weight = torch.randn(out, inp, k, k, generator=gen) * math.sqrt(2.0 / (inp * k * k))
    return weight, 0.1 * torch.randn(out, generator=gen)


def alex_state(seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (out, inp, k) in ALEX_CONVS.items():
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = _conv(gen, out, inp, k)
    state["classifier.1.weight"] = torch.randn(8, 4, generator=gen)  # a full model's other keys are ignored
    return state


def vgg_state(seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state, inp = {}, 3
    for block, width in zip(VGG_BLOCKS, VGG_WIDTHS):
        for i in block:
            state[f"features.{i}.weight"], state[f"features.{i}.bias"] = _conv(gen, width, inp, 3)
            inp = width
    return state


def calibration(widths: list[int], seed: int = 1) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, w, 1, 1, generator=gen) for k, w in enumerate(widths)}


@pytest.fixture(scope="module")
def alex_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alex")
    torch.save(alex_state(), folder / "alexnet.pth")
    torch.save(calibration(ALEX_TAPS), folder / "alex_lin.pth")
    return folder / "alexnet.pth", folder / "alex_lin.pth"


def reference_features(net: str, state: dict[str, Tensor], frames: Tensor) -> list[Tensor]:
    """The five tapped ReLU outputs, written out layer by layer in float64."""
    x = frames.double() / 127.5 - 1
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    h = (x - SHIFT) / SCALE
    w = {k: v.double() for k, v in state.items()}
    taps = []
    if net == "alex":
        h = F.relu(F.conv2d(h, w["features.0.weight"], w["features.0.bias"], stride=4, padding=2))
        taps.append(h)
        h = F.relu(F.conv2d(F.max_pool2d(h, 3, 2), w["features.3.weight"], w["features.3.bias"], padding=2))
        taps.append(h)
        h = F.relu(F.conv2d(F.max_pool2d(h, 3, 2), w["features.6.weight"], w["features.6.bias"], padding=1))
        taps.append(h)
        h = F.relu(F.conv2d(h, w["features.8.weight"], w["features.8.bias"], padding=1))
        taps.append(h)
        h = F.relu(F.conv2d(h, w["features.10.weight"], w["features.10.bias"], padding=1))
        taps.append(h)
    else:
        for b, block in enumerate(VGG_BLOCKS):
            if b:
                h = F.max_pool2d(h, 2, 2)
            for i in block:
                h = F.relu(F.conv2d(h, w[f"features.{i}.weight"], w[f"features.{i}.bias"], padding=1))
            taps.append(h)
    return taps


def reference_lpips(net: str, state: dict[str, Tensor], lins: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """LPIPS as published: per layer, unit-normalise over channels, squared difference, calibration
    weights, spatial mean; sum over the layers."""
    total = torch.zeros(len(x), dtype=torch.float64)
    for k, (fx, fy) in enumerate(zip(reference_features(net, state, x), reference_features(net, state, y))):
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        weight = lins[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((nx - ny).pow(2) * weight).sum(1).mean(dim=(1, 2))
    return total


def frame_pair(n: int, c: int, size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Smooth structured frames and a noisy, shifted copy (uint8 [n, c, size, size])."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, size // 8, size // 8, generator=gen)
    target = (F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)
    noise = torch.randn(target.shape, generator=gen) * 25
    pred = (target.roll(2, -1).float() + noise).clamp(0, 255).round().to(torch.uint8)
    return pred, target


# --------------------------------------------------------------------------------------------------- LPIPS

def test_alexnet_lpips_equals_the_published_formula(alex_files):
    backbone, lins = alex_files
    pred, target = frame_pair(5, 3, 48)
    expected = reference_lpips("alex", alex_state(), calibration(ALEX_TAPS), pred, target)
    assert expected.min() > 1e-3  # far from 0: the comparison means something
    model = LPIPS("alex", backbone, lins)
    got = model.score(pred, target, batch_size=4)
    assert got.dtype == torch.float64 and got.shape == (5,)
    assert torch.allclose(got, expected, rtol=0, atol=1e-6)  # float32, as lpips computes
    exact = LPIPS("alex", backbone, lins).double().score(pred, target)
    assert torch.allclose(exact, expected, rtol=0, atol=1e-10)
    assert torch.equal(model.score(pred, pred), torch.zeros(5, dtype=torch.float64))


def test_vgg_lpips_equals_the_published_formula():
    state, lins = vgg_state(), calibration(VGG_WIDTHS)  # mappings: loading from files is the same for both nets
    pred, target = frame_pair(2, 3, 16, seed=1)  # VGG16's smallest frames: float64 convolutions are slow
    expected = reference_lpips("vgg", state, lins, pred, target)
    model = LPIPS("vgg", state, lins).double()
    assert torch.allclose(model.score(pred, target), expected, rtol=0, atol=1e-10)
    assert expected.min() > 1e-3


def test_grayscale_frames_are_repeated_to_three_channels(alex_files):
    backbone, lins = alex_files
    pred, target = frame_pair(4, 1, 48, seed=2)
    model = LPIPS("alex", backbone, lins).double()
    gray = model.score(pred, target)
    assert torch.equal(gray, model.score(pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)))
    assert torch.allclose(gray, reference_lpips("alex", alex_state(), calibration(ALEX_TAPS), pred, target),
                          rtol=0, atol=1e-10)


def test_swap_rb_scores_the_frames_in_bgr_order(alex_files):
    backbone, lins = alex_files
    pred, target = frame_pair(3, 3, 40, seed=3)
    bgr = LPIPS("alex", backbone, lins, swap_rb=True).double().score(pred, target)
    rgb = LPIPS("alex", backbone, lins).double()
    assert torch.equal(bgr, rgb.score(pred.flip(1), target.flip(1)))
    assert not torch.allclose(bgr, rgb.score(pred, target))


def test_lpips_input_checks(alex_files):
    model = LPIPS("alex", *alex_files)
    pred, target = frame_pair(2, 3, 31)
    assert model.score(pred, target).shape == (2,)  # AlexNet's smallest frame
    with pytest.raises(ValueError, match="at least 31x31"):
        model.score(pred[..., :30, :30], target[..., :30, :30])
    with pytest.raises(TypeError):
        model.score(pred.float(), target.float())
    with pytest.raises(ValueError):
        model.score(pred[:, :2], target[:, :2])


def _one_line_user_error(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(UserError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_lpips_weight_files_are_one_line_errors(tmp_path, alex_files):
    _, lins = alex_files
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    torch.save(model, tmp_path / "pickled_model.pth")  # a whole pickled model, not a state_dict
    message = _one_line_user_error("not a state_dict", LPIPS, "alex", tmp_path / "pickled_model.pth", lins)
    assert "torch.save(model.state_dict(), FILE)" in message
    (tmp_path / "text.pth").write_text("not weights")
    _one_line_user_error("not a state_dict", LPIPS, "alex", tmp_path / "text.pth", lins)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    _one_line_user_error("not a state_dict", LPIPS, "alex", tmp_path / "list.pth", lins)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "vggish.pth")
    _one_line_user_error("lacks features.0.bias", LPIPS, "alex", tmp_path / "vggish.pth", lins)
    wrong = alex_state()
    wrong["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    _one_line_user_error("features.3.weight has shape", LPIPS, "alex", wrong, lins)
    _one_line_user_error("no file", LPIPS, "alex", tmp_path / "missing.pth", lins)
    _one_line_user_error("lin1.model.1.weight of shape", LPIPS, "alex", alex_state(), calibration(VGG_WIDTHS))
    _one_line_user_error("choose from alex, vgg", LPIPS, "squeeze", alex_state(), lins)


def test_backbone_comes_from_the_given_file_else_torchvisions_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    found, reason = find_lpips_backbone("alex")
    assert found is None and "\n" not in reason
    assert "--set metrics.lpips_weights=FILE" in reason and "alexnet-owt-7be5be79.pth" in reason
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert find_lpips_backbone("vgg") == (cached, "")
    given = tmp_path / "mine.pth"
    given.write_bytes(b"")
    assert find_lpips_backbone("vgg", str(given)) == (given, "")
    with pytest.raises(UserError, match="no such file"):
        find_lpips_backbone("alex", tmp_path / "absent.pth")


def test_calibration_weights_come_from_the_lpips_distribution_without_importing_it():
    sys.modules.pop("lpips", None)
    path = find_lpips_calibration("alex")
    if path is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")
    assert "lpips" not in sys.modules
    assert path.as_posix().endswith("lpips/weights/v0.1/alex.pth")
    for net, widths in (("alex", ALEX_TAPS), ("vgg", VGG_WIDTHS)):
        state = torch.load(find_lpips_calibration(net), map_location="cpu", weights_only=True)
        assert [tuple(state[f"lin{k}.model.1.weight"].shape) for k in range(5)] == [(1, w, 1, 1) for w in widths]
    model = LPIPS("alex", alex_state())  # the shipped calibration by default
    assert model.lin0.min() >= 0 and model.lin4.shape == (1, 256, 1, 1)


def _torchvision_stand_in() -> types.ModuleType:
    """What lpips' ``pretrained_networks`` takes from torchvision: ``models.alexnet/vgg16(pretrained=...)``
    with a ``features`` Sequential in torchvision's layout (random weights; never downloaded)."""
    def alexnet(pretrained: bool = False) -> nn.Module:
        assert not pretrained
        layers = []
        for i, (out, inp, k) in ALEX_CONVS.items():
            layers += [nn.Conv2d(inp, out, k, stride=4 if i == 0 else 1, padding={11: 2, 5: 2, 3: 1}[k]), nn.ReLU(True)]
            if i in (0, 3, 10):
                layers.append(nn.MaxPool2d(3, 2))
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    def vgg16(pretrained: bool = False) -> nn.Module:
        assert not pretrained
        layers, inp = [], 3
        for block, width in zip(VGG_BLOCKS, VGG_WIDTHS):
            for _ in block:
                layers += [nn.Conv2d(inp, width, 3, padding=1), nn.ReLU(True)]
                inp = width
            layers.append(nn.MaxPool2d(2, 2))
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(alexnet=alexnet, vgg16=vgg16)
    return module


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_with_its_shipped_calibration(net, monkeypatch):
    """The lpips package itself (its networks loaded with the same backbone weights) gives the same values."""
    if find_lpips_calibration(net) is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")

    def lpips_modules() -> list[str]:
        return [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]

    saved = {m: sys.modules.pop(m) for m in lpips_modules()}
    monkeypatch.setitem(sys.modules, "torchvision", _torchvision_stand_in())
    try:
        import lpips  # imported with the stand-in, and dropped again below

        reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    finally:
        for m in lpips_modules():
            del sys.modules[m]
        sys.modules.update(saved)
    state = alex_state() if net == "alex" else vgg_state()
    for name, param in reference.net.named_parameters():  # slice<k>.<index>.<weight|bias> -> features.<index>.*
        param.data.copy_(state["features." + name.split(".", 1)[1]])
    size = 48 if net == "alex" else 32
    pred, target = frame_pair(3, 3, size, seed=4)
    with torch.no_grad():
        expected = reference(pred.float() / 127.5 - 1, target.float() / 127.5 - 1).flatten().double()
        gray_expected = reference(pred[:, :1].float() / 127.5 - 1, target[:, :1].float() / 127.5 - 1).flatten()
    ours = LPIPS(net, state)
    assert torch.allclose(ours.score(pred, target), expected, rtol=0, atol=1e-6)
    assert torch.allclose(ours.score(pred[:, :1], target[:, :1]), gray_expected.double(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------- Frechet

def test_frechet_distance_of_known_gaussians_from_their_moments():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-12)
    assert frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0, abs=1e-12)


def samples_with_moments(rng: np.random.Generator, n: int, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n samples whose sample mean and sample covariance (N - 1) are exactly mu and cov."""
    x = rng.normal(size=(n, len(mu)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)  # sample covariance: identity
    return x @ np.linalg.cholesky(cov).T + mu


def test_fvd_from_features_with_exact_moments_equals_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.2, 2, 5), rng.uniform(0.2, 2, 5)
    a = samples_with_moments(rng, 40, mu1, np.diag(s1))
    b = samples_with_moments(rng, 30, mu2, np.diag(s2))
    mean, cov = gaussian_stats(a)
    assert np.allclose(mean, mu1, atol=1e-12) and np.allclose(cov, np.diag(s1), atol=1e-12)
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert fvd_from_features(a, b) == pytest.approx(closed, rel=1e-10)


def test_frechet_distance_equals_the_sqrtm_formula_and_is_stable_with_few_clips():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 12)), rng.normal(size=(150, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    (m1, s1), (m2, s2) = gaussian_stats(a), gaussian_stats(b)
    root = scipy.linalg.sqrtm(s1 @ s2).real  # StyleGAN-V's and PredBench's formula
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    few_a, few_b = rng.normal(size=(5, 40)), rng.normal(size=(6, 40)) + 0.1  # rank-deficient covariances
    d = fvd_from_features(few_a, few_b)
    assert np.isfinite(d) and d > 0 and d == pytest.approx(fvd_from_features(few_b, few_a), rel=1e-9)
    assert fvd_from_features(few_a, few_a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 clips"):
        gaussian_stats(few_a[:1])


# --------------------------------------------------------------------------------------------------- FVD

class FakeI3D(nn.Module):
    """The TorchScript I3D's calling convention with a tiny feature map; it checks what it is given."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 5)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        assert x.shape[1] == 3 and x.shape[2] >= 10 and x.shape[3] == 224 and x.shape[4] == 224
        assert not rescale and not resize and return_features
        assert bool(x.min() >= -1.0) and bool(x.max() <= 1.0)
        m = x.mean(dim=(3, 4))  # [B, 3, T]
        return self.proj(torch.cat([m[:, :, :4].mean(2), m.std(2)], dim=1))


@pytest.fixture(scope="module")
def fake_i3d(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.script(FakeI3D()).save(str(path))
    return path


def clips(n: int, t: int, c: int, size: int, seed: int, offset: float = 0.0) -> Tensor:
    """8-bit clips [n, t, c, size, size] whose brightness varies per clip and frame."""
    gen = torch.Generator().manual_seed(seed)
    level = torch.rand(n, 1, c, 1, 1, generator=gen) * 150 + offset + torch.linspace(0, 30, t).view(1, t, 1, 1, 1)
    noise = torch.randn(n, t, c, size, size, generator=gen) * 20
    return (level + noise).clamp(0, 255).round().to(torch.uint8)


def reference_i3d_input(video: Tensor) -> Tensor:
    """PredBench's preparation, step by step: [-1, 1], bilinear 224x224, gray -> RGB, zero-pad to 10 frames."""
    n, t, c, h, w = video.shape
    x = video.double() / 255 * 2 - 1
    x = F.interpolate(x.reshape(n * t, c, h, w), size=(224, 224), mode="bilinear", align_corners=False)
    x = x.reshape(n, t, c, 224, 224).permute(0, 2, 1, 3, 4)
    if t < 10:
        x = torch.cat([x, torch.zeros(n, c, 10 - t, 224, 224, dtype=x.dtype)], dim=2)
    return x.repeat(1, 3 // c, 1, 1, 1)


def test_prepare_clips_resizes_repeats_and_pads():
    video = clips(2, 4, 1, 16, seed=0)
    x = prepare_clips(video)
    assert x.shape == (2, 3, 10, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x.double(), reference_i3d_input(video), atol=1e-6)
    assert torch.equal(x[:, :, 4:], torch.zeros(2, 3, 6, 224, 224))
    long = clips(1, 12, 3, 224, seed=1)
    assert prepare_clips(long).shape == (1, 3, 12, 224, 224)


def test_fvd_whole_path_with_a_torchscript_extractor(fake_i3d):
    real = clips(12, 4, 1, 16, seed=1)  # Human3.6M-like length, grayscale, small frames
    fake = clips(10, 4, 1, 16, seed=2, offset=40)
    fvd = FVD(fake_i3d, batch_size=7)
    got = fvd(fake, real)
    detector = torch.jit.load(str(fake_i3d))
    with torch.no_grad():
        f_fake = detector(reference_i3d_input(fake).float(), False, False, True).double().numpy()
        f_real = detector(reference_i3d_input(real).float(), False, False, True).double().numpy()
    m1, s1 = f_fake.mean(0), np.cov(f_fake, rowvar=False)
    m2, s2 = f_real.mean(0), np.cov(f_real, rowvar=False)
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > 0.01
    assert fvd(real, real) == pytest.approx(0, abs=1e-6)


def test_perceptual_metrics_batches_add_up_to_the_run_values(fake_i3d, alex_files, monkeypatch):
    backbone, lins = alex_files
    monkeypatch.setattr(perceptual, "find_lpips_calibration", lambda net: lins)
    inputs = clips(8, 3, 3, 32, seed=3)
    targets, pred = clips(8, 2, 3, 32, seed=4), clips(8, 2, 3, 32, seed=5, offset=20)
    metrics = PerceptualMetrics({"lpips_weights": str(backbone), "fvd_weights": str(fake_i3d),
                                 "fvd_context": True})
    assert metrics.columns == ("lpips",) and metrics.notes == []
    columns = np.concatenate([metrics.update(inputs[s:s + 3], targets[s:s + 3], pred[s:s + 3])
                              for s in range(0, 8, 3)])
    assert columns.shape == (8, 2, 1)
    lpips = LPIPS("alex", backbone, lins).score(pred.flatten(0, 1), targets.flatten(0, 1)).view(8, 2)
    assert np.allclose(columns[..., 0], lpips.numpy(), rtol=1e-6, atol=1e-7)
    summary = metrics.summary()
    # features in the batches update() saw: the CPU's convolution kernels can depend on the batch size
    expected = FVD(fake_i3d, batch_size=3)(torch.cat([inputs, pred], 1), torch.cat([inputs, targets], 1))
    assert summary["fvd"] == pytest.approx(expected, rel=1e-9)
    fvd = summary["perceptual"]["fvd"]
    assert fvd["clips"] == 8 and fvd["clip_frames"] == 5 and fvd["padded_to"] == 10
    assert fvd["frames"] == "inputs + predictions" and fvd["sha256"] == perceptual.file_digest(fake_i3d)
    assert summary["perceptual"]["lpips"]["backbone"]["sha256"] == perceptual.file_digest(backbone)
    assert summary["perceptual"]["lpips"]["net"] == "alex"
    assert [n.split(":")[0] for n in summary["perceptual"]["notes"]] == ["FVD from 8 clips (fewer than 256)"]
    assert metrics.summary() == summary  # summary() can be asked twice
    bgr = PerceptualMetrics({"lpips_weights": str(backbone), "lpips_bgr": True})
    assert bgr.lpips.swap_rb and bgr.summary()["perceptual"]["lpips"]["channels"] == "bgr"


def test_fvd_of_a_stochastic_evaluation_is_over_every_future(fake_i3d):
    from vpbench.datasets import DataSpec
    from vpbench.harness.evaluate import evaluate

    class Noisy(nn.Module):  # a stochastic toy: the last frame plus fresh noise
        def forward(self, frames: Tensor, horizon: int) -> Tensor:
            return (frames[:, -1:].repeat(1, horizon, 1, 1, 1) + 0.1 * torch.randn(len(frames), horizon,
                                                                                  *frames.shape[2:])).clamp(0, 1)

    sequences = clips(5, 4, 1, 16, seed=6).numpy()
    spec = DataSpec(name="toy", input_frames=2, output_frames=2, channels=1, height=16, width=16)
    metrics = PerceptualMetrics({"fvd_weights": str(fake_i3d)})
    result = evaluate(Noisy(), sequences, spec, device=torch.device("cpu"), batch_size=3, perceptual=metrics,
                      draws=3, seed=0)
    summary = result.summary()
    assert summary["perceptual"]["fvd"]["clips"] == 15 and summary["fvd"] > 0  # 5 sequences x 3 futures


def test_missing_weights_give_one_line_notes_and_no_values(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metrics = PerceptualMetrics({"lpips": True, "fvd": True})
    assert metrics.columns == ()
    assert len(metrics.notes) == 2 and all("\n" not in n for n in metrics.notes)
    assert "metrics.lpips_weights" in metrics.notes[0] and "metrics.fvd_weights" in metrics.notes[1]
    out = metrics.update(clips(2, 2, 1, 32, 0), clips(2, 2, 1, 32, 1), clips(2, 2, 1, 32, 2))
    assert out.shape == (2, 2, 0)
    assert metrics.summary() == {"fvd": None, "perceptual": {"notes": metrics.notes}}
    assert PerceptualMetrics(None).summary() == {} and PerceptualMetrics(None).notes == []


def test_bad_fvd_weight_files_are_one_line_errors(tmp_path, fake_i3d):
    torch.save({"w": torch.zeros(2)}, tmp_path / "state.pt")
    _one_line_user_error("not a TorchScript file", load_i3d, tmp_path / "state.pt")
    _one_line_user_error("no such file", load_i3d, tmp_path / "absent.pt")

    class Plain(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.mean(dim=(1, 2, 3, 4)).unsqueeze(1)

    torch.jit.script(Plain()).save(str(tmp_path / "plain.pt"))
    _one_line_user_error("its forward takes \\(x\\)", load_i3d, tmp_path / "plain.pt")
    assert isinstance(load_i3d(fake_i3d), torch.jit.ScriptModule)


def test_metrics_config_checks_its_keys():
    assert metrics_config(None) == perceptual.METRIC_DEFAULTS
    assert metrics_config({"lpips_weights": "a.pth"})["lpips"] is True
    assert metrics_config({"fvd_weights": "i3d.pt"})["fvd"] is True
    with pytest.raises(UserError, match="unknown metrics option metrics.fid"):
        metrics_config({"fid": True})
    with pytest.raises(UserError, match="metrics.lpips_net='squeeze'"):
        metrics_config({"lpips_net": "squeeze"})
