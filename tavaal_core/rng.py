"""Randomness derived from (seed, stage, purpose), never from one global stream.

A what-if, a view or a resumed run therefore cannot shift the picks that come later: every
consumer asks for its own generator, keyed by what it is for.
"""
from __future__ import annotations

import contextlib
import hashlib
import threading

import numpy as np
import torch


def derive_seed(seed: int, stage: int, purpose: str) -> int:
    """A 63-bit integer seed that depends only on (seed, stage, purpose)."""
    digest = hashlib.blake2b(f"{int(seed)}|{int(stage)}|{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def numpy_rng(seed: int, stage: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, stage, purpose))


def torch_generator(seed: int, stage: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, stage, purpose))
    return gen


# torch's global RNG is one per process: two threads inside `seeded` blocks at once (two browser
# sessions, a what-if beside a step) would draw from each other's stream. Re-entrant, so nested blocks
# in one thread are fine.
_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int, stage: int, purpose: str, device: str | torch.device = "cpu"):
    """Run a block (e.g. building a model, whose init uses torch's global RNG) under a derived seed,
    restoring the global RNG state afterwards so nothing outside the block is shifted. Blocks in
    different threads run one at a time."""
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        derived = derive_seed(seed, stage, purpose)
        # torch.manual_seed would seed the CPU generator (all a CPU run uses) and also queue a lazy seeding
        # of every accelerator backend, each recording its call stack (1.6 ms a call, and a list that grows
        # for the life of the process): seed only the generators this block's device draws from.
        torch.default_generator.manual_seed(derived)
        for index in devices:  # (fork_rng initialised CUDA, so this seeds now rather than queueing)
            with torch.cuda.device(index):
                torch.cuda.manual_seed(derived)
        yield
