"""What a view draws from: a ``Source`` = records per method + what is needed about the dataset.

A live session (two moons, stage explorer) and a saved run are both Sources, so every view opens either.
To open a saved run in the views (e.g. from the runs page)::

    from explorer_ui.source import Source, open_source
    open_source(Source.from_records("run:my-run", "Run my-run", records, config))

Sources live in ``st.session_state["sources"]`` (key -> Source); the views list them in that order.
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from tavaal_core import ActiveLearner, ExperimentConfig, StageRecord
from tavaal_core.data import prepare_dataset

SOURCES_KEY = "sources"


@dataclass
class DatasetMeta:
    """What views need about the (imbalanced) training set, by dataset index."""

    name: str
    kind: str  # "vector" | "image" | "segmentation"
    class_names: list[str]
    labels: np.ndarray  # (N,) class of each training sample (segmentation: the image's dominant class)
    pool_class_counts: np.ndarray  # (K,) (segmentation: labeled pixels per class)
    points: np.ndarray | None = None  # (N, 2) coordinates of 2-d vector data (two moons)
    images: np.ndarray | None = None  # (N, C, H, W) uint8, for galleries
    description: str = ""
    masks: np.ndarray | None = None  # segmentation: (N, H, W) uint8 true masks
    pixel_counts: np.ndarray | None = None  # segmentation: (N, K) labeled pixels per class of each image
    background_class: int | None = None

    @property
    def segmentation(self) -> bool:
        return self.kind == "segmentation"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def from_dataset(cls, ds) -> "DatasetMeta":
        labels = ds.sample_labels("train")
        x, y = ds.arrays("train")
        segmentation = ds.is_segmentation
        return cls(
            name=ds.name, kind=ds.kind, class_names=list(ds.class_names), labels=labels,
            pool_class_counts=ds.class_counts("train"),
            points=x if ds.kind == "vector" and x.ndim == 2 and x.shape[1] == 2 else None,
            images=x if ds.is_image else None, description=ds.description,
            masks=y if segmentation else None,
            pixel_counts=ds.pixel_counts("train") if segmentation else None,
            background_class=ds.background_class,
        )


@functools.lru_cache(maxsize=8)
def _meta_for(config_json: str) -> DatasetMeta:
    config = ExperimentConfig.from_dict(__import__("json").loads(config_json)).resolve()
    return DatasetMeta.from_dataset(prepare_dataset(config))  # the data only: no model, GPU or weights


def meta_for_config(config: ExperimentConfig) -> DatasetMeta:
    """The training set a config's runs used (imbalance and subsample applied), cached."""
    return _meta_for(config.to_json())


@dataclass
class Source:
    key: str
    title: str
    meta: DatasetMeta
    records: dict[str, list[StageRecord]]
    learners: dict[str, ActiveLearner] = field(default_factory=dict)  # live sessions only: what-if
    oracle: tuple | None = None  # (grid_x, grid_y, prob) of the model trained on every label (2-d data)
    config: ExperimentConfig | None = None  # what produced the records (``method`` ignored): what-if rebuilds
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # caches key on it: a reset session is new

    @classmethod
    def from_records(cls, key: str, title: str, records: dict[str, list[StageRecord]],
                     config: ExperimentConfig | None = None, meta: DatasetMeta | None = None) -> "Source":
        """A read-only Source for saved records (give ``meta`` or the run's ``config``)."""
        if meta is None:
            if config is None:
                raise ValueError("give the run's config or its DatasetMeta")
            meta = meta_for_config(config)
        return cls(key, title, meta, records, config=config)

    @property
    def methods(self) -> list[str]:
        return [m for m, recs in self.records.items() if recs]

    @property
    def stages(self) -> int:
        """Stages recorded (the longest method's)."""
        return max((len(r) for r in self.records.values()), default=0)

    @property
    def live(self) -> bool:
        return bool(self.learners)

    def at(self, stage: int, methods=None) -> dict[str, StageRecord]:
        """Each method's record of ``stage`` (methods that did not reach it are left out)."""
        names = self.methods if methods is None else [m for m in methods if m in self.records]
        return {m: self.records[m][stage] for m in names if stage < len(self.records[m])}


def sources() -> dict[str, Source]:
    return st.session_state.setdefault(SOURCES_KEY, {})


def open_source(source: Source, select: bool = False) -> None:
    """Make ``source`` available to every view page (replaces one with the same key); ``select`` makes it
    the one the views show next."""
    sources()[source.key] = source
    if select:
        st.session_state.setdefault("_kept", {})["view_source"] = source.key
        st.session_state.pop("view_source", None)  # the picker widget's old choice must not win
