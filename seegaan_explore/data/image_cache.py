"""The cache of preprocessed images: each file decoded once, kept memory-mapped, reused by content.

:func:`cached_images` is what :meth:`~seegaan_explore.data.cohort.Cohort.images` runs: it decodes
(in worker processes) only the files whose :func:`file_key` no earlier entry has, and keeps the rows
in an :class:`~seegaan_explore.store.ArrayStore` per preprocessing (resolution, dtype, framing, colour
and :data:`~seegaan_explore.data.images.PREPROCESS_VERSION`). It is separate from the cohort because
the rules for when a cached image may be reused (file identity, reader version) are the cache's own,
and :func:`file_key` and :func:`default_cache_dir` are shared with the latent store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..store import ArrayStore, content_key
from .images import PREPROCESS_VERSION, load_preprocessed_info
from .scan import imap

__all__ = ["ImageCache", "cached_images", "default_cache_dir", "file_key", "import_options_suffix"]


def default_cache_dir() -> Path:
    """``$SEEGAAN_CACHE`` if set, else ``~/.cache/seegaan-explore``."""
    return Path(os.environ.get("SEEGAAN_CACHE") or Path.home() / ".cache" / "seegaan-explore")


def file_key(path: Path) -> str | None:
    """Identity of a file's current content: path, size and modification time (None if missing).

    What both caches key a file by (the preprocessed images here, the latent store in
    :mod:`~seegaan_explore.explore.latents`), so that a changed file is the only one redone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


def import_options_suffix(framing: str, colour: str) -> str:
    """How a cache names the import options that change an image's pixels or usability: ``""`` for the
    defaults (framing pad, colour refuse), so that caches written before the options existed stay
    valid, else ``-<framing>`` and/or ``-<colour>``. Both caches (this one and the latent store) use it,
    so that neither returns what was made under other options."""
    return ("" if framing == "pad" else f"-{framing}") + ("" if colour == "refuse" else f"-{colour}")


#: Version of what the image cache records about unusable files and notes: entries written by an
#: older reader keep their images, but their unusable files are tried again (the reader now accepts
#: near-grey colour and replaces header windows that destroy the image).
_READER_VERSION = 2


class ImageCache:
    """Preprocessed images of lists of files, in an :class:`~seegaan_explore.store.ArrayStore` at
    ``<root>/v<PREPROCESS_VERSION>-r<resolution>-<dtype>[-<framing>][-<colour>]/`` (framing and colour
    only where they are not the defaults pad and refuse, so the caches of those stay where they were).

    Entry ``<key>`` (the :func:`~seegaan_explore.store.content_key` of the list's file keys) holds
    the usable images in order; its index adds the file keys of its rows (``files``), the files
    that failed and why (``bad``: ``[file key, path, reason]``) and what decoding them noted
    (``notes``: ``[file key, notes, warnings]``).  Rows of earlier entries are reused by file key,
    so a changed or added file is the only one decoded again.
    """

    def __init__(self, root: Path, resolution: int, dtype: np.dtype, framing: str = "pad",
                 colour: str = "refuse"):
        name = f"v{PREPROCESS_VERSION}-r{resolution}-{dtype.name}{import_options_suffix(framing, colour)}"
        self.store = ArrayStore(Path(root) / name)

    @staticmethod
    def _notes(meta: dict) -> dict[str, tuple[list[str], list[str]]]:
        return {k: (list(n), list(w)) for k, n, w in meta.get("notes", [])}

    def get(self, key: str) -> tuple[np.ndarray, dict[str, str], dict] | None:
        found = self.store.open(key)
        if found is None:
            return None
        meta, array = found
        try:
            if meta["bad"] and meta.get("reader", 1) < _READER_VERSION:
                return None  # its unusable files are tried again by the current reader
            return array[: meta["rows"]], {k: reason for k, _, reason in meta["bad"]}, self._notes(meta)
        except (KeyError, TypeError, ValueError):  # an index this class did not write
            return None

    def known(self) -> tuple[dict[str, tuple[str, int]], dict[str, str], dict]:
        """Rows of all complete entries (file key -> (array name, row)), known bad file keys and notes."""
        rows, bad, notes = {}, {}, {}
        for _, meta in self.store.entries():
            try:
                entry_rows = [(k, (meta["array"], i)) for i, k in enumerate(meta["files"][: meta["rows"]])]
                entry_bad = [(k, reason) for k, _, reason in meta["bad"]]
                entry_notes = self._notes(meta)
            except (KeyError, TypeError, ValueError):
                continue
            rows.update(entry_rows)
            if meta.get("reader", 1) >= _READER_VERSION:
                bad.update(entry_bad)
            notes.update(entry_notes)
        return rows, bad, notes

    def row_source(self, array_name: str) -> np.ndarray:
        """A known entry's array, to copy rows from."""
        array = self.store.load(array_name, mmap_mode="r")
        if array is None:
            raise FileNotFoundError(f"{self.store.dir / array_name}: cache file disappeared while in use")
        return array

    def alias(self, key: str, array_key: str, files: list[str], bad: list[tuple[str, str, str]],
              notes: dict | None = None) -> None:
        """Write the index that makes entry `key` (rows `files` of array `array_key`) visible."""
        noted = [[k, *notes[k]] for k in files if k in notes] if notes else []
        self.store.write_index(key, {"array": f"{array_key}.npy", "rows": len(files), "files": files, "bad": bad,
                                     "notes": noted, "reader": _READER_VERSION})


