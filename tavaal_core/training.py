"""Training and inference for the task learner (+ loss head): device-resident tensors, batches by
indexing, batched on-device augmentation, bf16 autocast on CUDA."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data.base import IGNORE_INDEX
from .config import PRECISIONS
from .models.loss_head import LossPredictionHead, margin_ranking_loss, ranking_bce_loss

Progress = Callable[[float, str], None]


def configure_app_threads(threads: str | int | None = None) -> None:
    """Torch threads for an interactive process (the app server): ``threads`` when given, else one on a CPU.
    The app's models are small, where intra-op threads cost more than they give, and on a shared 2-core
    machine they oversubscribe the cores (a two-moons stage measured 0.1 s with one thread, 0.7-3 s with
    two under load)."""
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    elif not torch.cuda.is_available():
        torch.set_num_threads(1)


def resolve_device(name: str = "auto", deterministic: bool = False) -> torch.device:
    """The torch device for a config's ``device``. Whether CUDA is present is a fact about this machine
    at run time, so it is checked here (not when a config is read: a run made on a GPU opens anywhere).

    ``deterministic`` (CUDA only) asks for deterministic kernels: the same seed then gives bit-identical
    results on the GPU too, at some cost in speed. On the CPU results are always bit-identical."""
    from .errors import ConfigError

    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cuda' was asked for but this machine has no CUDA GPU; use 'auto' or 'cpu' "
                                    "(a run made on a GPU resumes on the CPU with --device cpu)")
    else:
        device = torch.device(name)
    if device.type == "cuda":
        set_cuda_determinism(deterministic)
    return device


def set_cuda_determinism(deterministic: bool) -> None:
    """Deterministic cuDNN / cuBLAS kernels (and no autotuning) when asked; autotuned kernels otherwise."""
    import os

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def small_model_cpu_threads(model: str) -> int | None:
    """Intra-op threads worth using on a CPU for ``model``: 1 for the MLP, the small CNN and the small
    encoder-decoder, whose ops
    are too small to split (measured on 2 cores: digits TA-VAAL 2.4 s a stage with 1 thread vs 3.2 s
    with 2; moons 0.22 s vs 0.56 s); None (torch's default) for ResNet-18, which does gain."""
    return 1 if model in ("mlp", "cnn", "encdec") else None


CONV_MODELS = ("cnn", "resnet18", "resnet18_imagenet", "encdec", "drn")


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 matrix work natively (AVX-512 BF16 or AMX), per oneDNN."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device, model: str | None = None) -> str:
    """The precision training runs in on ``device``: "fp32" or "bf16" (autocast). Selection is scored in
    fp32 whatever this says.

    "auto": bf16 on CUDA; on a CPU with native bf16, bf16 for the conv models (measured on this project's
    2-core AVX-512-BF16 CPU: a small-CNN step 0.17 s fp32 -> 0.058 s bf16 + channels-last, ResNet-18
    2.8 s -> 1.2 s), fp32 for the MLP (bf16 made its tiny steps 2.5x slower); fp32 elsewhere.
    "bf16" on hardware without it is refused, naming the field."""
    from .errors import ConfigError

    device = torch.device(device)
    if precision == "fp32":
        return "fp32"
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    cpu_bf16 = device.type == "cpu" and cpu_supports_bf16()
    if precision == "bf16":
        if not (cuda_bf16 or cpu_bf16):
            raise ConfigError("precision", f"bf16 was asked for but this {device.type.upper()} has no native bf16; "
                                           "use 'auto' or 'fp32'")
        return "bf16"
    if precision != "auto":
        raise ConfigError("precision", f"unknown value {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if cuda_bf16 or (cpu_bf16 and model in CONV_MODELS):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str = "auto"):
    """Training only: bf16 autocast when ``precision`` is "bf16" ("auto": on CUDA). Inference that ranks
    candidates or measures distances for a selection never runs under it (see :func:`predict`)."""
    device = torch.device(device)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device, x: torch.Tensor | None = None) -> int:
    """Samples per inference batch. Images: 1,024 on a GPU; 128 on a CPU, where larger batches were slower
    (1,000 ResNet-18 forwards: 7.7-8.3 s in batches of 1,024 against 5.7 s in batches of 128). Vectors
    (``x`` of shape (N, D)): 8,192, since an MLP's batch of 128 costs more in per-call overhead than in
    arithmetic (an 80 x 80 decision-boundary grid: 3.8 ms in batches of 128, 1.5 ms in one)."""
    if x is not None and x.dim() == 2:
        return 8192
    return 1024 if torch.device(device).type == "cuda" else 128


def uses_channels_last(module: nn.Module) -> bool:
    """Whether ``module``'s first conv holds its weights channels-last (then feed it channels-last input)."""
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last) \
        and not conv.weight.is_contiguous()


