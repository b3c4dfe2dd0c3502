"""'What will a Step cost?', said beside the Step button before it starts: the core's run estimate
(``tavaal_core.estimate``: this machine's probed rates x the steps the config implies) for the next stage."""
from __future__ import annotations

import streamlit as st

from tavaal_core import TavaalError
from tavaal_core.estimate import estimate_step, format_duration

from .session import step_workers


def _shares_task_models(session) -> bool:
    """At a stage where every learner has the same labels (stage 0), methods with the same needs share one
    task model (``LiveSession`` hands its learners one ``shared`` dict)."""
    learners = [lrn for lrn in session.learners.values() if not lrn.done]
    return len({tuple(lrn.pool.labeled.tolist()) for lrn in learners}) == 1


@st.cache_data(show_spinner=False, max_entries=64)
def _estimate(config_json: str, methods: tuple, stage: int, shared: bool, workers: int) -> tuple[float, str]:
    import json

    from tavaal_core import ExperimentConfig

    est = estimate_step(ExperimentConfig.from_dict(json.loads(config_json)), list(methods), stage, shared, workers)
    return est.seconds, f"{est.device.upper()}, {est.precision}"


def step_estimate(session) -> str:
    """One line for beside the Step button (empty when there is nothing to step)."""
    if session is None or not session.learners or session.done:
        return ""
    learners = {m: lrn for m, lrn in session.learners.items() if not lrn.done}
    methods = tuple(learners)
    workers = step_workers(list(learners.values()))
    try:
        with st.spinner("Measuring this machine once, to say what a Step costs…"):
            seconds, where = _estimate(session.config.to_json(), methods, session.stage,
                                       _shares_task_models(session), workers)
    except (TavaalError, RuntimeError, ValueError) as e:  # an estimate must never break the page
        return f"No estimate for the next Step ({e})."
    n = len(methods)
    side = f", {workers} at a time" if workers > 1 else ""
    return f"Next Step: about {format_duration(seconds)} for {n} method{'s' if n > 1 else ''}{side} on this {where}."


def estimate_what_if(source, methods: list[str], stage: int) -> str:
    """The expected cost of a what-if of ``methods`` from a source's state at ``stage``."""
    if source.config is None or not methods:
        return ""
    try:
        seconds, _ = _estimate(source.config.to_json(), tuple(methods), stage, False, 1)
    except (TavaalError, RuntimeError, ValueError):
        return ""
    return f"Computing the ranks trains each method's models once: about {format_duration(seconds)}."
