"""What PSNR a merely blurred image scores against the noise-free phantom render: a scale for the
autoencoder's reconstruction PSNR (a reconstruction that is only blurred by sigma px scores this).
Both are in the units ``seegaan-explore evaluate`` scores in: each exam's own intensity window.

    python benchmarks/blur_psnr.py [--size 128] [--patients 200]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter

from seegaan_explore.data.images import intensity_window
from seegaan_explore.explore.quality import psnr_db
from seegaan_explore.phantoms import generate_cohort, render_noise_free, sample_individual
from seegaan_explore.phantoms.evaluation import PATIENT_SEED, as_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--patients", type=int, default=200)
    args = parser.parse_args()
    exams = generate_cohort(args.patients, args.size, seed=PATIENT_SEED)[0]
    clean = as_read(np.stack([render_noise_free(sample_individual(PATIENT_SEED, i), args.size).image
                              for i in range(args.patients)]), [intensity_window(exam) for exam in exams])
    for sigma in (0.5, 1.0, 1.5, 2.0):
        scores = [psnr_db(gaussian_filter(c, sigma), c) for c in clean]
        print(f"Gaussian blur sigma {sigma} px: {np.mean(scores):.2f} dB")


if __name__ == "__main__":
    main()
