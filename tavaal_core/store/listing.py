"""The run list: what each run folder holds (or why it is broken), and deleting a run."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .layout import STATUS_FILE
from .files import StoreError, run_file
from .locks import effective_state, run_locked
from .records import finished_stages, stored_trials
from .runs import _spec, is_run_dir, read_status, require_run_dir


# -- listing, deleting --------------------------------------------------------------------------------
@dataclass
class RunInfo:
    """What the run list shows for one run folder. ``broken`` runs carry the error instead."""

    path: Path
    name: str
    state: str = "broken"
    broken: bool = False
    error: str = ""
    dataset: str = ""
    preset: str | None = None
    description: str = ""
    methods: list[str] = field(default_factory=list)
    trials: int = 0
    stages: int = 0
    done: int = 0
    total: int = 0
    created: str = ""
    updated: str = ""
    pid: int | None = None
    current: dict = field(default_factory=dict)
    run_seconds: float = 0.0  # wall-clock seconds the run's processes have spent so far (all sessions)
    sweep: dict = field(default_factory=dict)  # field -> values (empty: no sweep)
    settings: list = field(default_factory=list)  # every combination of the sweep's values, in order
    executor: str = ""  # how the last session ran its units: sequential | local (N workers) | ray (address)
    running: list = field(default_factory=list)  # the units in progress (parallel runs): unit, stage, phase, where

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Rough time left: seconds per finished stage so far x stages left (None before the first stage)."""
        if not self.done or not self.total or not self.run_seconds:
            return None
        return self.run_seconds / self.done * (self.total - self.done)

    def as_row(self) -> dict:
        return {"name": self.name, "state": self.state, "dataset": self.dataset,
                "methods": ", ".join(self.methods), "trials": self.trials, "stages": self.stages,
                "settings": len(self.settings) or 1,
                "progress": f"{self.done}/{self.total}", "created": self.created, "error": self.error,
                "path": str(self.path)}


def run_info(run_dir) -> RunInfo:
    """Summary of one run; raises StoreError when its config or status is unreadable."""
    run_dir = require_run_dir(run_dir)
    spec, experiment_spec = _spec(run_dir)  # checked like a new spec: known methods, bounded trials
    methods = list(experiment_spec.methods)
    stages = experiment_spec.stages
    trials = experiment_spec.trials
    status_path = run_file(run_dir, STATUS_FILE)
    settings = experiment_spec.settings
    done = 0
    for k in (range(len(settings)) if settings else [None]):
        for m in methods:
            for t in stored_trials(run_dir, m, k):  # only the trial folders that exist: cheap for any `trials`
                if t < trials:
                    done += min(finished_stages(run_dir, m, t, k), stages)
    total = max(1, len(settings)) * len(methods) * trials * stages
    error = ""
    if status_path.exists():
        try:
            status = read_status(run_dir)
        except StoreError as e:  # a report only: the lock and the records say where the run stands
            state = "running" if run_locked(run_dir) else "finished" if done == total else "interrupted"
            status, error = {"state": state}, f"{e} (resuming rewrites it)"
    else:
        status = {"state": "created"}
    state = effective_state(status, run_dir)
    if state == "running" and isinstance(status.get("done"), int):
        done = min(status["done"], total)  # the writer's count: damaged records being recomputed are not done
    return RunInfo(
        path=run_dir, name=run_dir.name, state=state, broken=False,
        error=error or str(status.get("error") or ""), dataset=experiment_spec.config.dataset,
        preset=experiment_spec.preset, description=experiment_spec.description, methods=methods, trials=trials,
        stages=stages, done=done, total=total,
        created=str(spec.get("created") or status.get("created") or ""),
        updated=str(status.get("updated") or ""), pid=status.get("pid"), current=dict(status.get("current") or {}),
        run_seconds=float(status.get("run_seconds") or 0.0), sweep={f: list(v) for f, v in experiment_spec.sweep.items()},
        settings=settings, executor=str(status.get("executor") or ""), running=list(status.get("running") or []),
    )


def list_runs(root="runs") -> list[RunInfo]:
    """Every run folder under ``root``, newest first. A run whose files are unreadable is listed with
    ``broken=True`` and the error, never raised."""
    root = Path(root)
    if not root.is_dir():
        return []
    infos = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():  # never followed (export or delete would reach outside the folder of runs)
            if is_run_dir(path):
                infos.append(RunInfo(path=path, name=path.name, state="broken", broken=True,
                                     error=f"{path}: is a symbolic link (to {path.resolve()}); not opened"))
            continue
        if not is_run_dir(path):
            continue
        try:
            infos.append(run_info(path))
        except (StoreError, OSError, ValueError, TypeError) as e:
            infos.append(RunInfo(path=path, name=path.name, state="broken", broken=True, error=str(e)))
    infos.sort(key=lambda r: (r.created or "", r.name), reverse=True)
    return infos


def delete_run(run_dir) -> None:
    """Remove a run folder (only something that looks like a run folder: a safety net against a bad path)."""
    run_dir = require_run_dir(run_dir)
    shutil.rmtree(run_dir)
