"""The run store: records round-trip exactly, writes are atomic, loading never unpickles, and a corrupt or
truncated file gives a StoreError naming it while listing still shows the other runs."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from tavaal_core import StageRecord, store
from tavaal_core.export import export_run
from tavaal_core.store import StoreError


def make_record(method="random", stage=0, seed=0, n=60, k=3) -> StageRecord:
    rng = np.random.default_rng(seed * 100 + stage)
    labeled = np.sort(rng.choice(n, 10 + 5 * stage, replace=False)).astype(np.int64)
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    candidates = np.sort(rng.choice(unlabeled, 20, replace=False)).astype(np.int64)
    selected = rng.permutation(candidates)[:5].astype(np.int64)
    return StageRecord(
        stage=stage, method=method, labeled_count=len(labeled), accuracy=float(rng.uniform(0.5, 1.0)),
        per_class_accuracy=rng.uniform(size=k), class_counts=np.bincount(labeled % k, minlength=k),
        class_entropy=1.0 + 0.01 * stage, class_entropy_normalized=0.9, selected=selected,
        selected_labels=(selected % k).astype(np.int64), score_name="entropy", higher_is_better=True,
        labeled=labeled, candidates=candidates, candidate_scores=rng.normal(size=20),
        candidate_loss=rng.uniform(size=20).astype(np.float32),
        candidate_likelihood=rng.uniform(size=20).astype(np.float32),
        analysis_indices=np.arange(0, n, 3, dtype=np.int64), analysis_features=rng.normal(size=(20, 4)).astype(np.float32),
        analysis_probs=rng.dirichlet(np.ones(k), size=20).astype(np.float32),
        task_loss_history=np.linspace(2, 0.1, 7).astype(np.float32),
        timings={"task training": 1.25, "scoring": 0.5},
    )


def assert_records_equal(a: StageRecord, b: StageRecord):
    sa, aa = a.split()
    sb, ab = b.split()
    assert sa == sb
    assert aa.keys() == ab.keys()
    for key in aa:
        assert aa[key].dtype == ab[key].dtype, key
        assert aa[key].shape == ab[key].shape, key
        np.testing.assert_array_equal(aa[key], ab[key], err_msg=key)


def make_run(root, name="run-a", methods=("random", "entropy"), trials=2, stages=3, state="finished"):
    run_dir = store.new_run_dir(root, name)
    config = {"dataset": "moons", "stages": stages, "seed": 0}
    store.write_spec(run_dir, {"preset": None, "description": "test", "methods": list(methods), "trials": trials,
                               "config": config, "notes": {}, "created": store.now_iso()})
    store.write_status(run_dir, {"state": state, "pid": None, "done": 0, "total": len(methods) * trials * stages})
    rows = []
    for t in range(trials):
        for m in methods:
            for s in range(stages):
                rec = make_record(m, s, seed=t)
                store.save_record(run_dir, t, rec, seed=t)
                rows.append(store.record_metrics_row(rec, t, t))
    store.write_metrics(run_dir, rows)
    return run_dir


def test_record_round_trip_is_exact(tmp_path):
    rec = make_record("tavaal", 2)
    json_path, npz_path = store.save_record(tmp_path, 1, rec, seed=7)
    assert json_path.name == "stage2.json" and npz_path.name == "stage2.npz"
    assert json_path.parent == tmp_path / "records" / "tavaal" / "trial1"
    back = store.load_record(tmp_path, "tavaal", 1, 2)
    assert_records_equal(rec, back)
    scalars = json.loads(json_path.read_text())
    assert scalars["trial"] == 1 and scalars["seed"] == 7 and scalars["selected_count"] == 5


def test_empty_and_integer_arrays_keep_dtype(tmp_path):
    rec = make_record()
    assert rec.analysis_vae_mu.size == 0  # a field this method does not produce
    store.save_record(tmp_path, 0, rec)
    back = store.load_record(tmp_path, "random", 0, 0)
    assert back.analysis_vae_mu.dtype == np.float32 and back.analysis_vae_mu.shape == (0,)
    assert back.selected.dtype == np.int64
    np.testing.assert_array_equal(back.selected_likelihood, rec.selected_likelihood)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.json"
    store.atomic_write_json(path, {"a": 1})

    def boom(f):
        f.write(b'{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        store.atomic_write(path, boom)
    assert store.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"], "no temporary file left behind"


def test_object_arrays_are_refused_on_write_and_never_unpickled_on_read(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        store.atomic_write_npz(tmp_path / "a.npz", {"x": np.array([{"a": 1}], dtype=object)})
    bad = tmp_path / "b.npz"
    np.savez(bad, x=np.array([{"a": 1}], dtype=object))  # needs pickle to load
    with pytest.raises(StoreError, match="b.npz"):
        store.read_npz(bad)


def test_truncated_npz_and_corrupt_json_give_a_store_error_naming_the_file(tmp_path):
    run_dir = make_run(tmp_path, stages=2, trials=1)
    json_path, npz_path = store.record_paths(run_dir, "random", 0, 1)
    data = npz_path.read_bytes()
    npz_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError) as err:
        store.load_record(run_dir, "random", 0, 1)
    assert str(npz_path) in str(err.value) and "corrupt or truncated" in str(err.value)

    json_path2, _ = store.record_paths(run_dir, "entropy", 0, 0)
    json_path2.write_text('{"stage": 0, "method": "ent')
    with pytest.raises(StoreError) as err:
        store.load_record(run_dir, "entropy", 0, 0)
    assert str(json_path2) in str(err.value)

    empty, _ = store.record_paths(run_dir, "entropy", 0, 1)
    empty.write_text("")
    with pytest.raises(StoreError, match="empty"):
        store.load_record(run_dir, "entropy", 0, 1)
    with pytest.raises(StoreError):
        store.load_trial_records(run_dir, 0)


def test_list_runs_flags_a_broken_run_and_lists_the_others(tmp_path):
    make_run(tmp_path, "good")
    broken = make_run(tmp_path, "broken-config")
    (broken / "config.json").write_text("{not json")
    bad_status = make_run(tmp_path, "broken-status")
    (bad_status / "status.json").write_bytes(b"\x00\x01")
    (tmp_path / "not-a-run").mkdir()  # ignored
    (tmp_path / "notes.txt").write_text("ignored")
    runs = {r.name: r for r in store.list_runs(tmp_path)}
    assert set(runs) == {"good", "broken-config", "broken-status"}
    assert not runs["good"].broken and runs["good"].state == "finished"
    assert runs["good"].done == runs["good"].total == 12
    assert runs["good"].methods == ["random", "entropy"] and runs["good"].dataset == "moons"
    assert runs["broken-config"].broken and "config.json" in runs["broken-config"].error
    # the status is only a report: unreadable, the run still lists (state from its records and lock)
    assert not runs["broken-status"].broken and runs["broken-status"].state == "finished"
    assert "status.json" in runs["broken-status"].error
    assert store.list_runs(tmp_path / "missing") == []


def test_running_state_with_a_dead_process_reads_as_interrupted(tmp_path):
    run_dir = make_run(tmp_path, state="running")
    store.update_status(run_dir, pid=2**22 + 12345)  # no such process
    assert store.run_info(run_dir).state == "interrupted"
    store.update_status(run_dir, pid=os.getpid())  # a live process, but it does not hold the run's lock
    assert store.run_info(run_dir).state == "interrupted"
    lock = store.lock_run(run_dir)
    try:
        assert store.run_info(run_dir).state == "running"
    finally:
        lock.close()


def test_metrics_table_round_trip_and_rebuild(tmp_path):
    run_dir = make_run(tmp_path, trials=2, stages=3)
    frame = store.load_metrics(run_dir)
    assert len(frame) == 12
    assert {"trial", "seed", "method", "stage", "labeled_count", "accuracy", "class_entropy",
            "time_task_training", "time_scoring", "time_total"} <= set(frame.columns)
    rec = store.load_record(run_dir, "entropy", 1, 2)
    row = frame[(frame.method == "entropy") & (frame.trial == 1) & (frame.stage == 2)].iloc[0]
    assert row.accuracy == rec.accuracy and row.labeled_count == rec.labeled_count
    assert row.time_total == pytest.approx(1.75)
    # a run killed between writing a record and the table: the table is rebuilt from the records
    (run_dir / "metrics.parquet").unlink()
    rebuilt = store.load_metrics(run_dir)
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), frame.reset_index(drop=True), check_dtype=False)
    store.save_record(run_dir, 2, make_record("random", 0, seed=2), seed=2)
    store.write_metrics(run_dir, store.metrics_rows_from_records(run_dir)[:3])  # behind the records
    assert len(store.load_metrics(run_dir)) == 13
    (run_dir / "metrics.parquet").write_bytes(b"PAR1garbage")  # damaged: rebuilt from the records
    assert len(store.load_metrics(run_dir)) == 13


def test_load_trial_records_gives_the_views_shape(tmp_path):
    run_dir = make_run(tmp_path, methods=("random", "entropy"), trials=2, stages=3)
    records = store.load_trial_records(run_dir, 1)
    assert list(records) == ["random", "entropy"]
    assert [r.stage for r in records["entropy"]] == [0, 1, 2]
    assert_records_equal(records["random"][1], make_record("random", 1, seed=1))
    assert store.load_trial_records(run_dir, 5) == {}
    assert store.stored_trials(run_dir) == [0, 1]


def test_finished_stages_needs_both_files_and_no_gap(tmp_path):
    store.save_record(tmp_path, 0, make_record("random", 0))
    store.save_record(tmp_path, 0, make_record("random", 2))
    assert store.finished_stages(tmp_path, "random", 0) == 1
    store.save_record(tmp_path, 0, make_record("random", 1))
    assert store.finished_stages(tmp_path, "random", 0) == 3
    store.record_paths(tmp_path, "random", 0, 2)[1].unlink()
    assert store.finished_stages(tmp_path, "random", 0) == 2


def test_new_run_dir_never_reuses_a_folder_and_checks_the_name(tmp_path):
    a = store.new_run_dir(tmp_path, "x")
    b = store.new_run_dir(tmp_path, "x")
    assert a.name == "x" and b.name == "x-2"
    from tavaal_core import ConfigError

    for bad in ("", "../up", "a/b", ".hidden", "x" * 200):
        with pytest.raises(ConfigError, match="name"):
            store.new_run_dir(tmp_path, bad)


def test_export_writes_metrics_csv_and_selection_json(tmp_path):
    run_dir = make_run(tmp_path, trials=2, stages=2)
    files = export_run(run_dir, tmp_path / "out")
    names = {f.name for f in files}
    assert names == {"metrics.csv", "curves.csv", "pairwise_tests.csv", "selections.json", "scores.json"}
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(metrics) == 8
    selections = json.loads((tmp_path / "out" / "selections.json").read_text())
    rec = store.load_record(run_dir, "entropy", 1, 1)
    assert selections["entropy"]["1"]["1"] == rec.selected.tolist()
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    entry = scores["entropy"]["1"]["1"]
    assert entry["candidates"] == rec.candidates.tolist()
    np.testing.assert_allclose(entry["scores"], rec.candidate_scores)
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    assert list(curves.columns) == ["method", "stage", "labeled_count", "metric", "metric_mean", "metric_std", "trials",
                                    "improvement_mean", "relative_improvement_mean", "p_value_vs_random"]
    assert (curves["metric"] == "accuracy").all()


def test_delete_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    run_dir = make_run(tmp_path)
    other = tmp_path / "important"
    other.mkdir()
    (other / "file.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a run folder"):
        store.delete_run(other)
    store.delete_run(run_dir)
    assert not run_dir.exists() and (other / "file.txt").exists()


def test_environment_names_versions_and_device():
    env = store.environment("cpu")
    for key in ("python", "torch", "numpy", "device", "cpu", "cpu_count", "host"):
        assert env[key] not in (None, "")
    json.dumps(env)  # plain JSON


def test_corrupt_bytes_inside_a_complete_npz_are_caught(tmp_path):
    store.save_record(tmp_path, 0, make_record())
    _, npz = store.record_paths(tmp_path, "random", 0, 0)
    data = bytearray(npz.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # zero a block inside the compressed data, keep the zip directory
    npz.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="stage0.npz"):
        store.load_record(tmp_path, "random", 0, 0)


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    run_dir = make_run(tmp_path, trials=1, stages=1)
    stray = run_dir / "records" / "random" / "trial0" / ".stage1.npz.abc123.tmp"
    stray.write_bytes(b"half")
    assert store.remove_temp_files(run_dir) == 1 and not stray.exists()
    assert store.finished_stages(run_dir, "random", 0) == 1
