"""How a run's units run: one after another in this process, in parallel worker processes on this machine,
or as Ray tasks on a cluster. The records do not depend on which (same device): every random draw of a
unit comes from its own (seed, stage, purpose), and each unit runs with the same CPU thread count.

    SequentialExecutor()                     the units one after another, in the driver's process
    LocalExecutor(workers=N)                 N worker processes on this machine (``--executor local``)
    RayExecutor(address=None | "auto" | "host:port")   one Ray task per unit (``--executor ray``)

Where results are written: each unit writes its own stage records (and its ``unit.json``) into the run
folder, whatever process runs it; the driver writes only ``status.json`` and ``metrics.parquet``, and
follows the units through their files. For Ray that means the run folder must be on storage every node
mounts at the same path (NFS, a cluster file system). We chose this over returning records to the driver:

- a stage is durable the moment it is computed, in the same atomic files as a local run, so a killed task
  or a killed driver loses at most the stage it was in, and ``--resume`` works the same everywhere;
- the records hold arrays (features of the analysis sample, candidates' scores): several MB a stage for a
  CIFAR run, which would otherwise all pass through the driver's memory and Ray's object store;
- one code path writes records, whether a unit runs in the driver, a local worker or a Ray task.

A task first checks that the run folder it was given is the driver's (``config.json``'s ``run_id``), so
a node without the shared storage fails its unit with a message instead of writing a stray folder.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from pathlib import Path

from . import store
from .errors import TavaalError

POLL_S = 0.2  # how often the driver reads the running units' files
RAY_VERSION = "2.60.0"
RAY_INSTALL = f"pip install 'ray=={RAY_VERSION}'"
EXECUTORS = ("local", "ray")


class RayUnavailable(TavaalError):
    """``--executor ray`` without Ray installed."""


def import_ray():
    """The ``ray`` module, or RayUnavailable saying how to install it (Ray is an optional dependency)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"executor: Ray is not installed; install it with: {RAY_INSTALL} "
                             "(or use --executor local)") from None
    return ray


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def unit_threads(spec, threads: int | None = None) -> int | None:
    """CPU threads for one unit: ``threads`` when given, else 1 for the small models on a CPU (their ops are
    too small to split; see training.small_model_cpu_threads), else torch's default."""
    from .training import small_model_cpu_threads

    if threads:
        return int(threads)
    config = spec.config.resolve()
    if config.device == "cuda":
        return None
    return small_model_cpu_threads(config.model)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _wants_gpu(spec) -> bool:
    import torch

    return spec.config.device == "cuda" or (spec.config.device == "auto" and torch.cuda.is_available())


def _one_line(e: BaseException) -> str:
    from .experiment import _one_line as one_line

    return one_line(e)


# -- in this process ---------------------------------------------------------------------------------------
class SequentialExecutor:
    """The units one after another in the driver's process (the first failure stops the run)."""

    name = "sequential"

    def describe(self, experiment=None, units=()) -> str:
        return "sequential (the driver's process)"

    def run(self, experiment, driver, units) -> None:
        runner = experiment.runner()
        runner.session = driver.status["session"]
        first = experiment.units()[0] if experiment.units() else None
        for unit in units:
            gaps = driver.plan[unit]
            learner = None
            if experiment._first_learner is not None and unit == first and len(gaps) == experiment.spec.stages:
                learner = experiment._first_learner
            experiment._first_learner = None
            runner.run(unit, driver, learner, gaps)


