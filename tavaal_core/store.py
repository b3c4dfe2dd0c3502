"""The run store: one folder per experiment run, plain files only (JSON, NPZ, Parquet), no pickle.

Layout of a run folder::

    <run>/config.json          the experiment spec (config, methods, trials, preset, description)
    <run>/environment.json     python / torch / numpy versions, device, CPU / GPU name, git commit
    <run>/status.json          state (running | finished | failed | interrupted), progress, pid, times, error
    <run>/metrics.parquet      one row per (trial, method, stage): accuracy, labeled_count, entropy, timings
    <run>/records/<method>/trial<t>/stage<s>.json   a StageRecord's scalars (+ trial, seed)
    <run>/records/<method>/trial<t>/stage<s>.npz    its arrays (np.savez_compressed; read with allow_pickle=False)
    <run>/records/<method>/trial<t>/unit.json       the unit's progress: state, stage, phase, host, pid, worker

A sweep (``config.json``'s ``sweep``: lists of values for config fields) runs every combination ("setting")
as its own units; setting ``k`` keeps its records in ``<run>/records/setting<k>/<method>/trial<t>/`` and
``<run>/records/setting<k>/setting.json`` names its values. One (setting, trial, method) is a *unit*: its
folder is written by one process only (the driver's loop, a local worker or a Ray task), while
``status.json`` and ``metrics.parquet`` are written by the driver only, so concurrent units never write
the same file.

Each stage JSON names the SHA-256 of its NPZ (``npz_sha256``) and carries one of its own content
(``sha256``), so a truncated, edited or swapped-in file is found when the record is read: reading
refuses it with a :class:`DamagedRecord` naming the file, and ``Experiment.run`` (resume) recomputes
it (stages are deterministic). Every path is kept inside its run folder: a symbolic link that leaves
it is refused, and so is a run folder that is itself a link.

Every write goes to a temporary file in the same folder, is fsync'ed and then renamed over the target
(``os.replace``), so a killed process leaves either the old file or the new one, never half of one. A
stage counts as finished once its ``.json`` exists: the ``.npz`` is written first.

Reading never unpickles. A corrupt or truncated file raises :class:`StoreError` naming the file;
:func:`list_runs` lists a broken run as broken (with that message) instead of failing.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
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

FORMAT_VERSION = 2  # 2: stage JSONs carry npz_sha256 and sha256 (format-1 records are read unchecked)
CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.parquet"
RECORDS_DIR = "records"

STATES = ("created", "running", "finished", "failed", "interrupted")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_STAGE_RE = re.compile(r"^stage(\d+)\.json$")
_TRIAL_RE = re.compile(r"^trial(\d+)$")
_METHOD_RE = re.compile(r"^[a-z0-9_]{1,64}$")  # registered method names; never a path
_SETTING_RE = re.compile(r"^setting(\d+)$")
UNIT_FILE = "unit.json"
SETTING_FILE = "setting.json"
UNIT_STATES = ("done", "running", "failed", "waiting")

# Metric columns every row carries (timings are added as ``time_<phase>`` columns).
METRIC_COLUMNS = ("trial", "seed", "method", "stage", "labeled_count", "accuracy", "mean_iou", "class_entropy",
                  "class_entropy_normalized", "selected_count", "candidate_count", "score_name", "time_total")


class StoreError(TavaalError):
    """A run folder or one of its files is missing, corrupt or inconsistent; the message names the file."""


class DamagedRecord(StoreError):
    """A stage record is missing, unreadable or fails its checksum; resuming the run recomputes it."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}; resume the run to recompute it")


class RunBusy(StoreError):
    """Another live process holds the run's writer lock."""


