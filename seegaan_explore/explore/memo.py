"""Tables computed from weights and pixels, kept on disk under the hash of what they were computed from.

A dashboard kernel spent half its start (9 of 15 s on 2 CPU cores) reading 256 exams with the oracle
and the CNN (a reader's gain) and decoding 64 latents (the cohort's PSNR), and most of a new
attribute's film (3.3 of 3.8 s) decoding and reading other patients' films to calibrate it. All of
it depends on nothing but networks' weights and a cohort's pixels and latents, so every later start
on the same model and cohort reads it from ``<cache>/memo/`` (an
:class:`~seegaan_explore.store.ArrayStore`: atomic, any damaged entry reads as absent). A reader's
precision is left out of its digest, as the latent store leaves it out: readings made in bf16 on a
GPU are reused on a CPU, where they differ by rounding; a decoder's is kept (:func:`decoder_digest`),
since what is read is its images. Each new direction calibrated adds tables (about 8 KB per other
patient's film read), so the memo keeps at most :data:`MEMO_LIMIT_BYTES`, dropping the tables read
least recently.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.image_cache import default_cache_dir
from ..store import ArrayStore, content_key

__all__ = ["MEMO_LIMIT_BYTES", "MEMO_VERSION", "array_digest", "decoder_digest", "hash_weights", "remembered",
           "weights_digest"]

#: Raised whenever the code that computes a remembered table changes what it returns.
MEMO_VERSION = "1"

#: The memo's size on disk beyond which its tables read least recently are removed (down to 3/4 of it).
MEMO_LIMIT_BYTES = 256 * 2**20

_TRIM_EVERY = 64  # a process looks at the memo's size on its first write and every this many after
_writes = itertools.count()


def hash_weights(h, module: torch.nn.Module) -> None:
    """Feed every tensor of ``module``'s state (name, dtype, shape, bytes) into the hash ``h``."""
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def weights_digest(network) -> str | None:
    """Hash of a network's weights and its ``config`` (a CNN's resolution and output scale live
    there, not in its weights); None for anything that is not a torch module, which is then never
    remembered."""
    if not isinstance(network, torch.nn.Module):
        return None
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(getattr(network, "config", None)).encode())
    hash_weights(h, network)
    return h.hexdigest()


def decoder_digest(model) -> str | None:
    """Hash of what a SeeGaan's decoded images depend on besides their latents and noise: its EMA
    generator's weights and the precision it computes in; None for any other model."""
    from ..device import compute_dtype

    digest = weights_digest(getattr(model, "generator_ema", None))
    return None if digest is None else f"{digest}-{compute_dtype(model.device, model.precision)}"


def array_digest(array) -> str:
    """Hash of an array's dtype, shape and values."""
    a = np.ascontiguousarray(array)
    h = hashlib.blake2b(f"{a.dtype}\0{a.shape}\0".encode(), digest_size=16)
    h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def remembered(cache_dir: str | os.PathLike | None, parts: Sequence[str | None],
               compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()``'s table of numbers (as float64), computed once per ``parts`` (what it was computed
    from; any None part means "not hashable": computed every time) and kept in ``cache_dir`` (None: the
    package's cache). A cache that cannot be written costs a warning, never the result."""
    def as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(frame.to_numpy(np.float64), columns=[str(c) for c in frame.columns])

    if any(p is None for p in parts):
        return as_numbers(compute())
    store = ArrayStore(Path(default_cache_dir() if cache_dir is None else cache_dir) / "memo")
    name = content_key([MEMO_VERSION, *parts])
    found = store.open(name)
    if found is not None:
        meta, values = found
        columns = meta.get("columns")
        if isinstance(columns, list) and values.ndim == 2 and values.shape[1] == len(columns):
            _touch(store.dir / f"{name}.json")
            return pd.DataFrame(np.array(values[: meta["rows"]], np.float64), columns=columns)
    frame = as_numbers(compute())
    try:
        store.save_array(f"{name}.npy", frame.to_numpy())
        store.write_index(name, {"array": f"{name}.npy", "rows": len(frame), "columns": list(frame.columns)})
    except OSError as e:
        warnings.warn(f"could not keep a computed table in {store.dir} ({e}); it is computed again next time",
                      stacklevel=2)
    else:
        if next(_writes) % _TRIM_EVERY == 0:
            _trim(store.dir, MEMO_LIMIT_BYTES)
    return frame


def _touch(path: Path) -> None:
    """Mark an entry as read now (its index's mtime is when it was last used)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache is still read
        pass


def _trim(folder: Path, limit: int) -> None:
    """Where the memo in ``folder`` holds more than ``limit`` bytes, remove its entries used least
    recently (index first, so that a kernel reading meanwhile finds the entry absent, never half of it)
    until it holds at most 3/4 of ``limit``."""
    entries, total = [], 0
    try:
        with os.scandir(folder) as items:
            sizes = {item.name: item.stat() for item in items if item.is_file()}
    except OSError:
        return
    for filename, st in sizes.items():
        total += st.st_size
        if filename.endswith(".json") and not filename.startswith("."):
            name = filename[: -len(".json")]
            array = sizes.get(f"{name}.npy")
            entries.append((st.st_mtime_ns, name, st.st_size + (array.st_size if array else 0)))
    if total <= limit:
        return
    for _, name, size in sorted(entries):
        for filename in (f"{name}.json", f"{name}.npy"):
            try:
                os.unlink(folder / filename)
            except FileNotFoundError:  # another kernel trimmed it first
                pass
            except OSError:  # a read-only cache: kept as it is
                return
        total -= size
        if total <= limit * 3 // 4:
            break
