"""How long a clinician waits: attribute change -> film ready, with integrated gradients selected.

The explorer renders the film first (``render(..., attribution=False)``) and the attribution after
(``Renderer.attribute``). This measures both on the bundled demo, for every attribute the dashboard
offers, each a fresh traversal (nothing from the caches but the cohort's), on this machine.

    python benchmarks/film_latency.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from seegaan_explore.demo import load_demo
from seegaan_explore.ui.renderer import Renderer


def main() -> None:
    kwargs = load_demo().explorer_kwargs()
    kwargs.pop("note")
    renderer = Renderer(**kwargs)
    renderer.render({"patient": 0, "method": None})  # warm: the cohort's PSNR, the first direction fits
    film, attribution = [], []
    for k, attribute in enumerate(a for a in renderer.study.attributes if a != "cnn_prediction"):
        args = {"attribute": attribute, "patient": 10 + k, "method": "integrated_gradients"}
        started = time.perf_counter()
        result = renderer.render(args, attribution=False)
        film.append(time.perf_counter() - started)
        started = time.perf_counter()
        renderer.attribute(result)
        attribution.append(time.perf_counter() - started)
    print(json.dumps({"attributes": len(film), "film_s_median": round(float(np.median(film)), 3),
                      "film_s_max": round(float(np.max(film)), 3),
                      "integrated_gradients_after_s_median": round(float(np.median(attribution)), 3)}))


if __name__ == "__main__":
    main()
