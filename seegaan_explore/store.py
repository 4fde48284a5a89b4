"""A folder of memory-mapped arrays named by what they were computed from; a crash never leaves half
an entry.

Both caches of the package are one: the preprocessed images of a cohort
(:meth:`~seegaan_explore.data.cohort.Cohort.images`) and the latent store
(:mod:`~seegaan_explore.explore.latents`). An entry ``<name>`` is an index ``<name>.json`` (a dict
whose ``"array"`` names its array file in the folder and ``"rows"`` how many leading rows of it
belong to the entry) plus the files it names. Names are :func:`content_key` hashes of an entry's
inputs, so a changed input maps to another name and a stale entry is simply never asked for again.
Every file is written under a temporary name and renamed into place, the index last, so an entry is
visible only once complete. Whatever cannot be read (missing, truncated, damaged, not ours) reads as
absent, so the folder may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from .fileio import atomic_write

__all__ = ["ArrayStore", "content_key"]

T = TypeVar("T")

_UNREADABLE = (OSError, ValueError, EOFError)  # what np.load and json raise on damaged files


def content_key(parts: Sequence[str]) -> str:
    """The name of an entry computed from ``parts`` (in this order): 32 hex digits of the SHA-256 of
    the parts joined by newlines (so no part may contain one; file keys and hex digests do not)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class ArrayStore:
    """Entries of memory-mapped ``.npy`` arrays with a JSON index each, in folder ``directory``
    (created on the first write)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def index(self, name: str) -> dict | None:
        """The index ``<name>.json`` (``name`` may lie in a subfolder: ``files/<key>``), or None
        when it is absent or unreadable."""
        try:
            meta = json.loads((self.dir / f"{name}.json").read_text())
        except _UNREADABLE:
            return None
        return meta if isinstance(meta, dict) else None

    def load(self, filename, *, mmap_mode: str | None = None) -> np.ndarray | None:
        """The array file ``filename`` of this folder (as an index names it), or None when it is
        absent or unreadable. ``mmap_mode`` as for :func:`numpy.load`."""
        if not isinstance(filename, str) or not filename or Path(filename).name != filename:
            return None  # an index names files in this folder only
        try:
            return np.load(self.dir / filename, mmap_mode=mmap_mode, allow_pickle=False)
        except _UNREADABLE:
            return None

    def open(self, name: str, *, mmap_mode: str = "r") -> tuple[dict, np.ndarray] | None:
        """Entry ``name``: its index and its whole array, memory-mapped (``"c"``: copy-on-write,
        writable in memory while the file never changes); None unless complete and readable."""
        meta = self.index(name)
        if meta is None:
            return None
        array = self.load(meta.get("array"), mmap_mode=mmap_mode)
        rows = meta.get("rows")
        if array is None or array.ndim < 1 or not isinstance(rows, int) or not 0 <= rows <= len(array):
            return None
        return meta, array

    def entries(self) -> Iterator[tuple[str, dict]]:
        """``(name, index)`` of every complete entry at the top of the folder, in name order."""
        for path in sorted(self.dir.glob("*.json")):
            name = path.name[: -len(".json")]
            if name.startswith("."):  # a temporary file
                continue
            found = self.open(name)
            if found is not None:
                yield name, found[0]

    def write_array(self, filename: str, shape: tuple[int, ...], dtype,
                    fill: Callable[[np.memmap], T]) -> T:
        """Create the array file ``filename``: ``fill(out)`` writes into a new memory-mapped array
        of ``shape`` and ``dtype`` under a temporary name, which replaces ``filename`` once ``fill``
        returns and is removed if it raises. Returns what ``fill`` returns."""
        with atomic_write(self.dir / filename) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=shape)
            try:
                result = fill(out)
                out.flush()
            finally:
                del out  # closes the map before the rename
        return result

    def save_array(self, filename: str, array: np.ndarray) -> None:
        """Write a small array file ``filename`` (atomically)."""
        with atomic_write(self.dir / filename) as tmp, open(tmp, "wb") as f:
            np.save(f, array)

    def write_index(self, name: str, meta: dict) -> None:
        """Write the index ``<name>.json`` (atomically): the last step of an entry, which makes it
        visible. An index may name another entry's array (an alias: the same rows under another
        name)."""
        with atomic_write(self.dir / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(meta))
