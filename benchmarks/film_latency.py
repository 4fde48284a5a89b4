"""How long a clinician waits: attribute change -> film ready, with integrated gradients selected.

The explorer renders the film first (``render(..., attribution=False)``) and the attribution after
(``Renderer.attribute``). This measures both on the bundled demo, for every attribute the dashboard
offers, each a fresh traversal, on this machine; and the film of the patient nearest in the
attribute after it (a click on a neighbour in the cohort map), as the dashboard draws both:
calibrated, unless ``--no-calibrate``. It does so twice, in an empty cache for what is remembered
(:mod:`~seegaan_explore.explore.memo`): as the first kernel that calibrates these directions, and
as a later kernel (a reload, the next viewer, the next start), which reads the other patients'
films the first one read back from the cache.

    python benchmarks/film_latency.py [--no-calibrate]
    python benchmarks/film_latency.py --checkpoint CKPT --data cohort.csv --image-root images/ [--cnn CNN]

With ``--checkpoint`` and ``--data`` it measures your own model on your own cohort, as ``serve``
loads them (no oracle: a CNN of the attribute or a trusted latent reader calibrates, where one exists).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from seegaan_explore.demo import load_demo
from seegaan_explore.explore.calibration import other_patients
from seegaan_explore.ui.renderer import Renderer


def waits(renderer: Renderer, calibrate: bool) -> dict[str, float]:
    """Median and longest waits, in seconds, for a film of every attribute, its neighbour's and the attribution."""
    renderer.render({"patient": 0, "method": None, "calibrate": calibrate})  # warm: the cohort's PSNR, a fit
    film, neighbour, attribution = [], [], []
    for k, attribute in enumerate(a for a in renderer.study.attributes if a != "cnn_prediction"):
        args = {"attribute": attribute, "patient": 10 + k, "method": "integrated_gradients", "calibrate": calibrate}
        started = time.perf_counter()
        result = renderer.render(args, attribution=False)
        film.append(time.perf_counter() - started)
        started = time.perf_counter()
        renderer.attribute(result)
        attribution.append(time.perf_counter() - started)
        started = time.perf_counter()
        renderer.render({**args, "patient": other_patients(renderer.study, attribute, 10 + k)[0]}, attribution=False)
        neighbour.append(time.perf_counter() - started)
    return {"attributes": len(film), "film_s_median": round(float(np.median(film)), 3),
            "film_s_max": round(float(np.max(film)), 3),
            "neighbour_film_s_median": round(float(np.median(neighbour)), 3),
            "neighbour_film_s_max": round(float(np.max(neighbour)), 3),
            "integrated_gradients_after_s_median": round(float(np.median(attribution)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false")
    parser.add_argument("--checkpoint", help="your autoencoder (default: the bundled demo's)")
    parser.add_argument("--data", help="its cohort, an image folder or a table (with --checkpoint)")
    parser.add_argument("--image-root", help="the folder the table's ids or paths are relative to")
    parser.add_argument("--cnn", help="a CNN under explanation (optional)")
    args = parser.parse_args()
    calibrate = args.calibrate
    if args.checkpoint:
        from seegaan_explore.ui.session import CohortSource, load_cohort_source

        kwargs = load_cohort_source(CohortSource(checkpoint=args.checkpoint, data=args.data,
                                                 image_root=args.image_root, cnn=args.cnn))
        kwargs["framing"] = kwargs.pop("import_options")["framing"]
    else:
        kwargs = load_demo().explorer_kwargs()
    kwargs.pop("note")
    with tempfile.TemporaryDirectory() as memo:
        kwargs["cache_dir"] = memo  # the cohort's latents and images stay where load_demo found them
        first = waits(Renderer(**kwargs), calibrate)
        later = waits(Renderer(**kwargs), calibrate)
    print(json.dumps({"calibrate": calibrate, "first_kernel": first, "later_kernel": later}))


if __name__ == "__main__":
    main()
