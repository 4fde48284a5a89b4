"""Train the attribute CNN (the model whose attributions and traversals are explored)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from ..device import autocast, compute_dtype, default_device
from ..model.cnn import CnnConfig, RadiographCNN
from ..model.oracle import Oracle, OracleConfig, factor_targets
from .augment import Augmentation


def evaluate_predictions(task: str, predicted: np.ndarray, target: np.ndarray,
                         auc_threshold: float | None = None) -> dict:
    """Held-out quality: Pearson r and R^2 (regression) or AUC (binary). ``auc_threshold`` adds
    the AUC of the regression output for ``target > threshold`` (thresholds in target units)."""
    if task == "binary":
        return {"auc": float(roc_auc_score(target > 0.5, predicted))}
    r = float(pearsonr(predicted, target)[0])
    ss_res = float(np.square(predicted - target).sum())
    ss_tot = float(np.square(target - target.mean()).sum())
    out = {"pearson_r": r, "r2": 1 - ss_res / ss_tot}
    if auc_threshold is not None:
        labels = target > auc_threshold
        if 0 < labels.sum() < len(labels):
            out["auc_at_threshold"] = float(roc_auc_score(labels, predicted))
    return out


def fit(model: torch.nn.Module, images, targets: torch.Tensor, loss_fn, *, epochs: int, batch_size: int, lr: float,
        seed: int, device: str | None, precision: str, desc: str, progress: bool = True) -> torch.nn.Module:
    """Supervised training of an image model on ``images`` [N, R, R] (any array or memmap) with
    AdamW, a one-cycle schedule and light augmentation; shared by the attribute CNN and the oracle."""
    device = default_device(device)
    dtype = compute_dtype(device, precision)
    if dtype == torch.float16:  # would need loss scaling; GPUs without bf16 train in fp32
        dtype = torch.float32
    model.to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    augment = Augmentation(probability=0.5, brightness=0.1)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", disable=not progress)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(images))
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start:start + batch_size])
            x = torch.from_numpy(np.asarray(images[idx], dtype=np.float32))[:, None]
            x = Augmentation.apply(x, augment.draw(len(idx), gen)).to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                loss = loss_fn(model(x).float(), targets[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def train_cnn(train_images, train_targets, val_images, val_targets, config: CnnConfig, *, epochs: int = 8,
              batch_size: int = 32, lr: float = 2e-3, seed: int = 0, device: str | None = None,
              precision: str = "auto", auc_threshold: float | None = None,
              progress: bool = True) -> tuple[RadiographCNN, dict]:
    """Images [N, R, R] in [-1, 1]; targets [N] (0/1 for binary). Returns the model and held-out metrics."""
    train_targets = np.asarray(train_targets, dtype=np.float64)
    if config.task == "regression":
        config = dataclasses.replace(config, target_mean=float(train_targets.mean()),
                                     target_std=float(train_targets.std() or 1.0))
    torch.manual_seed(seed)
    model = RadiographCNN(config)
    y = torch.tensor((train_targets - config.target_mean) / config.target_std, dtype=torch.float32)
    loss_fn = F.binary_cross_entropy_with_logits if config.task == "binary" else F.mse_loss
    fit(model, train_images, y, loss_fn, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
        precision=precision, desc=f"train CNN on {config.attribute or 'target'}", progress=progress)
    val_x = torch.from_numpy(np.asarray(val_images, dtype=np.float32))[:, None]
    predicted = model.predict(val_x).cpu().numpy().astype(np.float64)
    metrics = evaluate_predictions(config.task, predicted, np.asarray(val_targets, dtype=np.float64), auc_threshold)
    metrics["n_train"], metrics["n_val"] = len(train_images), len(val_images)
    return model.cpu(), metrics


def train_oracle(train_images, train_table, val_images, val_table, config: OracleConfig | None = None, *,
                 epochs: int = 8, batch_size: int = 32, lr: float = 2e-3, seed: int = 1, device: str | None = None,
                 precision: str = "auto", progress: bool = True) -> tuple[Oracle, dict]:
    """The oracle on a phantom cohort: every factor at once (MSE on standardised values, BCE on
    binary ones). Held-out metrics per factor: Pearson r and R^2, or AUC."""
    config = config or OracleConfig()
    train_y, val_y = factor_targets(train_table, config.factors), factor_targets(val_table, config.factors)
    binary = np.array([k == "binary" for k in config.kinds])
    means = np.where(binary, 0.0, train_y.mean().to_numpy())
    stds = np.where(binary, 1.0, train_y.std().replace(0, 1).to_numpy())
    config = dataclasses.replace(config, means=tuple(map(float, means)), stds=tuple(map(float, stds)))
    torch.manual_seed(seed)
    model = Oracle(config)
    y = torch.tensor((train_y.to_numpy() - means) / stds, dtype=torch.float32)
    is_binary = torch.from_numpy(binary)

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = (out - target).square()
        bce = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        return torch.where(is_binary.to(out.device), bce, mse).mean()

    fit(model, train_images, y, loss_fn, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
        precision=precision, desc="train oracle", progress=progress)
    predicted = model.predict(torch.from_numpy(np.asarray(val_images, dtype=np.float32))[:, None])
    metrics = {name: evaluate_predictions(kind, predicted[name].to_numpy(np.float64), val_y[name].to_numpy())
               for name, kind in zip(config.factors, config.kinds)}
    metrics["n_train"], metrics["n_val"] = len(train_images), len(val_images)
    return model.cpu(), metrics
