"""Replays (JSON + NPZ, no pickle) and the lesson's shipped replays: readable, small, and what the code computes."""
import json
from pathlib import Path

import numpy as np
import pytest

from tavaal_core import ActiveLearner
from tavaal_core.replay import FORMAT, load_replay, paths, record_replay, save_replay
from tavaal_core.store import StoreError

from conftest import fast

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "lesson"


def test_replay_round_trip_keeps_records_and_oracle(tmp_path):
    cfg = fast("moons", "random", stages=2)
    rep = record_replay("tiny", "Tiny", "two methods", cfg, ["random", "coreset"], stages=2)
    assert rep.oracle is not None and rep.stages == 2
    json_path, npz_path = save_replay(tmp_path / "tiny", rep)
    assert json.loads(json_path.read_text())["format"] == FORMAT
    back = load_replay(tmp_path / "tiny")
    assert back.methods == ["random", "coreset"] and back.config.to_json() == rep.config.to_json()
    for m in rep.methods:
        for a, b in zip(rep.records[m], back.records[m]):
            assert np.array_equal(a.selected, b.selected) and np.array_equal(a.candidates, b.candidates)
            assert np.allclose(a.candidate_scores, b.candidate_scores)
            assert b.analysis_features.dtype == np.float32  # stored at half precision, read back as float32
            assert np.allclose(a.analysis_features, b.analysis_features, rtol=1e-2, atol=1e-2)
            assert a.timings == b.timings and a.score_name == b.score_name
    assert all(np.allclose(x, y, atol=1e-3) for x, y in zip(rep.oracle, back.oracle))


def test_broken_replays_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(StoreError, match=r"x\.json: not a replay file"):
        load_replay(tmp_path / "x")
    rep = record_replay("t", "T", "", fast("moons", "random", stages=1), ["random"], stages=1)
    save_replay(tmp_path / "t", rep)
    _, npz_path = paths(tmp_path / "t")
    npz_path.write_bytes(npz_path.read_bytes()[:100])
    with pytest.raises(StoreError, match=r"t\.npz: corrupt or truncated"):
        load_replay(tmp_path / "t")


@pytest.mark.parametrize("name", ["moons", "mnist5k"])
def test_shipped_lesson_replays_load_are_small_and_use_the_apps_settings(name):
    from explorer_ui.lesson import REPLAYS, spec_settings

    rep = load_replay(ASSETS / name)
    spec = REPLAYS[name]
    size = sum(p.stat().st_size for p in paths(ASSETS / name))
    assert size < 5 * 2**20, f"{name} replay is {size / 2**20:.1f} MiB"
    assert rep.methods == list(spec.methods) and rep.stages == spec.stages
    # regenerate with scripts/make_lesson_assets.py when the app's defaults change
    assert rep.config.to_json() == spec_settings(spec).config.with_(method=spec.methods[0]).to_json()
    # every method of a replay starts from the same labels
    assert len({tuple(np.sort(r[0].labeled)) for r in rep.records.values()}) == 1


def test_moons_replay_matches_what_the_code_computes_now():
    """The shipped pictures are the ones a teacher's "open on its page" link recomputes (stage 0, two methods)."""
    rep = load_replay(ASSETS / "moons")
    for method in ("entropy", "coreset"):
        record = ActiveLearner(rep.config.with_(method=method)).start().step()
        assert np.array_equal(record.selected, rep.records[method][0].selected), method
