"""Multi-trial comparisons (Godwin et al. 2022's Algorithm 1; TA-VAAL's Figures 3, 4 and 6), resumable.

An experiment is a base config + methods + trials. Trial ``t`` runs every method with the seed
``config.seed + t``, so all methods of a trial start from the same initial labels and the same model
initialisations (the engine derives every random draw from (seed, stage, purpose)). Each (trial, method)
is one :class:`~tavaal_core.ActiveLearner` run stage by stage; after each stage its record is written
atomically into the run folder (see :mod:`tavaal_core.store`).

Resume: every stored record is read and verified (checksums, see :mod:`tavaal_core.store`); a
(trial, method) whose records are all intact is skipped; otherwise a fresh learner *replays* the intact
stages (their picks are added to its pool, nothing is recomputed) and computes the missing or damaged
ones. Because the engine's randomness depends only on (seed, stage, purpose) and the labeled pool, the
computed stages equal those of an uninterrupted run, so a damaged record is repaired by recomputing it;
each repair is reported (a ``"repair"`` progress event, and ``repaired`` in ``status.json``).

>>> spec = ExperimentSpec(ExperimentConfig(dataset="moons", stages=3), methods=("random", "lloss"), trials=2)
>>> run = Experiment.create(spec, "runs")          # doctest: +SKIP
>>> run.run()                                      # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import store
from .config import MAX_SEED, ExperimentConfig
from .engine import ActiveLearner
from .errors import ConfigError, TavaalError
from .records import StageRecord
from .store import StoreError
from .strategies import available_methods, get_strategy

MAX_TRIALS = 1000
# Least time between two status.json writes for phase progress (stage starts and ends are always written).
STATUS_INTERVAL_S = float(os.environ.get("TAVAAL_STATUS_INTERVAL", "1.0"))


# -- the spec ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentSpec:
    """What to run: a base config (its ``method`` is ignored), the methods to compare, the trials.

    Trial ``t`` uses ``config.seed + t`` for every method."""

    config: ExperimentConfig
    methods: tuple[str, ...]
    trials: int = 1
    preset: str | None = None
    description: str = ""
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        methods = self.methods
        if isinstance(methods, str):
            methods = tuple(m.strip() for m in methods.split(",") if m.strip())
        object.__setattr__(self, "methods", tuple(methods))
        if self.notes is not None and not isinstance(self.notes, dict):
            raise ConfigError("notes", f"must map a field name to the source of its value, got {self.notes!r}")
        object.__setattr__(self, "notes", dict(self.notes or {}))
        validate_methods(self.methods)
        validate_trials(self.trials)
        if not isinstance(self.config, ExperimentConfig):
            raise ConfigError("config", f"must be an ExperimentConfig, got {type(self.config).__name__}")
        if self.config.seed + self.trials - 1 > MAX_SEED:  # trial t runs seed + t
            raise ConfigError("seed", f"seed + trials - 1 must be <= {MAX_SEED} (seeds are 32-bit), got "
                                      f"{self.config.seed} + {self.trials} - 1")
        if self.preset is not None and (not isinstance(self.preset, str) or not store._NAME_RE.match(self.preset)):
            # the preset's name starts the run folder's name
            raise ConfigError("preset", f"must be a preset name (letters, digits, '.', '_', '-'), got {self.preset!r}")
        if not isinstance(self.description, str):
            raise ConfigError("description", f"must be text, got {self.description!r}")
        if self.config.method != self.methods[0]:
            object.__setattr__(self, "config", self.config.with_(method=self.methods[0]))

    def trial_seed(self, trial: int) -> int:
        return self.config.seed + int(trial)

    def trial_config(self, trial: int, method: str) -> ExperimentConfig:
        return self.config.with_(method=method, seed=self.trial_seed(trial))

    @property
    def stages(self) -> int:
        return self.config.stages

    @property
    def total_stages(self) -> int:
        return len(self.methods) * self.trials * self.config.stages

    def with_(self, *, methods=None, trials=None, **config_changes) -> "ExperimentSpec":
        """A copy with other methods / trials and config fields changed (e.g. ``stages=3``)."""
        config = self.config.with_(**config_changes) if config_changes else self.config
        return dataclasses.replace(self, config=config,
                                   methods=self.methods if methods is None else methods,
                                   trials=self.trials if trials is None else trials)

    def to_dict(self) -> dict:
        config = self.config.to_dict()
        config.pop("method", None)
        return {"preset": self.preset, "description": self.description, "methods": list(self.methods),
                "trials": self.trials, "config": config, "notes": dict(self.notes)}

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentSpec":
        """From ``{config: {...}, methods: [...], trials: N, preset?, description?, notes?}`` (the format of
        presets and of a run's ``config.json``)."""
        if not isinstance(data, dict):
            raise ConfigError("config", "an experiment spec must be a mapping with config, methods and trials")
        config = data.get("config")
        if not isinstance(config, dict):
            raise ConfigError("config", "must be a mapping of ExperimentConfig fields")
        methods = data.get("methods")
        if methods is None and "method" in config:
            methods = [config["method"]]
        if isinstance(methods, str):
            methods = [m.strip() for m in methods.split(",") if m.strip()]
        if not isinstance(methods, (list, tuple)) or not methods:
            raise ConfigError("methods", f"must be a non-empty list; choose from: {', '.join(available_methods())}")
        validate_methods(methods)
        config = dict(config, method=methods[0])
        return cls(config=ExperimentConfig.from_dict(config), methods=tuple(methods),
                   trials=data.get("trials", 1), preset=data.get("preset"),
                   description=data.get("description") or "", notes=data.get("notes") or {})


def validate_methods(methods) -> None:
    allowed = available_methods()
    if not methods:
        raise ConfigError("methods", f"give at least one method; choose from: {', '.join(allowed)}")
    for m in methods:
        if not isinstance(m, str) or m not in allowed:
            raise ConfigError("methods", f"unknown method {m!r}; choose from: {', '.join(allowed)}")
    duplicates = sorted({m for m in methods if list(methods).count(m) > 1})
    if duplicates:
        raise ConfigError("methods", f"each method once, {duplicates[0]!r} is given twice")


def validate_trials(trials) -> None:
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)):
        raise ConfigError("trials", f"must be a whole number from 1 to {MAX_TRIALS}, got {trials!r}")
    if not 1 <= trials <= MAX_TRIALS:
        raise ConfigError("trials", f"must be from 1 to {MAX_TRIALS}, got {trials}")


