"""Two-moons playground (TA-VAAL Figure 1, live): one panel per method from the same initial labels."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Two moons playground")
views.explain("moons")

settings, form = controls.moons_settings()
session = play.toolbar("moons", "Two moons", settings, form, with_oracle=True)
if session is None:
    st.stop()

source = session.source
stage = controls.stage_picker(source, key="moons_stage") if session.stage else None
views.moons_panels(source, stage, session=session)

if stage is None:
    st.caption("Press **Step** to train every method on these labels and see what each one picks.")
elif st.toggle("Pick your own batch and compare it with the methods'", key="moons_pick"):
    views.explain("pick")
    views.pick_your_own(source, stage)
