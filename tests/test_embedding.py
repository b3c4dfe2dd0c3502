"""Feature maps (tavaal_core.embedding): fit once, place later stages into the same map."""
import numpy as np
import pytest

from tavaal_core import ConfigError, embedding
from tavaal_core.embedding import FeatureMap


def blobs(n=90, d=64, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6, size=(3, d))
    y = np.arange(n) % 3
    return centres[y] + rng.normal(size=(n, d)) + shift, y


def test_pca_map_is_fitted_once_and_keeps_points_put():
    x, _ = blobs()
    fmap = FeatureMap("pca")
    first = fmap.place(0, x)
    assert first.shape == (90, 2) and fmap.fitted
    again = fmap.place(3, x)  # same features at a later stage: same places (transform, not a refit)
    assert np.allclose(first, again)
    moved = fmap.place(4, x + 0.01)
    assert np.abs(moved - first).max() < 0.05
    assert fmap.place(0, x * 100) is first  # cached per key: never recomputed


def test_pca_keeps_blocks_relative_weight():
    """One global scale (not per column): alpha * mu keeps its weight in the augmented features."""
    x, _ = blobs(d=8)
    mu = np.random.default_rng(1).normal(size=(90, 4))
    small = FeatureMap("pca").fit(embedding.augmented_features(x, mu, 0.0))
    plain = FeatureMap("pca").fit(np.concatenate([x, 0 * mu], 1))
    assert np.allclose(small, plain)
    aug = embedding.augmented_features(x, mu, 2.0)
    assert aug.shape == (90, 12) and np.allclose(aug[:, 8:], 2 * mu)
    with pytest.raises(ValueError):
        embedding.augmented_features(x, mu[:10], 1.0)


def test_one_dimensional_features_get_two_columns():
    xy = FeatureMap("pca").fit(np.arange(10.0)[:, None])
    assert xy.shape == (10, 2) and np.all(xy[:, 1] == 0)


def test_tsne_fit_transform_and_progress():
    x, y = blobs(n=120)
    calls = []
    fmap = FeatureMap("tsne", seed=0)
    xy = fmap.fit(x, progress=lambda f, msg: calls.append((f, msg)))
    assert xy.shape == (120, 2)
    assert calls and calls[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in calls)
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)
    # clusters stay apart in the map
    centres = np.array([xy[y == k].mean(0) for k in range(3)])
    spread = max(np.linalg.norm(xy[y == k] - centres[k], axis=1).mean() for k in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i)) > 2 * spread
    placed = fmap.transform(x[:30])
    assert placed.shape == (30, 2)
    # new points land near their cluster
    near = np.linalg.norm(placed[:, None, :] - centres[None], axis=2).argmin(1)
    assert (near == y[:30]).mean() > 0.9
    assert np.allclose(FeatureMap("tsne", seed=0).fit(x), xy)  # same seed, same map


def _check_umap_map(fmap, x, y):
    xy = fmap.fit(x)
    placed = fmap.transform(x[:20])
    assert xy.shape == (100, 2) and placed.shape == (20, 2)
    centres = np.array([xy[y == k].mean(0) for k in range(3)])
    near = np.linalg.norm(placed[:, None, :] - centres[None], axis=2).argmin(1)
    assert (near == y[:20]).mean() > 0.9
    return xy


def test_umap_runs_in_the_background_worker_after_its_warmup():
    future = embedding.start_umap_warmup()
    assert embedding.start_umap_warmup() is future  # once per process
    assert embedding.wait_for_umap(timeout=300) and embedding.umap_ready()
    x, y = blobs(n=100, d=20)
    fmap = FeatureMap("umap", seed=0)
    xy = _check_umap_map(fmap, x, y)
    assert fmap._model.remote  # fitted in the worker process, not in this one
    assert fmap._model.key not in embedding._MODELS
    assert np.allclose(FeatureMap("umap", seed=0).fit(x), xy)  # same seed, same map


def test_umap_falls_back_to_this_process(monkeypatch):
    monkeypatch.setattr(embedding, "_worker", lambda: None)  # e.g. no process can be started here
    monkeypatch.setattr(embedding, "wait_for_umap", lambda timeout=None: True)
    x, y = blobs(n=100, d=20, seed=2)
    fmap = FeatureMap("umap", seed=0)
    _check_umap_map(fmap, x, y)
    assert not fmap._model.remote and fmap._model.key in embedding._MODELS


def test_bad_projection_and_use_before_fit():
    with pytest.raises(ConfigError) as e:
        FeatureMap("lda")
    assert e.value.field == "projection"
    with pytest.raises(RuntimeError):
        FeatureMap("pca").transform(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        FeatureMap("pca").fit(np.zeros((2, 2)))
