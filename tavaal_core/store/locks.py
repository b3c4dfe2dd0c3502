"""One writer per run: the writer lock, and whether the process a status names is still alive."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from .files import StoreError, run_file


class RunBusy(StoreError):
    """Another live process holds the run's writer lock."""


LOCK_FILE = ".lock"


def lock_run(run_dir, wait_s: float = 2.0):
    """Take the run's writer lock (an exclusive ``flock`` on ``<run>/.lock``, released by the OS when the
    process ends, even by SIGKILL). Returns the open lock file: close it to release. Raises StoreError
    when another process holds it. A no-op lock where ``fcntl`` is missing."""
    import time

    handle = open(run_file(run_dir, LOCK_FILE), "a+b")
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        return handle
    deadline = time.monotonic() + wait_s  # tolerate a reader's brief probe (see run_locked)
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise RunBusy(f"{run_dir}: another process is running this run; stop it before resuming") from None
            time.sleep(0.05)


def run_locked(run_dir) -> bool | None:
    """Whether a live process holds the run's writer lock (False when there is no lock file: nothing
    ever ran it, or only a process from before locks existed); None where locks are unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return None


def process_alive(pid: int | None, host: str | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process on this machine. ``None`` when unknowable is False."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True  # another machine's process: we cannot tell, assume it is alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError, OverflowError):
        return False
    stat = Path(f"/proc/{int(pid)}/stat")
    if stat.exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return False
        except (OSError, IndexError):
            pass
    return True


def effective_state(status: dict, run_dir=None) -> str:
    """The state to show: a run whose status says ``running`` but whose process is gone was killed. The
    run's writer lock is the truth (every writer takes it before it writes ``running``; the OS drops it
    when the process dies, and a pid can be reused by an unrelated process); the pid is asked only
    where locks do not exist."""
    state = status.get("state", "created")
    if state not in ("running", "created") or not status.get("pid"):
        return state
    locked = run_locked(run_dir) if run_dir is not None else None
    if locked is None:
        locked = process_alive(status.get("pid"), status.get("host"))
    return state if locked else "interrupted"
