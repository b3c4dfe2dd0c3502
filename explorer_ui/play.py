"""The lifecycle of a live session on a page: start it from the settings, Step / Run N / Reset with
progress, and say when settings changed. Shared by the two-moons and stage-explorer pages."""
from __future__ import annotations

import streamlit as st

from tavaal_core import ConfigError, TavaalError

from . import controls
from .controls import Form, Settings
from .progress import StepProgress
from .session import LiveSession
from .source import Source, open_source

RUN_MAX = 30


def _state_key(key: str) -> str:
    return f"_session_{key}"


def current(key: str) -> LiveSession | None:
    return st.session_state.get(_state_key(key))


def start(key: str, title: str, settings: Settings, form: Form | None, with_oracle: bool) -> LiveSession | None:
    """A fresh session at stage 0 (replacing the one under ``key``). Errors go beside their control."""
    try:
        # The oracle is trained later (views.moons_panels draws the data first, then the oracle's line).
        with st.spinner("Loading the data…"):
            session = LiveSession.create(key, title, settings.config, settings.methods)
    except ConfigError as e:
        if form is not None:
            form.show(e)
        st.error(f"Cannot start with these settings. {e}", icon=":material/error:")
        return None
    except TavaalError as e:  # DatasetUnavailable: its message says where to put which files
        st.error(str(e), icon=":material/folder_off:")
        return None
    session.signature = settings.signature
    session.values = dict(settings.values or {})
    st.session_state[_state_key(key)] = session
    open_source(session.source)
    return session


def ensure(key: str, title: str, settings: Settings, form: Form, with_oracle: bool) -> LiveSession | None:
    """The session to show. Starts one when there is none; follows changed settings silently while nothing
    has been stepped (cheap), otherwise keeps the stepped session until Step or Reset."""
    session = current(key)
    if settings.config is None:  # invalid settings: the error is already beside its control
        return session
    if session is None or (session.stage == 0 and session.signature != settings.signature):
        session = start(key, title, settings, form, with_oracle) or session
    return session


def step(session: LiveSession, stages: int, where=None, label: str | None = None) -> None:
    """Step ``stages`` stages of every method with one progress bar; report failed methods."""
    stages = max(1, min(stages, session.max_stages - session.stage))
    progress = StepProgress(session.methods, stages=stages, first_stage=session.stage, container=where,
                            label=label)
    failures = []
    first = session.stage
    for k in range(stages):
        failures += session.step(progress)
        if session.done or not session.methods:
            break
        if k < stages - 1:
            progress.next_stage()
    stepped = session.stage - first
    label = (f"Stage {first} done" if stepped == 1 else f"Stages {first}–{session.stage - 1} done") \
        + f" in {progress_seconds(progress):.1f} s"
    progress.finish(label, error=bool(failures))
    for f in failures:
        st.error(session.failure_text(f), icon=":material/error:")


def progress_seconds(progress: StepProgress) -> float:
    import time

    return time.perf_counter() - progress.started


def restore(key: str, title: str, settings: Settings, stepped: int, form: Form | None = None,
            where=None) -> LiveSession | None:
    """The session a link describes: ``settings`` stepped ``stepped`` times. Reuses the session under ``key``
    when it is that one (stepping on when it is behind); otherwise starts over and recomputes, with progress.
    Deterministic from the seed, so the link shows the same picks it was copied from."""
    if settings.config is None:
        return current(key)
    session = current(key)
    if session is None or session.signature != settings.signature or session.stage > stepped:
        session = start(key, title, settings, form, with_oracle=False)
    if session is not None and session.stage < stepped and not session.done:
        n = min(stepped, session.max_stages) - session.stage
        step(session, n, where=where, label=f"Reopening this link: recomputing {n} stage{'s' if n > 1 else ''} "
                                             f"of {len(session.methods)} methods…")
    return session


def toolbar(key: str, title: str, settings: Settings, form: Form, with_oracle: bool,
            stepped: int | None = None, cost=None) -> LiveSession | None:
    """Step / Run N / Reset and the stage counter; returns the session to draw (None: nothing to show).
    ``stepped``: a link asks for the session after that many stages (recomputed when needed)."""
    if stepped is not None:
        restore(key, title, settings, stepped, form)
    session = ensure(key, title, settings, form, with_oracle)
    c_step, c_run, c_n, c_reset, c_count = st.columns([1, 1.3, 0.9, 1, 1.6], vertical_alignment="bottom")
    done = session is not None and session.done
    can_step = settings.config is not None or session is not None
    step_clicked = c_step.button("Step", type="primary", key=f"{key}_step", disabled=not can_step or done,
                                 width="stretch", help="Run one stage of every method.")
    n = c_n.number_input("Stages", min_value=1, max_value=RUN_MAX, value=3, step=1, key=f"{key}_n",
                         label_visibility="collapsed", help="How many stages 'Run' steps.")
    run_clicked = c_run.button(f"Run {int(n)} stages", key=f"{key}_run", disabled=not can_step or done, width="stretch")
    reset_clicked = c_reset.button("Reset", key=f"{key}_reset", width="stretch",
                                   help="Start over at stage 0 with the settings in the sidebar.")
    estimate = st.empty()
    slot = st.container()
    if reset_clicked and settings.config is not None:
        session = start(key, title, settings, form, with_oracle) or session
    elif (step_clicked or run_clicked) and settings.config is not None and session is not None \
            and session.signature != settings.signature:
        session = start(key, title, settings, form, with_oracle)
        if session is not None:
            slot.info("Settings changed: started over with the new ones.", icon=":material/restart_alt:")
    if (step_clicked or run_clicked) and session is not None and not session.done:
        step(session, 1 if step_clicked else int(n), where=slot)
    if session is not None and cost is not None:
        line = cost(session)
        if line:
            estimate.caption(f":material/schedule: {line}")
    if session is not None:
        c_count.metric("Stages stepped", f"{session.stage} of {session.max_stages}",
                       help="All methods step together. The last stage is limited by the pool and the budget.")
        if session.signature != settings.signature and settings.config is not None and session.stage > 0:
            st.warning("You changed the settings: Step or Reset starts over with them. The stages below are from "
                       "the earlier settings.", icon=":material/tune:")
        if not session.aligned:
            st.warning("The last step was interrupted before every method finished; Step completes it.",
                       icon=":material/warning:")
        if session.done:
            st.caption(f"All {session.max_stages} stages are done (the pool allows that many with this budget). "
                       "Reset to start over.")
    return session


