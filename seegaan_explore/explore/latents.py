"""The latent store: every image of a cohort encoded once per model, kept on disk, reused by content.

``encode_cohort(model, cohort)`` returns a :class:`Latents` (ids, a memory-mapped ``[N, w_dim]``
array, the clinical table aligned to it). Rows live under
``<cache>/latents/<model digest>/``: the digest hashes the EMA encoder's weights, so a retrained
model never reuses stale rows, and each row is keyed by a hash of its preprocessed pixels, so a
changed image is the only one encoded again. A second run over unchanged files reads no image and
runs no encoder at all: the list of files (path, size, mtime) maps straight to its array. Files are
keyed together with the cohort's import options (framing, colour), which change their pixels.

Every file is written to a temporary name and renamed into place, the index (``.json``) last, so
an interrupted run leaves either the previous store or the new one, never half a one.
Under ``torchrun`` (``torch.distributed`` initialised) every process decodes and encodes a share
of the rows and process 0 assembles and writes them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..data.cohort import Cohort, CohortWarning
from ..data.image_cache import default_cache_dir, file_key, import_options_suffix
from ..data.images import PIXEL_DIGEST_BYTES, pixel_digest
from ..model.seegaan import SeeGaan
from ..store import ArrayStore, content_key
from .memo import hash_weights

__all__ = ["Latents", "encode_cohort", "model_digest", "store_dir"]

_COPY_ROWS = 65536  # rows copied from an earlier array at a time: bounds memory at 1M x 512
_FILE_KEY = 20  # bytes of a file key (sha1 of path, size, mtime; and import options, see _file_keys)


def model_digest(model: SeeGaan) -> str:
    """Hash of the EMA encoder's weights and the input resolution: what a latent depends on.

    The compute precision is left out on purpose: latents encoded in bf16 on a GPU are reused by an
    fp32 session on a CPU (they differ by bf16 rounding) rather than re-encoding a whole cohort."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"resolution={model.config.resolution}".encode())
    hash_weights(h, model.encoder_ema)
    return h.hexdigest()


def store_dir(model: SeeGaan, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``model``'s latents live: ``<cache_dir or default_cache_dir()>/latents/<digest>``."""
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return root / "latents" / model_digest(model)


@dataclass(frozen=True, eq=False)
class Latents:
    """Row ``i`` of ``latents`` is the image ``ids[i]``, whose clinical row is ``table.iloc[i]``.

    ``encoded``: rows this call ran the encoder on (0 when everything came from the store).
    ``skipped``: ``(id, path, reason)`` of cohort images that have no latent (missing, unreadable).
    """

    ids: list[str]
    latents: np.ndarray  # [N, w_dim] float32, memory-mapped copy-on-write
    table: pd.DataFrame
    id_column: str
    path: Path
    encoded: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, image_id: str) -> int:
        try:
            return self._rows[str(image_id)]
        except KeyError:
            raise KeyError(f"no latent for image id {image_id!r} in {self.path}") from None

    def latent(self, image_id: str) -> np.ndarray:
        """The ``[w_dim]`` latent of one image, by id."""
        return np.array(self.latents[self.row(image_id)])

    @property
    def _rows(self) -> dict[str, int]:
        if "_row_index" not in self.__dict__:
            object.__setattr__(self, "_row_index", {i: k for k, i in enumerate(self.ids)})
        return self.__dict__["_row_index"]

    def join(self, table: pd.DataFrame, on: str | None = None) -> pd.DataFrame:
        """``table``'s rows in latent order (indexed by id; NaN where it lacks an id).

        ``on``: the table's id column (default: the cohort's id column name)."""
        on = on or self.id_column
        if on not in table.columns:
            raise KeyError(f"table has no id column {on!r}; columns are {list(table.columns)}")
        keys = table[on].astype(str)
        duplicated = keys[keys.duplicated()].unique().tolist()
        if duplicated:
            raise ValueError(f"table column {on!r} has duplicate ids: {duplicated[:10]}")
        if len(self.ids) and not keys.isin(self.ids).any():
            raise ValueError(f"none of the table's {on!r} values match the latents' ids "
                             f"(e.g. {keys.iloc[0]!r} vs {self.ids[0]!r})")
        joined = table.drop(columns=on).set_axis(pd.Index(keys, name=self.id_column)).reindex(self.ids)
        joined.index.name = self.id_column
        return joined

    def frame(self) -> pd.DataFrame:
        """The cohort's table with one column per latent dimension (``w0``, ``w1``, ...), by id: a
        copy in memory (2 GB at 1M x 512), for tools that want one tidy table."""
        own = self.join(self.table)
        dims = pd.DataFrame(np.asarray(self.latents), index=own.index,
                            columns=[f"w{k}" for k in range(self.latents.shape[1])])
        return pd.concat([own, dims], axis=1)


