"""Runs this app server starts in the background: the process registry, the name check before a start, the
starts whose process ended before making a folder, and the log a run's process writes.

The processes are ``python -m tavaal_core run`` children (``tavaal_core.experiment.launch``): they keep
running when the page reruns or the browser leaves."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from tavaal_core import store
from tavaal_core.errors import TavaalError
from tavaal_core.experiment import launch, log_path, run_command


def runs_dir() -> Path:
    """Where the runs live: ``$TAVAAL_RUNS_DIR`` (default ``runs/``), read on every render."""
    return Path(os.environ.get("TAVAAL_RUNS_DIR", "runs"))


@st.cache_resource
def processes() -> dict:
    """Runs this server started: name -> Popen (polled on every render so finished children are reaped)."""
    return {}


@st.cache_resource
def failed_starts() -> dict:
    """Runs this server started whose process ended before making their folder: name -> the log's last line."""
    return {}


def reap() -> None:
    """Forget the processes that ended; one that ended with an error before writing its folder becomes a
    failed start (its log's last line says why)."""
    root = runs_dir()
    for name, proc in list(processes().items()):
        code = proc.poll()
        if code is not None:
            processes().pop(name)
            log = log_path(root, name)
            if code != 0 and not (root / name).exists() and log.is_file():
                lines = log.read_text(errors="replace").strip().splitlines()
                failed_starts()[name] = lines[-1] if lines else f"exit code {code}"


def any_running() -> bool:
    return bool(processes())


def any_exited() -> bool:
    return any(p.poll() is not None for p in processes().values())


def check_new_name(name: str) -> None:
    """A valid run name that no folder, running process or earlier start of this session holds already."""
    store.check_run_name(name)
    launched = st.session_state.setdefault("runs_launched", set())
    if (runs_dir() / name).exists() or name in processes() or name in launched or name in failed_starts():
        raise TavaalError(f"name: a run called {name!r} exists already; choose another name")


def start(name: str, preset_name: str, spec, pretrained: str | None = None) -> None:
    """Start ``spec`` (a preset's, with the user's methods, trials and stages) as run ``name``."""
    root = runs_dir()
    cmd = run_command(output=root, name=name, preset=preset_name, methods=spec.methods, trials=spec.trials,
                      stages=spec.config.stages, threads=1, pretrained=pretrained)
    processes()[name] = launch(cmd, log_path(root, name))
    st.session_state.setdefault("runs_launched", set()).add(name)


def resume(run) -> None:
    """Resume (or repair) ``run`` in the background."""
    processes()[run.name] = launch(run_command(resume=run.path, threads=1), log_path(runs_dir(), run.name))


def log_tail(name: str, lines: int = 30) -> str | None:
    """The last ``lines`` lines of the run's process log, or None when this server never started it."""
    log = log_path(runs_dir(), name)
    if not log.is_file():
        return None
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"


def eta_text(seconds: float | None) -> str:
    """" · about 40 s left" / " · about 12 min left", or "" when unknown."""
    if not seconds:
        return ""
    return f" · about {seconds:.0f} s left" if seconds < 90 else f" · about {seconds / 60:.0f} min left"
