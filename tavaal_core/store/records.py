"""Stage records on disk: one JSON (scalars, checksums) and one NPZ (arrays) per stage, per unit folder."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..records import StageRecord

from .layout import FORMAT_VERSION, METRICS_FILE, RECORDS_DIR, _METHOD_RE, _SETTING_RE, _TRIAL_RE
from .files import DamagedRecord, StoreError, _json_default, _read_json_object, atomic_write_json, atomic_write_npz, inside, read_npz
from .runs import require_run_dir, validated_spec


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
