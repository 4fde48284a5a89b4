"""Why does a calibrated sex film fall short? How male the oracle reads the autoencoder's
reconstructions of men and women, against the phantoms themselves.

    python benchmarks/sex_reconstruction.py [--n 200]     # about 20 s on 2 cores
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.model.checkpoint import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms.cohort import generate_cohort
from seegaan_explore.phantoms.evaluation import FIT_SEED, as_read, encode_held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="fit-set phantoms (evaluate's seed) read")
    n = parser.parse_args().n
    model = load_model(WEIGHTS_DIR / FILES["autoencoder"]).eval()
    oracle = load_oracle(WEIGHTS_DIR / FILES["oracle"])
    held = encode_held_out(model, n, 16, oracle.config.factors, progress=False)
    male = held.fit_factors["sex"].to_numpy() == 1
    images, _ = generate_cohort(n, model.config.resolution, seed=FIT_SEED)
    read = {"the phantoms": oracle.predict(torch.from_numpy(as_read(images, held.fit_windows))[:, None])["sex"],
            "their reconstructions": oracle.predict(model.decode(torch.from_numpy(held.fit_latents), noise=0))["sex"]}
    print("| P(male) as the oracle reads it (median, 10th-90th percentile) | men | women |")
    print("|---|---|---|")
    for what, values in read.items():
        values = values.to_numpy()
        cells = [f"{np.median(v):.2f} ({np.percentile(v, 10):.2f}-{np.percentile(v, 90):.2f})"
                 for v in (values[male], values[~male])]
        print(f"| {what} | {' | '.join(cells)} |")
    print(f"{male.sum()} men and {(~male).sum()} women of the fit set (seed {FIT_SEED}); bundled models")


if __name__ == "__main__":
    main()
