"""A live session: one ActiveLearner per chosen method, all from the same config and seed (so every
method starts from the same initial labels), stepped together. Its records are the views' Source."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from tavaal_core import ActiveLearner, ExperimentConfig, TavaalError, load_dataset
from tavaal_core.data import prepare_dataset
from tavaal_core.executors import usable_cpus
from tavaal_core.strategies import method_label

from .progress import method_cost
from .runtime import COMPUTE_LOCK
from .source import DatasetMeta, Source

# progress(method index, method, phase, fraction of the phase, message)
MethodProgress = Callable[[int, str, str, float, str], None]


@st.cache_resource(show_spinner=False, max_entries=6)
def cached_dataset(name: str, options_json: str):
    """Datasets load once per server (MNIST-5k or CIFAR take seconds); learners never mutate them."""
    import json

    return load_dataset(name, **json.loads(options_json))


def dataset_for(config: ExperimentConfig):
    import json

    return cached_dataset(config.dataset, json.dumps(config.dataset_options, sort_keys=True, default=list))


@st.cache_resource(show_spinner=False, max_entries=16)
def _oracle(config_json: str, _learner: ActiveLearner) -> tuple | None:
    with COMPUTE_LOCK:
        o = _learner.oracle()
    return (o.boundary_x, o.boundary_y, o.boundary_prob) if o.boundary_prob.size else None


def pool_size(config: ExperimentConfig, ds) -> int:
    """Training samples left after the config's imbalance / subsample cut (``prepare_dataset``, the cut
    every learner of the session makes)."""
    return prepare_dataset(config, ds).train_size


def fit_stages(config: ExperimentConfig, pool: int, most: int = 30) -> ExperimentConfig:
    """The config with as many stages (up to ``most``) as the pool allows for its budget; at least one,
    so that a budget too large for the pool is refused by the engine with its message."""
    resolved = config.resolve()
    stages = max(1, min(most, (pool - resolved.initial_size) // max(1, resolved.budget)))
    return config.with_(stages=stages)


class StepCancelled(BaseException):
    """Raised in a method's thread when the step it belongs to was interrupted (not an error)."""


def step_workers(learners: list[ActiveLearner]) -> int:
    """Threads for one Step: one per core on a CPU (each learner trains with one torch thread), one on a GPU
    (its kernels queue on one device anyway)."""
    if len(learners) <= 1 or any(lrn.device.type != "cpu" for lrn in learners):
        return 1
    return max(1, min(len(learners), usable_cpus()))


@dataclass
class StepFailure:
    method: str
    message: str


