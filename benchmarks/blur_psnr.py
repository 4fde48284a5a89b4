"""What PSNR a merely blurred image scores against the noise-free phantom render: a scale for the
autoencoder's reconstruction PSNR (a reconstruction that is only blurred by sigma px scores this).

    python benchmarks/blur_psnr.py [--size 128] [--patients 8]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter

from seegaan_explore.data.phantoms import render_noise_free, sample_individual
from seegaan_explore.evaluate import PATIENT_SEED
from seegaan_explore.explore.quality import psnr_db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--patients", type=int, default=8)
    args = parser.parse_args()
    clean = [render_noise_free(sample_individual(PATIENT_SEED, i), args.size).image for i in range(args.patients)]
    for sigma in (0.5, 1.0, 1.5, 2.0):
        print(f"Gaussian blur sigma {sigma} px: {np.mean([psnr_db(gaussian_filter(c, sigma), c) for c in clean]):.2f} dB")


if __name__ == "__main__":
    main()