# --------------------------------------------------------------------------- on-disk store

def _as_bytes(rows: np.ndarray) -> list[bytes]:
    width = rows.shape[1]
    flat = np.ascontiguousarray(rows).tobytes()
    return [flat[k:k + width] for k in range(0, len(flat), width)]


class _Store:
    """One model's latents in an :class:`~seegaan_explore.store.ArrayStore`: entry ``<entry>`` (the
    :func:`~seegaan_explore.store.content_key` of its rows' content hashes) is ``<entry>.npy`` the
    latents, ``<entry>.digests.npy`` the rows' content hashes, ``<entry>.files.npy`` their file keys
    and ``<entry>.json`` the index written last; ``files/<content_key of file keys>.json`` maps a
    list of files to its entry."""

    def __init__(self, directory: Path):
        self.store = ArrayStore(directory)
        self.dir = self.store.dir

    def open(self, entry: str, rows: int) -> np.ndarray | None:
        # copy-on-write: torch and numpy may write to it (in memory only); the store never changes
        found = self.store.open(entry, mmap_mode="c")
        if found is None:
            return None
        meta, array = found
        return array if array.ndim == 2 and len(array) == rows == meta["rows"] else None

    def by_files(self, file_keys: list[str]) -> tuple[str, np.ndarray] | None:
        entry = (self.store.index(f"files/{content_key(file_keys)}") or {}).get("entry")
        if not isinstance(entry, str) or Path(entry).name != entry:
            return None
        array = self.open(entry, len(file_keys))
        return None if array is None else (entry, array)

    def known(self) -> tuple[dict[bytes, bytes], dict[bytes, tuple[str, int]]]:
        """File key -> content hash, and content hash -> (array file, row), over complete entries."""
        by_file, by_content = {}, {}
        for _, meta in self.store.entries():
            digests, files = self.store.load(meta.get("digests")), self.store.load(meta.get("files"))
            if digests is None or files is None or digests.ndim != 2 or files.ndim != 2 \
                    or len(digests) != meta["rows"]:
                continue
            digest_bytes = _as_bytes(digests)
            by_file.update(zip(_as_bytes(files), digest_bytes))
            by_content.update((d, (meta["array"], k)) for k, d in enumerate(digest_bytes))
        return by_file, by_content

    def digests(self, entry: str) -> list[bytes] | None:
        """The content hashes of entry ``entry``'s rows (None for an entry written without them)."""
        digests = self.store.load(f"{entry}.digests.npy")
        return None if digests is None or digests.ndim != 2 else _as_bytes(digests)

    def rows_of(self, array_name: str) -> np.ndarray:
        """A known entry's latents, to copy rows from."""
        array = self.store.load(array_name, mmap_mode="r")
        if array is None:
            raise FileNotFoundError(f"{self.dir / array_name}: latent store file disappeared while in use")
        return array

    def commit(self, entry: str, fill, shape: tuple[int, int], digests: np.ndarray, files: np.ndarray,
               file_keys: list[str]) -> np.ndarray:
        """Write entry ``entry`` (``fill(out)`` writes its rows into a new memmap) and its file alias."""
        self.store.write_array(f"{entry}.npy", shape, np.float32, fill)
        self.store.save_array(f"{entry}.digests.npy", digests)
        self.store.save_array(f"{entry}.files.npy", files)
        self.store.write_index(entry, {"rows": shape[0], "w_dim": shape[1], "array": f"{entry}.npy",
                                       "digests": f"{entry}.digests.npy", "files": f"{entry}.files.npy"})
        self.alias(file_keys, entry)
        return self.open(entry, shape[0])

    def alias(self, file_keys: list[str], entry: str) -> None:
        self.store.write_index(f"files/{content_key(file_keys)}", {"entry": entry})


