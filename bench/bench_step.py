"""Seconds per Step of a Stage explorer session, in this process (no server, no browser): what the Step's
compute costs, apart from the page's rendering that bench_browser.py adds.

    PYTHONPATH=. python bench/bench_step.py [--dataset mnist5k] [--steps 3] [--workers N] [--set KEY=VALUE ...]

The session is the one the Stage explorer starts for ``--dataset`` with its defaults (four methods, the
demo sizing of explorer_ui.controls), one torch thread as in the app. ``--workers`` sets how many methods
run at once (default: the app's choice, one per core on a CPU; 1 = one after another). ``--set`` changes a
Stage explorer value, e.g. ``--set img_epochs_mnist5k=30``. Prints each Step's wall and CPU seconds and each
method's test accuracy after it (the same seed gives the same picks whatever the workers).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="methods at once (default: one per core)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a Stage explorer value")
    a = ap.parse_args()

    from explorer_ui import session as session_module
    from explorer_ui.controls import image_config, image_defaults
    from tavaal_core.training import configure_app_threads

    configure_app_threads()
    values = image_defaults(a.dataset)
    for item in a.set:
        key, _, text = item.partition("=")
        if key not in values:
            raise SystemExit(f"--set: unknown key {key!r}; keys: {', '.join(sorted(values))}")
        values[key] = type(values[key])(text) if not isinstance(values[key], list) else text.split(",")
    if a.workers is not None:
        session_module.step_workers = lambda learners: max(1, min(a.workers, len(learners)))
    settings = image_config(values)
    cfg = settings.config
    print(f"{a.dataset}: methods {', '.join(settings.methods)}; task epochs {cfg.task_epochs}, VAE epochs "
          f"{cfg.vae_epochs}, VAE width {cfg.vae_width}; workers "
          f"{'one per core' if a.workers is None else a.workers}; load average {os.getloadavg()[0]:.2f}")
    session = session_module.LiveSession.create("bench", "bench", cfg, settings.methods)
    for k in range(a.steps):
        wall, cpu = time.perf_counter(), time.process_time()
        failures = session.step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        accuracy = ", ".join(f"{m} {lrn.records[-1].accuracy:.3f}" for m, lrn in session.learners.items())
        print(f"step {k + 1}: {wall:5.2f} s wall, {cpu:5.2f} CPU-s; accuracy: {accuracy}"
              + (f"; failed: {failures}" if failures else ""), flush=True)


if __name__ == "__main__":
    main()
