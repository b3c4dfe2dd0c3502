"""Segmentation as a task: every method steps on the generated shapes set; IoU, the per-pixel loss and the
per-pixel uncertainty scores against hand computations; the segmentation models' outputs and taps; the
Cityscapes loader on a tiny folder in Cityscapes' layout (label ids -> train ids); Caltech-101 from a tiny
folder in torchvision's layout; configs that mix a task with the wrong model are refused."""
import math

import numpy as np
import pytest
import torch

from tavaal_core import ActiveLearner, ConfigError, ExperimentConfig, available_methods
from tavaal_core.data import IGNORE_INDEX, load_dataset
from tavaal_core.errors import DatasetUnavailable
from tavaal_core.training import confusion_matrix, evaluate_segmentation, per_sample_loss

TINY = dict(n_train=96, n_test=24, size=16)


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", **TINY)


def tiny_config(method: str, **overrides) -> ExperimentConfig:
    base = dict(dataset="shapes", dataset_options=TINY, method=method, stages=2, seed=0, device="cpu",
                task_epochs=2, batch_size=8, vae_epochs=1, unsupervised_vae_epochs=1, initial_size=16, budget=8,
                subset_factor=4, analysis_size=40, mc_passes=3, latent_dim=8, vae_width=8)
    base.update(overrides)
    return ExperimentConfig(**base)


# -- the dataset ------------------------------------------------------------------------------------------------
def test_shapes_are_per_pixel_labels_with_ignored_outlines(shapes):
    assert shapes.kind == "segmentation" and shapes.num_classes == 5
    assert shapes.x_train.shape == (96, 3, 16, 16) and shapes.x_train.dtype == torch.uint8
    assert shapes.y_train.shape == (96, 16, 16) and shapes.y_train.dtype == torch.uint8
    values = set(torch.unique(shapes.y_train).tolist())
    assert values <= {0, 1, 2, 3, 4, IGNORE_INDEX} and IGNORE_INDEX in values and len(values - {IGNORE_INDEX}) == 5
    # class counts are labeled pixels: every pixel but the ignored ones
    assert shapes.class_counts().sum() == int((shapes.y_train != IGNORE_INDEX).sum())
    # an image's class for scatter colours is its dominant shape, not the background
    labels = shapes.sample_labels()
    assert labels.shape == (96,) and (labels > 0).all()
    again = load_dataset("shapes", **TINY)
    assert torch.equal(again.x_train, shapes.x_train) and torch.equal(again.y_train, shapes.y_train)


