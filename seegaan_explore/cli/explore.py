"""``encode``, ``direction`` and ``attribute``: a cohort in latent space, its attribute directions,
and where the attribute CNN looks (``traverse`` and ``export``, the films: :mod:`.films`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import (
    add_autoencoder_arguments,
    add_cohort_arguments,
    add_optional_cohort_arguments,
    add_threads_argument,
    autoencoder,
    check_ids,
    encoded_cohort,
    load_cohort,
    load_named_image,
    output_names,
    safe_name,
    user_errors,
)
from .directions import (
    CNN_PREDICTION,
    add_direction_fit_arguments,
    attribute_cnn,
    cohort_study,
    fit_cohort_direction,
    said_rows,
)

__all__ = ["add_attribute", "add_direction", "add_encode"]

def add_encode(sub) -> None:
    p = sub.add_parser("encode", help="encode a cohort into the latent store",
                       description="Encode every image of a cohort with the checkpoint's EMA encoder into the "
                                   "latent store (under --cache-dir). Unchanged images are never encoded twice; "
                                   "changed ones are. Multi-process: torchrun --nproc-per-node N -m "
                                   "seegaan_explore encode ...")
    add_cohort_arguments(p)
    add_autoencoder_arguments(p)
    add_threads_argument(p)
    p.set_defaults(run=user_errors(_run_encode))


def _run_encode(args) -> int:
    from ..explore.latents import encode_cohort
    from ..model import load_model
    from ..train.distributed import init_from_environment

    group = init_from_environment(args.device)
    progress = not args.no_progress and group.is_main
    model = load_model(args.checkpoint, group.device, with_training_networks=False)
    model.precision = args.precision
    cohort = load_cohort(args, progress)
    latents = encode_cohort(model, cohort, args.cache_dir, batch_size=args.batch_size, progress=progress)
    if group.is_main:
        from .check import default_report_path, report_import

        report_import(cohort, default_report_path(args.data, args.cache_dir))
        for image_id, path, reason in latents.skipped:
            print(f"skipped {image_id} ({path}): {reason}", file=sys.stderr)
        print(f"{len(latents)} latents ({latents.encoded} encoded now, {len(latents) - latents.encoded} from the "
              f"store, {len(latents.skipped)} images skipped) in {latents.path}", file=sys.stderr)
        print(json.dumps({"images": len(latents), "encoded": latents.encoded, "skipped": len(latents.skipped),
                          "w_dim": int(latents.latents.shape[1]), "store": str(latents.path)}))
    return 0


def add_direction(sub) -> None:
    p = sub.add_parser("direction", help="fit attribute directions in latent space",
                       description="Encode the cohort (from the latent store when unchanged), fit one direction "
                                   "per attribute and write each as <out>/<attribute>[.ln].<estimator>.safetensors "
                                   "(vector, units and diagnostics). Prints one JSON line per direction.")
    add_cohort_arguments(p)
    add_autoencoder_arguments(p)
    p.add_argument("--attribute", required=True, nargs="+",
                   help=f"table column(s); of a categorical column one level against the rest (view=PA) or "
                        f"against a reference level (view=PA:AP); or {CNN_PREDICTION} (with --cnn) for what the CNN "
                        f"predicts")
    p.add_argument("--cnn", type=Path, help="CNN checkpoint whose prediction is the attribute cnn_prediction")
    add_direction_fit_arguments(p)
    p.add_argument("--at", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="spline_mean_shift: the range of the attribute (ln units with --log) its slope is taken "
                        "over (default: the cohort's mean +/- 1 SD)")
    p.add_argument("--out", required=True, type=Path, help="folder for the direction files")
    add_threads_argument(p)
    p.set_defaults(run=user_errors(_run_direction))


def _run_direction(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from ..explore.archives import save_direction
    from ..explore.attributes import split_scaled_name

    progress = not args.no_progress
    model = autoencoder(args)
    cohort, latents = encoded_cohort(args, model, progress)
    from .check import report_import

    report_import(cohort, args.out / "import-report.csv")
    study = cohort_study(cohort, latents, args, cnn=attribute_cnn(args))
    for attribute in tqdm(args.attribute, desc="Directions", unit="attribute",
                          disable=not progress or len(args.attribute) < 2):
        direction = fit_cohort_direction(study, attribute, args)
        attribute = split_scaled_name(direction.attribute)[0]  # a contrast as the table spells it: view=PA
        path = args.out / f"{safe_name(attribute)}{'.ln' if args.log else ''}.{args.estimator}.safetensors"
        save_direction(direction, path)
        if said_rows(direction):
            print(said_rows(direction), file=sys.stderr)
        scalars = {k: v for k, v in direction.diagnostics.items() if isinstance(v, (int, float, str, tuple))}
        print(json.dumps({"attribute": direction.attribute, "estimator": direction.estimator,
                          "kind": direction.kind, "ends": list(direction.ends), "sd": direction.scale,
                          "norm": float(np.linalg.norm(direction.vector)), **scalars,
                          "dropped": direction.diagnostics.get("dropped", []), "file": str(path)}))
    return 0


def add_attribute(sub) -> None:
    from ..explore.attribution import METHODS

    p = sub.add_parser("attribute", help="attribution maps of the attribute CNN for images",
                       description="Write <out>/<image>.<method>.png (the image beside the map over it) and "
                                   ".npy (the map at the CNN's resolution) per image; prints the CNN's prediction.")
    p.add_argument("--cnn", required=True, type=Path, help="attribute CNN checkpoint (from train-cnn)")
    p.add_argument("--method", default="gradcam", choices=list(METHODS), help="attribution method")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", nargs="+", help="image id(s) of the cohort (needs --data)")
    who.add_argument("--image", nargs="+", type=Path, help="image file(s)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_optional_cohort_arguments(p, "--id")
    p.set_defaults(run=user_errors(_run_attribute))


def _run_attribute(args) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from ..device import default_device
    from ..explore.attribution import attribute
    from ..explore.export import save_attribution_png
    from ..fileio import atomic_write
    from ..model.cnn import load_cnn

    progress = not args.no_progress
    cnn = load_cnn(args.cnn, default_device(args.device))
    resolution = cnn.config.resolution
    if args.id:
        if args.data is None:
            raise ValueError("--id needs --data: the cohort the ids belong to")
        cohort = load_cohort(args, progress)
        images = cohort.images(resolution, args.cache_dir, progress=progress)
        rows = {image_id: k for k, image_id in enumerate(cohort.ids)}
        check_ids(args.id, rows, cohort, args.data)
        subjects = [(i, np.asarray(images[rows[i]], np.float32)) for i in args.id]
    else:
        subjects = [(name, load_named_image(path, resolution, args))
                    for path, name in zip(args.image, output_names(args.image))]
    for name, image in tqdm(subjects, desc="Attributions", unit="image", disable=not progress or len(subjects) < 2):
        x = torch.from_numpy(image)[None, None]
        attribution_map = attribute(cnn, x, args.method)[0]
        stem = args.out / f"{safe_name(name)}.{args.method}"
        save_attribution_png(image, attribution_map, stem.with_name(stem.name + ".png"))
        with atomic_write(stem.with_name(stem.name + ".npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, attribution_map.astype(np.float32))
        print(json.dumps({"image": name, "method": args.method, "prediction": float(cnn.predict(x)[0]),
                          "png": str(stem) + ".png", "npy": str(stem) + ".npy"}))
    return 0
