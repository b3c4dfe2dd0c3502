"""The environment a run ran in: library versions, device, CPU / GPU name and the git commit."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np


from .runs import now_iso


# -- environment -------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> dict:
    repo = Path(__file__).resolve().parent.parent
    out = {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                   capture_output=True, text=True, timeout=5)
            if dirty.returncode == 0:
                out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def environment(device: str = "cpu") -> dict:
    """Versions and hardware, for ``environment.json``."""
    import pandas
    import scipy
    import torch

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "argv": list(sys.argv),
        "recorded": now_iso(),
    }
    if torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu"] = torch.cuda.get_device_name(0)
    env.update(_git_commit())
    return env
