"""Export a run for other tools: metrics and learning-curve statistics (CSV), selections and scores (JSON)."""
from __future__ import annotations

import math
from pathlib import Path

from . import statistics
from .errors import ConfigError
from .store import (atomic_write, atomic_write_json, load_metrics, load_records, require_run_dir, run_file,
                    setting_label, stored_trials, validated_spec)
from .store.records import _run_methods


def export_run(run_dir, to=None) -> list[Path]:
    """Write the run's metrics (CSV), its learning-curve statistics and pairwise p-values (CSV), the
    selections (JSON: method -> trial -> stage -> picked indices in order) and the candidates' scores
    (JSON) into ``to`` (default ``<run>/export``). Returns the files written. Every record is read and
    verified before anything is written, so a damaged run is refused (naming the file) with no half export."""
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
