"""Streamlit-side helpers of the explorer app: session state, controls with validation, progress, and
view renderers that draw any ``Source`` (a live session or a saved run). Never imported by the core."""
