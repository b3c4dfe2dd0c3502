"""'What will a Step cost?', said beside the Step button before it starts: the core's run estimate
(``tavaal_core.estimate``: this machine's probed rates x the steps the config implies) for the next stage."""
from __future__ import annotations

import streamlit as st

from tavaal_core import TavaalError, get_strategy
from tavaal_core.estimate import estimate_config, format_duration
from tavaal_core.phases import PHASE_TASK


def shared_groups(session) -> int:
    """How many task models the next Step trains: at a stage where every learner has the same labels (stage
    0), methods with the same needs share one (``LiveSession`` hands its learners one ``shared`` dict)."""
    learners = [lrn for lrn in session.learners.values() if not lrn.done]
    labels = {tuple(lrn.pool.labeled.tolist()) for lrn in learners}
    if len(labels) != 1:
        return len(learners)
    return len({(get_strategy(m).needs.head, get_strategy(m).needs.head_extra, session.config.dropout_for(m))
                for m, lrn in session.learners.items() if not lrn.done})


@st.cache_data(show_spinner=False, max_entries=64)
def _estimate(config_json: str, methods: tuple, stage: int, shared: int) -> tuple[float, str]:
    from tavaal_core import ExperimentConfig

    config = ExperimentConfig.from_json(config_json) if hasattr(ExperimentConfig, "from_json") else \
        ExperimentConfig.from_dict(__import__("json").loads(config_json))
    est = estimate_config(config, list(methods), stages=[stage])
    seconds = est.seconds
    task = est.phases.get(PHASE_TASK, 0.0)
    if methods and shared < len(methods):
        seconds -= task * (1 - shared / len(methods))
    return seconds, f"{est.device.upper()}, {est.precision}"


def step_estimate(session) -> str:
    """One line for beside the Step button (empty when there is nothing to step)."""
    if session is None or not session.learners or session.done:
        return ""
    methods = tuple(m for m, lrn in session.learners.items() if not lrn.done)
    try:
        with st.spinner("Measuring this machine once, to say what a Step costs…"):
            seconds, where = _estimate(session.config.to_json(), methods, session.stage, shared_groups(session))
    except (TavaalError, RuntimeError, ValueError) as e:  # an estimate must never break the page
        return f"No estimate for the next Step ({e})."
    n = len(methods)
    return f"Next Step: about {format_duration(seconds)} for {n} method{'s' if n > 1 else ''} on this {where}."


def estimate_what_if(source, methods: list[str], stage: int) -> str:
    """The expected cost of a what-if of ``methods`` from a source's state at ``stage``."""
    if source.config is None or not methods:
        return ""
    try:
        seconds, _ = _estimate(source.config.to_json(), tuple(methods), stage, len(methods))
    except (TavaalError, RuntimeError, ValueError):
        return ""
    return f"Computing the ranks trains each method's models once: about {format_duration(seconds)}."