# --------------------------------------------------------------------------- encoding

def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast(value, rank: int, world: int):
    if world == 1:
        return value
    box = [value if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _file_keys(cohort: Cohort) -> list[str]:
    """The store's key of each of the cohort's files: its :func:`~seegaan_explore.data.image_cache.file_key`,
    hashed with the cohort's import options where they are not the defaults (framing pad, colour refuse),
    because one file gives other pixels (framing) or is usable or not (colour) under other options: a
    list of files, or a file's content hash, found under one set of options is never used for another.
    Rows are still shared where the preprocessed pixels are identical (they are keyed by those)."""
    options = import_options_suffix(cohort.framing, cohort.colour)
    keys = []
    for path in cohort.paths:
        key = file_key(path)
        if key is None:
            keys.append(f"missing:{path}")
        else:
            keys.append(hashlib.sha1(f"{key}{options}".encode()).hexdigest() if options else key)
    return keys


def encode_cohort(model: SeeGaan, cohort: Cohort, cache_dir: str | os.PathLike | None = None, *,
                  batch_size: int = 64, progress: bool = True) -> Latents:
    """Latents of every usable image of ``cohort`` under ``model``'s EMA encoder, from the store
    where possible.

    ``cache_dir`` holds both the preprocessed images and the latent store (default
    :func:`~seegaan_explore.data.image_cache.default_cache_dir`). Unreadable images are dropped from
    ``cohort`` (as :meth:`Cohort.images` does) and listed in ``skipped``. Encoding runs on the
    model's device. Under ``torch.distributed`` every process must call this with the same cohort;
    each returns the same result.
    """
    if len(cohort) == 0:
        raise ValueError("the cohort has no images to encode")
    rank, world = _distributed()
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    store = _Store(store_dir(model, root))
    found = store.by_files(_file_keys(cohort))
    if _broadcast(found is not None, rank, world):  # nothing changed: read no image, run no encoder
        entry, array = found or store.by_files(_file_keys(cohort))
        return _result(cohort, array, 0, store.digests(entry) if rank == 0 else None)

    resolution = model.config.resolution
    with warnings.catch_warnings():
        if rank:  # process 0 reports unusable files; the others would repeat it
            warnings.simplefilter("ignore", CohortWarning)
        if world > 1:  # decode in parallel: each process fills the image cache with its share
            cohort.subset(np.arange(rank, len(cohort), world)).images(resolution, root, progress=False)
            dist.barrier()
        plan = None
        if rank == 0:
            images = cohort.images(resolution, root, progress=progress)
            plan = _plan(store, images, _checked_file_keys(cohort))
        entry, todo = _broadcast(None if plan is None else plan[:2], rank, world)
        if rank:  # the full cohort is in the image cache now
            images = cohort.images(resolution, root, progress=False)
    keys = _checked_file_keys(cohort)

    if todo is None:  # every image is in the store already, under another list of files
        if rank == 0:
            store.alias(keys, entry)
    else:
        if rank == 0:
            digests, sources = plan[2:]
            files = np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), np.uint8).reshape(-1, _FILE_KEY)

            def fill(out: np.ndarray) -> None:
                _copy_rows(out, store, sources)
                _check_finite(_encode_rows(model, images, todo, batch_size, progress, rank, world, out), cohort)

            store.commit(entry, fill, (len(keys), model.config.w_dim), digests, files, keys)
        else:
            _encode_rows(model, images, todo, batch_size, False, rank, world, None)
    if world > 1:
        dist.barrier()
    array = store.open(entry, len(keys))
    if array is None:
        raise OSError(f"{store.dir}: latent store entry {entry} could not be read back")
    return _result(cohort, array, 0 if todo is None else len(todo), store.digests(entry) if rank == 0 else None)


def _checked_file_keys(cohort: Cohort) -> list[str]:
    """File keys of a cohort whose unusable images were dropped; every file must still be there."""
    if len(cohort) == 0:
        listed = "; ".join(f"{p}: {r}" for _, p, r in cohort.problems[:5])
        raise ValueError(f"none of the cohort's images could be read ({listed})")
    keys = _file_keys(cohort)
    missing = [p for k, p in zip(keys, cohort.paths) if k.startswith("missing:")]
    if missing:
        raise FileNotFoundError(f"image file disappeared while encoding: {missing[0]}")
    return keys