# -- progress ----------------------------------------------------------------------------------------
@dataclass
class ProgressEvent:
    """What an experiment reports while it runs.

    kind: ``"start"`` (a run session begins), ``"run"`` (a (trial, method) begins; ``stage`` = first stage
    to compute), ``"phase"`` (the engine's progress within a stage), ``"stage"`` (a stage finished and
    was written; ``record`` set), ``"skip"`` (a finished (trial, method) is skipped), ``"repair"`` (a damaged
    record is about to be recomputed; ``message`` names its file and what was wrong), ``"finish"``."""

    kind: str
    trial: int = 0
    method: str = ""
    stage: int = 0
    done: int = 0
    total: int = 0
    phase: str = ""
    fraction: float = 0.0
    message: str = ""
    record: StageRecord | None = None


ExperimentProgress = Callable[[ProgressEvent], None]


def _noop(*args) -> None:
    pass


# -- replay ------------------------------------------------------------------------------------------
def replay(learner: ActiveLearner, records: list[StageRecord], where: str = "") -> None:
    """``ActiveLearner.restore`` with its refusal turned into a ``StoreError`` naming the run's files."""
    try:
        learner.restore(records)
    except ValueError as exc:
        raise StoreError(f"{where}: {exc}" if where else str(exc)) from None


# -- the runner --------------------------------------------------------------------------------------
def default_run_name(spec: ExperimentSpec) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{spec.preset or spec.config.dataset}-{stamp}"


