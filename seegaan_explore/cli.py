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
    src.add_argument("--preset", default="paper", help="paper, demo, demo-wide or tiny (default: paper)")
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
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    import dataclasses

    import torch

    from .model import SeeGaan, preset_config
    from .model.checkpoint import load_for_training, training_copy
    from .model.widen import widen
    from .train.distributed import init_from_environment
    from .train.loop import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    cohort = _load_cohort(args, progress)
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
    cohort = _load_cohort(args, progress)
    parts = cohort.patient_split((1 - args.val_fraction, args.val_fraction), seed=args.seed)[:2]
    return [(part, part.images(args.resolution, args.cache_dir, progress=progress)) for part in parts]


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
    _add_image_model_training_arguments(p, seed=0)
    p.set_defaults(run=_run_train_cnn)


def _run_train_cnn(args) -> int:
    import math

    import numpy as np

    from .model.cnn import CnnConfig, save_cnn
    from .train.cnn import train_cnn

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


def _add_train_oracle(sub) -> None:
    p = sub.add_parser("train-oracle", help="train the oracle that reads every phantom factor from the image",
                       description="Train the oracle (its own weights, independent of the CNN under "
                                   "explanation) that scores traversals on the built-in phantom cohort. "
                                   "Prints held-out metrics per factor as JSON.")
    _add_cohort_arguments(p)
    _add_image_model_training_arguments(p, seed=1, seed_help="(the CNN's default is 0: a different initialisation)")
    p.set_defaults(run=_run_train_oracle)


def _run_train_oracle(args) -> int:
    from .model.oracle import OracleConfig, save_oracle
    from .train.cnn import train_oracle

    progress = not args.no_progress
    (train, train_images), (val, val_images) = _patient_split(args, progress)
    model, metrics = train_oracle(train_images, train.table, val_images, val.table,
                                  OracleConfig(resolution=args.resolution), epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                                  progress=progress)
    save_oracle(args.out, model, metrics)
    print(json.dumps({**metrics, "checkpoint": str(args.out)}))
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score traversals against the phantoms' true counterfactuals",
                       description="On held-out phantoms: reconstruction PSNR against the noise-free render, and "
                                   "per attribute (NT-proBNP unconditioned and conditioned on age and view, "
                                   "severity, age, sex, view) the oracle's Spearman along the traversal, "
                                   "achieved/intended change, leakage into the other factors and the correlation "
                                   "of the difference map with the true counterfactual's. Defaults to the bundled "
                                   "demo models.")
    p.add_argument("--checkpoint", type=Path, help="autoencoder checkpoint (default: the bundled demo model)")
    p.add_argument("--oracle", type=Path, help="oracle checkpoint (default: the bundled oracle)")
    p.add_argument("--fit", type=int, default=1000, help="held-out phantoms the directions are fitted on")
    p.add_argument("--patients", type=int, default=16, help="held-out patients traversed per attribute")
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--estimator", default="mean_shift", choices=("mean_shift", "spline_mean_shift"),
                   help="the straight mean shift (default), or each patient's slope of a spline at its own value "
                        "(continuous attributes)")
    p.add_argument("--reconstructed", type=int, default=200,
                   help="held-out phantoms the reconstruction PSNR is averaged over (at least --patients)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from .demo import FILES, WEIGHTS_DIR
    from .evaluate import evaluate
    from .model.checkpoint import load_model
    from .model.oracle import load_oracle

    model = load_model(args.checkpoint or WEIGHTS_DIR / FILES["autoencoder"], device=args.device).eval()
    oracle = load_oracle(args.oracle or WEIGHTS_DIR / FILES["oracle"], device=args.device)
    result = evaluate(model, oracle, n_fit=args.fit, n_patients=args.patients, frames=args.frames,
                      n_reconstructed=args.reconstructed, estimator=args.estimator,
                      progress=not args.no_progress)
    print(f"reconstruction PSNR {result['reconstruction_psnr_db']:.1f} dB "
          f"(SD {result['reconstruction_psnr_sd_db']:.1f} dB over {result['n_reconstructed']} phantoms, "
          "vs their noise-free renders)")
    print(f"{'attribute':<20} {'spearman':>8} {'achieved':>8} {'on truth':>8} {'diffmap r':>9} {'age leak':>9} "
          f"{'view leak':>9}")
    for name, s in result["attributes"].items():
        leak = [f"{s['leakage'][f]:+9.3f}" if f in s["leakage"] else f"{'target':>9}" for f in ("age", "view")]
        print(f"{name:<20} {s['spearman']:8.2f} {s['achieved_over_intended']:8.2f} {s['achieved_on_truth']:8.2f} "
              f"{s['diffmap_r']:9.2f} " + " ".join(leak))
    for factor, ratio in result.get("conditioned_leakage_ratio", {}).items():
        low, high = result["conditioned_leakage_ratio_ci95"][factor]
        print(f"conditioning on age and view leaves {ratio:.0%} of NT-proBNP's leakage into {factor} "
              f"(95% bootstrap interval over patients {low:.0%} to {high:.0%})")
    if args.json:
        print(json.dumps(result))
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


# --------------------------------------------------------------------------- exploration commands

def _user_errors(run):
    """Bad input (an unknown id, column or file) ends the command with its message, not a traceback."""
    import functools

    @functools.wraps(run)
    def wrapped(args) -> int:
        from .model import CheckpointError

        try:
            return run(args)
        except (ValueError, KeyError, FileNotFoundError, CheckpointError) as exc:
            raise SystemExit(f"seegaan-explore {args.command}: {exc.args[0] if exc.args else exc}") from exc
    return wrapped


def _add_autoencoder_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="autoencoder checkpoint (.safetensors)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=64, help="images encoded at once")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 where the device runs it fast, else fp32")
    p.add_argument("--no-progress", action="store_true")