def _plan(store: _Store, images: np.ndarray, keys: list[str]):
    """(entry name, rows to encode or None, content hashes [N, 16], where each reused row comes from)."""
    by_file, by_content = store.known()
    digests = []
    for k, key in enumerate(keys):
        digest = by_file.get(bytes.fromhex(key))
        if digest is None:  # a new or changed file: hash its pixels
            digest = pixel_digest(images[k])
        digests.append(digest)
    entry = content_key([d.hex() for d in digests])
    digest_array = np.frombuffer(b"".join(digests), np.uint8).reshape(-1, PIXEL_DIGEST_BYTES)
    if store.open(entry, len(keys)) is not None:
        return entry, None, digest_array, {}
    sources = {k: by_content[d] for k, d in enumerate(digests) if d in by_content}
    todo = [k for k in range(len(keys)) if k not in sources]
    return entry, todo, digest_array, sources


def _encode_rows(model: SeeGaan, images: np.ndarray, rows: list[int], batch_size: int, progress: bool,
                 rank: int, world: int, out: np.ndarray | None) -> list[int]:
    """Encode ``images[rows]`` into ``out[rows]`` (process 0's memory-mapped store array); with
    several processes each takes every ``world``-th batch and process 0 gathers them. Returns the
    rows whose latent is not finite."""
    w_dim = model.config.w_dim
    comm_device = model.device if world > 1 and dist.get_backend() == "nccl" else torch.device("cpu")
    step = batch_size * world
    not_finite = []
    with tqdm(total=len(rows), desc="Encoding", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(rows), step):
            mine = rows[start + rank * batch_size: start + (rank + 1) * batch_size]
            if mine:
                x = torch.from_numpy(np.asarray(images[mine], dtype=np.float32))[:, None]
                w = model.encode(x, batch_size=batch_size).float()
            else:
                w = torch.empty(0, w_dim)
            if world == 1:
                parts = [(mine, w)]
            else:
                padded = torch.zeros(batch_size, w_dim, device=comm_device)
                padded[:len(mine)] = w.to(comm_device)
                gathered = [torch.empty_like(padded) for _ in range(world)]
                dist.all_gather(gathered, padded)
                parts = [(rows[start + r * batch_size: start + (r + 1) * batch_size], part)
                         for r, part in enumerate(gathered)]
            if out is not None:
                for part_rows, part in parts:
                    values = part[:len(part_rows)].cpu().numpy()
                    out[part_rows] = values
                    not_finite += [r for r, ok in zip(part_rows, np.isfinite(values).all(axis=1)) if not ok]
            bar.update(min(step, len(rows) - start))
    return not_finite


def _check_finite(rows: list[int], cohort: Cohort) -> None:
    if rows:
        named = [f"{cohort.ids[k]} ({cohort.paths[k]})" for k in rows[:5]]
        raise ValueError(f"the encoder returned NaN or infinite latents for {len(rows)} image(s): "
                         f"{'; '.join(named)}; is the checkpoint damaged?")


def _copy_rows(out: np.ndarray, store: _Store, sources: dict[int, tuple[str, int]]) -> None:
    """Rows already in the store: ``out[dst] = <array>[src]`` for ``sources[dst] = (array, src)``."""
    by_array: dict[str, list[tuple[int, int]]] = {}
    for dst, (name, src) in sources.items():
        by_array.setdefault(name, []).append((dst, src))
    for name, pairs in by_array.items():
        source = store.rows_of(name)
        pairs = np.array(pairs)
        for lo in range(0, len(pairs), _COPY_ROWS):
            chunk = pairs[lo:lo + _COPY_ROWS]
            out[chunk[:, 0]] = source[chunk[:, 1]]


def _result(cohort: Cohort, array: np.ndarray, encoded: int, digests: list[bytes] | None) -> Latents:
    """The :class:`Latents` of ``cohort``; with the rows' content hashes, copies are warned about."""
    if digests is not None:
        cohort.flag_copies(digests)
    return Latents(ids=cohort.ids, latents=array, table=cohort.table, id_column=cohort.id_column,
                   path=Path(array.filename), encoded=encoded, skipped=list(cohort.problems))