# -- views: pick a source, or start a demo ---------------------------------------------------------------------
def demo_settings() -> Settings:
    """The two-moons playground's defaults, without drawing its controls."""
    return controls.moons_config(controls.MOONS_DEFAULTS)


SESSION_TITLES = {"moons": "Two moons", "images": "Stage explorer"}


def linked_source(link) -> Source | None:
    """The source a view page's link names (``src``): a live session rebuilt from the link's settings and
    stepped to its ``stepped`` (with progress), or a lesson replay. Selected for the views."""
    from . import links

    src = link.text("src") if link is not None else None
    if not src:
        return None
    if src.startswith("lesson:"):
        from . import lesson

        source = lesson.replay_source(src.split(":", 1)[1])
        if source is None:
            st.warning(f"This link's `src={src}` names no lesson replay.", icon=":material/link_off:")
            return None
        open_source(source, select=True)
        return source
    if src not in SESSION_TITLES:
        st.warning(f"This link's `src={src}` is not a session this app can rebuild (moons, images or "
                   "lesson:NAME); showing what is open.", icon=":material/link_off:")
        return None
    link.apply(links.source_params(src, link.query))
    try:
        settings = controls.moons_config(controls.moons_values()) if src == "moons" else \
            controls.image_config(controls.image_values())
    except TavaalError as e:
        st.error(f"This link's settings cannot be used: {e}", icon=":material/link_off:")
        return None
    session = restore(src, SESSION_TITLES[src], settings, link.get(links.STEPPED) or 1)
    if session is None:
        return None
    open_source(session.source, select=True)
    return session.source


def source_query(source: Source) -> dict[str, str]:
    """URL parameters that rebuild ``source`` on a view page: ``src``, and for a live session the settings
    it was started from and how many stages it stepped."""
    from . import links

    query = {"src": source.key}
    session = current(source.key)
    if session is not None and session.source is source:
        params = links.source_params(source.key, {"dataset": session.config.dataset})
        query.update(links.query_of(params, session.values))
        query["stepped"] = str(session.stage)
    return query


def view_source(key: str = "view_source", link=None) -> Source | None:
    """The session (or opened run) a view page draws; when there is none, offer a two-moons demo. A link
    naming its source (``src``) opens that one first."""
    linked_source(link)
    source = controls.source_picker(key)
    if source is not None:
        return source
    st.info("Nothing has been stepped yet. Step a few stages on **Two moons** or the **Stage explorer**, or run a "
            "quick demo here.", icon=":material/info:")
    if st.button("Run a two-moons demo (2 stages of random, core-set, VAAL, TA-VAAL)", type="primary",
                 key=f"{key}_demo"):
        session = current("moons")
        if session is None or session.stage == 0:
            session = start("moons", "Two moons", demo_settings(), None, with_oracle=True)
        if session is not None:
            session.ensure_oracle()
            step(session, 2)
            st.rerun()
    return None



# -- view pages: the link in, the link out -------------------------------------------------------------------
def open_view(page: str, title: str, explain_key: str | None = None, stage_key: str = "view_stage"):
    """The top of a view page: title row with Copy link, the link's source and settings applied.
    Returns (link, source); stops the page (with its link published) when there is nothing to show."""
    from . import links, views, why

    link = links.PageLink(page, title)
    if explain_key:
        views.explain(explain_key)
    source = view_source(link=link)
    if source is None:
        link.publish({})
        st.stop()
    link.apply(links.VIEW_PARAMS.get(page, ()))
    stage = link.get(links.STAGE)
    if stage is not None:
        controls.pin_stage(source, stage_key, stage)
    why.from_param(source, link.text("why"))
    return link, source


def close_view(link, source: Source, page: str, stage: int | None = None) -> None:
    """Publish the view page's state: its source, its own parameters, the stage and the explained sample."""
    from . import links, why

    query = source_query(source)
    query.update(links.values_of(links.VIEW_PARAMS.get(page, ())))
    if stage is not None:
        query["stage"] = str(stage)
    picked = why.as_param(source)
    if picked:
        query["why"] = picked
    link.publish(query)
