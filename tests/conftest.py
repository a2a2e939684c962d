"""Shared fixtures: small data specs, a CLI runner, a tiny results folder and fresh reference imports."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

from vpbench.cli import main
from vpbench.datasets import DataSpec

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models: faster, and immune to other processes on the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mmnist_spec() -> DataSpec:
    """Moving MNIST shapes with short sequences: 3 frames in, 2 out."""
    return DataSpec("mmnist", 3, 2, 1, 64, 64)


@pytest.fixture
def bench(capsys):
    """Run ``bench`` in-process: returns (exit code, stdout, stderr)."""

    def call(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def bench_subprocess():
    """Run ``python -m vpbench.cli`` in a child process: returns the CompletedProcess."""

    def call(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vpbench.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, **kwargs)

    return call


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory) -> Path:
    """A results folder with tiny runs of convgru and persistence on mmnist (seed 0)."""
    results = tmp_path_factory.mktemp("results")
    code = main(["run", "--models", "convgru,persistence", "--dataset", "mmnist", "--preset", "tiny",
                 "--results-dir", str(results)])
    assert code == 0
    return results


@pytest.fixture
def own_results(tiny_results, tmp_path) -> Path:
    """A private copy of ``tiny_results`` for a test that adds runs to it."""
    return Path(shutil.copytree(tiny_results, tmp_path / "results"))


@pytest.fixture
def fresh_imports() -> Iterator[None]:
    """OpenSTL's files (and the timm and torchvision stand-ins) imported afresh for the test, and unloaded after it."""
    def loaded() -> set[str]:
        names = ("openstl", "timm", "torchvision")
        return {m for m in sys.modules if m in names or m.startswith(tuple(f"{n}." for n in names))}

    saved = {m: sys.modules.pop(m) for m in loaded()}
    yield
    for m in loaded():
        del sys.modules[m]
    sys.modules.update(saved)
