"""The run store: one folder per experiment run, plain files only (JSON, NPZ, Parquet), no pickle.

Layout of a run folder::

    <run>/config.json          the experiment spec (config, methods, trials, preset, description)
    <run>/environment.json     python / torch / numpy versions, device, CPU / GPU name, git commit
    <run>/status.json          state (running | finished | failed | interrupted), progress, pid, times, error
    <run>/metrics.parquet      one row per (trial, method, stage): accuracy, labeled_count, entropy, timings
    <run>/records/<method>/trial<t>/stage<s>.json   a StageRecord's scalars (+ trial, seed)
    <run>/records/<method>/trial<t>/stage<s>.npz    its arrays (np.savez_compressed; read with allow_pickle=False)

Every write goes to a temporary file in the same folder, is fsync'ed and then renamed over the target
(``os.replace``), so a killed process leaves either the old file or the new one, never half of one. A
stage counts as finished once its ``.json`` exists: the ``.npz`` is written first.

Reading never unpickles. A corrupt or truncated file raises :class:`StoreError` naming the file;
:func:`list_runs` lists a broken run as broken (with that message) instead of failing.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import TavaalError
from .records import StageRecord

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.parquet"
RECORDS_DIR = "records"

STATES = ("created", "running", "finished", "failed", "interrupted")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_STAGE_RE = re.compile(r"^stage(\d+)\.json$")
_TRIAL_RE = re.compile(r"^trial(\d+)$")

# Metric columns every row carries (timings are added as ``time_<phase>`` columns).
METRIC_COLUMNS = ("trial", "seed", "method", "stage", "labeled_count", "accuracy", "mean_iou", "class_entropy",
                  "class_entropy_normalized", "selected_count", "candidate_count", "score_name", "time_total")


class StoreError(TavaalError):
    """A run folder or one of its files is missing, corrupt or inconsistent; the message names the file."""


# -- atomic writes ---------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync it, and rename it over
    ``path``. The temporary file is removed if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def remove_temp_files(run_dir) -> int:
    """Delete temporary files a killed writer left behind (``.<name>.*.tmp``); call only while no other
    process writes the run. Returns how many were removed."""
    removed = 0
    for tmp in Path(run_dir).rglob(".*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_json(path, obj) -> None:
    data = json.dumps(obj, indent=1, sort_keys=False, default=_json_default).encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; the store keeps plain arrays only")
    # compressed: features after a ReLU are a third zeros (digits_demo's run folder: 29 -> about 19 MB)
    atomic_write(path, lambda f: np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()}))


# -- reading, with errors that name the file ---------------------------------------------------------
def read_json(path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"corrupt or truncated JSON ({e.msg} at line {e.lineno})"
        raise StoreError(f"{path}: {what}") from None


def _read_json_object(path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_npz(path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Every array (or the named ones) of an ``.npz``, loaded with ``allow_pickle=False``."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: file is missing")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files) if keys is None else [k for k in keys if k in npz.files]
            return {k: npz[k] for k in names}
    except Exception as e:  # BadZipFile, zlib.error, ValueError (object arrays: pickle refused), EOFError ...
        raise StoreError(f"{path}: corrupt or truncated array file ({type(e).__name__}: {e})") from None


# -- run folders -------------------------------------------------------------------------------------
def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def check_run_name(name: str) -> str:
    from .errors import ConfigError

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError("name", f"must be 1-120 characters of letters, digits, '.', '_' or '-' "
                                  f"(starting with a letter or digit), got {name!r}")
    return name


def new_run_dir(root, name: str, exclusive: bool = False) -> Path:
    """Create and return ``root/name`` (``name-2``, ``name-3`` ... if taken; with ``exclusive`` a taken
    name is refused with ``ConfigError('name', ...)``). The folder is made atomically, so two processes
    never share one."""
    from .errors import ConfigError

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    check_run_name(name)
    if exclusive:
        try:
            (root / name).mkdir()
        except FileExistsError:
            raise ConfigError("name", f"a run folder {root / name} exists already; choose another name, or "
                                      f"continue it with --resume") from None
        return root / name
    for i in range(1, 10_000):
        candidate = root / (name if i == 1 else f"{name}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise StoreError(f"{root}: no free run folder name for {name!r}")


def is_run_dir(path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / n).exists() for n in (CONFIG_FILE, STATUS_FILE, RECORDS_DIR))


def require_run_dir(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such run folder")
    if not is_run_dir(path):
        raise StoreError(f"{path}: not a run folder (no {CONFIG_FILE}, {STATUS_FILE} or {RECORDS_DIR}/)")
    return path


def write_spec(run_dir, spec: dict) -> None:
    atomic_write_json(Path(run_dir) / CONFIG_FILE, {"format": FORMAT_VERSION, **spec})


def read_spec(run_dir) -> dict:
    """The experiment spec as written by :func:`write_spec` (a plain dict; see ``experiment.ExperimentSpec``)."""
    path = Path(run_dir) / CONFIG_FILE
    spec = _read_json_object(path)
    for key, kind in (("config", dict), ("methods", list), ("trials", int)):
        if not isinstance(spec.get(key), kind):
            raise StoreError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    return spec


def write_environment(run_dir, env: dict) -> None:
    atomic_write_json(Path(run_dir) / ENVIRONMENT_FILE, env)


def read_environment(run_dir) -> dict:
    return _read_json_object(Path(run_dir) / ENVIRONMENT_FILE)


def write_status(run_dir, status: dict) -> None:
    status = dict(status, updated=now_iso())
    atomic_write_json(Path(run_dir) / STATUS_FILE, status)


def read_status(run_dir) -> dict:
    path = Path(run_dir) / STATUS_FILE
    status = _read_json_object(path)
    if status.get("state") not in STATES:
        raise StoreError(f"{path}: unknown state {status.get('state')!r}; expected one of {', '.join(STATES)}")
    return status


def update_status(run_dir, **changes) -> dict:
    """Read, change and atomically rewrite ``status.json`` (only the owning process writes it)."""
    try:
        status = read_status(run_dir)
    except StoreError:
        status = {}
    status.update(changes)
    write_status(run_dir, status)
    return status


LOCK_FILE = ".lock"


def lock_run(run_dir, wait_s: float = 2.0):
    """Take the run's writer lock (an exclusive ``flock`` on ``<run>/.lock``, released by the OS when the
    process ends, even by SIGKILL). Returns the open lock file: close it to release. Raises StoreError
    when another process holds it. A no-op lock where ``fcntl`` is missing."""
    import time

    handle = open(Path(run_dir) / LOCK_FILE, "a+b")
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
                raise StoreError(f"{run_dir}: another process is running this run; stop it before resuming") from None
            time.sleep(0.05)


def run_locked(run_dir) -> bool | None:
    """Whether a live process holds the run's writer lock; None when the run has no lock file (older
    runs, or never started) or locks are unavailable."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None
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
    """The state to show: a run whose status says ``running`` but whose process is gone was killed. Asks
    the run's writer lock when there is one (immune to pid reuse), else whether the pid is alive."""
    state = status.get("state", "created")
    if state not in ("running", "created") or not status.get("pid"):
        return state
    locked = run_locked(run_dir) if run_dir is not None else None
    if locked is None:
        locked = process_alive(status.get("pid"), status.get("host"))
    return state if locked else "interrupted"


