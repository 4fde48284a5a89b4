import math

import numpy as np
import pytest
import torch

from seegaan_explore.explore.latent_shift import latent_shift
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN
from seegaan_explore.model.config import preset_config
from seegaan_explore.model.seegaan import SeeGaan


@pytest.fixture(scope="module")
def model_and_cnn():
    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"), with_training_networks=False).eval()
    model.precision = "fp32"
    cnn = RadiographCNN(CnnConfig(resolution=32, widths=(8, 16), target_mean=4.0, target_std=2.0)).eval()
    return model, cnn


def test_stepping_along_latent_shift_raises_the_prediction_as_asked(model_and_cnn):
    model, cnn = model_and_cnn
    w0 = model.sample_w(1, seed=3)[0]
    direction = latent_shift(model, cnn, w0)
    assert direction.estimator == "latent_shift" and math.isnan(direction.scale)
    # small: first order holds (a random CNN is far from linear)
    amounts = np.array([-3e-4, -1.5e-4, 0.0, 1.5e-4, 3e-4])
    t = traverse(model, w0, direction, amounts)
    predicted = cnn.predict(torch.from_numpy(t.frames)[:, None]).numpy()
    slope = np.polyfit(amounts, predicted, 1)[0]
    assert slope == pytest.approx(1.0, rel=0.15)  # one unit of step = one unit of prediction
    assert direction.diagnostics["prediction_at_patient"] == pytest.approx(predicted[2], abs=1e-3)


def test_constant_cnn_has_no_latent_shift(model_and_cnn):
    model, _ = model_and_cnn

    class Constant(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=(1, 2, 3)) * 0

    with pytest.raises(ValueError, match="zero gradient"):
        latent_shift(model, Constant(), model.sample_w(1)[0])
