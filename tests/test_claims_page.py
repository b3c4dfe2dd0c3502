"""The Paper claims page (AppTest): the overview lists every claim; a claim not yet measured offers to run;
a bad setting is refused beside its control; Run starts the audit as a background process whose result then
draws (verdict, parts across seeds, numbers) and opens a seed in the views; a second visit reads the cache.
"Audit this run" on the Saved runs page measures a saved run."""
import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tavaal_core import audit, store
from tavaal_core import claims as cm

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
CLAIMS_PAGE = "pages/claims.py"
RUNS_PAGE = str(ROOT / "pages" / "runs.py")
SMALL = {"task_epochs": 5, "vae_epochs": 2, "stages": 2}
SMALL_TEXT = "\n".join(f"{k}={v}" for k, v in SMALL.items())


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A small fig1 audit (2 seeds) to copy into each test's audits folder."""
    root = tmp_path_factory.mktemp("audits")
    result = audit.audit("fig1", seeds=2, overrides=SMALL, root=root)
    return result.run_dir


@pytest.fixture(autouse=True)
def no_umap_warmup(monkeypatch):
    monkeypatch.setenv("TAVAAL_NO_WARMUP", "1")


def page(path=CLAIMS_PAGE, query=None) -> AppTest:
    """The claims page inside the app (its links to the view pages need the app's navigation); the Saved
    runs page on its own."""
    if path == CLAIMS_PAGE:
        at = AppTest.from_file(APP, default_timeout=120)
        at.switch_page(CLAIMS_PAGE)
    else:
        at = AppTest.from_file(path, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _set_small(at: AppTest) -> AppTest:
    at.number_input(key="claims_seeds_fig1").set_value(2)
    at.text_area(key="claims_set_fig1").set_value(SMALL_TEXT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview_lists_every_claim_and_an_unmeasured_claim_offers_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    at = page()
    assert at.title[0].value == "Paper claims"
    overview = at.dataframe[0].value
    assert list(overview["claim"]) == list(audit.CLAIMS)
    assert set(overview["verdict"]) == {"not measured yet"}
    assert at.button(key="claims_run").label.startswith("Run the audit (10 seeds)")
    assert not at.get("plotly_chart")


def test_a_bad_setting_is_refused_beside_its_control(tmp_path, monkeypatch):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    at = page()
    at.text_area(key="claims_set_fig1").set_value("kl_reduction=median").run()
    assert any("kl_reduction" in e.value for e in at.error)
    at.text_area(key="claims_set_fig1").set_value("bogus=3").run()
    assert any("bogus" in e.value for e in at.error)
    assert not at.button  # nothing can be started from a bad setting
    assert not list(tmp_path.iterdir())


def test_a_measured_claim_draws_its_verdict_parts_and_numbers_from_the_cache(tmp_path, monkeypatch, audited):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    shutil.copytree(audited, tmp_path / audited.name)
    at = _set_small(page())
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig = charts[0]
    means = [t for t in fig["data"] if (t.get("meta") or {}).get("role") == "mean"]
    seeds = [t for t in fig["data"] if (t.get("meta") or {}).get("role") == "seed"]
    assert len(means) == 8 and len(seeds) == 8  # 4 parts x (2 sides | 2 seeds)
    table = at.dataframe[1].value
    assert len(table) == 4 and all(v in cm.VERDICTS for v in table["verdict"])
    # the setting table already holds the rows whose setting equals this one (the same cached runs)
    heat = charts[1]["data"][0]
    assert heat["type"] == "heatmap" and any("mean" in y for y in heat["y"])
    # the URL holds the settings
    assert at.query_params["claim"] == "fig1" and at.query_params["seeds"] == "2"
    # a seed opens in the views
    at.button(key="claims_fig1_open").click().run()
    assert not at.exception
    sources = at.session_state["sources"]
    assert any(k.startswith("audit:") for k in sources)


def test_settings_come_from_the_url(tmp_path, monkeypatch, audited):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    shutil.copytree(audited, tmp_path / audited.name)
    at = page(query={"claim": "fig1", "seeds": "2", "set": [f"{k}={v}" for k, v in SMALL.items()]})
    assert at.number_input(key="claims_seeds_fig1").value == 2
    assert len(at.get("plotly_chart")) >= 1


def test_run_starts_a_background_audit_whose_result_then_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("TAVAAL_AUDITS_DIR", str(tmp_path))
    at = _set_small(page())
    at.button(key="claims_run").click().run()
    assert not at.exception
    spec = audit.setting_spec("moons_fig1", 2, SMALL)
    run_dir = audit.audit_dir_for(spec, tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (tmp_path / "results" / "claims-fig1.json").is_file():
            break
        time.sleep(1)
    assert (tmp_path / "results" / "claims-fig1.json").is_file(), (tmp_path / ".logs").glob("*")
    assert audit.trials_done(run_dir, spec, 2) == 4 * 2 * 2
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 1


def test_audit_this_run_on_the_saved_runs_page(tmp_path, monkeypatch, audited):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(audited, runs / "moons-audit")
    monkeypatch.setenv("TAVAAL_RUNS_DIR", str(runs))
    at = page(RUNS_PAGE)
    at.selectbox(key="runs_audit_claim").set_value("fig1").run()
    at.button(key="runs_audit_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(any((t.get("meta") or {}).get("role") == "mean" for t in c["data"]) for c in charts)
    assert not any("Cannot audit" in e.value for e in at.error)