class Experiment:
    """One run folder and the loop that fills it. ``create`` a new run or ``open`` an existing one, then
    ``run()`` (which resumes wherever the folder stands)."""

    def __init__(self, run_dir: str | os.PathLike, spec: ExperimentSpec):
        self.run_dir = Path(run_dir)
        self.spec = spec
        self._dataset = None
        self._first_learner: ActiveLearner | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: ExperimentSpec, output: str | os.PathLike = "runs", name: str | None = None,
               check: bool = True, before_folder: Callable[["Experiment"], None] | None = None) -> "Experiment":
        """Make a new run folder under ``output`` holding the spec, the environment and a status. An
        explicit ``name`` that is taken is refused (ConfigError 'name'); the default name gets a suffix.

        With ``check`` the first learner is started before the folder is made, so a bad config (e.g. a
        budget larger than the pool) or an absent dataset is refused without leaving a folder behind."""
        explicit = name is not None
        name = store.check_run_name(name) if explicit else default_run_name(spec)
        if explicit and (Path(output) / name).exists():
            store.new_run_dir(output, name, exclusive=True)  # raises ConfigError('name', ...)
        experiment = cls(Path(output) / name, spec)
        if check:
            experiment._first_learner = experiment._learner(0, spec.methods[0])
        if before_folder is not None:  # e.g. the CLI's time estimate, which may still refuse the run
            before_folder(experiment)
        # a name the user chose is never silently changed; a default (timestamped) one gets a suffix if taken
        experiment.run_dir = store.new_run_dir(output, name, exclusive=explicit)
        store.write_spec(experiment.run_dir, {**spec.to_dict(), "created": store.now_iso()})
        device = experiment._first_learner.device if experiment._first_learner else spec.config.device
        store.write_environment(experiment.run_dir, store.environment(str(device)))
        store.write_status(experiment.run_dir, {"state": "created", "created": store.now_iso(),
                                                "done": 0, "total": spec.total_stages})
        return experiment

    @classmethod
    def open(cls, run_dir: str | os.PathLike, device: str | None = None) -> "Experiment":
        """An existing run folder (to resume, or to read); its spec is checked like a new one's. Opening
        never needs the device the run was made on; ``device`` resumes it on another one (e.g. ``"cpu"``
        for a run made on a GPU). Every stage record says where it ran (``StageRecord.device``)."""
        run_dir = store.require_run_dir(run_dir)
        spec = store.validated_spec(run_dir)
        if device is not None:
            spec = spec.with_(device=device)
        return cls(run_dir, spec)

    # -- state -----------------------------------------------------------------------------------
    def finished(self, trial: int, method: str) -> int:
        return min(store.finished_stages(self.run_dir, method, trial), self.spec.stages)

    def counts(self) -> tuple[int, int]:
        done = sum(self.finished(t, m) for t in range(self.spec.trials) for m in self.spec.methods)
        return done, self.spec.total_stages

    def status(self) -> dict:
        return store.read_status(self.run_dir)

    def _dataset_for(self, config: ExperimentConfig):
        if self._dataset is None:
            from .data import load_dataset

            self._dataset = load_dataset(config.dataset, **config.dataset_options)
        return self._dataset

    def _learner(self, trial: int, method: str) -> ActiveLearner:
        config = self.spec.trial_config(trial, method)
        learner = ActiveLearner(config, dataset=self._dataset_for(config))
        return learner.start()

    def check_not_running(self) -> None:
        """Raise :class:`~tavaal_core.store.RunBusy` when another live process is running this run folder.
        The writer lock decides (a status naming a live pid may be stale: the pid can be reused)."""
        if store.run_locked(self.run_dir):
            try:
                pid = store.read_status(self.run_dir).get("pid")
            except StoreError:
                pid = None
            raise store.RunBusy(f"{self.run_dir}: is still running" + (f" (process {pid})" if pid else "")
                                + "; stop it before resuming")

    def inspect(self) -> tuple[dict, int]:
        """Read and verify every stored record: ``({(trial, method): {stage: DamagedRecord or None}}, intact)``
        (see :func:`~tavaal_core.store.stage_gaps`; None marks a stage not reached yet) and the number of
        intact records."""
        plan = {(trial, method): store.stage_gaps(self.run_dir, method, trial, self.spec.stages,
                                                  self.spec.trial_seed(trial))
                for trial in range(self.spec.trials) for method in self.spec.methods}
        return plan, self.spec.total_stages - sum(len(gaps) for gaps in plan.values())

    # -- the loop --------------------------------------------------------------------------------
    def run(self, progress: ExperimentProgress | None = None) -> dict:
        """Run every unfinished stage; returns the final status. Resumes a partly written folder.

        On an exception the status records ``failed`` (or ``interrupted`` for KeyboardInterrupt /
        SystemExit) with the message, and the exception propagates."""
        progress = progress or _noop
        self.check_not_running()
        lock = store.lock_run(self.run_dir)  # one writer per run folder, released by the OS if this process dies
        try:
            return self._run(progress)
        finally:
            lock.close()

    def _run(self, progress: ExperimentProgress) -> dict:
        spec, run_dir = self.spec, self.run_dir
        store.remove_temp_files(run_dir)  # left by a killed writer; the targets themselves are whole
        plan, done = self.inspect()
        total = spec.total_stages
        try:
            previous = store.read_status(run_dir)
        except StoreError:
            previous = {}
        try:
            store.read_environment(run_dir)
        except StoreError as e:  # damaged: record this process's environment, saying why
            store.write_environment(run_dir, dict(store.environment(str(self.spec.config.device)),
                                                  rewritten=f"on resume: {_one_line(e)}"))
        session_start = time.perf_counter()
        base_seconds = float(previous.get("run_seconds") or 0.0)
        repaired: list[str] = []
        status = {
            "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
            "created": previous.get("created") or store.now_iso(), "started": store.now_iso(),
            "sessions": int(previous.get("sessions") or 0) + 1, "done": done, "total": total,
            "run_seconds": base_seconds, "error": None, "current": {}, "last": previous.get("last"),
            "repaired": repaired,
        }
        store.write_status(run_dir, status)
        last_write = [0.0]

        def write_status(force: bool = False, **changes):
            status.update(changes)
            now = time.perf_counter()
            if force or now - last_write[0] >= STATUS_INTERVAL_S:
                status["run_seconds"] = base_seconds + (now - session_start)
                store.write_status(run_dir, status)
                last_write[0] = now

        def metrics_rows() -> list[dict]:
            # from the intact records' scalars only (a damaged one is recomputed before it counts)
            rows = []
            for (trial, method), gaps in plan.items():
                for stage in range(spec.stages):
                    if stage not in gaps:
                        rows.append(store.metrics_row(store.load_record_scalars(run_dir, method, trial, stage), trial))
            return rows

        try:
            rows = metrics_rows()
            store.write_metrics(run_dir, rows)  # also rebuilds a damaged or missing table
            progress(ProgressEvent("start", done=done, total=total))
            for trial in range(spec.trials):
                seed = spec.trial_seed(trial)
                for method in spec.methods:
                    gaps = plan[(trial, method)]
                    if not gaps:
                        progress(ProgressEvent("skip", trial, method, spec.stages, done, total))
                        continue
                    if self._first_learner is not None and trial == 0 and method == spec.methods[0] \
                            and len(gaps) == spec.stages:
                        learner = self._first_learner
                    else:
                        learner = self._learner(trial, method)
                    self._first_learner = None
                    progress(ProgressEvent("run", trial, method, min(gaps), done, total))
                    while not learner.done:
                        stage = learner.stage
                        if stage not in gaps:  # intact: replay it (nothing is recomputed)
                            record = store.load_record(run_dir, method, trial, stage, seed=seed)
                            replay(learner, [record], str(store.record_paths(run_dir, method, trial, stage)[0]))
                            continue
                        damage = gaps[stage]
                        if damage is not None:
                            note = f"{damage.path.relative_to(run_dir)}: {damage.reason}"
                            repaired.append(note)
                            progress(ProgressEvent("repair", trial, method, stage, done, total, message=note))
                        current = {"trial": trial, "method": method, "stage": stage, "phase": "", "fraction": 0.0,
                                   "message": "", "repair": damage is not None}
                        write_status(force=True, current=current)

                        def on_phase(phase, fraction, message, _t=trial, _m=method, _s=stage):
                            current.update(phase=phase, fraction=float(fraction), message=str(message))
                            write_status()
                            progress(ProgressEvent("phase", _t, _m, _s, done, total, phase, float(fraction), str(message)))

                        record = learner.step(on_phase)
                        store.save_record(run_dir, trial, record, seed=seed)
                        rows = [r for r in rows if (r["trial"], r["method"], r["stage"]) != (trial, method, stage)]
                        rows.append(store.record_metrics_row(record, trial, seed))
                        store.write_metrics(run_dir, rows)
                        done += 1
                        write_status(force=True, done=done, current={}, last={
                            "trial": trial, "method": method, "stage": stage,
                            "accuracy": float(record.accuracy), "labeled_count": int(record.labeled_count)})
                        progress(ProgressEvent("stage", trial, method, stage, done, total, record=record))
                    del learner
        except (KeyboardInterrupt, SystemExit):
            write_status(force=True, state="interrupted", pid=None, stopped=store.now_iso(),
                         error="interrupted by the user or a signal")
            raise
        except BaseException as e:
            write_status(force=True, state="failed", pid=None, stopped=store.now_iso(), error=_one_line(e))
            raise
        write_status(force=True, state="finished", pid=None, finished=store.now_iso(), current={})
        progress(ProgressEvent("finish", done=done, total=total))
        return dict(status)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    text = text[0] if text else ""
    return text if isinstance(e, TavaalError) else f"{type(e).__name__}: {text}"


