"""``train-cnn`` and ``train-oracle``: the CNNs that read attributes on images (the one under
explanation, and the oracle that scores films on the phantoms), split by patient."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_cohort_arguments, add_threads_argument, load_cohort, user_errors

__all__ = ["add_train_cnn", "add_train_oracle"]


def _add_image_model_training_arguments(p, seed: int, seed_help: str | None = None) -> None:
    """What train-cnn and train-oracle share: output, resolution, optimisation, split, device."""
    p.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    p.add_argument("--resolution", type=int, default=128, help="image size the network reads")
    p.add_argument("--epochs", type=int, default=8, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    p.add_argument("--val-fraction", type=float, default=0.15, help="held-out fraction of patients")
    p.add_argument("--seed", type=int, default=seed, help=seed_help or "random seed")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the device runs it fast, else fp32; fp32: the same precision on "
                        "every machine, so that reruns elsewhere train alike")
    add_threads_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _patient_split(args, progress: bool, cohort=None):
    """The cohort split by patient into (train, held-out) parts, each with its preprocessed images."""
    cohort = load_cohort(args, progress) if cohort is None else cohort
    parts = cohort.patient_split((1 - args.val_fraction, args.val_fraction), seed=args.seed)[:2]
    return [(part, part.images(args.resolution, args.cache_dir, progress=progress)) for part in parts]


def add_train_cnn(sub) -> None:
    p = sub.add_parser("train-cnn", help="train a CNN that predicts one attribute from the image",
                       description="Train the attribute CNN whose predictions and attributions are explored "
                                   "(the paper's NT-proBNP CNN, or any column of any cohort). Prints held-out "
                                   "metrics as JSON.")
    add_cohort_arguments(p)
    p.add_argument("--attribute", required=True, help="table column to predict")
    p.add_argument("--log", action="store_true", help="predict ln(attribute), e.g. for lab values")
    p.add_argument("--task", default="auto", choices=["auto", "regression", "binary"],
                   help="auto: binary for two-valued columns, else regression")
    p.add_argument("--auc-threshold", type=float,
                   help="also report the AUC for attribute > this value (native units, e.g. 125 pg/mL)")
    _add_image_model_training_arguments(p, seed=0)
    p.set_defaults(run=user_errors(_run_train_cnn))


def _run_train_cnn(args) -> int:
    import math
    import warnings

    import numpy as np

    from ..data.cohort import CohortWarning
    from ..model.cnn import CnnConfig, save_cnn
    from ..train.cnn import train_cnn

    progress = not args.no_progress
    cohort = load_cohort(args, progress)
    _refuse_a_single_value(cohort, args.attribute)
    splits = []
    for (part, images), split in zip(_patient_split(args, progress, cohort), ("training", "held-out")):
        with warnings.catch_warnings():  # what was done with its censored values is said once, of the whole cohort
            warnings.simplefilter("ignore", CohortWarning)
            _refuse_a_single_value(part, args.attribute, f"the {split} patients (--val-fraction "
                                                         f"{args.val_fraction:g}, --seed {args.seed})")
            values = part.attribute(args.attribute).to_numpy(dtype=np.float64)
        if args.log:
            if np.any(values[~np.isnan(values)] <= 0):
                raise SystemExit(f"--log: column {args.attribute!r} has values <= 0")
            values = np.log(values)
        keep = ~np.isnan(values)
        if not keep.all():
            print(f"{args.attribute}: {int((~keep).sum())} rows without a value left out", file=sys.stderr)
        splits.append((np.asarray(images)[keep], values[keep]))
    (train_x, train_y), (val_x, val_y) = splits
    task = args.task
    if task == "auto":
        task = "binary" if set(np.unique(train_y)) <= {0.0, 1.0} else "regression"
    threshold = args.auc_threshold
    if threshold is not None and args.log:
        threshold = math.log(threshold)
    config = CnnConfig(resolution=args.resolution, task=task, attribute=args.attribute, log_transform=args.log)
    model, metrics = train_cnn(train_x, train_y, val_x, val_y, config, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                               precision=args.precision, auc_threshold=threshold, progress=progress)
    save_cnn(args.out, model, metrics)
    print(json.dumps({"attribute": args.attribute, "task": task, **metrics, "checkpoint": str(args.out)}))
    return 0


def _refuse_a_single_value(cohort, attribute: str, where: str | None = None) -> None:
    """A column with one value has nothing for a CNN to learn (and no held-out r or AUC): say so
    before training, naming the column and its value."""
    import numpy as np

    values = cohort.attribute(attribute).to_numpy(dtype=np.float64)
    known = ~np.isnan(values)
    if len(np.unique(values[known])) > 1:
        return
    if not known.any():
        what = f"no value in any of {len(values)} rows"
    else:
        raw = cohort.table[attribute][known].iloc[0]
        what = f"one value, {str(raw).strip()!r}, in all {int(known.sum())} rows that have one"
    where = f" among {where}" if where else ""
    raise ValueError(f"--attribute {attribute}: column {attribute!r} has {what}{where}; a CNN has nothing "
                     f"to learn from it (pick a column whose values differ)")


def add_train_oracle(sub) -> None:
    p = sub.add_parser("train-oracle", help="train the oracle that reads every phantom factor from the image",
                       description="Train the oracle (its own weights, independent of the CNN under "
                                   "explanation) that scores traversals on the built-in phantom cohort. "
                                   "Prints held-out metrics per factor as JSON.")
    add_cohort_arguments(p)
    _add_image_model_training_arguments(p, seed=1, seed_help="(the CNN's default is 0: a different initialisation)")
    p.set_defaults(run=user_errors(_run_train_oracle))


def _run_train_oracle(args) -> int:
    from ..model.oracle import OracleConfig, save_oracle
    from ..train.cnn import train_oracle

    progress = not args.no_progress
    (train, train_images), (val, val_images) = _patient_split(args, progress)
    model, metrics = train_oracle(train_images, train.table, val_images, val.table,
                                  OracleConfig(resolution=args.resolution), epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                                  precision=args.precision, progress=progress)
    save_oracle(args.out, model, metrics)
    print(json.dumps({**metrics, "checkpoint": str(args.out)}))
    return 0
