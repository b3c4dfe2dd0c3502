"""Serve the app with the heavy imports (torch, scikit-learn, plotly) done at server start.

It also keeps a page opened by its address (``/explorer``) inside the app's own navigation (below).

`streamlit run` imports nothing until the first visitor's browser connects, so that visitor would wait
for torch's import (~1.7 s of CPU) on top of the page. The app runs inside this process, so importing
here first means nobody waits for it. Arguments are passed to `streamlit run app.py`.

Safe defaults unless the arguments say otherwise: listen on 127.0.0.1 only (the app starts processes
and deletes run folders, so it must not be reachable from the network by accident) and send no usage
statistics. `.streamlit/config.toml` pins the same for a plain `streamlit run app.py`.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"--server.address": "127.0.0.1", "--browser.gatherUsageStats": "false"}


def streamlit_argv(args: list[str]) -> list[str]:
    """``streamlit run app.py`` with ``args``, plus each default whose option the arguments do not set."""
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    extra = [f"{k}={v}" for k, v in DEFAULTS.items() if k not in given]
    return ["streamlit", "run", str(ROOT / "app.py"), *extra, *args]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

    import plotly.graph_objects  # noqa: F401
    import sklearn.datasets  # noqa: F401
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web.cli import main

    # app.py declares the navigation (st.navigation, every page with its url_path). Without this, the first
    # visitor of a fresh server who opens a page's address directly (/explorer) got Streamlit's old
    # folder-based multipage mode: pages/explorer.py run on its own, with a navigation of raw file names.
    # (Streamlit switches that mode off itself, but only once st.navigation has run in some session.)
    PagesManager.uses_pages_directory = False

    import tavaal_core.engine  # noqa: F401  (torch, torchvision-free core)
    import tavaal_core.figures  # noqa: F401

    os.chdir(ROOT)
    sys.argv = streamlit_argv(sys.argv[1:])
    sys.exit(main())
