"""Seconds per active-learning stage for each strategy, on moons (paper epochs), digits and the generated
segmentation scenes (shapes), plus peak memory.

    python bench/bench_stages.py [--datasets moons,digits,shapes] [--methods all] [--stages 3] [--threads auto|N]

Prints one line per (dataset, method): mean seconds per stage over the measured stages (the first stage
is run once beforehand as warm-up and not counted), the phase split of the last stage, and the process's
peak resident memory (and peak CUDA memory on a GPU). Targets (2-core CPU): lloss_v2 on moons < 0.3 s,
on digits < 3 s; tavaal on moons < 0.5 s, on digits < 5 s; every method on shapes < 10 s (issue #14).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from tavaal_core import ActiveLearner, ExperimentConfig, available_methods  # noqa: E402
from tavaal_core.data import load_dataset  # noqa: E402
from tavaal_core.training import small_model_cpu_threads  # noqa: E402

TARGETS = {("moons", "lloss_v2"): 0.3, ("digits", "lloss_v2"): 3.0, ("moons", "tavaal"): 0.5, ("digits", "tavaal"): 5.0,
           **{("shapes", m): 10.0 for m in available_methods()}}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(dataset: str, method: str, stages: int, device: str, data) -> tuple[float, dict]:
    cfg = ExperimentConfig(dataset=dataset, method=method, stages=stages + 1, device=device)
    learner = ActiveLearner(cfg, dataset=data).start()
    learner.step()  # warm-up: first-call allocations, lazy imports
    times = []
    for _ in range(stages):
        t = time.perf_counter()
        record = learner.step()
        if learner.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sum(times) / len(times), record.timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="moons,digits,shapes")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--threads", default="auto",
                    help="torch CPU threads; auto = the app's and CLI's policy (1 for the MLP and small CNN)")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    if a.threads != "auto":
        torch.set_num_threads(int(a.threads))
    methods = available_methods() if a.methods == "all" else a.methods.split(",")
    print(f"torch {torch.__version__}, "
          f"device {'cuda: ' + torch.cuda.get_device_name() if torch.cuda.is_available() and a.device != 'cpu' else 'cpu'}")
    print(f"{'dataset':8s} {'method':12s} {'s/stage':>8s} {'target':>7s}  phases of the last stage")
    for dataset in a.datasets.split(","):
        data = load_dataset(dataset)
        if a.threads == "auto":
            threads = small_model_cpu_threads(ExperimentConfig(dataset=dataset).resolve().model)
            torch.set_num_threads(threads or os.cpu_count() or 1)
            print(f"{dataset}: {torch.get_num_threads()} CPU thread(s)")
        for method in methods:
            seconds, timings = bench(dataset, method, a.stages, a.device, data)
            target = TARGETS.get((dataset, method))
            mark = "" if target is None else f"{target:6.1f}{'  ok' if seconds < target else '  SLOW'}"
            phases = ", ".join(f"{k} {v:.3f}" for k, v in timings.items())
            print(f"{dataset:8s} {method:12s} {seconds:8.3f} {mark:>7s}  {phases}", flush=True)
    print(f"peak RSS {peak_rss_mib():.0f} MiB", end="")
    if torch.cuda.is_available():
        print(f", peak CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB", end="")
    print()


if __name__ == "__main__":
    main()
