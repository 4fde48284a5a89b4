"""Do the latent readers measure what the oracle measures? On the bundled demo, where the oracle reads
every phantom factor off an image, the same films are read both ways.

For each factor the oracle reads, 16 patients are stepped -1..+1 SD along its mean-shift direction
(7 frames). The oracle reads every factor on the frames; the latent readers
(:mod:`seegaan_explore.explore.readers`, fitted on the demo's 400 encoded phantoms, held out by
patient) read them on the re-encoded frames. Each prints one JSON line: per target, the achieved /
intended change and the leakage into every other factor (in its SDs per SD of the target), median
over the patients, both ways; the last line, the agreement over all pairs, the share of pairs where
the readers read at least as much leakage as the oracle, and for how many targets the readers read
the target's own change higher than the oracle.

    python benchmarks/readers_vs_oracle.py
"""

from __future__ import annotations

import json

import numpy as np
import torch

from seegaan_explore.demo import load_demo
from seegaan_explore.explore import quality
from seegaan_explore.explore.readers import read_film, readers_of
from seegaan_explore.explore.study import Study
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.model.cnn import at_resolution_of

PATIENTS = 16


def main() -> None:
    demo = load_demo()
    study = Study(demo.latents, demo.table)
    probe = demo.oracle.predict(at_resolution_of(demo.oracle, torch.from_numpy(demo.images[:2]).float()[:, None]))
    factors = [c for c in probe.columns if c in study.attributes]
    readers = readers_of(study, factors, "patient_id")
    print(json.dumps({"readers": {n: readers[n].describe() for n in factors}}, ensure_ascii=False))
    pairs, higher = [], 0
    for target in factors:
        direction = study.direction(target)
        achieved = {"oracle": [], "readers": []}
        leakage = {}
        for row in range(PATIENTS):
            t = traverse(demo.model, demo.latents[row], direction, np.linspace(-1, 1, 7), in_sd=True)
            oracle = demo.oracle.predict(at_resolution_of(demo.oracle, torch.from_numpy(t.frames)[:, None]))
            reading = read_film(demo.model, t.frames, readers, factors)
            by_oracle = quality.score(t, oracle[target].to_numpy(float),
                                      others={f: oracle[f].to_numpy(float) for f in factors if f != target})
            achieved["oracle"].append(by_oracle["achieved_over_intended"])
            if target in reading.values:
                achieved["readers"].append(quality.score(t, reading.values[target])["achieved_over_intended"])
            by_readers = quality.score(t, None, others=reading.others(target)).get("leakage", {})
            for other, slope in by_readers.items():
                unit = direction.scale / study.sd(other, False)  # its SDs per SD of the target
                leakage.setdefault(other, {"oracle": [], "readers": []})
                leakage[other]["oracle"].append(by_oracle["leakage"][other] * unit)
                leakage[other]["readers"].append(slope * unit)
        medians = {other: {way: round(float(np.median(v)), 3) for way, v in ways.items()}
                   for other, ways in leakage.items()}
        pairs += [(m["oracle"], m["readers"]) for m in medians.values()]
        if achieved["readers"]:
            higher += int(np.median(achieved["readers"]) > np.median(achieved["oracle"]))
        print(json.dumps({"target": target, "achieved_over_intended": {
            way: round(float(np.median(v)), 3) if v else None for way, v in achieved.items()},
            "leakage_sd_per_sd": medians}))
    oracle, readers_read = np.array(pairs).T
    print(json.dumps({"pairs": len(pairs), "pearson_r": round(float(np.corrcoef(oracle, readers_read)[0, 1]), 3),
                      "median_abs_difference_sd_per_sd": round(float(np.median(np.abs(oracle - readers_read))), 3),
                      "readers_read_at_least_as_much": round(float(np.mean(np.abs(readers_read) >= np.abs(oracle))), 3),
                      "targets_read_higher_than_the_oracle": f"{higher} of {len(factors)}"}))


if __name__ == "__main__":
    main()
