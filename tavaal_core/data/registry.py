"""The dataset registry: loaders register under a name with their kind; ``dataset_info`` tells the UI a
dataset's options (the loader's keyword-only parameters) and ``load_dataset`` checks them and loads."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable


from ..errors import ConfigError
from ..constraints import Options, check
from .base import Dataset


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    kind: str
    embedded: bool
    description: str


DATASETS: dict[str, Callable[..., Dataset]] = {}
_ENTRIES: dict[str, _Entry] = {}


def _register(name: str, *, kind: str, embedded: bool, description: str):
    def decorate(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = loader
        _ENTRIES[name] = _Entry(kind, embedded, description)
        return loader

    return decorate


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, in registration order (embedded ones first)."""
    return list(DATASETS)


_NAME_RULE = Options(available_datasets, what="dataset")


def _check_name(name: Any) -> str:
    return check("dataset", name, _NAME_RULE)


def _options(loader: Callable[..., Dataset]) -> tuple[dict[str, Any], list[str]]:
    """(option -> default, required options) from the loader's keyword-only parameters."""
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(loader).parameters.values():
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
            defaults[p.name] = None
        else:
            defaults[p.name] = p.default
    return defaults, required


def dataset_info(name: str) -> dict[str, Any]:
    """What the UI needs to build controls for a dataset.

    Keys: ``name``, ``kind`` ("vector"/"image"/"segmentation"), ``embedded`` (works offline with no files),
    ``options`` (name -> default; ``None`` for a required option), ``required`` (option names
    without a default), ``description`` (one line).
    """
    loader = DATASETS[_check_name(name)]
    entry = _ENTRIES[name]
    options, required = _options(loader)
    return {
        "name": name,
        "kind": entry.kind,
        "embedded": entry.embedded,
        "options": options,
        "required": required,
        "description": entry.description,
    }


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load dataset ``name`` with loader ``options`` (see :func:`dataset_info`).

    Raises ConfigError for an unknown name or option, DatasetUnavailable for absent files.
    """
    loader = DATASETS[_check_name(name)]
    allowed, required = _options(loader)
    for key in options:
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise ConfigError(key, f"not an option of dataset '{name}'; allowed: {choices}")
    for key in required:
        if options.get(key) is None:
            raise ConfigError(key, f"required for dataset '{name}'")
    return loader(**options)
