"""The OMG-Seg model: frozen CLIP backbone, pixel decoder, masked-attention decoder, prompts, OV classifier."""

from omg_core.model.build import create_model, get_model_config, list_models, register_model_config
from omg_core.model.config import ModelConfig
from omg_core.model.inputs import OMGInputs
from omg_core.model.omg_model import OMGModel
from omg_core.model.outputs import AuxiliaryPrediction, OMGOutputs

__all__ = [
    "AuxiliaryPrediction",
    "ModelConfig",
    "OMGInputs",
    "OMGModel",
    "OMGOutputs",
    "create_model",
    "get_model_config",
    "list_models",
    "register_model_config",
]
