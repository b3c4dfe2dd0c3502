"""Time a whole experiment (a preset) the way the CLI runs it, and the size of its run folder.

    PYTHONPATH=. python bench/bench_experiment.py [--preset digits_demo] [--trials 2] [--threads N] [--keep DIR]

Prints the wall-clock time, the process's CPU time, the mean seconds per stage of each method (from the
run's metrics table, i.e. the engine's own phase timings), and the run folder's size on disk. The folder
is written to a temporary directory and removed unless ``--keep`` names where to put it.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tavaal_core import store  # noqa: E402
from tavaal_core.experiment import Experiment  # noqa: E402
from tavaal_core.presets import load_preset  # noqa: E402


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits_demo")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--stages", type=int)
    parser.add_argument("--methods")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--keep", help="folder to keep the run in (default: a temporary folder, removed)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    spec = load_preset(args.preset).with_(
        trials=args.trials, methods=tuple(args.methods.split(",")) if args.methods else None,
        **({"stages": args.stages} if args.stages else {}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        started, cpu0 = time.perf_counter(), time.process_time()
        run = Experiment.create(spec, out, f"bench-{args.preset}")
        run.run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        metrics = store.load_metrics(run.run_dir)
        print(f"{args.preset}: {spec.trials} trial(s) x {len(spec.methods)} methods x {spec.stages} stages "
              f"= {spec.total_stages} stages")
        print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        per_method = metrics.groupby("method", sort=False)["time_total"].mean()
        for method, seconds in per_method.items():
            print(f"  {method:<12} {seconds:6.2f} s / stage")
        print(f"run folder: {folder_size(run.run_dir) / 2**20:.1f} MiB ({run.run_dir})")


if __name__ == "__main__":
    main()
