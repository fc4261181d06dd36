"""The `omg run` predictor: one TaskRequest and its QueryPlan in, the shared model's OMGOutputs out."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

import torch

from omg_core.errors import InputError, OMGError
from omg_core.model.build import create_model, get_model_config, list_models
from omg_core.model.inputs import OMGInputs
from omg_core.model.omg_model import OMGModel
from omg_core.model.outputs import OMGOutputs
from omg_core.model.vocabulary import load_vocabulary

if TYPE_CHECKING:
    from omg_core.config import RunModelConfig
    from omg_core.task_io import QueryPlan, TaskRequest


class OMGPredictor:
    """Runs an OMGModel on one sample at a time (batch of 1), in inference mode."""

    def __init__(self, model: OMGModel, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        """
        Arguments:
          model: the model (moved to `device` here).
          device: where to run.
          dtype: float32, or bfloat16 to run under autocast (weights stay float32).
        """
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be float32 or bfloat16, got {dtype}")
        self.model = model.to(device).eval()
        self.device = device
        self.dtype = dtype
        self.default_vocabulary = load_vocabulary(model.config.default_vocabulary)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.bfloat16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def inputs_for(self, request: TaskRequest, plan: QueryPlan) -> OMGInputs:
        """Translate a request and its plan into model inputs (batch of one sample)."""
        pixels = request.pixels
        expected_dims = 3 if request.modality == "image" else 4
        if pixels.dim() != expected_dims or pixels.shape[-3] != 3:
            layout = "3 x H x W" if request.modality == "image" else "T x 3 x H x W"
            raise InputError(f"{request.modality} pixels must be {layout} RGB, got {tuple(pixels.shape)}")
        images = pixels.to(self.device, torch.float32)[None]  # uint8 [0, 255] -> float [0, 255]

        if not isinstance(plan.learned_queries, bool):
            raise InputError(
                f"QueryPlan.learned_queries must be True (all of the model's learned queries) or False (none), got "
                f"{plan.learned_queries!r}"
            )
        points = point_labels = boxes = None
        prompts = plan.prompts
        if prompts is not None:
            if prompts.masks is not None:
                raise InputError("mask prompts are not supported by the OMG model; give points or boxes")
            if prompts.points is not None:
                points = prompts.points.to(self.device, torch.float32)[None]
                point_labels = prompts.point_labels.to(self.device)[None]
            if prompts.boxes is not None:
                boxes = prompts.boxes.to(self.device, torch.float32)[None]

        vocabulary = plan.vocabulary if plan.vocabulary is not None else self.default_vocabulary.texts
        seen = plan.seen_classes.to(self.device) if plan.seen_classes is not None else None
        return OMGInputs(
            images=images, points=points, point_labels=point_labels, boxes=boxes, class_names=list(vocabulary),
            seen_classes=seen, use_learned_queries=plan.learned_queries,
        )

    def __call__(self, request: TaskRequest, plan: QueryPlan) -> OMGOutputs:
        """
        Returns:
          OMGOutputs for this sample with a batch dimension of 1, on the predictor's device: class_logits
          1 x Q x (K + 1) over the plan's vocabulary (or the model's default vocabulary) plus void, mask_logits
          1 x Q x h x w (1 x Q x T x h x w for video) at stride 4 of the padded input; prompt queries follow
          the learned ones.
        """
        inputs = self.inputs_for(request, plan)
        try:
            with torch.inference_mode(), self._autocast():
                return self.model(inputs)
        except ValueError as error:  # malformed prompts or vocabulary reach the user as input errors
            raise InputError(str(error)) from error


def build_predictor(model_config: RunModelConfig) -> OMGPredictor:
    """Build the predictor `omg run` uses from the run config's model section.

    Arguments:
      model_config: omg_core.config.ModelConfig (name, weights, device, dtype).

    Returns:
      An OMGPredictor. With no weights file, a model with released weights is downloaded (see
      omg_core.weights.hub); any other model runs with random weights, with a warning.
    """
    from omg_core.weights.hub import RELEASED_CHECKPOINTS, from_pretrained

    name = model_config.name
    if name not in list_models():
        raise OMGError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    try:
        device = torch.device(model_config.device)
    except RuntimeError as error:
        raise OMGError(f"invalid device {model_config.device!r} ({error}); use e.g. 'cpu' or 'cuda:0'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OMGError(f"device {model_config.device!r} was asked for but CUDA is not available; use device 'cpu'")
    if model_config.weights is not None:
        if not model_config.weights.exists():
            raise OMGError(f"weights file {model_config.weights} does not exist")
        model = from_pretrained(model_config.weights, config=get_model_config(name))
    elif name in RELEASED_CHECKPOINTS:
        model = from_pretrained(name)
    else:
        warnings.warn(f"model {name!r} has no released weights and no weights file was given: running with random "
                      "weights (predictions are meaningless; set model.weights)", stacklevel=2)
        model = create_model(name)
    return OMGPredictor(model, device, getattr(torch, model_config.dtype))