# -- records -----------------------------------------------------------------------------------------
def record_paths(run_dir, method: str, trial: int, stage: int) -> tuple[Path, Path]:
    folder = Path(run_dir) / RECORDS_DIR / method / f"trial{int(trial)}"
    return folder / f"stage{int(stage)}.json", folder / f"stage{int(stage)}.npz"


def save_record(run_dir, trial: int, record: StageRecord, seed: int | None = None) -> tuple[Path, Path]:
    """Write one stage's record: arrays first, then the scalars (whose presence marks the stage done)."""
    scalars, arrays = record.split()
    json_path, npz_path = record_paths(run_dir, record.method, trial, record.stage)
    atomic_write_npz(npz_path, arrays)
    atomic_write_json(json_path, {"format": FORMAT_VERSION, "trial": int(trial), "seed": seed,
                                  "selected_count": int(len(record.selected)),
                                  "candidate_count": int(len(record.candidates)), **scalars})
    return json_path, npz_path


def load_record_scalars(run_dir, method: str, trial: int, stage: int) -> dict:
    json_path, _ = record_paths(run_dir, method, trial, stage)
    scalars = _read_json_object(json_path)
    for key in ("stage", "method", "accuracy", "labeled_count"):
        if key not in scalars:
            raise StoreError(f"{json_path}: field {key!r} is missing")
    if scalars["stage"] != stage or scalars["method"] != method:
        raise StoreError(f"{json_path}: holds stage {scalars['stage']} of {scalars['method']!r}, "
                         f"expected stage {stage} of {method!r}")
    return scalars


