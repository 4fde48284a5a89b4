"""The training loop: one step = generator/encoder phase, discriminator phase, EMA update.

Every random draw of a step (batch indices, z, style-mixing cut, noise maps, augmentation) comes
from a generator seeded by (seed, step) for the whole global batch, and each process takes its
slice. So a run resumed from a checkpoint replays exactly the steps it would have run, and N
processes compute what one process would with the same global batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..device import autocast, compute_dtype
from ..fileio import atomic_write
from ..metrics import psnr_db
from ..model.checkpoint import load_training_checkpoint, save_model, save_training_checkpoint
from ..model.seegaan import SeeGaan
from . import losses
from .augment import Augmentation
from .distributed import ProcessGroup, average_gradients, broadcast_parameters, global_mean
from .report import save_sample_grid

CHECKPOINT_NAME = "checkpoint-last.safetensors"
MODEL_NAME = "model.safetensors"
METRICS_NAME = "metrics.jsonl"
PRIOR_IMAGES = 2048  # training images the latent prior is fitted on (w_dim is at most 512)
GRID_IMAGES = 8  # held-out images shown in a sample grid


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16  # global, split across processes
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0
    r1_interval: int = 4
    style_mixing: float = 0.9
    reconstruction_weight: float = 1.0
    perceptual_weight: float = 0.01
    perceptual: str = "discriminator"
    encoder_adversarial_weight: float = 0.1
    latent_consistency_weight: float = 1.0
    latent_consistency_interval: int = 4
    adversarial_start: int = 0  # reconstruction-only steps before the GAN terms switch on
    # steps from adversarial_start on in which only the discriminator plays: one that starts untrained
    # beside trained networks first learns real from fake, instead of pulling them about
    discriminator_warmup: int = 0
    # the warm-up's own optimiser and augmentation (None: as after it): reconstruction alone prefers
    # momentum and unaugmented images; the GAN stage keeps betas and augmentation
    warmup_betas: tuple[float, float] | None = None
    warmup_augment_probability: float | None = None
    lr_decay_start: int | None = None  # cosine decay to 0.1 x lr from this step to the last
    ema_beta: float = 0.999
    augment: Augmentation = field(default_factory=Augmentation)
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 10

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["augment"] = Augmentation(**values.get("augment", {}))
        values["betas"] = tuple(values.get("betas", (0.0, 0.99)))
        if values.get("warmup_betas") is not None:
            values["warmup_betas"] = tuple(values["warmup_betas"])
        return cls(**values)

    def stage(self, step: int) -> tuple[tuple[float, float], float]:
        """Adam's betas and the augmentation probability at ``step``: the warm-up's before
        :attr:`adversarial_start` where given, else the run's."""
        warming = step < self.adversarial_start
        betas = self.warmup_betas if warming and self.warmup_betas is not None else self.betas
        augment = (self.warmup_augment_probability if warming and self.warmup_augment_probability is not None
                   else self.augment.probability)
        return tuple(betas), augment


