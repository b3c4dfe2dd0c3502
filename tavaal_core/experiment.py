"""Multi-trial comparisons (Godwin et al. 2022's Algorithm 1; TA-VAAL's Figures 3, 4 and 6) and sweeps, resumable.

An experiment is a base config + methods + trials, and optionally a *sweep*: lists of values for config
fields (``{"alpha": [0, 0.5, 1, 2]}``), every combination of which is a *setting*. Trial ``t`` runs every
method under every setting with the seed ``config.seed + t``, so all methods and settings of a trial start
from the same initial labels and the same model initialisations (the engine derives every random draw from
(seed, stage, purpose)). Each (setting, trial, method) is a *unit*: one :class:`~tavaal_core.ActiveLearner`
run stage by stage, independent of the others; after each stage its record is written atomically into the
unit's folder (see :mod:`tavaal_core.store`). Units run one after another in this process, or in parallel
through an executor (:mod:`tavaal_core.executors`: local worker processes, or Ray tasks); the records do
not depend on which.

Resume: every stored record is read and verified (checksums, see :mod:`tavaal_core.store`); a unit whose
records are all intact is skipped; otherwise a fresh learner *replays* the intact stages (their picks are
added to its pool, nothing is recomputed) and computes the missing or damaged ones. Because the engine's
randomness depends only on (seed, stage, purpose) and the labeled pool, the computed stages equal those of
an uninterrupted run, so a damaged record is repaired by recomputing it; each repair is reported (a
``"repair"`` progress event, and ``repaired`` in ``status.json``).

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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from . import store
from .config import FIELD_RULES, MAX_SEED, ExperimentConfig
from .constraints import Interval, Text, check
from .engine import ActiveLearner
from .errors import ConfigError, TavaalError
from .records import StageRecord
from .store import StoreError
from .strategies import available_methods

MAX_TRIALS = 1000
MAX_SETTINGS = 1000
# Fields a sweep may not vary, and what to do instead.
SWEEP_EXCLUDED = {"method": "list the methods under 'methods'", "seed": "trials vary the seed ('trials')",
                  "stages": "every unit of a run has the same stages", "device": "the device is how a run runs, "
                  "not what it studies (--device)"}
# Config fields whose own value is a list: a list for them is that value, never a sweep.
LIST_VALUED_FIELDS = ("class_counts",)
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
    # field -> values; every combination is a setting (empty: one setting, the config itself)
    sweep: dict = field(default_factory=dict)

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
        check("preset", self.preset, SPEC_RULES["preset"])
        check("description", self.description, SPEC_RULES["description"])
        sweep = validate_sweep(self.sweep)
        object.__setattr__(self, "sweep", sweep)
        config = self.config
        if sweep:  # the base config holds the first setting, so it is a valid config of this experiment itself
            config = config.with_(**store.sweep_settings(sweep)[0])
        if config.method != self.methods[0]:
            config = config.with_(method=self.methods[0])
        object.__setattr__(self, "config", config)
        if sweep:
            check_settings(self)

    def trial_seed(self, trial: int) -> int:
        return self.config.seed + int(trial)

    def trial_config(self, trial: int, method: str, setting: int | None = None) -> ExperimentConfig:
        config = self.config if setting is None else self.config.with_(**self.setting_values(setting))
        return config.with_(method=method, seed=self.trial_seed(trial))

    def unit_config(self, unit: store.Unit) -> ExperimentConfig:
        return self.trial_config(unit.trial, unit.method, unit.setting)

    @property
    def settings(self) -> list[dict]:
        """Every combination of the sweep's values (``[]`` without a sweep)."""
        return store.sweep_settings(self.sweep)

    def setting_values(self, setting: int | None) -> dict:
        return {} if setting is None else self.settings[setting]

    def setting_label(self, setting: int | None) -> str:
        return "" if setting is None else store.setting_label(self.settings[setting])

    def units(self) -> list[store.Unit]:
        """Every (setting, trial, method), in the order a sequential run takes them."""
        return store.spec_units(self.to_dict())

    @property
    def stages(self) -> int:
        return self.config.stages

    @property
    def total_stages(self) -> int:
        return len(self.methods) * self.trials * max(1, len(self.settings)) * self.config.stages

    def with_(self, *, methods=None, trials=None, sweep=None, **config_changes) -> "ExperimentSpec":
        """A copy with other methods / trials / sweep and config fields changed (e.g. ``stages=3``)."""
        config = self.config.with_(**config_changes) if config_changes else self.config
        return dataclasses.replace(self, config=config,
                                   methods=self.methods if methods is None else methods,
                                   trials=self.trials if trials is None else trials,
                                   sweep=self.sweep if sweep is None else sweep)

    def to_dict(self) -> dict:
        config = self.config.to_dict()
        config.pop("method", None)
        out = {"preset": self.preset, "description": self.description, "methods": list(self.methods),
               "trials": self.trials, "config": config, "notes": dict(self.notes)}
        if self.sweep:
            out["sweep"] = {f: list(values) for f, values in self.sweep.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentSpec":
        """From ``{config: {...}, methods: [...], trials: N, sweep?, preset?, description?, notes?}`` (the format
        of presets and of a run's ``config.json``). A list given for a config field (``alpha: [0, 0.5]``) is a
        sweep over it, as if listed under ``sweep``."""
        if not isinstance(data, dict):
            raise ConfigError("config", "an experiment spec must be a mapping with config, methods and trials")
        config = data.get("config")
        if not isinstance(config, dict):
            raise ConfigError("config", "must be a mapping of ExperimentConfig fields")
        sweep = data.get("sweep") or {}
        if not isinstance(sweep, dict):
            raise ConfigError("sweep", "must map config fields to lists of values, e.g. {alpha: [0, 0.5, 1, 2]}")
        sweep = dict(sweep)
        config = dict(config)
        for name, value in list(config.items()):
            if isinstance(value, list) and name not in LIST_VALUED_FIELDS:
                if name in sweep:
                    raise ConfigError(f"sweep.{name}", "is listed both in the config and under sweep; give it once")
                sweep[name] = config.pop(name)
        methods = data.get("methods")
        if methods is None and "method" in config:
            methods = [config["method"]]
        if isinstance(methods, str):
            methods = [m.strip() for m in methods.split(",") if m.strip()]
        if not isinstance(methods, (list, tuple)) or not methods:
            raise ConfigError("methods", f"must be a non-empty list; choose from: {', '.join(available_methods())}")
        validate_methods(methods)
        config = dict(config, method=methods[0])
        validate_sweep(sweep)
        config.update(store.sweep_settings(sweep)[0] if sweep else {})  # a valid base config: the first setting
        try:
            base = ExperimentConfig.from_dict(config)
        except ConfigError as e:
            if e.field not in sweep:
                raise
            message = str(e)[len(e.field) + 2:]
            raise ConfigError(f"sweep.{e.field}", f"{message} (setting {store.setting_label(store.sweep_settings(sweep)[0])})") from None
        return cls(config=base, methods=tuple(methods),
                   trials=data.get("trials", 1), preset=data.get("preset"),
                   description=data.get("description") or "", notes=data.get("notes") or {}, sweep=sweep)


def validate_sweep(sweep) -> dict:
    """A sweep as ``{field: tuple of values}``; ConfigError naming ``sweep.<field>`` for an unknown or
    excluded field, values that are not a non-empty list, repeated values, or too many settings."""
    if sweep is None:
        return {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep", "must map config fields to lists of values, e.g. {alpha: [0, 0.5, 1, 2]}")
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    out = {}
    count = 1
    for name, values in sweep.items():
        if not isinstance(name, str) or name not in known:
            raise ConfigError(f"sweep.{name}", f"unknown config field; allowed: "
                                               f"{', '.join(sorted(known - set(SWEEP_EXCLUDED)))}")
        if name in SWEEP_EXCLUDED:
            raise ConfigError(f"sweep.{name}", f"cannot be swept: {SWEEP_EXCLUDED[name]}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"sweep.{name}", f"give a non-empty list of values, got {values!r}")
        values = tuple(tuple(v) if isinstance(v, list) else v for v in values)
        seen = []
        for v in values:
            if v in seen:
                raise ConfigError(f"sweep.{name}", f"each value once, {v!r} is given twice")
            seen.append(v)
        count *= len(values)
        out[name] = values
    if count > MAX_SETTINGS:
        raise ConfigError("sweep", f"{count} settings (every combination of the values); at most {MAX_SETTINGS}")
    return out


def check_settings(spec: "ExperimentSpec") -> None:
    """Every setting of a sweep gives a valid config for every method (e.g. ``alpha: [-1]`` or ``dropout: [0]``
    with BALD are refused before anything runs); the error names the swept field and the setting."""
    from .config import check_method

    for values in spec.settings:
        try:
            config = spec.config.with_(**values)
            for method in spec.methods:
                check_method(config, method)
        except ConfigError as e:
            message = str(e)[len(e.field) + 2:] if str(e).startswith(f"{e.field}: ") else str(e)
            field = e.field if e.field in spec.sweep else next(iter(values))
            raise ConfigError(f"sweep.{field}", f"{message} (setting {store.setting_label(values)})") from None


# The spec's own fields; its config's are ExperimentConfig's (config.FIELD_RULES).
SPEC_RULES = {
    "methods": FIELD_RULES["method"],  # each of them
    "trials": Interval(int, 1, MAX_TRIALS),
    # the preset's name starts the run folder's name
    "preset": Text(store.NAME_RE, what="a preset name (letters, digits, '.', '_', '-')", optional=True),
    "description": Text(),
}


def validate_methods(methods) -> None:
    if not methods:
        raise ConfigError("methods", f"give at least one method; choose from: {', '.join(available_methods())}")
    for m in methods:
        check("methods", m, SPEC_RULES["methods"])
    duplicates = sorted({m for m in methods if list(methods).count(m) > 1})
    if duplicates:
        raise ConfigError("methods", f"each method once, {duplicates[0]!r} is given twice")


def validate_trials(trials) -> None:
    check("trials", trials, SPEC_RULES["trials"])


# -- progress ----------------------------------------------------------------------------------------
@dataclass
class ProgressEvent:
    """What an experiment reports while it runs.

    kind: ``"start"`` (a run session begins), ``"run"`` (a unit begins; ``stage`` = first stage to compute),
    ``"phase"`` (the engine's progress within a stage), ``"stage"`` (a stage finished and was written;
    ``accuracy`` and ``labeled_count`` set, and ``record`` when the unit ran in this process), ``"skip"`` (a
    finished unit is skipped), ``"repair"`` (a damaged record is about to be recomputed; ``message`` names its
    file and what was wrong), ``"failed"`` (a unit failed in a parallel run; ``message`` says why; the other
    units go on), ``"finish"``. ``setting`` is the sweep setting's index (None without a sweep)."""

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
    setting: int | None = None
    accuracy: float = float("nan")
    labeled_count: int = 0
    where: str = ""

    def __post_init__(self):
        if self.record is not None and self.accuracy != self.accuracy:  # a stage event made with its record
            self.accuracy = float(self.record.accuracy)
            self.labeled_count = int(self.record.labeled_count)


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


class UnitsFailed(TavaalError):
    """Some units of a parallel run failed (the others finished); the message names them. Resumable."""


class Experiment:
    """One run folder and the loop that fills it. ``create`` a new run or ``open`` an existing one, then
    ``run()`` (which resumes wherever the folder stands)."""

    def __init__(self, run_dir: str | os.PathLike, spec: ExperimentSpec):
        self.run_dir = Path(run_dir)
        self.spec = spec
        self._runner: UnitRunner | None = None
        self._first_learner: ActiveLearner | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: ExperimentSpec, output: str | os.PathLike = "runs", name: str | None = None,
               check: bool = True, before_folder: Callable[["Experiment"], None] | None = None) -> "Experiment":
        """Make a new run folder under ``output`` holding the spec, the environment and a status. An
        explicit ``name`` that is taken is refused (ConfigError 'name'); the default name gets a suffix.

        With ``check`` the first unit's learner is started before the folder is made (and every other sweep
        setting is checked against the dataset's size), so a bad config (e.g. a budget larger than the pool)
        or an absent dataset is refused without leaving a folder behind."""
        explicit = name is not None
        name = store.check_run_name(name) if explicit else default_run_name(spec)
        if explicit and (Path(output) / name).exists():
            store.new_run_dir(output, name, exclusive=True)  # raises ConfigError('name', ...)
        experiment = cls(Path(output) / name, spec)
        if check:
            first = spec.units()[0]
            experiment._first_learner = experiment.runner().learner(first)
            experiment._check_settings(len(experiment._first_learner.dataset.y_train))
        if before_folder is not None:  # e.g. the CLI's time estimate, which may still refuse the run
            before_folder(experiment)
        # a name the user chose is never silently changed; a default (timestamped) one gets a suffix if taken
        experiment.run_dir = store.new_run_dir(output, name, exclusive=explicit)
        if experiment._runner is not None:
            experiment._runner.run_dir = experiment.run_dir
        # run_id: a task on another machine checks it is writing into this very run (shared storage, see executors)
        store.write_spec(experiment.run_dir, {**spec.to_dict(), "created": store.now_iso(), "run_id": uuid.uuid4().hex})
        for k, values in enumerate(spec.settings):
            store.write_setting_file(experiment.run_dir, k, values)
        device = experiment._first_learner.device if experiment._first_learner else spec.config.device
        store.write_environment(experiment.run_dir, store.environment(str(device)))
        store.write_status(experiment.run_dir, {"state": "created", "created": store.now_iso(),
                                                "done": 0, "total": spec.total_stages})
        return experiment

    def _check_settings(self, pool_size: int) -> None:
        """The pool-size checks of every sweep setting that uses the first setting's data (a swept budget or
        initial size must fit the pool too); other data sets are checked when their units start."""
        from .config import check_pool_size

        base = self.spec.config
        for k, values in enumerate(self.spec.settings[1:], start=1):
            config = self.spec.trial_config(0, self.spec.methods[0], k)
            if (config.dataset, config.dataset_options, config.subsample, config.imbalance_ratio,
                    config.class_counts) != (base.dataset, base.dataset_options, base.subsample,
                                             base.imbalance_ratio, base.class_counts):
                continue
            try:
                check_pool_size(config.resolve(), pool_size)
            except ConfigError as e:
                message = str(e)[len(e.field) + 2:]
                raise ConfigError(f"sweep.{next(iter(values))}" if e.field not in values else f"sweep.{e.field}",
                                  f"{message} (setting {store.setting_label(values)})") from None

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
    def finished(self, trial: int, method: str, setting: int | None = None) -> int:
        return store.Unit(setting, trial, method).finished(self.run_dir, self.spec.stages)

    def units(self) -> list[store.Unit]:
        return self.spec.units()

    def unfinished_units(self) -> list[store.Unit]:
        return [u for u in self.units() if u.finished(self.run_dir, self.spec.stages) < self.spec.stages]

    def counts(self) -> tuple[int, int]:
        done = sum(u.finished(self.run_dir, self.spec.stages) for u in self.units())
        return done, self.spec.total_stages

    def status(self) -> dict:
        return store.read_status(self.run_dir)

    def _learner(self, trial: int, method: str, setting: int | None = None) -> ActiveLearner:
        """A started learner for one unit (data sets loaded once per experiment)."""
        return self.runner().learner(store.Unit(setting, trial, method))

    def runner(self, worker: str = "driver") -> "UnitRunner":
        if self._runner is None:
            self._runner = UnitRunner(self.run_dir, self.spec, worker=worker)
        return self._runner

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
        """Read and verify every stored record: ``({unit: {stage: DamagedRecord or None}}, intact)`` (see
        :func:`~tavaal_core.store.stage_gaps`; None marks a stage not reached yet) and the number of intact
        records."""
        plan = {unit: store.stage_gaps(self.run_dir, unit.method, unit.trial, self.spec.stages,
                                       self.spec.trial_seed(unit.trial), unit.setting)
                for unit in self.units()}
        return plan, self.spec.total_stages - sum(len(gaps) for gaps in plan.values())

    # -- the loop --------------------------------------------------------------------------------
    def run(self, progress: ExperimentProgress | None = None, executor=None) -> dict:
        """Run every unfinished stage; returns the final status. Resumes a partly written folder: finished
        units are skipped, unfinished ones continue at their last stage.

        ``executor``: None runs the units one after another in this process; an executor from
        :mod:`tavaal_core.executors` (``LocalExecutor(workers=N)``, ``RayExecutor(...)``) runs them in
        parallel. In this process the first exception stops the run and propagates; in parallel a failed
        unit is recorded and the others go on, then :class:`UnitsFailed` names the failed ones.

        On an exception the status records ``failed`` (or ``interrupted`` for KeyboardInterrupt /
        SystemExit) with the message. One driver per run folder: a second is refused (StoreError)."""
        progress = progress or _noop
        self.check_not_running()
        lock = store.lock_run(self.run_dir)  # one driver per run folder, released by the OS if this process dies
        try:
            return self._run(progress, executor)
        finally:
            lock.close()

    def _run(self, progress: ExperimentProgress, executor) -> dict:
        from .executors import SequentialExecutor

        executor = executor or SequentialExecutor()
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
        pending = [unit for unit, gaps in plan.items() if gaps]
        status = {
            "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
            "created": previous.get("created") or store.now_iso(), "started": store.now_iso(),
            "sessions": int(previous.get("sessions") or 0) + 1, "done": done, "total": total,
            "run_seconds": float(previous.get("run_seconds") or 0.0), "error": None, "current": {},
            "running": [], "last": previous.get("last"), "executor": executor.describe(self, pending),
            "session": uuid.uuid4().hex,  # unit.json files written in this session carry it
            "repaired": [],
        }
        driver = Driver(self, progress, status, plan)
        try:
            for unit, gaps in plan.items():
                if not gaps:
                    progress(ProgressEvent("skip", unit.trial, unit.method, spec.stages, done, total,
                                           setting=unit.setting))
            driver.begin()
            executor.run(self, driver, pending)
        except (KeyboardInterrupt, SystemExit):
            driver.end("interrupted", error="interrupted by the user or a signal")
            raise
        except BaseException as e:
            driver.end("failed", error=_one_line(e))
            raise
        if driver.failed:
            first = next(iter(driver.failed.items()))
            message = (f"{len(driver.failed)} of {len(pending)} units failed (the others finished), first "
                       f"{first[0].key}: {first[1]}; continue with --resume")
            driver.end("failed", error=message)
            raise UnitsFailed(message)
        driver.end("finished")
        progress(ProgressEvent("finish", done=driver.done, total=total))
        return dict(status)


class Driver:
    """The one writer of ``status.json`` and ``metrics.parquet`` while a run runs, whatever runs its units.
    Units in this process report to it directly; units elsewhere (worker processes, Ray tasks) are
    followed through their files (``unit.json`` and the stage records), read by :meth:`poll`."""

    def __init__(self, experiment: Experiment, progress: ExperimentProgress, status: dict, plan: dict | None = None):
        self.experiment = experiment
        self.plan = plan if plan is not None else experiment.inspect()[0]  # unit -> {stage to compute: damage}
        self.run_dir = experiment.run_dir
        self.spec = experiment.spec
        self.progress = progress
        self.status = status
        self.done = int(status["done"])
        self.total = int(status["total"])
        self.rows: list[dict] = []
        self.failed: dict[store.Unit, str] = {}
        self._session_start = time.perf_counter()
        self._base_seconds = float(status.get("run_seconds") or 0.0)
        self._last_write = 0.0
        self._known: dict[store.Unit, int] = {}  # a started unit's stage in progress (for the running list)
        self._reported: dict[store.Unit, set] = {}  # its stages computed and reported in this session
        self._repairs: dict[store.Unit, int] = {}  # its repairs reported
        self._phase: dict[store.Unit, tuple] = {}
        self._where: dict[store.Unit, str] = {}

    def write_status(self, force: bool = False, **changes) -> None:
        self.status.update(changes)
        now = time.perf_counter()
        if force or now - self._last_write >= STATUS_INTERVAL_S:
            self.status["run_seconds"] = self._base_seconds + (now - self._session_start)
            store.write_status(self.run_dir, self.status)
            self._last_write = now

    def _intact_rows(self) -> list[dict]:
        """Metrics rows from the intact records' scalars (a damaged one is recomputed before it counts)."""
        rows = []
        for unit, gaps in self.plan.items():
            for stage in range(self.spec.stages):
                if stage not in gaps:
                    scalars = store.load_record_scalars(self.run_dir, unit.method, unit.trial, stage,
                                                        setting=unit.setting)
                    rows.append(store.metrics_row(scalars, unit.trial))
        return rows

    def begin(self) -> None:
        self.write_status(force=True)
        self.rows = self._intact_rows()
        store.write_metrics(self.run_dir, self.rows)  # also rebuilds a damaged or missing table
        self.progress(ProgressEvent("start", done=self.done, total=self.total))

    def end(self, state: str, error: str | None = None) -> None:
        try:  # the table from every unit's verified records, whatever happened to the processes that wrote them
            self.plan, self.done = self.experiment.inspect()
            store.write_metrics(self.run_dir, self._intact_rows())
        except StoreError:
            pass
        changes = {"state": state, "pid": None, "current": {}, "running": [], "done": self.done}
        changes["finished" if state == "finished" else "stopped"] = store.now_iso()
        if error is not None:
            changes["error"] = error
        self.write_status(force=True, **changes)

    # -- reports (from this process, or from poll) ---------------------------------------------------
    def unit_started(self, unit: store.Unit, stage: int, where: str = "") -> None:
        self._known[unit] = stage
        self._reported.setdefault(unit, set())
        self._where[unit] = where
        self.progress(ProgressEvent("run", unit.trial, unit.method, stage, self.done, self.total,
                                    setting=unit.setting, where=where))

    def phase(self, unit: store.Unit, stage: int, phase: str, fraction: float, message: str) -> None:
        current = {"trial": unit.trial, "method": unit.method, "stage": stage, "phase": phase,
                   "fraction": float(fraction), "message": str(message)}
        if unit.setting is not None:
            current.update(setting=unit.setting, setting_label=self.spec.setting_label(unit.setting))
        self._phase[unit] = (stage, phase, float(fraction), str(message))
        self.write_status(current=current, running=self._running_list())
        self.progress(ProgressEvent("phase", unit.trial, unit.method, stage, self.done, self.total, phase,
                                    float(fraction), str(message), setting=unit.setting))

    def repair(self, unit: store.Unit, stage: int, damage) -> None:
        note = damage if isinstance(damage, str) else f"{damage.path.relative_to(self.run_dir)}: {damage.reason}"
        self.status["repaired"].append(note)
        self.progress(ProgressEvent("repair", unit.trial, unit.method, stage, self.done, self.total, message=note,
                                    setting=unit.setting))

    def stage(self, unit: store.Unit, stage: int, scalars: dict, record: StageRecord | None = None) -> None:
        if unit.setting is not None:
            scalars = dict(scalars, setting=unit.setting, setting_values=self.spec.setting_values(unit.setting))
        key = (unit.setting, unit.trial, unit.method, stage)
        self.rows = [r for r in self.rows if (r.get("setting"), r["trial"], r["method"], r["stage"]) != key]
        self.rows.append(store.metrics_row(scalars, unit.trial, self.spec.trial_seed(unit.trial)))
        store.write_metrics(self.run_dir, self.rows)
        self.done += 1
        self._known[unit] = stage + 1
        self._reported.setdefault(unit, set()).add(stage)
        self._phase.pop(unit, None)
        last = {"trial": unit.trial, "method": unit.method, "stage": stage,
                "accuracy": float(scalars["accuracy"]), "labeled_count": int(scalars["labeled_count"])}
        if unit.setting is not None:
            last["setting"] = unit.setting
        self.write_status(force=True, done=self.done, current={}, running=self._running_list(), last=last)
        self.progress(ProgressEvent("stage", unit.trial, unit.method, stage, self.done, self.total, record=record,
                                    setting=unit.setting, accuracy=float(scalars["accuracy"]),
                                    labeled_count=int(scalars["labeled_count"])))

    def unit_finished(self, unit: store.Unit) -> None:
        self._known.pop(unit, None)
        self._phase.pop(unit, None)
        self._where.pop(unit, None)
        self._reported.pop(unit, None)
        self.write_status(force=True, running=self._running_list())

    def unit_failed(self, unit: store.Unit, message: str) -> None:
        """A unit failed (or its process died): recorded in its unit.json, and the run goes on."""
        self.failed[unit] = message
        info = store.read_unit_status(self.run_dir, unit)
        if info.get("state") != "failed":  # the process died before saying so
            info.update(state="failed", error=message, stopped=store.now_iso())
            store.write_unit_status(self.run_dir, unit, info)
        self.unit_finished(unit)
        self.progress(ProgressEvent("failed", unit.trial, unit.method, self._known.get(unit, 0), self.done,
                                    self.total, message=message, setting=unit.setting))

    # -- following units that run elsewhere ------------------------------------------------------------
    def poll(self, units) -> None:
        """Report the new stages, repairs and phases of ``units`` (running in other processes) from their
        ``unit.json`` (which lists the stages computed in this session) and their records."""
        for unit in units:
            info = store.read_unit_status(self.run_dir, unit)
            if info.get("session") != self.status["session"]:
                continue  # not started yet (or the unit.json of an earlier session)
            if unit not in self._reported:
                where = ", ".join(str(info[k]) for k in ("host", "worker", "device") if info.get(k))
                self.unit_started(unit, int(info.get("first") or 0), where)
            repaired = list(info.get("repaired") or [])
            for note in repaired[self._repairs.get(unit, 0):]:
                self.repair(unit, 0, str(note))
            self._repairs[unit] = len(repaired)
            for stage in sorted(set(info.get("computed") or []) - self._reported[unit]):
                scalars = store.load_record_scalars(self.run_dir, unit.method, unit.trial, int(stage),
                                                    setting=unit.setting)
                self.stage(unit, int(stage), scalars)
            if info.get("state") == "running" and info.get("phase"):
                key = (info.get("stage"), info.get("phase"), float(info.get("fraction") or 0.0), info.get("message", ""))
                if key != self._phase.get(unit) and info.get("stage") not in self._reported[unit]:
                    self.phase(unit, int(info["stage"]), str(info["phase"]), key[2], str(key[3]))

    def _running_list(self) -> list[dict]:
        out = []
        for unit, known in self._known.items():
            stage, phase, fraction, _ = self._phase.get(unit, (known, "", 0.0, ""))
            out.append({"unit": unit.key, "setting": unit.setting, "trial": unit.trial, "method": unit.method,
                        "stage": stage, "phase": phase, "fraction": fraction, "where": self._where.get(unit, "")})
        return out


class UnitRunner:
    """Runs units of one run folder in this process: the driver's own loop, a local worker process, or a
    Ray task. Loads each data set once and keeps it for the next unit. Writes the unit's stage records and
    its ``unit.json`` (state, stage, phase, host, pid, worker, device) and nothing else, so any number of
    runners can work on one run folder at once."""

    def __init__(self, run_dir, spec: ExperimentSpec, worker: str = "driver", session: str = "",
                 heartbeat: Callable[[], None] | None = None):
        self.run_dir = Path(run_dir)
        self.spec = spec
        self.worker = worker
        self.session = session  # the driver session's start time: the driver ignores unit.json of older sessions
        self.heartbeat = heartbeat or (lambda: None)
        self._datasets: dict = {}

    def _dataset_for(self, config: ExperimentConfig):
        import json

        key = (config.dataset, json.dumps(config.dataset_options, sort_keys=True, default=str))
        if key not in self._datasets:
            from .data import load_dataset

            self._datasets[key] = load_dataset(config.dataset, **config.dataset_options)
        return self._datasets[key]

    def learner(self, unit: store.Unit) -> ActiveLearner:
        config = self.spec.unit_config(unit)
        return ActiveLearner(config, dataset=self._dataset_for(config)).start()

    def run(self, unit: store.Unit, driver: Driver | None = None, learner: ActiveLearner | None = None,
            gaps: dict | None = None) -> int:
        """Compute the unit's missing or damaged stages (``gaps``, default: read from its records now), replaying
        the intact ones; returns the number of stages computed."""
        spec, run_dir = self.spec, self.run_dir
        seed = spec.trial_seed(unit.trial)
        if gaps is None:
            gaps = store.stage_gaps(run_dir, unit.method, unit.trial, spec.stages, seed, unit.setting)
        learner = learner or self.learner(unit)
        first = min(gaps) if gaps else spec.stages
        info = {"state": "running", "session": self.session, "setting": unit.setting, "trial": unit.trial,
                "method": unit.method, "host": socket.gethostname(), "pid": os.getpid(), "worker": self.worker,
                "device": str(learner.device), "started": store.now_iso(), "first": first, "stage": first,
                "done": spec.stages - len(gaps), "computed": [], "repaired": [], "phase": "", "fraction": 0.0,
                "message": "", "error": None}
        store.write_unit_status(run_dir, unit, info)
        last_write = [time.perf_counter()]
        if driver is not None:
            driver.unit_started(unit, first, ", ".join(str(info[k]) for k in ("host", "worker", "device")))
        try:
            while not learner.done:
                stage = learner.stage
                if stage not in gaps:  # intact: replay it (nothing is recomputed)
                    record = store.load_record(run_dir, unit.method, unit.trial, stage, seed=seed, setting=unit.setting)
                    replay(learner, [record], str(store.record_paths(run_dir, unit.method, unit.trial, stage,
                                                                     unit.setting)[0]))
                    continue
                damage = gaps[stage]
                if damage is not None:
                    note = f"{damage.path.relative_to(run_dir)}: {damage.reason}"
                    info["repaired"].append(note)
                    if driver is not None:
                        driver.repair(unit, stage, note)
                info.update(stage=stage, phase="", fraction=0.0, message="")
                store.write_unit_status(run_dir, unit, info)

                def on_phase(phase, fraction, message, _stage=stage):
                    self.heartbeat()
                    info.update(phase=phase, fraction=float(fraction), message=str(message))
                    now = time.perf_counter()
                    if now - last_write[0] >= STATUS_INTERVAL_S:
                        store.write_unit_status(run_dir, unit, info)
                        last_write[0] = now
                    if driver is not None:
                        driver.phase(unit, _stage, phase, fraction, message)

                record = learner.step(on_phase)
                store.save_record(run_dir, unit.trial, record, seed=seed, setting=unit.setting,
                                  setting_values=spec.setting_values(unit.setting) if unit.setting is not None else None)
                info["computed"].append(stage)
                info.update(done=info["done"] + 1, phase="", fraction=0.0, message="")
                store.write_unit_status(run_dir, unit, info)
                if driver is not None:
                    scalars = dict(record.split()[0], selected_count=int(len(record.selected)),
                                   candidate_count=int(len(record.candidates)))
                    driver.stage(unit, stage, scalars, record)
        except (KeyboardInterrupt, SystemExit):
            info.update(state="interrupted", error="interrupted", stopped=store.now_iso())
            store.write_unit_status(run_dir, unit, info)
            raise
        except BaseException as e:
            info.update(state="failed", error=_one_line(e), stopped=store.now_iso())
            store.write_unit_status(run_dir, unit, info)
            raise
        info.update(state="done", finished=store.now_iso())
        store.write_unit_status(run_dir, unit, info)
        if driver is not None:
            driver.unit_finished(unit)
        return len(info["computed"])


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
                pretrained: str | None = None, workers: int | None = None) -> list[str]:
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
    if workers is not None:
        cmd += ["--workers", str(int(workers))]
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
