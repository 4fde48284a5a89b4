"""`seegaan-explore`: subcommands, each a few lines over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="parameter counts of a preset or checkpoint")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="paper", help="paper, demo or tiny (default: paper)")
    src.add_argument("--checkpoint", type=Path, help="a .safetensors checkpoint")
    p.add_argument("--resolution", type=int, help="override the preset's resolution")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_info)


def _run_info(args) -> int:
    from .model import SeeGaan, preset_config, read_metadata
    from .model.config import ModelConfig

    if args.checkpoint:
        meta = read_metadata(args.checkpoint)
        config = ModelConfig.from_dict(meta["config"])
    else:
        meta, config = {}, preset_config(args.preset, args.resolution)
    counts = SeeGaan(config, with_training_networks=False).parameter_counts()
    out = {**counts, "preset": config.preset, "resolution": config.resolution, "w_dim": config.w_dim,
           "step": meta.get("training_state", {}).get("step", meta.get("step"))}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"preset {config.preset}, {config.resolution} px, w {config.w_dim}-d")
        for name in ("mapping", "generator", "encoder", "discriminator"):
            print(f"  {name:<14}{counts[name]:>14,}")
    return 0


def _add_cohort_arguments(p) -> None:
    p.add_argument("--data", required=True, type=Path, help="image folder, or CSV table with image ids/paths")
    p.add_argument("--image-root", type=Path, help="folder the table's ids/paths are relative to")
    p.add_argument("--id-column", help="image id column of the table")
    p.add_argument("--path-column", help="image path column of the table")
    p.add_argument("--patient-column", help="patient id column (held-out split by patient)")
    p.add_argument("--cache-dir", type=Path, help="preprocessed-image cache (default ~/.cache/seegaan-explore)")


def _load_cohort(args, progress: bool):
    from .data.cohort import Cohort

    if args.data.is_dir():
        return Cohort.from_folder(args.data, progress=progress)
    return Cohort.from_table(args.data, args.image_root, id_column=args.id_column,
                             path_column=args.path_column, patient_column=args.patient_column)


def _add_train(sub) -> None:
    from .train.loop import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train (or resume) a SEE-GAAN on a cohort",
                       description="Train on a folder of images or a CSV table of images. Re-running with "
                                   "the same --out resumes from the last checkpoint. Multi-process: "
                                   "torchrun --nproc-per-node N -m seegaan_explore train ...")
    _add_cohort_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, samples, metrics")
    p.add_argument("--preset", default="demo", help="architecture preset (default: demo)")
    p.add_argument("--resolution", type=int, help="override the preset's resolution")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (new run)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-decay-start", type=int, help="cosine-decay the learning rate from this step")
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
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    import dataclasses

    import torch

    from .model import SeeGaan, load_model, preset_config
    from .train.distributed import init_from_environment
    from .train.loop import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    cohort = _load_cohort(args, progress)
    if args.init:
        model = load_model(args.init, with_training_networks=True)
        config = model.config
    else:
        config = preset_config(args.preset, args.resolution)
        torch.manual_seed(args.seed)
        model = SeeGaan(config)
    val_fraction = args.val_fraction if len(cohort) >= 20 else 0.0
    train_cohort, val_cohort = cohort.patient_split((1 - val_fraction, val_fraction), seed=args.seed)[:2] \
        if val_fraction > 0 else (cohort, None)
    images = train_cohort.images(config.resolution, args.cache_dir, progress=progress)
    val_images = val_cohort.images(config.resolution, args.cache_dir, progress=progress) if val_cohort else None
    d = TrainConfig()
    train_config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_decay_start=args.lr_decay_start,
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


def _add_train_cnn(sub) -> None:
    p = sub.add_parser("train-cnn", help="train a CNN that predicts one attribute from the image",
                       description="Train the attribute CNN whose predictions and attributions are explored "
                                   "(the paper's NT-proBNP CNN, or any column of any cohort). Prints held-out "
                                   "metrics as JSON.")
    _add_cohort_arguments(p)
    p.add_argument("--attribute", required=True, help="table column to predict")
    p.add_argument("--log", action="store_true", help="predict ln(attribute), e.g. for lab values")
    p.add_argument("--task", default="auto", choices=["auto", "regression", "binary"],
                   help="auto: binary for two-valued columns, else regression")
    p.add_argument("--auc-threshold", type=float,
                   help="also report the AUC for attribute > this value (native units, e.g. 125 pg/mL)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-fraction", type=float, default=0.15, help="held-out fraction of patients")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_train_cnn)


def _run_train_cnn(args) -> int:
    import math

    import numpy as np

    from .model.cnn import CnnConfig, save_cnn
    from .train.cnn import train_cnn

    progress = not args.no_progress
    cohort = _load_cohort(args, progress)
    train, val = cohort.patient_split((1 - args.val_fraction, args.val_fraction), seed=args.seed)[:2]
    splits = []
    for part in (train, val):
        images = part.images(args.resolution, args.cache_dir, progress=progress)
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


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure decoder/encoder speed on this machine")
    p.add_argument("--preset", default="demo")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch", type=int, default=16, help="frames decoded at once (one traversal)")
    p.add_argument("--rounds", type=int, default=7, help="paired conv-peak/decoder measurements (median counts)")
    p.add_argument("--no-traversal-256", action="store_true", help="skip the paper-preset traversal timing")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    from .bench import run_benchmark

    result = run_benchmark(preset=args.preset, device=args.device, precision=args.precision, batch=args.batch,
                           rounds=args.rounds, traversal_256=not args.no_traversal_256, log=print)
    if args.json:
        print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seegaan-explore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"seegaan-explore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .data.phantoms import add_phantoms_parser

    for add in (_add_info, add_phantoms_parser, _add_train, _add_train_cnn, _add_bench):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