def load_record(run_dir, method: str, trial: int, stage: int) -> StageRecord:
    json_path, npz_path = record_paths(run_dir, method, trial, stage)
    scalars = load_record_scalars(run_dir, method, trial, stage)
    arrays = read_npz(npz_path)
    try:
        return StageRecord.join(scalars, arrays)
    except TypeError as e:
        raise StoreError(f"{json_path}: does not hold a complete stage record ({e})") from None


def finished_stages(run_dir, method: str, trial: int) -> int:
    """How many stages (0, 1, ... without gaps) of (method, trial) are on disk."""
    stage = 0
    while True:
        json_path, npz_path = record_paths(run_dir, method, trial, stage)
        if not (json_path.is_file() and npz_path.is_file()):
            return stage
        stage += 1


def load_records(run_dir, method: str, trial: int, stages: int | None = None) -> list[StageRecord]:
    n = finished_stages(run_dir, method, trial)
    if stages is not None:
        n = min(n, stages)
    return [load_record(run_dir, method, trial, s) for s in range(n)]


def stored_methods(run_dir) -> list[str]:
    folder = Path(run_dir) / RECORDS_DIR
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def stored_trials(run_dir, method: str | None = None) -> list[int]:
    """Trials with at least one finished stage (for any method, or for ``method``)."""
    trials = set()
    for m in ([method] if method else stored_methods(run_dir)):
        folder = Path(run_dir) / RECORDS_DIR / m
        if folder.is_dir():
            for p in folder.iterdir():
                match = _TRIAL_RE.match(p.name)
                if match and (p / "stage0.json").is_file():
                    trials.add(int(match.group(1)))
    return sorted(trials)


def _run_methods(run_dir) -> list[str]:
    try:
        methods = [m for m in read_spec(run_dir)["methods"] if isinstance(m, str)]
    except StoreError:
        methods = []
    return methods + [m for m in stored_methods(run_dir) if m not in methods]


def load_trial_records(run_dir, trial: int = 0, methods: Iterable[str] | None = None) -> dict[str, list[StageRecord]]:
    """One trial of a run in the shape the app's views take: ``{method: [StageRecord per stage]}`` (the
    finished stages of each method, in the run's method order; methods without any stage are left out)."""
    run_dir = require_run_dir(run_dir)
    out = {}
    for method in (list(methods) if methods is not None else _run_methods(run_dir)):
        records = load_records(run_dir, method, trial)
        if records:
            out[method] = records
    return out


# -- metrics -----------------------------------------------------------------------------------------
def _phase_column(phase: str) -> str:
    return "time_" + re.sub(r"[^a-z0-9]+", "_", phase.lower()).strip("_")


