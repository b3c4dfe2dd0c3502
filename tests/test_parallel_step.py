"""A Step runs its methods in parallel threads on a CPU (explorer_ui.session): the picks must be exactly those
of a sequential Step, the long trainings must not hold torch's global-RNG lock (or the threads would run one
after the other), a task model shared by several methods is trained once, and an interrupted Step stops
every thread and is completed by the next one."""
import contextlib
import threading

import pytest

from explorer_ui import session as session_module
from explorer_ui.session import LiveSession
from tavaal_core import ExperimentConfig, rng
from tavaal_core import engine as engine_module

METHODS = ["random", "coreset", "vaal", "tavaal"]
CONFIG = dict(dataset="digits", initial_size=40, budget=20, stages=3, task_epochs=2, vae_epochs=2,
              analysis_size=100, seed=3)


def stepped(workers: int, monkeypatch, steps: int = 2, methods=METHODS) -> LiveSession:
    monkeypatch.setattr(session_module, "step_workers", lambda learners: min(workers, len(learners)))
    s = LiveSession.create("t", "T", ExperimentConfig(**CONFIG), list(methods))
    for _ in range(steps):
        assert s.step() == []
    return s


def picks(s: LiveSession) -> dict:
    return {m: [(r.selected.tolist(), r.accuracy, r.candidate_scores.tolist()) for r in lrn.records]
            for m, lrn in s.learners.items()}


def test_a_parallel_step_picks_exactly_what_a_sequential_step_picks(monkeypatch):
    threads = []
    real_step = engine_module.ActiveLearner.step

    def recording(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(engine_module.ActiveLearner, "step", recording)
    parallel = picks(stepped(4, monkeypatch))
    assert len(set(threads)) >= 2  # the learners did step in several threads
    sequential = picks(stepped(1, monkeypatch))
    assert parallel == sequential
    assert all(len(v) == 2 for v in parallel.values())


def test_long_trainings_seed_the_global_rng_only_to_build_models(monkeypatch):
    """Only model construction (short) may seed torch's global RNG under its lock; a VAE or a task learner
    without dropout trains on its own generators, so two of them can run at once."""
    used = []
    real = rng.seeded

    @contextlib.contextmanager
    def recording(seed, stage, purpose, device="cpu"):
        used.append(purpose)
        with real(seed, stage, purpose, device):
            yield

    monkeypatch.setattr(rng, "seeded", recording)
    stepped(1, monkeypatch, steps=1, methods=["vaal", "tavaal", "coreset_vae"])
    assert used and set(used) <= {"task-model", "loss-head", "vae", "unsupervised-vae"}, sorted(set(used))


def test_a_shared_task_model_is_trained_once_when_methods_run_at_once(monkeypatch):
    calls = []
    real = engine_module.ActiveLearner._train_task

    def counting(self, indices, head_kind, *args, **kwargs):
        calls.append(head_kind)
        return real(self, indices, head_kind, *args, **kwargs)

    monkeypatch.setattr(engine_module.ActiveLearner, "_train_task", counting)
    s = stepped(3, monkeypatch, steps=1, methods=["random", "coreset", "entropy"])
    assert calls == ["none"]  # one plain task model at stage 0, for the three of them
    timed = [m for m, lrn in s.learners.items() if "task training" in lrn.records[0].timings]
    assert len(timed) == 1


def test_an_interrupted_parallel_step_stops_every_thread_and_the_next_completes_it(monkeypatch):
    class Stop(BaseException):  # what Streamlit raises in the script thread when the user clicks elsewhere
        pass

    reference = picks(stepped(1, monkeypatch, steps=1))
    monkeypatch.setattr(session_module, "step_workers", lambda learners: min(2, len(learners)))
    s = LiveSession.create("t", "T", ExperimentConfig(**CONFIG), list(METHODS))
    seen = []

    def progress(i, method, phase, fraction, message):
        seen.append(method)
        if len(seen) == 3:
            raise Stop()

    with pytest.raises(Stop):
        s.step(progress)
    assert not [t for t in threading.enumerate() if t.name.startswith("tavaal-step")]  # nothing left running
    assert s.stage == 0 and not s.learners["vaal"].records and not s.learners["tavaal"].records
    assert s.step() == []
    assert s.stage == 1 and s.aligned
    assert picks(s) == reference


def test_a_seeded_block_draws_what_manual_seed_gives_and_queues_no_accelerator_seeding():
    """``rng.seeded`` seeds only the generators its device uses: the same draws as ``torch.manual_seed``, without
    the lazy accelerator seedings torch.manual_seed queues (each with its call stack) on a machine whose CUDA
    is not initialised: a list that grew with every model built, for the life of the server."""
    import torch

    queued = len(getattr(torch.cuda, "_queued_calls", []))
    with rng.seeded(7, 1, "task-model"):
        drawn = torch.randn(5)
    for _ in range(50):
        with rng.seeded(7, 1, "task-model"):
            pass
    if not torch.cuda.is_initialized():
        assert len(getattr(torch.cuda, "_queued_calls", [])) == queued
    state = torch.get_rng_state()
    torch.manual_seed(rng.derive_seed(7, 1, "task-model"))
    assert torch.equal(drawn, torch.randn(5))
    torch.set_rng_state(state)
