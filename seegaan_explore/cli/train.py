"""``train``: the autoencoder on a cohort, from scratch, fine-tuned or resumed, with its held-out set."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from .common import add_cohort_arguments, add_threads_argument, load_cohort, user_errors

__all__ = ["add_train"]

MIN_IMAGES_FOR_VALIDATION = 20  # smaller cohorts are trained on whole, without a held-out set
HELD_OUT_NAME = "held-out.csv"
FEW_PATIENTS = 5  # fewer held-out patients than this: warned that the validation PSNR is unsteady
VAL_FRACTION = 0.05  # the default held-out share of the images...
MAX_VAL_FRACTION = 0.25  # ...grown in steps of 0.05 up to this until FEW_PATIENTS patients are held out


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
    p.add_argument("--resolution", type=int, help="override the preset's resolution (not with --init: a "
                   "fine-tuned model keeps its checkpoint's resolution)")
    p.add_argument("--init", type=Path, help="fine-tune: start a new run from this checkpoint's weights. An inference "
                   "file such as the bundled demo weights works too: its EMA networks seed the trained ones and the "
                   "discriminator starts untrained. The first half of --steps is then reconstruction only "
                   "(see --adversarial-start)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps in all (a resumed run counts on)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    p.add_argument("--lr-decay-start", type=int, help="cosine-decay the learning rate from this step")
    p.add_argument("--adam-betas", type=float, nargs=2, default=d.betas, metavar=("B1", "B2"),
                   help=f"Adam's betas (default {d.betas[0]:g} {d.betas[1]:g}, as for GAN training; a "
                        "reconstruction-only stage may prefer momentum, e.g. 0.9 0.99)")
    p.add_argument("--adversarial-start", type=int,
                   help="reconstruction-only warm-up steps before the GAN losses switch on (default: "
                        f"{d.adversarial_start} for a new model; with --init, half of --steps, so that the "
                        "checkpoint's networks adapt to your images before an untrained discriminator "
                        "joins, and 0 where its discriminator is trained (a packed run goes on); "
                        "--adversarial-start N for --steps N trains reconstruction only)")
    p.add_argument("--discriminator-warmup", type=int, default=d.discriminator_warmup, metavar="N",
                   help="for N steps from --adversarial-start only the discriminator plays the GAN game, so that "
                        "one that starts untrained learns real from fake before the trained networks feel it "
                        f"(default {d.discriminator_warmup})")
    p.add_argument("--perceptual", default=d.perceptual, help="'discriminator' or 'vgg16:PATH'")
    p.add_argument("--perceptual-weight", type=float, default=d.perceptual_weight, help="weight of the perceptual loss")
    p.add_argument("--encoder-adversarial-weight", type=float, default=d.encoder_adversarial_weight,
                   help="weight of the adversarial loss on the reconstructions")
    p.add_argument("--r1-gamma", type=float, default=d.r1_gamma, help="R1 gradient penalty of the discriminator")
    p.add_argument("--augment-probability", type=float, default=d.augment.probability,
                   help="probability of each augmentation the discriminator sees")
    p.add_argument("--warmup-adam-betas", type=float, nargs=2, metavar=("B1", "B2"),
                   help=f"Adam's betas during the reconstruction-only warm-up (default: {WARMUP_BETAS[0]:g} "
                        f"{WARMUP_BETAS[1]:g} under --init, where momentum fits faster; else --adam-betas)")
    p.add_argument("--warmup-augment-probability", type=float,
                   help="augmentation during the warm-up (default: 0 under --init, so that the networks first "
                        "learn your images as they are; else --augment-probability)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16"],
                   help="number format (auto: bf16 where the device runs it fast)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--sample-every", type=int, default=d.sample_every,
                   help="steps between sample grids and held-out scores")
    p.add_argument("--val-fraction", type=float,
                   help="held out for validation: about this share of the images, in whole patients (none "
                        f"with fewer than {MIN_IMAGES_FOR_VALIDATION} images); all of them are reconstructed at "
                        f"every evaluation, and listed in <out>/held-out.csv (default {VAL_FRACTION:g}, grown up "
                        f"to {MAX_VAL_FRACTION:g} until {FEW_PATIENTS} patients are held out where the cohort has "
                        f"{4 * FEW_PATIENTS} or more)")
    p.add_argument("--val-seed", type=int, default=0, help="seed of the patient-level held-out split (fixed, "
                   "so that runs with other --seed values are validated on the same patients)")
    add_threads_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=user_errors(_run_train))


def _run_train(args) -> int:
    import dataclasses

    import torch

    from ..model import SeeGaan, preset_config
    from ..model.checkpoint import read_metadata
    from ..train.distributed import init_from_environment
    from ..train.loop import CHECKPOINT_NAME, TrainConfig, Trainer, flag_value

    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    say = (lambda line: print(line, file=sys.stderr)) if group.is_main else (lambda line: None)
    checkpoint = args.out / CHECKPOINT_NAME
    resuming = checkpoint.exists()
    if args.init:
        if resuming:
            say(f"{args.out} holds a checkpoint: resuming it; --init {args.init} gives only the architecture, "
                f"not the weights (use a new --out to start over from {args.init})")
        model = _model_to_fine_tune(args, (lambda line: None) if resuming else say)
        config = model.config
    else:
        config = preset_config(args.preset or "demo", args.resolution)
        torch.manual_seed(args.seed)
        model = SeeGaan(config)
    if resuming:
        _check_resumable(checkpoint, config, args)
    trained = bool(args.init) and _discriminator_trained(read_metadata(args.init))  # read once, said and used
    adversarial_start = _adversarial_start(args, checkpoint if resuming else None, trained)
    warm = _warm_up_settings(args)
    if args.init and not resuming:
        say(_warm_up_line(adversarial_start, args.steps, defaulted=args.adversarial_start is None,
                          trained=trained))
        if adversarial_start > 0:
            say(f"the warm-up trains with Adam betas {flag_value(warm['warmup_betas'])} and augmentation probability "
                f"{warm['warmup_augment_probability']:g} (--warmup-adam-betas, --warmup-augment-probability); "
                f"the GAN stage with {flag_value(args.adam_betas)} and {args.augment_probability:g}")
    if args.discriminator_warmup > 0 and adversarial_start < args.steps and not resuming:
        first = min(adversarial_start + args.discriminator_warmup, args.steps)
        say(f"the discriminator trains alone on steps {adversarial_start}-{first} (--discriminator-warmup "
            f"{args.discriminator_warmup}); the generator and encoder feel it from step {first}")

    cohort = load_cohort(args, progress)
    train_cohort, val_cohort = _held_out_split(cohort, args, say)
    images = train_cohort.images(config.resolution, args.cache_dir, progress=progress)
    val_images = val_cohort.images(config.resolution, args.cache_dir, progress=progress) if val_cohort else None
    held_out = None
    if val_cohort is not None:
        held_out = _held_out_record(val_cohort, args)
        if group.is_main:
            _write_held_out(val_cohort, args.out / HELD_OUT_NAME)
        say(f"held out for validation: {len(val_cohort)} images of {held_out['patients']} patients "
            f"(--val-fraction {args.val_fraction:g} of the images in whole patients, --val-seed {args.val_seed}), "
            f"listed in {args.out / HELD_OUT_NAME}: {_first(val_cohort.ids)}")
        _say_copies_across(train_cohort, images, val_cohort, val_images, say)
        if held_out["patients"] < FEW_PATIENTS:
            say(f"only {held_out['patients']} held-out patient(s): the validation PSNR depends on who they are; "
                f"a larger --val-fraction gives a steadier figure")
    if group.is_main:
        from .check import report_import

        report_import(cohort, args.out / "import-report.csv")
    d = TrainConfig()
    train_config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, betas=tuple(args.adam_betas),
        lr_decay_start=args.lr_decay_start,
        adversarial_start=adversarial_start, discriminator_warmup=args.discriminator_warmup, perceptual=args.perceptual,
        perceptual_weight=args.perceptual_weight, encoder_adversarial_weight=args.encoder_adversarial_weight,
        r1_gamma=args.r1_gamma, augment=dataclasses.replace(d.augment, probability=args.augment_probability),
        **warm,
        seed=args.seed, precision=args.precision, checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
    )
    trainer = Trainer(model, images, args.out, train_config, val_images=val_images, held_out=held_out, group=group)
    if trainer.resume():
        say(f"resumed {args.out} at step {trainer.step}")
        for line in trainer.changes_since_checkpoint():
            say(f"resuming {args.out}: {line}")
    say(f"training on {len(images)} images ({len(val_images) if val_images is not None else 0} held out), "
        f"{config.preset} preset at {config.resolution} px, device {group.device}, "
        f"{group.world_size} process(es)")
    last = trainer.run(progress=progress)
    if group.is_main:
        print(json.dumps({"step": trainer.step, **last, "model": str(args.out / "model.safetensors")}))
    return 0


def _model_to_fine_tune(args, say):
    """The --init checkpoint as a model to train (grown to a wider --preset); refuses a --resolution
    or --preset that the checkpoint cannot take, rather than ignoring it."""
    from ..model import CheckpointError, preset_config
    from ..model.checkpoint import load_for_training, read_metadata, training_copy
    from ..model.config import ModelConfig
    from ..model.widen import widen

    if not args.init.is_file():
        raise FileNotFoundError(f"--init {args.init}: no such checkpoint file")
    meta = read_metadata(args.init)
    try:
        saved = ModelConfig.from_dict(meta["config"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"--init {args.init}: not a SEE-GAAN autoencoder checkpoint") from exc
    if args.resolution is not None and args.resolution != saved.resolution:
        raise ValueError(f"--resolution {args.resolution} with --init {args.init}: the checkpoint is a "
                         f"{saved.resolution} px model and fine-tuning keeps its resolution (leave out --resolution, "
                         f"or train a new model without --init)")
    model = load_for_training(args.init, seed=args.seed)
    state = meta.get("training_state") or {}
    if meta.get("kind") == "inference":
        origin = "an inference file: its EMA networks seed the trained ones, the discriminator starts untrained"
    elif meta.get("kind") == "full":
        trained = "included" if _discriminator_trained(meta) else "included but never trained"
        origin = f"networks packed at step {meta.get('step')}, discriminator {trained}"
    elif not _discriminator_trained(meta):
        origin = f"a training checkpoint at step {state.get('step')} whose discriminator was never trained"
    else:
        origin = f"a training checkpoint at step {state.get('step')}, discriminator included"
    say(f"fine-tuning {args.init} ({saved.preset} preset, {saved.resolution} px; {origin})")
    if args.preset and args.preset != saved.preset:
        try:
            wider = preset_config(args.preset, saved.resolution)
            model = training_copy(widen(model, wider, seed=args.seed), seed=args.seed)
        except ValueError as exc:
            raise ValueError(f"--preset {args.preset} with --init {args.init} (a {saved.preset} model): "
                             f"{exc.args[0] if exc.args else exc}; only a wider preset at the same resolution "
                             f"and w can grow it") from exc
        say(f"grew {args.init} to the {args.preset} preset: {model.parameter_counts()}")
    return model


#: the fine-tuning warm-up's optimiser: on real radiographs it reconstructs better in the same steps
#: than the GAN's betas with augmentation (measured: docs/results/fine-tune-hannover.md)
WARMUP_BETAS = (0.9, 0.99)


def _warm_up_settings(args) -> dict:
    """The warm-up's betas and augmentation: as given; under --init, momentum and no augmentation by
    default; else None (the run's own, as before)."""
    betas = args.warmup_adam_betas or (WARMUP_BETAS if args.init else None)
    augment = args.warmup_augment_probability
    if augment is None and args.init:
        augment = 0.0
    return {"warmup_betas": None if betas is None else tuple(betas), "warmup_augment_probability": augment}


def _discriminator_trained(meta: dict) -> bool:
    """Whether a checkpoint's metadata says its discriminator has played the GAN game: a packed file
    says so; a training checkpoint has passed its warm-up; an inference file has none."""
    if meta.get("kind") == "inference":
        return False
    if meta.get("kind") == "full":
        return bool(meta.get("discriminator_trained"))
    state = meta.get("training_state") or {}
    return state.get("step", 0) > state.get("train_config", {}).get("adversarial_start", 0)


def _adversarial_start(args, checkpoint: Path | None, trained: bool) -> int:
    """--adversarial-start, or its default: none for a new model; under --init, none where the file's
    discriminator is ``trained`` (the GAN goes on against it), else half of --steps (on resuming, the
    warm-up the run started with, so that another --steps does not move it)."""
    from ..model.checkpoint import read_metadata
    from ..train.loop import TrainConfig

    if args.adversarial_start is not None:
        return args.adversarial_start
    if not args.init:
        return TrainConfig().adversarial_start
    if checkpoint is not None:
        saved = (read_metadata(checkpoint).get("training_state") or {}).get("train_config", {})
        if "adversarial_start" in saved:
            return int(saved["adversarial_start"])
    return 0 if trained else args.steps // 2


def _check_resumable(checkpoint: Path, config, args) -> None:
    """The run in --out must be the architecture this command builds: say which option differs."""
    from ..model.checkpoint import read_metadata
    from ..model.config import ModelConfig

    saved = ModelConfig.from_dict(read_metadata(checkpoint)["config"])
    if saved == config:
        return
    differs = [f"{name} {getattr(saved, name)} there, {getattr(config, name)} here"
               for name in ("preset", "resolution") if getattr(saved, name) != getattr(config, name)]
    raise ValueError(f"{checkpoint}: this run was trained as another architecture "
                     f"({'; '.join(differs) or 'its channel counts differ'}); resume it with its own --preset and "
                     f"--resolution, or give a new --out")


def _warm_up_line(adversarial_start: int, steps: int, defaulted: bool, trained: bool) -> str:
    """What a fine-tuning run will do with the GAN losses, in words, for its first lines (``trained``:
    the --init file's discriminator has played the GAN game)."""
    if adversarial_start >= steps:
        return (f"reconstruction only for all {steps} steps (--adversarial-start {adversarial_start}): "
                f"the GAN losses never switch on")
    if adversarial_start <= 0 and trained:
        return ("no warm-up: the GAN losses go on from step 0 against the discriminator the file carries"
                + (" (the default for such a file; --adversarial-start N warms up first)" if defaulted else ""))
    if adversarial_start <= 0:
        return ("no warm-up (--adversarial-start 0): the GAN losses run from step 0, with a discriminator "
                "that has not seen a real image yet")
    why = "; the default under --init is half of --steps" if defaulted else ""
    return (f"reconstruction-only warm-up for steps 0-{adversarial_start}, then the GAN losses to step {steps} "
            f"(--adversarial-start {adversarial_start}{why})")


def _held_out_split(cohort, args, say):
    """(training cohort, held-out cohort or None): whole patients, drawn with --val-seed. Without
    --val-fraction, the default share grows until the validation PSNR rests on several patients (a
    cohort with many images per patient holds out one patient at 5%); ``args.val_fraction`` is then
    set to the share in effect, for the messages and the run's record."""
    if args.val_fraction is None:
        args.val_fraction = _grown_fraction(cohort, args.val_seed, say)
    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction {args.val_fraction:g}: give a fraction in [0, 1)")
    if args.val_fraction == 0:
        say("no held-out set (--val-fraction 0): validation PSNR is not measured")
        return cohort, None
    if len(cohort) < MIN_IMAGES_FOR_VALIDATION:
        say(f"no held-out set: {len(cohort)} images, fewer than {MIN_IMAGES_FOR_VALIDATION}; training on all "
            f"of them, validation PSNR is not measured")
        return cohort, None
    train, val = cohort.patient_split((1 - args.val_fraction, args.val_fraction), seed=args.val_seed)
    if len(val) == 0 or len(train) == 0:
        say(f"no held-out set: --val-fraction {args.val_fraction:g} of {len(cohort)} images holds out no whole "
            f"patient; validation PSNR is not measured")
        return cohort, None
    return train, val


def _say_copies_across(train_cohort, images, val_cohort, val_images, say) -> None:
    """Name the held-out images whose pixels a training image has (a copy filed under another patient):
    the validation PSNR would count them as unseen."""
    from ..data.images import pixel_digest
    from ..data.table import listing

    trained = {pixel_digest(image): k for k, image in enumerate(images)}
    shared = [f"{val_cohort.ids[k]} = {train_cohort.ids[trained[d]]}"
              for k, image in enumerate(val_images) if (d := pixel_digest(image)) in trained]
    if shared:
        say(f"{len(shared)} held-out image(s) have the same pixels as a training image, so the validation "
            f"PSNR counts them as unseen; remove the copies from the cohort: {listing(shared)}")


def _grown_fraction(cohort, seed: int, say) -> float:
    """The default held-out share: :data:`VAL_FRACTION`, grown by 0.05 up to :data:`MAX_VAL_FRACTION`
    until :data:`FEW_PATIENTS` patients are held out, where the cohort has enough patients to spare."""
    from ..data.cohort import CohortWarning

    fraction = VAL_FRACTION
    if len(cohort) < MIN_IMAGES_FOR_VALIDATION or len(set(map(str, _patients(cohort)))) < 4 * FEW_PATIENTS:
        return fraction

    def held(share: float) -> int:
        with warnings.catch_warnings():  # the split that is kept warns once, below
            warnings.simplefilter("ignore", CohortWarning)
            return len(set(map(str, _patients(cohort.patient_split((1 - share, share), seed=seed)[1]))))

    first = patients = held(fraction)
    while patients < FEW_PATIENTS and fraction < MAX_VAL_FRACTION - 1e-9:
        fraction = round(fraction + 0.05, 2)
        patients = held(fraction)
    if fraction != VAL_FRACTION:
        say(f"the default --val-fraction {VAL_FRACTION:g} would hold out {first} patient(s); {fraction:g} holds out "
            f"{patients}, so that the validation PSNR rests on more than a few (give --val-fraction to choose)")
    return fraction


def _patients(cohort) -> list:
    if cohort.patient_column is None:
        return list(cohort.ids)
    return cohort.table[cohort.patient_column].astype(object).where(
        cohort.table[cohort.patient_column].notna(), None).tolist()


def _held_out_record(val_cohort, args) -> dict:
    patients = _patients(val_cohort)
    return {"ids": [str(i) for i in val_cohort.ids], "patients": len(set(map(str, patients))),
            "patient_column": val_cohort.patient_column, "fraction": args.val_fraction, "seed": args.val_seed,
            "file": HELD_OUT_NAME}


def _write_held_out(val_cohort, path: Path) -> None:
    import pandas as pd

    from ..fileio import atomic_write

    table = pd.DataFrame({"image_id": val_cohort.ids, "patient": _patients(val_cohort)})
    with atomic_write(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


def _first(ids, n: int = 5) -> str:
    ids = [str(i) for i in ids]
    return ", ".join(ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")
