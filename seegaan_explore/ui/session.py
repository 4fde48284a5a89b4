"""What a served dashboard shows: the built-in demo, or a user's own model and cohort.

``seegaan-explore serve`` checks and encodes the cohort before Voila starts (so that a mistake is one
line in the terminal, not a broken page), then hands the kernels the same plain arguments as JSON in
one environment variable. The dashboard notebook calls :func:`dashboard_kwargs` and stays one line;
nothing in it depends on the cohort, and nothing is executed from the arguments.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

SESSION_ENV = "SEEGAAN_EXPLORE_SESSION"  # JSON of a CohortSource; absent: the built-in demo

__all__ = ["SESSION_ENV", "CohortSource", "dashboard_kwargs", "load_cohort_source"]


@dataclass(frozen=True)
class CohortSource:
    """A user's model and cohort, as the command line names them (paths as strings, so that it is
    JSON). ``filters`` holds :class:`~seegaan_explore.data.formats.ImportFilter`'s fields."""

    checkpoint: str
    data: str
    image_root: str | None = None
    id_column: str | None = None
    path_column: str | None = None
    patient_column: str | None = None
    cache_dir: str | None = None
    cnn: str | None = None
    dictionary: str | None = None
    framing: str = "pad"
    colour: str = "refuse"
    filters: dict | None = None
    device: str | None = None
    precision: str = "auto"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CohortSource:
        fields = json.loads(text)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{SESSION_ENV} names unknown settings: {', '.join(sorted(unknown))}")
        return cls(**fields)


def _import_filter(fields: dict | None):
    from ..data.formats import ImportFilter

    if fields is None:
        return ImportFilter()
    return ImportFilter(**{k: None if v is None else tuple(v) for k, v in fields.items()})


def load_cohort_source(source: CohortSource, *, progress: bool = False) -> dict:
    """The :class:`~seegaan_explore.ui.explorer.Explorer` arguments for ``source``: the model, the
    cohort's latents (encoded once into the latent store, read back after), table, images, the CNN and
    the data dictionary where given."""
    import numpy as np

    from ..data.cohort import Cohort
    from ..device import default_device
    from ..explore.dictionary import read_dictionary
    from ..explore.latents import encode_cohort
    from ..explore.study import CNN_PREDICTION
    from ..model.checkpoint import load_model
    from ..model.cnn import load_cnn

    for what, path in (("checkpoint", source.checkpoint), ("CNN", source.cnn), ("data dictionary", source.dictionary)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
    dictionary = read_dictionary(source.dictionary) if source.dictionary else None
    device = default_device(source.device)
    model = load_model(source.checkpoint, device, with_training_networks=False).eval()
    model.precision = source.precision
    cnn = load_cnn(source.cnn, device) if source.cnn else None
    options = {"filters": _import_filter(source.filters), "framing": source.framing, "colour": source.colour}
    data = Path(source.data)
    if data.is_dir():
        cohort = Cohort.from_folder(data, progress=progress, **options)
    else:
        cohort = Cohort.from_table(data, source.image_root, id_column=source.id_column,
                                   path_column=source.path_column, patient_column=source.patient_column, **options)
    latents = encode_cohort(model, cohort, source.cache_dir, progress=progress)
    table = latents.join(cohort.table).reset_index()
    images = np.asarray(cohort.images(model.config.resolution, source.cache_dir, progress=progress))
    if dictionary:
        unknown = [c for c in dictionary if c not in table.columns and c != CNN_PREDICTION]
        if unknown:
            raise ValueError(f"{source.dictionary}: the dictionary names columns the table lacks: "
                             f"{', '.join(unknown)}")
    return {"model": model, "latents": np.asarray(latents.latents), "table": table, "cnn": cnn,
            "images": images, "dictionary": dictionary, "cache_dir": source.cache_dir, "import_options": options,
            "note": f"{len(table)} radiographs of {data.name}, model {Path(source.checkpoint).name}"}


def dashboard_kwargs(environ: dict | None = None) -> dict:
    """What the served dashboard shows: the cohort ``serve`` named in :data:`SESSION_ENV`, else the
    built-in demo."""
    text = (os.environ if environ is None else environ).get(SESSION_ENV)
    if not text:
        from ..demo import load_demo

        return load_demo().explorer_kwargs()
    return load_cohort_source(CohortSource.from_json(text))
