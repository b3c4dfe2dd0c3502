"""'What will a Step cost?', said beside the Step button before it starts (``tavaal_core.estimate`` counts the
work; the rates are this server's measurements of earlier stages, else a rough 2-core CPU figure)."""
from __future__ import annotations

import streamlit as st

from tavaal_core import estimate as costs


@st.cache_resource(show_spinner=False)
def _measured() -> dict:
    """(dataset, model, method, device) -> seconds per sample and phase, from this server's last stage of it."""
    return {}


def _key(config, method: str, device) -> tuple:
    c = config.resolve()
    return c.dataset, c.model, method, str(device)


def remember(session) -> None:
    """Keep the rates of the stage each learner of ``session`` just ran (called after a step)."""
    for method, learner in session.learners.items():
        if learner.records:
            n = len(learner.pool.labeled) + len(learner.pool.unlabeled)
            key = _key(session.config, method, learner.device)
            # merged: a stage whose task model was shared measured no task training
            _measured()[key] = {**_measured().get(key, {}),
                                **costs.rates_from_record(session.config, learner.records[-1], n)}


def _fmt(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def step_seconds(session) -> tuple[float, bool]:
    """(expected seconds of the next Step of every method, whether every rate was measured here)."""
    total, measured = 0.0, True
    for method, learner in session.learners.items():
        if learner.done:
            continue
        rates = _measured().get(_key(session.config, method, learner.device))
        measured &= rates is not None
        labeled = len(learner.pool.labeled)
        total += costs.estimate_seconds(session.config, method, labeled, len(learner.pool.unlabeled), rates,
                                        first_stage=learner.stage == 0)
    return total, measured


def step_estimate(session) -> str:
    """One line for beside the Step button."""
    if session is None or not session.learners or session.done:
        return ""
    seconds, measured = step_seconds(session)
    how = "measured on this machine" if measured else "a rough figure for a 2-core CPU until the first Step"
    n = len(session.learners)
    return f"Next Step: {_fmt(seconds)} for {n} method{'s' if n > 1 else ''} ({how})."


def estimate_what_if(source, methods: list[str]) -> str:
    """The expected cost of a what-if of ``methods`` from a source's state."""
    if source.config is None or not methods:
        return ""
    learner = next(iter(source.learners.values()), None)
    n = len(source.meta.labels)
    stage_recs = [recs[-1] for recs in source.records.values() if recs]
    labeled = stage_recs[0].labeled_count if stage_recs else 0
    device = learner.device if learner is not None else "cpu"
    total = sum(costs.estimate_seconds(source.config, m, labeled, n - labeled,
                                       _measured().get(_key(source.config, m, device))) for m in methods)
    return f"Computing the ranks trains each method's models once: {_fmt(total)}."
