"""Every page of the app under Streamlit's AppTest: it renders on the embedded defaults, Step advances the
stage, bad values are refused beside their control, and the charts' figure JSON holds the expected traces."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
DEFAULT_METHODS = ["random", "coreset", "vaal", "tavaal"]
LABELS = ["Random", "Core-set", "VAAL", "TA-VAAL"]


@pytest.fixture(autouse=True)
def no_umap_warmup(monkeypatch):
    # test_embedding covers UMAP; here the background compile would only compete for the two cores
    monkeypatch.setenv("TAVAAL_NO_WARMUP", "1")


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def traces(spec: dict, role: str | None = None, method: str | None = None, kind: str | None = None) -> list[dict]:
    out = []
    for t in spec["data"]:
        meta = t.get("meta") or {}
        if role is not None and meta.get("role") != role:
            continue
        if method is not None and meta.get("method") != method:
            continue
        if kind is not None and t.get("type", "scatter") != kind:
            continue
        out.append(t)
    return out


def values(array) -> list:
    """A trace's array from figure JSON (plotly sends numpy arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def navigate(at: AppTest, page: str) -> AppTest:
    """Open ``page`` as the sidebar does: a page's address without the previous page's query (AppTest would
    otherwise carry the query over, and the page would take it for a link being opened)."""
    at.query_params.clear()
    return at.switch_page(page)