def _add_optional_cohort_arguments(p, needed_for: str) -> None:
    g = p.add_argument_group("cohort", f"needed for {needed_for}")
    g.add_argument("--data", type=Path, help="image folder, or CSV table with image ids/paths")
    g.add_argument("--image-root", type=Path, help="folder the table's ids/paths are relative to")
    g.add_argument("--id-column", help="image id column of the table")
    g.add_argument("--path-column", help="image path column of the table")
    g.add_argument("--patient-column", help="patient id column")
    g.add_argument("--cache-dir", type=Path, help="preprocessed images and latent store "
                                                  "(default ~/.cache/seegaan-explore)")


def _add_direction_fit_arguments(p) -> None:
    from .explore.directions import ESTIMATORS

    p.add_argument("--estimator", default="mean_shift", choices=list(ESTIMATORS),
                   help="mean_shift (default), spline_mean_shift (the slope at each patient's own value; without "
                        "one, at the cohort's mean +/- 1 SD), binned_means and pca move the image; ridge, logistic "
                        "and svm are predictive diagnostics")
    p.add_argument("--confounders", nargs="+", default=[], metavar="COLUMN",
                   help="columns held fixed (mean_shift and spline_mean_shift), e.g. age sex")
    p.add_argument("--log", action="store_true", help="fit on ln(attribute), e.g. for lab values")


