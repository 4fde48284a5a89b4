"""How coarsely a model draws a cohort, in a blur a clinician can picture: the cohort's reconstruction
PSNR (median and 5th percentile over 64 images, as the dashboard's verdict reads it) and the Gaussian
blur that takes an image as far from itself (``quality.cohort_psnr``). The verdict names a model
whose blur is 2% of the image's width or more.

    python benchmarks/cohort_blur.py
    python benchmarks/cohort_blur.py --checkpoint CKPT --data cohort.csv --image-root images/
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from seegaan_explore.demo import load_demo
from seegaan_explore.explore.quality import cohort_psnr
from seegaan_explore.explore.verdict import COARSE_BLUR_SHARE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="your autoencoder (default: the bundled demo's, on its phantoms)")
    parser.add_argument("--data", help="its cohort, an image folder or a table (with --checkpoint)")
    parser.add_argument("--image-root", help="the folder the table's ids or paths are relative to")
    args = parser.parse_args()
    if args.checkpoint:
        from seegaan_explore.ui.session import CohortSource, load_cohort_source

        kwargs = load_cohort_source(CohortSource(checkpoint=args.checkpoint, data=args.data,
                                                 image_root=args.image_root))
    else:
        kwargs = load_demo().explorer_kwargs()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as memo:  # measured, not read back
        psnr = cohort_psnr(kwargs["model"], kwargs["latents"], lambda rows: [kwargs["images"][k] for k in rows], memo)
    print(json.dumps({"checkpoint": args.checkpoint or "bundled", "median_psnr_db": round(psnr.median, 2),
                      "p5_psnr_db": round(psnr.low, 2), "blur_px": round(psnr.blur_px, 2),
                      "resolution": psnr.resolution, "blur_share": round(psnr.blur_px / psnr.resolution, 4),
                      "named_coarse": psnr.blur_px >= COARSE_BLUR_SHARE * psnr.resolution,
                      "seconds": round(time.perf_counter() - started, 2)}))


if __name__ == "__main__":
    main()
