"""Write the guided lesson's replays (assets/lesson/<name>.json + .npz) with the app's own settings.

    PYTHONPATH=. python scripts/make_lesson_assets.py [--only moons]

Run after a change to the defaults or the engine: the lesson's "open on its page" links recompute the
same stages live, and a test checks that a replay's first stage still matches what the code computes.
One CPU thread, like the app (``explorer_ui/runtime.py``): the same seed then gives the same picks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from explorer_ui.lesson import ASSETS, REPLAYS, spec_settings  # noqa: E402
from tavaal_core.replay import paths, record_replay, save_replay  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(REPLAYS), help="write only this replay")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, spec in REPLAYS.items():
        if a.only and name != a.only:
            continue
        settings = spec_settings(spec)
        started = time.perf_counter()
        replay = record_replay(name, spec.title, spec.description, settings.config, list(spec.methods), spec.stages,
                               progress=None)
        json_path, npz_path = save_replay(ASSETS / name, replay)
        size = sum(p.stat().st_size for p in paths(ASSETS / name))
        print(f"{name}: {len(spec.methods)} methods x {spec.stages} stages in {time.perf_counter() - started:.1f} s "
              f"-> {json_path.name} + {npz_path.name}, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