# -- metrics and losses against hand computations ----------------------------------------------------------------
def test_iou_matches_a_hand_computation():
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, 1, IGNORE_INDEX]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 2]])
    conf = confusion_matrix(pred, truth, 4).numpy()
    # pixels (ignored one left out): class 0: TP 1, FP 2 (pred 0 where 2 and 1), FN 1
    #                                class 1: TP 2, FP 1, FN 1; class 2: TP 1, FP 0, FN 1; class 3 absent
    assert conf.sum() == 7
    scores = evaluate_segmentation(conf)
    assert scores.per_class_iou[:3] == pytest.approx([1 / 4, 2 / 4, 1 / 2])
    assert math.isnan(scores.per_class_iou[3])
    assert scores.mean_iou == pytest.approx((1 / 4 + 2 / 4 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(4 / 7)
    assert scores.per_class_accuracy[:3] == pytest.approx([1 / 2, 2 / 3, 1 / 2])


def test_per_sample_loss_is_the_mean_over_labeled_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 2)
    y = torch.tensor([[[0, 1], [2, IGNORE_INDEX]], [[IGNORE_INDEX] * 2] * 2], dtype=torch.uint8)
    loss = per_sample_loss(logits, y)
    logp = logits.log_softmax(1)
    by_hand = -(logp[0, 0, 0, 0] + logp[0, 1, 0, 1] + logp[0, 2, 1, 0]) / 3
    assert loss[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert loss[1].item() == 0.0  # nothing labeled


def test_entropy_and_bald_scores_are_per_pixel_means(shapes):
    from tavaal_core.models.segmentation import EncoderDecoder
    from tavaal_core.training import mc_dropout_pixel_bald, predict

    torch.manual_seed(0)
    model = EncoderDecoder(3, 5, width=4, dropout=0.5).eval()
    x = shapes.x_train[:6]
    preds = predict(model, x, shapes.normalize, y=shapes.y_train[:6])
    with torch.no_grad():
        p = model(shapes.normalize(x)).logits.softmax(1)
    by_hand = -(p * p.log()).sum(1).mean((1, 2))
    assert preds.pixel_entropy == pytest.approx(by_hand.numpy(), rel=1e-4)
    assert preds.probs.shape == (6, 5) and preds.probs.sum(1) == pytest.approx(np.ones(6), rel=1e-5)
    assert preds.loss.shape == (6,) and preds.confusion.sum() == int((shapes.y_train[:6] != IGNORE_INDEX).sum())
    gen = torch.Generator().manual_seed(0)
    bald = mc_dropout_pixel_bald(model, x, shapes.normalize, passes=4, generator=gen)
    assert bald.shape == (6,) and (bald > 0).all()
    model.dropout.p = 0.0  # no dropout: every pass agrees, no mutual information
    assert mc_dropout_pixel_bald(model, x, shapes.normalize, passes=4, generator=gen) == pytest.approx(np.zeros(6), abs=1e-6)


# -- every method, two stages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", available_methods())
def test_every_method_steps_two_stages_on_shapes(method, shapes):
    learner = ActiveLearner(tiny_config(method), dataset=shapes).start()
    pixel_counts = shapes.pixel_counts()
    for stage in range(2):
        labeled = learner.pool.labeled
        record = learner.step()
        assert record.metric_name == "mean_iou" and 0.0 <= record.mean_iou <= 1.0
        assert record.per_class_iou.shape == (5,) and 0.0 <= record.accuracy <= 1.0
        assert len(record.selected) == 8 and not np.isin(record.selected, labeled).any()
        # the class balance counts pixels of the labeled images
        assert record.class_counts.tolist() == pixel_counts[labeled].sum(0).tolist()
        assert record.selected_predicted_masks.shape == (8, 16, 16)
        assert np.isfinite(record.candidate_scores).all() and (record.candidate_loss >= 0).all()
        assert record.analysis_features.shape[0] == 40
    if method in ("vaal", "tavaal", "vaal_lloss"):
        assert record.candidate_likelihood.shape == record.candidates.shape
    if method in ("lloss", "lloss_v2", "lloss_vae", "tavaal"):
        assert record.candidate_predicted_loss.shape == record.candidates.shape
    if method.endswith("_vae"):
        assert record.analysis_vae_mu.shape == (40, 8)


def test_what_if_equals_a_step_on_shapes(shapes):
    learner = ActiveLearner(tiny_config("entropy"), dataset=shapes).start()
    other = learner.what_if(["entropy"])["entropy"]
    record = learner.step()
    assert np.array_equal(other.selected, record.selected)
    assert other.mean_iou == record.mean_iou


# -- models ------------------------------------------------------------------------------------------------------
def test_segmentation_models_give_full_size_logits_and_their_taps():
    from tavaal_core.models.task import build_task_model

    torch.manual_seed(0)
    for name, size in (("encdec", (3, 20, 28)), ("drn", (3, 48, 64))):
        model = build_task_model(name, size, 7).eval()
        with torch.no_grad():
            out = model(torch.randn(2, *size))
        assert out.logits.shape == (2, 7, *size[1:]), name
        assert [t.shape[1] for t in out.taps] == model.tap_dims, name
        assert out.embedding.shape == (2, model.embedding_dim), name
        assert model.classify(out.pixel_features, size[1:]).shape == out.logits.shape


# -- configs -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, field", [
    (dict(dataset="shapes", model="cnn"), "model"),
    (dict(dataset="digits", model="encdec"), "model"),
    (dict(dataset="shapes", imbalance_ratio=10.0), "imbalance_ratio"),
    (dict(dataset="shapes", vae_lr=0.0), "vae_lr"),
])
def test_task_and_model_must_match(changes, field):
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(**changes)
    assert e.value.field == field


# -- Cityscapes from a folder ------------------------------------------------------------------------------------
def _png(path, array, mode):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def write_cityscapes(root, frames):
    """frames: (split, city, name, label-id array (H, W))."""
    for split, city, name, ids in frames:
        h, w = ids.shape
        image = np.stack([ids * 7 % 256, np.full((h, w), 100), np.arange(w)[None].repeat(h, 0) * 10], -1)
        _png(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image.astype(np.uint8), "RGB")
        _png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", ids.astype(np.uint8), "L")


