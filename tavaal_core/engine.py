"""ActiveLearner: owns the stage loop. start() -> step() ... ; what_if() scores the same state with other
methods without changing it.

One stage (docs/METHODS.md, Protocol): train the task learner (with the head the method needs) on the labeled
pool, evaluate it, draw the candidate subset, train what else the method needs (a VAE + discriminator),
score the candidates, record everything, label the picks.

Trained models are cached per (stage, need), so a what-if for several methods trains a shared need once,
and a step() after a what-if reuses it. Every random draw comes from (seed, stage, purpose).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import rng, vaal_training
from .analysis import class_count_entropy
from .config import ExperimentConfig, check_dataset, check_method
from .data import Dataset, prepare_dataset
from .data.pool import Pool
from .models.loss_head import LossPredictionHead
from .models.task import build_task_model, check_pretrained_weights
from .records import StageRecord
from .strategies import Selection, get_strategy
from .training import (Predictions, TrainSettings, evaluate_segmentation, mc_dropout_pixel_bald, mc_dropout_probs,
                       predict, predict_masks, resolve_device, resolve_precision, train_task_model)
from .training import evaluate as evaluate_probs
from .strategies.uncertainty import bald_scores, predictive_entropy

# progress(phase, fraction of that phase done, message)
ProgressCallback = Callable[[str, float, str], None]

from .phases import PHASE_SCORING, PHASE_TASK, PHASE_UNSUP_VAE, PHASE_VAE  # noqa: E402  (batched imports them from here)

BOUNDARY_GRID = 80
_RECORD_FIELDS = {f.name for f in dataclasses.fields(StageRecord) if f.name.startswith("candidate_")}
# Segmentation records keep the predicted masks of the first picks (the gallery shows them beside the truth).
STORED_MASKS = 24


@dataclass
class Evaluation:
    """Test-set scores of one trained model. Classification: accuracy per sample; segmentation: pixel
    accuracy, and mean IoU with per-class IoU (NaN / empty for classification)."""

    accuracy: float
    per_class_accuracy: np.ndarray
    mean_iou: float = float("nan")
    per_class_iou: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.per_class_iou is None:
            self.per_class_iou = np.zeros(0, np.float32)


@dataclass
class TrainedTask:
    model: torch.nn.Module
    head: LossPredictionHead | None
    head_kind: str
    task_loss_history: list[float]
    init: str = "random"  # "imagenet" when ImageNet weights were loaded
    shared: bool = False  # trained by another learner of the session on the same labels (not here)


@dataclass
class OracleResult:
    """The same model trained on every label: the reference boundary and accuracy."""

    accuracy: float
    boundary_x: np.ndarray
    boundary_y: np.ndarray
    boundary_prob: np.ndarray


_EMPTY = np.zeros(0, np.float32)


def _noop(phase: str, fraction: float, message: str) -> None:
    pass


class ActiveLearner:
    """Runs one method of one trial, stage by stage.

    >>> learner = ActiveLearner(ExperimentConfig(dataset="moons", method="tavaal")).start()
    >>> record = learner.step()
    """

    def __init__(self, config: ExperimentConfig, dataset: Dataset | None = None, shared: dict | None = None):
        """``shared``: one dict handed to every learner of a session whose configs differ only in ``method``
        (same data and seed). Task models trained on the same labeled set with the same needs are then
        trained once and shared, e.g. random, core-set and VAAL at stage 0; results are unchanged, since a
        task model depends only on (seed, stage, labeled set, needs). Ignored with ``warm_start``."""
        self.config = config.resolve()
        self.device = resolve_device(self.config.device, self.config.deterministic)
        self.precision = resolve_precision(self.config.precision, self.device, self.config.model)
        self._given_dataset = dataset
        self.dataset: Dataset | None = None
        self.pool: Pool | None = None
        self.records: list[StageRecord] = []
        self._cache: dict = {}  # (kind, ...) -> trained models for the current stage
        self._warm: dict = {}  # head kind -> last stage's trained task model (warm_start)
        self._unsupervised_vae = None  # Godwin et al. 2022: one per trial, reused across stages
        self._oracle: OracleResult | None = None
        self._shared = shared

    # -- set-up ------------------------------------------------------------------------------------
    def start(self) -> "ActiveLearner":
        cfg = self.config
        ds = prepare_dataset(cfg, self._given_dataset)
        check_dataset(cfg, ds)
        check_pretrained_weights(cfg)
        self.dataset = ds.to(self.device)
        # One class per sample (segmentation: the image's dominant class) for records and views; the counts
        # a labeled set adds up to (segmentation: labeled pixels per class of each image).
        self._y_train = ds.sample_labels("train")
        self._y_test = ds.sample_labels("test")
        self._pixel_counts = ds.pixel_counts("train") if ds.is_segmentation else None
        n = len(self._y_train)
        self.pool = Pool.initial(n, cfg.initial_size, cfg.seed)
        size = min(cfg.analysis_size, n)
        self.analysis_indices = np.sort(rng.numpy_rng(cfg.seed, 0, "analysis").choice(n, size=size, replace=False))
        self.records = []
        self._cache = {}
        self._warm = {}
        return self

    def _require_started(self):
        if self.pool is None:
            raise RuntimeError("call start() first")

    @property
    def stage(self) -> int:
        return len(self.records)

    @property
    def done(self) -> bool:
        return self.stage >= self.config.stages

    @property
    def pool_class_counts(self) -> np.ndarray:
        """Samples per class in the pool; for segmentation, labeled pixels per class."""
        return self._class_counts(np.arange(len(self._y_train)))

    def _class_counts(self, indices) -> np.ndarray:
        if self._pixel_counts is not None:
            return self._pixel_counts[np.asarray(indices, np.int64)].sum(0)
        return np.bincount(self._y_train[indices], minlength=self.dataset.num_classes)

    # -- public API --------------------------------------------------------------------------------
    def step(self, progress: ProgressCallback | None = None) -> StageRecord:
        """Run one stage of the configured method, label its picks, and return its record."""
        self._require_started()
        if self.done:
            raise RuntimeError(f"all {self.config.stages} stages are done")
        record = self._run_stage(self.config.method, progress or _noop)
        self.pool.add(record.selected)
        self.records.append(record)
        self._cache = {}  # the labeled pool changed: every trained model is stale
        return record

    def what_if(self, methods, progress: ProgressCallback | None = None) -> dict[str, StageRecord]:
        """The record each method would produce at the current stage from the same labeled pool and seed,
        without changing the learner. ``what_if([m])[m]`` equals what a learner running ``m`` picks here."""
        self._require_started()
        methods = [methods] if isinstance(methods, str) else list(methods)
        for m in methods:
            check_method(self.config, m)  # refuse an unknown name or a bad pairing before any training
        return {m: self._run_stage(m, progress or _noop) for m in methods}

    def restore(self, records: list[StageRecord]) -> None:
        """Bring a freshly started learner to the state after ``records`` (e.g. loaded from a run folder)
        without recomputing them: label each stored stage's picks and keep the record, as ``step()`` does.

        Refuses records that do not continue this learner's labeled pool (another config or code
        version wrote them). With ``warm_start`` each restored stage's task model is retrained
        (deterministic from the seed), since the next stage starts from it."""
        self._require_started()
        needs = get_strategy(self.config.method).needs
        for record in records:
            if record.method != self.config.method or record.stage != self.stage:
                raise ValueError(f"record of {record.method!r} stage {record.stage} cannot continue "
                                 f"{self.config.method!r} at stage {self.stage}")
            labeled = self.pool.labeled
            if not np.array_equal(np.sort(np.asarray(record.labeled, dtype=np.int64)), labeled):
                raise ValueError(f"stage {record.stage}: the stored labeled set differs from the one this "
                                 "config produces (written by another config or code version)")
            if self.config.warm_start:
                if needs.vae == "unsupervised":
                    self._unsupervised(_noop)
                self._task_model(labeled, needs.head, needs.head_extra, self.config.dropout_for(record.method), _noop)
            self.pool.add(record.selected)
            self.records.append(record)
            self._cache = {}

    def fork_at(self, stage: int) -> "ActiveLearner":
        """A fresh learner of the same config and data, brought to ``stage`` from this learner's records
        (nothing recomputed but what ``restore`` needs). ``fork_at(s).what_if(methods)`` is what every method
        would have picked from this method's labeled set at stage ``s``; this learner is left unchanged."""
        self._require_started()
        if not 0 <= stage <= self.stage:
            raise ValueError(f"stage must be between 0 and {self.stage}, got {stage}")
        fork = ActiveLearner(self.config, dataset=self._given_dataset).start()
        fork.restore(self.records[:stage])
        return fork

    def oracle(self, progress: ProgressCallback | None = None) -> OracleResult:
        """Train the task learner on every training label (no head), cached."""
        self._require_started()
        if self._oracle is None:
            all_idx = np.arange(len(self._y_train))
            # the epochs of the last stage: the most the schedule gives any stage
            trained = self._train_task(all_idx, "none", False, self.config.dropout_for(self.config.method), -1,
                                       progress or _noop, epochs=self.config.epochs_at(self.config.stages - 1))
            scores = self._evaluate(trained)
            headline = scores.mean_iou if self.dataset.is_segmentation else scores.accuracy
            boundary = self._boundary(trained) if self.dataset.input_shape == (2,) else (_EMPTY, _EMPTY, _EMPTY)
            self._oracle = OracleResult(headline, *boundary)
        return self._oracle

    # -- one stage ---------------------------------------------------------------------------------
    def _run_stage(self, method: str, progress: ProgressCallback) -> StageRecord:
        cfg = self.config
        strategy = get_strategy(method)
        needs = strategy.needs
        stage = self.stage
        timings: dict[str, float] = {}
        labeled = self.pool.labeled
        ds = self.dataset

        t = time.perf_counter()
        extra_vae = needs.head_extra
        if needs.vae == "unsupervised":
            self._unsupervised(progress)
            timings[PHASE_UNSUP_VAE] = time.perf_counter() - t
            t = time.perf_counter()
        dropout = cfg.dropout_for(method)
        trained = self._task_model(labeled, needs.head, extra_vae, dropout, progress)
        if not trained.shared:  # a shared model cost this stage nothing: no task-training time to report
            timings[PHASE_TASK] = time.perf_counter() - t

        t = time.perf_counter()
        scores = self._evaluate(trained, extra=None if not extra_vae else self._mu(ds.x_test))
        candidates = self.pool.candidates(cfg.budget, cfg.subset_factor, cfg.seed, stage,
                                          fraction=cfg.subset_fraction)
        ctx = _StageContext(self, trained, candidates, labeled, method, stage)

        vaal_models = None
        if needs.vae in ("adversarial", "rank_conditioned"):
            timings["evaluation"] = time.perf_counter() - t
            t = time.perf_counter()
            vaal_models = self._vaal(needs, trained, labeled, candidates, progress)
            ctx.vaal_models = vaal_models
            timings[PHASE_VAE] = time.perf_counter() - t
            t = time.perf_counter()

        progress(PHASE_SCORING, 0.0, f"scoring {len(candidates)} candidates with {method}")
        selection = strategy.select(ctx)
        _check_selection(selection, candidates, labeled, cfg.budget)
        progress(PHASE_SCORING, 1.0, f"picked {len(selection.indices)}")

        # Diagnostics every stage records (docs/METHODS.md).
        cand_preds = ctx.predictions()
        counts = self._class_counts(labeled)
        entropy, entropy_norm = class_count_entropy(counts)
        extras = {"candidate_entropy": np.asarray(ctx.predictive_entropy(), np.float64)}
        # A strategy's per-candidate diagnostics that a record holds (e.g. BALD's terms, greedy gains).
        extras.update({k: np.asarray(v) for k, v in selection.diagnostics.items() if k in _RECORD_FIELDS})
        if cand_preds.predicted_loss is not None:
            extras["candidate_predicted_loss"] = cand_preds.predicted_loss
            extras["candidate_rank"] = rank_of(cand_preds.predicted_loss)
        if vaal_models is not None:
            extras["candidate_likelihood"] = ctx.discriminator_likelihood()
            extras["labeled_likelihood"] = self.discriminator_likelihood(
                vaal_models, needs, trained, labeled,
                ranker_output=self.pool_predictions(trained, "labeled", labeled).predicted_loss)
        analysis = self._predict(trained, ds.x_train[self._t(self.analysis_indices)],
                                 extra=self._raw_mu_of(self.analysis_indices) if extra_vae else None)
        if vaal_models is not None:
            extras["analysis_vae_mu"] = self._encode(vaal_models.vae, self.analysis_indices)
        elif needs.vae == "unsupervised":
            extras["analysis_vae_mu"] = self._raw_mu_of(self.analysis_indices).cpu().numpy()  # views scale by alpha
        if ds.kind == "vector" and ds.input_shape == (2,):
            extras["boundary_x"], extras["boundary_y"], extras["boundary_prob"] = self._boundary(trained)
        if ds.is_segmentation:
            shown = selection.indices[:STORED_MASKS]
            extras["selected_predicted_masks"] = predict_masks(trained.model, ds.x_train[self._t(shown)], ds.normalize)
            extras["mean_iou"] = scores.mean_iou
            extras["per_class_iou"] = scores.per_class_iou
        timings[PHASE_SCORING] = time.perf_counter() - t

        return StageRecord(
            stage=stage, method=method, labeled_count=len(labeled), accuracy=scores.accuracy,
            per_class_accuracy=scores.per_class_accuracy, class_counts=counts, class_entropy=entropy,
            class_entropy_normalized=entropy_norm, selected=selection.indices.astype(np.int64),
            selected_labels=self._y_train[selection.indices], score_name=selection.score_name,
            higher_is_better=selection.higher_is_better, labeled=labeled.astype(np.int64),
            candidates=candidates.astype(np.int64), candidate_scores=np.asarray(selection.scores, np.float64),
            candidate_loss=cand_preds.loss, analysis_indices=self.analysis_indices,
            analysis_features=analysis.embedding, analysis_probs=analysis.probs,
            task_loss_history=np.asarray(trained.task_loss_history, np.float32),
            timings=timings, selection_gain=selection.pick_gains(candidates), greedy=bool(selection.greedy),
            device=str(self.device), precision=self.precision, task_dropout=float(dropout), task_init=trained.init, **extras,
        )

    # -- training (cached per stage and need) ---------------------------------------------------------
    def _task_model(self, labeled, head_kind: str, extra_vae: bool, dropout: float, progress) -> TrainedTask:
        key = ("task", head_kind, extra_vae, dropout)
        if key not in self._cache:
            shared_key = self._shared_key(labeled, key)
            if shared_key is None:
                trained = self._train_task(labeled, head_kind, extra_vae, dropout, self.stage, progress)
            else:
                trained, trained_here = _shared_once(
                    self._shared, shared_key, self.stage,
                    lambda: self._train_task(labeled, head_kind, extra_vae, dropout, self.stage, progress))
                if not trained_here:
                    trained = dataclasses.replace(trained, shared=True)
            self._cache[key] = trained
            if self.config.warm_start:
                self._warm[key[1:]] = self._cache[key]
        return self._cache[key]

    def _shared_key(self, labeled, key) -> tuple | None:
        """The key of a task model in the session's shared dict (None: not shared)."""
        if self._shared is None or self.config.warm_start:
            return None
        import hashlib

        same = self.config.with_(method="random").to_json()  # every field but the method
        digest = hashlib.sha1(np.sort(np.asarray(labeled, np.int64)).tobytes()).hexdigest()
        return (same, self.stage, digest) + key

    def _train_task(self, indices, head_kind, extra_vae, dropout, stage, progress, epochs=None) -> TrainedTask:
        cfg, ds = self.config, self.dataset
        warm = self._warm.get((head_kind, extra_vae, dropout)) if cfg.warm_start and stage >= 0 else None
        if warm is not None:
            model, head = copy.deepcopy(warm.model), copy.deepcopy(warm.head)
        else:
            # The same backbone initialisation for every method of a stage: methods differ only in what
            # they add, not in their luck.
            with rng.seeded(cfg.seed, stage, "task-model", self.device):
                model = build_task_model(cfg.model, ds.input_shape, ds.num_classes, dropout,
                                         pretrained=cfg.pretrained_weights == "imagenet")
            head = None
            if head_kind != "none":
                extra_dim = cfg.latent_dim if extra_vae else 0
                with rng.seeded(cfg.seed, stage, "loss-head", self.device):
                    head = LossPredictionHead(model.tap_dims, hidden=None if cfg.model == "mlp" else 128,
                                              extra_dim=extra_dim)
            model = model.to(self.device)
            head = head.to(self.device) if head is not None else None
            if ds.is_image:  # channels-last: faster for convs on CUDA and on the CPU (fp32 and bf16)
                model = model.to(memory_format=torch.channels_last)
        settings = TrainSettings(
            epochs=epochs if epochs is not None else cfg.epochs_at(stage), batch_size=cfg.batch_size, optimizer=cfg.optimizer, lr=cfg.lr,
            momentum=cfg.momentum, weight_decay=cfg.weight_decay, lr_milestone=cfg.lr_milestone,
            head_kind=head_kind, head_weight=cfg.head_weight, margin=cfg.margin,
            head_stop_fraction=cfg.head_stop_fraction, augment=ds.augment, crop_padding=ds.crop_padding,
            precision=self.precision,
        )
        idx = self._t(indices)
        label = "task learner" + (" + loss head" if head_kind == "margin" else " + Ranker" if head_kind == "ranking" else "")
        # Dropout draws from torch's global RNG: give it a derived seed and leave the global state as it was
        # (that holds the global-RNG lock for the whole training). Without dropout the loop draws only from
        # its own generator, so it runs unlocked: methods of one Step can then train in parallel threads.
        seeded = rng.seeded(cfg.seed, stage, "task-dropout", self.device) if dropout > 0 else contextlib.nullcontext()
        with seeded:
            history = train_task_model(
                model, head, ds.x_train[idx], ds.y_train[idx], ds.normalize, settings,
                rng.torch_generator(cfg.seed, stage, "task-batches", self.device),
                extra=self._raw_mu_of(indices) if extra_vae else None,
                progress=lambda f, msg: progress(PHASE_TASK, f, f"{label}: {msg}"),
            )
        init = "imagenet" if getattr(model, "pretrained_loaded", False) else "random"
        return TrainedTask(model, head, head_kind, history.task_loss, init)

    def _vaal_settings(self, needs) -> vaal_training.VAALSettings:
        cfg, ds = self.config, self.dataset
        overrides = dict(
            epochs=cfg.vae_epochs, batch_size=cfg.vae_batch_size, beta=cfg.beta,
            adversary_weight=cfg.adversary_weight, kl_reduction=cfg.kl_reduction, latent_dim=cfg.latent_dim,
            vae_preset=cfg.vae_preset, rank_conditioned=needs.vae == "rank_conditioned",
            discriminator_rank_input=cfg.discriminator_rank_input, uniform_rank_steps=cfg.uniform_rank_steps,
            precision=self.precision,
        )
        if ds.is_image:  # the MLP VAE for 2-d data keeps its own hidden width
            overrides["vae_width"] = cfg.vae_width
        if cfg.vae_lr is not None:
            overrides["lr_vae"] = overrides["lr_discriminator"] = cfg.vae_lr
        return vaal_training.VAALSettings.for_shape(ds.input_shape, **overrides)

    def _vaal(self, needs, trained: TrainedTask, labeled, candidates, progress):
        """VAAL / TA-VAAL: a fresh VAE + discriminator trained on the labeled set and the candidate subset
        (TA-VAAL's code trains on the subset it scores), conditioned on the Ranker's output when asked."""
        key = ("vaal", needs.vae, needs.head)
        if key not in self._cache:
            ds = self.dataset
            rank_l = rank_u = None
            if needs.vae == "rank_conditioned":
                rank_l = self.pool_predictions(trained, "labeled", labeled).predicted_loss
                rank_u = self.pool_predictions(trained, "candidates", candidates).predicted_loss
                rank_l, rank_u = (torch.as_tensor(r, device=self.device) for r in (rank_l, rank_u))
            # (draws only from generators derived from (seed, stage): no global-RNG block needed)
            self._cache[key] = vaal_training.train_vaal(
                ds.x_train[self._t(labeled)], ds.x_train[self._t(candidates)], ds.normalize,
                self._vaal_settings(needs), ranker_output_labeled=rank_l, ranker_output_unlabeled=rank_u,
                seed=self.config.seed, stage=self.stage, device=self.device,
                progress=lambda f, msg: progress(PHASE_VAE, f, msg),
            )
        return self._cache[key]

    def discriminator_likelihood(self, vaal_models, needs, trained, indices, ranker_output=None) -> np.ndarray:
        """D(mu[, r]) for ``indices``; ``ranker_output`` (l_hat) when already computed, else predicted here."""
        x = self.dataset.x_train[self._t(indices)]
        ranker = None
        if needs.vae == "rank_conditioned":
            if ranker_output is None:
                ranker_output = self._predict(trained, x).predicted_loss
            ranker = torch.as_tensor(ranker_output, device=self.device)
        out = vaal_training.discriminator_likelihood(vaal_models, x, self.dataset.normalize, ranker_output=ranker,
                                                   settings=self._vaal_settings(needs))
        return out.float().cpu().numpy()

    def _unsupervised(self, progress):
        """Godwin et al. 2022: one VAE per trial, trained on the whole training set, cached across stages."""
        if self._unsupervised_vae is None:
            cfg, ds = self.config, self.dataset
            vae = vaal_training.train_unsupervised_vae(
                ds.x_train, ds.normalize, epochs=cfg.unsupervised_vae_epochs, latent_dim=cfg.latent_dim,
                width=cfg.vae_width, seed=cfg.seed, device=self.device,
                progress=lambda f, msg: progress(PHASE_UNSUP_VAE, f, msg), precision=self.precision,
            )
            self._unsupervised_vae = vae
            self._unsupervised_mu = vaal_training.encode_mu(vae, ds.x_train, ds.normalize).float()
        return self._unsupervised_vae

    def vae_features(self, indices) -> torch.Tensor:
        """alpha * mu of the trial VAE for training samples: the distance features of Godwin et al. 2022,
        eq. (6) (core-set / MedAL + VAE)."""
        return self.config.alpha * self._raw_mu_of(indices)

    def _raw_mu_of(self, indices) -> torch.Tensor:
        """mu = V(x) of the trial VAE, unscaled: what the loss head + VAE sees (Godwin et al. 2022 append
        V(x) to the head's features; alpha enters only the distance of eq. 6)."""
        return self._unsupervised_mu[self._t(indices)]

    def _mu(self, x) -> torch.Tensor:
        """V(x) of the trial VAE for raw inputs (the loss head + VAE on the test set), unscaled."""
        return vaal_training.encode_mu(self._unsupervised_vae, x, self.dataset.normalize).float()

    def _encode(self, vae, indices) -> np.ndarray:
        return vaal_training.encode_mu(vae, self.dataset.x_train[self._t(indices)], self.dataset.normalize).float().cpu().numpy()

    # -- inference helpers -------------------------------------------------------------------------
    def pool_predictions(self, trained: TrainedTask, which: str, indices) -> Predictions:
        """``trained``'s predictions (with the true loss) for this stage's labeled set or candidates, computed
        once per stage and shared by the Ranker inputs, the scores, the features and the likelihoods."""
        key = ("pred", id(trained), which)
        if key not in self._cache:
            idx = self._t(indices)
            extra = self._raw_mu_of(indices) if trained.head is not None and trained.head.extra_dim else None
            self._cache[key] = self._predict(trained, self.dataset.x_train[idx], y=self.dataset.y_train[idx],
                                             extra=extra)
        return self._cache[key]

    def _t(self, indices) -> torch.Tensor:
        return torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.device)

    def inputs(self, indices) -> torch.Tensor:
        """The training inputs of dataset ``indices``, on the learner's device (what a strategy scores)."""
        return self.dataset.x_train[self._t(indices)]

    def _predict(self, trained: TrainedTask, x, y=None, extra=None) -> Predictions:
        return predict(trained.model, x, self.dataset.normalize, head=trained.head, y=y, extra=extra)

    def _evaluate(self, trained: TrainedTask, extra=None) -> Evaluation:
        """Test-set scores: accuracy per class; for segmentation pixel accuracy and (per-class) IoU from the
        confusion matrix over every labeled test pixel."""
        ds = self.dataset
        if ds.is_segmentation:
            preds = self._predict(trained, ds.x_test, y=ds.y_test, extra=extra)
            seg = evaluate_segmentation(preds.confusion)
            return Evaluation(seg.pixel_accuracy, seg.per_class_accuracy, seg.mean_iou, seg.per_class_iou)
        preds = self._predict(trained, ds.x_test, extra=extra)
        return Evaluation(*evaluate_probs(preds.probs, self._y_test, ds.num_classes))

    def _boundary(self, trained: TrainedTask):
        """P(class 1) on a grid over the data's range, for the two-moons views (plain arrays in the record)."""
        x = self.dataset.x_train.float().cpu().numpy()
        lo, hi = x.min(0), x.max(0)
        pad = 0.1 * (hi - lo)
        gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], BOUNDARY_GRID, dtype=np.float32)
        gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], BOUNDARY_GRID, dtype=np.float32)
        xx, yy = np.meshgrid(gx, gy)
        grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), device=self.device)
        probs = predict(trained.model, grid, self.dataset.normalize, embeddings=False).probs
        return gx, gy, probs[:, 1].reshape(BOUNDARY_GRID, BOUNDARY_GRID).astype(np.float32)


