"""OMG-Seg: one frozen CLIP backbone, one pixel decoder and one query decoder for every segmentation task."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.backbone import ClipConvNeXtBackbone
from omg_core.model.box_query_encoder import BoxQueryPromptEncoder
from omg_core.model.config import ModelConfig
from omg_core.model.inputs import OMGInputs
from omg_core.model.mask_pooling import mask_pooled_sums
from omg_core.model.masked_crops import masked_crops
from omg_core.model.outputs import AuxiliaryPrediction, OMGOutputs
from omg_core.model.ov_classifier import OpenVocabularyClassifier, geometric_ensemble
from omg_core.model.pixel_decoder import MSDeformAttnPixelDecoder
from omg_core.model.prompt_encoder import PromptEncoder
from omg_core.model.transformer_decoder import MaskedTransformerDecoder


@dataclass
class FrameFeatures:
    """Per-frame features of `OMGModel.encode_frames`, computed once and reused by every decoder call on them.

    res5: N x C4 x H/32 x W/32 frozen-CLIP backbone features (for the out-of-vocabulary classifier).
    mask_features: N x C x Hp/4 x Wp/4 per-pixel embeddings.
    multi_scale_features: per level N x C x h_l x w_l (strides 32, 16, 8).
    image_size: (H, W) of the input before padding; padded_size: after padding to size_divisibility.
    pixels: N x 3 x H x W the frames in [0, 255] (masked-crop classification cuts its crops from them), or None.
    """

    res5: torch.Tensor
    mask_features: torch.Tensor
    multi_scale_features: list[torch.Tensor]
    image_size: tuple[int, int]
    padded_size: tuple[int, int]
    pixels: torch.Tensor | None = None

    def frames(self, start: int, end: int) -> FrameFeatures:
        """The features of frames [start, end) (a video tube)."""
        return FrameFeatures(self.res5[start:end], self.mask_features[start:end],
                             [level[start:end] for level in self.multi_scale_features], self.image_size,
                             self.padded_size, None if self.pixels is None else self.pixels[start:end])

    def to(self, device: torch.device | str) -> FrameFeatures:
        return FrameFeatures(self.res5.to(device), self.mask_features.to(device),
                             [level.to(device) for level in self.multi_scale_features], self.image_size,
                             self.padded_size, None if self.pixels is None else self.pixels.to(device))

    @staticmethod
    def cat(parts: list[FrameFeatures]) -> FrameFeatures:
        """Frames of several encodings of one video, in order."""
        first = parts[0]
        pixels = None if any(p.pixels is None for p in parts) else torch.cat([p.pixels for p in parts])
        return FrameFeatures(torch.cat([p.res5 for p in parts]), torch.cat([p.mask_features for p in parts]),
                             [torch.cat(levels) for levels in zip(*(p.multi_scale_features for p in parts))],
                             first.image_size, first.padded_size, pixels)


class OMGModel(nn.Module):
    """Images or clips (+ optional prompts) and a vocabulary in, per-query classes and masks out."""

    def __init__(self, config: ModelConfig, load_clip_weights: bool = False) -> None:
        """
        Arguments:
          config: the model configuration.
          load_clip_weights: load the open_clip pretrained backbone weights (config.backbone.pretrained_tag;
            needs the network or the open_clip cache). False builds random weights offline.
        """
        super().__init__()
        self.config = config
        backbone_cfg, pixel_cfg, decoder_cfg = config.backbone, config.pixel_decoder, config.transformer_decoder
        self.backbone = ClipConvNeXtBackbone(
            backbone_cfg.clip_model_name,
            backbone_cfg.pretrained_tag if load_clip_weights else None,
            backbone_cfg.channels,
            clip_weights=backbone_cfg.clip_weights,
        )
        self.pixel_decoder = MSDeformAttnPixelDecoder(
            backbone_cfg.channels, pixel_cfg.feat_channels, pixel_cfg.mask_channels, pixel_cfg.num_layers,
            pixel_cfg.num_heads, pixel_cfg.num_points, pixel_cfg.ffn_dim, pixel_cfg.num_groups,
        )
        self.transformer_decoder = MaskedTransformerDecoder(
            pixel_cfg.feat_channels, pixel_cfg.mask_channels, decoder_cfg.num_layers, decoder_cfg.num_heads,
            decoder_cfg.ffn_dim, decoder_cfg.num_queries, decoder_cfg.num_feature_levels,
        )
        self.prompt_encoder: PromptEncoder | BoxQueryPromptEncoder | None = None
        if config.enable_prompts:
            self.prompt_encoder = (PromptEncoder(pixel_cfg.feat_channels, pixel_cfg.mask_channels)
                                   if config.prompt_encoding == "sam" else BoxQueryPromptEncoder(pixel_cfg.feat_channels))
        self.ov_classifier = OpenVocabularyClassifier(
            pixel_cfg.feat_channels, self.backbone.embed_dim, config.open_vocabulary.logit_scale
        )
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(3, 1, 1), persistent=False)

    @property
    def clip_dim(self) -> int:
        return self.backbone.embed_dim

    def encode_vocabulary(self, class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """K x D normalised text embeddings of the class names (cached per vocabulary)."""
        return self.backbone.encode_vocabulary(class_names)

    def encode_vocabulary_prototypes(self, class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """K x P x D normalised text embeddings, one per synonym (what forward uses for class_names)."""
        return self.backbone.encode_vocabulary_prototypes(class_names)

    def preprocess(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalise [0, 255] images and zero-pad (after normalising) to a multiple of size_divisibility.

        Arguments:
          images: N x 3 x H x W.

        Returns:
          N x 3 x Hp x Wp normalised images and (Hp, Wp).
        """
        images = (images - self.pixel_mean) / self.pixel_std
        divisor = self.config.size_divisibility
        height, width = images.shape[-2:]
        padded = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
        if padded != (height, width):
            images = F.pad(images, (0, padded[1] - width, 0, padded[0] - height))
        return images, padded

    def encode_frames(self, frames: torch.Tensor) -> FrameFeatures:
        """Backbone and pixel decoder on images or video frames, independently per frame (what a prompt round or a
        video tube reuses).

        Arguments:
          frames: N x 3 x H x W float in [0, 255] (images, or the frames of clips flattened).

        Returns:
          FrameFeatures with N frames.
        """
        image_size = (int(frames.shape[-2]), int(frames.shape[-1]))
        normalized, padded_size = self.preprocess(frames.to(self.pixel_mean.dtype))
        backbone_features = self.backbone(normalized)
        mask_features, multi_scale_features = self.pixel_decoder(backbone_features)
        return FrameFeatures(backbone_features["res5"], mask_features, multi_scale_features, image_size, padded_size,
                             frames)

    def forward(self, inputs: OMGInputs) -> OMGOutputs:
        """
        Arguments:
          inputs: see OMGInputs (images in [0, 255], B x 3 x H x W or B x T x 3 x H x W).

        Returns:
          OMGOutputs with Q = num_queries + N prompt queries; mask logits B x Q x Hp/4 x Wp/4 for images and
          B x Q x T x Hp/4 x Wp/4 for clips.
        """
        inputs.validate(self.clip_dim)
        images = inputs.images
        frames = images.flatten(0, 1) if inputs.is_video else images  # (B*T) x 3 x H x W
        num_frames = images.shape[1] if inputs.is_video else 0
        return self.decode(self.encode_frames(frames), inputs, num_frames)

    def decode(self, features: FrameFeatures, inputs: OMGInputs, num_frames: int = 0) -> OMGOutputs:
        """The query decoder and classifiers on encoded frames.

        Arguments:
          features: from `encode_frames`, B * max(T, 1) frames (the frames of each clip consecutive).
          inputs: prompts, vocabulary and ensemble flags (its `images` are not read again; only its layout is
            checked when it holds images).
          num_frames: T for clips, 0 for images.

        Returns:
          OMGOutputs as `forward`.
        """
        if inputs.has_prompts and self.prompt_encoder is None:
            raise ValueError("this model was built with enable_prompts=False; it cannot take points or boxes")
        is_video = num_frames > 0
        frames_per_sample = max(num_frames, 1)
        batch = features.mask_features.shape[0] // frames_per_sample
        image_size, padded_size = features.image_size, features.padded_size
        mask_features = features.mask_features

        # Class names give one prototype per synonym (K x P x D), scored by the best one, as in OMG-Seg.
        text_embeddings = (inputs.text_embeddings if inputs.text_embeddings is not None
                           else self.backbone.encode_vocabulary_prototypes(inputs.class_names))
        text_embeddings = text_embeddings.to(mask_features.device)

        prompt_feat = prompt_pos = prompt_valid = None
        if inputs.has_prompts:
            if isinstance(self.prompt_encoder, PromptEncoder):  # prompts refer to the first frame of a clip
                first_frames = mask_features.view(batch, frames_per_sample, *mask_features.shape[1:])[:, 0]
                prompt_feat, prompt_pos, prompt_valid = self.prompt_encoder(
                    image_size, inputs.points, inputs.point_labels, inputs.boxes, first_frames
                )
            else:
                prompt_feat, prompt_pos, prompt_valid = self.prompt_encoder(
                    image_size, inputs.points, inputs.point_labels, inputs.boxes
                )
        predictions = self.transformer_decoder(mask_features, features.multi_scale_features, frames_per_sample,
                                               prompt_feat, prompt_pos, inputs.use_learned_queries)

        mask_features_bt = mask_features.view(batch, frames_per_sample, *mask_features.shape[1:])
        stage_logits = [
            self.ov_classifier(p.query_embeddings, mask_features_bt, p.mask_logits, text_embeddings)
            for p in predictions
        ]

        def frame_layout(mask_logits: torch.Tensor) -> torch.Tensor:
            return mask_logits if is_video else mask_logits[:, :, 0]

        final = predictions[-1]
        in_vocab_logits = stage_logits[-1]
        class_logits = in_vocab_logits
        clip_logits = None
        if inputs.seen_classes is not None:
            pooled_sums, areas = self.clip_sums(features, final.mask_logits)
            clip_logits = self.clip_logits_from_pooled(pooled_sums, areas, text_embeddings)
            ov_cfg = self.config.open_vocabulary
            class_logits = geometric_ensemble(in_vocab_logits, clip_logits, inputs.seen_classes, ov_cfg.alpha,
                                              ov_cfg.beta, areas > 0, self.clip_voters(inputs.thing_classes))

        num_learned = self.transformer_decoder.num_queries if inputs.use_learned_queries else 0
        total_queries = final.query_embeddings.shape[1]
        is_prompt = torch.arange(total_queries, device=class_logits.device) >= num_learned
        return OMGOutputs(
            class_logits=class_logits,
            mask_logits=frame_layout(final.mask_logits),
            query_embeddings=final.query_embeddings,
            raw_query_embeddings=final.raw_query_embeddings,
            iou_logits=final.iou_logits,
            in_vocab_logits=in_vocab_logits,
            clip_logits=clip_logits,
            num_learned_queries=num_learned,
            is_prompt_query=is_prompt,
            prompt_valid=prompt_valid,
            image_size=image_size,
            padded_size=padded_size,
            num_frames=num_frames,
            auxiliary=[AuxiliaryPrediction(logits, frame_layout(p.mask_logits), p.iou_logits)
                       for logits, p in zip(stage_logits[:-1], predictions[:-1])],
        )

    def clip_voters(self, thing_classes: torch.Tensor | None) -> torch.Tensor | None:
        """The classes the CLIP classifier votes on in the ensemble: every class when pooled (OMG-Seg), the things
        when it sees masked crops (it never saw a masked stuff region); None means every class."""
        if self.config.open_vocabulary.clip_classifier == "masked-crops":
            return thing_classes
        return None

    def clip_sums(self, features: FrameFeatures, mask_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the out-of-vocabulary classifier adds up over a mask's frames (sums / areas over a whole track is
        what it classifies), as `config.open_vocabulary.clip_classifier` says: OMG-Seg's frozen CLIP features pooled
        under the mask on the grid `pool_at` names (omg_core.model.mask_pooling), or masked-crop embeddings
        (`clip_crop_sums`).

        Arguments:
          features: the frames' `encode_frames` output ((B*T) frames, those of a clip consecutive).
          mask_logits: B x Q x T x Hp/4 x Wp/4, foreground where > 0.

        Returns:
          B x Q x E sums and B x Q areas, summed over the frames; `clip_logits_from_pooled(sums, areas, ...)` turns
          them into logits.
        """
        batch, queries, num_frames = mask_logits.shape[:3]
        per_frame = mask_logits.transpose(1, 2).flatten(0, 1)  # (B*T) x Q x Hp/4 x Wp/4
        ov_cfg = self.config.open_vocabulary
        if ov_cfg.clip_classifier == "pooled":
            sums, areas = mask_pooled_sums(features.res5, per_frame.to(features.res5.dtype), ov_cfg.pool_at)
        elif features.pixels is None:
            raise ValueError("masked-crop classification needs the frames' pixels in FrameFeatures")
        else:
            sums, areas = self.clip_crop_sums(features.pixels, per_frame, features.image_size)
        return (sums.view(batch, num_frames, queries, -1).sum(dim=1),
                areas.view(batch, num_frames, queries).sum(dim=1))

    def clip_crop_sums(self, pixels: torch.Tensor, mask_logits: torch.Tensor,
                       image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked-crop CLIP embeddings of each query's mask in each frame, weighted by the mask's area.

        Arguments:
          pixels: N x 3 x H x W frames in [0, 255].
          mask_logits: N x Q x Hp/4 x Wp/4, foreground where > 0 once resized to the padded input.
          image_size: (H, W).

        Returns:
          N x Q x D area x normalised crop embedding (zero for empty masks) and N x Q mask areas (pixels).
        """
        cfg = self.config.open_vocabulary
        height, width = image_size
        padded = (mask_logits.shape[-2] * 4, mask_logits.shape[-1] * 4)
        masks = F.interpolate(mask_logits.float(), size=padded, mode="bilinear", align_corners=False)
        masks = masks[..., :height, :width] > 0  # N x Q x H x W
        crops, valid = zip(*(masked_crops(frame, frame_masks, cfg.crop_size, cfg.crop_margin, cfg.crop_fill)
                             for frame, frame_masks in zip(pixels, masks)))
        valid_mask = torch.stack(valid)  # N x Q
        embeddings = torch.zeros(*valid_mask.shape, self.clip_dim, device=pixels.device, dtype=self.pixel_mean.dtype)
        shown = torch.cat(crops)[valid_mask.flatten()]  # V x 3 x S x S uint8
        if shown.shape[0]:
            normalized = (shown.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
            embedded = torch.cat([self.backbone.embed_images(chunk) for chunk in normalized.split(256)])
            embeddings[valid_mask] = F.normalize(embedded.float(), dim=-1).to(embeddings.dtype)
        areas = masks.flatten(2).sum(dim=2).to(embeddings.dtype)  # N x Q
        return embeddings * areas[..., None], areas

    def clip_logits_from_pooled(
        self, pooled_sums: torch.Tensor, areas: torch.Tensor, text_embeddings: torch.Tensor
    ) -> torch.Tensor:
        """Out-of-vocabulary logits: mask-pooled frozen CLIP features (sums / areas) embedded by CLIP's head and
        compared with the class texts.

        Arguments:
          pooled_sums: ... x C4, areas: ... (zero areas pool to zero features, as OMG-Seg's eps does).
          text_embeddings: K x D or K x P x D.

        Returns:
          ... x (K + 1) CLIP logits (last column void, unused by the ensemble).
        """
        pooled = pooled_sums / (areas[..., None] + 1e-8)
        ov_cfg = self.config.open_vocabulary
        log_scale = self.backbone.text.logit_scale.detach() if ov_cfg.clip_temperature == "clip" else None
        if ov_cfg.clip_classifier == "masked-crops":
            return self.ov_classifier.logits(pooled, text_embeddings, log_scale)  # already CLIP embeddings
        clip_embeddings = self.backbone.embed_pooled_features(pooled)
        return self.ov_classifier.logits(clip_embeddings, text_embeddings, log_scale)

