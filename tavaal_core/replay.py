"""Replays: a few stages of several methods in two small files, so a class replays exact pictures without
training anything (the guided lesson ships its replays in ``assets/lesson/``).

    <name>.json   format, title, description, the config (``method`` ignored), methods, each record's scalars
    <name>.npz    each record's arrays under ``<method>/<stage>/<field>`` (compressed; read with allow_pickle=False)

Written atomically through the run store's helpers (no pickle anywhere). ``record_replay`` runs the stages;
``load_replay`` checks that the files belong together and names the file that is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .config import ExperimentConfig
from .errors import TavaalError
from .records import StageRecord
from .store import StoreError, atomic_write_json, atomic_write_npz, read_json, read_npz

FORMAT = "tavaal-replay/1"
# Arrays a replay stores at half precision: the views draw them (maps, scatter), no pick depends on them.
HALF_PRECISION = ("analysis_features", "analysis_vae_mu", "analysis_probs", "boundary_prob")


@dataclass
class Replay:
    name: str
    title: str
    description: str
    config: ExperimentConfig  # every method's config, with ``method`` left at its first method
    methods: list[str]
    records: dict[str, list[StageRecord]]
    oracle: tuple | None = None  # 2-d data: (grid_x, grid_y, P(class 1)) of the model trained on every label

    @property
    def stages(self) -> int:
        return min((len(r) for r in self.records.values()), default=0)


def paths(stem) -> tuple[Path, Path]:
    stem = Path(stem)
    return stem.with_suffix(".json"), stem.with_suffix(".npz")


def save_replay(stem, replay: Replay) -> tuple[Path, Path]:
    """Write ``<stem>.npz`` then ``<stem>.json`` (the JSON's presence marks a complete replay)."""
    json_path, npz_path = paths(stem)
    arrays, scalars = {}, {}
    for method, records in replay.records.items():
        scalars[method] = []
        for record in records:
            s, a = record.split()
            scalars[method].append(s)
            for field_name, value in a.items():
                value = np.asarray(value)
                if field_name in HALF_PRECISION and value.dtype.kind == "f":
                    value = value.astype(np.float16)
                arrays[f"{method}/{record.stage}/{field_name}"] = value
    if replay.oracle is not None:
        arrays.update({f"oracle/{k}": np.asarray(v) for k, v in zip("xyp", replay.oracle)})
    atomic_write_npz(npz_path, arrays)
    atomic_write_json(json_path, {"format": FORMAT, "name": replay.name, "title": replay.title,
                                  "description": replay.description, "config": replay.config.to_dict(),
                                  "methods": list(replay.methods), "records": scalars})
    return json_path, npz_path


def load_replay(stem) -> Replay:
    json_path, npz_path = paths(stem)
    data = read_json(json_path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(f"{json_path}: not a replay file (expected format {FORMAT!r})")
    try:
        config = ExperimentConfig.from_dict(data["config"])
        methods = list(data["methods"])
        scalars = data["records"]
    except (KeyError, TypeError, TavaalError) as e:
        raise StoreError(f"{json_path}: incomplete replay ({type(e).__name__}: {e})") from None
    arrays = read_npz(npz_path)
    records: dict[str, list[StageRecord]] = {}
    for method in methods:
        records[method] = []
        for s in scalars.get(method, []):
            prefix = f"{method}/{s.get('stage')}/"
            found = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            found = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in found.items()}
            try:
                records[method].append(StageRecord.join(s, found))
            except TypeError as e:
                raise StoreError(f"{npz_path}: stage {s.get('stage')} of {method!r} is incomplete ({e})") from None
    oracle = tuple(arrays[f"oracle/{k}"] for k in "xyp") if "oracle/p" in arrays else None
    return Replay(str(data.get("name", Path(stem).name)), str(data.get("title", "")), str(data.get("description", "")),
                  config, methods, records, oracle)


def record_replay(name: str, title: str, description: str, config: ExperimentConfig, methods: list[str],
                  stages: int, dataset=None,
                  progress: Callable[[str, int, str, float, str], None] | None = None) -> Replay:
    """Step ``stages`` stages of every method from the same config and seed (so all start from the same
    labels). ``progress(method, stage, phase, fraction, message)``."""
    from .engine import ActiveLearner

    records, oracle = {}, None
    for method in methods:
        learner = ActiveLearner(config.with_(method=method), dataset=dataset).start()
        if oracle is None and learner.dataset.kind == "vector" and learner.dataset.input_shape == (2,):
            o = learner.oracle()
            oracle = (o.boundary_x, o.boundary_y, o.boundary_prob) if o.boundary_prob.size else None
        for _ in range(stages):
            stage = learner.stage
            learner.step(None if progress is None else
                         lambda phase, frac, msg, m=method, s=stage: progress(m, s, phase, frac, msg))
        records[method] = learner.records
    return Replay(name, title, description, config.with_(method=methods[0]), list(methods), records, oracle)
