"""One process at a time per run folder: ``lock.json`` (pid, host, since) held with ``flock``, and a
``heartbeat`` file touched while the lock is held.

The kernel releases an ``flock`` when its process ends, however it ends, so a lock left by a killed process is
free for the next one to take over. Where the file system has no ``flock`` (some cluster file systems), the
recorded holder decides: a lock of a process that is gone from this host, or whose heartbeat is older than
:data:`STALE_SECONDS` on another host, is stale and taken over. ``bench status`` reads the same files to tell a
running run from one whose process is gone (:func:`holder_alive`).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from vpbench.errors import UserError

LOCK, HEARTBEAT = "lock.json", "heartbeat"
HEARTBEAT_SECONDS = 30.0  # how often the heartbeat file is touched while a run holds its folder
STALE_SECONDS = 10 * HEARTBEAT_SECONDS  # a heartbeat older than this: its process is gone (seen from another host)
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def pid_alive(pid: Any) -> bool | None:
    """Whether process ``pid`` of this machine is alive (a zombie is not); None when that cannot be told."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_holder(folder: Path) -> dict[str, Any] | None:
    """The recorded holder of ``folder``'s lock (pid, host, since), None when there is none or it is unreadable."""
    try:
        holder = json.loads((folder / LOCK).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and holder.get("pid") else None


def heartbeat_age(folder: Path, now: float | None = None) -> float | None:
    """Seconds since the heartbeat file was last touched (None without one)."""
    try:
        touched = (folder / HEARTBEAT).stat().st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - touched


def holder_alive(folder: Path, now: float | None = None) -> bool | None:
    """Whether the process recorded in ``folder``'s lock is alive: its pid on this host, its heartbeat from
    another; None when the folder records no holder (a run written before locks, or one that has released it)."""
    holder = read_holder(folder)
    if holder is None:
        return None
    if holder.get("host") == socket.gethostname():
        return pid_alive(holder["pid"])
    age = heartbeat_age(folder, now)
    return None if age is None else age < STALE_SECONDS


def describe(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host node1 since 2026-12-07T12:00:00``."""
    if holder is None:
        return "another process"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}"


class RunLock:
    """The lock of one run folder, held from :meth:`acquire` to :meth:`release` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._file: Any = None
        self._stop = threading.Event()

    def acquire(self) -> "RunLock":
        """Take the folder, or a one-line :class:`UserError` naming the process that holds it."""
        handle = open(self.folder / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(f"{self.folder} is in use by {describe(read_holder(self.folder))}; wait for it to "
                            "finish, or stop that process and resume") from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                handle.close()
                raise
            self._refuse_live_holder()
        self._file = handle
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        handle.flush()
        self._beat()
        threading.Thread(target=self._keep_beating, daemon=True, name=f"heartbeat {self.folder.name}").start()
        return self

    def _refuse_live_holder(self) -> None:
        """Without ``flock``: refuse a holder that is alive (and not this process)."""
        holder = read_holder(self.folder)
        if holder is not None and holder_alive(self.folder) and \
                (holder.get("pid"), holder.get("host")) != (os.getpid(), socket.gethostname()):
            raise UserError(f"{self.folder} is in use by {describe(holder)}; wait for it to finish, or stop that "
                            "process and resume")

    def _beat(self) -> None:
        with contextlib.suppress(OSError):
            (self.folder / HEARTBEAT).touch()

    def _keep_beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._beat()

    def release(self) -> None:
        """Give the folder up: the holder record is removed, then the lock."""
        self._stop.set()
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
        self._file.close()  # closing the file releases the flock
        self._file = None


@contextlib.contextmanager
def holding(folder: Path) -> Iterator[RunLock]:
    """``folder``'s lock for the duration of the block."""
    lock = RunLock(folder).acquire()
    try:
        yield lock
    finally:
        lock.release()
