"""Serve the app with the heavy imports (torch, scikit-learn, plotly) done at server start.

It also keeps a page opened by its address (``/explorer``) inside the app's own navigation (below).

`streamlit run` imports nothing until the first visitor's browser connects, so that visitor would wait
for torch's import (~1.7 s of CPU) on top of the page. The app runs inside this process, so importing
here first means nobody waits for it. Arguments are passed to `streamlit run app.py`.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import plotly.graph_objects  # noqa: E402,F401
import sklearn.datasets  # noqa: E402,F401

import tavaal_core.engine  # noqa: E402,F401  (torch, torchvision-free core)
import tavaal_core.figures  # noqa: E402,F401
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402
from streamlit.web.cli import main  # noqa: E402

# app.py declares the navigation (st.navigation, every page with its url_path). Without this, the first
# visitor of a fresh server who opens a page's address directly (/explorer) got Streamlit's old
# folder-based multipage mode: pages/explorer.py run on its own, with a navigation of raw file names.
# (Streamlit switches that mode off itself, but only once st.navigation has run in some session.)
PagesManager.uses_pages_directory = False

if __name__ == "__main__":
    os.chdir(ROOT)
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    sys.exit(main())