def _safe_name(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "image"


def _autoencoder(args):
    from .device import default_device
    from .model import load_model

    model = load_model(args.checkpoint, default_device(args.device), with_training_networks=False)
    model.precision = args.precision
    return model


def _encoded_cohort(args, model, progress: bool):
    from .explore.latents import encode_cohort

    if args.data is None:
        raise ValueError("--data is needed: the cohort to take ids and attributes from")
    cohort = _load_cohort(args, progress)
    return cohort, encode_cohort(model, cohort, args.cache_dir, batch_size=args.batch_size, progress=progress)


CNN_PREDICTION = "cnn_prediction"


def _cnn_predictions(cohort, args):
    """The CNN's prediction for every image of the cohort, by image id: the paper's way of making
    what a CNN has learned an attribute like any other."""
    import numpy as np
    import pandas as pd
    import torch

    from .model.cnn import load_cnn

    if not getattr(args, "cnn", None):
        raise ValueError(f"the attribute {CNN_PREDICTION!r} needs --cnn CHECKPOINT")
    cnn = load_cnn(args.cnn, device=args.device)
    images = cohort.images(cnn.config.resolution, args.cache_dir, progress=not args.no_progress)
    predicted = cnn.predict(torch.from_numpy(np.asarray(images, dtype=np.float32))[:, None]).cpu().numpy()
    return pd.Series(predicted.astype(np.float64), index=cohort.ids)


def _direction_inputs(cohort, latents, attribute: str, args):
    """``attribute``'s values (ln of them with ``--log``), its name, and the ``--confounders`` columns,
    in the order of the cohort's latents."""
    import numpy as np

    if attribute == CNN_PREDICTION:
        values = _cnn_predictions(cohort, args).reindex(latents.ids).to_numpy(dtype=np.float64)
    else:
        values = cohort.attribute(attribute).reindex(latents.ids).to_numpy(dtype=np.float64)
    name = attribute
    if args.log:
        if np.any(values[~np.isnan(values)] <= 0):
            raise ValueError(f"--log: column {attribute!r} has values <= 0")
        values, name = np.log(values), f"ln({attribute})"
    confounders = None
    if args.confounders:
        if attribute in args.confounders:
            raise ValueError(f"{attribute!r} is both the attribute and a confounder")
        confounders = np.column_stack([cohort.attribute(c).reindex(latents.ids).to_numpy(dtype=np.float64)
                                       for c in args.confounders])
    return values, name, confounders


def _fit_direction(cohort, latents, attribute: str, args):
    """Fit ``args.estimator`` for ``attribute`` (ln of it with ``--log``) on the cohort's latents."""
    from .explore.directions import fit_direction

    values, name, confounders = _direction_inputs(cohort, latents, attribute, args)
    at = getattr(args, "at", None)
    if at and args.estimator != "spline_mean_shift":
        raise ValueError(f"--at is the range a spline_mean_shift takes its slope over; {args.estimator} has none")
    return fit_direction(args.estimator, latents.latents, values, confounders, attribute=name,
                         confounder_names=tuple(args.confounders), **({"at": tuple(at)} if at else {}))


def _per_patient_fitter(cohort, latents, attribute: str, args, amounts):
    """A function of an image id that fits ``attribute``'s direction for that patient: on the exams
    sharing its values of the ``--match`` columns, and for ``spline_mean_shift`` over the range its
    ``amounts`` cover from its own value (the columns are read once, for every patient)."""
    import numpy as np

    from .explore.directions import fit_direction

    values, name, confounders = _direction_inputs(cohort, latents, attribute, args)
    for column in args.match:
        if column in (attribute, *args.confounders):
            raise ValueError(f"--match {column!r}: it is already the attribute or a --confounders column")
    matched = {column: cohort.attribute(column).reindex(latents.ids) for column in args.match}
    written = cohort.table.set_index(cohort.id_column)
    own = dict(zip(latents.ids, values))
    unit = float(np.nanstd(values)) if args.sd else 1.0

    def fit(like: str):
        rows, at = None, {}
        if matched:
            rows = np.ones(len(values), dtype=bool)
            for column, column_values in matched.items():
                if not np.isfinite(column_values[like]):
                    raise ValueError(f"--match {column!r}: image {like!r} has no value to match")
                rows &= (column_values == column_values[like]).to_numpy()
        if args.estimator == "spline_mean_shift":
            if not np.isfinite(own[like]):
                raise ValueError(f"spline_mean_shift: image {like!r} has no value of {attribute!r} to start from")
            at = {"at": (own[like] + amounts.min() * unit, own[like] + amounts.max() * unit)}
        try:
            return fit_direction(args.estimator, latents.latents, values, confounders, rows=rows, attribute=name,
                                 confounder_names=tuple(args.confounders), **at)
        except ValueError as error:
            if not matched:
                raise
            held = ", ".join(f"{column} = {written[column][like]}" for column in matched)
            raise ValueError(f"{like}: among the {int(rows.sum())} exams with {held}: {error}") from error

    return fit


def _add_encode(sub) -> None:
    p = sub.add_parser("encode", help="encode a cohort into the latent store",
                       description="Encode every image of a cohort with the checkpoint's EMA encoder into the "
                                   "latent store (under --cache-dir). Unchanged images are never encoded twice; "
                                   "changed ones are. Multi-process: torchrun --nproc-per-node N -m "
                                   "seegaan_explore encode ...")
    _add_cohort_arguments(p)
    _add_autoencoder_arguments(p)
    p.set_defaults(run=_user_errors(_run_encode))


def _run_encode(args) -> int:
    from .explore.latents import encode_cohort
    from .model import load_model
    from .train.distributed import init_from_environment

    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    model = load_model(args.checkpoint, group.device, with_training_networks=False)
    model.precision = args.precision
    cohort = _load_cohort(args, progress)
    latents = encode_cohort(model, cohort, args.cache_dir, batch_size=args.batch_size, progress=progress)
    if group.is_main:
        for image_id, path, reason in latents.skipped:
            print(f"skipped {image_id} ({path}): {reason}", file=sys.stderr)
        print(f"{len(latents)} latents ({latents.encoded} encoded now, {len(latents) - latents.encoded} from the "
              f"store, {len(latents.skipped)} images skipped) in {latents.path}", file=sys.stderr)
        print(json.dumps({"images": len(latents), "encoded": latents.encoded, "skipped": len(latents.skipped),
                          "w_dim": int(latents.latents.shape[1]), "store": str(latents.path)}))
    return 0


def _add_direction(sub) -> None:
    p = sub.add_parser("direction", help="fit attribute directions in latent space",
                       description="Encode the cohort (from the latent store when unchanged), fit one direction "
                                   "per attribute and write each as <out>/<attribute>[.ln].<estimator>.safetensors "
                                   "(vector, units and diagnostics). Prints one JSON line per direction.")
    _add_cohort_arguments(p)
    _add_autoencoder_arguments(p)
    p.add_argument("--attribute", required=True, nargs="+",
                   help=f"table column(s), or {CNN_PREDICTION} (with --cnn) for what the CNN predicts")
    p.add_argument("--cnn", type=Path, help="CNN checkpoint whose prediction is the attribute cnn_prediction")
    _add_direction_fit_arguments(p)
    p.add_argument("--at", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="spline_mean_shift: the range of the attribute (ln units with --log) its slope is taken "
                        "over (default: the cohort's mean +/- 1 SD)")
    p.add_argument("--out", required=True, type=Path, help="folder for the direction files")
    p.set_defaults(run=_user_errors(_run_direction))


def _run_direction(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from .explore.export import save_direction

    progress = not args.no_progress
    model = _autoencoder(args)
    cohort, latents = _encoded_cohort(args, model, progress)
    for attribute in tqdm(args.attribute, desc="Directions", unit="attribute",
                          disable=not progress or len(args.attribute) < 2):
        direction = _fit_direction(cohort, latents, attribute, args)
        path = args.out / f"{_safe_name(attribute)}{'.ln' if args.log else ''}.{args.estimator}.safetensors"
        save_direction(direction, path)
        scalars = {k: v for k, v in direction.diagnostics.items() if isinstance(v, (int, float, str, tuple))}
        print(json.dumps({"attribute": direction.attribute, "estimator": direction.estimator,
                          "kind": direction.kind, "sd": direction.scale,
                          "norm": float(np.linalg.norm(direction.vector)), **scalars, "file": str(path)}))
    return 0


FORMATS = ("gif", "mp4", "png", "html", "npz")


def _write_traversal(traversal, stem: Path, formats, fps: float, predictions=None, attributions=None,
                     prediction_label: str = "prediction") -> list[Path]:
    from .explore import export

    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "gif":
            export.save_gif(traversal, path, fps=fps)
        elif fmt == "mp4":
            export.save_mp4(traversal, path, fps=fps)
        elif fmt == "png":
            export.save_panel(traversal, path, attributions=attributions, predictions=predictions)
        elif fmt == "html":
            export.save_html_report(traversal, path, predictions, prediction_label=prediction_label)
        else:
            export.save_traversal(traversal, path, predictions)
        written.append(path)
    return written


def _add_traverse(sub) -> None:
    p = sub.add_parser("traverse", help="move patients along a direction and write the frames",
                       description="Decode each patient's latent stepped along a direction (noise shared by "
                                   "every frame) and write <out>/<patient>.<attribute>.<format>. Steps are in "
                                   "attribute units (ln units with --log), or SDs with --sd.")
    _add_autoencoder_arguments(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", nargs="+", help="image id(s) of the cohort (needs --data)")
    who.add_argument("--image", nargs="+", type=Path, help="image file(s) (DICOM/PNG/JPEG/NPY)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--direction", type=Path,
                     help="a direction file (.safetensors), or the original's average latents (.npy, k x w_dim)")
    how.add_argument("--attribute", help="fit the direction of this column now (needs --data)")
    how.add_argument("--latent-shift", action="store_true",
                     help="per patient, the gradient of --cnn's prediction through the generator (Latent Shift); "
                          "steps in units of the prediction")
    _add_direction_fit_arguments(p)
    p.add_argument("--match", nargs="+", default=[], metavar="COLUMN",
                   help="with --id and --attribute (mean_shift, spline_mean_shift): fit each patient's direction on "
                        "the exams that share its value of these columns (e.g. view), instead of holding them by a "
                        "linear term")
    p.add_argument("--bin-values", nargs="+", type=float,
                   help="attribute value of each average-latents bin (default 0..k-1: one unit per bin)")
    steps = p.add_mutually_exclusive_group(required=True)
    steps.add_argument("--amounts", nargs="+", type=float, help="steps, e.g. -2 -1 0 1 2")
    steps.add_argument("--range", nargs=2, type=float, metavar=("FROM", "TO"), help="evenly spaced steps")
    p.add_argument("--frames", type=int, default=9, help="number of steps with --range (default 9)")
    p.add_argument("--sd", action="store_true", help="steps in SDs of the attribute")
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--cnn", type=Path, help="attribute CNN checkpoint: its prediction for every frame")
    p.add_argument("--attribution", help="with --cnn: add this attribution method's maps to the PNG panel")
    p.add_argument("--format", nargs="+", default=["gif", "png", "npz"], choices=FORMATS,
                   help="output formats (default gif png npz; npz can be re-exported with `export`)")
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    _add_optional_cohort_arguments(p, "--id and --attribute")
    p.set_defaults(run=_user_errors(_run_traverse))


def _run_traverse(args) -> int:
    import math

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from .data.images import load_preprocessed
    from .explore import quality
    from .explore.export import load_direction
    from .explore.traversal import traverse

    progress = not args.no_progress
    if args.range is not None and args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    amounts = np.array(args.amounts) if args.amounts else np.linspace(*args.range, args.frames)
    model = _autoencoder(args)
    cnn, label = _explainer(args, model.config.resolution)
    if args.latent_shift and (cnn is None or args.sd):
        raise ValueError("--latent-shift needs --cnn, and steps in units of its prediction (no --sd)")
    direction = load_direction(args.direction, bin_values=args.bin_values) if args.direction else None
    if direction is not None and args.sd and not math.isfinite(direction.scale):
        raise ValueError(f"{args.direction}: the direction does not record the attribute's SD; give steps in "
                         "attribute units (without --sd)")
    if args.match and not (args.id and args.attribute and args.estimator in ("mean_shift", "spline_mean_shift")):
        raise ValueError("--match fits each cohort patient's mean shift among the exams like it: it needs --id, "
                         "--attribute and the mean_shift or spline_mean_shift estimator")
    per_patient = bool(args.attribute and (args.match or args.estimator == "spline_mean_shift"))
    if per_patient and not args.id:
        raise ValueError("spline_mean_shift takes each patient's slope from its own value of the attribute: "
                         "it needs cohort patients (--id), not --image")
    if args.id or args.attribute:
        cohort, latents = _encoded_cohort(args, model, progress)
        if per_patient:
            fit_for = _per_patient_fitter(cohort, latents, args.attribute, args, amounts)
        elif direction is None:
            direction = _fit_direction(cohort, latents, args.attribute, args)
    subjects = args.id or args.image
    paths = dict(zip(cohort.ids, cohort.paths)) if args.id else {}
    for subject in tqdm(subjects, desc="Traversals", unit="patient", disable=not progress or len(subjects) < 2):
        if args.id:
            w0, name = latents.latent(subject), subject
            if per_patient:
                direction = fit_for(subject)
            original = load_preprocessed(paths[subject], model.config.resolution)
        else:
            original = load_preprocessed(subject, model.config.resolution)
            w0, name = model.encode(torch.from_numpy(original)[None, None])[0].cpu().numpy(), subject.stem
        if args.latent_shift:
            from .explore.latent_shift import latent_shift

            direction = latent_shift(model, cnn, w0, noise_seed=args.noise_seed, attribute=f"{label} (latent shift)")
        t = traverse(model, w0, direction, amounts, in_sd=args.sd, noise_seed=args.noise_seed)
        predictions = attributions = None
        if cnn is not None:
            frames = torch.from_numpy(t.frames)[:, None]
            predictions = cnn.predict(frames).cpu().numpy()
            if args.attribution:
                from .explore.attribution import attribute

                attributions = attribute(cnn, frames, args.attribution)
        measures_target = cnn is not None and len(amounts) >= 3 and _measures(cnn, direction)
        scores = quality.score(t, predictions if measures_target else None, original=original)
        stem = args.out / f"{_safe_name(name)}.{_safe_name(direction.attribute)}"
        written = _write_traversal(t, stem, args.format, args.fps, predictions, attributions, label)
        print(json.dumps({"subject": str(subject), "attribute": direction.attribute, "amounts": amounts.tolist(),
                          "in_sd": args.sd, **({"predictions": predictions.tolist()} if cnn is not None else {}),
                          "quality": {**scores, "measured_by": "the CNN" if measures_target else None},
                          "files": [str(p) for p in written]}))
    return 0


def _measures(cnn, direction) -> bool:
    """Whether the CNN's output is the direction's attribute in the direction's units, so that its
    predictions on the frames score the traversal."""
    c = cnn.config
    if c.task != "regression":
        return False
    return (direction.estimator == "latent_shift" or direction.attribute == CNN_PREDICTION
            or direction.attribute == (f"ln({c.attribute})" if c.log_transform else c.attribute))


def _explainer(args, resolution: int):
    """The ``--cnn`` model (checked against the autoencoder's resolution) and its prediction label."""
    if args.cnn is None:
        if args.attribution:
            raise ValueError("--attribution needs --cnn")
        return None, "prediction"
    from .device import default_device
    from .explore.attribution import METHODS
    from .model.cnn import load_cnn

    if args.attribution and args.attribution not in METHODS:
        raise ValueError(f"unknown attribution method {args.attribution!r}; choose one of {', '.join(METHODS)}")
    cnn = load_cnn(args.cnn, default_device(args.device))
    if cnn.config.resolution != resolution:
        raise ValueError(f"{args.cnn}: the CNN takes {cnn.config.resolution} px images, the autoencoder "
                         f"makes {resolution} px frames")
    c = cnn.config
    if c.task == "binary":
        return cnn, f"CNN: P({c.attribute})"
    return cnn, f"CNN: {'ln ' if c.log_transform else ''}{c.attribute}"


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write saved traversals (.npz from `traverse`) as GIF/MP4/PNG/HTML")
    p.add_argument("traversal", nargs="+", type=Path, help="traversal file(s) (.npz)")
    p.add_argument("--format", nargs="+", default=["gif", "png", "html"], choices=FORMATS[:-1],
                   help="output formats (default gif png html)")
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("--out", type=Path, help="output folder (default: beside each input)")
    p.set_defaults(run=_user_errors(_run_export))


def _run_export(args) -> int:
    from .explore.export import load_traversal

    for source in args.traversal:
        traversal, predictions = load_traversal(source)
        stem = (args.out or source.parent) / source.stem
        written = _write_traversal(traversal, stem, args.format, args.fps, predictions)
        print(json.dumps({"traversal": str(source), "files": [str(p) for p in written]}))
    return 0


def _add_attribute(sub) -> None:
    from .explore.attribution import METHODS

    p = sub.add_parser("attribute", help="attribution maps of the attribute CNN for images",
                       description="Write <out>/<image>.<method>.png (the image beside the map over it) and "
                                   ".npy (the map at the CNN's resolution) per image; prints the CNN's prediction.")
    p.add_argument("--cnn", required=True, type=Path, help="attribute CNN checkpoint (from train-cnn)")
    p.add_argument("--method", default="gradcam", choices=list(METHODS))
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", nargs="+", help="image id(s) of the cohort (needs --data)")
    who.add_argument("--image", nargs="+", type=Path, help="image file(s)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    _add_optional_cohort_arguments(p, "--id")
    p.set_defaults(run=_user_errors(_run_attribute))


def _run_attribute(args) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from .data.images import load_preprocessed
    from .device import default_device
    from .explore.attribution import attribute
    from .explore.export import save_attribution_png
    from .fileio import atomic_write
    from .model.cnn import load_cnn

    progress = not args.no_progress
    cnn = load_cnn(args.cnn, default_device(args.device))
    resolution = cnn.config.resolution
    if args.id:
        if args.data is None:
            raise ValueError("--id needs --data: the cohort the ids belong to")
        cohort = _load_cohort(args, progress)
        images = cohort.images(resolution, args.cache_dir, progress=progress)
        rows = {image_id: k for k, image_id in enumerate(cohort.ids)}
        unknown = [i for i in args.id if i not in rows]
        if unknown:
            raise KeyError(f"{args.data}: no usable image with id {', '.join(map(repr, unknown))}")
        subjects = [(i, np.asarray(images[rows[i]], np.float32)) for i in args.id]
    else:
        subjects = [(p.stem, load_preprocessed(p, resolution)) for p in args.image]
    for name, image in tqdm(subjects, desc="Attributions", unit="image", disable=not progress or len(subjects) < 2):
        x = torch.from_numpy(image)[None, None]
        attribution_map = attribute(cnn, x, args.method)[0]
        stem = args.out / f"{_safe_name(name)}.{args.method}"
        save_attribution_png(image, attribution_map, stem.with_name(stem.name + ".png"))
        with atomic_write(stem.with_name(stem.name + ".npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, attribution_map.astype(np.float32))
        print(json.dumps({"image": name, "method": args.method, "prediction": float(cnn.predict(x)[0]),
                          "png": str(stem) + ".png", "npy": str(stem) + ".npy"}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seegaan-explore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"seegaan-explore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .data.phantoms import add_phantoms_parser
    from .ui.serve import add_demo_parser

    for add in (_add_info, add_phantoms_parser, _add_train, _add_train_cnn, _add_train_oracle, _add_evaluate,
                _add_bench, _add_encode, _add_direction, _add_traverse, _add_export, _add_attribute, add_demo_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