def metrics_row(scalars: dict, trial: int | None = None, seed: int | None = None) -> dict:
    """One metrics row from a record's scalars (a StageRecord.split()[0] or a stored stage JSON)."""
    timings = scalars.get("timings") or {}
    row = {
        "trial": int(scalars.get("trial", trial) if trial is None else trial),
        "seed": scalars.get("seed", seed) if seed is None else seed,
        "method": scalars["method"],
        "stage": int(scalars["stage"]),
        "labeled_count": int(scalars["labeled_count"]),
        "accuracy": float(scalars["accuracy"]),
        "mean_iou": math.nan if scalars.get("mean_iou") is None else float(scalars["mean_iou"]),  # segmentation
        "class_entropy": float(scalars.get("class_entropy", math.nan)),
        "class_entropy_normalized": float(scalars.get("class_entropy_normalized", math.nan)),
        "selected_count": scalars.get("selected_count"),
        "candidate_count": scalars.get("candidate_count"),
        "score_name": scalars.get("score_name", ""),
        "time_total": float(sum(float(v) for v in timings.values())),
    }
    for phase, seconds in timings.items():
        row[_phase_column(phase)] = float(seconds)
    return row


def record_metrics_row(record: StageRecord, trial: int, seed: int | None) -> dict:
    scalars, _ = record.split()
    row = metrics_row(scalars, trial, seed)
    row["selected_count"] = int(len(record.selected))
    row["candidate_count"] = int(len(record.candidates))
    return row


def _rows_frame(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows)
    for col in METRIC_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64")
    if len(frame):
        frame = frame.sort_values(["trial", "method", "stage"], kind="stable").reset_index(drop=True)
    for col in ("selected_count", "candidate_count", "seed"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    front = [c for c in METRIC_COLUMNS]
    return frame[front + sorted(c for c in frame.columns if c not in front)]


def write_metrics(run_dir, rows: list[dict]) -> None:
    frame = _rows_frame(rows)
    atomic_write(Path(run_dir) / METRICS_FILE, lambda f: frame.to_parquet(f, index=False))


def _stage_json_files(run_dir) -> list[tuple[str, int, int, Path]]:
    out = []
    root = Path(run_dir) / RECORDS_DIR
    if not root.is_dir():
        return out
    for mdir in sorted(p for p in root.iterdir() if p.is_dir()):
        for tdir in sorted(p for p in mdir.iterdir() if p.is_dir()):
            tm = _TRIAL_RE.match(tdir.name)
            if not tm:
                continue
            for f in tdir.iterdir():
                sm = _STAGE_RE.match(f.name)
                if sm and f.with_suffix(".npz").is_file():
                    out.append((mdir.name, int(tm.group(1)), int(sm.group(1)), f))
    return out


def metrics_rows_from_records(run_dir) -> list[dict]:
    """Metrics rows rebuilt from the stored stage JSONs (scalars only; arrays are not read)."""
    rows = []
    for method, trial, stage, _ in _stage_json_files(run_dir):
        scalars = load_record_scalars(run_dir, method, trial, stage)
        row = metrics_row(scalars, trial)
        rows.append(row)
    return rows


def load_metrics(run_dir):
    """The run's metrics as a DataFrame (one row per trial/method/stage). Read from ``metrics.parquet``;
    rebuilt from the stage records when that file is missing or behind them (a run killed between
    writing a record and the table)."""
    import pandas as pd

    run_dir = require_run_dir(run_dir)
    path = run_dir / METRICS_FILE
    on_disk = len(_stage_json_files(run_dir))
    if path.is_file():
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise StoreError(f"{path}: corrupt or truncated metrics table ({type(e).__name__}: {e})") from None
        missing = [c for c in ("trial", "method", "stage", "accuracy", "labeled_count") if c not in frame.columns]
        if missing:
            raise StoreError(f"{path}: lacks the columns {', '.join(missing)}")
        if len(frame) == on_disk:
            return frame
    return _rows_frame(metrics_rows_from_records(run_dir))


# -- environment -------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> dict:
    repo = Path(__file__).resolve().parent.parent
    out = {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                   capture_output=True, text=True, timeout=5)
            if dirty.returncode == 0:
                out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def environment(device: str = "cpu") -> dict:
    """Versions and hardware, for ``environment.json``."""
    import pandas
    import scipy
    import torch

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "argv": list(sys.argv),
        "recorded": now_iso(),
    }
    if torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu"] = torch.cuda.get_device_name(0)
    env.update(_git_commit())
    return env


