"""Reading datasets that come as folders of image files (Cityscapes, Caltech-101): decoding and
resizing in threads, and a cache of the decoded arrays so the second load takes seconds.

The cache is a ``.npz`` of plain arrays (read with ``allow_pickle=False``) under
``<root>/.tavaal-cache/``, keyed by the loader's settings and a digest of the file list, written to a
temporary file and renamed into place (never half-written). A folder that cannot be written (read-only
data) simply goes uncached.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

CACHE_DIR = ".tavaal-cache"


def files_digest(paths: Sequence[Path], root: Path) -> str:
    """A short digest of the relative paths and sizes: the cache is rebuilt when files change."""
    h = hashlib.blake2b(digest_size=8)
    for p in paths:
        h.update(str(Path(p).relative_to(root)).encode())
        h.update(str(Path(p).stat().st_size).encode())
    return h.hexdigest()


def cached_arrays(root: Path, key: str, build: Callable[[], dict[str, np.ndarray]], use_cache: bool = True
                  ) -> dict[str, np.ndarray]:
    """``build()`` once; its arrays are kept in ``<root>/.tavaal-cache/<key>.npz`` for the next call."""
    path = root / CACHE_DIR / f"{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass
    arrays = build()
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:  # read-only data folder: no cache
            pass
    return arrays


def read_images(paths: Sequence[Path], size: tuple[int, int], mode: str, resample: str) -> np.ndarray:
    """Decode ``paths`` with Pillow, convert to ``mode`` ("RGB" or "L"), resize to ``size`` = (H, W) with
    ``resample`` ("bilinear" for photos, "nearest" for label maps): (N, H, W, 3) or (N, H, W) uint8.
    Threads, since Pillow releases the GIL while decoding."""
    from PIL import Image

    method = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[resample]
    h, w = size
    shape = (len(paths), h, w, 3) if mode == "RGB" else (len(paths), h, w)
    out = np.empty(shape, np.uint8)

    def one(i: int) -> None:
        with Image.open(paths[i]) as img:
            img = img.convert(mode)
            if img.size != (w, h):
                img = img.resize((w, h), method)
            out[i] = np.asarray(img, dtype=np.uint8)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(paths))))
    return out