# Learners of one session may step in parallel threads (``explorer_ui.session``): the shared dict's models
# are then trained by whichever learner asks first while the others wait for it (one training, not two).
_SHARED_LOCK = threading.Lock()
_SHARED_PENDING: dict = {}  # (id(shared dict), key) -> Event set when that model is stored


def _shared_once(shared: dict, key: tuple, stage: int, train: Callable[[], "TrainedTask"]) -> tuple["TrainedTask", bool]:
    """``shared[key]``, trained by ``train()`` unless present or being trained by another thread (then
    waited for). Returns (model, trained here). Keeps only ``stage``'s models in ``shared``."""
    pending_key = (id(shared), key)
    while True:
        with _SHARED_LOCK:
            if key in shared:
                return shared[key], False
            pending = _SHARED_PENDING.get(pending_key)
            if pending is None:
                pending = _SHARED_PENDING[pending_key] = threading.Event()
                break
        pending.wait()  # another learner is training it; if that failed, the loop tries here
    try:
        trained = train()
        with _SHARED_LOCK:
            for old in [k for k in shared if k[1] != stage]:  # only this stage's models
                del shared[old]
            shared[key] = trained
        return trained, True
    finally:
        with _SHARED_LOCK:
            _SHARED_PENDING.pop(pending_key, None)
        pending.set()


