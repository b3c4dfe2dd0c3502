"""Links that reopen the same state, the guided lesson and 'why was this picked?' under AppTest."""
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
# Small epochs keep these stages short on two cores; the link carries them like any other setting.
LINK = {"methods": "random,coreset,vaal", "noise": "0.2", "n0": "500", "n1": "50", "initial": "20",
        "budget": "10", "epochs": "30", "vae_epochs": "8", "seed": "3", "stepped": "2", "stage": "1"}


@pytest.fixture(autouse=True)
def no_umap_warmup(monkeypatch):
    monkeypatch.setenv("TAVAAL_NO_WARMUP", "1")


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def opened(query: dict, page: str | None = None) -> AppTest:
    """A fresh browser session opening the app at ``page`` with ``query`` (a link pasted in a new window)."""
    at = AppTest.from_file(APP, default_timeout=240)
    if page is not None:
        at.run()
        at.switch_page(page)
    at.query_params.update(query)
    at.run()
    ok(at)
    return at


def stage_counter(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Stages stepped")


def picks(at: AppTest) -> dict:
    """Each panel's crosses: method -> dataset indices (from the figure JSON)."""
    out = {}
    for chart in at.get("plotly_chart"):
        for t in json.loads(chart.proto.spec)["data"]:
            meta = t.get("meta") or {}
            if meta.get("role") == "picks":
                custom = t["customdata"]
                if isinstance(custom, dict):
                    import base64

                    arr = np.frombuffer(base64.b64decode(custom["bdata"]), dtype=np.dtype(custom["dtype"]))
                    custom = arr.reshape(custom.get("shape", [len(arr) // 2, 2]) if isinstance(custom.get("shape"), list)
                                         else (-1, 2)).tolist()
                out[meta["method"]] = sorted(int(c[0]) for c in custom)
    return out


@pytest.fixture(scope="module")
def from_link() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    mp = pytest.MonkeyPatch()
    mp.setenv("TAVAAL_NO_WARMUP", "1")
    at.query_params.update(LINK)
    at.run()
    mp.undo()
    ok(at)
    return at


def test_a_link_reopens_the_playground_at_its_stage_with_its_settings(from_link):
    at = from_link
    assert stage_counter(at) == "2 of 30"
    assert at.slider(key="moons_stage").value == 1
    assert at.number_input(key="moons_epochs").value == 30 and at.number_input(key="moons_seed").value == 3
    assert at.multiselect(key="moons_methods").value == ["random", "coreset", "vaal"]
    # what the next Step will cost, said before it starts (the core's estimate on this machine)
    assert any(c.value.startswith(":material/schedule: Next Step: about") for c in at.caption)
    # the address bar holds the same state again (round trip)
    assert {k: at.query_params[k] for k in LINK} == LINK
    assert set(picks(at)) == {"random", "coreset", "vaal"}


def test_the_published_link_in_a_new_session_gives_the_same_picks(from_link):
    again = opened(dict(from_link.query_params))
    assert stage_counter(again) == "2 of 30" and again.slider(key="moons_stage").value == 1
    assert picks(again) == picks(from_link)


def test_a_link_with_a_sample_opens_its_explanation(from_link):
    session = from_link.session_state["_session_moons"]
    record = session.source.records["coreset"][1]
    pick = int(record.selected[0])
    at = opened({**LINK, "why": f"coreset:{pick}"})
    text = " ".join(m.value for m in at.markdown)
    assert f"Core-set picked #{pick} (1st of its 10 picks at stage 1)" in text
    assert at.query_params["why"] == f"coreset:{pick}"
    names = list(at.table[0].value.index)
    assert any(n.startswith("Distance when picked") for n in names)


def test_bad_link_values_are_refused_by_name_not_with_a_traceback():
    at = opened({"noise": "9", "methods": "random,nonsense", "seed": "x"})
    warning = " ".join(w.value for w in at.warning)
    assert "`noise` must be between 0 and 0.6, got 9" in warning
    assert "`methods`: unknown nonsense" in warning and "`seed` must be a whole number" in warning
    assert at.slider(key="moons_noise").value == pytest.approx(0.2)


def test_a_view_page_link_rebuilds_its_session():
    query = {"src": "moons", **{k: v for k, v in LINK.items() if k != "stage"}, "stage": "0",
             "methods": "random,coreset,vaal"}
    at = opened(query, page="pages/class_balance.py")
    assert at.slider(key="view_stage").value == 0
    assert at.query_params["src"] == "moons" and at.query_params["stepped"] == "2"
    assert len(at.get("plotly_chart")) == 2


# -- the guided lesson ------------------------------------------------------------------------------------
def test_the_lesson_walks_its_steps_with_next_from_the_shipped_replays():
    at = opened({}, page="pages/lesson.py")
    from explorer_ui.lesson import STEPS

    seen = []
    for i, step in enumerate(STEPS):
        assert at.query_params["step"] == str(i + 1)
        heading = [h.value for h in at.subheader]
        assert f"{i + 1}. {step.title}" in heading
        assert at.get("plotly_chart"), step.slug
        assert not at.info or all("computed live" not in x.value for x in at.info)  # replay: nothing trained
        seen.append(step.slug)
        if i < len(STEPS) - 1:
            at.button(key="lesson_next").click().run()
            ok(at)
    assert at.button(key="lesson_next").disabled
    assert len(seen) == 6
    at.button(key="lesson_back").click().run()
    assert at.query_params["step"] == "5"


def test_a_lesson_step_link_opens_that_step_and_a_changed_seed_recomputes():
    at = opened({"step": "4"}, page="pages/lesson.py")
    assert "4. Imbalance: who gets labeled?" in [h.value for h in at.subheader]
    at.number_input(key="lesson_seed").set_value(5).run()
    ok(at)
    assert any("computed live" in x.value for x in at.info)
    assert at.query_params["seed"] == "5" and at.query_params["step"] == "4"
    assert len(at.get("plotly_chart")) == 2
