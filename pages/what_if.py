"""What-if: what every method would pick from the same current state, side by side, with their overlap."""
import streamlit as st

from explorer_ui import controls, play, views
from tavaal_core import available_methods

link, source = play.open_view("what-if", "What-if", "what_if")
if not source.live:
    st.info("What-if needs a live session: open Two moons or the Stage explorer.")
    play.close_view(link, source, "what-if")
    st.stop()
c1, c2 = st.columns([1, 2])
with c1:
    base = controls.method_picker(source, "whatif_base", candidates=list(source.learners), label="From the state of")
with c2:
    methods = controls.methods_picker(source, "whatif_methods", candidates=available_methods(),
                                      label="Methods to compare", default=source.methods)
play.close_view(link, source, "what-if")
views.what_if(source, base, methods)
