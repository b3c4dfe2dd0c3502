"""Presets (paper configurations and CPU demos) and experiment files (JSON or YAML).

A preset is a JSON file in ``assets/presets/`` (or ``$TAVAAL_PRESETS_DIR``)::

    {"description": "one line for the list",
     "config": {...ExperimentConfig fields, without "method"...},
     "methods": ["random", "tavaal", ...],
     "trials": 5,
     "notes": {"<field>": "where its value comes from (paper, section / reference code / our choice)"}}

An experiment file given to ``--config`` has the same shape, or is a flat ExperimentConfig mapping with
optional ``methods`` (list or comma-separated) and ``trials`` keys next to the config fields.

Either shape may sweep config fields: ``"sweep": {"alpha": [0, 0.5, 1, 2]}``, or simply a list where a
field takes one value (``alpha: [0, 0.5, 1, 2]``; ``class_counts``, itself a list, is swept only under
``sweep``). Every combination of the swept values is a setting, run for every method and trial.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config import ExperimentConfig
from .errors import ConfigError
from .experiment import ExperimentSpec

PRESET_KEYS = ("description", "config", "methods", "trials", "notes", "sweep")
_CONFIG_FIELDS = set(ExperimentConfig.__dataclass_fields__)


def presets_dir() -> Path:
    env = os.environ.get("TAVAAL_PRESETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "assets" / "presets"


def _preset_files() -> dict[str, Path]:
    folder = presets_dir()
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".json", ".yaml", ".yml") and not path.name.startswith("."):
            files.setdefault(path.stem, path)
    return files


def available_presets() -> list[str]:
    return list(_preset_files())


def _read_mapping(path: Path, field: str) -> dict:
    if not path.is_file():
        raise ConfigError(field, f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(field, f"cannot read {path} ({type(e).__name__}: {e})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(field, f"{path} is not valid {kind} ({detail})") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{path} must hold a mapping (config, methods, trials), not {type(data).__name__}")
    return data


def preset_data(name: str) -> dict:
    """The raw preset mapping (with its notes)."""
    files = _preset_files()
    if name not in files:
        names = ", ".join(files) or f"none found in {presets_dir()}"
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of: {names}")
    return _read_mapping(files[name], "preset")


def spec_from_mapping(data: dict, preset: str | None = None, field: str = "config") -> ExperimentSpec:
    """An ExperimentSpec from a preset-shaped mapping or a flat config mapping (see the module doc)."""
    data = dict(data)
    if "config" in data and isinstance(data["config"], dict):
        unknown = sorted(set(data) - set(PRESET_KEYS) - {"preset", "name"})
        if unknown:
            raise ConfigError(unknown[0], f"unknown experiment field; allowed: {', '.join(PRESET_KEYS)}")
        spec_data = data
    else:
        extra = {k: data.pop(k) for k in ("methods", "trials", "description", "notes", "preset", "name", "sweep")
                 if k in data}
        spec_data = {"config": data, **extra}
    spec_data = dict(spec_data)
    spec_data["preset"] = preset if preset is not None else spec_data.get("preset")
    notes = spec_data.get("notes") or {}
    if not isinstance(notes, dict):
        raise ConfigError("notes", "must map a field name to the source of its value")
    return ExperimentSpec.from_dict(spec_data)


def load_preset(name: str) -> ExperimentSpec:
    """A preset as an ExperimentSpec; ``ConfigError('preset', ...)`` naming the presets for an unknown name."""
    data = preset_data(name)
    try:
        return spec_from_mapping(data, preset=name)
    except ConfigError as e:
        message = str(e)[len(e.field) + 2:] if str(e).startswith(f"{e.field}: ") else str(e)
        raise ConfigError(e.field, f"{message} (in preset {name!r}, {_preset_files()[name]})") from None


def load_spec_file(path: str | os.PathLike) -> ExperimentSpec:
    """An experiment from a JSON or YAML file (``--config``)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ConfigError("config", f"{path}: give a .json, .yaml or .yml file")
    return spec_from_mapping(_read_mapping(path, "config"))


def preset_summaries() -> list[dict]:
    """name, description, dataset, methods, trials, stages of every preset (broken ones with an error)."""
    out = []
    for name in available_presets():
        try:
            spec = load_preset(name)
            out.append({"name": name, "description": spec.description, "dataset": spec.config.dataset,
                        "methods": list(spec.methods), "trials": spec.trials, "stages": spec.config.stages,
                        "error": ""})
        except ConfigError as e:
            out.append({"name": name, "description": "", "dataset": "", "methods": [], "trials": 0,
                        "stages": 0, "error": str(e)})
    return out


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else "{}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def preset_values(name: str) -> list[tuple[str, str, str]]:
    """(field, value, source) for every value a preset sets, and for the task-learner and VAE values it
    leaves to the dataset's defaults (their source then says so). ``methods`` and ``trials`` first."""
    data = preset_data(name)
    spec = load_preset(name)
    notes = {str(k): str(v) for k, v in (data.get("notes") or {}).items()}
    given = dict(data.get("config") or {})
    resolved = spec.config.resolve()
    rows = [("methods", _show(spec.methods), notes.get("methods", "")),
            ("trials", str(spec.trials), notes.get("trials", ""))]
    shown = set()
    for field in given:
        if field == "method":
            continue
        rows.append((field, _show(getattr(resolved, field, given[field])), notes.get(field, "")))
        shown.add(field)
    for field in ("model", "optimizer", "lr", "task_epochs", "task_epochs_increment", "batch_size", "initial_size",
                  "budget", "subset_factor", "subset_fraction", "dropout", "pretrained", "vae_epochs"):
        if field in shown:
            continue
        value = getattr(resolved, field)
        if field == "dropout":
            value = "none (BALD: 0.2)" if value is None else value
        elif field == "pretrained":
            value = resolved.pretrained_weights
        elif value is None:
            continue
        rows.append((field, _show(value), notes.get(field, f"default for {resolved.dataset} (not set by the preset)")))
    return rows
