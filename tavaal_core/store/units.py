"""Units, one (setting, trial, method) each: their folders, progress files and the sweep's setting files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .layout import SETTING_FILE, UNIT_FILE
from .files import StoreError, atomic_write_json, inside, read_json
from .runs import now_iso, read_spec, read_status, require_run_dir
from .locks import effective_state
from .records import finished_stages, setting_dir, unit_dir
from .metrics import setting_label, sweep_settings


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
