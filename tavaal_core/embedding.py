"""2-d maps of feature vectors (PCA, t-SNE via openTSNE, UMAP) that stay put across stages.

A :class:`FeatureMap` is fitted once (on the first stage it is given) and places later stages into the
same map with ``transform``, so a point that keeps its features keeps its place. Features are reduced to
50 dimensions with PCA first (t-SNE and UMAP are slow and noisy on wide inputs).

UMAP compiles its numba kernels on first use (10-20 s of CPU). Compiling is mostly Python, so in a thread
it would hold the GIL against the app's own work; UMAP therefore runs in one worker process at the lowest
CPU priority, started (and compiled) in the background by :func:`start_umap_warmup` when the app starts,
so no click waits for the compile and no Step is slowed by it. Where no worker process can be started,
UMAP runs in-process.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
import warnings
import weakref
from concurrent.futures import Future
from typing import Callable

import numpy as np

from .errors import ConfigError

PROJECTIONS = ("pca", "tsne", "umap")
PROJECTION_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
PCA_DIMS = 50

# progress(fraction done, message)
Progress = Callable[[float, str], None]


def _noop(fraction: float, message: str) -> None:
    pass


def augmented_features(features, vae_mu, alpha: float) -> np.ndarray:
    """Godwin et al. 2022, eq. 6: ``concat(task_features, alpha * vae_mu)`` (rows line up)."""
    features = np.asarray(features, np.float32)
    vae_mu = np.asarray(vae_mu, np.float32)
    if len(features) != len(vae_mu):
        raise ValueError(f"features and vae_mu differ in rows: {len(features)} vs {len(vae_mu)}")
    return np.concatenate([features, np.float32(alpha) * vae_mu], axis=1)


class FeatureMap:
    """Fit a 2-d map on one set of features, then place others into it.

    >>> fmap = FeatureMap("pca")
    >>> xy0 = fmap.fit(features_stage0)          # (N, 2)
    >>> xy3 = fmap.transform(features_stage3)    # same axes
    """

    def __init__(self, projection: str = "pca", seed: int = 0, pca_dims: int = PCA_DIMS):
        if projection not in PROJECTIONS:
            raise ConfigError("projection", f"unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}")
        self.projection = projection
        self.seed = int(seed)
        self.pca_dims = int(pca_dims)
        self._mean: np.ndarray | None = None
        self._scale = 1.0
        self._pca = None
        self._model = None
        self._placed: dict = {}

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        x = (np.asarray(x, np.float64) - self._mean) / self._scale
        return self._pca.transform(x) if self._pca is not None else x

    def fit(self, features, progress: Progress | None = None) -> np.ndarray:
        """Fit the map on ``features`` (N, D) and return their 2-d coordinates (N, 2)."""
        from sklearn.decomposition import PCA

        progress = progress or _noop
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or len(x) < 3:
            raise ValueError(f"need at least 3 feature rows of shape (N, D), got {x.shape}")
        self._mean = x.mean(0)
        # One global scale (not per column) keeps the relative weight of feature blocks, e.g. alpha * mu.
        self._scale = float(np.sqrt(((x - self._mean) ** 2).sum(1).mean())) or 1.0
        x = (x - self._mean) / self._scale
        label = PROJECTION_LABELS[self.projection]
        if self.projection == "pca":
            self._pca = None
            self._model = PCA(n_components=min(2, x.shape[1]), random_state=self.seed).fit(x)
            return self._pad(self._model.transform(x))
        dims = min(self.pca_dims, x.shape[1], len(x) - 1)
        if dims < x.shape[1]:
            self._pca = PCA(n_components=dims, random_state=self.seed).fit(x)
            x = self._pca.transform(x)
        progress(0.05, f"{label}: fitting {len(x)} points")
        if self.projection == "tsne":
            self._model = _fit_tsne(x, self.seed, progress)
            coords = np.array(self._model, copy=True)  # openTSNE's transform() later moves its own array
        else:
            self._model = _UmapHandle(x, self.seed)
            coords = self._model.embedding
        progress(1.0, f"{label}: done")
        return self._pad(np.asarray(coords, np.float64))

    def transform(self, features, progress: Progress | None = None) -> np.ndarray:
        """Place ``features`` (N, D) into the fitted map: (N, 2)."""
        if not self.fitted:
            raise RuntimeError("fit() the map first")
        progress = progress or _noop
        if self.projection == "pca":
            x = (np.asarray(features, np.float64) - self._mean) / self._scale
            return self._pad(self._model.transform(x))
        x = self._reduce(features)
        label = PROJECTION_LABELS[self.projection]
        progress(0.1, f"{label}: placing {len(x)} points into the map")
        coords = self._model.transform(x)
        progress(1.0, f"{label}: done")
        return self._pad(np.asarray(coords, np.float64))

    def place(self, key, features, progress: Progress | None = None) -> np.ndarray:
        """Coordinates of ``features`` under ``key`` (e.g. a stage), cached: the first call fits the map,
        later ones transform. The same key always returns the same coordinates."""
        if key not in self._placed:
            if not self.fitted:
                self._placed[key] = self.fit(features, progress)
            else:
                self._placed[key] = self.transform(features, progress)
        return self._placed[key]

    @staticmethod
    def _pad(coords: np.ndarray) -> np.ndarray:
        # A 1-d input gives one PCA component; the views always want two columns.
        if coords.shape[1] == 1:
            coords = np.column_stack([coords[:, 0], np.zeros(len(coords))])
        return coords


def _fit_tsne(x: np.ndarray, seed: int, progress: Progress):
    from openTSNE import TSNE

    n_iter, exag_iter, every = 500, 250, 50
    total = n_iter + exag_iter
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    calls = {"n": 0}

    def report(iteration, error, embedding):
        # openTSNE restarts its iteration count for the main phase: count calls instead.
        calls["n"] += 1
        done = min(calls["n"] * every, total)
        progress(min(0.95, 0.05 + 0.9 * done / total), f"t-SNE: iteration {done}/{total}")
        return False  # never stop early

    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter, early_exaggeration_iter=exag_iter,
                random_state=seed, n_jobs=1, callbacks=report, callbacks_every_iters=every, verbose=False)
    return tsne.fit(x)


def _fit_umap(x: np.ndarray, seed: int):
    import umap

    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": wanted, for the same map on every run.
        warnings.simplefilter("ignore")
        return umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), min_dist=0.1, random_state=seed,
                         n_jobs=1).fit(x)


# -- UMAP in a low-priority worker process ------------------------------------------------------------
_worker_lock = threading.Lock()
_pool = None  # ProcessPoolExecutor with one worker, or False when none can be started here
_warmup: Future | None = None
_MODELS: dict = {}  # in whichever process fits: key -> fitted UMAP


def warm_up_umap(delay_s: float = 0.0) -> bool:
    """Compile UMAP's numba kernels in this process (fit + transform on a small random set)."""
    if delay_s > 0:
        import time

        time.sleep(delay_s)
    x = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float64)
    model = _fit_umap(x, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.transform(x[:10])
    return True


def _worker_init() -> None:
    try:
        os.nice(19)  # idle CPU only: the app's Steps come first
    except OSError:
        pass


def _umap_fit(key: str, x: np.ndarray, seed: int) -> np.ndarray:
    model = _fit_umap(x, seed)
    _MODELS[key] = model
    return np.array(model.embedding_, dtype=np.float64, copy=True)


def _umap_transform(key: str, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(_MODELS[key].transform(x), dtype=np.float64)


def _umap_drop(key: str) -> None:
    _MODELS.pop(key, None)


@contextlib.contextmanager
def _main_module_hidden():
    """spawn re-runs the parent's ``__main__`` file in the child (multiprocessing's main-module fix-up).
    Under Streamlit's AppTest that file is app.py itself, which would start another warm-up in the
    child. The worker needs nothing from ``__main__``, so hide it while the process launches."""
    main = sys.modules.get("__main__")
    saved = {a: main.__dict__[a] for a in ("__file__", "__spec__") if main is not None and a in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def _worker():
    """The UMAP worker pool (started on first use), or None where processes cannot be started."""
    global _pool
    with _worker_lock:
        if _pool is None:
            try:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # spawn, not fork: the app's process runs threads (server, torch), which fork would copy mid-flight
                _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init)
                with _main_module_hidden():
                    _pool.submit(os.getpid)  # launches the worker process now, while __main__ is hidden
            except (OSError, ImportError, ValueError):
                _pool = False
        return _pool or None


def _run(fn, *args):
    """``fn(*args)`` in the worker; in this process when the worker is unavailable or broke."""
    global _pool
    pool = _worker()
    if pool is not None:
        try:
            return pool.submit(fn, *args).result(), True
        except (OSError, RuntimeError):  # BrokenProcessPool is a RuntimeError; a KeyError passes through
            with _worker_lock:
                _pool = False  # do not try again: from now on UMAP runs here
    return fn(*args), False


class _UmapHandle:
    """A UMAP fitted in the worker (or here), known by a key; transform() places new points into it."""

    def __init__(self, x: np.ndarray, seed: int):
        self.key = uuid.uuid4().hex
        self._x, self._seed = x, seed
        wait_for_umap()
        self.embedding, self.remote = _run(_umap_fit, self.key, x, seed)
        weakref.finalize(self, _forget, self.key, self.remote)

    def transform(self, x: np.ndarray) -> np.ndarray:
        try:
            coords, _ = _run(_umap_transform, self.key, x) if self.remote else (_umap_transform(self.key, x), False)
        except KeyError:  # the worker died since the fit: fit again here, with the same seed (same map)
            _umap_fit(self.key, self._x, self._seed)
            self.remote = False
            coords = _umap_transform(self.key, x)
        return coords


def _forget(key: str, remote: bool) -> None:
    if not remote:
        _MODELS.pop(key, None)
        return
    pool = _pool or None
    if pool is not None:
        try:
            pool.submit(_umap_drop, key)
        except RuntimeError:  # shut down: nothing to free
            pass


def start_umap_warmup(delay_s: float = 0.0) -> Future:
    """Start the UMAP worker and compile UMAP there, in the background (once per process). Returns a
    Future that resolves when UMAP is ready. ``delay_s`` holds back the worker's start itself: its
    imports and the compile take ~2 cores for seconds, which measured +1.7 s on the app's first paint."""
    global _warmup
    with _worker_lock:
        if _warmup is not None:
            return _warmup
        _warmup = Future()
    threading.Thread(target=_start_warmup, args=(_warmup, delay_s), name="umap-warmup", daemon=True).start()
    return _warmup


def _start_warmup(future: Future, delay_s: float) -> None:
    time.sleep(delay_s)
    pool = _worker()
    if pool is None:  # no worker process: compile here, in this low-priority thread
        _warm_here(future, 0.0)
        return
    try:
        inner = pool.submit(warm_up_umap, 0.0)
    except RuntimeError as e:  # shut down meanwhile
        future.set_exception(e)
        return

    def relay(done: Future) -> None:
        if done.exception() is not None:
            future.set_exception(done.exception())
        else:
            future.set_result(done.result())

    inner.add_done_callback(relay)


def _warm_here(future: Future, delay_s: float) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: per thread
    except (AttributeError, OSError):
        pass
    try:
        future.set_result(warm_up_umap(delay_s))
    except Exception as e:  # pragma: no cover - reported to whoever waits
        future.set_exception(e)


def umap_ready() -> bool:
    """True once UMAP is compiled where it runs."""
    return _warmup is not None and _warmup.done() and _warmup.exception() is None


def wait_for_umap(timeout: float | None = None) -> bool:
    """Block until UMAP is compiled (starting the warm-up when nobody did); True when ready."""
    future = start_umap_warmup()
    try:
        return bool(future.result(timeout))
    except TimeoutError:
        return False
    except Exception:  # a broken worker: UMAP will run (and compile) in this process instead
        return True
