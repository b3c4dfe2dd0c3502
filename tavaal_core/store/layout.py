"""Where a run folder keeps what: file names, the name patterns of its folders, the run and unit states."""
from __future__ import annotations

import re





FORMAT_VERSION = 2  # 2: stage JSONs carry npz_sha256 and sha256 (format-1 records are read unchecked)
CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.parquet"
RECORDS_DIR = "records"

STATES = ("created", "running", "finished", "failed", "interrupted")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
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
