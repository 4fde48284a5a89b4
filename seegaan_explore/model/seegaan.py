"""The SEE-GAAN autoencoder: the four networks, their EMA copies, and the inference calls.

Inference (``encode``, ``decode``, ``sample``) always uses the EMA copies, as the reference does;
training updates the live networks and calls ``update_ema`` after each step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..device import autocast, compute_dtype
from .config import ModelConfig
from .networks import Discriminator, Encoder, Generator, MappingNetwork, count_parameters

TRAINED = ("mapping", "generator", "encoder", "discriminator")
EMA = ("mapping_ema", "generator_ema", "encoder_ema")
INFERENCE = (*EMA, "latent_prior")  # what an inference-only checkpoint keeps


class LatentPrior(nn.Module):
    """A Gaussian fitted to the encoder's latents of the training images (ex-post density
    estimation, as in Ghosh et al., ICLR 2020). Decoding its samples gives images from the region
    of w the generator was trained to decode, without an adversarial stage for the mapping network."""

    def __init__(self, w_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(w_dim))
        self.register_buffer("scale_tril", torch.zeros(w_dim, w_dim))

    @property
    def fitted(self) -> bool:
        return bool(self.scale_tril.diagonal().gt(0).all())

    @torch.no_grad()
    def fit(self, w: torch.Tensor) -> None:
        """Mean and Cholesky factor of the covariance of latents ``w`` [N, w_dim] (N > w_dim is best;
        a small ridge keeps a rank-deficient covariance positive definite)."""
        w = w.detach().double().cpu()
        if w.ndim != 2 or w.shape[1] != self.mean.numel() or len(w) < 2:
            raise ValueError(f"fitting the latent prior needs [N >= 2, {self.mean.numel()}] latents, "
                             f"got {list(w.shape)}")
        covariance = torch.cov(w.T)
        ridge = 1e-4 * covariance.diagonal().mean().clamp_min(1e-12)
        tril = torch.linalg.cholesky(covariance + ridge * torch.eye(w.shape[1], dtype=torch.float64))
        self.mean.copy_(w.mean(0))
        self.scale_tril.copy_(tril)

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Latents for standard normal ``z`` [n, w_dim]."""
        return self.mean + z @ self.scale_tril.T


class SeeGaan(nn.Module):
    """``with_training_networks=False`` builds only the EMA networks: what inference and the
    bundled demo weights need (about half the size)."""

    def __init__(self, config: ModelConfig, *, with_training_networks: bool = True):
        super().__init__()
        self.config = config
        self.precision = "auto"
        self.mapping_ema = MappingNetwork(config)
        self.generator_ema = Generator(config)
        self.encoder_ema = Encoder(config)
        if with_training_networks:
            self.mapping = copy.deepcopy(self.mapping_ema)
            self.generator = copy.deepcopy(self.generator_ema)
            self.encoder = copy.deepcopy(self.encoder_ema)
            self.discriminator = Discriminator(config)
        self.latent_prior = LatentPrior(config.w_dim)
        for name in EMA:
            getattr(self, name).requires_grad_(False).eval()

    @property
    def has_training_networks(self) -> bool:
        return hasattr(self, "discriminator")

    @property
    def device(self) -> torch.device:
        return self.generator_ema.const.device

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per network (EMA copies have the same counts as the live ones)."""
        return {
            "mapping": count_parameters(self.mapping_ema),
            "generator": count_parameters(self.generator_ema),
            "encoder": count_parameters(self.encoder_ema),
            "discriminator": count_parameters(Discriminator(self.config))
            if not self.has_training_networks else count_parameters(self.discriminator),
        }

    @torch.no_grad()
    def update_ema(self, beta: float = 0.999) -> None:
        for live, ema in (("mapping", "mapping_ema"), ("generator", "generator_ema"), ("encoder", "encoder_ema")):
            for p_ema, p in zip(getattr(self, ema).parameters(), getattr(self, live).parameters()):
                p_ema.lerp_(p.detach(), 1.0 - beta)

    def _compute_dtype(self) -> torch.dtype:
        return compute_dtype(self.device, self.precision)

    @torch.inference_mode()
    def encode(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Images [B, 1, R, R] in [-1, 1], any float dtype (a cohort's cache holds float16) -> w [B, w_dim]
        (float32, on the model's device)."""
        self._check_images(images)
        dtype = self._compute_dtype()
        out = []
        with autocast(self.device, dtype):
            for chunk in images.split(batch_size):
                out.append(self.encoder_ema(chunk.to(self.device, torch.float32, non_blocking=True)).float())
        return torch.cat(out)

    @torch.inference_mode()
    def decode(self, w: torch.Tensor, noise: list[torch.Tensor] | int | None = 0,
               batch_size: int = 16) -> torch.Tensor:
        """w [B, w_dim] -> images [B, 1, R, R] float32 in [-1, 1].

        ``noise``: an int seeds fixed noise shared by every image (the default, so that frames of
        a traversal differ only through w); a list of maps from ``Generator.make_noise``; None
        draws fresh noise.
        """
        w = w.to(self.device, torch.float32)
        if isinstance(noise, int):
            noise = self.generator_ema.make_noise(noise, device=self.device)
        dtype = self._compute_dtype()
        out = []
        with autocast(self.device, dtype):
            for chunk in w.split(batch_size):
                out.append(self.generator_ema(chunk, noise).float().contiguous())
        return torch.cat(out)

    @torch.inference_mode()
    def sample_w(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` random latents: from the latent prior where it has been fitted (see
        :meth:`fit_latent_prior`), else the mapping network applied to Gaussian z."""
        gen = torch.Generator().manual_seed(int(seed))
        if self.latent_prior.fitted:
            return self.latent_prior.sample(torch.randn(n, self.config.w_dim, generator=gen).to(self.device))
        z = torch.randn(n, self.config.z_dim, generator=gen).to(self.device)
        return self.mapping_ema(z)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n random images from the generator (latents from :meth:`sample_w`), with fixed noise."""
        return self.decode(self.sample_w(n, seed), noise=seed)

    def fit_latent_prior(self, images: torch.Tensor, batch_size: int = 64) -> None:
        """Fit the latent prior to the EMA encoder's latents of ``images`` [N, 1, R, R]."""
        self.latent_prior.fit(self.encode(images, batch_size=batch_size))

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def _check_images(self, images: torch.Tensor) -> None:
        r, c = self.config.resolution, self.config.img_channels
        if images.dim() != 4 or tuple(images.shape[1:]) != (c, r, r):
            raise ValueError(f"expected images of shape [B, {c}, {r}, {r}], got {list(images.shape)}")
