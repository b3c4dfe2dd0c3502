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

The package, one job a module: ``layout`` (file names, patterns, states), ``files`` (atomic writes, checked
reads), ``runs`` (run folders: spec, environment and status files), ``locks`` (the writer lock, process
ids), ``records`` (stage records), ``units`` (per-unit progress), ``metrics`` (the metrics table),
``environment`` (the probe of versions, devices and the git commit), ``listing`` (the run list). Exporting
a run, which needs the statistics, lives beside the experiment (``tavaal_core.export``). Callers use the
names re-exported here (``store.load_records``).
"""
from __future__ import annotations

from .environment import environment
from .files import (DamagedRecord, StoreError, atomic_write, atomic_write_json, atomic_write_npz, inside, read_json,
                    read_npz, remove_temp_files, run_file)
from .layout import (CONFIG_FILE, ENVIRONMENT_FILE, FORMAT_VERSION, METRIC_COLUMNS, METRICS_FILE, NAME_RE, RECORDS_DIR,
                     SETTING_FILE, STATES, STATUS_FILE, UNIT_FILE, UNIT_STATES)
from .listing import RunInfo, delete_run, list_runs, run_info
from .locks import LOCK_FILE, RunBusy, effective_state, lock_run, process_alive, run_locked
from .metrics import (load_metrics, metrics_row, metrics_rows_from_records, read_metrics_table, record_metrics_row,
                      setting_label, sweep_settings, write_metrics)
from .records import (check_records, finished_stages, load_record, load_record_scalars, load_records,
                      load_trial_records, record_paths, records_signature, save_record, setting_dir, stage_gaps,
                      stored_methods, stored_settings, stored_trials, unit_dir)
from .runs import (check_run_name, is_run_dir, new_run_dir, now_iso, read_environment, read_spec, read_status,
                   require_run_dir, update_status, validated_spec, write_environment, write_spec, write_status)
from .units import Unit, read_unit_status, spec_units, unit_progress, write_setting_file, write_unit_status

__all__ = [
    "annotations",
    "environment",
    "DamagedRecord",
    "StoreError",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_npz",
    "inside",
    "read_json",
    "read_npz",
    "remove_temp_files",
    "run_file",
    "CONFIG_FILE",
    "ENVIRONMENT_FILE",
    "FORMAT_VERSION",
    "METRIC_COLUMNS",
    "METRICS_FILE",
    "NAME_RE",
    "RECORDS_DIR",
    "SETTING_FILE",
    "STATES",
    "STATUS_FILE",
    "UNIT_FILE",
    "UNIT_STATES",
    "RunInfo",
    "delete_run",
    "list_runs",
    "run_info",
    "LOCK_FILE",
    "RunBusy",
    "effective_state",
    "lock_run",
    "process_alive",
    "run_locked",
    "load_metrics",
    "metrics_row",
    "metrics_rows_from_records",
    "read_metrics_table",
    "record_metrics_row",
    "setting_label",
    "sweep_settings",
    "write_metrics",
    "check_records",
    "finished_stages",
    "load_record",
    "load_record_scalars",
    "load_records",
    "load_trial_records",
    "record_paths",
    "records_signature",
    "save_record",
    "setting_dir",
    "stage_gaps",
    "stored_methods",
    "stored_settings",
    "stored_trials",
    "unit_dir",
    "check_run_name",
    "is_run_dir",
    "new_run_dir",
    "now_iso",
    "read_environment",
    "read_spec",
    "read_status",
    "require_run_dir",
    "update_status",
    "validated_spec",
    "write_environment",
    "write_spec",
    "write_status",
    "Unit",
    "read_unit_status",
    "spec_units",
    "unit_progress",
    "write_setting_file",
    "write_unit_status",
]
