"""The metrics table: one row per (setting, trial, method, stage), kept as Parquet and rebuilt from the records."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path


from ..records import StageRecord

from .layout import METRICS_FILE, METRIC_COLUMNS, RECORDS_DIR, _METHOD_RE, _STAGE_RE, _TRIAL_RE
from .files import _json_default, atomic_write, run_file
from .runs import require_run_dir
from .records import _record_dirs, load_record_scalars, setting_dir, stored_settings


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