def run_experiment(spec: ExperimentSpec, output="runs", name: str | None = None,
                   progress: ExperimentProgress | None = None) -> Path:
    """Create a run folder, run it to the end, return its path."""
    experiment = Experiment.create(spec, output, name)
    experiment.run(progress)
    return experiment.run_dir


def resume_experiment(run_dir, progress: ExperimentProgress | None = None) -> Path:
    experiment = Experiment.open(run_dir)
    experiment.run(progress)
    return experiment.run_dir


# -- background runs (the app's Runs page starts runs as separate processes) ---------------------------------
LOGS_DIR = ".logs"


def log_path(output, name: str) -> Path:
    """Where a background run's stdout / stderr go: ``<output>/.logs/<name>.log`` (hidden from listings)."""
    return Path(output) / LOGS_DIR / f"{name}.log"


def run_command(*, output=None, name: str | None = None, preset: str | None = None, config_file=None,
                methods=None, trials: int | None = None, stages: int | None = None, seed: int | None = None,
                device: str | None = None, resume=None, threads: int | None = None,
                pretrained: str | None = None) -> list[str]:
    """The ``python -m tavaal_core run ...`` command line for these settings (checked by the CLI itself)."""
    import sys

    cmd = [sys.executable, "-m", "tavaal_core", "run"]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    else:
        cmd += ["--preset", preset] if preset is not None else ["--config", str(config_file)]
        if methods:
            cmd += ["--methods", ",".join(methods)]
        for flag, value in (("--trials", trials), ("--stages", stages), ("--seed", seed), ("--device", device),
                            ("--output", output), ("--name", name), ("--pretrained", pretrained)):
            if value is not None:
                cmd += [flag, str(value)]
    if threads is not None:
        cmd += ["--threads", str(int(threads))]
    return cmd + ["--quiet"]


def launch(cmd: list[str], log_file) -> "subprocess.Popen":
    """Start ``cmd`` as a separate process in its own session (so it survives the app's script reruns and
    a Stop signal reaches only it), its output appended to ``log_file``."""
    import subprocess

    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(log_file, "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=os.getcwd(), start_new_session=True, close_fds=True)


def stop(run_dir) -> bool:
    """Ask a running run's process to stop (SIGTERM: the CLI records 'interrupted', resumable).
    Returns False when no live process owns the run."""
    import signal

    try:
        status = store.read_status(run_dir)
    except StoreError:
        return False
    pid = status.get("pid")
    if store.effective_state(status, run_dir) != "running" or not store.process_alive(pid, status.get("host")):
        return False
    try:
        os.kill(int(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True