def to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop from zero padding + horizontal flip, for a whole batch at once on its device.
    Works on the raw (uint8) images, so the padding is black as in torchvision's RandomCrop."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (B, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, W)
    out = padded.permute(0, 2, 3, 1)[torch.arange(b, device=dev)[:, None, None], rows, cols]  # (B, H, W, C)
    out = out.permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out).contiguous()


def flip_pairs(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flips of images (B, C, H, W) and their masks (B, H, W) together (segmentation)."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return (torch.where(flip[:, None, None, None], x.flip(3), x).contiguous(),
            torch.where(flip[:, None, None], y.flip(2), y).contiguous())


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task loss of each sample, (B,): cross-entropy for classification (logits (B, K)); for
    segmentation (logits (B, K, H, W), masks (B, H, W)) the mean cross-entropy over the image's labeled
    pixels (IGNORE_INDEX left out; 0 for an image without any)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, y, reduction="none")
    y = y.long()
    pixel = F.cross_entropy(logits, y, reduction="none", ignore_index=IGNORE_INDEX)  # 0 where ignored
    valid = (y != IGNORE_INDEX).flatten(1).sum(1)
    return pixel.flatten(1).sum(1) / valid.clamp_min(1)


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    lr_milestone: float = 0.8  # lr x0.1 at this fraction of the epochs (paper: epoch 160 of 200)
    head_kind: str = "none"  # none | margin | ranking
    head_weight: float = 1.0  # eta, TA-VAAL eq. (2)
    margin: float = 1.0  # xi, Learning Loss
    head_stop_fraction: float = 0.6  # the head's gradient stops flowing into the backbone after this
    augment: bool = False
    crop_padding: int = 4  # with augment: random crops from this much zero padding (0: flips only)
    precision: str = "fp32"  # "bf16": autocast for training (resolve_precision)


@dataclass
class TrainHistory:
    task_loss: list[float] = field(default_factory=list)
    head_loss: list[float] = field(default_factory=list)


def _batches(n: int, batch_size: int, generator: torch.Generator, device) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=generator, device=device)
    chunks = list(perm.split(batch_size))
    # A batch of one breaks BatchNorm in train mode and has no pair for the ranking loss: fold it in.
    if len(chunks) > 1 and chunks[-1].numel() < 2:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


def head_loss(kind: str, predicted: torch.Tensor, true_loss: torch.Tensor, margin: float) -> torch.Tensor:
    if kind == "margin":
        return margin_ranking_loss(predicted, true_loss, margin)
    if kind == "ranking":
        return ranking_bce_loss(predicted, true_loss)
    raise ValueError(f"unknown head kind {kind!r}")


