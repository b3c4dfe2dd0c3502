"""'Why was this picked?': a click on a point (two-moons panels, feature map) or a tile (gallery) opens the
sample's explanation, drawn from the stored records by ``tavaal_core.explain``; its rank under every other
method comes from a what-if at that stage, computed on demand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from tavaal_core import ActiveLearner
from tavaal_core.explain import LABELED, NOT_CANDIDATE, compare_ranks, explain, same_state
from tavaal_core.strategies import method_label

from .source import Source

STATE = "_why"  # {"source", "method", "index"} of the sample being explained


def _index_of(point: dict) -> int | None:
    custom = point.get("customdata")
    first = custom.get("0") if isinstance(custom, dict) else custom[0] if custom else None
    try:
        return int(first)
    except (TypeError, ValueError):
        return None


def on_click(key: str, source: Source, curve_methods: list[str]):
    """An ``on_select`` callback for a chart under ``key``: remembers the clicked sample and the method of the
    trace it belongs to (``curve_methods[curve_number]``), so the explanation shows on the rerun."""
    def cb():
        state = st.session_state.get(key)
        try:
            points = state["selection"]["points"]
        except (KeyError, TypeError):
            return
        for p in points:
            index = _index_of(p)
            curve = p.get("curve_number")
            method = curve_methods[curve] if curve is not None and curve < len(curve_methods) else ""
            if index is not None and method:
                choose(source.key, method, index)
                return
    return cb


def curve_methods(fig) -> list[str]:
    """The method of each trace of a figure (its ``meta["method"]``)."""
    return [((t.meta or {}).get("method") or "") if isinstance(t.meta, dict) else "" for t in fig.data]


def choose(source_key: str, method: str, index: int) -> None:
    st.session_state[STATE] = {"source": source_key, "method": method, "index": int(index)}


def chosen(source: Source) -> dict | None:
    w = st.session_state.get(STATE)
    return w if w and w.get("source") == source.key and w.get("method") in source.records else None


def as_param(source: Source) -> str | None:
    """The chosen sample as a URL value ``method:index`` (a link reopens its explanation)."""
    w = chosen(source)
    return f"{w['method']}:{w['index']}" if w else None


def from_param(source: Source, text: str | None) -> None:
    if not text or ":" not in text:
        return
    method, _, index = text.rpartition(":")
    if method in source.records and index.isdigit() and int(index) < len(source.meta.labels):
        choose(source.key, method, int(index))
    else:
        st.warning(f"This link's `why={text}` names no sample of this session; expected method:index with one "
                   f"of {', '.join(source.methods)}.", icon=":material/link_off:")


def hint() -> None:
    st.caption(":material/touch_app: Click any point or cross to see why it was (or was not) picked.")


def panel(source: Source, stage: int) -> None:
    """The explanation of the chosen sample at ``stage`` (nothing when none is chosen)."""
    w = chosen(source)
    if w is None:
        hint()
        return
    method, index = w["method"], w["index"]
    records = source.records[method]
    if stage >= len(records):
        return
    meta = source.meta
    record = records[stage]
    exp = explain(record, index, meta.labels, meta.class_names)
    verb = {"picked": "picked", "candidate": "not picked", LABELED: "already labeled",
            NOT_CANDIDATE: "not a candidate"}[exp.status]
    with st.container(border=True, key="why_panel"):
        head, close = st.columns([6, 1], vertical_alignment="center")
        head.markdown(f"#### Why was #{index} {'picked' if exp.picked else 'not picked'}? "
                      f"· {method_label(method)} · stage {stage}")
        if close.button("Close", key="why_close", icon=":material/close:"):
            st.session_state.pop(STATE, None)
            st.rerun()
        left, right = st.columns([1, 3]) if meta.images is not None else (None, st.container())
        if left is not None:
            img = meta.images[index]
            tile = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
            left.image(np.repeat(np.repeat(tile, 4, 0), 4, 1), caption=f"#{index} · true class {exp.true_class}",
                       width=112)
        with right:
            st.markdown(f"**{verb.capitalize()}.** {exp.sentence}")
            facts = [f"true class (hidden from the method): **{exp.true_class}**"] if exp.true_class else []
            if exp.rank is not None:
                facts.append(f"rank **{exp.rank}** of {exp.candidates} candidates; the first {exp.budget} are picked")
            if facts:
                st.caption(" · ".join(facts))
            if exp.terms:  # a plain table: readable on a projector, nothing to scroll
                st.table(pd.DataFrame([{"Quantity": t.name, "Value": _num(t.value), "Among the candidates": t.note}
                                       for t in exp.terms]).set_index("Quantity"))
        _other_methods(source, method, stage, index)


# -- the same sample under every other method ------------------------------------------------------------------
def learner_at(source: Source, method: str, stage: int) -> ActiveLearner | None:
    """A learner in ``method``'s state at ``stage`` (the live one when it is there; else rebuilt from the
    records, deterministic from the seed). None when the source cannot rebuild one."""
    live = source.learners.get(method)
    if live is not None:
        return live if live.stage == stage else live.fork_at(stage)
    if source.config is None:
        return None
    from .session import dataset_for

    learner = ActiveLearner(source.config.with_(method=method), dataset=dataset_for(source.config)).start()
    learner.restore(source.records[method][:stage])
    return learner


def _num(x) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x + 0.0:.4g}"


def _rank_table(rows: list[dict], base: str) -> None:
    table = pd.DataFrame([{
        "Method": method_label(r["method"]) + (" (this panel)" if r["method"] == base else ""),
        "Rank": f"{r['rank']} of {r['candidates']}" if r["rank"] is not None else r["status"],
        "Picked": "yes" if r["picked"] else "no",
        "Score": _num(r["score"]), "Score is": r["score_name"],
    } for r in sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0))])
    st.table(table.set_index("Method"))


def _other_methods(source: Source, method: str, stage: int, index: int) -> None:
    from tavaal_core import available_methods

    st.markdown("**The same sample under every other method** (from the same labeled set)")
    here = source.at(stage)
    if stage == 0 and len(here) > 1 and same_state(here):  # stage 0: every method starts from the same labels
        st.caption("At stage 0 every method of the session scored the same candidates from the same labels: "
                   "their ranks need no what-if.")
    names = available_methods()
    is_images = source.meta.images is not None
    default = list(dict.fromkeys([method] + (source.methods if is_images else names)))
    picked = st.multiselect("Methods to compare", names, default=default, key=f"why_methods_{is_images}",
                            format_func=method_label,
                            help="A what-if trains each method's models on this labeled set (cached per state).")
    cache = st.session_state.setdefault("_why_what_if", {})
    key = (source.uid, method, stage, tuple(sorted(picked)))
    result = cache.get(key)
    if result is None and stage == 0 and all(m in here for m in picked) and same_state(here):
        result = {m: here[m] for m in picked}  # the session's own stage-0 records are that what-if
    if result is None:
        if is_images:
            from .costs import estimate_what_if

            st.caption(estimate_what_if(source, picked, stage))
        if not st.button("Compute its rank under these methods (what-if)", key="why_what_if", disabled=not picked,
                         icon=":material/compare_arrows:"):
            return
        from .progress import StepProgress
        from .runtime import COMPUTE_LOCK
        from .views import _what_if_progress

        progress = StepProgress(picked, label=f"What-if from {method_label(method)}'s labels at stage {stage}…",
                                show_after=0.0)
        try:
            with COMPUTE_LOCK:
                learner = learner_at(source, method, stage)
                if learner is None:
                    progress.finish("This source cannot recompute (its config is unknown).", error=True)
                    return
                result = learner.what_if(picked, progress=_what_if_progress(progress, picked))
        except Exception as e:  # noqa: BLE001 - shown to the user; the session is unchanged
            progress.finish(f"What-if failed: {e}", error=True)
            return
        progress.finish()
        cache[key] = result
    _rank_table(compare_ranks(result, index), method)