@dataclass
class LiveSession:
    """Learners for ``methods`` under one ``config`` (its ``method`` field is ignored)."""

    key: str
    title: str
    config: ExperimentConfig
    methods: list[str]
    learners: dict[str, ActiveLearner] = field(default_factory=dict)
    source: Source | None = None
    signature: str = ""  # the settings it was started from (controls.Settings.signature)
    values: dict = field(default_factory=dict)  # their widget values (a link reopens them)

    @classmethod
    def create(cls, key: str, title: str, config: ExperimentConfig, methods: list[str],
               with_oracle: bool = False) -> "LiveSession":
        """Start one learner per method (loads the data and draws stage 0's labels; trains nothing,
        except the oracle when asked). Raises ConfigError / DatasetUnavailable for bad settings."""
        if not methods:
            from tavaal_core import ConfigError

            raise ConfigError("methods", "choose at least one method")
        ds = dataset_for(config)
        config = fit_stages(config, pool_size(config, ds))
        shared: dict = {}  # task models trained on the same labels are trained once (engine: ``shared``)
        learners = {m: ActiveLearner(config.with_(method=m), dataset=ds, shared=shared).start() for m in methods}
        first = learners[methods[0]]
        meta = DatasetMeta.from_dataset(first.dataset)
        source = Source(key, title, meta, {m: lrn.records for m, lrn in learners.items()}, learners, config=config)
        session = cls(key, title, config, list(methods), learners, source)
        if with_oracle:
            session.ensure_oracle()
        return session

    def ensure_oracle(self) -> tuple | None:
        """The oracle's boundary (2-d data), trained once per config and shared by every browser session."""
        if self.source.oracle is None and self.learners:
            learner = next(iter(self.learners.values()))
            self.source.oracle = _oracle(self.config.with_(method="random").to_json(), learner)
        return self.source.oracle

    @property
    def stage(self) -> int:
        """Stages every method has finished (they step together; a step cut short by a click elsewhere
        is completed by the next one)."""
        return min((lrn.stage for lrn in self.learners.values()), default=0)

    @property
    def max_stages(self) -> int:
        return self.config.stages

    @property
    def done(self) -> bool:
        return all(lrn.done for lrn in self.learners.values())

    @property
    def aligned(self) -> bool:
        """All methods at the same stage (False after a step was cut short)."""
        return len({lrn.stage for lrn in self.learners.values()}) <= 1

    def initial_labeled(self):
        return next(iter(self.learners.values())).pool.labeled if self.learners else None

    def step(self, progress: MethodProgress | None = None) -> list[StepFailure]:
        """One stage of every method. A method that fails is dropped from the session (its message kept),
        so the others stay in step.

        On a CPU the methods run in parallel threads, one per core (each learner trains with one torch
        thread and draws its randomness from its own generators, so the picks are those of a sequential
        step; tests/test_parallel_step.py). ``progress`` is called in this thread only, so it may draw
        Streamlit elements; when it raises (a click elsewhere stops the script), the methods still
        running stop at their next progress report and the step is completed by the next call."""
        target = self.stage + 1
        todo = [(i, m, lrn) for i, (m, lrn) in enumerate(self.learners.items())
                if not lrn.done and lrn.stage < target]  # skip those already there (an interrupted step)
        todo.sort(key=lambda job: -method_cost(job[1]))  # longest first: the workers finish together
        reports: queue.SimpleQueue = queue.SimpleQueue()
        cancel = threading.Event()

        def run(i: int, m: str, lrn: ActiveLearner) -> None:
            def report(phase: str, fraction: float, message: str) -> None:
                if cancel.is_set():
                    raise StepCancelled()
                reports.put((i, m, phase, fraction, message))
            lrn.step(report)

        def relay() -> None:
            while True:
                try:
                    job = reports.get_nowait()
                except queue.Empty:
                    return
                if progress is not None:
                    progress(*job)

        failures = []
        with COMPUTE_LOCK:
            pool = ThreadPoolExecutor(max_workers=step_workers([lrn for _, _, lrn in todo]),
                                      thread_name_prefix="tavaal-step")
            futures = {pool.submit(run, i, m, lrn): m for i, m, lrn in todo}
            try:
                pending = set(futures)
                while pending:
                    _, pending = wait(pending, timeout=0.1)
                    relay()
            finally:
                if any(not f.done() for f in futures):
                    cancel.set()  # interrupted: the others stop at their next progress report
                pool.shutdown(wait=True)
            for future, m in futures.items():
                error = future.exception()
                if error is None or isinstance(error, StepCancelled):
                    continue
                if isinstance(error, TavaalError):
                    failures.append(StepFailure(m, str(error)))
                else:  # a bug in a strategy must not take the page down: report it, drop the method
                    failures.append(StepFailure(m, f"{type(error).__name__}: {error}"))
        for f in failures:
            self.drop(f.method)
        return failures

    def drop(self, method: str) -> None:
        self.learners.pop(method, None)
        if method in self.methods:
            self.methods.remove(method)
        if self.source is not None:
            self.source.records.pop(method, None)
            self.source.learners.pop(method, None)

    def failure_text(self, failure: StepFailure) -> str:
        return f"{method_label(failure.method)} could not run and was left out of this session: {failure.message}"