# -- listing, deleting, exporting ----------------------------------------------------------------------
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
                "progress": f"{self.done}/{self.total}", "created": self.created, "error": self.error,
                "path": str(self.path)}


def run_info(run_dir) -> RunInfo:
    """Summary of one run; raises StoreError when its config or status is unreadable."""
    run_dir = require_run_dir(run_dir)
    spec = read_spec(run_dir)
    cfg = spec["config"]
    methods = [str(m) for m in spec["methods"]]
    stages = int(cfg.get("stages", 0) or 0)
    trials = int(spec["trials"])
    status_path = run_dir / STATUS_FILE
    status = read_status(run_dir) if status_path.exists() else {"state": "created"}
    done = sum(min(finished_stages(run_dir, m, t), stages) for m in methods for t in range(trials))
    return RunInfo(
        path=run_dir, name=run_dir.name, state=effective_state(status, run_dir), broken=False,
        error=str(status.get("error") or ""), dataset=str(cfg.get("dataset", "")), preset=spec.get("preset"),
        description=str(spec.get("description") or ""), methods=methods, trials=trials, stages=stages,
        done=done, total=len(methods) * trials * stages, created=str(spec.get("created") or status.get("created") or ""),
        updated=str(status.get("updated") or ""), pid=status.get("pid"), current=dict(status.get("current") or {}),
        run_seconds=float(status.get("run_seconds") or 0.0),
    )


def list_runs(root="runs") -> list[RunInfo]:
    """Every run folder under ``root``, newest first. A run whose files are unreadable is listed with
    ``broken=True`` and the error, never raised."""
    root = Path(root)
    if not root.is_dir():
        return []
    infos = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not is_run_dir(path):
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


def export_run(run_dir, to=None) -> list[Path]:
    """Write the run's metrics (CSV), its learning-curve statistics and pairwise p-values (CSV), the
    selections (JSON: method -> trial -> stage -> picked indices in order) and the candidates' scores
    (JSON) into ``to`` (default ``<run>/export``). Returns the files written."""
    from . import statistics

    run_dir = require_run_dir(run_dir)
    out = Path(to) if to is not None else run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    metrics = load_metrics(run_dir)

    def write_csv(name, frame):
        path = out / name
        data = frame.to_csv(index=False).encode("utf-8")
        atomic_write(path, lambda f: f.write(data))
        files.append(path)

    write_csv("metrics.csv", metrics)
    if len(metrics):
        write_csv("curves.csv", statistics.learning_curve_frame(metrics))
        write_csv("pairwise_tests.csv", statistics.pairwise_tests(metrics))
    selections: dict = {}
    scores: dict = {}
    for method in _run_methods(run_dir):
        for trial in stored_trials(run_dir, method):
            for record in load_records(run_dir, method, trial):
                selections.setdefault(method, {}).setdefault(str(trial), {})[str(record.stage)] = record.selected.tolist()
                scores.setdefault(method, {}).setdefault(str(trial), {})[str(record.stage)] = {
                    "score_name": record.score_name,
                    "higher_is_better": bool(record.higher_is_better),
                    "candidates": record.candidates.tolist(),
                    "scores": [None if not math.isfinite(x) else x for x in record.candidate_scores.astype(float).tolist()],
                    "selected": record.selected.tolist(),
                }
    for name, obj in (("selections.json", selections), ("scores.json", scores)):
        path = out / name
        atomic_write_json(path, obj)
        files.append(path)
    return files
