"""TA-VAAL Explorer: step active learning stage by stage in the browser and see what each method picks and why.

Run: ``make run`` (``scripts/serve.py``, or ``streamlit run app.py``). The pages live in ``pages/``; this file
only declares them, each at its own address (``/explorer``, ``/lesson``, ...), with the app's navigation.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see tavaal_core/__init__.py

import streamlit as st  # noqa: E402

from explorer_ui import links, runtime  # noqa: E402

# Presenter mode (``?present=1`` or the sidebar toggle) opens with the sidebar collapsed.
presenting = links.init_presenter()
st.set_page_config(page_title="TA-VAAL Explorer", page_icon=":material/scatter_plot:", layout="wide",
                   initial_sidebar_state="collapsed" if presenting else "expanded")
runtime.configure()
runtime.inject_style(presenting)

# Every page has an explicit url_path: a link such as /feature-map opens that page with this navigation
# (the default page answers at /).
pages = {
    "Learn": [
        st.Page("pages/lesson.py", title="Guided lesson", url_path="lesson", icon=":material/school:"),
    ],
    "Play": [
        st.Page("pages/moons.py", title="Two moons", default=True, icon=":material/bubble_chart:"),
        st.Page("pages/explorer.py", title="Stage explorer", url_path="explorer", icon=":material/grid_view:"),
    ],
    "Views": [
        st.Page("pages/feature_map.py", title="Feature map", url_path="feature-map"),
        st.Page("pages/discriminator.py", title="Discriminator", url_path="discriminator"),
        st.Page("pages/loss.py", title="Loss vs likelihood", url_path="loss"),
        st.Page("pages/class_balance.py", title="Class balance", url_path="class-balance"),
        st.Page("pages/learning_curves.py", title="Learning curves", url_path="learning-curves"),
        st.Page("pages/what_if.py", title="What-if", url_path="what-if"),
    ],
    "Research": [
        st.Page("pages/claims.py", title="Paper claims", url_path="claims"),
    ],
    "Runs": [st.Page("pages/runs.py", title="Saved runs", url_path="runs")],
}

page = st.navigation(pages)
with st.sidebar:
    st.toggle("Presenter mode", key="presenter", on_change=links.presenter_changed,
              help="Larger fonts, thicker markers and a collapsed sidebar, for a projector. Links you copy keep it.")
page.run()