# -- paths stay inside their run folder --------------------------------------------------------------
def inside(run_dir, path) -> Path:
    """``path`` when it resolves inside ``run_dir`` (following any symbolic links on the way), else a
    StoreError naming it: a crafted or linked run folder never makes us read or write elsewhere."""
    path = Path(path)
    root = Path(run_dir).resolve()
    real = path.resolve()
    if real != root and root not in real.parents:
        raise StoreError(f"{path}: leads outside its run folder (to {real}); refused")
    return path


def run_file(run_dir, *parts) -> Path:
    return inside(run_dir, Path(run_dir).joinpath(*parts))


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


def atomic_write_npz(path, arrays: dict[str, np.ndarray]) -> str:
    """Write the arrays as one ``.npz``; returns the SHA-256 of the bytes written."""
    import io

    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; the store keeps plain arrays only")
    # compressed: features after a ReLU are a third zeros (digits_demo's run folder: 29 -> about 19 MB)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buffer.getvalue()
    atomic_write(path, lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


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


def read_npz(path, keys: Iterable[str] | None = None, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every array (or the named ones) of an ``.npz``, loaded with ``allow_pickle=False``; with ``sha256``
    the file's bytes must have that digest (else :class:`DamagedRecord`)."""
    import io

    path = Path(path)
    if not path.is_file():
        raise (DamagedRecord(path, "file is missing") if sha256 else StoreError(f"{path}: file is missing"))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StoreError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedRecord(path, "corrupt or truncated: its checksum does not match the record's "
                                  "(or the file was copied from another record)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
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
    """``path`` if it is a run folder; a StoreError naming it otherwise. A run folder that is a symbolic
    link is refused: following it would read, export or delete outside the folder of runs."""
    path = Path(path)
    if str(path).strip() == "":
        raise StoreError("run folder: give a folder (the path is empty)")
    if path.is_symlink():
        raise StoreError(f"{path}: is a symbolic link (to {path.resolve()}); give the run folder itself")
    if not path.exists():
        raise StoreError(f"{path}: no such run folder")
    if not is_run_dir(path):
        raise StoreError(f"{path}: not a run folder (no {CONFIG_FILE}, {STATUS_FILE} or {RECORDS_DIR}/)")
    return path


def write_spec(run_dir, spec: dict) -> None:
    atomic_write_json(run_file(run_dir, CONFIG_FILE), {"format": FORMAT_VERSION, **spec})


def validated_spec(run_dir):
    """The run's spec as an ``ExperimentSpec``, checked with the same rules as a new one (known methods,
    trials within bounds, every config value valid): a crafted ``config.json`` is refused, naming it."""
    from .errors import ConfigError
    from .experiment import ExperimentSpec

    return _spec(run_dir)[1]


def _spec(run_dir):
    from .errors import ConfigError
    from .experiment import ExperimentSpec

    path = run_file(run_dir, CONFIG_FILE)
    data = _read_json_object(path)
    try:
        return data, ExperimentSpec.from_dict(data)
    except ConfigError as e:
        raise StoreError(f"{path}: {e}") from None


def read_spec(run_dir) -> dict:
    """The experiment spec as written by :func:`write_spec` (a plain dict; see ``experiment.ExperimentSpec``),
    after the same checks as a new spec (:func:`validated_spec`)."""
    return _spec(run_dir)[0]


def write_environment(run_dir, env: dict) -> None:
    atomic_write_json(run_file(run_dir, ENVIRONMENT_FILE), env)


def read_environment(run_dir) -> dict:
    return _read_json_object(run_file(run_dir, ENVIRONMENT_FILE))


def write_status(run_dir, status: dict) -> None:
    status = dict(status, updated=now_iso())
    atomic_write_json(run_file(run_dir, STATUS_FILE), status)


def read_status(run_dir) -> dict:
    path = run_file(run_dir, STATUS_FILE)
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


# -- records -----------------------------------------------------------------------------------------
def setting_dir(run_dir, setting: int | None) -> Path:
    """Where a setting's units live: ``records/`` for a run without a sweep, else ``records/setting<k>/``."""
    root = Path(run_dir) / RECORDS_DIR
    if setting is None:
        return root
    if isinstance(setting, bool) or not isinstance(setting, (int, np.integer)) or setting < 0:
        raise StoreError(f"{run_dir}: setting {setting!r} is not a whole number >= 0")
    return root / f"setting{int(setting)}"


def unit_dir(run_dir, method: str, trial: int, setting: int | None = None) -> Path:
    """The folder of one unit (setting, trial, method): its stage records and its ``unit.json``."""
    return record_paths(run_dir, method, trial, 0, setting)[0].parent


def record_paths(run_dir, method: str, trial: int, stage: int, setting: int | None = None) -> tuple[Path, Path]:
    """Where a stage record lives. ``method`` must be a method name (never a path), ``trial``, ``stage``
    (and a sweep's ``setting``) whole numbers >= 0, and the folder must stay inside the run folder."""
    if not isinstance(method, str) or not _METHOD_RE.match(method):
        raise StoreError(f"{run_dir}: {method!r} is not a method name; refused as a record path")
    for name, value in (("trial", trial), ("stage", stage)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise StoreError(f"{run_dir}: {name} {value!r} is not a whole number >= 0")
    folder = setting_dir(run_dir, setting) / method / f"trial{int(trial)}"
    if folder.exists() or folder.is_symlink():
        inside(run_dir, folder)
    return folder / f"stage{int(stage)}.json", folder / f"stage{int(stage)}.npz"


def _content_sha256(payload: dict) -> str:
    """SHA-256 of a stage JSON's content without its own ``sha256`` field (canonical: sorted keys; floats
    survive the JSON round trip exactly, so a re-read gives the same digest)."""
    body = {k: v for k, v in payload.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_record(run_dir, trial: int, record: StageRecord, seed: int | None = None, setting: int | None = None,
                setting_values: dict | None = None) -> tuple[Path, Path]:
    """Write one stage's record: arrays first, then the scalars (whose presence marks the stage done),
    which name the arrays' SHA-256 and carry their own. A sweep's record also names its setting (index and
    values), so the metrics table can be rebuilt from the records alone."""
    scalars, arrays = record.split()
    json_path, npz_path = record_paths(run_dir, record.method, trial, record.stage, setting)
    npz_sha256 = atomic_write_npz(npz_path, arrays)
    extra = {} if setting is None else {"setting": int(setting), "setting_values": dict(setting_values or {})}
    payload = {"format": FORMAT_VERSION, "trial": int(trial), "seed": seed, **extra,
               "selected_count": int(len(record.selected)), "candidate_count": int(len(record.candidates)),
               **scalars, "npz_sha256": npz_sha256}
    payload = json.loads(json.dumps(payload, default=_json_default))  # plain JSON types, as a reader sees them
    payload["sha256"] = _content_sha256(payload)
    atomic_write_json(json_path, payload)
    return json_path, npz_path


def load_record_scalars(run_dir, method: str, trial: int, stage: int, seed: int | None = None,
                        setting: int | None = None) -> dict:
    """A stage JSON's scalars, checked: readable, its own checksum, and that it is the record of this
    (method, trial, stage) (and ``seed``, when given). A failing one raises :class:`DamagedRecord`."""
    json_path, _ = record_paths(run_dir, method, trial, stage, setting)
    if not json_path.is_file():
        raise DamagedRecord(json_path, "file is missing")
    try:
        scalars = _read_json_object(json_path)
    except StoreError as e:
        raise DamagedRecord(json_path, str(e).split(": ", 1)[-1]) from None
    for key in ("stage", "method", "accuracy", "labeled_count"):
        if key not in scalars:
            raise DamagedRecord(json_path, f"field {key!r} is missing")
    if scalars.get("format", 1) >= 2:
        if scalars.get("sha256") != _content_sha256(scalars):
            raise DamagedRecord(json_path, "checksum mismatch (edited or damaged)")
        if not isinstance(scalars.get("npz_sha256"), str):
            raise DamagedRecord(json_path, "field 'npz_sha256' is missing")
    if scalars["stage"] != stage or scalars["method"] != method or scalars.get("trial", trial) != trial:
        raise DamagedRecord(json_path, f"holds stage {scalars['stage']} of {scalars['method']!r} (trial "
                                       f"{scalars.get('trial')}), expected stage {stage} of {method!r} (trial {trial})")
    if seed is not None and scalars.get("seed") is not None and scalars["seed"] != seed:
        raise DamagedRecord(json_path, f"was made with seed {scalars['seed']}, this trial's seed is {seed}")
    if scalars.get("setting", setting) != setting:
        raise DamagedRecord(json_path, f"holds setting {scalars.get('setting')}, expected setting {setting}")
    return scalars


def load_record(run_dir, method: str, trial: int, stage: int, seed: int | None = None,
                setting: int | None = None) -> StageRecord:
    """One stage record, verified (see :func:`load_record_scalars`; its NPZ must match the JSON's
    checksum). A damaged record raises :class:`DamagedRecord` naming the file."""
    json_path, npz_path = record_paths(run_dir, method, trial, stage, setting)
    scalars = load_record_scalars(run_dir, method, trial, stage, seed, setting)
    try:
        arrays = read_npz(npz_path, sha256=scalars.get("npz_sha256") or None)
    except DamagedRecord:
        raise
    except StoreError as e:
        raise DamagedRecord(npz_path, str(e).split(": ", 1)[-1]) from None
    try:
        return StageRecord.join(scalars, arrays)
    except TypeError as e:
        raise DamagedRecord(json_path, f"does not hold a complete stage record ({e})") from None


def finished_stages(run_dir, method: str, trial: int, setting: int | None = None) -> int:
    """How many stages (0, 1, ... without gaps) of (method, trial) are on disk (files present; their
    content is checked when read)."""
    stage = 0
    while True:
        json_path, npz_path = record_paths(run_dir, method, trial, stage, setting)
        if not (json_path.is_file() and npz_path.is_file()):
            return stage
        stage += 1


def load_records(run_dir, method: str, trial: int, stages: int | None = None,
                 setting: int | None = None) -> list[StageRecord]:
    """The finished stages 0, 1, ... of (method, trial), verified. A stage missing before a later one
    (a lost file, not an unfinished run) raises :class:`DamagedRecord` naming it."""
    n = finished_stages(run_dir, method, trial, setting)
    if stages is not None:
        n = min(n, stages)
    if stages is None or n < stages:
        json_path, npz_path = record_paths(run_dir, method, trial, n, setting)
        later = [int(m.group(1)) for p in (json_path.parent.iterdir() if json_path.parent.is_dir() else [])
                 for m in [re.match(r"^stage(\d+)\.(json|npz)$", p.name)] if m]
        if any(s > n for s in later) or (json_path.is_file() != npz_path.is_file()):
            missing = npz_path if json_path.is_file() else json_path
            raise DamagedRecord(missing, "file is missing")
    return [load_record(run_dir, method, trial, s, setting=setting) for s in range(n)]


def _record_dirs(folder: Path) -> list[Path]:
    """Sub-folders that are real folders (a symbolic link in a run folder is never followed)."""
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.is_symlink()] if folder.is_dir() else []


def stored_methods(run_dir, setting: int | None = None) -> list[str]:
    return [p.name for p in _record_dirs(setting_dir(run_dir, setting)) if _METHOD_RE.match(p.name)]


def stored_settings(run_dir) -> list[int]:
    """The sweep settings with a folder on disk (empty for a run without a sweep)."""
    return sorted(int(m.group(1)) for p in _record_dirs(Path(run_dir) / RECORDS_DIR)
                  if (m := _SETTING_RE.match(p.name)))


def stored_trials(run_dir, method: str | None = None, setting: int | None = None) -> list[int]:
    """Trials with at least one finished stage (for any method, or for ``method``)."""
    trials = set()
    for m in ([method] if method else stored_methods(run_dir, setting)):
        for p in _record_dirs(setting_dir(run_dir, setting) / m):
            match = _TRIAL_RE.match(p.name)
            if match and (p / "stage0.json").is_file():
                trials.add(int(match.group(1)))
    return sorted(trials)


def _run_methods(run_dir) -> list[str]:
    """The run's methods, in order, from its checked spec (never from folder names)."""
    return list(validated_spec(run_dir).methods)


def load_trial_records(run_dir, trial: int = 0, methods: Iterable[str] | None = None,
                       setting: int | None = None) -> dict[str, list[StageRecord]]:
    """One trial of a run (of one sweep setting) in the shape the app's views take: ``{method: [StageRecord
    per stage]}`` (the finished stages of each method, in the run's method order; methods without any stage
    are left out)."""
    run_dir = require_run_dir(run_dir)
    out = {}
    for method in (list(methods) if methods is not None else _run_methods(run_dir)):
        records = load_records(run_dir, method, trial, setting=setting)
        if records:
            out[method] = records
    return out


def records_signature(run_dir) -> tuple:
    """(name, size, modification time) of every file under ``records/`` and of the metrics table: changes
    whenever a record is written, replaced or damaged (a cache key for :func:`check_records`)."""
    out = []
    for path in sorted(Path(run_dir).joinpath(RECORDS_DIR).rglob("*")) + [Path(run_dir) / METRICS_FILE]:
        try:
            st = path.lstat()
        except OSError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def stage_gaps(run_dir, method: str, trial: int, stages: int, seed: int | None = None,
               setting: int | None = None) -> dict:
    """The stages of (method, trial) that need computing: ``{stage: DamagedRecord or None}``, None for a
    stage not reached yet. Every stage up to the last whose JSON exists (the mark of a finished stage) is
    read and verified; one that fails is damaged. Past it, stray files are a killed writer's (unfinished)."""
    done = [record_paths(run_dir, method, trial, s, setting)[0].is_file() for s in range(stages)]
    last = max((s for s, there in enumerate(done) if there), default=-1)
    gaps: dict = {s: None for s in range(last + 1, stages)}
    for stage in range(last + 1):
        try:
            load_record(run_dir, method, trial, stage, seed=seed, setting=setting)
        except DamagedRecord as e:
            gaps[stage] = e
    return dict(sorted(gaps.items()))


def check_records(run_dir, spec=None) -> list[DamagedRecord]:
    """Every finished stage record the run's spec expects, read and verified: the damaged or missing ones
    (see :func:`stage_gaps`). Reads every NPZ."""
    run_dir = require_run_dir(run_dir)
    spec = spec if spec is not None else validated_spec(run_dir)
    return [damage for unit in spec.units()
            for damage in stage_gaps(run_dir, unit.method, unit.trial, spec.stages, spec.trial_seed(unit.trial),
                                     unit.setting).values()
            if damage is not None]


# -- units: one (setting, trial, method) each -------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Unit:
    """One independent piece of a run: a method's trial under one sweep setting (None: no sweep)."""

    setting: int | None
    trial: int
    method: str

    @property
    def key(self) -> str:
        """The unit's folder below ``records/``: ``lloss/trial0`` or ``setting1/lloss/trial0``."""
        head = "" if self.setting is None else f"setting{self.setting}/"
        return f"{head}{self.method}/trial{self.trial}"

    def folder(self, run_dir) -> Path:
        return unit_dir(run_dir, self.method, self.trial, self.setting)

    def finished(self, run_dir, stages: int | None = None) -> int:
        n = finished_stages(run_dir, self.method, self.trial, self.setting)
        return n if stages is None else min(n, stages)

    def to_list(self) -> list:
        return [self.setting, self.trial, self.method]

    @classmethod
    def from_list(cls, values) -> "Unit":
        setting, trial, method = values
        return cls(None if setting is None else int(setting), int(trial), str(method))


def spec_units(spec: dict) -> list[Unit]:
    """The units of a spec mapping (``config.json``), in the order a sequential run takes them: setting by
    setting, trial by trial, the methods in their order."""
    settings = sweep_settings(spec.get("sweep")) or [None]
    methods = [str(m) for m in spec["methods"]]
    return [Unit(None if values is None else k, t, m) for k, values in enumerate(settings)
            for t in range(int(spec["trials"])) for m in methods]


def write_unit_status(run_dir, unit: Unit, status: dict) -> None:
    """The unit's ``unit.json`` (written by the one process running the unit, or by the driver once that
    process is gone)."""
    atomic_write_json(unit.folder(run_dir) / UNIT_FILE, dict(status, unit=unit.key, updated=now_iso()))


def read_unit_status(run_dir, unit: Unit) -> dict:
    """The unit's ``unit.json``; ``{}`` when it has none or it cannot be read (progress is advisory: the
    stage records are the truth)."""
    try:
        data = read_json(inside(run_dir, unit.folder(run_dir) / UNIT_FILE))
    except StoreError:
        return {}
    return data if isinstance(data, dict) else {}


def write_setting_file(run_dir, setting: int, values: dict) -> None:
    """``records/setting<k>/setting.json``: the values of a sweep setting, beside its units."""
    path = setting_dir(run_dir, setting) / SETTING_FILE
    atomic_write_json(path, {"setting": int(setting), "label": setting_label(values), "values": dict(values)})


def unit_progress(run_dir, status: dict | None = None) -> list[dict]:
    """One row per unit of the run: ``setting`` (index or None), ``setting_label``, ``trial``, ``method``,
    ``state`` (done | running | failed | waiting), ``done`` / ``stages``, ``stage`` and ``phase`` in progress,
    ``where`` (host, worker, device), ``error``. A unit whose unit.json says running while no driver runs
    the run is waiting (it continues on resume)."""
    run_dir = require_run_dir(run_dir)
    spec = read_spec(run_dir)
    stages = int(spec["config"].get("stages", 0) or 0)
    settings = sweep_settings(spec.get("sweep"))
    if status is None:
        try:
            status = read_status(run_dir)
        except StoreError:
            status = {"state": "created"}
    live = effective_state(status, run_dir) == "running"
    session = status.get("session")
    rows = []
    for unit in spec_units(spec):
        done = unit.finished(run_dir, stages)
        info = read_unit_status(run_dir, unit)
        # while a driver runs the run, only this session's word counts: a unit that failed in an earlier
        # session waits to be rerun
        this_session = not live or not session or info.get("session") == session
        if done >= stages:
            state = "done"
        elif info.get("state") == "running" and live and this_session:
            state = "running"
        elif info.get("state") == "failed" and this_session:
            state = "failed"
        else:
            state = "waiting"
        where = ", ".join(str(info[k]) for k in ("host", "worker", "device") if info.get(k)) if info else ""
        rows.append({
            "unit": unit.key, "setting": unit.setting,
            "setting_label": setting_label(settings[unit.setting]) if unit.setting is not None else "",
            "trial": unit.trial, "method": unit.method, "state": state, "done": done, "stages": stages,
            "stage": info.get("stage") if state == "running" else None,
            "phase": (info.get("phase") or "starting") if state == "running" else "",
            "fraction": float(info.get("fraction") or 0.0) if state == "running" else 0.0,
            "where": where, "error": str(info.get("error") or "") if state == "failed" else "",
        })
    return rows


# -- metrics -----------------------------------------------------------------------------------------
def _phase_column(phase: str) -> str:
    return "time_" + re.sub(r"[^a-z0-9]+", "_", phase.lower()).strip("_")


def _show_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=_json_default)
    return str(value)


def setting_label(values: dict) -> str:
    """A sweep setting as people write it: ``alpha=0.5, discriminator_rank_input=raw``."""
    return ", ".join(f"{name}={_show_value(value)}" for name, value in values.items())


def sweep_settings(sweep: dict | None) -> list[dict]:
    """Every combination of a sweep's values, in order (the first field varies slowest); ``[]`` without a sweep."""
    import itertools

    if not sweep:
        return []
    fields = list(sweep)
    return [dict(zip(fields, combo)) for combo in itertools.product(*(list(sweep[f]) for f in fields))]


def metrics_row(scalars: dict, trial: int | None = None, seed: int | None = None) -> dict:
    """One metrics row from a record's scalars (a StageRecord.split()[0] or a stored stage JSON). A sweep's
    row also carries ``setting`` (its index), ``setting_label`` and one column per swept field."""
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
    if scalars.get("setting") is not None:
        values = dict(scalars.get("setting_values") or {})
        row["setting"] = int(scalars["setting"])
        row["setting_label"] = setting_label(values)
        for name, value in values.items():
            row.setdefault(name, _show_value(value) if isinstance(value, (dict, list, tuple)) else value)
    return row


def record_metrics_row(record: StageRecord, trial: int, seed: int | None, setting: int | None = None,
                       setting_values: dict | None = None) -> dict:
    scalars, _ = record.split()
    if setting is not None:
        scalars = dict(scalars, setting=setting, setting_values=dict(setting_values or {}))
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
    keys = (["setting"] if "setting" in frame.columns else []) + ["trial", "method", "stage"]
    if len(frame):
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    for col in ("selected_count", "candidate_count", "seed"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    front = list(METRIC_COLUMNS) + [c for c in ("setting", "setting_label") if c in frame.columns]
    return frame[front + sorted(c for c in frame.columns if c not in front)]


def write_metrics(run_dir, rows: list[dict]) -> None:
    frame = _rows_frame(rows)
    atomic_write(Path(run_dir) / METRICS_FILE, lambda f: frame.to_parquet(f, index=False))


def _stage_json_files(run_dir) -> list[tuple[int | None, str, int, int, Path]]:
    """(setting, method, trial, stage, json path) of every complete stage record on disk."""
    out = []
    root = Path(run_dir) / RECORDS_DIR
    if not root.is_dir():
        return out
    for setting in [None] + stored_settings(run_dir):
        for mdir in _record_dirs(setting_dir(run_dir, setting)):
            if not _METHOD_RE.match(mdir.name):
                continue
            for tdir in _record_dirs(mdir):
                tm = _TRIAL_RE.match(tdir.name)
                if not tm:
                    continue
                for f in tdir.iterdir():
                    sm = _STAGE_RE.match(f.name)
                    if sm and f.with_suffix(".npz").is_file():
                        out.append((setting, mdir.name, int(tm.group(1)), int(sm.group(1)), f))
    return out


def metrics_rows_from_records(run_dir) -> list[dict]:
    """Metrics rows rebuilt from the stored stage JSONs (scalars only; arrays are not read). The driver
    writes ``metrics.parquet`` from these, so the table never depends on which process ran which unit."""
    rows = []
    for setting, method, trial, stage, _ in _stage_json_files(run_dir):
        scalars = load_record_scalars(run_dir, method, trial, stage, setting=setting)
        rows.append(metrics_row(scalars, trial))
    return rows


def read_metrics_table(run_dir):
    """``metrics.parquet`` as written, or None when it is missing, damaged or lacks a key column."""
    import pandas as pd

    path = run_file(run_dir, METRICS_FILE)
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception:  # pyarrow raises several types for a damaged file
        return None
    if any(c not in frame.columns for c in ("trial", "method", "stage", "accuracy", "labeled_count")):
        return None
    return frame


def load_metrics(run_dir):
    """The run's metrics as a DataFrame (one row per trial/method/stage). Read from ``metrics.parquet``;
    rebuilt from the stage records (which are the truth) when that file is missing, damaged or does not
    hold the same stages as they do (a run killed between writing a record and the table)."""
    import pandas as pd

    run_dir = require_run_dir(run_dir)
    on_disk = {(setting, trial, method, stage) for setting, method, trial, stage, _ in _stage_json_files(run_dir)}
    frame = read_metrics_table(run_dir)
    if frame is not None and len(frame) == len(on_disk):
        try:
            settings = [None if pd.isna(k) else int(k) for k in frame["setting"]] if "setting" in frame.columns \
                else [None] * len(frame)
            keys = set(zip(settings, frame["trial"].astype(int), frame["method"].astype(str), frame["stage"].astype(int)))
        except (TypeError, ValueError):
            keys = set()
        if keys == on_disk:
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


def export_run(run_dir, to=None) -> list[Path]:
    """Write the run's metrics (CSV), its learning-curve statistics and pairwise p-values (CSV), the
    selections (JSON: method -> trial -> stage -> picked indices in order) and the candidates' scores
    (JSON) into ``to`` (default ``<run>/export``). Returns the files written. Every record is read and
    verified before anything is written, so a damaged run is refused (naming the file) with no half export."""
    from . import statistics
    from .errors import ConfigError

    run_dir = require_run_dir(run_dir)
    if to is not None and str(to).strip() == "":
        raise ConfigError("--to", "give a destination folder (the path is empty)")
    out = Path(to) if to is not None else run_file(run_dir, "export")
    if out.exists() and not out.is_dir():
        raise ConfigError("--to", f"{out} is a file, not a folder")
    metrics = load_metrics(run_dir)
    # a sweep's selections and scores are keyed by the setting's label first ("alpha=0.5": method -> ...)
    settings = validated_spec(run_dir).settings
    selections: dict = {}
    scores: dict = {}
    for setting in (range(len(settings)) if settings else [None]):
        if setting is None:
            _collect_picks(run_dir, None, selections, scores)
        else:
            label = setting_label(settings[setting])
            _collect_picks(run_dir, setting, selections.setdefault(label, {}), scores.setdefault(label, {}))
    out.mkdir(parents=True, exist_ok=True)
    files = []

    def write_csv(name, frame):
        path = out / name
        data = frame.to_csv(index=False).encode("utf-8")
        atomic_write(path, lambda f: f.write(data))
        files.append(path)

    write_csv("metrics.csv", metrics)
    if len(metrics):
        write_csv("curves.csv", statistics.learning_curve_frame(metrics))
        write_csv("pairwise_tests.csv", statistics.pairwise_tests(metrics))
        if statistics.has_settings(metrics):
            write_csv("setting_tests.csv", statistics.setting_tests(metrics))
    for name, obj in (("selections.json", selections), ("scores.json", scores)):
        path = out / name
        atomic_write_json(path, obj)
        files.append(path)
    return files


def _collect_picks(run_dir, setting: int | None, selections: dict, scores: dict) -> None:
    for method in _run_methods(run_dir):
        for trial in stored_trials(run_dir, method, setting):
            for record in load_records(run_dir, method, trial, setting=setting):
                selections.setdefault(method, {}).setdefault(str(trial), {})[str(record.stage)] = record.selected.tolist()
                scores.setdefault(method, {}).setdefault(str(trial), {})[str(record.stage)] = {
                    "score_name": record.score_name,
                    "higher_is_better": bool(record.higher_is_better),
                    "candidates": record.candidates.tolist(),
                    "scores": [None if not math.isfinite(x) else x for x in record.candidate_scores.astype(float).tolist()],
                    "selected": record.selected.tolist(),
                }
