"""TA-VAAL's CIFAR-10 setting at paper scale, per phase, on CIFAR-shaped data this benchmark makes itself.

    python bench/bench_paper.py [--quick] [--precisions fp32,bf16] [--device auto|cpu|cuda]

Data: 50,000 train / 10,000 test seeded uint8 3x32x32 images, 10 classes (no download). Models and
settings as the cifar10_tavaal preset: ResNet-18 (CIFAR stem) + Ranker (ranking loss), the reference-size
VAE (vae_preset "reference") and the 5 x 512 discriminator, batch 128, SGD 0.1.

Per phase and precision: seconds and images/s for one task epoch at a labeled size, one VAE +
discriminator step (a labeled and an unlabeled batch of 128), scoring candidates (Ranker + encoder +
discriminator, fp32), testing images (fp32); peak host memory (and GPU memory on CUDA); and the
projected time of one full trial: 10 stages of 1,000 -> 10,000 labels, 200 task epochs a stage, the
reference's VAE schedule ((labeled + 10,000) x 100 / 128 steps a stage), scoring 10,000 candidates and
the labeled set, testing 10,000 images a stage.

``--quick`` measures a task epoch of 896 images, 2 VAE steps, 1,000 candidates and 1,000 test images
(a few minutes on a 2-core CPU); the full run measures 5,000 / 10 / 10,000 / 10,000.

Reference figures (the official TA-VAAL code, same torch, 2 CPU threads, fp32; issue 12): task epoch of
896 images 20.8 s, VAE + discriminator step 8.1 s, scoring 12.6 s per 1,000 candidates, testing 5.7 s
per 1,000 images. CPU targets: task epoch and VAE step at least 2x faster, scoring at least 3x per
candidate, testing at least 2x.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tavaal_core import vaal_training  # noqa: E402
from tavaal_core.data.base import Dataset  # noqa: E402
from tavaal_core.models.loss_head import LossPredictionHead  # noqa: E402
from tavaal_core.models.task import build_task_model  # noqa: E402
from tavaal_core.training import (TrainSettings, cpu_supports_bf16, predict, resolve_device,  # noqa: E402
                                  train_task_model)

REFERENCE = {"task": 20.8 / 896, "vae": 8.1, "score": 12.6 / 1000, "test": 5.7 / 1000}  # seconds per unit
TARGET_SPEEDUP = {"task": 2.0, "vae": 2.0, "score": 3.0, "test": 2.0}


def cifar_shaped(seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)  # noqa: E731
    return Dataset("cifar_shaped", make(50_000), torch.randint(0, 10, (50_000,), generator=g), make(10_000),
                   torch.randint(0, 10, (10_000,), generator=g), [str(k) for k in range(10)], (3, 32, 32), "image",
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), augment=True)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(ds: Dataset, device, precision: str, sizes: dict) -> dict:
    x_train, y_train = ds.x_train.to(device), ds.y_train.to(device)
    torch.manual_seed(0)
    model = build_task_model("resnet18", ds.input_shape, 10).to(device).to(memory_format=torch.channels_last)
    head = LossPredictionHead(model.tap_dims, hidden=128).to(device)
    out = {}

    # one task epoch (task loss + ranking loss), after a 1-batch warm-up
    settings = TrainSettings(epochs=1, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                             head_kind="ranking", augment=True, precision=precision)
    n = sizes["task"]
    gen = torch.Generator(device=device).manual_seed(0)
    train_task_model(model, head, x_train[:128], y_train[:128], ds.normalize, settings, gen)
    sync(device)
    t = time.perf_counter()
    train_task_model(model, head, x_train[:n], y_train[:n], ds.normalize, settings, gen)
    sync(device)
    out["task"] = (time.perf_counter() - t, n)

    # VAE + discriminator steps: labeled 128 + unlabeled 128 per step -> 2 steps an epoch of 256 samples
    steps = sizes["vae_steps"]
    vae_settings = vaal_training.VAALSettings.images(epochs=1, batch_size=128, vae_preset="reference", latent_dim=32,
                                                   rank_conditioned=True, precision=precision)
    x_l, x_u = x_train[:128 * steps // 2], x_train[25_000:25_000 + 128 * steps // 2]
    r_l, r_u = torch.randn(len(x_l), device=device), torch.randn(len(x_u), device=device)
    vaal_training.train_vaal(x_train[:64], x_train[64:128], ds.normalize, vae_settings,
                           ranker_output_labeled=r_l[:64], ranker_output_unlabeled=r_u[:64], device=device)  # warm-up
    sync(device)
    t = time.perf_counter()
    models = vaal_training.train_vaal(x_l, x_u, ds.normalize, vae_settings, ranker_output_labeled=r_l,
                                    ranker_output_unlabeled=r_u, device=device)
    sync(device)
    out["vae"] = (time.perf_counter() - t, steps)

    # scoring candidates: the Ranker's l_hat, then encoder-only mu and D, all fp32
    n = sizes["score"]
    cand = x_train[10_000:10_000 + n]
    t = time.perf_counter()
    l_hat = predict(model, cand, ds.normalize, head=head).predicted_loss
    vaal_training.discriminator_likelihood(models, cand, ds.normalize, ranker_output=torch.as_tensor(l_hat, device=device))
    sync(device)
    out["score"] = (time.perf_counter() - t, n)

    n = sizes["test"]
    t = time.perf_counter()
    predict(model, ds.x_test[:n].to(device), ds.normalize, y=ds.y_test[:n].to(device))
    sync(device)
    out["test"] = (time.perf_counter() - t, n)
    return out


def projected_trial_seconds(per_unit: dict) -> float:
    """10 stages of 1,000 -> 10,000 labels (TA-VAAL CIFAR-10), from per-image / per-step seconds."""
    total = 0.0
    for stage in range(10):
        labeled = 1000 * (stage + 1)
        total += 200 * labeled * per_unit["task"]
        total += (labeled + 10_000) * 100 / 128 * per_unit["vae"]
        total += (10_000 + labeled) * per_unit["score"]
        total += 10_000 * per_unit["test"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 2))
    sizes = (dict(task=896, vae_steps=2, score=1000, test=1000) if args.quick
             else dict(task=5000, vae_steps=10, score=10_000, test=10_000))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    ds = cifar_shaped()
    for precision in args.precisions.split(","):
        if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
            print("bf16: this CPU has no native bf16, skipped")
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = measure(ds, device, precision, sizes)
        per_unit = {k: s / n for k, (s, n) in result.items()}
        print(f"\n[{precision}] phase                       seconds   units      per unit   vs reference (target)")
        labels = {"task": "task epoch (images)", "vae": "VAE + D steps", "score": "scoring (candidates)",
                  "test": "testing (images)"}
        for key, (seconds, n) in result.items():
            rate = (seconds / n) if key == "vae" else (n / seconds if seconds else float("inf"))
            speedup = REFERENCE[key] / per_unit[key]
            unit = "s/step" if key == "vae" else "images/s"
            verdict = "met" if speedup >= TARGET_SPEEDUP[key] else "NOT met"
            print(f"[{precision}] {labels[key]:<26} {seconds:8.2f} {n:7d}  {rate:9.1f} {unit:<8} "
                  f"{speedup:4.2f}x ({TARGET_SPEEDUP[key]:.0f}x: {verdict})")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu = (f", GPU peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if device.type == "cuda" else "")
        hours = projected_trial_seconds(per_unit) / 3600
        print(f"[{precision}] peak host memory {rss:.0f} MiB{gpu}; projected full CIFAR-10 TA-VAAL trial: "
              f"{hours:.1f} h")
    ref_hours = projected_trial_seconds(REFERENCE) / 3600
    print(f"\nreference code at its measured rates (2-core CPU, fp32): {ref_hours:.1f} h per trial")


if __name__ == "__main__":
    main()