def train_task_model(
    model: nn.Module,
    head: LossPredictionHead | None,
    x: torch.Tensor,
    y: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    settings: TrainSettings,
    generator: torch.Generator,
    *,
    extra: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> TrainHistory:
    """Train ``model`` (and ``head`` when given) on (x, y), all already on the training device.

    Total loss is TA-VAAL eq. (2): L_T + eta * L_R, with L_R the margin loss (Learning Loss) or the
    ranking BCE (TA-VAAL eq. 1). ``extra`` holds per-sample features appended inside the head (Godwin et al. 2022).
    """
    device = x.device
    params = list(model.parameters()) + (list(head.parameters()) if head is not None else [])
    if settings.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    milestone = max(1, round(settings.lr_milestone * settings.epochs))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[milestone], gamma=0.1)
    stop_epoch = settings.head_stop_fraction * settings.epochs
    history = TrainHistory()
    channels_last = uses_channels_last(model)
    model.train()
    if head is not None:
        head.train()
    n = x.shape[0]
    report_every = max(1, settings.epochs // 20)
    for epoch in range(settings.epochs):
        task_sum = torch.zeros((), device=device)
        head_sum = torch.zeros((), device=device)
        batches = _batches(n, settings.batch_size, generator, device)
        for idx in batches:
            xb, yb = x[idx], y[idx]
            if settings.augment:
                if yb.dim() == 3:  # masks flip with their images
                    xb, yb = flip_pairs(xb, yb, generator)
                else:
                    xb = augment_batch(xb, generator, settings.crop_padding)
            with autocast(device, settings.precision):
                out = model(to_input(normalize(xb), channels_last))
                per_sample = per_sample_loss(out.logits.float(), yb)
                loss = per_sample.mean()
                if head is not None:
                    taps = out.taps if epoch < stop_epoch else [t.detach() for t in out.taps]
                    predicted = head(taps, extra[idx] if extra is not None else None).float()
                    lr_loss = head_loss(settings.head_kind, predicted, per_sample, settings.margin)
                    loss = loss + settings.head_weight * lr_loss
                    head_sum = head_sum + lr_loss.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            task_sum = task_sum + per_sample.mean().detach()
        sched.step()
        # One host sync per epoch, not per step.
        history.task_loss.append(float(task_sum) / len(batches))
        if head is not None:
            history.head_loss.append(float(head_sum) / len(batches))
        if progress is not None and ((epoch + 1) % report_every == 0 or epoch + 1 == settings.epochs):
            progress((epoch + 1) / settings.epochs, f"epoch {epoch + 1}/{settings.epochs}")
    model.eval()
    if head is not None:
        head.eval()
    return history


def _full_precision(device: torch.device):
    """Autocast off, so an enclosing bf16 region (or a caller's) cannot lower scoring precision."""
    return torch.autocast(device.type, enabled=False)


@dataclass
class Predictions:
    probs: np.ndarray  # (N, K); segmentation: the per-pixel probabilities averaged over the image
    embedding: np.ndarray  # (N, E)
    predicted_loss: np.ndarray | None  # (N,) raw head output l_hat, when a head is given
    loss: np.ndarray | None  # (N,) true per-sample cross-entropy (segmentation: mean per pixel), when labels are given
    pixel_entropy: np.ndarray | None = None  # segmentation: (N,) mean over the image of the per-pixel entropy
    confusion: np.ndarray | None = None  # segmentation with labels: (K, K) pixel counts, rows true, columns predicted


def is_segmentation_model(model: nn.Module) -> bool:
    """Segmentation task learners (models/segmentation.py) turn pixel features into logits with ``classify``."""
    return callable(getattr(model, "classify", None))


def segmentation_batch_size(x: torch.Tensor, pixels: int = 1 << 20) -> int:
    """Images per inference batch so that a batch holds about ``pixels`` pixels (per-pixel logits of
    Cityscapes-sized images would not fit a batch of 1024)."""
    return max(1, min(1024, pixels // max(1, int(x.shape[-1]) * int(x.shape[-2]))))


def confusion_matrix(predicted: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 pixel counts, rows the true class, columns the predicted one; IGNORE_INDEX left out."""
    y = y.long().reshape(-1)
    valid = y != IGNORE_INDEX
    flat = y[valid] * num_classes + predicted.reshape(-1)[valid].long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def _segmentation_extras(logits: torch.Tensor):
    """(image-mean probabilities (B, K), mean per-pixel entropy (B,)) from per-pixel logits (B, K, H, W)."""
    logp = logits.log_softmax(1)
    p = logp.exp()
    entropy = -(p * logp).sum(1)  # (B, H, W)
    return p.mean((2, 3)), entropy.flatten(1).mean(1)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    head: LossPredictionHead | None = None,
    y: torch.Tensor | None = None,
    extra: torch.Tensor | None = None,
    batch_size: int | None = None,
    embeddings: bool = True,
) -> Predictions:
    """Eval-mode inference in batches: class probabilities, penultimate embedding (unless ``embeddings`` is
    False: then ``embedding`` is None, for callers that need only probabilities), l_hat, true loss.
    Segmentation models (per-pixel logits) also give the mean per-pixel entropy and, with labels, the
    confusion matrix; their ``probs`` are averaged over each image (the per-pixel maps are not kept).

    Always fp32, also where training ran in bf16: these values rank candidates and measure distances for
    a selection, and bf16's ~3 significant digits tie many of them (on 10,000 candidates, about 650
    distinct bf16 l_hat values against 9,997 in fp32), which would reorder the picks."""
    model.eval()
    if head is not None:
        head.eval()
    device = x.device
    batch_size = batch_size or inference_batch_size(device, x)
    channels_last = uses_channels_last(model)
    segmentation = is_segmentation_model(model)
    if segmentation:
        batch_size = min(batch_size, segmentation_batch_size(x))
    probs, embs, preds, losses, entropies = [], [], [], [], []
    confusion = None
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        with _full_precision(device):
            out = model(to_input(normalize(x[sl]).float(), channels_last))
            logits = out.logits.float()
            if segmentation:
                mean_p, entropy = _segmentation_extras(logits)
                probs.append(mean_p)
                entropies.append(entropy)
            else:
                probs.append(logits.softmax(1))
            if embeddings:
                embs.append(out.embedding.float())
            if head is not None:
                preds.append(head(out.taps, extra[sl] if extra is not None else None).float())
            if y is not None:
                losses.append(per_sample_loss(logits, y[sl]))
                if segmentation:
                    c = confusion_matrix(logits.argmax(1), y[sl], logits.shape[1])
                    confusion = c if confusion is None else confusion + c

    def cat(parts):
        return torch.cat(parts).cpu().numpy() if parts else None

    if x.shape[0] == 0:
        return Predictions(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), None, None)
    return Predictions(cat(probs), cat(embs), cat(preds), cat(losses), cat(entropies),
                       confusion.cpu().numpy() if confusion is not None else None)


@torch.no_grad()
def predict_masks(model: nn.Module, x: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """A segmentation model's predicted class per pixel, (N, H, W) uint8 (for galleries)."""
    model.eval()
    out = []
    channels_last = uses_channels_last(model)
    step = segmentation_batch_size(x)
    for start in range(0, x.shape[0], step):
        with _full_precision(x.device):
            out.append(model(to_input(normalize(x[start:start + step]).float(), channels_last)).logits.float().argmax(1))
    if not out:
        return np.zeros((0, *x.shape[2:]), np.uint8)
    return torch.cat(out).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def mc_dropout_probs(model: nn.Module, x: torch.Tensor, normalize, passes: int, generator: torch.Generator,
                     batch_size: int | None = None) -> np.ndarray:
    """T stochastic passes with only dropout active (BatchNorm stays in eval mode): (T, N, K) probabilities.

    Our task learners apply dropout only right before the classifier, so the deterministic part of the
    network runs once and only ``dropout -> classifier`` is sampled T times; that is the same
    distribution as T full passes, at a fraction of the cost.
    """
    model.eval()
    device = x.device
    batch_size = batch_size or inference_batch_size(device, x)
    channels_last = uses_channels_last(model)
    out = []
    for start in range(0, x.shape[0], batch_size):
        with _full_precision(device):
            emb = model(to_input(normalize(x[start:start + batch_size]).float(), channels_last)).embedding.float()
        p = model.dropout.p
        samples = []
        for _ in range(passes):
            keep = (torch.rand(emb.shape, generator=generator, device=device) >= p).to(emb.dtype)
            dropped = emb * keep / (1.0 - p) if p > 0 else emb
            samples.append(model.classifier(dropped).float().softmax(1))
        out.append(torch.stack(samples))
    return torch.cat(out, dim=1).cpu().numpy()


@torch.no_grad()
def mc_dropout_pixel_bald(model: nn.Module, x: torch.Tensor, normalize, passes: int, generator: torch.Generator) -> np.ndarray:
    """Segmentation BALD: T stochastic passes of ``classify(dropout(pixel_features))`` (the network before
    the dropout runs once, BatchNorm in eval mode), the mutual information H(mean p) - mean H(p) per
    pixel, averaged over the image: (N,). The (T, K, H, W) probabilities of a batch never leave the device."""
    model.eval()
    device = x.device
    channels_last = uses_channels_last(model)
    p_drop = model.dropout.p
    out = []
    for start in range(0, x.shape[0], max(1, segmentation_batch_size(x) // 4)):
        xb = x[start:start + max(1, segmentation_batch_size(x) // 4)]
        with _full_precision(device):  # scores rank candidates: fp32, as predict()
            feats = model(to_input(normalize(xb).float(), channels_last)).pixel_features.float()
        mean_p = None
        mean_h = None
        for _ in range(passes):
            keep = (torch.rand(feats.shape, generator=generator, device=device) >= p_drop).to(feats.dtype)
            dropped = feats * keep / (1.0 - p_drop) if p_drop > 0 else feats
            logp = model.classify(dropped, xb.shape[2:]).float().log_softmax(1)
            p = logp.exp()
            h = -(p * logp).sum(1)
            mean_p = p if mean_p is None else mean_p + p
            mean_h = h if mean_h is None else mean_h + h
        mean_p, mean_h = mean_p / passes, mean_h / passes
        entropy_of_mean = -(mean_p * mean_p.clamp_min(1e-12).log()).sum(1)
        out.append((entropy_of_mean - mean_h).clamp_min(0).flatten(1).mean(1))
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)


@dataclass
class SegmentationScores:
    pixel_accuracy: float  # labeled pixels predicted right / labeled pixels
    per_class_accuracy: np.ndarray  # (K,) recall per class (NaN where the class has no pixel)
    mean_iou: float  # mean over classes present in the truth or the prediction
    per_class_iou: np.ndarray  # (K,) TP / (TP + FP + FN); NaN for a class absent from both


def evaluate_segmentation(confusion: np.ndarray) -> SegmentationScores:
    """Pixel accuracy, per-class recall and IoU from a (K, K) confusion matrix (rows true, columns
    predicted). Mean IoU averages the classes that occur in the truth or the prediction (NaN IoU classes,
    absent from both, are left out, as in the Cityscapes benchmark's per-image-set evaluation)."""
    conf = np.asarray(confusion, np.float64)
    tp = np.diag(conf)
    truth = conf.sum(1)
    predicted = conf.sum(0)
    union = truth + predicted - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        recall = np.where(truth > 0, tp / truth, np.nan)
    total = conf.sum()
    pixel_accuracy = float(tp.sum() / total) if total else math.nan
    mean_iou = float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan
    return SegmentationScores(pixel_accuracy, recall, mean_iou, iou)


def evaluate(probs: np.ndarray, y: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """Accuracy and per-class accuracy (NaN for a class absent from the test set)."""
    pred = probs.argmax(1)
    correct = pred == y
    per_class = np.full(num_classes, np.nan)
    for k in range(num_classes):
        mask = y == k
        if mask.any():
            per_class[k] = correct[mask].mean()
    return float(correct.mean()) if len(y) else math.nan, per_class


def describe_device(device_name: str = "auto", model: str | None = None, precision: str = "auto") -> str:
    """One line for the UI: where stages run and in which precision, with the GPU's name and memory."""
    device = resolve_device(device_name)
    resolved = resolve_precision(precision, device, model)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        return (f"GPU: {props.name}, {total / 2**30:.0f} GiB ({free / 2**30:.0f} GiB free); training in {resolved}, "
                "selection scored in fp32")
    threads = small_model_cpu_threads(model or "") or torch.get_num_threads()
    native = "native bf16" if cpu_supports_bf16() else "no native bf16"
    return (f"CPU ({threads} thread{'s' if threads > 1 else ''}, {native}); training in {resolved}, selection scored "
            "in fp32. No CUDA GPU here: paper-scale presets (ResNet-18) belong on a GPU machine.")
