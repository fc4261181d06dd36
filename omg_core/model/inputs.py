"""What the model takes: images or clips, optional interactive prompts, and a vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OMGInputs:
    """One batch for `OMGModel.forward`.

    images: B x 3 x H x W (an image batch) or B x T x 3 x H x W (a batch of clips), RGB, float, pixel values in
      [0, 255] (NOT normalised: the model subtracts its pixel_mean and divides by pixel_std itself). Any H, W:
      the model pads bottom/right to a multiple of 32.
    points: B x N x P x 2 click coordinates (x, y) in pixels of the unpadded image, or None.
    point_labels: B x N x P, 1 positive click, 0 negative click, -1 padding; required with points.
    boxes: B x N x 4 boxes (x1, y1, x2, y2) in pixels, or None. With points too, N must agree (box i and the
      clicks of prompt i describe the same object).
    class_names: the vocabulary as K class names, synonyms separated by "," (one text prototype per synonym,
      computed with the CLIP text tower over the ViLD templates and cached), or None when text_embeddings is given.
    text_embeddings: K x D precomputed normalised class embeddings, or K x P x D with P prototypes (synonyms)
      per class, scored by the best prototype; or None.
    seen_classes: K bool flags (True = seen in training). When given, class scores use the FC-CLIP geometric
      ensemble with the mask-pooled CLIP classifier; when None, the trained classifier alone.
    thing_classes: K bool flags (True = thing), or None. A masked-crop CLIP classifier (omg-tiny) votes on things
      only: it was never shown a masked stuff region, so stuff keeps the trained classifier's score.
    use_learned_queries: False runs only the prompt queries (prompt-only tasks such as interactive segmentation);
      prompts are independent of learned queries, so their predictions are the same either way.
    """

    images: torch.Tensor
    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    class_names: list[str] | tuple[str, ...] | None = None
    text_embeddings: torch.Tensor | None = None
    seen_classes: torch.Tensor | None = None
    thing_classes: torch.Tensor | None = None
    use_learned_queries: bool = True

    @property
    def is_video(self) -> bool:
        return self.images.dim() == 5

    @property
    def has_prompts(self) -> bool:
        return self.points is not None or self.boxes is not None

    def validate(self, clip_dim: int | None = None) -> None:
        """Raise ValueError naming the problem and the fix for any malformed field."""
        images = self.images
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() not in (4, 5) or images.shape[-3] != 3:
            raise ValueError(f"images must be B x 3 x H x W or B x T x 3 x H x W (RGB), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 255], got dtype {images.dtype}; use images.float()")
        if min(images.shape) == 0:
            raise ValueError(f"images has an empty dimension: {tuple(images.shape)}")
        batch = images.shape[0]
        if self.points is not None:
            if self.point_labels is None:
                raise ValueError("points were given without point_labels; pass B x N x P labels (1/0/-1)")
            if self.points.dim() != 4 or self.points.shape[-1] != 2 or self.points.shape[0] != batch:
                raise ValueError(f"points must be B x N x P x 2 with B={batch}, got {tuple(self.points.shape)}")
            if tuple(self.point_labels.shape) != tuple(self.points.shape[:3]):
                raise ValueError(f"point_labels must be B x N x P = {tuple(self.points.shape[:3])}, "
                                 f"got {tuple(self.point_labels.shape)}")
            bad = ~torch.isin(self.point_labels, torch.tensor([-1, 0, 1], device=self.point_labels.device))
            if bad.any():
                raise ValueError("point_labels may only hold 1 (positive), 0 (negative) or -1 (padding); found "
                                 f"{sorted(set(self.point_labels[bad].tolist()))}")
        elif self.point_labels is not None:
            raise ValueError("point_labels were given without points")
        if self.boxes is not None:
            if self.boxes.dim() != 3 or self.boxes.shape[-1] != 4 or self.boxes.shape[0] != batch:
                raise ValueError(f"boxes must be B x N x 4 (x1, y1, x2, y2) with B={batch}, "
                                 f"got {tuple(self.boxes.shape)}")
            if (self.boxes[..., 2:] < self.boxes[..., :2]).any():
                raise ValueError("boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1; convert xywh boxes first")
            if self.points is not None and self.points.shape[1] != self.boxes.shape[1]:
                raise ValueError(f"points describe {self.points.shape[1]} prompts but boxes {self.boxes.shape[1]}; "
                                 "give one box per prompt or pass them in separate calls")
        if not self.use_learned_queries and not self.has_prompts:
            raise ValueError("use_learned_queries=False leaves no query to run; give points or boxes")
        if self.class_names is None and self.text_embeddings is None:
            raise ValueError("no vocabulary: pass class_names (list of names) or text_embeddings (K x D)")
        if self.class_names is not None and self.text_embeddings is not None:
            raise ValueError("pass either class_names or text_embeddings, not both")
        if self.class_names is not None and isinstance(self.class_names, str):
            raise ValueError("class_names must be a list of names, not one string")
        num_classes = len(self.class_names) if self.class_names is not None else None
        if self.text_embeddings is not None:
            if self.text_embeddings.dim() not in (2, 3) or (
                clip_dim is not None and self.text_embeddings.shape[-1] != clip_dim
            ):
                raise ValueError(f"text_embeddings must be K x {clip_dim} or K x P x {clip_dim} (the CLIP embedding "
                                 f"width), got {tuple(self.text_embeddings.shape)}")
            num_classes = self.text_embeddings.shape[0]
        if num_classes == 0:
            raise ValueError("the vocabulary is empty; give at least one class")
        if self.seen_classes is not None and tuple(self.seen_classes.shape) != (num_classes,):
            raise ValueError(f"seen_classes must hold one flag per class ({num_classes},), "
                             f"got {tuple(self.seen_classes.shape)}")
        if self.thing_classes is not None and tuple(self.thing_classes.shape) != (num_classes,):
            raise ValueError(f"thing_classes must hold one flag per class ({num_classes},), "
                             f"got {tuple(self.thing_classes.shape)}")