def test_cityscapes_maps_label_ids_to_the_19_train_ids(tmp_path):
    ids = np.array([[7, 8, 26, 33], [0, 24, 4, 23], [21, 11, 1, 31], [17, 19, 20, 34]])
    block = ids.repeat(2, 0).repeat(2, 1)  # 8 x 8, so a half-size nearest resize keeps one id per block
    write_cityscapes(tmp_path, [("train", "aachen", "aachen_000000_000019", block),
                                ("train", "bremen", "bremen_000001_000019", block[::-1].copy()),
                                ("val", "lindau", "lindau_000000_000019", block)])
    ds = load_dataset("cityscapes", root=str(tmp_path), height=8, width=8)
    assert ds.kind == "segmentation" and ds.num_classes == 19 and ds.class_names[13] == "car"
    assert ds.x_train.shape == (2, 3, 8, 8) and ds.y_test.shape == (1, 8, 8)
    ignore = IGNORE_INDEX
    expected = np.array([[0, 1, 13, 18], [ignore, 11, ignore, 10], [8, 2, ignore, 16], [5, 6, 7, ignore]])
    assert ds.y_train[0].numpy().tolist() == expected.repeat(2, 0).repeat(2, 1).tolist()  # aachen sorts first
    assert ds.y_test[0].numpy().tolist() == expected.repeat(2, 0).repeat(2, 1).tolist()
    # resized: images bilinear, labels nearest (still only train ids and ignore)
    small = load_dataset("cityscapes", root=str(tmp_path), height=4, width=4, cache=False)
    assert small.x_train.shape == (2, 3, 4, 4)
    assert set(np.unique(small.y_train.numpy())) <= set(expected.ravel().tolist())
    assert (tmp_path / ".tavaal-cache").is_dir()  # the decoded arrays were cached for the next load
    again = load_dataset("cityscapes", root=str(tmp_path), height=8, width=8)
    assert torch.equal(again.y_train, ds.y_train)


def test_cityscapes_absent_names_the_folders(tmp_path):
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("cityscapes", root=str(tmp_path / "nowhere"))
    message = str(e.value)
    for part in ("leftImg8bit/train", "gtFine/val", "gtFine_trainvaltest.zip", "cityscapes-dataset.com"):
        assert part in message
    ids = np.full((4, 4), 7)
    write_cityscapes(tmp_path, [("train", "a", "a_0", ids), ("val", "b", "b_0", ids)])
    (tmp_path / "gtFine" / "train" / "a" / "a_0_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetUnavailable, match="no label map"):
        load_dataset("cityscapes", root=str(tmp_path))


def test_cityscapes_preset_says_where_the_files_go_offline():
    from tavaal_core.presets import load_preset

    spec = load_preset("cityscapes_tavaal")
    assert spec.trials == 3 and spec.config.initial_size == 200 and spec.config.budget == 200
    assert "section 4.4" in spec.notes["lr"]
    with pytest.raises(DatasetUnavailable, match="leftImg8bit"):
        ActiveLearner(spec.config.with_(dataset_options={"root": "/nonexistent/cityscapes"}, device="cpu")).start()


# -- Caltech-101 from a folder -------------------------------------------------------------------------------------
def test_caltech101_reads_torchvision_layout(tmp_path):
    from PIL import Image

    folder = tmp_path / "caltech101" / "101_ObjectCategories"
    counts = {"accordion": 6, "Faces_easy": 9, "zebra": 3, "BACKGROUND_Google": 4}
    for k, (name, n) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True)
        for i in range(n):
            size = (20 + i, 14)
            if i % 3 == 0:  # grey images exist in Caltech-101: converted to RGB
                Image.new("L", size, 30 * k).save(folder / name / f"image_{i + 1:04d}.jpg")
            else:
                Image.new("RGB", size, (30 * k, 10 * i, 50)).save(folder / name / f"image_{i + 1:04d}.jpg")
    ds = load_dataset("caltech101", root=str(tmp_path), size=12, test_size=6)
    assert ds.class_names == ["Faces_easy", "accordion", "zebra"]  # sorted, background left out
    assert ds.x_train.shape[1:] == (3, 12, 12) and len(ds.y_train) + len(ds.y_test) == 18 and len(ds.y_test) == 6
    assert ds.augment and ds.crop_padding == 0  # flips only, as the paper
    assert np.bincount(ds.y_test.numpy(), minlength=3).tolist() == [3, 2, 1]  # stratified
    with_bg = load_dataset("caltech101", root=str(tmp_path), size=12, test_size=6, include_background=True)
    assert "BACKGROUND_Google" in with_bg.class_names and with_bg.num_classes == 4
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset("caltech101", root=str(tmp_path / "empty"))
    assert "caltech101/101_ObjectCategories" in str(e.value)


def test_caltech101_preset_is_the_papers_setting():
    from tavaal_core.presets import load_preset

    spec = load_preset("caltech101_tavaal")
    cfg = spec.config
    assert (cfg.initial_size, cfg.budget, spec.trials) == (1000, 500, 5)
    assert cfg.dataset_options["size"] == 224 and "section 4.3" in spec.notes["initial_size"]
