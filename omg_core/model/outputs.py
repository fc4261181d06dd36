"""What the model returns, as typed containers the task plugins consume."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from omg_core.postprocess import masks_to_image_size


@dataclass
class AuxiliaryPrediction:
    """Prediction of one decoder stage (before the first layer, or after a layer), for deep supervision.

    class_logits: B x Q x (K + 1) in-vocabulary logits, last column void.
    mask_logits: B x Q x h x w (images) or B x Q x T x h x w (clips), stride 4.
    iou_logits: B x Q x 1 mask-quality (objectness) logits of the stage; OMG-Seg supervises them on every stage.
    """

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    iou_logits: torch.Tensor | None = None


@dataclass
class OMGOutputs:
    """Final predictions of `OMGModel.forward`.

    class_logits: B x Q x (K + 1) class scores, last column void. Logits of the trained classifier, or, when
      `seen_classes` was given, log-probabilities of the geometric ensemble (both work with softmax).
    mask_logits: B x Q x h x w (images) or B x Q x T x h x w (clips) at stride 4 of the padded input
      (h = padded_size[0] / 4); crop to ceil(image_size / 4) or upsample and crop to image_size.
    query_embeddings: B x Q x C decoder query features after the last layer and its LayerNorm (class head input).
    raw_query_embeddings: B x Q x C the same queries before the final LayerNorm: what OMG-Seg's video inference
      matches between tubes to carry each query slot (a track) through a video (None in hand-made outputs).
    iou_logits: B x Q x 1 predicted mask quality (objectness) logits.
    in_vocab_logits: B x Q x (K + 1) the trained classifier's logits (same as class_logits without ensemble).
    clip_logits: B x Q x (K + 1) mask-pooled CLIP logits, or None without ensemble.
    auxiliary: one AuxiliaryPrediction per decoder stage before the last (num_layers of them: the initial
      prediction and layers 1..num_layers-1); the final stage is the fields above.
    num_learned_queries: the first num_learned_queries queries are learned; the rest are prompt queries.
    is_prompt_query: Q bool.
    prompt_valid: B x N bool (False for a prompt with no click and no box), or None without prompts.
    image_size: (H, W) of the input before padding; padded_size: (H, W) after padding to a multiple of 32.
    num_frames: T for clips, 0 for images.
    class_names: the K class names the class columns stand for (display names: a class's first synonym), filled in
      by the predictor (None from the bare model).
    thing_classes: K flags, True for things (countable objects), False for stuff; filled in by the predictor.
    """

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    query_embeddings: torch.Tensor
    iou_logits: torch.Tensor
    in_vocab_logits: torch.Tensor
    num_learned_queries: int
    is_prompt_query: torch.Tensor
    image_size: tuple[int, int]
    padded_size: tuple[int, int]
    num_frames: int = 0
    clip_logits: torch.Tensor | None = None
    prompt_valid: torch.Tensor | None = None
    auxiliary: list[AuxiliaryPrediction] = field(default_factory=list)
    raw_query_embeddings: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None
    thing_classes: tuple[bool, ...] | None = None

    @property
    def prompt_class_logits(self) -> torch.Tensor:
        """B x N x (K + 1) class logits of the prompt queries."""
        return self.class_logits[:, self.num_learned_queries:]

    @property
    def prompt_mask_logits(self) -> torch.Tensor:
        """B x N x h x w (or B x N x T x h x w) mask logits of the prompt queries."""
        return self.mask_logits[:, self.num_learned_queries:]

    def mask_logits_at_image_size(self, queries: slice | torch.Tensor | None = None) -> torch.Tensor:
        """Mask logits resized to the input image, as OMG-Seg post-processes them: bilinear upsampling to the
        padded input size, then the padding cropped off.

        Arguments:
          queries: which queries to resize (a slice or index tensor over Q); all by default. Resizing all 300
            queries of a large image takes a lot of memory, so select the kept ones first when you can.

        Returns:
          B x Q' x H x W (images) or B x Q' x T x H x W (clips) logits, (H, W) = image_size.
        """
        logits = self.mask_logits if queries is None else self.mask_logits[:, queries]
        return masks_to_image_size(logits, self.padded_size, self.image_size)
