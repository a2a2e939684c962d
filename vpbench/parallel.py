"""Calling vpbench's parallel numba kernels (metrics, Moving MNIST) safely.

DataLoader workers fork the process, and GNU OpenMP (numba's usual threading layer on Linux) aborts
a forked child that runs a parallel kernel. So vpbench asks for numba's "forksafe" layer (TBB if a
compatible one is installed, else numba's own work queue) unless NUMBA_THREADING_LAYER says otherwise.
The work queue in turn aborts the process when two threads launch kernels at once, so every call
goes through :func:`run`, one at a time per process.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"

_lock = threading.Lock()


def _new_lock_in_child() -> None:
    """A forked child starts with a free lock, even if another thread of the parent held it."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def run(kernel: Callable[..., Any], *args: Any) -> Any:
    """kernel(*args), never concurrently with another kernel of this process."""
    with _lock:
        return kernel(*args)
