"""The parallel numba kernels under threads and fork, which numba's threading layers do not all survive."""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, threading
    import numpy as np, torch
    from vpbench.metrics.frames import frame_metrics
    from vpbench.datasets.mnist_digits import embedded_digits
    from vpbench.datasets.moving_mnist import generate

    pool = embedded_digits()[0]
    frames = torch.from_numpy(generate(np.random.default_rng(0), pool, 16, 20))

    def work():
        for _ in range(30):
            frame_metrics(frames, frames.flip(1))
            generate(np.random.default_rng(1), pool, 16, 20)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    pid = os.fork()  # a child of a process whose kernels have run, as a DataLoader worker
    if pid == 0:
        torch.set_num_threads(1)  # as DataLoader workers do: torch's own OpenMP is not fork-safe
        work()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    print("ok")
""")


def test_kernels_survive_concurrent_threads_and_fork():
    # A separate process: the failure these guard against is an abort of the whole process.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