# -- worker processes on this machine ----------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver dies (even by SIGKILL), so no orphan keeps
    writing into a run that a resumed driver has taken over."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _local_worker(conn, run_dir: str, device: str | None, threads: int | None, session: str, index: int,
                  parent_pid: int, gpu: str | None) -> None:
    """A worker process: takes units from ``conn`` one at a time, runs each, answers done / failed."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the driver died before the line above took effect
        os._exit(1)
    if gpu is not None:  # before CUDA is first touched: this worker sees one GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which stops the workers
    signal.signal(signal.SIGTERM, _raise_interrupt)  # the driver's stop: record 'interrupted' and leave
    from .experiment import Experiment, UnitRunner

    def heartbeat():
        if os.getppid() != parent_pid:  # the driver is gone (where PDEATHSIG is unavailable)
            os._exit(1)

    try:
        experiment = Experiment.open(run_dir, device=device)
        _set_threads(unit_threads(experiment.spec, threads))
        runner = UnitRunner(run_dir, experiment.spec, worker=f"local worker {index}", session=session,
                            heartbeat=heartbeat)
    except BaseException as e:  # cannot even open the run: fail whatever it is given
        runner, startup_error = None, _one_line(e)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        unit = store.Unit.from_list(message)
        try:
            if runner is None:
                raise TavaalError(startup_error)
            runner.run(unit)
            reply = ("done", message, "")
        except KeyboardInterrupt:
            return
        except BaseException as e:
            reply = ("failed", message, _one_line(e))
        try:
            conn.send(reply)
        except OSError:
            return


class _Worker:
    def __init__(self, ctx, index: int, args: tuple, gpu: str | None):
        self.index = index
        self.conn, child = ctx.Pipe()
        from .embedding import _main_module_hidden

        self.proc = ctx.Process(target=_local_worker, args=(child, *args[:4], index, os.getpid(), gpu),
                                name=f"tavaal-worker-{index}", daemon=True)
        with _main_module_hidden():  # the worker needs nothing from __main__: never re-run a script in it
            self.proc.start()
        child.close()
        self.unit: store.Unit | None = None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class LocalExecutor:
    """``workers`` processes on this machine (default: one per usable CPU for a CPU run, one per GPU for a
    GPU run, never more than the units), each running one unit at a time with ``threads`` CPU threads (1
    for the small models). A worker that dies fails only its unit; a new worker takes the waiting units."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None):
        self.workers = workers
        self.threads = threads

    def planned_workers(self, experiment, units) -> int:
        if self.workers:
            n = self.workers
        elif _wants_gpu(experiment.spec):
            import torch

            n = max(1, torch.cuda.device_count())
        else:
            n = max(1, usable_cpus() // (unit_threads(experiment.spec, self.threads) or 1))
        return max(1, min(n, len(units))) if units else 0

    def describe(self, experiment=None, units=()) -> str:
        n = self.planned_workers(experiment, units) if experiment is not None else self.workers
        return f"local ({n} worker process{'es' if n != 1 else ''})"

    def run(self, experiment, driver, units) -> None:
        import multiprocessing as mp
        from multiprocessing.connection import wait

        if not units:
            return
        # spawn, not fork: a forked child would inherit torch's threads and locks mid-state
        ctx = mp.get_context("spawn")
        n = self.planned_workers(experiment, units)
        gpus: list[str] = []
        if _wants_gpu(experiment.spec):
            import torch

            # the GPUs this process may use, by the names CUDA_VISIBLE_DEVICES gave them (if it is set)
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            gpus = visible or [str(i) for i in range(torch.cuda.device_count())]
        args = (str(experiment.run_dir), experiment.spec.config.device, self.threads, driver.status["session"])
        stages = experiment.spec.stages
        queue = deque(units)
        counter = [0]

        def start_worker() -> _Worker:
            index = counter[0]
            counter[0] += 1
            return _Worker(ctx, index, args, gpus[index % len(gpus)] if gpus else None)

        workers = [start_worker() for _ in range(n)]
        try:
            while queue or any(w.unit for w in workers):
                for w in workers:
                    if w.unit is None and queue and w.proc.is_alive():
                        w.unit = queue.popleft()
                        try:
                            w.conn.send(w.unit.to_list())
                        except OSError:
                            pass  # a dead worker: found below
                busy = [w for w in workers if w.unit is not None]
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=POLL_S)
                for w in list(busy):
                    reply = None
                    try:
                        if w.conn.poll():
                            reply = w.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                    unit = w.unit
                    if reply is not None:
                        w.unit = None
                        driver.poll([unit])
                        if reply[0] == "done":
                            driver.unit_finished(unit)
                        else:
                            driver.unit_failed(unit, reply[2])
                    elif not w.proc.is_alive():
                        w.proc.join()
                        w.unit = None
                        driver.poll([unit])
                        if unit.finished(experiment.run_dir, stages) >= stages:
                            driver.unit_finished(unit)
                        else:
                            stage = unit.finished(experiment.run_dir, stages)
                            driver.unit_failed(unit, f"worker process {w.proc.pid} ended ({_exit_text(w.proc.exitcode)}) "
                                                     f"during stage {stage}")
                        workers.remove(w)
                        if queue:
                            workers.append(start_worker())
                driver.poll([w.unit for w in workers if w.unit is not None])
        except BaseException:
            _stop_workers(workers, graceful=False)
            raise
        _stop_workers(workers, graceful=True)


def _stop_workers(workers: list[_Worker], graceful: bool) -> None:
    """Idle workers are told to leave; on an interrupt, busy ones get SIGTERM (their unit records
    'interrupted'); any still alive after a grace period are killed."""
    for w in workers:
        if graceful or w.unit is None:
            try:
                w.conn.send(None)
            except OSError:
                pass
        elif w.proc.is_alive():
            w.proc.terminate()
    deadline = time.monotonic() + 10.0
    for w in workers:
        w.proc.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(5.0)
        w.conn.close()


