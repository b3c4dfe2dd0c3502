"""What verifying a run folder costs: checking every record's checksums (the Saved runs page, open, resume),
resuming a finished run (verify, compute nothing), and listing a folder whose run claims 10^9 trials.

    PYTHONPATH=. python bench/bench_store_checks.py [--stages 3]

Builds a digits_demo run cut to one trial (2 task epochs, 1 VAE epoch) in a temporary folder, then prints
one line per measurement. Expect a fraction of a second for each on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from tavaal_core import store
from tavaal_core.experiment import Experiment
from tavaal_core.presets import load_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        spec = load_preset("digits_demo").with_(trials=1, stages=args.stages, task_epochs=2, vae_epochs=1,
                                                unsupervised_vae_epochs=1, device="cpu")
        run = Experiment.create(spec, root, "bench")
        started = time.perf_counter()
        run.run()
        print(f"run: {time.perf_counter() - started:.1f} s for {spec.total_stages} records")
        size = sum(p.stat().st_size for p in (run.run_dir / "records").rglob("*.npz"))
        started = time.perf_counter()
        problems = store.check_records(run.run_dir)
        print(f"check_records: {(time.perf_counter() - started) * 1000:.0f} ms for {spec.total_stages} records, "
              f"{size / 1e6:.1f} MB of NPZ ({len(problems)} damaged)")
        started = time.perf_counter()
        Experiment.open(run.run_dir).run()
        print(f"resume of a finished run (verify, compute nothing): {time.perf_counter() - started:.2f} s")
        config = json.loads((run.run_dir / "config.json").read_text())
        config["trials"] = 10**9
        (run.run_dir / "config.json").write_text(json.dumps(config))
        started = time.perf_counter()
        info = store.list_runs(root)[0]
        print(f"list with a crafted trials = 10**9: {(time.perf_counter() - started) * 1000:.0f} ms "
              f"(listed as broken: {info.broken})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