class Trainer:
    """Trains ``model`` on ``images`` ([N, R, R] or [N, 1, R, R], values in [-1, 1], any array or
    memmap) and writes checkpoints, sample grids and a metrics log into ``run_dir``.

    ``val_images``: the held-out set. Every one of them is reconstructed at each evaluation (every
    ``sample_every`` steps, and before the first step), and the mean PSNR is logged as ``val_psnr_db``
    with their number as ``val_images``; the first 8 are shown in the sample grids. ``held_out``: a
    JSON-able description of that set (which images, how it was drawn), saved in every checkpoint's
    training state so that a resumed run can tell whether it is evaluated on the same images.
    """

    def __init__(self, model: SeeGaan, images, run_dir: str | Path, config: TrainConfig | None = None, *,
                 val_images=None, held_out: dict | None = None, group: ProcessGroup | None = None):
        if not model.has_training_networks:
            raise ValueError("the model has no training networks (an inference-only checkpoint)")
        group = group or ProcessGroup()
        self.model = model.to(group.device)
        self.images = images
        self.num_images = len(images)
        if self.num_images == 0:
            raise ValueError("no training images")
        self.run_dir = Path(run_dir)
        self.config = config = config or TrainConfig()
        self.group = group
        self.device = group.device
        self.dtype = compute_dtype(self.device, config.precision)
        if self.dtype == torch.float16:  # fp16 would need loss scaling; GPUs without bf16 train in fp32
            self.dtype = torch.float32
        self.perceptual = losses.make_perceptual(config.perceptual).to(self.device)
        if val_images is not None and len(val_images) == 0:
            val_images = None
        self.val_images = None if val_images is None else self._to_tensor(np.asarray(val_images))
        self.held_out = held_out
        self.resumed_state: dict | None = None  # the training state of the checkpoint resumed from
        opt = dict(lr=config.lr, betas=config.betas, eps=1e-8)
        self.optimizers = {
            "generator": torch.optim.Adam(list(model.mapping.parameters()) + list(model.generator.parameters()), **opt),
            "encoder": torch.optim.Adam(model.encoder.parameters(), **opt),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), **opt),
        }
        self.step = 0
        self._permutations: dict[int, np.ndarray] = {}

    # --- randomness and data -------------------------------------------------------------
    def _batch_indices(self, step: int) -> np.ndarray:
        """Global batch of a step: walks a fresh permutation of the data every epoch."""
        b, n = self.config.batch_size, self.num_images
        positions = np.arange(step * b, (step + 1) * b)
        out = np.empty(b, dtype=np.int64)
        for epoch in np.unique(positions // n):
            if epoch not in self._permutations:
                self._permutations = {epoch: np.random.default_rng([self.config.seed, int(epoch)]).permutation(n)}
            sel = positions // n == epoch
            out[sel] = self._permutations[epoch][positions[sel] % n]
        return out

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if t.dim() == 3:
            t = t[:, None]
        return t.to(self.device)

    def _draw(self, step: int) -> dict:
        cfg, model = self.config, self.model
        b = cfg.batch_size
        local = self.group.local_slice(b)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        z_dim = model.config.z_dim
        num_ws = model.generator.num_ws
        draws = {
            "z": torch.randn(b, z_dim, generator=gen),
            "z_mix": torch.randn(b, z_dim, generator=gen),
            "cut": torch.where(torch.rand(b, generator=gen) < cfg.style_mixing,
                               torch.randint(1, num_ws, (b,), generator=gen), torch.full((b,), num_ws)),
            "augment": cfg.augment.draw(b, gen, probability=cfg.stage(step)[1]),
        }
        res = model.generator.noise_resolutions()
        draws["noise_fake"] = [torch.randn(b, 1, r, r, generator=gen) for r in res]
        draws["noise_rec"] = [torch.randn(b, 1, r, r, generator=gen) for r in res]
        out = {k: ([t[local].to(self.device) for t in v] if isinstance(v, list) else v[local].to(self.device))
               for k, v in draws.items()}
        out["real"] = self._to_tensor(self.images[self._batch_indices(step)[local]])
        return out

    # --- one step ------------------------------------------------------------------------
    def _set_trainable(self, *names: str) -> None:
        for name in ("mapping", "generator", "encoder", "discriminator"):
            getattr(self.model, name).requires_grad_(name in names)

    def _mixed_ws(self, d: dict) -> torch.Tensor:
        m = self.model
        w1, w2 = m.mapping(d["z"]), m.mapping(d["z_mix"])
        layer = torch.arange(m.generator.num_ws, device=self.device)[None, :, None]
        return torch.where(layer < d["cut"][:, None, None], w1[:, None], w2[:, None]), w1

    def train_step(self) -> dict:
        cfg, m, step = self.config, self.model, self.step
        d = self._draw(step)
        real = Augmentation.apply(d["real"], d["augment"])
        adversarial = step >= cfg.adversarial_start
        generator_adversarial = step >= cfg.adversarial_start + cfg.discriminator_warmup
        lc_now = cfg.latent_consistency_weight > 0 and step % cfg.latent_consistency_interval == 0
        metrics: dict[str, float] = {}
        self._set_lr(step)
        self._set_betas(cfg.stage(step)[0])

        # Generator + encoder phase: one backward for reconstruction, perceptual, adversarial, consistency.
        self._set_trainable("mapping", "generator", "encoder")
        with autocast(self.device, self.dtype):
            w_enc = m.encoder(real)
            rec = m.generator(w_enc, d["noise_rec"])
            loss_rec = (rec.float() - real).square().mean()
            loss = cfg.reconstruction_weight * loss_rec
            if cfg.perceptual_weight > 0:
                loss_perc = self.perceptual(m.discriminator, real, rec)
                loss = loss + cfg.perceptual_weight * loss_perc
                metrics["loss_perceptual"] = loss_perc.item()
            w_map = None
            if generator_adversarial:
                ws, w_map = self._mixed_ws(d)
                fake = m.generator(ws, d["noise_fake"])
                loss_g = losses.generator_adversarial(m.discriminator(fake).float())
                loss_e = losses.generator_adversarial(m.discriminator(rec).float())
                loss = loss + loss_g + cfg.encoder_adversarial_weight * loss_e
                metrics.update(loss_g=loss_g.item(), loss_encoder_adv=loss_e.item())
            if lc_now:
                if w_map is None:
                    w_map = m.mapping(d["z"])
                lc = (global_mean(w_map.float().square().mean(), self.group)
                      - global_mean(w_enc.float().square().mean(), self.group)).square()
                loss = loss + cfg.latent_consistency_weight * lc
                metrics["loss_latent_consistency"] = lc.item()
        for name in ("generator", "encoder"):
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in ("generator", "encoder"):
            average_gradients(self.optimizers[name].param_groups[0]["params"], self.group)
            self.optimizers[name].step()
        metrics["loss_reconstruction"] = loss_rec.item()
        metrics["train_psnr_db"] = psnr_db(rec.detach(), real)

        # Discriminator phase (after warm-up), with lazy R1 on real images.
        if adversarial:
            self._set_trainable("discriminator")
            if not generator_adversarial:  # the discriminator's warm-up: the generator drew no fakes above
                with torch.no_grad(), autocast(self.device, self.dtype):
                    fake = m.generator(self._mixed_ws(d)[0], d["noise_fake"])
            with autocast(self.device, self.dtype):
                logits_real = m.discriminator(real).float()
                logits_fake = torch.cat([m.discriminator(fake.detach()), m.discriminator(rec.detach())]).float()
                loss_d = losses.discriminator_adversarial(logits_real, logits_fake)
            metrics["loss_d"] = loss_d.item()
            if step % cfg.r1_interval == 0:
                r1 = losses.r1_penalty(m.discriminator, real)
                loss_d = loss_d + (cfg.r1_gamma / 2) * r1 * cfg.r1_interval
                metrics["r1"] = r1.item()
            self.optimizers["discriminator"].zero_grad(set_to_none=True)
            loss_d.backward()
            average_gradients(self.optimizers["discriminator"].param_groups[0]["params"], self.group)
            self.optimizers["discriminator"].step()
        self._set_trainable()

        # EMA with a ramp-up, so short runs are not dominated by the random initial weights.
        m.update_ema(min(cfg.ema_beta, (1 + step) / (10 + step)))
        self.step += 1
        return metrics

    def _set_betas(self, betas: tuple[float, float]) -> None:
        """This run's betas for the stage, not the checkpoint's (set every step, as the learning rate)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["betas"] = betas

    def _set_lr(self, step: int) -> None:
        cfg = self.config
        lr = cfg.lr
        if cfg.lr_decay_start is not None and step >= cfg.lr_decay_start:
            span = max(1, cfg.steps - cfg.lr_decay_start)
            t = min(1.0, (step - cfg.lr_decay_start) / span)
            lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    # --- run, checkpoint, resume ---------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def resume(self) -> bool:
        """Continue from ``run_dir``'s last checkpoint, if any. Returns whether it did."""
        if not self.checkpoint_path.exists():
            broadcast_parameters(self.model, self.group)
            self._truncate_metrics(-1)  # lines of a run killed before its first checkpoint
            return False
        state = load_training_checkpoint(self.checkpoint_path, self.model, self.optimizers)
        self.resumed_state = state
        self.step = int(state["step"])
        self._set_betas(self.config.stage(self.step)[0])  # this run's, not the checkpoint's
        self._truncate_metrics(self.step)
        return True

    def changes_since_checkpoint(self) -> list[str]:
        """After :meth:`resume`: one line for each way this run differs from the run that wrote the
        checkpoint (its length, schedule, optimiser, held-out set). Empty when nothing changed or
        nothing was resumed. The command's values are the ones used from here on."""
        state = self.resumed_state
        if state is None:
            return []
        lines = []
        saved = state.get("train_config", {})
        current = self.config.to_dict()
        step, steps = self.step, self.config.steps
        if "steps" in saved and saved["steps"] != steps:
            lines.append(f"--steps changed from {saved['steps']} to {steps}: the run now ends at step {steps}")
        if step >= steps:
            lines.append(f"the checkpoint is at step {step} and --steps is {steps}: nothing is left to train "
                         f"(raise --steps to train on)")
        names = {"adversarial_start": "--adversarial-start", "discriminator_warmup": "--discriminator-warmup",
                 "lr_decay_start": "--lr-decay-start",
                 "lr": "--lr", "betas": "--adam-betas", "batch_size": "--batch-size", "seed": "--seed",
                 "perceptual": "--perceptual", "perceptual_weight": "--perceptual-weight",
                 "encoder_adversarial_weight": "--encoder-adversarial-weight", "r1_gamma": "--r1-gamma",
                 "precision": "--precision", "augment": "--augment-probability",
                 "warmup_betas": "--warmup-adam-betas", "warmup_augment_probability": "--warmup-augment-probability"}
        for key, flag in names.items():
            if key not in saved:
                continue
            old, new = saved[key], current[key]
            if key in ("betas", "warmup_betas"):
                old, new = (None if v is None else list(v) for v in (old, new))
            if key == "augment":
                old, new = old.get("probability"), new["probability"]
            if old != new:
                lines.append(f"{flag} changed from {flag_value(old)} to {flag_value(new)} from step {step} on")
        before = state.get("held_out")
        if before is not None and self.held_out is not None and before.get("ids") != self.held_out.get("ids"):
            lines.append(f"the held-out set differs from the one the run started with ({len(before.get('ids', []))} "
                         f"images then, {len(self.held_out.get('ids', []))} now): val_psnr_db before and after "
                         f"step {step} is not measured on the same images")
        return lines

    def save(self) -> None:
        if not self.group.is_main:
            return
        state = {"step": self.step, "train_config": self.config.to_dict()}
        if self.held_out is not None:
            state["held_out"] = self.held_out
        save_training_checkpoint(self.checkpoint_path, self.model, self.optimizers, state)
        save_model(self.run_dir / MODEL_NAME, self.model, ema_only=True, extra={"step": self.step})

    def evaluate(self) -> dict:
        """Held-out reconstruction PSNR of the EMA networks, the latent prior refitted to the EMA
        encoder (on a fixed subset of the training images), and a sample grid PNG."""
        m = self.model
        out: dict[str, float] = {}
        fit_on = np.linspace(0, self.num_images - 1, min(self.num_images, PRIOR_IMAGES)).astype(np.int64)
        m.fit_latent_prior(self._to_tensor(np.stack([np.asarray(self.images[i]) for i in fit_on])))
        shown = recs = None
        if self.val_images is not None:
            recs = m.reconstruct(self.val_images)  # encode and decode work in batches
            out["val_psnr_db"] = psnr_db(recs, self.val_images)
            out["val_images"] = len(self.val_images)
            shown, recs = self.val_images[:GRID_IMAGES], recs[:GRID_IMAGES]
        if self.group.is_main:
            save_sample_grid(self.run_dir / f"samples-{self.step:07d}.png", shown, recs,
                             m.sample(8, seed=self.config.seed))
        return out

    def run(self, progress: bool = True) -> dict:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        last: dict = {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step",
                   disable=not (progress and self.group.is_main))
        if self.step == 0 and self.val_images is not None and cfg.steps > 0:
            last = self.evaluate()  # where the run starts from: what a fine-tuned checkpoint gives as it is
            self._log({"step": 0, **last})
        while self.step < cfg.steps:
            t0 = time.perf_counter()
            metrics = self.train_step()
            metrics["sec_per_step"] = time.perf_counter() - t0
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                metrics.update(self.evaluate())
            if self.step % cfg.log_every == 0 or self.step == cfg.steps or "val_psnr_db" in metrics:
                self._log({"step": self.step, **metrics})
                bar.set_postfix(rec=f"{metrics['loss_reconstruction']:.4f}", psnr=f"{metrics['train_psnr_db']:.1f}")
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save()
            bar.update(1)
            last = metrics
        bar.close()
        return last

    def _log(self, record: dict) -> None:
        if self.group.is_main:
            with open(self.run_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be replayed)."""
        path = self.run_dir / METRICS_NAME
        if not self.group.is_main or not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        with atomic_write(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))


def flag_value(value) -> str:
    """An option's value as it is typed: ``0.9 0.99``, ``0.2``, ``none``."""
    if isinstance(value, (list, tuple)):
        return " ".join(flag_value(v) for v in value)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
