"""Model configuration as pydantic models (unknown fields are errors, so typos never pass silently)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackboneConfig(_Strict):
    clip_model_name: str = "convnext_large_d_320"
    pretrained_tag: str = "laion2b_s29b_b131k_ft_soup"
    channels: tuple[int, int, int, int] = (192, 384, 768, 1536)
    #: a safetensors file of the whole open_clip model (open_clip key layout, e.g. written by omg_core.clip_train)
    #: loaded over the built CLIP; for CLIPs trained here, which open_clip has no pretrained tag for
    clip_weights: str | None = None


class PixelDecoderConfig(_Strict):
    feat_channels: int = 256
    mask_channels: int = 256
    num_layers: int = Field(6, ge=0)
    num_heads: int = 8
    num_points: int = 4
    ffn_dim: int = 1024
    num_groups: int = 32


class TransformerDecoderConfig(_Strict):
    num_layers: int = Field(9, ge=0)
    num_heads: int = 8
    ffn_dim: int = 2048
    num_queries: int = Field(300, ge=1)
    num_feature_levels: int = 3


class OpenVocabularyConfig(_Strict):
    alpha: float = Field(0.4, ge=0.0, le=1.0)  # ensemble exponent for seen classes
    beta: float = Field(0.8, ge=0.0, le=1.0)  # ensemble exponent for unseen classes
    # Fixed (not learned) log temperature of the classifier: logits = exp(logit_scale) * cosine, for both the
    # trained and the CLIP logits. 4.6052 is the official head's constant (np.log(1 / 0.01) to 4 decimals).
    logit_scale: float = 4.6052
    # How the frozen CLIP sees a mask. "pooled" (official): its stride-32 features pooled under the mask, on the grid
    # `pool_at` names (omg_core.model.mask_pooling; "features" is the official one). "masked-crops": the mask's object
    # cut out on flat grey and embedded by the whole CLIP image tower (omg_core.model.masked_crops), for CLIPs too
    # small to carry shape in their dense features.
    clip_classifier: Literal["pooled", "masked-crops"] = "pooled"
    pool_at: Literal["features", "masks"] = "features"
    crop_size: int = Field(64, ge=32, multiple_of=32)  # masked crops: the side the CLIP was trained at
    crop_margin: float = Field(0.2, ge=0.0)  # masked crops: margin around the mask's box, fraction of its longer side
    crop_fill: float = Field(128.0, ge=0.0, le=255.0)  # masked crops: the value outside the mask, in [0, 255]
    # Which requests get the ensemble. "open-vocabulary" (OMG-Seg: its test configs ensemble only open-vocabulary
    # runs): the open-vocabulary tasks. "always" (FC-CLIP: every evaluation, COCO included): every request that
    # classifies, with seen/unseen flags from `training_vocabulary`; for a trained classifier weaker than its CLIP.
    ensemble: Literal["open-vocabulary", "always"] = "open-vocabulary"
    # The temperature of the CLIP classifier's logits. "classifier" (OMG-Seg, FC-CLIP): the classifier's fixed
    # logit_scale, which for their CLIPs equals the one CLIP learned (100). "clip": the CLIP's own learned temperature
    # (`backbone.text.logit_scale`), for a CLIP trained to another one (the tiny CLIP learned 20; scored at 100 its
    # softmax is overconfident and outvotes the trained classifier).
    clip_temperature: Literal["classifier", "clip"] = "classifier"


class ModelConfig(_Strict):
    """Everything needed to build an OMGModel.

    pixel_mean / pixel_std are in [0, 255] RGB. The defaults are the values of OMG-Seg's data preprocessor
    (ImageNet statistics), which the released weights were trained with.
    """

    name: str = "omg-convnext-large"
    backbone: BackboneConfig = BackboneConfig()
    pixel_decoder: PixelDecoderConfig = PixelDecoderConfig()
    transformer_decoder: TransformerDecoderConfig = TransformerDecoderConfig()
    open_vocabulary: OpenVocabularyConfig = OpenVocabularyConfig()
    enable_prompts: bool = True
    # "sam": SAM-style Fourier encoding of any clicks (positive/negative) and boxes. "official": OMG-Seg's box
    # queries (one box or one positive click per prompt), what the released weights were trained with.
    prompt_encoding: Literal["sam", "official"] = "sam"
    # Vocabulary used when a request names none: a file under omg_core/configs/vocabularies/ (without .json).
    default_vocabulary: str = "coco_panoptic"
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisibility: int = 32
    # Test-time resize (long side, short side) keeping the aspect ratio, as OMG-Seg's test pipelines; None runs at
    # the input size. The official values (COCO 1333x800, video 1280x736) are set by the ConvNeXt-L config.
    # The classes the weights were trained on (open-vocabulary seen/unseen flags): a vocabulary name,
    # "omg-seg-joint" (the released weights' merged co-training list), or None for default_vocabulary.
    training_vocabulary: str | None = None
    test_scale_image: tuple[int, int] | None = None
    test_scale_video: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.pixel_decoder.feat_channels % self.pixel_decoder.num_groups:
            raise ValueError("pixel_decoder.feat_channels must be divisible by pixel_decoder.num_groups")
        if self.pixel_decoder.feat_channels % self.transformer_decoder.num_heads:
            raise ValueError("pixel_decoder.feat_channels must be divisible by transformer_decoder.num_heads")
        if self.transformer_decoder.num_feature_levels != 3:
            raise ValueError("transformer_decoder.num_feature_levels must be 3 (strides 32, 16, 8)")
        if self.size_divisibility % 32:
            raise ValueError("size_divisibility must be a multiple of 32 (the backbone's output stride)")
        if any(s <= 0 for s in self.pixel_std):
            raise ValueError("pixel_std values must be positive")
        return self


# Settings that act only at inference: weights trained under other values load and work with today's.
INFERENCE_ONLY_FIELDS: frozenset[str] = frozenset({"default_vocabulary", "test_scale_image", "test_scale_video"})
INFERENCE_ONLY_OPEN_VOCABULARY_FIELDS: frozenset[str] = frozenset(
    {"alpha", "beta", "clip_classifier", "pool_at", "crop_size", "crop_margin", "crop_fill", "ensemble",
     "clip_temperature"}
)


def architecture_differences(trained: ModelConfig, current: ModelConfig) -> list[str]:
    """The fields in which two configs describe different trained models (dotted names; empty: the same model).

    Inference-only settings (INFERENCE_ONLY_FIELDS, the open-vocabulary ensemble's) and where the CLIP weights were
    read from (`backbone.clip_weights`) do not count: weights trained under other values load and work with today's.
    """
    differs = [name for name in ModelConfig.model_fields
               if name not in INFERENCE_ONLY_FIELDS | {"backbone", "open_vocabulary"}
               and getattr(trained, name) != getattr(current, name)]
    if trained.backbone.model_copy(update={"clip_weights": None}) != current.backbone.model_copy(
            update={"clip_weights": None}):
        differs.append("backbone")
    differs += [f"open_vocabulary.{name}" for name in OpenVocabularyConfig.model_fields
                if name not in INFERENCE_ONLY_OPEN_VOCABULARY_FIELDS
                and getattr(trained.open_vocabulary, name) != getattr(current.open_vocabulary, name)]
    return differs
