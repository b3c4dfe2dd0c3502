"""TA-VAAL Explorer: step active learning stage by stage in the browser and see what each method picks and why.

Run: ``streamlit run app.py`` (``make run``). The pages live in ``pages/``; this file only declares them.
"""
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see tavaal_core/__init__.py

import streamlit as st  # noqa: E402

from explorer_ui import runtime  # noqa: E402

st.set_page_config(page_title="TA-VAAL Explorer", page_icon=":material/scatter_plot:", layout="wide",
                   initial_sidebar_state="expanded")
runtime.configure()
runtime.inject_style()

HERE = Path(__file__).parent
pages = {
    "Play": [
        st.Page("pages/moons.py", title="Two moons", default=True),
        st.Page("pages/explorer.py", title="Stage explorer"),
    ],
    "Views": [
        st.Page("pages/feature_map.py", title="Feature map"),
        st.Page("pages/discriminator.py", title="Discriminator"),
        st.Page("pages/loss.py", title="Loss vs likelihood"),
        st.Page("pages/class_balance.py", title="Class balance"),
        st.Page("pages/learning_curves.py", title="Learning curves"),
        st.Page("pages/what_if.py", title="What-if"),
    ],
    "Research": [
        st.Page("pages/claims.py", title="Paper claims", url_path="claims"),
    ],
}
# The run store's page (another module's) plugs in when it exists.
if (HERE / "pages" / "runs.py").exists():
    pages["Runs"] = [st.Page("pages/runs.py", title="Saved runs")]

page = st.navigation(pages)
page.run()
