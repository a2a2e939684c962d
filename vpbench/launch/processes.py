"""Child processes of the launchers: started with Slurm's warning signal ignored, stopped with a grace period."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time

STOP_GRACE = 15.0  # seconds a child has to mark its run interrupted before it is killed (bench run's grace is 20)


def ignore_usr2() -> None:
    """In a job's process (before exec): ignore Slurm's warning signal, which the launcher handles."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def stop(processes: list[subprocess.Popen], grace: float = STOP_GRACE, settle: float = 0.0) -> None:
    """SIGTERM to each process (its run marks itself interrupted), SIGKILL to those alive after ``grace``.

    ``settle``: seconds to wait first, for processes that got the same Ctrl-C from the terminal (a second
    signal could cut short the writing of their ``interrupted`` status)."""
    deadline = time.time() + settle
    while time.time() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
