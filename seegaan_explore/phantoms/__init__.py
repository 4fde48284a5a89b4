"""Phantom chest radiographs with a known causal ground truth, and traversals scored against it.

A synthetic cohort in three separate stages (equations in ``docs/phantoms.md``):

1. :func:`sample_individual` draws all exogenous noise of one individual from ``(seed, index)``
   (SCM noise terms, anatomy/pose, and a render seed for textures and quantum noise).
2. :func:`factors` evaluates the structural causal model: exogenous noise plus interventions
   (``do={'severity': 0.8, 'view': 'AP'}``) give the row of the clinical table.  Intervened
   factors are fixed; their descendants are recomputed from the same noise.
3. :func:`render` draws the radiograph and ground-truth masks from the row and the exogenous anatomy.

Re-rendering the same individual with ``do=...`` is the true counterfactual.

Example::

    ind = sample_individual(seed=0, index=12)
    base = render(ind, 256)
    worse = render(ind, 256, do={"severity": 0.9})
    diff = worse.image - base.image          # the true counterfactual difference map

The modules, in the order of the stages:

* :mod:`.causal`: the individual (exogenous noise) and the structural causal model (factors, ``do``);
* :mod:`.anatomy`: the geometry of a chest from its factors (lungs, heart, vessels, ribs, spine);
* :mod:`.drawing`: the soft-edged shapes, the bitmap font and the textures it is drawn with;
* :mod:`.attenuation`: the attenuation map, stage by stage; :mod:`.radiograph`: the detector, the
  annotations and the masks (:func:`render`);
* :mod:`.cohort`: cohorts as a table, in memory, or written as PNG/DICOM with their CSV;
* :mod:`.specs`: each evaluated attribute's intervention (the true counterfactual of a traversal);
  :mod:`.evaluation`: an autoencoder's traversals scored against those counterfactuals (torch; not
  imported here), and :mod:`.ceiling`: what an ideal autoencoder would score (diffmap r's ceiling).
"""

from .causal import (
    ANATOMY_NORMAL,
    ANATOMY_UNIFORM,
    FACTOR_COLUMNS,
    NT_PROBNP_MAX,
    NT_PROBNP_MIN,
    SCM_NOISE,
    SCM_VERSION,
    Individual,
    factors,
    image_id,
    patient_id,
    randomized_do,
    sample_individual,
)
from .cohort import cohort_table, generate_cohort, to_uint16, write_cohort
from .radiograph import MASK_NAMES, Phantom, render, render_noise_free

__all__ = [
    "ANATOMY_NORMAL",
    "ANATOMY_UNIFORM",
    "FACTOR_COLUMNS",
    "MASK_NAMES",
    "NT_PROBNP_MAX",
    "NT_PROBNP_MIN",
    "SCM_NOISE",
    "SCM_VERSION",
    "Individual",
    "Phantom",
    "cohort_table",
    "factors",
    "generate_cohort",
    "image_id",
    "patient_id",
    "randomized_do",
    "render",
    "render_noise_free",
    "sample_individual",
    "to_uint16",
    "write_cohort",
]
