"""``train``, ``train-cnn`` and ``train-oracle``: the autoencoder, the attribute CNN and the oracle on a cohort."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_cohort_arguments, load_cohort, user_errors

__all__ = ["add_train", "add_train_cnn", "add_train_oracle"]


def add_train(sub) -> None:
    from ..train.loop import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train (or resume) a SEE-GAAN on a cohort",
                       description="Train on a folder of images or a CSV table of images. Re-running with "
                                   "the same --out resumes from the last checkpoint. Multi-process: "
                                   "torchrun --nproc-per-node N -m seegaan_explore train ...")
    add_cohort_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, samples, metrics")
    p.add_argument("--preset", help="architecture preset (default: demo; with --init, the checkpoint's, "
                   "and a wider preset grows the checkpoint's networks to it)")
    p.add_argument("--resolution", type=int, help="override the preset's resolution")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (new run); an inference file "
                   "such as the bundled demo weights works too: its EMA networks seed the trained ones")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-decay-start", type=int, help="cosine-decay the learning rate from this step")
    p.add_argument("--adam-betas", type=float, nargs=2, default=d.betas, metavar=("B1", "B2"),
                   help=f"Adam's betas (default {d.betas[0]:g} {d.betas[1]:g}, as for GAN training; a "
                        "reconstruction-only stage may prefer momentum, e.g. 0.9 0.99)")
    p.add_argument("--adversarial-start", type=int, default=d.adversarial_start,
                   help="reconstruction-only warm-up steps before the GAN losses")
    p.add_argument("--perceptual", default=d.perceptual, help="'discriminator' or 'vgg16:PATH'")
    p.add_argument("--perceptual-weight", type=float, default=d.perceptual_weight)
    p.add_argument("--encoder-adversarial-weight", type=float, default=d.encoder_adversarial_weight)
    p.add_argument("--r1-gamma", type=float, default=d.r1_gamma)
    p.add_argument("--augment-probability", type=float, default=d.augment.probability)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--sample-every", type=int, default=d.sample_every)
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out fraction of patients")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=user_errors(_run_train))


def _run_train(args) -> int:
    import dataclasses

    import torch

    from ..model import SeeGaan, preset_config
    from ..model.checkpoint import load_for_training, training_copy
    from ..model.widen import widen
    from ..train.distributed import init_from_environment
    from ..train.loop import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    cohort = load_cohort(args, progress)
    if args.init:
        model = load_for_training(args.init, seed=args.seed)
        if args.preset and args.preset != model.config.preset:
            wider = preset_config(args.preset, model.config.resolution)
            model = training_copy(widen(model, wider, seed=args.seed), seed=args.seed)
            if group.is_main:
                print(f"grew {args.init} to the {args.preset} preset: {model.parameter_counts()}", file=sys.stderr)
        config = model.config
    else:
        config = preset_config(args.preset or "demo", args.resolution)
        torch.manual_seed(args.seed)
        model = SeeGaan(config)
    val_fraction = args.val_fraction if len(cohort) >= 20 else 0.0
    train_cohort, val_cohort = cohort.patient_split((1 - val_fraction, val_fraction), seed=args.seed)[:2] \
        if val_fraction > 0 else (cohort, None)
    images = train_cohort.images(config.resolution, args.cache_dir, progress=progress)
    val_images = val_cohort.images(config.resolution, args.cache_dir, progress=progress) if val_cohort else None
    if group.is_main:
        from .check import report_import

        report_import(cohort, args.out / "import-report.csv")
    d = TrainConfig()
    train_config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, betas=tuple(args.adam_betas),
        lr_decay_start=args.lr_decay_start,
        adversarial_start=args.adversarial_start, perceptual=args.perceptual,
        perceptual_weight=args.perceptual_weight, encoder_adversarial_weight=args.encoder_adversarial_weight,
        r1_gamma=args.r1_gamma, augment=dataclasses.replace(d.augment, probability=args.augment_probability),
        seed=args.seed, precision=args.precision, checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
    )
    trainer = Trainer(model, images, args.out, train_config, val_images=val_images, group=group)
    if trainer.resume() and group.is_main:
        print(f"resumed {args.out} at step {trainer.step}", file=sys.stderr)
    if group.is_main:
        print(f"training on {len(images)} images ({len(val_images) if val_images is not None else 0} held out), "
              f"{config.preset} preset at {config.resolution} px, device {group.device}, "
              f"{group.world_size} process(es)", file=sys.stderr)
    last = trainer.run(progress=progress)
    if group.is_main:
        print(json.dumps({"step": trainer.step, **last, "model": str(args.out / "model.safetensors")}))
    return 0


def _add_image_model_training_arguments(p, seed: int, seed_help: str | None = None) -> None:
    """What train-cnn and train-oracle share: output, resolution, optimisation, split, device."""
    p.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-fraction", type=float, default=0.15, help="held-out fraction of patients")
    p.add_argument("--seed", type=int, default=seed, help=seed_help)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")


def _patient_split(args, progress: bool):
    """The cohort split by patient into (train, held-out) parts, each with its preprocessed images."""
    cohort = load_cohort(args, progress)
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

    import numpy as np

    from ..model.cnn import CnnConfig, save_cnn
    from ..train.cnn import train_cnn

    progress = not args.no_progress
    splits = []
    for part, images in _patient_split(args, progress):
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
                               auc_threshold=threshold, progress=progress)
    save_cnn(args.out, model, metrics)
    print(json.dumps({"attribute": args.attribute, "task": task, **metrics, "checkpoint": str(args.out)}))
    return 0


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
                                  progress=progress)
    save_oracle(args.out, model, metrics)
    print(json.dumps({**metrics, "checkpoint": str(args.out)}))
    return 0