def rank_of(predicted_loss: np.ndarray) -> np.ndarray:
    """TA-VAAL's ``r = sigmoid(l_hat)`` for a record. A Ranker whose output drifted far below zero (its bias
    gets no gradient from a pair loss) overflows ``exp(-l_hat)``: the limit, 0, is the right value, so the
    overflow is not worth a warning in the server's log at every stage."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(predicted_loss)))


class _StageContext:
    """What a strategy reads at one stage; every quantity computed once, on demand."""

    def __init__(self, learner: ActiveLearner, trained: TrainedTask, candidates, labeled, method, stage):
        self._learner = learner
        self._trained = trained
        self.candidates = candidates
        self.labeled = labeled
        self.budget = learner.config.budget
        self.config = learner.config
        self.rng = rng.numpy_rng(learner.config.seed, stage, f"select-{method}")
        self._method = method
        self._stage = stage
        self._memo: dict = {}
        self.vaal_models = None
        self.segmentation = bool(learner.dataset.is_segmentation)

    def _once(self, key, fn):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def predictions(self) -> Predictions:
        lr = self._learner

        return self._once("pred", lambda: lr.pool_predictions(self._trained, "candidates", self.candidates))

    def predictive_entropy(self) -> np.ndarray:
        """(N,) entropy of each candidate's predicted class distribution; segmentation: the per-pixel
        entropy averaged over the image."""
        preds = self.predictions()
        return preds.pixel_entropy if preds.pixel_entropy is not None else predictive_entropy(preds.probs)

    def bald(self) -> np.ndarray:
        """(N,) BALD mutual information from MC-dropout passes; segmentation: per pixel, averaged over the image."""
        lr = self._learner
        if not lr.dataset.is_segmentation:
            return bald_scores(self.mc_probs())
        return self._once("bald", lambda: mc_dropout_pixel_bald(
            self._trained.model, lr.inputs(self.candidates), lr.dataset.normalize,
            lr.config.mc_passes, rng.torch_generator(lr.config.seed, self._stage, "mc-dropout", lr.device)))

    def mc_probs(self) -> np.ndarray:
        lr = self._learner
        return self._once("mc", lambda: mc_dropout_probs(
            self._trained.model, lr.inputs(self.candidates), lr.dataset.normalize,
            lr.config.mc_passes, rng.torch_generator(lr.config.seed, self._stage, "mc-dropout", lr.device)))

    def features(self):
        """(candidate, labeled) features on the device: the task learner's penultimate embedding, with
        alpha * mu of the trial VAE appended for the Godwin et al. 2022 methods."""
        lr = self._learner
        strategy = get_strategy(self._method)

        def run():
            parts = []
            for which, idx in (("candidates", self.candidates), ("labeled", self.labeled)):
                emb = lr.pool_predictions(self._trained, which, idx).embedding
                feats = torch.as_tensor(emb, device=lr.device)
                if strategy.needs.features == "task+vae":
                    feats = torch.cat([feats, lr.vae_features(idx)], dim=1)
                parts.append(feats)
            return tuple(parts)

        return self._once("features", run)

    def discriminator_likelihood(self) -> np.ndarray:
        strategy = get_strategy(self._method)
        return self._once("likelihood", lambda: self._learner.discriminator_likelihood(
            self.vaal_models, strategy.needs, self._trained, self.candidates,
            ranker_output=self.predictions().predicted_loss))  # l_hat of the candidates, computed once


def _check_selection(selection: Selection, candidates, labeled, budget: int) -> None:
    """A strategy's picks must be `budget` unique candidates, none already labeled (a bug otherwise)."""
    picks = np.asarray(selection.indices)
    expected = min(budget, len(candidates))
    if len(picks) != expected:
        raise AssertionError(f"strategy returned {len(picks)} picks, expected {expected}")
    if len(np.unique(picks)) != len(picks):
        raise AssertionError("strategy returned duplicate picks")
    if not np.isin(picks, candidates).all() or np.isin(picks, labeled).any():
        raise AssertionError("strategy picked a sample outside the candidates or already labeled")
