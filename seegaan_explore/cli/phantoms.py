"""``phantoms`` and ``evaluate``: write a phantom cohort, and score traversals against its true counterfactuals."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from .common import add_threads_argument, user_errors

__all__ = ["add_evaluate", "add_phantoms"]


def add_phantoms(sub) -> None:
    p = sub.add_parser(
        "phantoms",
        help="write a synthetic chest-radiograph cohort with known causal ground truth",
        description="Write N phantom chest radiographs (PNG or DICOM) and their clinical table (CSV).",
    )
    p.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    p.add_argument("--format", dest="fmt", choices=("png", "dicom"), default="png", help="image format")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    p.add_argument("--start", type=int, default=0, help="first individual index (default 0)")
    p.add_argument("--randomize", default="", metavar="FACTORS",
                   help="comma-separated factors assigned at random, not by their causes "
                        "(e.g. severity,view,device: the oracle's cohort)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=user_errors(_run_phantoms))


def _run_phantoms(args) -> int:
    import time

    from ..phantoms import write_cohort

    t0 = time.perf_counter()
    table = write_cohort(
        args.out,
        n=args.n,
        size=args.size,
        seed=args.seed,
        fmt=args.fmt,
        progress=not args.no_progress,
        workers=args.workers,
        start=args.start,
        randomize=tuple(name.strip() for name in args.randomize.split(",") if name.strip()),
    )
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(table)} phantoms ({args.size}px) and phantoms.csv to {args.out} in {dt:.1f}s "
        f"({60 * len(table) / max(dt, 1e-9):.0f} images/min)"
    )
    return 0


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score traversals against the phantoms' true counterfactuals",
                       description="On held-out phantoms: reconstruction PSNR against the noise-free render, and "
                                   "per attribute (NT-proBNP unconditioned and conditioned on age and view, "
                                   "severity, age, sex, view) the oracle's Spearman along the traversal, "
                                   "achieved/intended change (uncalibrated, and calibrated on other phantoms), "
                                   "leakage into the other factors (with a 95% bootstrap interval; the oracle that "
                                   "read it named) and the correlation of the difference map with the true "
                                   "counterfactual's, beside its ceiling on an ideal latent and their ratio. "
                                   "Defaults to the bundled demo models.")
    p.add_argument("--checkpoint", type=Path, help="autoencoder checkpoint (default: the bundled demo model)")
    rulers = p.add_mutually_exclusive_group()
    rulers.add_argument("--oracle", type=Path, help="oracle checkpoint that reads every frame (default: the bundled "
                                                    "oracle, the one the dashboard and the notebooks use)")
    rulers.add_argument("--ruler", choices=("bundled", "randomized-trial"), default="bundled",
                        help="which bundled oracle reads every frame: randomized-trial is the documented ruler of "
                             "leakage, trained on phantoms whose view, severity and device were assigned at random, "
                             "so that it cannot read one from another")
    p.add_argument("--fit", type=int, default=1000, help="held-out phantoms the directions are fitted on")
    p.add_argument("--patients", type=int, default=16, help="held-out patients traversed per attribute")
    p.add_argument("--frames", type=int, default=7, help="frames per traversal scored")
    p.add_argument("--estimator", default="mean_shift", choices=("mean_shift", "spline_mean_shift"),
                   help="the straight mean shift (default), or each patient's slope of a spline at its own value "
                        "(continuous attributes)")
    p.add_argument("--reconstructed", type=int, default=200,
                   help="held-out phantoms the reconstruction PSNR is averaged over (at least --patients)")
    p.add_argument("--calibration", type=int, default=8, metavar="N",
                   help="fit-set phantoms (never the scored patients), the nearest to each patient in the attribute, "
                        "its film is calibrated on as the dashboard calibrates one before achieved/intended is "
                        "measured again (default 8; 0: no calibration)")
    p.add_argument("--ceiling-fit", type=int, default=5000, metavar="N",
                   help="phantom tables the ideal latent's directions are fitted on, for diffmap r's ceiling "
                        "(default 5000)")
    p.add_argument("--ruler-name", metavar="NAME",
                   help="what the output calls the oracle that reads the frames (default: which bundled oracle, "
                        "or the --oracle file's path)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON line, the table going to stderr")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=user_errors(_run_evaluate))


def _run_evaluate(args) -> int:
    from ..demo import FILES, WEIGHTS_DIR
    from ..model.checkpoint import load_model
    from ..model.oracle import load_oracle
    from ..phantoms.evaluation import evaluate

    model = load_model(args.checkpoint or WEIGHTS_DIR / FILES["autoencoder"], device=args.device).eval()
    if args.oracle:
        path, ruler = args.oracle, f"the oracle {args.oracle}"
    else:
        name, words = {"bundled": ("oracle", "the bundled oracle"),
                       "randomized-trial": ("ruler", "the randomized-trial oracle")}[args.ruler]
        path, ruler = WEIGHTS_DIR / FILES[name], f"{words} ({FILES[name]})"
    oracle = load_oracle(path, device=args.device)
    ruler = args.ruler_name or ruler
    result = evaluate(model, oracle, n_fit=args.fit, n_patients=args.patients, frames=args.frames,
                      n_reconstructed=args.reconstructed, estimator=args.estimator, n_calibration=args.calibration,
                      ceiling_fit=args.ceiling_fit, ruler=ruler, progress=not args.no_progress)
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout)  # stdout: the JSON alone
    say(f"reconstruction PSNR {result['reconstruction_psnr_db']:.1f} dB "
          f"(SD {result['reconstruction_psnr_sd_db']:.1f} dB over {result['n_reconstructed']} phantoms, "
          "vs their noise-free renders)")
    say(f"read by {ruler}; 'calib.': achieved/intended of the film calibrated on "
          f"{result['calibration']['phantoms']} phantoms, {result['calibration']['from']}, against the ruler's "
          "'gain' (what it reads of a difference between the fit set's own exams; '/gain': calib. over it); "
          f"'ceiling': diffmap r of {args.estimator} on an ideal latent (the renderer's inputs, {args.ceiling_fit} "
          "phantom tables)")
    say(f"{'attribute':<20} {'spearman':>8} {'achieved':>8} {'calib.':>6} {'gain':>5} {'/gain':>5} {'on truth':>8} "
          f"{'diffmap r':>9} {'ceiling':>7} {'share':>5} {'age leak':>9} {'view leak':>9}")
    for name, s in result["attributes"].items():
        leak = [f"{s['leakage'][f]:+9.3f}" if f in s["leakage"] else f"{'target':>9}" for f in ("age", "view")]
        calibrated, gain, over_gain, share = ("—" if v is None else f"{v:.2f}" for v in (
            s["achieved_over_intended_calibrated"], s["ruler_gain"], s["achieved_over_gain_calibrated"],
            s["diffmap_r_share"]))
        say(f"{name:<20} {s['spearman']:8.2f} {s['achieved_over_intended']:8.2f} {calibrated:>6} {gain:>5} "
              f"{over_gain:>5} {s['achieved_on_truth']:8.2f} {s['diffmap_r']:9.2f} {s['diffmap_r_ceiling']:7.2f} "
              f"{share:>5} " + " ".join(leak))
    for factor, ratio in result.get("conditioned_leakage_ratio", {}).items():
        low, high = result["conditioned_leakage_ratio_ci95"][factor]
        ideal = result["conditioned_leakage_ratio_on_truth"][factor]
        say(f"conditioning on age and view leaves {ratio:.0%} of NT-proBNP's leakage into {factor} "
              f"(95% bootstrap interval over patients {low:.0%} to {high:.0%}; read by {ruler}; "
              f"{ideal:.0%} on the true counterfactuals)")
    if args.json:
        print(json.dumps(result))
    return 0
