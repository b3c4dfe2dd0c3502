"""What-if: what every method would pick from the same current state, side by side, with their overlap."""
import streamlit as st

from explorer_ui import controls, play, views
from tavaal_core import available_methods

st.title("What-if")
views.explain("what_if")

source = play.view_source()
if source is None:
    st.stop()
if not source.live:
    st.info("What-if needs a live session: open Two moons or the Stage explorer.")
    st.stop()
c1, c2 = st.columns([1, 2])
with c1:
    base = controls.method_picker(source, "whatif_base", candidates=list(source.learners), label="From the state of")
with c2:
    methods = controls.methods_picker(source, "whatif_methods", candidates=available_methods(),
                                      label="Methods to compare", default=source.methods)
views.what_if(source, base, methods)
