"""How long a clinician waits: attribute change -> film ready, with integrated gradients selected.

The explorer renders the film first (``render(..., attribution=False)``) and the attribution after
(``Renderer.attribute``). This measures both on the bundled demo, for every attribute the dashboard
offers, each a fresh traversal (nothing from the caches but the cohort's), on this machine; and the
film of the patient nearest in the attribute after it (a click on a neighbour in the cohort map),
as the dashboard draws both: calibrated, unless ``--no-calibrate``.

    python benchmarks/film_latency.py [--no-calibrate]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from seegaan_explore.demo import load_demo
from seegaan_explore.explore.calibration import other_patients
from seegaan_explore.ui.renderer import Renderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false")
    calibrate = parser.parse_args().calibrate
    kwargs = load_demo().explorer_kwargs()
    kwargs.pop("note")
    renderer = Renderer(**kwargs)
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
    print(json.dumps({"attributes": len(film), "calibrate": calibrate,
                      "film_s_median": round(float(np.median(film)), 3), "film_s_max": round(float(np.max(film)), 3),
                      "neighbour_film_s_median": round(float(np.median(neighbour)), 3),
                      "neighbour_film_s_max": round(float(np.max(neighbour)), 3),
                      "integrated_gradients_after_s_median": round(float(np.median(attribution)), 3)}))


if __name__ == "__main__":
    main()
