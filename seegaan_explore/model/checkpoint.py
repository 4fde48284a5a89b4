"""Checkpoints: one safetensors file whose metadata holds the JSON config and training state.

Loading reads tensors and JSON only, never pickles, so a checkpoint cannot execute code. Writes go
to a temporary file in the same folder and are moved into place, so a kill mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .. import __version__
from ..fileio import atomic_write
from .config import ModelConfig
from .seegaan import EMA, INFERENCE, SeeGaan

FORMAT = "seegaan-explore/1"
OPTIM_PREFIX = "optimizer."


class CheckpointError(ValueError):
    pass


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    with atomic_write(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_model(path: str | Path, model: SeeGaan, *, ema_only: bool = False, half: bool = False,
               extra: dict | None = None) -> None:
    """Weights + config. ``ema_only`` keeps just what inference needs; ``half`` stores the floating
    weights as float16, half the size, for carrying a run's networks between machines (loading
    casts them back to the model's precision)."""
    state = model.state_dict()
    if ema_only:
        state = {k: v for k, v in state.items() if k.split(".")[0] in INFERENCE}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    metadata = _metadata(model, "inference" if ema_only or not model.has_training_networks else "full", extra)
    atomic_save_tensors(Path(path), state, metadata)


def save_training_checkpoint(path: str | Path, model: SeeGaan, optimizers: dict[str, torch.optim.Optimizer],
                             training_state: dict) -> None:
    """Everything needed to resume: weights, Adam moments, and ``training_state`` (JSON-able)."""
    tensors = dict(model.state_dict())
    optim_meta = {}
    for name, optimizer in optimizers.items():
        sd = optimizer.state_dict()
        for index, param_state in sd["state"].items():
            for key, value in param_state.items():
                tensors[f"{OPTIM_PREFIX}{name}.{index}.{key}"] = torch.as_tensor(value)
        optim_meta[name] = sd["param_groups"]
    extra = {"training_state": training_state, "optimizers": optim_meta}
    atomic_save_tensors(Path(path), tensors, _metadata(model, "training", extra))


def read_header(path: str | Path, expected_format: str = FORMAT, what: str = "checkpoint") -> dict:
    """The decoded JSON metadata of a safetensors file of ``expected_format``, without its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a seegaan-explore {what} (format {raw.get('format')!r})")
    return {k: json.loads(v) for k, v in raw.items() if k != "format"}


def read_metadata(path: str | Path) -> dict:
    """The JSON side of an autoencoder checkpoint (config, version, training state)."""
    return read_header(path)


def load_model(path: str | Path, device: str | torch.device | None = None, *,
               expect: ModelConfig | None = None, with_training_networks: bool | None = None) -> SeeGaan:
    """Build the model the checkpoint describes and load its weights.

    ``expect``: raise a clear error if the checkpoint's architecture or resolution differs.
    ``with_training_networks``: default is whatever the file holds.
    """
    path = Path(path)
    meta = read_metadata(path)
    config = ModelConfig.from_dict(meta["config"])
    if expect is not None and expect != config:
        diffs = {k: (v, getattr(config, k)) for k, v in expect.to_dict().items() if getattr(config, k) != v}
        detail = ", ".join(f"{k}: expected {a}, checkpoint has {b}" for k, (a, b) in diffs.items())
        raise CheckpointError(f"{path}: checkpoint architecture differs ({detail})")
    if with_training_networks is None:
        with_training_networks = meta["kind"] != "inference"
    model = SeeGaan(config, with_training_networks=with_training_networks)
    _load_state(path, model)
    return model.to(device) if device is not None else model


def load_for_training(path: str | Path, seed: int = 0) -> SeeGaan:
    """A model to train further, from any checkpoint. From an inference file (the bundled demo
    weights, or a run's ``model.safetensors``) see :func:`training_copy`."""
    if read_metadata(path)["kind"] != "inference":
        return load_model(path, with_training_networks=True)
    return training_copy(load_model(path, with_training_networks=False), seed)


def training_copy(inference: SeeGaan, seed: int = 0) -> SeeGaan:
    """``inference`` with training networks: the trained networks start as copies of its EMA
    networks and the discriminator starts fresh from ``seed``: fine-tuning needs no training state."""
    torch.manual_seed(seed)
    model = SeeGaan(inference.config, with_training_networks=True).to(inference.device)
    model.load_state_dict(inference.state_dict(), strict=False)
    for name in EMA:
        getattr(model, name.removesuffix("_ema")).load_state_dict(getattr(model, name).state_dict())
    return model


def load_training_checkpoint(path: str | Path, model: SeeGaan,
                             optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore weights and optimizer moments in place; returns the saved training state."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("kind") != "training":
        raise CheckpointError(f"{path}: holds no training state (kind {meta.get('kind')!r})")
    if ModelConfig.from_dict(meta["config"]) != model.config:
        raise CheckpointError(f"{path}: checkpoint architecture differs from the model being trained")
    tensors = _load_state(path, model)
    device = model.device
    for name, optimizer in optimizers.items():
        prefix = f"{OPTIM_PREFIX}{name}."
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, field = key[len(prefix):].split(".", 1)
                state.setdefault(int(index), {})[field] = value if field == "step" else value.to(device)
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizers"][name]})
    return meta["training_state"]


def _metadata(model: SeeGaan, kind: str, extra: dict | None) -> dict[str, str]:
    values = {"config": model.config.to_dict(), "version": __version__, "kind": kind, **(extra or {})}
    return {"format": FORMAT, **{k: json.dumps(v) for k, v in values.items()}}


def _load_state(path: Path, model: SeeGaan) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing and all(k.startswith("latent_prior.") for k in missing):  # written before the prior existed
        tensors = {**tensors, **{k: expected[k] for k in missing}}
        missing = []
    if missing:
        raise CheckpointError(f"{path}: missing {len(missing)} weights, e.g. {missing[:3]}")
    for key, ref in expected.items():
        if tuple(tensors[key].shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: weight {key} has shape {list(tensors[key].shape)}, "
                                  f"the model expects {list(ref.shape)}")
    model.load_state_dict({k: tensors[k] for k in expected})
    return tensors
