"""Audits: verdicts from per-seed metrics on hand-made frames, a small two-moons audit end to end (cached on
disk, extended by more seeds, opened as a saved run), the seeds-together trainer against the engine, and the
``claims`` command (tables written, bad input refused in one line)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tavaal_core import ActiveLearner, audit, batched, claims as cm, store
from tavaal_core.cli import main
from tavaal_core.data import load_dataset
from tavaal_core.errors import ConfigError
from tavaal_core.strategies import get_strategy

SMALL = {"task_epochs": 5, "vae_epochs": 2, "stages": 2}


def _frame(a_values, b_values, metric="boundary_rank", stage=4):
    rows = [{"method": "lloss", "trial": t, "stage": stage, metric: v} for t, v in enumerate(a_values)]
    rows += [{"method": "vaal", "trial": t, "stage": stage, metric: v} for t, v in enumerate(b_values)]
    return pd.DataFrame(rows)


PART = audit.Part("lloss nearer than vaal", "boundary_rank", "lloss", "vaal", "lower")


def test_a_consistent_ordering_holds_and_its_reverse_does_not():
    rng = np.random.default_rng(0)
    near = rng.uniform(0.1, 0.2, 10)
    far = rng.uniform(0.4, 0.5, 10)
    held = audit.evaluate_part(PART, _frame(near, far), 5)
    assert (held.verdict, held.held, held.seeds) == (cm.HOLDS, 10, 10)
    assert held.mean_difference > 0 and held.p_value < 0.001
    assert held.ci_a[0] < held.mean_a < held.ci_a[1]
    reverse = audit.evaluate_part(PART, _frame(far, near), 5)
    assert (reverse.verdict, reverse.held) == (cm.FAILS, 0)


def test_an_ordering_in_seven_of_ten_seeds_is_mixed():
    a = np.array([0.1] * 7 + [0.5] * 3)
    b = np.array([0.3] * 7 + [0.2] * 3)
    result = audit.evaluate_part(PART, _frame(a, b), 5)
    assert result.held == 7 and result.verdict == cm.MIXED


def test_a_part_whose_method_is_absent_is_reported_not_measured():
    frame = _frame([0.1, 0.2], [0.3, 0.4])
    part = audit.Part("tavaal nearer", "boundary_rank", "tavaal", "vaal", "lower")
    result = audit.evaluate_part(part, frame, 5)
    assert "tavaal" in result.missing and result.seeds == 0


def test_constant_and_no_difference_parts():
    frame = _frame([0.7, 0.8, 0.75, 0.72], [0.5] * 4, metric="loss_rank")
    part = audit.Part("above random", "loss_rank", "lloss", 0.5, "higher")
    result = audit.evaluate_part(part, frame, 5)
    assert result.verdict == cm.HOLDS and result.held == 4
    same = audit.Part("a = b", "accuracy", "a", "b", kind="no_difference", stages="all")

    def accuracies(shift):
        return pd.DataFrame([{"method": m, "trial": t, "stage": s,
                              "accuracy": 0.5 + 0.01 * s + (shift(t) if m == "a" else 0.0)}
                             for m in ("a", "b") for t in range(4) for s in range(3)])

    noise = audit.evaluate_part(same, accuracies(lambda t: [0.01, -0.02, 0.015, -0.004][t]), 3)
    assert [r["stage"] for r in noise.per_stage] == [0, 1, 2]
    assert noise.verdict == cm.HOLDS and noise.held == 3  # no stage differs significantly
    shifted = audit.evaluate_part(same, accuracies(lambda t: 0.05 + 0.001 * t), 3)
    assert shifted.verdict == cm.FAILS and shifted.held == 0  # +5 points in every seed: significant everywhere


def test_an_overlap_part_counts_the_seeds_whose_picks_differ():
    rows = [{"method": "coreset_vae", "trial": t, "stage": 0, "overlap": v} for t, v in enumerate([1.0, 0.9, 0.8])]
    rows += [{"method": "coreset", "trial": t, "stage": 0, "overlap": float("nan")} for t in range(3)]
    part = audit.Part("picks differ", "overlap", "coreset_vae", "coreset", "lower", (0,), kind="overlap")
    result = audit.evaluate_part(part, pd.DataFrame(rows), 5)
    assert (result.seeds, result.held) == (3, 2)
    assert result.mean_a == pytest.approx(0.9) and result.verdict == cm.MIXED  # 2 of 3: below 80%


def test_every_claim_names_methods_of_its_setting_and_known_metrics():
    for claim in audit.CLAIMS.values():
        setting = audit.SETTINGS[claim.setting]
        assert set(claim.needed_methods()) <= set(setting.methods), claim.name
        assert set(claim.methods) <= set(setting.methods), claim.name
        for part in claim.parts:
            assert part.metric in cm.METRICS, (claim.name, part.metric)
        audit.setting_spec(setting)  # its preset loads and resolves
    with pytest.raises(ConfigError, match="claim"):
        audit.get_claim("fig99")


def test_set_values_are_parsed_and_bad_fields_refused():
    assert audit.parse_assignment("vae_epochs=50") == ("vae_epochs", 50)
    assert audit.parse_assignment("kl_reduction=sum") == ("kl_reduction", "sum")
    assert audit.parse_assignment("warm_start=true") == ("warm_start", True)
    with pytest.raises(ConfigError, match="unknown config field 'bogus'"):
        audit.parse_assignment("bogus=1")
    with pytest.raises(ConfigError, match="kl_reduction"):
        audit.setting_spec("moons_fig1", 2, {"kl_reduction": "median"})


@pytest.fixture(scope="module")
def small_audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("audits")
    result = audit.audit("fig1", seeds=2, overrides=SMALL, root=root)
    return root, result


def test_a_small_fig1_audit_measures_every_part(small_audit):
    root, result = small_audit
    assert result.verdict in cm.VERDICTS
    assert len(result.parts) == 4 and all(not p.missing for p in result.parts)
    assert all(p.seeds == 2 for p in result.parts)
    frame = result.frame
    assert set(frame["method"]) == {"random", "lloss", "vaal", "tavaal"}
    assert {"boundary_rank", "spread", "coverage", "d_spread", "loss_rank"} <= set(frame.columns)
    last = frame[frame["stage"] == 1]
    assert last["boundary_rank"].between(0, 1).all() and (last["spread"] > 0).all()
    assert frame.loc[frame["method"] == "vaal", "d_spread"].notna().all()
    table = result.parts_frame()
    assert list(table["verdict"]) == [p.verdict for p in result.parts]
    json.dumps(result.to_json())  # plain JSON


def test_measuring_the_records_just_computed_equals_measuring_the_folder(small_audit, monkeypatch):
    """The audit measures the records it holds in memory instead of reading back what it just wrote: the
    frame must be the one the folder gives."""
    import pandas as pd

    root, result = small_audit
    from_disk = audit.measure(result.run_dir)
    spec = audit.setting_spec(audit.SETTINGS["moons_fig1"], 2, SMALL)
    kept: dict = {}
    (root / "again").mkdir()
    run_dir = audit.run_setting(spec, root / "again", records=kept)
    assert sorted(kept) == sorted((t, m) for t in range(2) for m in spec.methods)
    reads = []
    real = store.load_records
    monkeypatch.setattr(store, "load_records", lambda *a, **k: reads.append(a) or real(*a, **k))
    from_memory = audit.measure(run_dir, records=kept)
    assert not reads  # nothing read back
    pd.testing.assert_frame_equal(from_memory.sort_index(axis=1), from_disk.sort_index(axis=1))


def test_the_audit_folder_is_a_cache_a_saved_run_and_grows_with_more_seeds(small_audit, monkeypatch):
    root, result = small_audit
    run_dir = result.run_dir
    assert store.is_run_dir(run_dir) and run_dir.parent == root
    assert [r.name for r in store.list_runs(root)] == [run_dir.name]
    # a second audit reads the folder: nothing is trained
    monkeypatch.setattr(ActiveLearner, "step", lambda *a, **k: pytest.fail("recomputed a stored stage"))
    again = audit.audit("fig1", seeds=2, overrides=SMALL, root=root)
    assert [p.verdict for p in again.parts] == [p.verdict for p in result.parts]
    assert (run_dir / "metrics-claims-2.json").is_file()
    monkeypatch.undo()
    # more seeds extend the same folder
    more = audit.audit("fig1", seeds=3, overrides=SMALL, root=root)
    assert more.run_dir == run_dir and more.parts[0].seeds == 3
    assert store.stored_trials(run_dir) == [0, 1, 2]
    # any saved run holding the methods can be audited
    other = audit.evaluate("fig7b", run_dir)
    assert other.parts[0].seeds == 3 and not other.parts[0].missing
    absent = audit.evaluate("godwin", run_dir)  # core-set & co. were not run here
    assert absent.verdict == audit.NOT_MEASURED and all(p.missing for p in absent.parts)


def _assert_same_weights(ref, got, skip=()):
    for (name, p), q in zip(ref.named_parameters(), got.parameters()):
        if name not in skip:
            assert torch.allclose(p, q, atol=1e-5), name


@pytest.mark.parametrize("method", ["tavaal", "vaal"])
def test_seeds_trained_together_equal_the_engine_up_to_rounding(method):
    """A few epochs of the task learner (+ Ranker) and of the VAE + discriminator for three seeds at once: the
    weights equal those the engine trains seed by seed (the adversarial game amplifies rounding over 100
    epochs, so full runs agree in distribution, not bit for bit)."""
    from tavaal_core.presets import load_preset

    torch.set_num_threads(1)
    spec = load_preset("moons_fig1")
    data = load_dataset("moons", **spec.config.dataset_options)
    configs = [spec.config.with_(method=method, seed=s, task_epochs=3, vae_epochs=2) for s in range(3)]
    needs = get_strategy(method).needs
    engine = [ActiveLearner(c, dataset=data).start() for c in configs]
    together = [ActiveLearner(c, dataset=data).start() for c in configs]
    tasks = batched.train_task_models(together, needs.head, method)
    models, _ = batched.train_vaal_models(together, tasks, needs)
    for learner, task, vaal in zip(engine, tasks, models):
        ref_task = learner._task_model(learner.pool.labeled, needs.head, False, 0.0, lambda *a: None)
        _assert_same_weights(ref_task.model, task.model)
        assert ref_task.task_loss_history == pytest.approx(task.task_loss_history, abs=1e-5)
        if method == "vaal":  # the Ranker's bias gets no gradient from a pair loss (it cancels in l_i - l_j):
            # Adam turns rounding noise into full steps there, so only the rank-free VAE is compared bit-near
            cands = learner.pool.candidates(learner.config.budget, learner.config.subset_factor,
                                            learner.config.seed, 0, fraction=learner.config.subset_fraction)
            ref_vaal = learner._vaal(needs, ref_task, learner.pool.labeled, cands, lambda *a: None)
            _assert_same_weights(ref_vaal.vae, vaal.vae)
            _assert_same_weights(ref_vaal.discriminator, vaal.discriminator)
        else:
            _assert_same_weights(ref_task.head, task.head, skip=("out.bias",))
    # the stage they lead to: the engine's own scoring and record
    for learner, other in zip(engine, together):
        a = learner.step()
        b = batched.step_together([other], method)[0]  # a single learner: the engine trains it
        assert a.accuracy == pytest.approx(b.accuracy)
        assert a.method == b.method and a.stage == b.stage


def test_sweep_table_is_one_row_per_setting(small_audit):
    root, _ = small_audit
    frame = audit.sweep("fig1", {"kl_reduction": ["mean", "sum"]}, seeds=2, base=SMALL, root=root)
    table = audit.sweep_table(frame)
    assert list(table["value"]) == ['"mean"', '"sum"']
    assert table.shape[1] == 3 + 4  # field, value, claim, one column per part


def test_claims_command_writes_csv_and_json(small_audit, tmp_path, monkeypatch, capsys):
    root, _ = small_audit
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(root))
    args = ["claims", "--claim", "fig1", "--seeds", "2", "--quiet", "--to", str(tmp_path)]
    for k, v in SMALL.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fig1" in out and "verdict:" in out
    table = pd.read_csv(tmp_path / "claims-fig1.csv")
    assert len(table) == 4 and set(table["verdict"]) <= set(cm.VERDICTS)
    data = json.loads((tmp_path / "claims-fig1.json").read_text())
    assert data[0]["claim"] == "fig1" and len(data[0]["parts"]) == 4


@pytest.mark.parametrize("args, field", [
    (["claims", "--claim", "nope"], "claim"),
    (["claims", "--claim", "fig1", "--set", "bogus=1"], "bogus"),
    (["claims", "--claim", "fig1", "--set", "kl_reduction=median"], "kl_reduction"),
    (["claims", "--seeds", "1"], "seeds"),
])
def test_claims_command_refuses_bad_input_in_one_line(args, field, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_methods_trained_in_one_stack_equal_the_engine():
    """Random, learning loss, VAAL and TA-VAAL of two seeds in one stack (heads mixed; VAAL padded to TA-VAAL's
    rank input): every task learner and VAAL's VAE + discriminator equal the engine's, seed by seed."""
    from tavaal_core.presets import load_preset

    torch.set_num_threads(1)
    spec = load_preset("moons_fig1")
    data = load_dataset("moons", **spec.config.dataset_options)
    pairs = [(m, s) for s in range(2) for m in ("random", "lloss", "vaal", "tavaal")]
    configs = [spec.config.with_(method=m, seed=s, task_epochs=3, vae_epochs=2) for m, s in pairs]
    together = [ActiveLearner(c, dataset=data).start() for c in configs]
    needs = [get_strategy(m).needs for m, _ in pairs]
    tasks = batched.train_task_models(together, [n.head for n in needs], [m for m, _ in pairs])
    vae_rows = [i for i, n in enumerate(needs) if n.vae != "none"]
    models, _ = batched.train_vaal_models([together[i] for i in vae_rows], [tasks[i] for i in vae_rows],
                                          [needs[i] for i in vae_rows])
    vaal_of = dict(zip(vae_rows, models))
    for i, (config, nd) in enumerate(zip(configs, needs)):
        learner = ActiveLearner(config, dataset=data).start()
        ref = learner._task_model(learner.pool.labeled, nd.head, False, 0.0, lambda *a: None)
        _assert_same_weights(ref.model, tasks[i].model)
        if nd.head != "none":
            _assert_same_weights(ref.head, tasks[i].head, skip=("out.bias",))
        if config.method == "vaal":
            cands = learner.pool.candidates(config.budget, config.subset_factor, config.seed, 0,
                                            fraction=config.subset_fraction)
            ref_vaal = learner._vaal(nd, ref, learner.pool.labeled, cands, lambda *a: None)
            _assert_same_weights(ref_vaal.vae, vaal_of[i].vae)
            _assert_same_weights(ref_vaal.discriminator, vaal_of[i].discriminator)
            assert vaal_of[i].discriminator.rank_dim == 0  # the padding is gone
    # one stage of the mixed group: every method's own record
    records = batched.step_together(together)
    assert [r.method for r in records] == [m for m, _ in pairs]
    assert all(len(r.selected) == configs[0].budget for r in records)


def test_fewer_seeds_than_the_folder_holds_runs_only_those(small_audit, monkeypatch):
    root, result = small_audit
    spec = audit.setting_spec("moons_fig1", 2, SMALL)
    experiment = audit.prepare(spec, root)  # the folder holds 3 seeds by now (the test above extended it)
    assert experiment.spec.trials == 2 and experiment.counts()[0] == experiment.counts()[1]
