"""The oracle: an independent reader of every phantom factor from the image, to score traversals.

A traversal is judged by measuring the factors on its decoded frames. The CNN under explanation
cannot be its own judge, so the oracle has its own weights, its own training run and a head per
factor of the built-in cohort: it reads severity, CTR, edema, effusions, view, device, age, sex and
bone density off a frame the way a radiologist's measurements would.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .cnn import backbone, load_image_model, save_image_model

FORMAT = "seegaan-explore-oracle/1"

# (column, kind): binary factors are read from the table as 0/1 (AP, male, device present).
FACTORS: tuple[tuple[str, str], ...] = (
    ("severity", "regression"),
    ("log_nt_probnp", "regression"),
    ("age", "regression"),
    ("sex", "binary"),
    ("view", "binary"),
    ("ctr", "regression"),
    ("edema_score", "regression"),
    ("effusion_left", "regression"),
    ("effusion_right", "regression"),
    ("device", "binary"),
    ("bone_density", "regression"),
    ("bmi", "regression"),
)
POSITIVE = {"sex": "M", "view": "AP", "device": True}


@dataclass(frozen=True)
class OracleConfig:
    resolution: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 256)
    factors: tuple[str, ...] = tuple(name for name, _ in FACTORS)
    kinds: tuple[str, ...] = tuple(kind for _, kind in FACTORS)
    means: tuple[float, ...] = ()  # standardisation of the regression targets (0 / 1 for binary)
    stds: tuple[float, ...] = ()


def factor_targets(table: pd.DataFrame, factors: tuple[str, ...]) -> pd.DataFrame:
    """The oracle's targets from a phantom table: binary factors as 0/1, the rest as floats."""
    missing = [f for f in factors if f not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {', '.join(map(repr, missing))}; the oracle reads "
                         "the built-in phantom cohort's factors")
    out = {}
    for name in factors:
        column = table[name]
        if name in POSITIVE:
            positive = POSITIVE[name]
            out[name] = (column.astype(str).str.lower() == str(positive).lower()).astype(float)
        else:
            out[name] = pd.to_numeric(column, errors="raise").astype(float)
    return pd.DataFrame(out, index=table.index)


def reversed_factors(table: pd.DataFrame) -> frozenset[str]:
    """The two-level factors whose :data:`POSITIVE` level ``table`` codes 0.

    The oracle reads a binary factor as the probability of its positive level (view: AP); a table's
    two text levels are coded in sorted order (``ap`` 0, ``pa`` 1), so a direction towards 1 points
    to PA. Without turning such readings round, a view film towards PA read as "less AP" would seem
    to move the wrong way. Parsing the columns is the slow part: compute this once per table."""
    from ..data.table import parse_attribute

    return frozenset(factor for factor, positive in POSITIVE.items() if factor in table.columns
                     and (parse_attribute(table[factor])[1] or {}).get(str(positive).lower()) == 0)


def in_table_coding(readings: pd.DataFrame, reversed: Collection[str]) -> pd.DataFrame:
    """``readings`` with each two-level factor as the probability of the level the table codes 1;
    ``reversed`` from :func:`reversed_factors`."""
    readings = readings.copy()
    for factor in reversed:
        if factor in readings.columns:
            readings[factor] = 1 - readings[factor]
    return readings


class Oracle(nn.Module):
    """The attribute CNN's backbone with one output per factor. ``predict`` returns a DataFrame of
    factor values on their own scale (probabilities for binary factors)."""

    def __init__(self, config: OracleConfig):
        super().__init__()
        self.config = config
        self.stem, self.stages = backbone(config.widths)
        self.head = nn.Linear(config.widths[-1], len(config.factors))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 64) -> pd.DataFrame:
        self.eval()
        device = next(self.parameters()).device
        out = torch.cat([self(chunk.to(device, torch.float32)).float() for chunk in images.split(batch_size)]).cpu()
        binary = torch.tensor([k == "binary" for k in self.config.kinds])
        mean, std = torch.tensor(self.config.means), torch.tensor(self.config.stds)
        values = torch.where(binary, torch.sigmoid(out), out * std + mean)
        return pd.DataFrame(values.numpy(), columns=list(self.config.factors))


def save_oracle(path: str | Path, model: Oracle, metrics: dict | None = None) -> None:
    save_image_model(path, model, FORMAT, metrics)


def load_oracle(path: str | Path, device: str | torch.device | None = None) -> Oracle:
    return load_image_model(path, FORMAT, "oracle checkpoint", lambda c: Oracle(OracleConfig(**c)), device)