def cached_images(paths: list[Path], resolution: int, cache_dir: str | os.PathLike | None | bool, *,
                  dtype: np.dtype, progress: bool, workers: int, framing: str,
                  colour: str) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[list[str], list[str]]]]:
    """The usable files of `paths` preprocessed as ``[n, R, R]`` in order, the unusable ones (position in
    `paths` -> reason) and what decoding noted (position -> (notes, warnings)).

    `cache_dir`: where the cache lives (None or True: :func:`default_cache_dir`; False: no cache). With a
    cache the array is a read-only memory map, and the list without its unusable files is made an entry
    of the same array, so that a cohort that dropped them finds it.
    """
    keys = [file_key(p) or f"missing:{p}" for p in paths]
    cache = None if cache_dir is False else ImageCache(
        default_cache_dir() if cache_dir in (None, True) else Path(cache_dir), resolution, dtype, framing, colour)
    entry = content_key(keys) if cache else None
    hit = cache.get(entry) if cache else None
    if hit is not None:
        array, bad_keys, notes = hit
        bad = {i: bad_keys[k] for i, k in enumerate(keys) if k in bad_keys}
    else:
        array, bad, notes = _build(paths, keys, resolution, dtype, cache, entry, progress, workers, framing, colour)
    if bad and cache:  # the list without its unusable files maps to the same array
        good = [k for i, k in enumerate(keys) if i not in bad]
        cache.alias(content_key(good), entry, good, [], notes)
    return array, bad, {i: notes[k] for i, k in enumerate(keys) if k in notes}


def _build(paths: list[Path], keys: list[str], resolution: int, dtype: np.dtype,
           cache: ImageCache | None, entry: str | None, progress: bool, workers: int,
           framing: str, colour: str) -> tuple[np.ndarray, dict[int, str], dict]:
    """Decode what no cache entry holds, copy the rest from the entries that do, and (with a cache)
    write the result as entry `entry`: (the images, unusable positions and why, notes by file key)."""
    known_rows, known_bad, known_notes = cache.known() if cache else ({}, {}, {})
    notes: dict[str, tuple[list[str], list[str]]] = {}

    def fill(out: np.ndarray) -> tuple[dict[int, str], int]:
        """Write the usable images into ``out``'s leading rows: (unusable rows and why, rows written)."""
        todo = [i for i, k in enumerate(keys) if k not in known_rows and k not in known_bad]
        decoded = imap(load_preprocessed_info, [(paths[i], resolution, colour, framing) for i in todo],
                       workers=workers, progress=progress, desc=f"Decoding images ({resolution}px)")
        sources: dict[str, np.ndarray] = {}
        bad: dict[int, str] = {}
        row = 0
        for i, k in enumerate(keys):
            if k.startswith("missing:"):
                bad[i] = "image file not found"
                continue
            if k in known_bad:
                bad[i] = known_bad[k]
                continue
            if k in known_rows:
                name, src_row = known_rows[k]
                if name not in sources:
                    sources[name] = cache.row_source(name)
                out[row] = sources[name][src_row]
                if k in known_notes:
                    notes[k] = known_notes[k]
            else:
                image, info = next(decoded)
                if info.reason is not None:
                    bad[i] = info.reason
                    continue
                out[row] = image
                if info.notes or info.warnings:
                    notes[k] = (list(info.notes), list(info.warnings))
            row += 1
        return bad, row

    shape = (len(paths), resolution, resolution)
    if cache is None:
        out = np.empty(shape, dtype)
        bad, rows = fill(out)
        return out[:rows], bad, notes
    bad, _ = cache.store.write_array(f"{entry}.npy", shape, dtype, fill)
    good = [k for i, k in enumerate(keys) if i not in bad]
    cache.alias(entry, entry, good, [(keys[i], str(paths[i]), r) for i, r in bad.items()], notes)
    return cache.get(entry)[0], bad, notes
