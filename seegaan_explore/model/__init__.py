"""Networks, presets and checkpoint IO. Knows nothing of cohorts or widgets."""

from .checkpoint import CheckpointError, load_model, read_metadata, save_model
from .config import PRESETS, ModelConfig, preset_config
from .networks import Discriminator, Encoder, Generator, MappingNetwork, count_parameters
from .seegaan import SeeGaan

__all__ = [
    "CheckpointError", "Discriminator", "Encoder", "Generator", "MappingNetwork", "ModelConfig",
    "PRESETS", "SeeGaan", "count_parameters", "load_model", "preset_config", "read_metadata", "save_model",
]
