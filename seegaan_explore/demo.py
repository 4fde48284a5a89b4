"""The built-in default: the bundled demo models and a held-out phantom cohort, offline.

The weights in ``seegaan_explore/weights`` were trained on phantoms of seed 0 (see
``manifest.json`` there for the commands, steps, wall time and held-out metrics). The demo cohort is
drawn from seed 1, individuals none of the models saw, written once into the cache folder and
encoded once into the latent store; later calls read both back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data.cohort import Cohort
from .data.image_cache import default_cache_dir
from .explore.dictionary import PHANTOM_DICTIONARY
from .explore.latents import encode_cohort
from .fileio import atomic_write
from .model.checkpoint import load_model
from .model.cnn import RadiographCNN, load_cnn
from .model.oracle import Oracle, load_oracle
from .model.seegaan import SeeGaan
from .phantoms import SCM_VERSION, write_cohort

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: The bundled files by their manifest names. ``ruler``: the randomized-trial oracle, ``evaluate``'s
#: documented ruler of leakage (``--ruler randomized-trial``), shipped because the same training
#: command on another CPU makes an oracle that reads differently.
FILES = {"autoencoder": "demo-seegaan.safetensors", "cnn": "demo-cnn-ntprobnp.safetensors",
         "oracle": "demo-oracle.safetensors", "ruler": "demo-oracle-trial.safetensors"}
DEMO_SEED = 1  # the models were trained on seed 0
DEMO_SIZE = 400


def manifest(weights_dir: str | os.PathLike = WEIGHTS_DIR) -> dict:
    """How the bundled weights were made: commands, steps, wall time, metrics, phantom version."""
    path = Path(weights_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the demo weights' manifest is missing (a broken installation?)")
    return json.loads(path.read_text())


@dataclass
class Demo:
    model: SeeGaan
    cnn: RadiographCNN
    oracle: Oracle
    cohort: Cohort
    latents: np.ndarray  # [N, w_dim], rows aligned with ``table``
    table: pd.DataFrame
    images: np.ndarray  # [N, R, R] in [-1, 1]
    cache_dir: str | os.PathLike | None = None  # where it was cached (None: the package's cache)

    def explorer_kwargs(self) -> dict:
        """The arguments of :class:`seegaan_explore.ui.explorer.Explorer`: the models, the cohort, the
        phantoms' data dictionary and a note that the cohort is synthetic."""
        return {"model": self.model, "latents": self.latents, "table": self.table, "cnn": self.cnn,
                "oracle": self.oracle, "images": self.images, "dictionary": PHANTOM_DICTIONARY,
                "cache_dir": self.cache_dir, "note": "a synthetic cohort of phantom radiographs, not patient data"}


def demo_cohort(n: int = DEMO_SIZE, size: int = 128, cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> Cohort:
    """The held-out phantom cohort, written on first use (a few seconds) and reused after."""
    root = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / "demo-cohort"
    folder = root / f"{SCM_VERSION}-seed{DEMO_SEED}-n{n}-{size}px"
    table = folder / "phantoms.csv"
    if not table.is_file():  # the table is written last, so its presence means a complete cohort
        write_cohort(folder, n=n, size=size, seed=DEMO_SEED, progress=progress)
    return Cohort.from_table(table, patient_column="patient_id")


def load_demo(cache_dir: str | os.PathLike | None = None, *, n: int = DEMO_SIZE, device: str | None = None,
              weights_dir: str | os.PathLike = WEIGHTS_DIR, progress: bool = False) -> Demo:
    """The bundled autoencoder, CNN and oracle with the demo cohort encoded: what the dashboard shows."""
    weights_dir = Path(weights_dir)
    model = load_model(weights_dir / FILES["autoencoder"], device=device).eval()
    cnn = load_cnn(weights_dir / FILES["cnn"], device=device)
    oracle = load_oracle(weights_dir / FILES["oracle"], device=device)
    cohort = demo_cohort(n, model.config.resolution, cache_dir, progress)
    latents = encode_cohort(model, cohort, cache_dir, progress=progress)
    table = latents.join(cohort.table).reset_index()
    images = np.asarray(cohort.images(model.config.resolution, cache_dir, progress=progress))
    return Demo(model, cnn, oracle, cohort, np.asarray(latents.latents), table, images, cache_dir)


def write_bundle(autoencoder: str | os.PathLike, cnn: str | os.PathLike, oracle: str | os.PathLike,
                 out_dir: str | os.PathLike = WEIGHTS_DIR, notes: dict | None = None) -> dict:
    """Copy trained checkpoints into the package as half-precision inference weights (half the
    size, no measurable change at 8-bit display) and write the manifest; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(autoencoder, with_training_networks=False)
    entries = {"autoencoder": _write_half(Path(autoencoder), out_dir / FILES["autoencoder"], model.state_dict(),
                                          kind="inference")}
    entries.update({name: _write_half(Path(source), out_dir / FILES[name]) for name, source in
                    (("cnn", cnn), ("oracle", oracle))})
    info = {"phantoms": SCM_VERSION, "trained_on_seed": 0, "demo_seed": DEMO_SEED, "files": entries,
            **(notes or {})}
    _write_manifest(out_dir, info)
    return info


def add_ruler(oracle: str | os.PathLike, command: str, out_dir: str | os.PathLike = WEIGHTS_DIR) -> dict:
    """Add the randomized-trial oracle to the bundle in half precision, with the ``command`` that
    made it in the manifest; returns the manifest."""
    out_dir = Path(out_dir)
    info = manifest(out_dir)
    info["files"]["ruler"] = _write_half(Path(oracle), out_dir / FILES["ruler"])
    info.setdefault("commands", {})["ruler"] = command
    _write_manifest(out_dir, info)
    return info


def _write_half(source: Path, target: Path, state: dict | None = None, kind: str | None = None) -> dict:
    """``source``'s weights (or ``state``) in float16 at ``target``, its metadata kept; its manifest entry."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(str(source)) if state is None else state
    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
    if kind is not None:
        metadata = dict(metadata, kind=json.dumps(kind))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    with atomic_write(target) as tmp:
        save_file(half, str(tmp), metadata=metadata)
    return {"file": target.name, "bytes": target.stat().st_size,
            "metadata": {k: json.loads(v) for k, v in metadata.items() if k != "format"}}


def _write_manifest(out_dir: Path, info: dict) -> None:
    with atomic_write(out_dir / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2) + "\n")
