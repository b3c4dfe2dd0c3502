"""Guided lesson: the TA-VAAL story in six steps, from replays shipped with the app (instant); a changed
setting recomputes the same stages live. Every step is a link (``/lesson?step=3``)."""
import streamlit as st

from explorer_ui import controls, lesson, links, play, views, why
from explorer_ui.lesson import REPLAYS, STEPS

STEP = links.Param("step", "", "int", 1, len(STEPS))
SEED = links.Param("seed", "", "int", 0, 2**31 - 1)
NOISE = links.Param("noise", "", "float", 0.0, 0.6)

link = links.PageLink("lesson", "Guided lesson")
if link.query:
    if link.get(STEP) is not None:
        st.session_state["lesson_step"] = link.get(STEP) - 1
    for name, param in (("lesson_seed", SEED), ("lesson_noise", NOISE)):
        value = link.get(param)
        if value is not None:
            controls.remember(name, value)
index = min(max(int(st.session_state.get("lesson_step", 0)), 0), len(STEPS) - 1)
step = STEPS[index]
spec = REPLAYS[step.replay]


def go(to: int) -> None:
    st.session_state["lesson_step"] = to


# -- where we are ---------------------------------------------------------------------------------------------
st.progress((index + 1) / len(STEPS), text=f"Step {index + 1} of {len(STEPS)}")
nav_back, nav_title, nav_next = st.columns([1, 6, 1], vertical_alignment="center")
nav_back.button("Back", icon=":material/arrow_back:", key="lesson_back", disabled=index == 0,
                on_click=go, args=(index - 1,), width="stretch")
nav_title.subheader(f"{index + 1}. {step.title}")
nav_next.button("Next", icon=":material/arrow_forward:", key="lesson_next", type="primary",
                disabled=index == len(STEPS) - 1, on_click=go, args=(index + 1,), width="stretch")
st.markdown(step.text)

# -- the pictures: the shipped replay, or the same stages recomputed with the teacher's settings ----------------
replay = lesson.replay(step.replay)
default_seed = int(replay.config.seed) if replay else 0
default_noise = float(replay.config.dataset_options.get("noise", 0.2)) if replay else 0.2
with st.expander("Change the settings (the lesson recomputes these stages)", icon=":material/tune:"):
    c1, c2 = st.columns(2)
    controls.widget_default("lesson_seed", default_seed)
    seed = c1.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="lesson_seed",
                           on_change=controls.keep("lesson_seed"),
                           help="Another seed draws other data, other initial labels and other picks.")
    noise = default_noise
    if spec.page == "moons":
        controls.widget_default("lesson_noise", default_noise)
        noise = c2.slider("Noise", 0.0, 0.6, step=0.05, key="lesson_noise", on_change=controls.keep("lesson_noise"),
                          help="How far the points scatter around the two half-circles.")
    if replay is not None:
        st.caption(f"Shipped replay: {replay.description} Stages: {replay.stages}. Seed {default_seed}.")

changed = replay is None or int(seed) != default_seed or (spec.page == "moons" and abs(noise - default_noise) > 1e-9)
if not changed:
    source = lesson.replay_source(step.replay)
else:
    changes = {"moons_seed": int(seed), "moons_noise": float(noise)} if spec.page == "moons" else {"img_seed": int(seed)}
    settings = lesson.spec_settings(spec, changes)
    st.info(("The shipped replay is missing (scripts/make_lesson_assets.py writes it): these stages are computed live."
             if replay is None else "Your settings differ from the shipped replay: these stages are computed live "
                                    "(the same every time for the same settings)."), icon=":material/refresh:")
    session = play.restore(f"lesson-{spec.name}", spec.title, settings, spec.stages)
    source = session.source if session is not None else None
    if session is not None and spec.page == "moons":
        session.ensure_oracle()
if source is None:
    st.stop()

stage = min(step.stage if step.stage is not None else source.stages - 1, source.stages - 1)
methods = [m for m in step.methods if m in source.records]
key = f"lesson_{step.slug}"
if step.view == "moons":
    views.moons_panels(source, stage, methods=methods, cols=len(methods), key=key)
    why.panel(source, stage)
elif step.view == "discriminator":
    views.discriminator(source, stage, methods)
elif step.view == "loss":
    views.loss_views(source, stage, methods)
elif step.view == "balance":
    views.class_balance(source, stage, methods)
elif step.view == "curves":
    views.learning_curves(source, methods)
elif step.view == "feature_map":
    controls.widget_default("lesson_alpha", 1.0)
    alpha = st.slider("alpha (how much the VAE's code counts)", 0.0, 4.0, step=0.25, key="lesson_alpha",
                      on_change=controls.keep("lesson_alpha"))
    views.feature_maps(source, stage, methods[0], "pca", alpha)
    why.panel(source, stage)
st.caption(f"Stage {stage} of {source.title.lower()}" + (" (the shipped replay: nothing was trained to draw this)."
                                                          if not changed else " (recomputed with your settings)."))

# -- open it in full, and the link to this step -------------------------------------------------------------------
view_query = play.source_query(source) if changed else {"src": source.key}
if changed and source.key.startswith("lesson-"):  # a live lesson session: its page rebuilds it from the settings
    view_query = {"src": spec.page if spec.page == "moons" else "images",
                  **links.query_of(links.source_params(spec.page if spec.page == "moons" else "images",
                                                       {"dataset": source.config.dataset}), settings.values),
                  "stepped": str(spec.stages)}
page_params = {"methods": ",".join(methods)} if step.view not in ("feature_map", "moons") else {}
if step.view == "feature_map":
    page_params = {"method": methods[0], "projection": "pca", "alpha": f"{st.session_state.get('lesson_alpha', 1.0):g}"}
if step.view != "curves":
    page_params["stage"] = str(stage)
if step.view == "moons":
    target = "pages/moons.py"
    page_query = {**links.query_of(links.MOONS_PARAMS, settings.values if changed else
                                   {**controls.MOONS_DEFAULTS, **spec.values}),
                  "stepped": str(spec.stages), "stage": str(stage)}
else:
    target = {"discriminator": "pages/discriminator.py", "loss": "pages/loss.py",
              "balance": "pages/class_balance.py", "curves": "pages/learning_curves.py",
              "feature_map": "pages/feature_map.py"}[step.view]
    page_query = {**view_query, **page_params}
st.page_link(target, label="Open this view on its own page", icon=":material/open_in_new:", query_params=page_query)

with st.expander("All steps (each is a link you can open directly)"):
    for i, s in enumerate(STEPS):
        st.page_link("pages/lesson.py", label=f"{i + 1}. {s.title}", query_params=lesson.step_query(i),
                     icon=":material/radio_button_checked:" if i == index else ":material/radio_button_unchecked:")

query = lesson.step_query(index)
if int(seed) != default_seed:
    query["seed"] = str(int(seed))
if spec.page == "moons" and abs(noise - default_noise) > 1e-9:
    query["noise"] = f"{noise:g}"
link.publish(query)
