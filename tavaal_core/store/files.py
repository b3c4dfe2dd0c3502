"""Plain-file I/O of the run store: paths kept inside their run folder, atomic writes (temporary file,
fsync, rename) and reads whose errors name the file. Never unpickles."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import TavaalError



class StoreError(TavaalError):
    """A run folder or one of its files is missing, corrupt or inconsistent; the message names the file."""


class DamagedRecord(StoreError):
    """A stage record is missing, unreadable or fails its checksum; resuming the run recomputes it."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}; resume the run to recompute it")


# -- paths stay inside their run folder --------------------------------------------------------------
def inside(run_dir, path) -> Path:
    """``path`` when it resolves inside ``run_dir`` (following any symbolic links on the way), else a
    StoreError naming it: a crafted or linked run folder never makes us read or write elsewhere."""
    path = Path(path)
    root = Path(run_dir).resolve()
    real = path.resolve()
    if real != root and root not in real.parents:
        raise StoreError(f"{path}: leads outside its run folder (to {real}); refused")
    return path


def run_file(run_dir, *parts) -> Path:
    return inside(run_dir, Path(run_dir).joinpath(*parts))


# -- atomic writes ---------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync it, and rename it over
    ``path``. The temporary file is removed if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def remove_temp_files(run_dir) -> int:
    """Delete temporary files a killed writer left behind (``.<name>.*.tmp``); call only while no other
    process writes the run. Returns how many were removed."""
    removed = 0
    for tmp in Path(run_dir).rglob(".*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_json(path, obj) -> None:
    data = json.dumps(obj, indent=1, sort_keys=False, default=_json_default).encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_write_npz(path, arrays: dict[str, np.ndarray]) -> str:
    """Write the arrays as one ``.npz``; returns the SHA-256 of the bytes written."""
    import io

    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; the store keeps plain arrays only")
    # compressed: features after a ReLU are a third zeros (digits_demo's run folder: 29 -> about 19 MB)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buffer.getvalue()
    atomic_write(path, lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


# -- reading, with errors that name the file ---------------------------------------------------------
def read_json(path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"corrupt or truncated JSON ({e.msg} at line {e.lineno})"
        raise StoreError(f"{path}: {what}") from None


def _read_json_object(path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_npz(path, keys: Iterable[str] | None = None, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every array (or the named ones) of an ``.npz``, loaded with ``allow_pickle=False``; with ``sha256``
    the file's bytes must have that digest (else :class:`DamagedRecord`)."""
    import io

    path = Path(path)
    if not path.is_file():
        raise (DamagedRecord(path, "file is missing") if sha256 else StoreError(f"{path}: file is missing"))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StoreError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedRecord(path, "corrupt or truncated: its checksum does not match the record's "
                                  "(or the file was copied from another record)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = list(npz.files) if keys is None else [k for k in keys if k in npz.files]
            return {k: npz[k] for k in names}
    except Exception as e:  # BadZipFile, zlib.error, ValueError (object arrays: pickle refused), EOFError ...
        raise StoreError(f"{path}: corrupt or truncated array file ({type(e).__name__}: {e})") from None
