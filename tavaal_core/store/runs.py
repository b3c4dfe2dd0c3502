"""Run folders: creating, naming, the spec / environment / status files, listing and deleting runs."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..constraints import Text, check
from .layout import CONFIG_FILE, ENVIRONMENT_FILE, FORMAT_VERSION, RECORDS_DIR, STATES, STATUS_FILE, NAME_RE
from .files import StoreError, _read_json_object, atomic_write_json, run_file


# -- run folders -------------------------------------------------------------------------------------
def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


RUN_NAME = Text(NAME_RE, what="1-120 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit)")


def check_run_name(name: str) -> str:
    return check("name", name, RUN_NAME)


def new_run_dir(root, name: str, exclusive: bool = False) -> Path:
    """Create and return ``root/name`` (``name-2``, ``name-3`` ... if taken; with ``exclusive`` a taken
    name is refused with ``ConfigError('name', ...)``). The folder is made atomically, so two processes
    never share one."""
    from ..errors import ConfigError

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

    return _spec(run_dir)[1]


def _spec(run_dir):
    from ..errors import ConfigError
    from ..experiment import ExperimentSpec

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
