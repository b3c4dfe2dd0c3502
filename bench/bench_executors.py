"""Wall time of one preset run three ways, as a user runs it: sequential (``--workers 1``), local worker
processes (``--workers 2``) and a local Ray instance (``--executor ray --workers 2``).

    PYTHONPATH=. python bench/bench_executors.py [--preset digits_demo] [--trials N] [--stages N] [--methods a,b]
                                                 [--modes sequential,local,ray]

Each mode runs ``python -m tavaal_core run ...`` in a fresh process (so the times include starting Python,
importing torch, spawning workers or starting Ray), into a temporary folder. Prints the wall time of each,
the speed-up over sequential, the machine's load average before and after (the machine may be shared:
read the times against it), and whether the runs' records are identical (selections and accuracies).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = {
    "sequential": ["--workers", "1"],
    "local": ["--workers", "2"],
    "ray": ["--executor", "ray", "--workers", "2"],
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def identical(a: Path, b: Path) -> bool:
    import numpy as np

    from tavaal_core import store
    from tavaal_core.experiment import Experiment

    spec = Experiment.open(a).spec
    for unit in spec.units():
        ra = store.load_records(a, unit.method, unit.trial, setting=unit.setting)
        rb = store.load_records(b, unit.method, unit.trial, setting=unit.setting)
        if len(ra) != len(rb) or any(x.accuracy != y.accuracy or not np.array_equal(x.selected, y.selected)
                                     or not np.array_equal(x.candidate_scores, y.candidate_scores)
                                     for x, y in zip(ra, rb)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits_demo")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--stages", type=int)
    parser.add_argument("--methods")
    parser.add_argument("--modes", default="sequential,local,ray")
    args = parser.parse_args()
    extra = [flag for name in ("trials", "stages", "methods") if getattr(args, name) is not None
             for flag in (f"--{name}", str(getattr(args, name)))]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_WAIT_POLICY="PASSIVE")
    times, dirs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.preset} {' '.join(extra)}: before: {load()}", flush=True)
        for mode in args.modes.split(","):
            cmd = [sys.executable, "-m", "tavaal_core", "run", "--preset", args.preset, *extra, *MODES[mode],
                   "--output", tmp, "--name", mode, "--quiet"]
            started = time.perf_counter()
            done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            times[mode] = time.perf_counter() - started
            if done.returncode != 0:
                print(f"{mode}: failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
                continue
            dirs[mode] = Path(tmp) / mode
            speedup = f", x{times['sequential'] / times[mode]:.2f} vs sequential" \
                if "sequential" in times and mode != "sequential" else ""
            print(f"{mode:<10} ({' '.join(MODES[mode])}): wall {times[mode]:6.1f} s{speedup}; after: {load()}",
                  flush=True)
        base = next(iter(dirs), None)
        for mode, path in dirs.items():
            if mode != base:
                print(f"records of {mode} identical to {base}: {'yes' if identical(dirs[base], path) else 'NO'}")


if __name__ == "__main__":
    main()