# -- Ray ---------------------------------------------------------------------------------------------------
_RAY_RUNNERS: dict = {}  # a Ray worker process keeps its runner (and loaded data sets) for the next unit


def _ray_unit(run_dir: str, unit_list: list, device: str | None, threads: int | None, session: str,
              run_id: str | None) -> tuple[str, str]:
    """One unit as a Ray task; returns ("done", "") or ("failed", message). Writes into ``run_dir``, which
    must be the driver's run folder (shared storage)."""
    import socket

    from .experiment import Experiment, UnitRunner

    unit = store.Unit.from_list(unit_list)
    try:
        path = Path(run_dir)
        try:
            spec_data = store.read_spec(path)
        except store.StoreError:
            spec_data = None
        if spec_data is None or (run_id and spec_data.get("run_id") != run_id):
            return ("failed", f"the run folder {run_dir} is not reachable from {socket.gethostname()}: put the "
                              "runs folder (--output) on storage every Ray node mounts at the same path")
        key = (run_dir, device, session)
        runner = _RAY_RUNNERS.get(key)
        if runner is None:
            experiment = Experiment.open(path, device=device)
            _set_threads(unit_threads(experiment.spec, threads))
            try:
                import ray

                node = ray.get_runtime_context().get_node_id()[:8]
            except Exception:  # noqa: BLE001 (only a label)
                node = "?"
            _RAY_RUNNERS.clear()
            runner = _RAY_RUNNERS[key] = UnitRunner(path, experiment.spec, worker=f"ray node {node}",
                                                    session=session)
        runner.run(unit)
        return ("done", "")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 (reported as the unit's failure, the other units go on)
        return ("failed", _one_line(e))


def _runtime_env() -> dict:
    """Ship this very package to every Ray worker (so a cluster runs the driver's code), with the passive
    OpenMP waits of the rest of the project."""
    package = Path(__file__).resolve().parent
    return {"py_modules": [str(package)], "env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}


class RayExecutor:
    """One Ray task per unit. ``address``: None starts a local Ray instance (``num_cpus`` CPUs, default all);
    ``"auto"`` or ``"host:port"`` joins a running cluster (``ray start --head`` ...). Each task declares its
    resources: 1 GPU for a GPU run, else ``threads`` CPUs (default 1). Tasks are not retried: a failed or
    lost unit is reported, and ``--resume`` reruns it."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, threads: int | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self.threads = threads

    def describe(self, experiment=None, units=()) -> str:
        return f"ray ({self.address or 'local instance'})"

    def run(self, experiment, driver, units) -> None:
        import logging

        if not units:
            return
        ray = import_ray()
        started_here = False
        if not ray.is_initialized():
            options = dict(include_dashboard=False, logging_level=logging.WARNING, runtime_env=_runtime_env())
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.num_cpus or usable_cpus(), **options)
            started_here = True
        refs: dict = {}
        try:
            gpu = _wants_gpu(experiment.spec) or (experiment.spec.config.device == "auto"
                                                   and ray.cluster_resources().get("GPU", 0) > 0)
            cpus = self.threads or 1
            task = ray.remote(_ray_unit)
            run_dir = str(experiment.run_dir.resolve())
            run_id = store.read_spec(experiment.run_dir).get("run_id")
            threads = self.threads  # None: the unit's rule (1 for the small models on a CPU)
            for unit in units:
                ref = task.options(num_cpus=cpus, num_gpus=1 if gpu else 0, max_retries=0,
                                   name=f"tavaal {unit.key}").remote(
                    run_dir, unit.to_list(), experiment.spec.config.device, threads, driver.status["session"], run_id)
                refs[ref] = unit
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_S)
                for ref in ready:
                    unit = refs.pop(ref)
                    driver.poll([unit])
                    try:
                        outcome = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 (a worker or node lost: the unit failed)
                        outcome = ("failed", f"the Ray task was lost ({type(e).__name__}: "
                                             f"{(str(e).strip().splitlines() or [''])[0]})")
                    if outcome[0] == "done":
                        driver.unit_finished(unit)
                    else:
                        driver.unit_failed(unit, outcome[1])
                driver.poll(list(refs.values()))
        except BaseException:
            for ref in refs:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            raise
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str = "local", workers: int | None = None, ray_address: str | None = None,
                  threads: int | None = None):
    """The executor the CLI's ``--executor`` names. ``local`` with one worker runs in the driver's process."""
    if name == "ray":
        import_ray()
        return RayExecutor(address=ray_address, num_cpus=workers, threads=threads)
    if name != "local":
        from .errors import ConfigError

        raise ConfigError("executor", f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    if workers == 1:
        return SequentialExecutor()
    return LocalExecutor(workers=workers, threads=threads)
