"""OMG-Seg: one frozen CLIP backbone, one pixel decoder and one query decoder for every segmentation task."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.backbone import ClipConvNeXtBackbone
from omg_core.model.box_query_encoder import BoxQueryPromptEncoder
from omg_core.model.config import ModelConfig
from omg_core.model.inputs import OMGInputs
from omg_core.model.outputs import AuxiliaryPrediction, OMGOutputs
from omg_core.model.ov_classifier import OpenVocabularyClassifier, geometric_ensemble, mask_pool
from omg_core.model.pixel_decoder import MSDeformAttnPixelDecoder
from omg_core.model.prompt_encoder import PromptEncoder
from omg_core.model.transformer_decoder import MaskedTransformerDecoder


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
            encoder_class = PromptEncoder if config.prompt_encoding == "sam" else BoxQueryPromptEncoder
            self.prompt_encoder = encoder_class(pixel_cfg.feat_channels)
        self.ov_classifier = OpenVocabularyClassifier(
            pixel_cfg.feat_channels, self.backbone.embed_dim, config.open_vocabulary.initial_logit_scale
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

    def forward(self, inputs: OMGInputs) -> OMGOutputs:
        """
        Arguments:
          inputs: see OMGInputs (images in [0, 255], B x 3 x H x W or B x T x 3 x H x W).

        Returns:
          OMGOutputs with Q = num_queries + N prompt queries; mask logits B x Q x Hp/4 x Wp/4 for images and
          B x Q x T x Hp/4 x Wp/4 for clips.
        """
        inputs.validate(self.clip_dim)
        if inputs.has_prompts and self.prompt_encoder is None:
            raise ValueError("this model was built with enable_prompts=False; it cannot take points or boxes")
        images = inputs.images
        is_video = inputs.is_video
        batch = images.shape[0]
        num_frames = images.shape[1] if is_video else 1
        image_size = (int(images.shape[-2]), int(images.shape[-1]))
        frames = images.flatten(0, 1) if is_video else images  # (B*T) x 3 x H x W
        normalized, padded_size = self.preprocess(frames.to(self.pixel_mean.dtype))

        # Class names give one prototype per synonym (K x P x D), scored by the best one, as in OMG-Seg.
        text_embeddings = (inputs.text_embeddings if inputs.text_embeddings is not None
                           else self.backbone.encode_vocabulary_prototypes(inputs.class_names))
        text_embeddings = text_embeddings.to(normalized.device)

        features = self.backbone(normalized)
        mask_features, multi_scale_features = self.pixel_decoder(features)

        prompt_feat = prompt_pos = prompt_valid = None
        if inputs.has_prompts:
            prompt_feat, prompt_pos, prompt_valid = self.prompt_encoder(
                image_size, inputs.points, inputs.point_labels, inputs.boxes
            )
        predictions = self.transformer_decoder(mask_features, multi_scale_features, num_frames, prompt_feat,
                                               prompt_pos, inputs.use_learned_queries)

        mask_features_bt = mask_features.view(batch, num_frames, *mask_features.shape[1:])
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
            clip_logits, valid_queries = self._clip_logits(features["res5"], final.mask_logits, text_embeddings,
                                                           batch, num_frames)
            ov_cfg = self.config.open_vocabulary
            class_logits = geometric_ensemble(in_vocab_logits, clip_logits, inputs.seen_classes, ov_cfg.alpha,
                                              ov_cfg.beta, valid_queries)

        num_learned = self.transformer_decoder.num_queries if inputs.use_learned_queries else 0
        total_queries = final.query_embeddings.shape[1]
        is_prompt = torch.arange(total_queries, device=class_logits.device) >= num_learned
        return OMGOutputs(
            class_logits=class_logits,
            mask_logits=frame_layout(final.mask_logits),
            query_embeddings=final.query_embeddings,
            iou_logits=final.iou_logits,
            in_vocab_logits=in_vocab_logits,
            clip_logits=clip_logits,
            num_learned_queries=num_learned,
            is_prompt_query=is_prompt,
            prompt_valid=prompt_valid,
            image_size=image_size,
            padded_size=padded_size,
            num_frames=num_frames if is_video else 0,
            auxiliary=[AuxiliaryPrediction(logits, frame_layout(p.mask_logits))
                       for logits, p in zip(stage_logits[:-1], predictions[:-1])],
        )

    def _clip_logits(
        self, res5: torch.Tensor, mask_logits: torch.Tensor, text_embeddings: torch.Tensor, batch: int,
        num_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Out-of-vocabulary logits: frozen CLIP features pooled inside each mask, embedded, compared to text.

        Arguments:
          res5: (B*T) x C4 x h x w stride-32 backbone features.
          mask_logits: B x Q x T x H x W.

        Returns:
          B x Q x (K + 1) CLIP logits and B x Q bool "mask is non-empty at the CLIP resolution".
        """
        height, width = res5.shape[-2:]
        queries = mask_logits.shape[1]
        masks = F.interpolate(mask_logits.flatten(1, 2), size=(height, width), mode="bilinear",
                              align_corners=False).view(batch, queries, num_frames * height, width)
        clip_features = res5.view(batch, num_frames, *res5.shape[1:]).transpose(1, 2).flatten(2, 3)  # B x C4 x T*h x w
        pooled = mask_pool(clip_features, masks)  # B x Q x C4
        clip_embeddings = self.backbone.embed_pooled_features(pooled)  # B x Q x D
        valid = (masks > 0).flatten(2).any(-1)
        return self.ov_classifier.logits(clip_embeddings, text_embeddings), valid