def stage_counter(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Stages stepped")


def small_moons(at: AppTest) -> AppTest:
    """Fewer epochs so the steps below stay short on two cores."""
    at.number_input(key="moons_epochs").set_value(40)
    at.number_input(key="moons_vae_epochs").set_value(10).run()
    ok(at)
    return at


@pytest.fixture(scope="module")
def stepped() -> AppTest:
    """One app whose two-moons session has stepped two stages of the default methods (the views' data)."""
    at = AppTest.from_file(APP, default_timeout=180)
    mp = pytest.MonkeyPatch()
    mp.setenv("TAVAAL_NO_WARMUP", "1")
    at.run()
    small_moons(at)
    at.number_input(key="moons_n").set_value(2)
    at.button(key="moons_run").click().run()
    ok(at)
    assert stage_counter(at) == "2 of 30"
    yield at
    mp.undo()


# -- two moons ------------------------------------------------------------------------------------------
def test_moons_renders_one_panel_per_method_on_defaults():
    at = new_app()
    assert at.title[0].value == "Two moons playground"
    assert stage_counter(at) == "0 of 30"
    (spec,) = specs(at)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert [t.split(" · ")[0] for t in titles] == LABELS
    for m in DEFAULT_METHODS:
        assert traces(spec, "labeled", m), m
        assert len(traces(spec, "oracle", m)) == 1  # the dashed oracle line in every panel
        assert not traces(spec, "picks", m)  # nothing picked before the first Step
    assert not at.error


def test_moons_step_and_run_advance_the_stage():
    at = small_moons(new_app())
    at.button(key="moons_step").click().run()
    ok(at)
    assert stage_counter(at) == "1 of 30"
    (spec,) = specs(at)
    for m in DEFAULT_METHODS:
        (picks,) = traces(spec, "picks", m)
        assert len(values(picks["x"])) == 10  # the budget
    at.number_input(key="moons_n").set_value(2)
    at.button(key="moons_run").click().run()
    ok(at)
    assert stage_counter(at) == "3 of 30"
    assert at.slider(key="moons_stage").value == 2
    # replay an earlier stage: the panels change, nothing is stepped
    at.slider(key="moons_stage").set_value(0).run()
    ok(at)
    assert stage_counter(at) == "3 of 30"
    titles = [a["text"] for a in specs(at)[0]["layout"]["annotations"]]
    assert len(titles) == 4


def test_moons_pick_your_own_draws_a_selectable_chart():
    at = small_moons(new_app())
    at.button(key="moons_step").click().run()
    at.toggle(key="moons_pick").set_value(True).run()
    ok(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert json.loads(charts[1].proto.spec)["layout"]["dragmode"] == "select"
    assert any("lasso" in i.value for i in at.info)


@pytest.mark.parametrize("key, value, field", [
    ("moons_initial", 600, "initial_size"),  # more initial labels than the pool holds (550)
    ("moons_budget", 5000, "budget"),
])
def test_moons_bad_values_are_refused_beside_their_control(key, value, field):
    at = new_app()
    at.number_input(key=key).set_value(value).run()
    ok(at)
    sidebar_errors = [e.value for e in at.sidebar.error]
    assert any(field in e for e in sidebar_errors), sidebar_errors


def test_moons_no_method_is_refused():
    at = new_app()
    at.multiselect(key="moons_methods").set_value([]).run()
    ok(at)
    assert any("choose at least one method" in e.value for e in at.sidebar.error)


# -- stage explorer ------------------------------------------------------------------------------------------
def test_explorer_renders_digits_and_steps_with_a_gallery():
    at = new_app()
    navigate(at, "pages/explorer.py").run()
    ok(at)
    assert at.title[0].value == "Stage explorer"
    assert at.selectbox(key="img_dataset").value == "digits"
    assert at.get("image"), "the initial labeled images are shown"
    at.multiselect(key="img_methods").set_value(["random", "vaal"])
    at.number_input(key="img_epochs_digits").set_value(2)
    at.number_input(key="img_vae_epochs_digits").set_value(1)
    at.number_input(key="img_budget_digits").set_value(12).run()
    at.button(key="images_step").click().run()
    ok(at)
    assert stage_counter(at).startswith("1 of")
    assert not at.error
    captions = [m.value for m in at.markdown if "picked 12" in m.value]
    assert len(captions) == 2  # one gallery per method
    assert {"Random", "VAAL"} <= {m.label for m in at.metric}  # accuracy per method


def test_explorer_missing_dataset_says_where_to_put_files():
    at = new_app()
    navigate(at, "pages/explorer.py").run()
    at.selectbox(key="img_dataset").set_value("cifar10").run()
    ok(at)
    messages = [e.value for e in at.error]
    assert any("CIFAR-10" in m and "cifar-10-batches-py" in m for m in messages), messages


def test_explorer_asks_before_training_imagenet_resnet_from_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    at = new_app()
    at.switch_page("pages/explorer.py").run()
    at.selectbox(key="img_model_digits").set_value("resnet18_imagenet").run()
    ok(at)
    assert any("pretrained" in e.value and "absent" in e.value for e in at.error)
    at.checkbox(key="img_random_init").check().run()
    ok(at)
    assert not any("pretrained" in e.value for e in at.error)


# -- views ---------------------------------------------------------------------------------------------------
def test_views_offer_a_demo_when_nothing_was_stepped():
    at = new_app()
    navigate(at, "pages/discriminator.py").run()
    ok(at)
    assert not at.get("plotly_chart")
    assert any("Nothing has been stepped" in i.value for i in at.info)
    at.button(key="view_source_demo").click().run()
    ok(at)
    (spec,) = specs(at)
    assert len(traces(spec, kind="histogram")) == 6


def test_feature_map_page(stepped):
    at = stepped
    navigate(at, "pages/feature_map.py").run()
    ok(at)
    assert at.selectbox(key="fmap_method").value == "vaal"  # a method with a VAE by default: both maps
    assert len(specs(at)) == 2
    at.selectbox(key="fmap_method").set_value("tavaal").run()
    ok(at)
    task, vae = specs(at)
    for spec in (task, vae):
        assert traces(spec, "labeled") and traces(spec, "unlabeled")
        (picks,) = traces(spec, "picks")
    assert "VAE" in vae["layout"]["title"]["text"]
    at.button_group(key="fmap_projection").set_value("tsne").run()
    ok(at)
    assert "t-SNE" in specs(at)[0]["layout"]["title"]["text"]
    at.selectbox(key="fmap_method").set_value("random").run()
    ok(at)
    assert len(specs(at)) == 1 and any("no VAE" in i.value for i in at.info)


def test_discriminator_page_has_a_histogram_per_pool(stepped):
    at = stepped
    navigate(at, "pages/discriminator.py").run()
    ok(at)
    (spec,) = specs(at)
    hist = traces(spec, kind="histogram")
    assert {(t["meta"]["method"], t["meta"]["role"]) for t in hist} == {
        (m, r) for m in ("vaal", "tavaal") for r in ("labeled", "unlabeled", "picks")}
    assert len(spec["layout"]["shapes"]) == 2  # a cut-off line per method


def test_loss_page(stepped):
    at = stepped
    navigate(at, "pages/loss.py").run()
    ok(at)
    lik, pred = specs(at)
    titles = [a["text"] for a in lik["layout"]["annotations"]]
    assert len(titles) == 2 and all("Spearman" in t or "undefined" in t for t in titles)
    assert {t["meta"]["method"] for t in traces(lik, "picks")} == {"vaal", "tavaal"}
    assert {t["meta"]["method"] for t in traces(pred, "picks")} == {"tavaal"}


def test_class_balance_page(stepped):
    at = stepped
    navigate(at, "pages/class_balance.py").run()
    ok(at)
    entropy, counts = specs(at)
    assert [t["meta"]["method"] for t in entropy["data"]] == DEFAULT_METHODS
    assert traces(counts, "pool") and len(traces(counts, "labeled")) == 4


def test_learning_curves_page(stepped):
    at = stepped
    navigate(at, "pages/learning_curves.py").run()
    ok(at)
    (spec,) = specs(at)
    assert [t["meta"]["method"] for t in traces(spec, "mean")] == DEFAULT_METHODS
    assert len(traces(spec, "improvement")) == 4


def test_what_if_page_computes_on_demand_and_caches(stepped):
    at = stepped
    navigate(at, "pages/what_if.py").run()
    ok(at)
    assert not at.get("plotly_chart")
    at.multiselect(key="whatif_methods").set_value(["random", "coreset"]).run()
    at.button(key="what_if_go").click().run()
    ok(at)
    panels, overlap = specs(at)
    assert [a["text"].split(" · ")[0] for a in panels["layout"]["annotations"]] == ["Random", "Core-set"]
    assert overlap["data"][0]["type"] == "heatmap"
    at.run()  # cached per state: drawn again without the button
    ok(at)
    assert len(at.get("plotly_chart")) == 2
    assert stage_counter_unchanged(at)


def stage_counter_unchanged(at: AppTest) -> bool:
    navigate(at, "pages/moons.py").run()
    return stage_counter(at) == "2 of 30"


def test_selected_indices_reads_both_customdata_shapes():
    from explorer_ui.views import _selected_indices

    state = {"selection": {"points": [{"customdata": {"0": 6, "1": 0.7}}, {"customdata": [3, 0.1]},
                                      {"customdata": [6, 0.7]}, {"x": 1}]}}
    assert list(_selected_indices(state)) == [3, 6]
    assert list(_selected_indices(None)) == []


def test_explorer_says_where_and_in_which_precision_stages_run():
    at = new_app()
    at.switch_page("pages/explorer.py").run()
    ok(at)
    captions = [c.value for c in at.caption]
    assert any("training in" in c and "selection scored in fp32" in c for c in captions), captions


# -- segmentation (shapes) -------------------------------------------------------------------------------------
def test_explorer_steps_shapes_with_masks_and_mean_iou_views():
    at = new_app()
    at.switch_page("pages/explorer.py").run()
    at.selectbox(key="img_dataset").set_value("shapes").run()
    ok(at)
    assert at.selectbox(key="img_model_shapes").value == "encdec"
    assert "img_imbalance" not in [w.key for w in at.sidebar.number_input]  # no class cuts for pixel labels
    at.multiselect(key="img_methods").set_value(["random", "tavaal"])
    at.number_input(key="img_opt_shapes_n_train").set_value(300)
    at.number_input(key="img_epochs_shapes").set_value(2)
    at.number_input(key="img_vae_epochs_shapes").set_value(1)
    at.number_input(key="img_budget_shapes").set_value(6).run()
    at.button(key="images_step").click().run()
    ok(at)
    assert stage_counter(at).startswith("1 of") and not at.error
    assert {"Random · mean IoU", "TA-VAAL · mean IoU"} <= {m.label for m in at.metric}
    assert len([m for m in at.markdown if "picked 6" in m.value]) == 2
    at.switch_page("pages/class_balance.py").run()
    ok(at)
    _, counts = specs(at)
    assert "pixels" in traces(counts, "pool")[0]["hovertemplate"]
    at.switch_page("pages/learning_curves.py").run()
    ok(at)
    (spec,) = specs(at)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[0] == "Test mean IoU" and "Relative improvement" in titles[1]
