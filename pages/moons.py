"""Two-moons playground (TA-VAAL Figure 1, live): one panel per method from the same initial labels."""
import streamlit as st

from explorer_ui import controls, costs, links, play, views, why

link = links.PageLink("two-moons", "Two moons playground")
link.apply(links.MOONS_PARAMS)
views.explain("moons")
settings, form = controls.moons_settings()
session = play.toolbar("moons", "Two moons", settings, form, with_oracle=True, stepped=link.get(links.STEPPED),
                       cost=costs.step_estimate)
if session is None:
    link.publish(links.query_of(links.MOONS_PARAMS, settings.values or controls.moons_values()))
    st.stop()
source = session.source
if session.stage and link.get(links.STAGE) is not None:
    controls.pin_stage(source, "moons_stage", link.get(links.STAGE))
why.from_param(source, link.text("why"))
stage = controls.stage_picker(source, key="moons_stage") if session.stage else None
views.moons_panels(source, stage, session=session)
query = {**links.query_of(links.MOONS_PARAMS, session.values), "stepped": str(session.stage)}
if stage is None:
    st.caption("Press **Step** to train every method on these labels and see what each one picks.")
else:
    query["stage"] = str(stage)
    why.panel(source, stage)
    if why.as_param(source):
        query["why"] = why.as_param(source)
link.publish(query)
if stage is not None and st.toggle("Pick your own batch and compare it with the methods'", key="moons_pick"):
    views.explain("pick")
    views.pick_your_own(source, stage)
