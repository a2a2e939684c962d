"""The environment a run used (versions, device, threads, git commit), and the CPU's float mode."""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vpbench


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    from vpbench.errors import UserError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None


def available_memory() -> int | None:
    """Bytes of memory this machine can give a new allocation (``MemAvailable``); None where it cannot be told."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def git_commit() -> str | None:
    """The commit of the vpbench source tree, when it is a git checkout."""
    root = Path(vpbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_name() -> str:
    """The CPU's model name and the vector extensions that change its speed (``Intel(R) Xeon(R)
    Processor, x86_64 with AVX-512, AMX``), as timings must name the CPU they were measured on."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    extensions = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_tile", "AMX"),
                                            ("asimd", "NEON"), ("sve", "SVE")) if flag in flags]
    return f"{name}, {platform.machine()}" + (f" with {', '.join(extensions)}" if extensions else "")


def describe(device: torch.device) -> dict[str, Any]:
    """A JSON-ready description of this machine and its software."""
    info: dict[str, Any] = {
        "vpbench": vpbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# -- denormal floats -------------------------------------------------------------------------------
# Recurrent states, gradients and optimiser buffers drift into denormal floats within a few training
# steps. Many CPUs compute on them at a fraction of their speed (Intel with AVX-512/AMX: ~100x, so a
# training step grows from 0.7 s to 16 s in 8 steps). Flushing them to zero (FTZ/DAZ) changes values
# only below 1.2e-38. torch.set_flush_denormal sets the calling thread only; torch's OpenMP workers
# inherit the mode when they are created after it, and are set one by one when they already exist.
_PROBE = 1 << 18  # elements: enough for torch to split an element-wise op over every thread


def _pool_flushes() -> bool:
    """Whether every torch CPU thread flushes denormals: the smallest denormal (bit pattern 1, made
    without float arithmetic) times 1.5 gives 0 on every thread."""
    tiniest = torch.ones(_PROBE, dtype=torch.int32).view(torch.float32)
    return not bool(tiniest.mul(1.5).count_nonzero())


def _openmp_library() -> ctypes.CDLL | None:
    """The GNU OpenMP runtime torch runs on (Linux), if it is loaded."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "libgomp" in line and line.rstrip().endswith(".so.1"):
                    return ctypes.CDLL(line.split()[-1])
    except OSError:
        pass
    return None


_EACH_THREAD = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@_EACH_THREAD
def _flush_this_thread(_: int | None) -> None:
    torch.set_flush_denormal(True)


def flush_denormals() -> bool:
    """Flush denormal floats to zero on every torch CPU thread of this process (FTZ and DAZ).

    Returns False where the CPU has no such mode (it is then left as it is). Idempotent and cheap
    (one probe of ~1 MB), so every entry point that computes calls it."""
    if not torch.set_flush_denormal(True):
        return False
    if torch.get_num_threads() > 1 and not _pool_flushes():
        gomp = _openmp_library()
        if gomp is not None:  # run the setter once on each thread of torch's OpenMP team
            gomp.GOMP_parallel.argtypes = [_EACH_THREAD, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            gomp.GOMP_parallel(_flush_this_thread, None, torch.get_num_threads(), 0)
        if not _pool_flushes():
            warnings.warn("torch's worker threads still compute on denormal floats, which can make training "
                          "steps 100x slower on this CPU; set OMP_NUM_THREADS=1 if steps slow down", stacklevel=2)
    return True


def flush_denormals_in_worker(_: int) -> None:
    """``worker_init_fn`` for DataLoader workers."""
    flush_denormals()
