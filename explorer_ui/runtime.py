"""Process-wide set-up for the app server, done once."""
from __future__ import annotations

import os
import threading

import streamlit as st


@st.cache_resource(show_spinner=False)
def configure() -> None:
    """Torch threads for the app server, once (``tavaal_core.training.configure_app_threads``: one per
    computation on a CPU unless ``TAVAAL_TORCH_THREADS`` says otherwise)."""
    from tavaal_core.training import configure_app_threads

    configure_app_threads(os.environ.get("TAVAAL_TORCH_THREADS"))


# One engine computation at a time in this process. The engine seeds model initialisation through torch's
# global RNG (fork_rng + manual_seed), which two threads (two browser sessions, or a warm-up) would
# interleave, changing each other's picks; on a 2-core machine running them one after the other also
# finishes each sooner.
COMPUTE_LOCK = threading.RLock()


@st.cache_resource(show_spinner=False)
def start_background_warmups():
    """UMAP's numba compile (10-20 s of CPU) in a background worker process at the lowest priority, once per
    server, so no click pays it (see tavaal_core.embedding). Started by the Feature map page, the one that
    uses UMAP, so the playground's Steps never share the CPU with it."""
    if os.environ.get("TAVAAL_NO_WARMUP"):
        return None
    from tavaal_core import embedding

    return embedding.start_umap_warmup(delay_s=float(os.environ.get("TAVAAL_WARMUP_DELAY", "0")))


def inject_style(presenting: bool = False) -> None:
    """A few CSS touches (assets/style.css): tighter top padding, tabular numbers in metrics; in presenter
    mode larger text (assets/presenter.css)."""
    from pathlib import Path

    assets = Path(__file__).resolve().parent.parent / "assets"
    css = "".join((assets / name).read_text() for name in ("style.css", "presenter.css" if presenting else "")
                  if name and (assets / name).is_file())
    if css:
        st.html(f"<style>{css}</style>")
